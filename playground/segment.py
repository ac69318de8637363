"""Token boundaries: how each segmenter cuts a text (pure functions, no gradio).

Segmenters
----------
- ``bytes``: one unit per UTF-8 byte (``id`` = the byte value).
- ``hat-words``: the HAT paper's official splitter,
  ``hat_splitter.HATSplitter().split_with_limit(text, max_word_bytes)`` (``id`` = word index).
- ``entropy-patches``: BLT-style patches; a new patch starts at every byte whose next-byte
  entropy (bits, from the byte model ``byte-tiny``) exceeds a threshold (``id`` = patch index).
- any registered model name (``smollm2-135m``, ``bpe-tiny``, ``hf:<dir>``, ...): that model's
  tokenizer from ``models.registry.load_tokenizer`` (``id`` = token id). HAT-family models have
  no tokenizer; their units are HAT words.

Bytes versus characters
-----------------------
Every segmenter is first expressed as a contiguous cut of the text's UTF-8 bytes; a unit's
``byte_start``/``byte_end`` are exact. Several segmenters cut *inside* a character (the byte
view, HAT words at the byte limit, byte-level BPE tokens holding half an emoji, SentencePiece
byte-fallback pieces, entropy patches). Character offsets are then defined by one rule:

    a character belongs to the unit that holds its first byte.

So ``start``/``end`` are character offsets, ``text == input[start:end]``, units are contiguous
(``units[k].end == units[k+1].start``) and their texts concatenate to exactly the input. A unit
that holds only continuation bytes of a character gets ``text == ""`` (``start == end``); every
unit whose boundaries split a character has ``partial = True``, and ``char_span`` gives the
characters its bytes touch, so a UI can still show which character the bytes came from.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import math
import re
import sys
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import UserError
from models.units import exact_lengths, piece_bytes, tokenizer_scheme
from playground.config import DEFAULT_MAX_TEXT_CHARS, AppConfig  # the app's default limit, for the CLI too
from playground.config import validate_text as config_validate_text

log = logging.getLogger(__name__)

BUILTIN_SEGMENTERS: tuple[str, ...] = ("bytes", "hat-words", "entropy-patches")
DEFAULT_SEGMENTERS: tuple[str, ...] = ("bytes", "hat-words")
DEFAULT_MAX_WORD_BYTES = 16  # HATConfig's default word cap
MAX_WORD_BYTES_LIMIT = 1024
# Bits. BLT sets its global threshold so patches average about a BPE token's size; with
# byte-tiny, 3.0 gives 3.5 bytes per patch on 50k characters of English validation text
# (SmolLM2's tokens: 3.6, bpe-tiny's: 3.0), 4.0 gives 6.9 (`python bench/units_per_word.py
# [--entropy-threshold 4]`).
DEFAULT_ENTROPY_THRESHOLD = 3.0
DEFAULT_ENTROPY_MODEL = "byte-tiny"

EntropyFn = Callable[[str], np.ndarray]
TokenizerLoader = Callable[[str], Any]


class SegmentError(UserError):
    """A problem with the user's input, with a message meant for the user."""


class UnknownSegmenterError(SegmentError):
    """A segmenter name that is neither built in nor a registered model."""


@dataclass(frozen=True)
class Unit:
    """One unit of a segmentation. Offsets: see the module docstring."""

    text: str  # input[start:end]; "" for a unit made only of continuation bytes
    start: int  # character offsets (half-open)
    end: int
    id: int | None  # token id, byte value, word or patch index
    byte_start: int  # UTF-8 byte offsets (half-open), always exact
    byte_end: int
    hex: str  # the unit's bytes, e.g. "e6 97 a5"
    char_span: tuple[int, int]  # characters any of the unit's bytes belong to
    partial: bool = False  # a boundary of this unit splits a character
    byte_fallback: bool = False  # a SentencePiece <0xNN> piece
    special: bool = False  # a tokenizer's added/special token
    piece: str | None = None  # the tokenizer's own spelling of the token ("Ġthe", "▁the")

    def to_dict(self) -> dict[str, Any]:
        # Spelled out: dataclasses.asdict deep-copies every field and was most of the view's time.
        return {
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "id": self.id,
            "byte_start": self.byte_start,
            "byte_end": self.byte_end,
            "hex": self.hex,
            "char_span": [self.char_span[0], self.char_span[1]],
            "partial": self.partial,
            "byte_fallback": self.byte_fallback,
            "special": self.special,
            "piece": self.piece,
        }


