"""Robustness to typed perturbations: how much worse does each model read a perturbed text?

For a text, a perturbation (``playground.perturb``: kind, rate, seed) and some models, this module
scores the clean and the perturbed text with every model (``models.scoring``: exact bits per byte,
surprisal of every byte) and reports

- bits per byte, clean and perturbed, and the relative rise ``bpb_perturbed / bpb_clean - 1``;
- units (tokens, HAT words or bytes) before and after;
- per-character surprisal (the bits of a character's UTF-8 bytes added up), and the columns that
  line the two texts up (``aligned_columns``) for heat strips;
- next-word accuracy, clean and perturbed (``playground.nextword``);
- a sweep over rates: the rise per model and rate (``sweep``).

Scores are cached per (model, text) in a bounded LRU, so a sweep point is cached by (model, text,
perturbation, rate, seed) through its perturbed text, and the clean text is scored once.

CLI (the sweep)::

    python -m playground.robustness --models hat-tiny,bpe-tiny --text FILE --perturb typo \\
        --rates 0,0.05,0.1,0.2 --seed 0 [--next-word] [--json]
"""

from __future__ import annotations

import models  # noqa: F401  (sets OMP_WAIT_POLICY before torch is imported)

# isort: split

import argparse
import hashlib
import json
import math
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.errors import UserError
from models.family import TextScore
from models.registry import LoadedModel, load_model
from models.scoring import DEFAULT_BLOCK_BYTES, score_text
from playground.config import AppConfig, read_text, validate_models, validate_text
from playground.nextword import NextWordResult, near_flags, next_word, probes_for
from playground.perturb import KINDS, PerturbResult, check_kind, check_rate, perturb

DEFAULT_RATES: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3)
DEFAULT_MAX_CHARS = 2_000_000  # the CLI's limit; the app passes AppConfig.max_text_chars
CACHE_MAX_BYTES = 64 * 2**20  # text bytes held by the score cache (scores keep 8 bytes per text byte)

Loader = Callable[[str], LoadedModel]


class RobustnessError(UserError):
    """A bad request (no model, bad rates, ...), with a message for people."""


# --------------------------------------------------------------------------- cache


class ScoreCache:
    """LRU of `TextScore`s keyed by (model, sha256 of the text, block size); thread-safe."""

    def __init__(self, max_bytes: int = CACHE_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str, int], TextScore] = OrderedDict()
        self._used: dict[tuple[str, str, int], float] = {}  # time.monotonic() of each entry's last use
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @staticmethod
    def key(model: str, text: str, block_bytes: int = DEFAULT_BLOCK_BYTES) -> tuple[str, str, int]:
        return model, hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(), block_bytes

    def get(self, key: tuple[str, str, int]) -> TextScore | None:
        with self._lock:
            score = self._items.get(key)
            if score is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self._used[key] = time.monotonic()
            self.hits += 1
            return score

    def put(self, key: tuple[str, str, int], score: TextScore) -> None:
        if score.n_bytes > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = score
            self._used[key] = time.monotonic()
            self._bytes += score.n_bytes
            while self._bytes > self.max_bytes and self._items:
                old_key, old = self._items.popitem(last=False)
                self._used.pop(old_key, None)
                self._bytes -= old.n_bytes

    def expire(self, idle_seconds: float) -> int:
        """Drop the scores nobody used for `idle_seconds`; returns how many."""
        cutoff = time.monotonic() - idle_seconds
        with self._lock:
            old = [k for k in self._items if self._used.get(k, 0.0) < cutoff]
            for k in old:
                self._bytes -= self._items.pop(k).n_bytes
                self._used.pop(k, None)
        return len(old)

    def clear(self) -> None:
        """Empty the cache and start its hit/miss counts afresh."""
        with self._lock:
            self._items.clear()
            self._used.clear()
            self._bytes = 0
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._items)


CACHE = ScoreCache()


def cached_score(
    name: str, text: str, loader: Loader = load_model, block_bytes: int = DEFAULT_BLOCK_BYTES
) -> TextScore:
    """`score_text` of model `name` on `text`, from the cache when it was scored before."""
    key = CACHE.key(name, text, block_bytes)
    score = CACHE.get(key)
    if score is None:
        score = score_text(loader(name), text, block_bytes)
        CACHE.put(key, score)
    return score


_NEXT_WORD_CLEAN: OrderedDict[tuple[str, str, int], NextWordResult] = OrderedDict()
_NEXT_WORD_USED: dict[tuple[str, str, int], float] = {}
_NEXT_WORD_LOCK = threading.Lock()


