"""Attention maps: where every layer and head of a model looks, on the user's text (no gradio).

Levels and units
----------------
Every model gives one or more *levels*; a level is a square attention over a list of units, one
array of shape (heads, units, units) per layer, rows = queries, columns = keys, every row sums to 1.

- token models (family ``bpe``): level ``tokens``; units = ``[BOS]`` then the tokenizer's tokens.
- byte models (family ``byte``): level ``bytes``; units = ``[BOS]`` then one unit per UTF-8 byte.
- HAT (family ``hat``), from ``HATForCausalLM.attention_maps`` (eager attention):
  - ``encoder``: inside each word, its bytes then the ``[WORD]`` summary symbol. Words never
    attend to each other here, so the level is block diagonal (one block per word).
  - ``backbone``: ``[BOS]`` then every word (the backbone input; the output at the unit before a
    word predicts that word). ``attention_maps`` leaves out the last word, which predicts
    nothing in the text; it is added here by one more backbone pass so every word has a row.
  - ``decoder``: for each word, ``[CTX]`` (the backbone output that conditions the word) then
    its bytes; the decoder has no cross-attention, the context is its first position. Block
    diagonal like the encoder.

Every unit has a UTF-8 byte span (exact) and a character span: the characters any of its bytes
belong to. A unit that splits a multi-byte character (a byte unit, a byte-level BPE token holding
half an emoji, a HAT word cut at the byte limit) touches that character partially: its label
marks the missing side with "…" ("é…" holds the first bytes of é, "…é" the last ones). Units
with no bytes (``[BOS]``, ``[WORD]``, ``[CTX]``, special tokens) are *special*.

Aggregations (of one layer): ``mean`` over heads, ``max`` over heads (rows then need not sum to 1),
one ``head``, and ``rollout`` (Abnar & Zuidema 2020): the product, from the first layer up to the
chosen one, of 0.5·(mean over heads) + 0.5·I with rows renormalised.

Character-aligned projection
----------------------------
Two models cut the text differently, so their unit × unit maps cannot be compared directly.
``CharProjector`` maps any unit × unit matrix onto the text's characters:

    F[u, c] = fraction of character c's bytes held by unit u          (units partition the bytes)
    key side:    P[u, c] = F[u, c] / Σ_c' F[u, c']     a unit's weight is spread over its characters
    query side:  Q[c, u] = F[u, c] / Σ_u' F[u', c]     a character's row averages the rows of its units
    chars = Q · A · P

P's rows sum to 1, so the weight of every unit is conserved. Weight on special units (BOS sinks,
``[CTX]``) has no character to go to; it is reported per row (``special``) and, by default, the
row is rescaled so the projection preserves each row's sum (1 for a softmax row). Note that a
query character sees every character of its own unit, including later ones in that unit.

Long inputs: views bin an axis above ``MAX_AXIS_UNITS`` (512) units into consecutive groups;
rows of a group are averaged and columns summed, so row sums are preserved.

CLI::

    python -m playground.attention --model NAME --text TEXT --out FILE.npz [--json]

writes ``<level>/layer<k>`` arrays (heads × units × units, float32) for every level and layer,
plus ``<level>/char_spans``, ``<level>/byte_spans``, ``<level>/labels``, ``<level>/special``,
``levels``, ``text``, ``model`` and ``family``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from models.errors import UserError
from models.family import ModelFamily, family_named
from models.units import token_byte_spans
from playground.config import AppConfig, Limits, validate_text
from playground.segment import visible

Aggregation = Literal["mean", "max", "head", "rollout"]
AGGREGATIONS: tuple[str, ...] = ("mean", "max", "head", "rollout")
Axes = Literal["units", "chars"]

MAX_AXIS_UNITS = Limits.attention_axis_units  # views bin an axis beyond this many units (512)
# Largest number of attention weights (layers × heads × units², all levels) computed for one text:
# 480 MB of float32 = 120M weights, e.g. about 660 tokens for SmolLM2 (30 layers × 9 heads).
MAX_ATTENTION_WEIGHTS = Limits.attention_megabytes * 1_000_000 // 4
CACHE_BYTES = 1_200_000_000  # attention results kept in memory by `cached_attention`
ROLLOUT_RESIDUAL = 0.5

BOS_LABEL, WORD_LABEL, CTX_LABEL = "[BOS]", "[WORD]", "[CTX]"
LEVEL_NOTES: dict[str, str] = {
    "tokens": "Token model: [BOS] then its tokens; causal.",
    "bytes": "Byte model: [BOS] then one unit per UTF-8 byte; causal.",
    "encoder": "HAT encoder: the bytes of each word then its [WORD] summary symbol; words never attend to each "
    "other (one block per word).",
    "backbone": "HAT backbone: [BOS] then the words; the output at a unit predicts the next word.",
    "decoder": "HAT decoder: per word, [CTX] (the backbone output for the word; one or more positions) then its "
    "bytes; one block per word, the context comes first (no cross-attention).",
}


class AttentionInputError(UserError):
    """The text cannot be analysed (empty, too long for the model or for the memory limit)."""


# ----------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Unit:
    """One position of a level.

    Attributes:
        label: short display text with visible whitespace ("⋅fox", "[BOS]", "é…").
        detail: longer description for hovers.
        byte_start, byte_end: UTF-8 byte span in the text (empty for special units).
        char_start, char_end: characters any of the unit's bytes belong to (empty for special units,
            placed where the unit sits in the text).
        special: a unit without bytes ([BOS], [WORD], [CTX], special tokens).
        word: the HAT word the unit belongs to (None for flat models and [BOS]).
    """

    label: str
    detail: str
    byte_start: int
    byte_end: int
    char_start: int
    char_end: int
    special: bool = False
    word: int | None = None


@dataclass
class AttentionLevel:
    """One attention level of a model on a text: `layers[k]` is (heads, n, n), rows sum to 1."""

    name: str
    units: list[Unit]
    layers: list[np.ndarray]
    causal: bool = True
    blocks: list[int] = field(default_factory=lambda: [0])  # first unit of each independent block
    note: str = ""
    # Rollouts up to each layer, filled on demand by `rollout_at` (the chain is computed once).
    _rollouts: list[np.ndarray] = field(default_factory=list, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def n_units(self) -> int:
        return len(self.units)

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def n_heads(self) -> int:
        return int(self.layers[0].shape[0]) if self.layers else 0

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.layers) + sum(r.nbytes for r in self._rollouts)

    def rollout_at(self, layer: int) -> np.ndarray:
        """`rollout(self.layers, layer)`, extending a cached chain so every layer costs one product."""
        layer = clamp(layer, self.n_layers)
        with self._lock:
            while len(self._rollouts) <= layer:
                k = len(self._rollouts)
                below = self._rollouts[-1] if self._rollouts else None
                self._rollouts.append(_rollout_step(self.layers[k], below))
            return self._rollouts[layer]


@dataclass
class AttentionResult:
    """Attention of one model on one text, every level."""

    model: str
    family: str
    text: str
    levels: dict[str, AttentionLevel]
    word_spans: list[tuple[int, int]] = field(default_factory=list)  # HAT words (character spans)
    seconds: float = 0.0

    @property
    def nbytes(self) -> int:
        return sum(level.nbytes for level in self.levels.values())

    def level(self, name: str | None = None) -> AttentionLevel:
        """The named level; None, or a name this model lacks, gives its main level."""
        if name in self.levels:
            return self.levels[name]
        return self.levels["backbone" if "backbone" in self.levels else next(iter(self.levels))]


# ------------------------------------------------------------------------------- text and units


def shorten(label: str, limit: int = 14) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


class TextIndex:
    """Byte ↔ character offsets of a text."""

    def __init__(self, text: str):
        self.text = text
        sizes = [len(c.encode("utf-8")) for c in text]
        self.char_byte = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)  # bytes before char i
        self.n_bytes = int(self.char_byte[-1])
        self.byte_char = np.repeat(np.arange(len(text)), sizes) if text else np.zeros(0, np.int64)

    def char_of_byte(self, b: int) -> int:
        """The character holding byte `b`; `len(text)` at the end."""
        return int(self.byte_char[b]) if b < self.n_bytes else len(self.text)

    def char_span(self, b0: int, b1: int) -> tuple[int, int]:
        """Characters any byte of [b0, b1) belongs to; empty (at b0's character) if b1 <= b0."""
        if b1 <= b0:
            c = self.char_of_byte(b0)
            return c, c
        return self.char_of_byte(b0), self.char_of_byte(b1 - 1) + 1

    def unit(self, b0: int, b1: int, word: int | None = None) -> Unit:
        """A unit over bytes [b0, b1) of the text, with its label and detail."""
        c0, c1 = self.char_span(b0, b1)
        parts = []
        partial = False
        for c in range(c0, c1):
            cb0, cb1 = int(self.char_byte[c]), int(self.char_byte[c + 1])
            shown = visible(self.text[c])
            if b0 > cb0 or b1 < cb1:
                partial = True
                shown = ("…" if b0 > cb0 else "") + shown + ("…" if b1 < cb1 else "")
            parts.append(shown)
        label = "".join(parts)
        data = self.text.encode("utf-8")[b0:b1]
        detail = f"“{label}” bytes {b0}–{b1}"
        if partial or len(data) < 4 and any(x >= 0x80 for x in data):
            detail += f" ({data.hex(' ')})"
        if partial:
            detail += ", splits a character"
        return Unit(label, detail, b0, b1, c0, c1, special=False, word=word)

    def special(self, label: str, at_byte: int, detail: str, word: int | None = None) -> Unit:
        c = self.char_of_byte(at_byte)
        return Unit(label, detail, at_byte, at_byte, c, c, special=True, word=word)


# ------------------------------------------------------------------------------------- compute


def check_size(model: str, n_units: int, layers: int, heads: int, max_positions: int | None = None) -> None:
    """Raise `AttentionInputError` if the text is too long for the model or the memory limit."""
    if max_positions is not None and n_units > max_positions:
        raise AttentionInputError(
            f"The text is {n_units:,} units long for {model}, which reads at most {max_positions:,} positions. "
            "Please shorten the text."
        )
    weights = layers * heads * n_units * n_units
    if weights > MAX_ATTENTION_WEIGHTS:
        fits = int((MAX_ATTENTION_WEIGHTS / max(layers * heads, 1)) ** 0.5)
        raise AttentionInputError(
            f"The attention of {model} on this text is {n_units:,} units × {layers} layers × {heads} heads "
            f"({weights * 4 / 1e6:,.0f} MB); the limit is {MAX_ATTENTION_WEIGHTS * 4 / 1e6:,.0f} MB. "
            f"Please shorten the text to about {fits:,} units."
        )


def _ensure_eager(module: Any) -> Callable[[], None]:
    """Switch a transformers model to eager attention (sdpa returns no weights); returns the undo."""
    config = getattr(module, "config", None)
    previous = getattr(config, "_attn_implementation", None)
    if previous in (None, "eager") or not hasattr(module, "set_attn_implementation"):
        return lambda: None
    module.set_attn_implementation("eager")
    return lambda: module.set_attn_implementation(previous)


def _token_attention(name: str, family: ModelFamily, model: Any, tokenizer: Any, text: str) -> AttentionLevel:
    import torch

    from models.family import bos_id

    index = TextIndex(text)
    token_ids, spans, alignment = token_byte_spans(tokenizer, text)
    ids = [bos_id(tokenizer), *token_ids]
    config = model.config
    check_size(
        name,
        len(ids),
        int(config.num_hidden_layers),
        int(config.num_attention_heads),
        getattr(config, "max_position_embeddings", None),
    )
    units = [index.special(BOS_LABEL, 0, "beginning of sequence")]
    pieces = tokenizer.convert_ids_to_tokens(token_ids)
    for k, ((b0, b1), piece) in enumerate(zip(spans, pieces, strict=True)):
        if b1 > b0:
            unit = index.unit(b0, b1)
            units.append(Unit(unit.label, f"token {k} · id {ids[k + 1]} · {unit.detail}", *_spans(unit)))
        else:
            units.append(index.special(str(piece), b0, f"token {k} · id {ids[k + 1]} · no characters"))
    undo = _ensure_eager(model)
    try:
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids], device=model.device), output_attentions=True, use_cache=False)
    finally:
        undo()
    if not out.attentions or out.attentions[0] is None:
        raise RuntimeError(f"{name} returned no attention weights (is its attention implementation eager?)")
    layers = [a[0].float().cpu().numpy() for a in out.attentions]
    level = f"{family.unit}s"  # "tokens", or "bytes" for a byte model
    note = LEVEL_NOTES[level]
    if alignment != "exact":
        note += " Token spans come from the tokenizer's character offsets."
    return AttentionLevel(level, units, layers, causal=True, blocks=[0], note=note)


