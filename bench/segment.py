"""Response time of the token-boundaries view for a 1,000-character text, once models are loaded.

    python bench/segment.py [--chars 1000] [--repeats 5] [--segmenters bytes,hat-words,...]

Prints JSON: per segmenter, the first call (tokenizer / byte model load included) and the median
of `--repeats` warm calls of `playground.segment.segment_one`; then the whole view event
(`playground.ui.segment.run_segment`: all segmenters, HTML, table and figures), clean and with the
perturbed copy. The view's entropy cache is cleared before every call, as for a new text. The
default segmenters are the built-ins plus every available registered model. Wall and CPU seconds
are both reported: on a shared machine wall time also measures the neighbours.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import models  # noqa: F401  (sets OMP_WAIT_POLICY before torch is imported)
from models import registry
from playground import segment as core


def bench_text(n_chars: int) -> str:
    """A mixed text (English, typos, German, code, numbers, emoji, CJK) cut to ``n_chars``."""
    parts = [t for _, t in core.load_examples()]
    text = " ".join(parts)
    while len(text) < n_chars:
        text += " " + text
    return text[:n_chars]


def median_seconds(fn: object, repeats: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of ``repeats`` calls. CPU time is reported too because this
    machine is shared (trainings run beside it): wall time then measures the neighbours."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()  # type: ignore[operator]
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chars", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--segmenters", default=None, help="comma-separated (default: built-ins + available models)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    registry.configure(device=args.device)
    available = [s.name for s in registry.list_models(available_only=True)]
    names = args.segmenters.split(",") if args.segmenters else core.available_segmenters(available)
    entropy_model = core.DEFAULT_ENTROPY_MODEL
    if entropy_model not in available:
        names = [n for n in names if n != "entropy-patches"]  # no byte model to take entropy from
    text = bench_text(args.chars)

    result: dict[str, object] = {
        "text_chars": len(text),
        "text_bytes": len(text.encode("utf-8")),
        "repeats": args.repeats,
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
        "segmenters": {},
    }
    per: dict[str, dict[str, object]] = {}
    for name in names:

        def call(name: str = name) -> core.Segmentation:
            core._cached_entropy.cache_clear()  # time the byte model, not the view's entropy cache
            return core.segment_one(text, name, entropy_model=entropy_model)

        start = time.perf_counter()
        try:
            seg = call()
        except core.SegmentError as err:
            per[name] = {"error": str(err)}
            continue
        first = time.perf_counter() - start
        wall, cpu = median_seconds(call, args.repeats)
        per[name] = {
            "units": seg.count,
            "first_call_seconds": round(first, 4),
            "warm_median_seconds": round(wall, 5),
            "warm_median_cpu_seconds": round(cpu, 5),
        }
    result["segmenters"] = per

    # The whole event as the UI runs it (rendering and figures included).
    from playground.config import AppConfig
    from playground.ui import segment as ui

    ok = [n for n in names if "error" not in per[n]]
    config = AppConfig(models=[n for n in available if n in ok], max_text_chars=max(len(text), 1000))
    view: dict[str, object] = {"segmenters": ok}
    for label, perturb in (("clean", False), ("clean_and_perturbed", True)):

        def event(perturb: bool = perturb) -> object:
            core._cached_entropy.cache_clear()
            return ui.run_segment(text, ok, 16, core.DEFAULT_ENTROPY_THRESHOLD, False, perturb, 0, config=config)

        event()  # warm (perturbed text may need a first pass too)
        wall, cpu = median_seconds(event, args.repeats)
        view[f"{label}_median_seconds"] = round(wall, 4)
        view[f"{label}_median_cpu_seconds"] = round(cpu, 4)
    result["view"] = view
    result["target_seconds"] = 1.0
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
