"""Adaptation view core: how fast each model learns a new language.

Two parts, both pure data (no UI):

- **The shipped runs.** `training/adapt.py` continued hat-tiny, bpe-tiny and byte-tiny on German
  under one protocol and logged, every few CPU-minutes, bits per byte on the German validation
  split and on the English prefix (forgetting). `read_curves` reads those logs
  (`assets/reports/adaptation/<model>-<language>.csv`); `time_to_reach` and `speedup` turn them into the paper's measure: the
  CPU time each model needs to reach a given German bits per byte.
- **Live adaptation.** `LiveAdapter` continues training private copies of two shipped models on a
  text a user pastes, for a bounded number of steps, then generates from and scores with the
  copies beside the shipped originals. `LiveSessions` keeps one adapter per browser session, in
  memory only, and drops it when the session ends; the shipped files and the registry's loaded
  models are never written.

    python -m playground.adaptation --language de --json      # the shipped runs' comparison
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models import adaptation, registry
from models.errors import UserError
from models.registry import LoadedModel
from playground.config import validate_text

LANGUAGE_NAMES = {"de": "German", "es": "Spanish"}
LANGUAGES = {code: LANGUAGE_NAMES[code] for code in adaptation.LANGUAGES}  # the languages training.adapt runs
BASE_MODELS = ("hat-tiny", "bpe-tiny", "byte-tiny")
LIVE_MODELS = ("hat-tiny", "bpe-tiny")  # the pair the live panel adapts side by side


class AdaptationError(UserError):
    """A user error of the Adaptation view (bad text, too many steps, a run already going)."""


# ------------------------------------------------------------------------------------ shipped runs


@dataclass(frozen=True)
class CurvePoint:
    """One evaluation of an adaptation run."""

    seconds: float  # CPU seconds of training so far (per thread)
    bytes_seen: int  # bytes of the new language read so far
    bpb: float  # bits per byte on the new language's validation split
    bpb_en: float | None  # bits per byte on the English validation prefix (forgetting)


def read_curve(log_path: Path) -> list[CurvePoint]:
    """The evaluations of one `training.adapt` training log (step 0 is the English model itself)."""
    with log_path.open(newline="") as f:
        return [
            CurvePoint(
                float(row["seconds"]),
                int(row["bytes_seen"]),
                float(row["val_bpb"]),
                float(row["val_bpb_en"]) if row.get("val_bpb_en") else None,
            )
            for row in csv.DictReader(f)
            if row.get("val_bpb")
        ]


def read_curves(
    language: str = "de", models: Sequence[str] = BASE_MODELS, logs_dir: Path = adaptation.LOGS_DIR
) -> dict[str, list[CurvePoint]]:
    """{base model: curve} for every model whose adaptation log (`<logs_dir>/<model>-<language>.csv`) is shipped."""
    if language not in LANGUAGES:
        raise AdaptationError(f"Unknown language {language!r}; the adaptation runs cover: {', '.join(LANGUAGES)}.")
    curves = {}
    for name in models:
        log = logs_dir / f"{adaptation.adapted_name(name, language)}.csv"
        if log.is_file():
            curve = read_curve(log)
            if curve:
                curves[name] = curve
    return curves


def time_to_reach(curve: Sequence[CurvePoint], threshold: float, axis: str = "seconds") -> float | None:
    """CPU seconds (or bytes read, `axis="bytes"`) at which the curve first reaches `threshold` bits
    per byte, interpolated linearly between the two evaluations around the crossing; None if never."""
    xs = [p.seconds if axis == "seconds" else float(p.bytes_seen) for p in curve]
    for i, p in enumerate(curve):
        if p.bpb <= threshold:
            if i == 0:
                return xs[0]
            prev = curve[i - 1]
            frac = (prev.bpb - threshold) / (prev.bpb - p.bpb)
            return xs[i - 1] + frac * (xs[i] - xs[i - 1])
    return None


def common_threshold(curves: dict[str, list[CurvePoint]], models: Sequence[str]) -> float:
    """The lowest German bits per byte that every one of `models` reaches in its run: the worst final
    (last evaluation) among them. No model is extrapolated, and the rule looks at no other split."""
    return max(min(p.bpb for p in curves[name]) for name in models)


def speedup(
    curves: dict[str, list[CurvePoint]],
    model: str = "hat-tiny",
    reference: str = "bpe-tiny",
    threshold: float | None = None,
) -> dict[str, Any]:
    """How much sooner `model` reaches `threshold` than `reference`: CPU seconds and bytes read of
    each, and the ratios reference / model (above 1: `model` is faster). `threshold` defaults to
    `common_threshold` of the two."""
    missing = [n for n in (model, reference) if n not in curves]
    if missing:
        raise AdaptationError(f"No adaptation run shipped for: {', '.join(missing)}.")
    if threshold is None:
        threshold = common_threshold(curves, [model, reference])
    seconds = {n: time_to_reach(curves[n], threshold) for n in (model, reference)}
    text = {n: time_to_reach(curves[n], threshold, "bytes") for n in (model, reference)}

    def ratio(d: dict[str, float | None]) -> float | None:
        a, b = d[model], d[reference]
        return None if a is None or b is None or a <= 0 else b / a

    return {
        "threshold_bpb": threshold,
        "model": model,
        "reference": reference,
        "seconds": seconds,
        "bytes_seen": text,
        "speedup_cpu_time": ratio(seconds),
        "speedup_text_read": ratio(text),
    }


def summary(curves: dict[str, list[CurvePoint]]) -> dict[str, Any]:
    """Start and end of every run: new-language and English bits per byte, time and text read."""
    out = {}
    for name, curve in curves.items():
        first, last = curve[0], curve[-1]
        out[name] = {
            "start_bpb": first.bpb,
            "final_bpb": last.bpb,
            "start_bpb_en": first.bpb_en,
            "final_bpb_en": last.bpb_en,
            "forgetting_bpb_en": None if first.bpb_en is None or last.bpb_en is None else last.bpb_en - first.bpb_en,
            "cpu_seconds": last.seconds,
            "bytes_seen": last.bytes_seen,
        }
    return out


def thresholds_grid(curves: dict[str, list[CurvePoint]], models: Sequence[str], n: int = 8) -> list[float]:
    """`n` thresholds from the worst starting point every model has left behind down to their common
    threshold: the range over which every model's time to reach is measured, not extrapolated."""
    high = min(max(p.bpb for p in curves[m][1:] or curves[m]) for m in models)
    low = common_threshold(curves, models)
    if not high > low:
        return [low]
    return [float(x) for x in np.linspace(high, low, n)]