@dataclass(frozen=True)
class Segmentation:
    """How one segmenter cut the text."""

    name: str
    kind: str  # "bytes" | "hat" | "tokenizer" | "entropy"
    units: list[Unit]
    # "exact": unit bytes come from the segmenter itself; "offsets": from the tokenizer's
    # offset mapping because its pieces did not spell the text (e.g. a normalizer changed it);
    # "approximate": aligned by diffing pieces against the text (no offsets available).
    alignment: str = "exact"
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.units)


@dataclass(frozen=True)
class SegmentStats:
    units: int
    chars: int
    bytes: int
    words: int
    bytes_per_unit: float | None
    units_per_word: float | None
    chars_per_unit: float | None
    partial_units: int
    byte_fallback_units: int


# --------------------------------------------------------------------------- validation


def validate_text(text: Any, max_chars: int | None = None) -> str:
    """Return ``text`` if it can be segmented (``playground.config.validate_text``, blank text
    allowed: how models cut spaces is a fair question), else raise :class:`SegmentError`."""
    bound = max_chars if max_chars is not None else sys.maxsize
    return config_validate_text(text, bound, SegmentError, "please shorten it", allow_blank=True)


def validate_max_word_bytes(value: Any) -> int:
    """An integer word cap in bytes; gradio sends numbers as floats, so 16.0 is fine."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
        raise SegmentError(f"max word bytes must be a whole number, got {value!r}")
    n = int(value)
    if not 1 <= n <= MAX_WORD_BYTES_LIMIT:
        # hat_splitter panics (a Rust panic, not an exception) on 0.
        raise SegmentError(f"max word bytes must be between 1 and {MAX_WORD_BYTES_LIMIT}, got {n}")
    return n


# --------------------------------------------------------------------------- byte/char mapping


class _Text:
    """Precomputed byte<->character maps of one text (Python lists: scalar indexing of numpy
    arrays costs more than the whole rest of building a unit)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.data = text.encode("utf-8")
        lengths = np.fromiter((len(c.encode("utf-8")) for c in text), dtype=np.int64, count=len(text))
        # char_byte[i] = first byte of character i; char_byte[n_chars] = n_bytes
        char_byte = np.zeros(len(text) + 1, dtype=np.int64)
        np.cumsum(lengths, out=char_byte[1:])
        # byte_char[b] = character holding byte b; byte_char[n_bytes] = n_chars
        byte_char = np.append(np.repeat(np.arange(len(text), dtype=np.int64), lengths), len(text))
        is_boundary = np.zeros(len(self.data) + 1, dtype=bool)
        is_boundary[char_byte] = True
        self.char_byte: list[int] = char_byte.tolist()
        self.byte_char: list[int] = byte_char.tolist()
        self.is_boundary: list[bool] = is_boundary.tolist()

    def char_at_boundary(self, b: int) -> int:
        """Character offset of byte boundary ``b``: the first character starting at or after b."""
        c = self.byte_char[b]
        return c if self.is_boundary[b] else c + 1

    def byte_of_char(self, c: int) -> int:
        return self.char_byte[c]


@dataclass
class _Piece:
    """Metadata of one unit before offsets are known."""

    id: int | None
    piece: str | None = None
    byte_fallback: bool = False
    special: bool = False


def _build_units(t: _Text, bounds: Sequence[int], pieces: Sequence[_Piece]) -> list[Unit]:
    """Units from byte boundaries ``bounds`` (len(pieces)+1 values, 0 .. n_bytes, sorted)."""
    assert len(bounds) == len(pieces) + 1 and bounds[0] == 0 and bounds[-1] == len(t.data)
    units: list[Unit] = []
    starts = [t.char_at_boundary(b) for b in bounds]
    for k, p in enumerate(pieces):
        bs, be = int(bounds[k]), int(bounds[k + 1])
        cs, ce = starts[k], starts[k + 1]
        span = (t.byte_char[bs], t.byte_char[be - 1] + 1) if be > bs else (cs, cs)
        units.append(
            Unit(
                text=t.text[cs:ce],
                start=cs,
                end=ce,
                id=p.id,
                byte_start=bs,
                byte_end=be,
                hex=t.data[bs:be].hex(" "),
                char_span=span,
                partial=not (t.is_boundary[bs] and t.is_boundary[be]),
                byte_fallback=p.byte_fallback,
                special=p.special,
                piece=p.piece,
            )
        )
    return units