def expire_next_word_cache(idle_seconds: float) -> int:
    """Drop clean next-word results nobody used for `idle_seconds`; returns how many."""
    cutoff = time.monotonic() - idle_seconds
    with _NEXT_WORD_LOCK:
        old = [k for k in _NEXT_WORD_CLEAN if _NEXT_WORD_USED.get(k, 0.0) < cutoff]
        for k in old:
            del _NEXT_WORD_CLEAN[k]
            _NEXT_WORD_USED.pop(k, None)
    return len(old)


def clean_next_word(name: str, lm: LoadedModel, result: PerturbResult) -> NextWordResult:
    """`next_word` on the clean text (cached per model and text; the near flags follow `result`)."""
    key = ScoreCache.key(name, result.original)
    with _NEXT_WORD_LOCK:
        hit = _NEXT_WORD_CLEAN.get(key)
        if hit is not None:
            _NEXT_WORD_CLEAN.move_to_end(key)
            _NEXT_WORD_USED[key] = time.monotonic()
    if hit is None:
        hit = next_word(lm, result, perturbed=False)
        with _NEXT_WORD_LOCK:
            _NEXT_WORD_CLEAN[key] = hit
            _NEXT_WORD_USED[key] = time.monotonic()
            while len(_NEXT_WORD_CLEAN) > 64:
                _NEXT_WORD_USED.pop(_NEXT_WORD_CLEAN.popitem(last=False)[0], None)
    probes = probes_for(result, perturbed=False)
    return NextWordResult(words=list(hit.words), hits=list(hit.hits), near=near_flags(result, probes), seconds=0.0)


# --------------------------------------------------------------------------- results


def relative_rise(clean: float, perturbed: float) -> float:
    """``perturbed / clean - 1`` (0.25 = a quarter more bits per byte); NaN when undefined."""
    if not (math.isfinite(clean) and math.isfinite(perturbed)) or clean <= 0:
        return float("nan")
    return perturbed / clean - 1.0


def char_bits(score: TextScore, text: str) -> np.ndarray:
    """Surprisal (bits) of each character: the sum over its UTF-8 bytes."""
    if not text:
        return np.zeros(0)
    lengths = np.fromiter((len(ch.encode("utf-8", "surrogatepass")) for ch in text), dtype=np.int64, count=len(text))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    if int(lengths.sum()) != len(score.byte_bits):
        raise ValueError("the score does not belong to this text")
    return np.add.reduceat(np.asarray(score.byte_bits, dtype=float), starts)


@dataclass(frozen=True)
class Column:
    """One column of the aligned heat strips: a clean and a perturbed character (either may be missing)."""

    clean: int | None  # character index in the clean text
    perturbed: int | None  # character index in the perturbed text
    changed: bool


def aligned_columns(result: PerturbResult) -> list[Column]:
    """Columns lining up the clean and perturbed texts along the perturbation's alignment.

    Unchanged text pairs up character by character; a change of `a` clean and `b` perturbed
    characters takes ``max(a, b)`` columns, its characters left-aligned (a deletion leaves gaps in
    the perturbed row, an insertion in the clean row).
    """
    cols: list[Column] = []
    for seg in result.segments():
        a, b = seg.end - seg.start, seg.new_end - seg.new_start
        if not seg.changed:
            cols += [Column(seg.start + i, seg.new_start + i, False) for i in range(a)]
            continue
        for i in range(max(a, b)):
            cols.append(Column(seg.start + i if i < a else None, seg.new_start + i if i < b else None, True))
    return cols


@dataclass
class ModelRobustness:
    """One model's reading of the clean and the perturbed text."""

    name: str
    family: str
    clean: TextScore
    perturbed: TextScore
    clean_char_bits: np.ndarray
    perturbed_char_bits: np.ndarray
    next_clean: NextWordResult | None = None
    next_perturbed: NextWordResult | None = None
    seconds: float = 0.0

    @property
    def bpb_clean(self) -> float:
        return self.clean.bpb

    @property
    def bpb_perturbed(self) -> float:
        return self.perturbed.bpb

    @property
    def rise(self) -> float:
        return relative_rise(self.bpb_clean, self.bpb_perturbed)

    @property
    def units_clean(self) -> int:
        return len(self.clean.units)

    @property
    def units_perturbed(self) -> int:
        return len(self.perturbed.units)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "family": self.family,
            "bpb_clean": _r(self.bpb_clean),
            "bpb_perturbed": _r(self.bpb_perturbed),
            "rise": _r(self.rise),
            "bits_clean": _r(self.clean.total_bits, 3),
            "bits_perturbed": _r(self.perturbed.total_bits, 3),
            "bytes_clean": self.clean.n_bytes,
            "bytes_perturbed": self.perturbed.n_bytes,
            "units_clean": self.units_clean,
            "units_perturbed": self.units_perturbed,
            "seconds": _r(self.seconds, 3),
        }
        if self.next_clean is not None and self.next_perturbed is not None:
            out["next_word"] = {
                "positions": self.next_perturbed.n,
                "accuracy_clean": _r(self.next_clean.accuracy),
                "accuracy_perturbed": _r(self.next_perturbed.accuracy),
                "near_positions": self.next_perturbed.n_near,
                "near_accuracy_clean": _r(_near_accuracy(self.next_clean, self.next_perturbed)),
                "near_accuracy_perturbed": _r(self.next_perturbed.near_accuracy),
            }
        return out