def report(language: str = "de", logs_dir: Path = adaptation.LOGS_DIR) -> dict[str, Any]:
    """The comparison of the shipped adaptation runs: what `bench/adaptation.py` writes."""
    curves = read_curves(language, logs_dir=logs_dir)
    if not curves:
        raise AdaptationError(f"No adaptation run for {language!r} is shipped (python -m training.adapt).")
    result: dict[str, Any] = {
        "language": language,
        "source": f"assets/reports/adaptation/<model>-{language}.csv (training.adapt training logs)",
        "curves": {name: [asdict(p) for p in curve] for name, curve in curves.items()},
        "summary": summary(curves),
    }
    pairs = [("hat-tiny", "bpe-tiny"), ("hat-tiny", "byte-tiny")]
    result["speedup"] = [speedup(curves, a, b) for a, b in pairs if a in curves and b in curves]
    if "hat-tiny" in curves and "bpe-tiny" in curves:
        grid = thresholds_grid(curves, ["hat-tiny", "bpe-tiny"])
        result["speedup_by_threshold"] = [speedup(curves, threshold=t) for t in grid]
    return result


# ---------------------------------------------------------------------------------- live adaptation


@dataclass(frozen=True)
class LiveLimits:
    """Bounds of one live adaptation run (the panel shows them beside its controls)."""

    min_chars: int = 200
    max_chars: int = 20_000
    max_steps: int = 60
    default_steps: int = 20
    window_bytes: int = 256
    batch: int = 8
    max_new_bytes: int = 300
    max_sessions: int = 4  # adapters kept in memory at once, across all users (oldest dropped first)


@dataclass
class LiveCopy:
    """A private, trainable copy of a shipped model."""

    name: str
    family: str
    model: Any
    tokenizer: Any
    losses: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class LiveStep:
    """Progress of a live run after one step of every copy."""

    step: int
    steps: int
    losses: dict[str, float]  # this step's training loss (bits per byte) per model
    seconds: float


def _loaded_copy(lm: LoadedModel) -> LiveCopy:
    model = copy.deepcopy(lm.model).float()  # the registry's model stays as it is
    for p in model.parameters():
        p.requires_grad_(True)
    return LiveCopy(lm.name, lm.spec.family, model, lm.tokenizer)