def _bounds_from_lengths(lengths: Sequence[int]) -> list[int]:
    out = [0]
    for n in lengths:
        out.append(out[-1] + n)
    return out


def segment_by_lengths(text: str, name: str, kind: str, lengths: Sequence[int]) -> Segmentation:
    """A segmentation from each unit's byte count (they must add up to the text's bytes): how a
    cut made elsewhere (the BPE stepper's, say) becomes units with spans, hex and partial flags."""
    t = _Text(text)
    if sum(lengths) != len(t.data) or any(n < 0 for n in lengths):
        raise ValueError(f"unit lengths add up to {sum(lengths)} bytes; the text has {len(t.data)}")
    return Segmentation(name, kind, _build_units(t, _bounds_from_lengths(lengths), [_Piece(id=None)] * len(lengths)))


# --------------------------------------------------------------------------- segmenters


def segment_bytes(text: str) -> Segmentation:
    t = _Text(text)
    pieces = [_Piece(id=b) for b in t.data]
    return Segmentation("bytes", "bytes", _build_units(t, range(len(t.data) + 1), pieces))


@lru_cache(maxsize=1)
def _hat_splitter() -> Any:
    from hat_splitter import HATSplitter

    return HATSplitter()


def segment_hat_words(
    text: str, max_word_bytes: int = DEFAULT_MAX_WORD_BYTES, name: str = "hat-words"
) -> Segmentation:
    n = validate_max_word_bytes(max_word_bytes)
    t = _Text(text)
    words: list[bytes] = _hat_splitter().split_with_limit(text, n) if text else []
    if b"".join(words) != t.data:  # the splitter promises this; guard the offsets anyway
        raise RuntimeError("hat_splitter words do not concatenate to the input bytes")
    pieces = [_Piece(id=i) for i in range(len(words))]
    units = _build_units(t, _bounds_from_lengths([len(w) for w in words]), pieces)
    return Segmentation(name, "hat", units, extra={"max_word_bytes": n})


def entropy_patch_starts(entropy: np.ndarray, threshold: float) -> list[int]:
    """Byte indices where BLT patches start (global-threshold rule).

    ``entropy[i]`` is the entropy (bits) of the model's distribution predicting byte ``i``.
    Byte 0 always starts a patch; byte ``i > 0`` starts one when ``entropy[i] > threshold``:
    the model was unsure what comes next, so the next patch gets its own latent step.
    """
    e = np.asarray(entropy, dtype=np.float64).reshape(-1)
    if e.size == 0:
        return []
    if not np.all(np.isfinite(e)):
        raise ValueError("entropy contains NaN or infinite values")
    starts = np.flatnonzero(e[1:] > threshold) + 1
    return [0, *starts.tolist()]


def segment_entropy_patches(
    text: str, entropy: np.ndarray, threshold: float = DEFAULT_ENTROPY_THRESHOLD
) -> Segmentation:
    """Cut ``text`` into patches from a per-byte entropy array (one value per UTF-8 byte)."""
    t = _Text(text)
    e = np.asarray(entropy, dtype=np.float64).reshape(-1)
    if e.size != len(t.data):
        raise ValueError(f"entropy has {e.size} values for {len(t.data)} bytes of text")
    starts = entropy_patch_starts(e, threshold)
    bounds = [*starts, len(t.data)] if starts else [0]
    pieces = [_Piece(id=i) for i in range(len(starts))]
    return Segmentation(
        "entropy-patches",
        "entropy",
        _build_units(t, bounds, pieces),
        extra={
            "threshold": float(threshold),
            "entropy": [round(float(x), 4) for x in e],
        },
    )


# ---- tokenizers