def _near_accuracy(clean: NextWordResult, perturbed: NextWordResult) -> float:
    """Clean accuracy on the positions that are near a change in the perturbed text."""
    near = {w for w, n in zip(perturbed.words, perturbed.near, strict=True) if n}
    picked = [h for w, h in zip(clean.words, clean.hits, strict=True) if w in near]
    return float(np.mean(picked)) if picked else float("nan")


def _r(x: float, digits: int = 6) -> float | None:
    return round(float(x), digits) if math.isfinite(x) else None


@dataclass
class RobustnessResult:
    perturbation: PerturbResult
    models: list[ModelRobustness] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        p = self.perturbation
        return {
            "perturbation": {
                "kind": p.kind,
                "rate": p.rate,
                "seed": p.seed,
                "n_words": p.n_words,
                "n_touched": p.n_touched,
                "touched_share": _r(p.touched_share),
            },
            "perturbed_text": p.text,
            "changes": [
                {
                    "clean": [c.start, c.end],
                    "perturbed": [c.new_start, c.new_end],
                    "before": c.before,
                    "after": c.after,
                    "op": c.op,
                }
                for c in p.changes
            ],
            "models": {m.name: m.summary() for m in self.models},
            "seconds": _r(self.seconds, 3),
        }


# --------------------------------------------------------------------------- analysis


def check_models(names: Sequence[str]) -> list[str]:
    names = [n.strip() for n in names if n and n.strip()]
    if not names:
        raise RobustnessError("Please choose at least one model.")
    return list(dict.fromkeys(names))


def check_text(text: str | None, max_chars: int | None = None) -> str:
    return validate_text(text, max_chars if max_chars is not None else DEFAULT_MAX_CHARS)


def analyze(
    names: Sequence[str],
    text: str,
    kind: str,
    rate: float,
    seed: int = 0,
    *,
    next_words: bool = True,
    max_chars: int | None = None,
    loader: Loader = load_model,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> RobustnessResult:
    """Score the clean and the perturbed text with every model (see the module docstring).

    Raises `ValueError`s with messages for people: empty or too long text (`TextInputError`),
    unknown perturbation or model, rate outside 0..1.
    """
    start = time.perf_counter()
    text = check_text(text, max_chars)
    check_kind(kind)
    rate = check_rate(rate)
    names = check_models(names)
    result = perturb(text, kind, rate, int(seed))
    out = RobustnessResult(result)
    for name in names:
        t0 = time.perf_counter()
        lm = loader(name)
        clean = cached_score(name, text, loader, block_bytes)
        pert = cached_score(name, result.text, loader, block_bytes)
        m = ModelRobustness(
            name=name,
            family=lm.spec.family,
            clean=clean,
            perturbed=pert,
            clean_char_bits=char_bits(clean, text),
            perturbed_char_bits=char_bits(pert, result.text),
        )
        if next_words:
            m.next_clean = clean_next_word(name, lm, result)
            m.next_perturbed = next_word(lm, result, perturbed=True)
        m.seconds = time.perf_counter() - t0
        out.models.append(m)
    out.seconds = time.perf_counter() - start
    return out


# --------------------------------------------------------------------------- sweep


@dataclass(frozen=True)
class SweepPoint:
    model: str
    rate: float
    touched_share: float
    bpb_clean: float
    bpb_perturbed: float
    next_word_clean: float | None = None
    next_word_perturbed: float | None = None

    @property
    def rise(self) -> float:
        return relative_rise(self.bpb_clean, self.bpb_perturbed)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "rate": self.rate,
            "touched_share": _r(self.touched_share),
            "bpb_clean": _r(self.bpb_clean),
            "bpb_perturbed": _r(self.bpb_perturbed),
            "rise": _r(self.rise),
        }
        if self.next_word_perturbed is not None:
            out["next_word_clean"] = _r(self.next_word_clean if self.next_word_clean is not None else float("nan"))
            out["next_word_perturbed"] = _r(self.next_word_perturbed)
        return out


