"""Render time of the attention view for inputs up to 512 units per axis (and a binned 1,024).

    python bench/attention.py [--models hat-tiny,bpe-tiny,byte-tiny,smollm2-135m] [--units 64,128,256,512,1024]
                              [--repeats 3] [--no-browser] [--random-tiny]

For each model and target size, the text (the example texts, repeated) is cut so the model's
largest level has about that many units per axis. Reported, in seconds:

- `compute_s`: the forward pass with attention weights (`compute_attention`; once per text, cached
  by the view afterwards);
- `server_s[axes]`: one heatmap on unit or character axes, built and serialised as gradio sends it
  (`core.heatmap` + `heatmap_figure` + `Figure.to_json`), median of `--repeats`;
- `browser_s[axes]`: `Plotly.newPlot` of that JSON in headless chromium (plotly.js of the installed
  plotly package), median of `--repeats`;
- `render_s[axes]`: server + browser, the time from a control change to a drawn heatmap;
- `view_s`: the whole event of the tab (`playground.ui.attention.render`: heatmap, head grid
  thumbnails, per-layer profile) for that one model, warm cache, median of `--repeats`.

With `--random-tiny`, hat-tiny / bpe-tiny / byte-tiny that are not trained yet are replaced by
randomly initialised models of the same architecture (`models.tiny.build`), flagged `"random": true`
(render time depends on the sizes only, not on the weights). Prints JSON.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import models  # noqa: F401  (sets OMP_WAIT_POLICY before torch is imported)
from models import registry
from playground import attention as core
from playground.config import AppConfig
from playground.ui import attention as ui

DEFAULT_MODELS = "hat-tiny,bpe-tiny,byte-tiny,smollm2-135m"
DEFAULT_UNITS = "64,128,256,512,1024"


def corpus() -> str:
    parts = [p.read_text(encoding="utf-8").strip() for p in sorted((REPO / "assets" / "examples").glob("*.txt"))]
    return "\n".join(parts) or "The quick brown fox jumps over the lazy dog."


def largest_level(result: core.AttentionResult) -> int:
    return max(level.n_units for level in result.levels.values())


def text_with_units(count: Callable[[str], int], target: int, source: str) -> str:
    """The longest prefix of `source` (repeated as needed) whose unit count is at most `target`."""
    while count(source) < target:
        source = source + "\n" + source
    lo, hi = 1, len(source)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(source[:mid]) <= target:
            lo = mid
        else:
            hi = mid - 1
    return source[:lo]


def unit_counter(lm: Any) -> Callable[[str], int]:
    """Units of the model's largest level, without running the model."""
    if lm.spec.family == "hat":
        return lambda t: len(t.encode("utf-8")) + len(lm.model.split(t))  # encoder: bytes + [WORD]s
    return lambda t: 1 + len(lm.tokenizer(t, add_special_tokens=False)["input_ids"])  # [BOS] + tokens