def _bounds_from_offsets(t: _Text, offsets: list[tuple[int, int]], n_units: int) -> list[int]:
    """Contiguous byte boundaries from (possibly overlapping or gapped) character offsets."""
    bounds = [0]
    for k in range(1, n_units):
        s = min(max(offsets[k][0], 0), len(t.text))
        bounds.append(max(bounds[-1], t.byte_of_char(s)))
    bounds.append(len(t.data))
    return bounds


def _bounds_from_diff(data: bytes, piece_bytes: list[bytes]) -> list[int]:
    """Map piece boundaries in the pieces' concatenation onto the text's bytes by diffing."""
    joined = b"".join(piece_bytes)
    cuts = _bounds_from_lengths([len(p) for p in piece_bytes])
    sm = difflib.SequenceMatcher(None, joined, data, autojunk=False)
    mapping: dict[int, int] = {}
    for a, b, size in sm.get_matching_blocks():
        for d in range(size + 1):
            mapping.setdefault(a + d, b + d)
    bounds = [0]
    for c in cuts[1:-1]:
        # nearest mapped position at or before c keeps the boundaries monotonic
        j = c
        while j > 0 and j not in mapping:
            j -= 1
        bounds.append(max(bounds[-1], mapping.get(j, 0)))
    bounds.append(len(data))
    return bounds


def segment_tokenizer(text: str, tok: Any, name: str) -> Segmentation:
    """Cut ``text`` with a transformers tokenizer (no special tokens added)."""
    t = _Text(text)
    kwargs: dict[str, Any] = {"add_special_tokens": False, "verbose": False}
    fast = bool(getattr(tok, "is_fast", False))
    enc = tok(text, return_offsets_mapping=fast, **kwargs)
    ids = [int(i) for i in enc["input_ids"]]
    pieces = [str(p) for p in tok.convert_ids_to_tokens(ids)]
    scheme = tokenizer_scheme(tok)
    pb = piece_bytes(tok, ids, pieces, scheme)
    lengths = exact_lengths(t.data, [b for b, _, _ in pb])
    alignment = "exact"
    if lengths is not None:
        bounds = _bounds_from_lengths(lengths)
    elif fast and "offset_mapping" in enc:
        alignment = "offsets"
        bounds = _bounds_from_offsets(t, [tuple(o) for o in enc["offset_mapping"]], len(ids))
    else:
        alignment = "approximate"
        bounds = _bounds_from_diff(t.data, [b for b, _, _ in pb])
    meta = [
        _Piece(id=i, piece=p, byte_fallback=fb, special=sp) for i, p, (_, fb, sp) in zip(ids, pieces, pb, strict=True)
    ]
    if not ids:  # e.g. a tokenizer that drops everything it cannot encode
        if t.data:
            meta, bounds, alignment = (
                [_Piece(id=None, piece=None)],
                [0, len(t.data)],
                "approximate",
            )
        else:
            bounds = [0]
    return Segmentation(
        name,
        "tokenizer",
        _build_units(t, bounds, meta),
        alignment,
        extra={"scheme": scheme},
    )


# --------------------------------------------------------------------------- dispatch


def _default_tokenizer_loader(name: str) -> Any:
    from models.registry import load_tokenizer

    return load_tokenizer(name)


def _model_family(name: str) -> str | None:
    """The registry family of ``name`` or None when the registry does not know it."""
    try:
        from models.registry import get_spec
    except ImportError:
        return None
    try:
        return str(get_spec(name).family)
    except ValueError:
        return None


def available_segmenters(models: Sequence[str] = ()) -> list[str]:
    """Built-in segmenters followed by the given model names (deduplicated, in order)."""
    return list(dict.fromkeys([*BUILTIN_SEGMENTERS, *models]))


def _unknown(name: str, models: Sequence[str] | None) -> UnknownSegmenterError:
    if models is None:
        try:
            from models.registry import list_models

            models = [s.name for s in list_models()]
        except ImportError:
            models = []
    valid = ", ".join(available_segmenters(models))
    return UnknownSegmenterError(
        f"Unknown segmenter {name!r}. Valid names: {valid} (or hf:<hub id or local directory>)."
    )