class LiveAdapter:
    """One browser session's adapted copies. One run at a time: a second `train` while the first is
    going raises `AdaptationError`."""

    def __init__(
        self,
        names: Sequence[str] = LIVE_MODELS,
        limits: LiveLimits | None = None,
        loader: Callable[[str], LoadedModel] = registry.load_model,
    ) -> None:
        self.names = list(names)
        self.limits = limits or LiveLimits()
        self._loader = loader
        self._copies: dict[str, LiveCopy] = {}
        self._running = threading.Lock()
        self.trained_on: str | None = None
        self.steps_done = 0

    @property
    def running(self) -> bool:
        return self._running.locked()

    def check_text(self, text: str | None) -> str:
        lim = self.limits
        text = validate_text(text, lim.max_chars, AdaptationError, "the live panel's bound")
        if len(text) < lim.min_chars:
            raise AdaptationError(
                f"Paste at least {lim.min_chars:,} characters of the new language to train on "
                f"(this text has {len(text):,})."
            )
        return text

    def check_steps(self, steps: Any) -> int:
        try:
            n = int(steps)
        except (TypeError, ValueError):
            raise AdaptationError("Steps must be a whole number.") from None
        if not 1 <= n <= self.limits.max_steps:
            raise AdaptationError(f"Steps must be between 1 and {self.limits.max_steps} (the live panel's bound).")
        return n

    def train(self, text: str | None, steps: Any) -> Iterator[LiveStep]:
        """Fresh copies of the shipped models, trained on `text` for `steps` steps each; yields after
        every step. The copies replace the session's earlier ones."""
        text, steps = self.check_text(text), self.check_steps(steps)
        if not self._running.acquire(blocking=False):
            raise AdaptationError("A training run is already going in this session; wait for it to finish.")
        try:
            self._copies, self.trained_on, self.steps_done = {}, None, 0
            copies = {name: _loaded_copy(self._loader(name)) for name in self.names}
            runs = {
                name: adaptation.continue_training(
                    c.model,
                    c.tokenizer,
                    c.family,
                    text,
                    steps,
                    window=self.limits.window_bytes,
                    batch=self.limits.batch,
                )
                for name, c in copies.items()
            }
            start = time.perf_counter()
            for step in range(1, steps + 1):
                losses = {}
                for name, run in runs.items():  # the models take turns, so both curves grow together
                    _, loss = next(run)
                    copies[name].losses.append(loss)
                    losses[name] = loss
                yield LiveStep(step, steps, losses, time.perf_counter() - start)
            for run in runs.values():
                run.close()
            self._copies, self.trained_on, self.steps_done = copies, text, steps
        finally:
            self._running.release()

    def _require_copies(self) -> dict[str, LiveCopy]:
        if not self._copies:
            raise AdaptationError("Train the copies first (press Adapt).")
        return self._copies

    def generate(self, prompt: str | None, max_new_bytes: int = 120, seed: int = 0) -> dict[str, dict[str, str]]:
        """{model: {"shipped": text, "adapted": text}}: greedy continuations of `prompt`."""
        from models.generate import generate_with

        copies = self._require_copies()
        prompt = validate_text(prompt, self.limits.max_chars, AdaptationError, "the live panel's bound")
        if not 1 <= int(max_new_bytes) <= self.limits.max_new_bytes:
            raise AdaptationError(f"New bytes must be between 1 and {self.limits.max_new_bytes}.")
        out = {}
        for name, c in copies.items():
            shipped = self._loader(name)
            out[name] = {
                "shipped": generate_with(shipped.model, shipped.tokenizer, prompt, int(max_new_bytes), 0.0, seed=seed),
                "adapted": generate_with(c.model, c.tokenizer, prompt, int(max_new_bytes), 0.0, seed=seed),
            }
        return out

    def score(self, text: str | None) -> dict[str, dict[str, float]]:
        """{model: {"shipped": bits per byte, "adapted": bits per byte}} of `text` (every byte counted)."""
        from models.scoring import score_with

        copies = self._require_copies()
        text = validate_text(text, self.limits.max_chars, AdaptationError, "the live panel's bound")
        out = {}
        for name, c in copies.items():
            shipped = self._loader(name)
            out[name] = {
                "shipped": score_with(shipped.model, shipped.tokenizer, text).bpb,
                "adapted": score_with(c.model, c.tokenizer, text).bpb,
            }
        return out


class LiveSessions:
    """At most `limits.max_sessions` adapters in memory, one per session id, oldest dropped first."""

    def __init__(self, limits: LiveLimits | None = None, factory: Callable[[], LiveAdapter] | None = None) -> None:
        self.limits = limits or LiveLimits()
        self._factory = factory or (lambda: LiveAdapter(limits=self.limits))
        self._adapters: OrderedDict[str, LiveAdapter] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session_id: str) -> LiveAdapter:
        with self._lock:
            if session_id in self._adapters:
                self._adapters.move_to_end(session_id)
                return self._adapters[session_id]
            while len(self._adapters) >= self.limits.max_sessions:
                oldest = next((k for k, a in self._adapters.items() if not a.running), None)
                if oldest is None:
                    raise AdaptationError(
                        f"{self.limits.max_sessions} live adaptations are running for other users; try again shortly."
                    )
                del self._adapters[oldest]
            adapter = self._adapters[session_id] = self._factory()
            return adapter

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._adapters.pop(session_id, None)

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._adapters

    def __len__(self) -> int:
        return len(self._adapters)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Compare the shipped adaptation runs (training/adapt.py logs).")
    ap.add_argument("--language", default="de", choices=list(LANGUAGES))
    ap.add_argument("--json", action="store_true", help="print the whole comparison as JSON")
    args = ap.parse_args(argv)
    try:
        result = report(args.language)
    except AdaptationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    for name, s in result["summary"].items():
        print(
            f"{name}: {LANGUAGES[args.language]} {s['start_bpb']:.3f} -> {s['final_bpb']:.3f} bits/byte, "
            f"English {s['start_bpb_en']:.3f} -> {s['final_bpb_en']:.3f}, {s['cpu_seconds'] / 60:.0f} CPU-min"
        )
    for s in result["speedup"]:
        ratio = s["speedup_cpu_time"]
        print(
            f"{s['model']} reaches {s['threshold_bpb']:.3f} bits/byte "
            + (f"{ratio:.2f}x as fast as {s['reference']}" if ratio else f"(not reached by both: {s['seconds']})")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