def median(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class BrowserTimer:
    """Times `Plotly.newPlot` of a figure JSON in headless chromium."""

    def __init__(self) -> None:
        import plotly
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        self._browser = self._pw.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        self.page = self._browser.new_page(viewport={"width": 1400, "height": 1000})
        js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
        self.page.set_content("<html><body><div id='plot' style='width:1300px'></div></body></html>")
        self.page.add_script_tag(path=str(js))

    def time(self, figure_json: str) -> float:
        return self.page.evaluate(
            """async (spec) => {
                const fig = JSON.parse(spec);
                const el = document.getElementById('plot');
                Plotly.purge(el);
                const t0 = performance.now();
                await Plotly.newPlot(el, fig.data, fig.layout, {responsive: true});
                await new Promise((r) => requestAnimationFrame(() => r()));
                return (performance.now() - t0) / 1000;
            }""",
            figure_json,
        )

    def close(self) -> None:
        self._browser.close()
        self._pw.stop()


def random_tiny(name: str, folder: Path) -> str:
    """Save a randomly initialised model with the architecture of a trained tiny model; its hf: name."""
    from models import tiny

    tokenizer = None
    if name == "bpe-tiny":
        sample = folder / "sample.txt"
        sample.write_text(corpus() * 20, encoding="utf-8")
        tokenizer = tiny.train_bpe_tokenizer(sample)
    model, tok = tiny.build(name, tokenizer)
    model.save_pretrained(folder / name)
    if tok is not None:
        tok.save_pretrained(folder / name)
    return f"hf:{folder / name}"


def serve_heatmap(result: core.AttentionResult, level: str | None, axes: str) -> tuple[str, int]:
    """What the view does for one heatmap: aggregate the last layer, project/bin, build, serialise."""
    lvl = result.level(level)
    heat = core.heatmap(result, level, lvl.n_layers - 1, "mean", 0, axes)
    return ui.heatmap_figure([heat]).to_json(), int(heat.matrix.shape[0])


def bench_model(
    name: str, shown: str, targets: list[int], repeats: int, browser: BrowserTimer | None
) -> dict[str, Any]:
    start = time.perf_counter()
    lm = registry.load_model(name)
    out: dict[str, Any] = {"load_s": round(time.perf_counter() - start, 2), "family": lm.spec.family, "sizes": []}
    count = unit_counter(lm)
    config = AppConfig(models=[name], max_text_chars=100_000)
    source = corpus()
    for target in targets:
        text = text_with_units(count, target, source)
        start = time.perf_counter()
        try:
            result = core.compute_attention(lm, text)
        except core.AttentionInputError as err:
            out["sizes"].append({"target_units": target, "error": str(err)})
            continue
        compute_s = time.perf_counter() - start
        core._CACHE.get(name, text, lambda result=result: result)  # what the view would have cached
        level = "encoder" if lm.spec.family == "hat" else None
        lvl = result.level(level)
        row: dict[str, Any] = {
            "target_units": target,
            "chars": len(text),
            "level": lvl.name,
            "units": lvl.n_units,
            "levels": {k: v.n_units for k, v in result.levels.items()},
            "compute_s": round(compute_s, 3),
            "server_s": {},
            "browser_s": {},
            "render_s": {},
        }
        for axes in ("units", "chars"):
            figure_json, shown_units = serve_heatmap(result, level, axes)
            row["server_s"][axes] = round(median(functools.partial(serve_heatmap, result, level, axes), repeats), 3)
            row[f"shown_{axes}"] = shown_units
            row[f"json_bytes_{axes}"] = len(figure_json)
            if browser is not None:
                row["browser_s"][axes] = round(statistics.median(browser.time(figure_json) for _ in range(repeats)), 3)
                row["render_s"][axes] = round(row["server_s"][axes] + row["browser_s"][axes], 3)
        row["view_s"] = round(
            median(
                lambda text=text, level=level: ui.render(
                    config, text, name, None, level or "backbone", "units", "mean", 0, 0, "sqrt", 0
                ),
                repeats,
            ),
            3,
        )
        out["sizes"].append(row)
        print(f"{shown}: {row['units']} units -> {row.get('render_s') or row['server_s']}", file=sys.stderr)
    core._CACHE.clear()
    registry.default_registry().unload(name)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--units", default=DEFAULT_UNITS, help="target units per axis, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true", help="skip the chromium (plotly.js) timing")
    parser.add_argument("--random-tiny", action="store_true", help="stand-ins for untrained tiny models")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    registry.configure(device="cpu")
    targets = [int(u) for u in args.units.split(",") if u.strip()]
    browser = None if args.no_browser else BrowserTimer()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="attention-bench-") as tmp:
        for shown in [n.strip() for n in args.models.split(",") if n.strip()]:
            name = shown
            spec = registry.get_spec(name)
            random = False
            if not spec.available:
                if args.random_tiny and shown in ("hat-tiny", "bpe-tiny", "byte-tiny"):
                    name, random = random_tiny(shown, Path(tmp)), True
                else:
                    results[shown] = {"error": spec.unavailable_reason}
                    continue
            results[shown] = {"random": random, **bench_model(name, shown, targets, args.repeats, browser)}
    if browser is not None:
        browser.close()
    report = {
        "bench": "attention view render time",
        "max_axis_units": core.MAX_AXIS_UNITS,
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "models": results,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