@lru_cache(maxsize=32)
def _cached_entropy(model: str, text: str) -> np.ndarray:
    """Entropy of ``text`` under ``model``, cached: toggling a display option re-runs the view
    with the same text, and the byte model's forward pass is most of the view's time."""
    try:
        from models.registry import load_model
        from models.scoring import next_byte_entropy
    except ImportError as e:
        raise SegmentError(f"entropy-patches needs models.scoring.next_byte_entropy: {e}") from None
    try:
        lm = load_model(model)
    except (OSError, ValueError) as e:  # missing checkpoint, unknown name
        raise SegmentError(f"entropy-patches needs the byte model {model!r}: {e}") from None
    try:
        entropy = np.asarray(next_byte_entropy(lm, text), dtype=np.float64)
    except ValueError as e:  # e.g. a byte tokenizer that turned "</s>" into one special token
        raise SegmentError(f"entropy-patches: {model} cannot score this text: {e}") from None
    entropy.flags.writeable = False  # shared by every caller of the cache
    return entropy


_ENTROPY_LAST_USE = [0.0]  # time.monotonic() of the entropy cache's last use


def _entropy(model: str, text: str) -> np.ndarray:
    _ENTROPY_LAST_USE[0] = time.monotonic()
    return _cached_entropy(model, text)


def expire_entropy_cache(idle_seconds: float) -> int:
    """Empty the entropy cache if nobody used it for `idle_seconds`; returns how many entries went."""
    if time.monotonic() - _ENTROPY_LAST_USE[0] < idle_seconds:
        return 0
    n = _cached_entropy.cache_info().currsize
    _cached_entropy.cache_clear()
    return n


def default_entropy_fn(model: str = DEFAULT_ENTROPY_MODEL) -> EntropyFn:
    """Next-byte entropy (bits per byte) from a registered byte model (or HAT)."""
    return lambda text: _entropy(model, text)


def _hat_model_max_word_bytes(name: str) -> int | None:
    """The word cap a HAT checkpoint was trained with (its config.json), if it can be found."""
    try:
        from models import registry
    except ImportError:
        return None
    if name.startswith(registry.HF_PREFIX):
        directory = Path(name.removeprefix(registry.HF_PREFIX))
    else:
        directory = registry.default_registry().trained_dir / name
    try:
        value = json.loads((directory / "config.json").read_text(encoding="utf-8")).get("max_word_bytes")
    except (OSError, ValueError):
        return None
    return int(value) if isinstance(value, int) and value > 0 else None


def segment_one(
    text: str,
    name: str,
    *,
    max_word_bytes: int = DEFAULT_MAX_WORD_BYTES,
    entropy_threshold: float = DEFAULT_ENTROPY_THRESHOLD,
    entropy_fn: EntropyFn | None = None,
    tokenizer_loader: TokenizerLoader | None = None,
    allowed_models: Sequence[str] | None = None,
    entropy_model: str = DEFAULT_ENTROPY_MODEL,
) -> Segmentation:
    """Segment ``text`` with one segmenter (``text`` must already be validated).

    HAT-family models use the word cap they were trained with (else ``max_word_bytes``).
    """
    t0 = time.perf_counter()
    if name == "bytes":
        seg = segment_bytes(text)
    elif name == "hat-words":
        seg = segment_hat_words(text, max_word_bytes)
    elif name == "entropy-patches":
        if not math.isfinite(float(entropy_threshold)):
            raise SegmentError(f"entropy threshold must be a finite number, got {entropy_threshold!r}")
        entropy = (entropy_fn or default_entropy_fn(entropy_model))(text)
        seg = segment_entropy_patches(text, entropy, entropy_threshold)
        if entropy_fn is None:
            seg.extra["entropy_model"] = entropy_model
    else:
        if allowed_models is not None and name not in allowed_models:
            raise _unknown(name, allowed_models)
        loader = tokenizer_loader or _default_tokenizer_loader
        try:
            tok = loader(name)
        except SegmentError:
            raise
        except ValueError as e:
            if type(e).__name__ == "UnknownModelError":  # the registry's lists model names only
                raise _unknown(name, allowed_models) from None
            raise SegmentError(str(e)) from None
        except OSError as e:  # a missing local directory / hub unreachable
            raise SegmentError(f"Could not load the tokenizer of {name!r}: {e}") from None
        if tok is None:  # HAT models split text themselves
            seg = segment_hat_words(text, _hat_model_max_word_bytes(name) or max_word_bytes, name=name)
        else:
            seg = segment_tokenizer(text, tok, name)
    return Segmentation(
        seg.name,
        seg.kind,
        seg.units,
        seg.alignment,
        time.perf_counter() - t0,
        seg.extra,
    )