def _spans(unit: Unit) -> tuple[int, int, int, int]:
    return unit.byte_start, unit.byte_end, unit.char_start, unit.char_end


def _block_diagonal(blocks: Sequence[Sequence[Any]], n_layers: int) -> list[np.ndarray]:
    """[word][layer] (heads, m, m) tensors -> [layer] (heads, N, N) block-diagonal arrays."""
    sizes = [int(b[0].shape[-1]) for b in blocks]
    total = sum(sizes)
    heads = int(blocks[0][0].shape[0]) if blocks else 0
    layers = []
    for k in range(n_layers):
        full = np.zeros((heads, total, total), dtype=np.float32)
        start = 0
        for block, m in zip(blocks, sizes, strict=True):
            full[:, start : start + m, start : start + m] = block[k].float().cpu().numpy()
            start += m
        layers.append(full)
    return layers


def _hat_attention(name: str, model: Any, text: str) -> tuple[dict[str, AttentionLevel], list[tuple[int, int]]]:
    import torch

    config = model.config
    words: list[bytes] = model.split(text)
    n_words, n_bytes = len(words), sum(len(w) for w in words)
    check_size(name, n_words + 1, config.backbone_layers, config.backbone_heads, config.max_words)
    # The byte levels are shown as one matrix each: bytes + [WORD], bytes + the context slots.
    check_size(
        name,
        n_bytes + n_words * config.decoder_context_slots,
        config.encoder_layers + config.decoder_layers,
        config.encoder_heads,
    )
    maps = model.attention_maps(text)

    # The backbone again with every word fed (attention_maps feeds [BOS], w_0 .. w_{W-2}): the same
    # causal weights plus the last word's row. run_backbone drops the last of the vectors it gets.
    batch = model.batch_from_words([words]).to(model.device)
    lengths = batch.word_lengths
    starts = torch.cumsum(lengths, 0) - lengths
    undo = _ensure_eager(model.backbone)
    try:
        with torch.no_grad():
            vectors, _ = model.encode_words(batch.byte_ids, starts, lengths)
            padded = torch.cat([vectors, vectors[-1:]], 0)
            _, backbone = model.run_backbone(padded, torch.tensor([n_words + 1], device=model.device), True)
    finally:
        undo()

    index = TextIndex(text)
    word_bytes = np.concatenate([[0], np.cumsum([len(w) for w in words])]).astype(int)
    word_spans = [index.char_span(int(word_bytes[w]), int(word_bytes[w + 1])) for w in range(n_words)]
    word_units = [index.unit(int(word_bytes[w]), int(word_bytes[w + 1]), word=w) for w in range(n_words)]

    enc_units: list[Unit] = []
    dec_units: list[Unit] = []
    enc_blocks: list[int] = []
    dec_blocks: list[int] = []
    for w in range(n_words):
        b0, b1 = int(word_bytes[w]), int(word_bytes[w + 1])
        byte_units = []
        for b in range(b0, b1):
            u = index.unit(b, b + 1, word=w)
            byte_units.append(Unit(u.label, f"word {w} “{word_units[w].label}” · {u.detail}", *_spans(u), False, w))
        enc_blocks.append(len(enc_units))
        enc_units += byte_units
        enc_units.append(index.special(WORD_LABEL, b1, f"[WORD] summary of word {w} “{word_units[w].label}”", w))
        dec_blocks.append(len(dec_units))
        for slot in range(config.decoder_context_slots):
            which = f" (slot {slot + 1} of {config.decoder_context_slots})" if config.decoder_context_slots > 1 else ""
            detail = f"backbone context{which} for word {w} “{word_units[w].label}”"
            dec_units.append(index.special(CTX_LABEL, b0, detail, w))
        dec_units += byte_units

    bb_units = [index.special(BOS_LABEL, 0, "beginning of sequence (learned [BOS] word vector)")]
    bb_units += [Unit(u.label, f"word {w} · {u.detail}", *_spans(u), False, w) for w, u in enumerate(word_units)]
    levels = {
        "encoder": AttentionLevel(
            "encoder",
            enc_units,
            _block_diagonal(maps.encoder, config.encoder_layers),
            True,
            enc_blocks,
            LEVEL_NOTES["encoder"],
        ),
        "backbone": AttentionLevel(
            "backbone", bb_units, [a.float().cpu().numpy() for a in backbone], True, [0], LEVEL_NOTES["backbone"]
        ),
        "decoder": AttentionLevel(
            "decoder",
            dec_units,
            _block_diagonal(maps.decoder, config.decoder_layers),
            True,
            dec_blocks,
            LEVEL_NOTES["decoder"],
        ),
    }
    return levels, word_spans