@dataclass
class SweepResult:
    kind: str
    seed: int
    rates: list[float]
    points: list[SweepPoint] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0

    def series(self, model: str) -> list[SweepPoint]:
        return sorted((p for p in self.points if p.model == model), key=lambda p: p.rate)

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(p.model for p in self.points))

    def to_dict(self) -> dict[str, Any]:
        return {
            "perturbation": self.kind,
            "seed": self.seed,
            "rates": self.rates,
            "cancelled": self.cancelled,
            "models": {m: [p.to_dict() for p in self.series(m)] for m in self.models},
            "seconds": _r(self.seconds, 3),
        }


def parse_rates(value: str | Sequence[float]) -> list[float]:
    """``"0,0.05,0.1"`` (or a list) -> sorted unique rates, each checked to be in 0..1."""
    items = value.split(",") if isinstance(value, str) else list(value)
    rates = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        try:
            rates.append(check_rate(float(item)))
        except (TypeError, ValueError) as err:
            raise RobustnessError(
                f"Bad rate {item!r}: rates are shares of words between 0 and 1, e.g. 0,0.05,0.1."
            ) from err
    if not rates:
        raise RobustnessError("Please give at least one rate, e.g. 0,0.05,0.1,0.2.")
    return sorted(set(rates))


def sweep(
    names: Sequence[str],
    text: str,
    kind: str,
    rates: Sequence[float] | str = DEFAULT_RATES,
    seed: int = 0,
    *,
    next_words: bool = False,
    max_chars: int | None = None,
    loader: Loader = load_model,
    progress: Callable[[int, int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> SweepResult:
    """Bits per byte of every model at every rate (rate by rate, so a stop keeps whole rates).

    `progress(done, total, message)` is called before each (model, rate) step; when
    `should_stop()` turns true the sweep stops and returns what it has, with `cancelled` set.
    """
    start = time.perf_counter()
    text = check_text(text, max_chars)
    check_kind(kind)
    rate_list = parse_rates(rates)
    names = check_models(names)
    out = SweepResult(kind, int(seed), rate_list)
    total, done = len(rate_list) * len(names), 0
    for rate in rate_list:
        result = perturb(text, kind, rate, int(seed))
        for name in names:
            if should_stop is not None and should_stop():
                out.cancelled = True
                out.seconds = time.perf_counter() - start
                return out
            if progress is not None:
                progress(done, total, f"{name} at {rate:.0%}")
            clean = cached_score(name, text, loader, block_bytes)
            pert = cached_score(name, result.text, loader, block_bytes)
            nw_clean = nw_pert = None
            if next_words:
                lm = loader(name)
                nw_clean = clean_next_word(name, lm, result).accuracy
                nw_pert = next_word(lm, result, perturbed=True).accuracy
            out.points.append(SweepPoint(name, rate, result.touched_share, clean.bpb, pert.bpb, nw_clean, nw_pert))
            done += 1
    if progress is not None:
        progress(done, total, "done")
    out.seconds = time.perf_counter() - start
    return out


# --------------------------------------------------------------------------- the view's entries


@dataclass(frozen=True)
class RobustnessRequest:
    """One perturbation of ``text`` (``kind`` at ``rate``, seeded) scored by ``models`` (names, or
    one comma-separated string from API callers); ``next_words`` adds next-word accuracy."""

    text: str
    models: Sequence[str] | str | None
    kind: str
    rate: float = 0.1
    seed: float | str | None = 0
    next_words: bool = False


@dataclass(frozen=True)
class SweepRequest:
    """``kind`` at every rate from 0 to the app's bound in steps of ``step``, for ``models``."""

    text: str
    models: Sequence[str] | str | None
    kind: str
    seed: float | str | None = 0
    step: float | None = 0.05


def check_seed(seed: float | str | None) -> int:
    """A whole-number seed (gradio sends numbers as floats; blank means 0)."""
    try:
        value = float(seed if seed not in (None, "") else 0)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RobustnessError(f"The seed must be a whole number, got {seed!r}.") from None
    if not math.isfinite(value) or value != int(value):
        raise RobustnessError(f"The seed must be a whole number, got {seed!r}.")
    return int(value)


def check_request_models(selected: Sequence[str] | str | None, config: AppConfig) -> list[str]:
    """The app's models a request names, within the per-request bound."""
    if isinstance(selected, str):  # API callers may pass "a,b"
        selected = [s.strip() for s in selected.split(",") if s.strip()]
    return validate_models(selected, config, at_most=config.limits.models_per_request)


def run(request: RobustnessRequest, config: AppConfig, loader: Loader = load_model) -> RobustnessResult:
    """The view's main entry: the clean and the perturbed text scored by every model."""
    text = validate_text(request.text, config.max_text_chars, limit_note=config.limit_note)
    names = check_request_models(request.models, config)
    check_kind(request.kind)
    return analyze(
        names,
        text,
        request.kind,
        request.rate,
        check_seed(request.seed),
        next_words=request.next_words,
        max_chars=config.max_text_chars,
        loader=loader,
    )


def sweep_rates(max_rate: float, step: float = 0.05) -> list[float]:
    """0, step, 2 x step, ... up to ``max_rate``."""
    n = round(max_rate / step)
    return [round(i * step, 4) for i in range(n + 1)]


@dataclass
class SweepProgress:
    """What a running sweep has so far: ``done`` of ``total`` (model, rate) points in ``result``."""

    result: SweepResult
    done: int
    total: int


def run_sweep(
    request: SweepRequest,
    config: AppConfig,
    loader: Loader = load_model,
    on_point: Callable[[int, int, str], None] | None = None,
) -> Iterator[SweepProgress]:
    """The sweep entry: yields after every (model, rate) point, so a caller can show it and stop
    between points (gradio cancels a generator between yields). ``on_point(done, total, label)``
    is called before each point is computed."""
    text = validate_text(request.text, config.max_text_chars, limit_note=config.limit_note)
    names = check_request_models(request.models, config)
    check_kind(request.kind)
    seed = check_seed(request.seed)
    try:
        step = float(request.step or 0.05)
    except (TypeError, ValueError):
        raise RobustnessError(f"The sweep step must be a number, got {request.step!r}.") from None
    bounds = config.limits
    if not bounds.sweep_min_step <= step <= bounds.sweep_max_rate:
        raise RobustnessError(
            f"The sweep step must be between {bounds.sweep_min_step:.1%} and {bounds.sweep_max_rate:.0%} "
            f"(sweep rates), got {step:.1%}."
        )
    rates = sweep_rates(bounds.sweep_max_rate, step)
    total = len(rates) * len(names)
    acc = SweepResult(request.kind, seed, rates)
    for i, rate in enumerate(rates):
        for j, name in enumerate(names):
            if on_point is not None:
                on_point(i * len(names) + j, total, f"{name} at {rate:.0%}")
            part = sweep([name], text, request.kind, [rate], seed, max_chars=config.max_text_chars, loader=loader)
            acc.points += part.points
            yield SweepProgress(acc, i * len(names) + j + 1, total)


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m playground.robustness",
        description="Sweep a perturbation's rate and print each model's bits per byte and its relative rise.",
    )
    parser.add_argument(
        "--models", required=True, help="comma-separated registry names (hat-tiny,bpe-tiny,hf:DIR,...)"
    )
    parser.add_argument("--text", required=True, metavar="FILE", help="UTF-8 text file, or - for stdin")
    parser.add_argument("--perturb", default="typo", metavar="KIND", help=f"one of: {', '.join(KINDS)} (default typo)")
    parser.add_argument(
        "--rates", default="0,0.05,0.1,0.2", help="comma-separated shares of words (default 0,0.05,0.1,0.2)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--next-word", action="store_true", help="also measure next-word accuracy (slower)")
    parser.add_argument("--max-chars", type=int, default=DEFAULT_MAX_CHARS, help="longest text accepted")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda or mps (default: the registry's)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    try:
        if args.device:
            from models import registry

            registry.configure(device=args.device, attention=registry.default_registry().attention)
        text = read_text(args.text)
        names = [n for n in args.models.split(",") if n.strip()]

        def report(done: int, total: int, message: str) -> None:
            if not args.json:
                print(f"[{done}/{total}] {message}", file=sys.stderr)

        result = sweep(
            names,
            text,
            args.perturb,
            args.rates,
            args.seed,
            next_words=args.next_word,
            max_chars=args.max_chars,
            progress=report,
        )
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return 0
    print(f"perturbation {result.kind}, seed {result.seed}")
    for name in result.models:
        for p in result.series(name):
            nw = f"  next word {p.next_word_perturbed:.1%}" if p.next_word_perturbed is not None else ""
            print(
                f"{name:>24}  rate {p.rate:5.0%} (touched {p.touched_share:5.1%})  "
                f"bpb {p.bpb_clean:.4f} -> {p.bpb_perturbed:.4f}  rise {p.rise:+.1%}{nw}"
            )
    return 0


if __name__ == "__main__":
    from models import registry

    registry.configure_for_scoring()
    raise SystemExit(main())