def segment(
    text: str,
    segmenters: Sequence[str] = DEFAULT_SEGMENTERS,
    *,
    max_word_bytes: int = DEFAULT_MAX_WORD_BYTES,
    entropy_threshold: float = DEFAULT_ENTROPY_THRESHOLD,
    max_chars: int | None = None,
    entropy_fn: EntropyFn | None = None,
    tokenizer_loader: TokenizerLoader | None = None,
    allowed_models: Sequence[str] | None = None,
    entropy_model: str = DEFAULT_ENTROPY_MODEL,
) -> dict[str, Segmentation]:
    """Segment ``text`` with every named segmenter; raises :class:`SegmentError` on bad input.

    ``allowed_models`` restricts model names (the app passes the models it offers);
    ``entropy_fn``/``tokenizer_loader`` replace the registry (tests use tiny stand-ins).
    """
    validate_text(text, max_chars)
    names = list(dict.fromkeys(s.strip() for s in segmenters if s and s.strip()))
    if not names:
        raise SegmentError("Choose at least one segmenter.")
    validate_max_word_bytes(max_word_bytes)
    return {
        n: segment_one(
            text,
            n,
            max_word_bytes=max_word_bytes,
            entropy_threshold=entropy_threshold,
            entropy_fn=entropy_fn,
            tokenizer_loader=tokenizer_loader,
            allowed_models=allowed_models,
            entropy_model=entropy_model,
        )
        for n in names
    }


# --------------------------------------------------------------------------- the view's entry


@dataclass(frozen=True)
class SegmentRequest:
    """What the token-boundaries view is asked: ``segmenters`` (names, or one comma-separated
    string from API callers) on ``text``, and, with ``perturbed``, on a seeded typo'd copy too."""

    text: str
    segmenters: Sequence[str] | str | None
    max_word_bytes: float | None = DEFAULT_MAX_WORD_BYTES
    entropy_threshold: float | None = DEFAULT_ENTROPY_THRESHOLD
    perturbed: bool = False
    seed: float | None = 0


# (label, text, segmentation per segmenter or the message of one that failed)
SegmentRun = tuple[str, str, dict[str, "Segmentation | str"]]