def compute_attention(lm: Any, text: str) -> AttentionResult:
    """Attention of every level, layer and head of a `models.registry.LoadedModel` on `text`."""
    if not text:
        raise AttentionInputError("Please enter some text first.")
    start = time.perf_counter()
    spec = lm.spec
    family = family_named(spec.family)
    if family.hierarchical:  # the byte encoder, the word backbone and the byte decoder
        levels, word_spans = _hat_attention(spec.name, lm.model, text)
    else:
        level = _token_attention(spec.name, family, lm.model, lm.tokenizer, text)
        levels, word_spans = {level.name: level}, []
    return AttentionResult(spec.name, spec.family, text, levels, word_spans, time.perf_counter() - start)


class AttentionCache:
    """A thread-safe LRU of attention results keyed by (model, text), bounded in bytes."""

    def __init__(self, max_bytes: int = CACHE_BYTES):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str], AttentionResult] = OrderedDict()
        self._used: dict[tuple[str, str], float] = {}  # time.monotonic() of each entry's last use
        self._lock = threading.Lock()
        self._busy: dict[tuple[str, str], threading.Lock] = {}

    def get(self, name: str, text: str, compute: Callable[[], AttentionResult]) -> AttentionResult:
        key = (name, text)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self._used[key] = time.monotonic()
                return self._items[key]
            lock = self._busy.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            result = compute()
            with self._lock:
                self._items[key] = result
                self._used[key] = time.monotonic()
                self._busy.pop(key, None)
                while len(self._items) > 1 and sum(r.nbytes for r in self._items.values()) > self.max_bytes:
                    old, _ = self._items.popitem(last=False)
                    self._used.pop(old, None)
            return result

    def expire(self, idle_seconds: float) -> int:
        """Drop the entries nobody used for `idle_seconds`; returns how many."""
        cutoff = time.monotonic() - idle_seconds
        with self._lock:
            old = [k for k in self._items if self._used.get(k, 0.0) < cutoff]
            for k in old:
                del self._items[k]
                self._used.pop(k, None)
        return len(old)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(r.nbytes for r in self._items.values())

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._used.clear()