@dataclass(frozen=True)
class SegmentResult:
    """``runs``: ``("clean", text, ...)`` and, for a perturbed request, ``("perturbed", ...)``."""

    names: list[str]
    entropy_threshold: float
    runs: list[SegmentRun]

    def errors(self) -> dict[str, str]:
        """Segmenters that failed on the clean text, with their messages."""
        return {n: s for n, s in self.runs[0][2].items() if isinstance(s, str)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: per run, the text, every segmentation and the errors."""
        return {
            label: result_to_dict(t, {n: s for n, s in res.items() if isinstance(s, Segmentation)})
            | {"errors": {n: s for n, s in res.items() if isinstance(s, str)}}
            for label, t, res in self.runs
        }


def entropy_model_for(models: Sequence[str]) -> str:
    """The byte model whose next-byte entropy drives entropy-patches: ``byte-tiny`` if offered,
    else the first offered byte-family model, else ``byte-tiny`` (its error card says why)."""
    if DEFAULT_ENTROPY_MODEL in models:
        return DEFAULT_ENTROPY_MODEL
    return next((n for n in models if _model_family(n) == "byte"), DEFAULT_ENTROPY_MODEL)


def check(request: SegmentRequest, config: AppConfig) -> tuple[list[str], int, float]:
    """The request's segmenter names, word cap and threshold, or a `UserError` saying what to
    change (the app's text rules, its bound on segmenters, names it does not offer)."""
    config_validate_text(request.text, config.max_text_chars, limit_note=config.limit_note)
    segmenters = request.segmenters
    if isinstance(segmenters, str):  # API callers may pass "a,b"
        segmenters = segmenters.split(",")
    names = list(dict.fromkeys(s.strip() for s in segmenters or [] if isinstance(s, str) and s.strip()))
    if not names:
        raise SegmentError("Choose at least one segmenter.")
    if len(names) > config.limits.segmenters_per_request:
        raise SegmentError(
            f"{len(names)} segmenters selected; this app shows at most {config.limits.segmenters_per_request} "
            "per request (segmenters per request). Please remove some."
        )
    valid = available_segmenters(config.models)
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise UnknownSegmenterError(f"Unknown segmenter {unknown[0]!r}. Valid names: {', '.join(valid)}.")
    max_word_bytes = validate_max_word_bytes(request.max_word_bytes)
    try:
        threshold = float(request.entropy_threshold)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SegmentError(f"The entropy threshold must be a number, got {request.entropy_threshold!r}.") from None
    if not 0 <= threshold <= 8:
        raise SegmentError(f"The entropy threshold must be between 0 and 8 bits, got {threshold:g}.")
    return names, max_word_bytes, threshold


def run(request: SegmentRequest, config: AppConfig) -> SegmentResult:
    """The view's one entry: every segmenter on the text (and its perturbed copy). A segmenter
    that fails to load becomes an error message in its place instead of hiding the others."""
    names, max_word_bytes, threshold = check(request, config)

    def segment_all(text: str) -> dict[str, Segmentation | str]:
        out: dict[str, Segmentation | str] = {}
        for n in names:
            try:
                out[n] = segment_one(
                    text,
                    n,
                    max_word_bytes=max_word_bytes,
                    entropy_threshold=threshold,
                    allowed_models=list(config.models),
                    entropy_model=entropy_model_for(config.models),
                )
            except UnknownSegmenterError:
                raise
            except SegmentError as e:
                out[n] = str(e)
            except Exception as e:  # a model failing must not take the whole view down
                log.exception("segmenter %s failed", n)
                out[n] = f"{n} failed: {type(e).__name__}: {e}"
        return out

    runs: list[SegmentRun] = [("clean", request.text, segment_all(request.text))]
    if request.perturbed:
        perturbed = perturb(request.text, seed=int(request.seed or 0))
        runs.append(("perturbed", perturbed, segment_all(perturbed)))
    return SegmentResult(names, threshold, runs)


# --------------------------------------------------------------------------- statistics, display


def count_words(text: str) -> int:
    """Whitespace-separated words: the usual denominator of tokenizer "fertility"."""
    return len(text.split())


def stats(seg: Segmentation, text: str) -> SegmentStats:
    n, n_bytes, words = seg.count, len(text.encode("utf-8")), count_words(text)
    return SegmentStats(
        units=n,
        chars=len(text),
        bytes=n_bytes,
        words=words,
        bytes_per_unit=round(n_bytes / n, 3) if n else None,
        units_per_word=round(n / words, 3) if words else None,
        chars_per_unit=round(len(text) / n, 3) if n else None,
        partial_units=sum(u.partial for u in seg.units),
        byte_fallback_units=sum(u.byte_fallback for u in seg.units),
    )


# How every view shows whitespace (the one map: segment cards, attention axes, robustness, speculative).
VISIBLE_WHITESPACE = {" ": "⋅", "\n": "↵", "\t": "→", "\r": "␍"}
# Short names of invisible characters that are common in real text (emoji sequences, BOMs).
_INVISIBLE_NAMES = {
    "\u200b": "ZWSP",
    "\u200c": "ZWNJ",
    "\u200d": "ZWJ",
    "\u200e": "LRM",
    "\u200f": "RLM",
    "\u2060": "WJ",
    "\ufeff": "BOM",
    "\u00ad": "SHY",
    "\u00a0": "NBSP",
}


def visible(s: str, keep_newlines: bool = False) -> str:
    """``s`` with whitespace and control characters made visible (space ⋅, newline ↵, tab →).

    Other C0 controls become Unicode control pictures (U+2400..), DEL ␡; other invisible
    characters (format, other spaces, line/paragraph separators, C1 controls) become a short
    name or code point in angle brackets: ``⟨ZWJ⟩``, ``⟨U+2028⟩``. With `keep_newlines`, each ↵
    is followed by the newline itself, so line breaks still render.
    """
    if s.isprintable():  # no control, format or separator characters (except the space)
        return s.replace(" ", "⋅")
    out = []
    for c in s:
        if c == "\n" and keep_newlines:
            out.append("↵\n")
        elif c in VISIBLE_WHITESPACE:
            out.append(VISIBLE_WHITESPACE[c])
        elif ord(c) < 0x20:
            out.append(chr(0x2400 + ord(c)))
        elif c == "\x7f":
            out.append("␡")
        elif unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn") or c.isspace():
            out.append(f"⟨{_INVISIBLE_NAMES.get(c, f'U+{ord(c):04X}')}⟩")
        else:
            out.append(c)
    return "".join(out)


# --------------------------------------------------------------------------- perturbation

PERTURB_KIND = "keyboard"  # one letter replaced by a neighbouring QWERTY key: quick -> quuck
PERTURB_RATE = 0.2


def perturb(text: str, seed: int = 0, rate: float = PERTURB_RATE) -> str:
    """A seeded keyboard typo in about ``rate`` of the words (at least one), from
    :mod:`playground.perturb` (the robustness view's perturbations, so both views agree)."""
    from playground.perturb import perturb as typed_perturb

    return typed_perturb(text, PERTURB_KIND, rate, seed).text


# --------------------------------------------------------------------------- examples

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"


def load_examples(directory: Path = EXAMPLES_DIR) -> list[tuple[str, str]]:
    """(label, text) of every ``NN-label.txt`` example, in file-name order."""
    out = []
    for f in sorted(directory.glob("*.txt")):
        label = re.sub(r"^\d+[-_]", "", f.stem).replace("-", " ")
        out.append((label, f.read_text(encoding="utf-8")))
    return out


# --------------------------------------------------------------------------- JSON, CLI


def segmentation_to_dict(seg: Segmentation, text: str) -> dict[str, Any]:
    d: dict[str, Any] = {
        "units": [u.to_dict() for u in seg.units],
        "count": seg.count,
        "kind": seg.kind,
        "alignment": seg.alignment,
        "seconds": round(seg.seconds, 6),
        "stats": asdict(stats(seg, text)),
    }
    d.update(seg.extra)
    return d


def result_to_dict(text: str, result: dict[str, Segmentation]) -> dict[str, Any]:
    return {
        "text": text,
        "chars": len(text),
        "bytes": len(text.encode("utf-8")),
        "words": count_words(text),
        "segmenters": {n: segmentation_to_dict(s, text) for n, s in result.items()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m playground.segment", description=__doc__.split("\n")[0])
    ap.add_argument("--text", required=True, help="text to segment ('-' reads standard input)")
    ap.add_argument(
        "--segmenters",
        default=",".join(DEFAULT_SEGMENTERS),
        help=f"comma-separated: {', '.join(BUILTIN_SEGMENTERS)} or model names",
    )
    ap.add_argument("--max-word-bytes", type=int, default=DEFAULT_MAX_WORD_BYTES)
    ap.add_argument("--entropy-threshold", type=float, default=DEFAULT_ENTROPY_THRESHOLD)
    ap.add_argument("--entropy-model", default=DEFAULT_ENTROPY_MODEL, help="byte model for entropy-patches")
    ap.add_argument("--max-chars", type=int, default=DEFAULT_MAX_TEXT_CHARS)
    ap.add_argument(
        "--json",
        action="store_true",
        help="print JSON (the default output is a short table)",
    )
    args = ap.parse_args(argv)
    text = sys.stdin.read() if args.text == "-" else args.text
    try:
        result = segment(
            text,
            args.segmenters.split(","),
            max_word_bytes=args.max_word_bytes,
            entropy_threshold=args.entropy_threshold,
            max_chars=args.max_chars,
            entropy_model=args.entropy_model,
        )
    except SegmentError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result_to_dict(text, result)))
    else:
        for name, seg in result.items():
            print(f"{name:>18} {seg.count:5d}  " + "|".join(visible(u.text) or "·" for u in seg.units))
    return 0


if __name__ == "__main__":
    sys.exit(main())