_CACHE = AttentionCache()


def expire_cache(idle_seconds: float) -> int:
    """Drop the cached attention results nobody used for `idle_seconds` (see `playground.memory`)."""
    return _CACHE.expire(idle_seconds)


def cached_attention(name: str, text: str) -> AttentionResult:
    """`compute_attention` of the registry model `name`, remembered for the next call on the same text."""
    from models.registry import load_model

    if not text:
        raise AttentionInputError("Please enter some text first.")
    return _CACHE.get(name, text, lambda: compute_attention(load_model(name), text))


# ---------------------------------------------------------------------------------- aggregation


def rollout(layers: Sequence[np.ndarray], upto: int, residual: float = ROLLOUT_RESIDUAL) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020) from the first layer to layer `upto` (inclusive).

    Each layer: mean over heads, `residual`·I + (1 − residual)·A, rows renormalised; the layers are
    multiplied bottom-up, so row i is how much each input unit flows into position i.
    """
    out: np.ndarray | None = None
    for a in layers[: upto + 1]:
        out = _rollout_step(a, out, residual)
    assert out is not None, "rollout needs at least one layer"
    return out


def _rollout_step(weights: np.ndarray, below: np.ndarray | None, residual: float = ROLLOUT_RESIDUAL) -> np.ndarray:
    """One layer of rollout: (residual·I + (1 − residual)·mean_heads(weights)), rows renormalised, @ below."""
    step = (1 - residual) * weights.mean(0, dtype=np.float64)
    step[np.diag_indices_from(step)] += residual
    step /= np.maximum(step.sum(-1, keepdims=True), 1e-12)
    return (step if below is None else step @ below).astype(np.float32)


def aggregate(level: AttentionLevel, layer: int, how: str = "mean", head: int = 0) -> np.ndarray:
    """One (units × units) matrix of `level`: layer `layer` aggregated over heads as `how`."""
    if how not in AGGREGATIONS:
        raise UserError(f"Unknown aggregation {how!r}; choose from {', '.join(AGGREGATIONS)}.")
    layer = clamp(layer, level.n_layers)
    if how == "rollout":
        return level.rollout_at(layer)
    weights = level.layers[layer]
    if how == "mean":
        return weights.mean(0)
    if how == "max":
        return weights.max(0)
    return weights[clamp(head, level.n_heads)]


def clamp(i: int, n: int) -> int:
    return max(0, min(int(i), n - 1))


# ------------------------------------------------------------------------- character projection


@dataclass(frozen=True)
class CharProjector:
    """Maps unit × unit matrices onto character × character ones (see the module docstring).

    `entries` are the non-zero (unit, char, fraction of the char's bytes held by the unit), sorted
    by unit; `key_weight` and `query_weight` are P and Q at those entries.
    """

    n_units: int
    n_chars: int
    unit_idx: np.ndarray
    char_idx: np.ndarray
    key_weight: np.ndarray
    query_weight: np.ndarray

    @classmethod
    def from_units(cls, units: Sequence[Unit], text: str) -> CharProjector:
        index = TextIndex(text)
        us, cs, fs = [], [], []
        for u, unit in enumerate(units):
            if unit.byte_end <= unit.byte_start:
                continue
            for c in range(unit.char_start, unit.char_end):
                cb0, cb1 = int(index.char_byte[c]), int(index.char_byte[c + 1])
                overlap = min(unit.byte_end, cb1) - max(unit.byte_start, cb0)
                if overlap > 0:
                    us.append(u)
                    cs.append(c)
                    fs.append(overlap / (cb1 - cb0))
        unit_idx, char_idx = np.array(us, dtype=np.int64), np.array(cs, dtype=np.int64)
        frac = np.array(fs, dtype=np.float64)
        unit_total = np.bincount(unit_idx, frac, minlength=len(units))
        char_total = np.bincount(char_idx, frac, minlength=len(text))
        key = frac / unit_total[unit_idx] if len(frac) else frac
        query = frac / char_total[char_idx] if len(frac) else frac
        return cls(len(units), len(text), unit_idx, char_idx, key, query)

    def key_matrix(self) -> np.ndarray:
        """P: (units, chars), rows of units with characters sum to 1."""
        p = np.zeros((self.n_units, self.n_chars))
        np.add.at(p, (self.unit_idx, self.char_idx), self.key_weight)
        return p

    def query_matrix(self) -> np.ndarray:
        """Q: (chars, units), rows of characters held by some unit sum to 1."""
        q = np.zeros((self.n_chars, self.n_units))
        np.add.at(q, (self.char_idx, self.unit_idx), self.query_weight)
        return q

    def keys(self, rows: np.ndarray) -> np.ndarray:
        """(..., units) -> (..., chars): each unit's weight spread over its characters."""
        rows = np.asarray(rows, dtype=np.float64)
        out = np.zeros(rows.shape[:-1] + (self.n_chars,))
        if len(self.unit_idx):
            _sum_into(out, rows[..., self.unit_idx] * self.key_weight, self.char_idx)
        return out

    def queries(self, matrix: np.ndarray) -> np.ndarray:
        """(units, ...) -> (chars, ...): a character's row is the average of its units' rows."""
        matrix = np.asarray(matrix, dtype=np.float64)
        out = np.zeros((self.n_chars,) + matrix.shape[1:])
        if len(self.unit_idx):
            weighted = matrix[self.unit_idx] * self.query_weight.reshape((-1,) + (1,) * (matrix.ndim - 1))
            _sum_into(out.T, weighted.T, self.char_idx)
        return out

    def project(self, matrix: np.ndarray, preserve_row_sums: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(units, units) -> (chars × chars matrix, weight each char row put on special units).

        With `preserve_row_sums`, each character row is rescaled to the (averaged) sum of its units'
        rows, moving the special units' share onto the characters in proportion.
        """
        matrix = np.asarray(matrix, dtype=np.float64)
        chars = self.queries(self.keys(matrix))
        target = self.queries(matrix.sum(-1))
        got = chars.sum(-1)
        special = np.clip(target - got, 0.0, None)
        if preserve_row_sums:
            scale = np.divide(target, got, out=np.zeros_like(got), where=got > 1e-12)
            chars *= scale[:, None]
        return chars.astype(np.float32), special.astype(np.float32)


def _sum_into(out: np.ndarray, values: np.ndarray, idx: np.ndarray) -> None:
    """out[..., idx[e]] += values[..., e] for sorted-or-not `idx`, vectorised over leading axes."""
    order = np.argsort(idx, kind="stable")
    idx_sorted = idx[order]
    firsts = np.flatnonzero(np.r_[True, idx_sorted[1:] != idx_sorted[:-1]])
    out[..., idx_sorted[firsts]] += np.add.reduceat(values[..., order], firsts, axis=-1)


def char_units(text: str) -> list[Unit]:
    """One unit per character (the axes of projected maps)."""
    index = TextIndex(text)
    return [
        Unit(
            visible(c),
            f"char {i} “{visible(c)}” U+{ord(c):04X}",
            int(index.char_byte[i]),
            int(index.char_byte[i + 1]),
            i,
            i + 1,
        )
        for i, c in enumerate(text)
    ]


# ------------------------------------------------------------------------------ views (binned)


@dataclass
class Heatmap:
    """A matrix ready to draw: labels per row/column, word boundaries, binning applied.

    `boundaries` are axis positions (in displayed rows/columns, possibly fractional after binning)
    where a new HAT word or block starts. `bin_size` > 1 means consecutive units were grouped.
    """

    matrix: np.ndarray
    labels: list[str]
    details: list[str]
    title: str  # "<model> · <description>"
    boundaries: list[float] = field(default_factory=list)
    bin_size: int = 1
    n_units: int = 0
    model: str = ""
    description: str = ""  # e.g. "backbone · layer 1 · head 0"
    special: np.ndarray | None = None  # per row: weight on special units lost by the projection
    notes: list[str] = field(default_factory=list)


def bin_matrix(matrix: np.ndarray, size: int) -> np.ndarray:
    """Group `size` consecutive rows (averaged) and columns (summed); row sums are preserved."""
    if size <= 1:
        return matrix
    n_rows, n_cols = matrix.shape
    starts = np.arange(0, n_rows, size)
    counts = np.diff(np.r_[starts, n_rows])
    rows = np.add.reduceat(np.asarray(matrix, dtype=np.float64), starts, axis=0) / counts[:, None]
    out = np.add.reduceat(rows, np.arange(0, n_cols, size), axis=1)
    return out.astype(np.float32)


def bin_size_for(n: int, max_units: int = MAX_AXIS_UNITS) -> int:
    return max(1, -(-n // max_units))


def _bin_labels(units: Sequence[Unit], size: int) -> tuple[list[str], list[str]]:
    if size <= 1:
        return [u.label for u in units], [u.detail for u in units]
    labels, details = [], []
    for g in range(0, len(units), size):
        group = units[g : g + size]
        text = "".join(u.label for u in group)
        labels.append(text)
        details.append(f"units {g}–{g + len(group) - 1}: “{shorten(text, 40)}”")
    return labels, details


def unit_boundaries(level: AttentionLevel) -> list[int]:
    """Unit indices where a new block (HAT word) starts, for encoder/decoder levels."""
    return [b for b in level.blocks if b > 0]


def char_boundaries(result: AttentionResult) -> list[int]:
    """Character indices where a HAT word starts (none for flat models)."""
    return [s for s, _ in result.word_spans[1:]]


def heatmap(
    result: AttentionResult,
    level: str | None = None,
    layer: int = 0,
    how: str = "mean",
    head: int = 0,
    axes: str = "units",
    max_units: int = MAX_AXIS_UNITS,
) -> Heatmap:
    """The matrix a view draws for one model: aggregated, optionally projected on characters, binned."""
    lvl = result.level(level)
    layer = clamp(layer, lvl.n_layers)
    matrix = aggregate(lvl, layer, how, head)
    what = {"mean": "mean of heads", "max": "max of heads", "rollout": f"rollout ≤ layer {layer}"}.get(
        how, f"head {clamp(head, lvl.n_heads)}"
    )
    description = f"{lvl.name} · layer {layer} · {what}"
    special = None
    if axes == "chars":
        matrix, special = CharProjector.from_units(lvl.units, result.text).project(matrix)
        units = char_units(result.text)
        bounds: list[int] = char_boundaries(result)
    else:
        units = lvl.units
        bounds = unit_boundaries(lvl)
    heat = _binned(matrix, units, bounds, f"{result.model} · {description}", special, max_units)
    heat.model, heat.description = result.model, description
    return heat


def _binned(
    matrix: np.ndarray,
    units: Sequence[Unit],
    bounds: Sequence[int],
    title: str,
    special: np.ndarray | None,
    max_units: int,
) -> Heatmap:
    n = len(units)
    size = bin_size_for(n, max_units)
    notes = []
    if size > 1:
        matrix = bin_matrix(matrix, size)
        if special is not None:
            special = _bin_rows(special, size)
        notes.append(
            f"{n:,} units per axis: shown in bins of {size} consecutive units (rows averaged, columns summed) "
            f"to stay within {max_units} per axis."
        )
    labels, details = _bin_labels(units, size)
    return Heatmap(
        matrix=np.asarray(matrix, dtype=np.float32),
        labels=labels,
        details=details,
        title=title,
        boundaries=[b / size for b in bounds],
        bin_size=size,
        n_units=n,
        special=special,
        notes=notes,
    )


def _bin_rows(values: np.ndarray, size: int) -> np.ndarray:
    groups = np.arange(len(values)) // size
    return (np.bincount(groups, values) / np.bincount(groups)).astype(np.float32)


def difference(a: Heatmap, b: Heatmap) -> Heatmap:
    """A − B of two character-aligned heatmaps of the same text."""
    if a.matrix.shape != b.matrix.shape or a.bin_size != b.bin_size:
        raise ValueError("a difference map needs two maps on the same character axes")
    return Heatmap(
        matrix=a.matrix - b.matrix,
        labels=a.labels,
        details=a.details,
        title=f"difference: {a.model} − {b.model}",
        boundaries=sorted(set(a.boundaries) | set(b.boundaries)),
        bin_size=a.bin_size,
        n_units=a.n_units,
        model="difference",
        description=f"{a.model} − {b.model}",
    )


def head_grid(
    result: AttentionResult, level: str | None, layer: int, axes: str = "units", max_units: int = 96
) -> list[np.ndarray]:
    """Every head of one layer as small matrices (binned to at most `max_units` per axis)."""
    lvl = result.level(level)
    weights = lvl.layers[clamp(layer, lvl.n_layers)]
    projector = CharProjector.from_units(lvl.units, result.text) if axes == "chars" else None
    out = []
    for h in range(weights.shape[0]):
        m = projector.project(weights[h])[0] if projector is not None else weights[h]
        out.append(bin_matrix(m, bin_size_for(m.shape[0], max_units)))
    return out


def query_index(level: AttentionLevel, char: int) -> int:
    """The (first non-special) unit of `level` holding the first byte of character `char`."""
    for i, u in enumerate(level.units):
        if not u.special and u.char_start <= char < u.char_end:
            return i
    return 0


@dataclass
class Profile:
    """What one query attends to, layer by layer: `matrix[k]` is the query's row at layer k."""

    matrix: np.ndarray  # (layers, keys)
    labels: list[str]
    details: list[str]
    query: str
    title: str
    boundaries: list[float] = field(default_factory=list)
    bin_size: int = 1
    notes: list[str] = field(default_factory=list)
    model: str = ""
    description: str = ""


def profile(
    result: AttentionResult,
    level: str | None,
    char: int,
    how: str = "mean",
    head: int = 0,
    axes: str = "units",
    max_units: int = MAX_AXIS_UNITS,
) -> Profile:
    """The attention row of the unit holding character `char` (or of character `char` itself, on
    character axes) at every layer of a level."""
    lvl = result.level(level)
    char = clamp(char, max(len(result.text), 1))
    rows = []
    if axes == "chars":
        projector = CharProjector.from_units(lvl.units, result.text)
        for k in range(lvl.n_layers):
            rows.append(projector.project(aggregate(lvl, k, how, head))[0][char])
        units = char_units(result.text)
        query = f"char {char} “{visible(result.text[char])}”" if result.text else ""
        bounds: list[int] = char_boundaries(result)
    else:
        q = query_index(lvl, char)
        rows = [aggregate(lvl, k, how, head)[q] for k in range(lvl.n_layers)]
        units = lvl.units
        query = f"unit {q} “{lvl.units[q].label}”"
        bounds = unit_boundaries(lvl)
    matrix = np.stack(rows)
    size = bin_size_for(len(units), max_units)
    notes = []
    if size > 1:
        matrix = np.add.reduceat(matrix, np.arange(0, matrix.shape[1], size), axis=1)
        notes.append(f"{len(units):,} keys shown in bins of {size}.")
    labels, details = _bin_labels(units, size)
    description = f"{lvl.name} · what {query} attends to"
    return Profile(
        matrix.astype(np.float32),
        labels,
        details,
        query,
        f"{result.model} · {description}",
        [b / size for b in bounds],
        size,
        notes,
        result.model,
        description,
    )


# ----------------------------------------------------------------------------------------- npz


# ------------------------------------------------------------------------------------ the view's entry

VIEW_LEVELS = ("encoder", "backbone", "decoder")  # HAT's; token models show their one level for each


@dataclass(frozen=True)
class AttentionRequest:
    """What the attention view shows: ``model_a`` (and, to compare, ``model_b``) on ``text``, one
    level, as units or characters, aggregated ``how`` at ``layer``/``head``, and the attention
    profile of the character ``query`` (None or negative: the last one)."""

    text: str
    model_a: str | None
    model_b: str | None = None
    level: str = "backbone"
    axes: str = "units"
    how: str = "mean"
    layer: int = 0
    head: int = 0
    query: int | None = None


@dataclass
class AttentionView:
    """The data of one rendering: per model its result, heatmap, query profile and head grid
    (``grids[i][h]``: the matrix of head ``h`` of model ``i``'s shown layer); ``difference`` for two models on
    character axes. ``layer``, ``head`` and ``query`` are the request's, clamped."""

    request: AttentionRequest
    names: list[str]
    results: list[AttentionResult]
    maps: list[Heatmap]
    difference: Heatmap | None
    profiles: list[Profile]
    grids: list[list[np.ndarray]]
    layer: int
    head: int
    query: int
    max_layers: int
    max_heads: int

    @property
    def has_word_boundaries(self) -> bool:
        """Whether a model reads words (a HAT), whose boundaries the maps can mark."""
        return any(r.word_spans for r in self.results)


def check_request_models(config: AppConfig, model_a: str | None, model_b: str | None) -> list[str]:
    """The one or two models a request names, offered by the app."""
    names = [n for n in (model_a, model_b) if n]
    if not names:
        raise AttentionInputError("Please choose a model (A).")
    unknown = [n for n in names if n not in config.models]
    if unknown:
        raise AttentionInputError(
            f"Unknown model(s): {', '.join(unknown)}. This app offers: {', '.join(config.models)}."
        )
    return list(dict.fromkeys(names))


def run(request: AttentionRequest, config: AppConfig) -> AttentionView:
    """The view's one entry: attention of the request's models on its text (cached per model and
    text), and the maps, profiles and head grids it asks for."""
    text = validate_text(request.text, config.max_text_chars, limit_note=config.limit_note)
    names = check_request_models(config, request.model_a, request.model_b)
    level = request.level if request.level in VIEW_LEVELS else "backbone"
    axes = request.axes if request.axes in ("units", "chars") else "units"
    if request.how not in AGGREGATIONS:
        raise AttentionInputError(f"Unknown aggregation {request.how!r}; choose from {', '.join(AGGREGATIONS)}.")
    results = [cached_attention(name, text) for name in names]
    levels = [r.level(level) for r in results]
    max_layers = max(lvl.n_layers for lvl in levels)
    max_heads = max(lvl.n_heads for lvl in levels)
    layer, head = clamp(request.layer, max_layers), clamp(request.head, max_heads)
    query = request.query
    query = len(text) - 1 if query is None or query < 0 else clamp(query, len(text))  # default: the last char
    maps = [heatmap(r, level, layer, request.how, head, axes) for r in results]
    return AttentionView(
        request=AttentionRequest(text, request.model_a, request.model_b, level, axes, request.how, layer, head, query),
        names=names,
        results=results,
        maps=maps,
        difference=difference(maps[0], maps[1]) if len(maps) == 2 and axes == "chars" else None,
        profiles=[profile(r, level, query, request.how, head, axes) for r in results],
        grids=[head_grid(r, level, layer, axes) for r in results],
        layer=layer,
        head=head,
        query=query,
        max_layers=max_layers,
        max_heads=max_heads,
    )


def npz_arrays(result: AttentionResult) -> dict[str, np.ndarray]:
    """Every level's weights and units as named arrays (see the module docstring)."""
    arrays: dict[str, np.ndarray] = {
        "text": np.array(result.text),
        "model": np.array(result.model),
        "family": np.array(result.family),
        "levels": np.array(list(result.levels)),
        "word_char_spans": np.array(result.word_spans, dtype=np.int64).reshape(-1, 2),
    }
    for name, level in result.levels.items():
        for k, weights in enumerate(level.layers):
            arrays[f"{name}/layer{k}"] = weights.astype(np.float32)
        arrays[f"{name}/char_spans"] = np.array([(u.char_start, u.char_end) for u in level.units], dtype=np.int64)
        arrays[f"{name}/byte_spans"] = np.array([(u.byte_start, u.byte_end) for u in level.units], dtype=np.int64)
        arrays[f"{name}/labels"] = np.array([u.label for u in level.units])
        arrays[f"{name}/special"] = np.array([u.special for u in level.units], dtype=bool)
        arrays[f"{name}/word"] = np.array([-1 if u.word is None else u.word for u in level.units], dtype=np.int64)
    return arrays


def save_npz(result: AttentionResult, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **npz_arrays(result))
    return path


def summary(result: AttentionResult) -> dict[str, Any]:
    return {
        "model": result.model,
        "family": result.family,
        "chars": len(result.text),
        "seconds": round(result.seconds, 3),
        "levels": {
            name: {"units": lvl.n_units, "layers": lvl.n_layers, "heads": lvl.n_heads}
            for name, lvl in result.levels.items()
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m playground.attention --model NAME --text TEXT --out FILE.npz`."""
    parser = argparse.ArgumentParser(
        prog="python -m playground.attention",
        description="Write the attention weights of every level, layer and head of a model on a text to .npz.",
    )
    parser.add_argument("--model", required=True, help="registry name, e.g. hat-tiny, smollm2-135m, hf:<dir>")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="the text")
    source.add_argument("--text-file", type=Path, help="read the text from this UTF-8 file")
    parser.add_argument("--out", required=True, type=Path, help="output .npz file")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or mps (default cpu)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    args = parser.parse_args(argv)
    try:
        from models import registry

        text = args.text if args.text is not None else args.text_file.read_text(encoding="utf-8")
        if not text:
            raise AttentionInputError("The text is empty.")
        registry.configure(device=args.device)
        result = compute_attention(registry.load_model(args.model), text)
        save_npz(result, args.out)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    info = {**summary(result), "out": str(args.out)}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        levels = ", ".join(
            f"{k} {v['units']} units × {v['layers']} layers × {v['heads']} heads" for k, v in info["levels"].items()
        )
        print(f"{args.out}: {result.model} ({result.family}) — {levels}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
