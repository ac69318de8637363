"""How the shipped tiny models' validation bits per byte fell during training, side by side, as JSON.

    python bench/learning_curves.py [--models hat-tiny,bpe-tiny,byte-tiny] [--reference bpe-tiny] [--out F]
        [--figure assets/figures/learning_curves.png]

Reads each model's committed training log (`assets/models/<name>/train_log.csv`, written by
`training.train`: CPU seconds, bytes of text read, bits per byte on the fixed 64 KB head of the
validation split at every evaluation) and reports:

- `at_seconds`: every model's bits per byte at the same CPU seconds (each curve linearly
  interpolated between its evaluations; only where every curve has been measured), and each
  model's ratio to `--reference`. This is the issue's comparison (equal training time) at every
  budget up to the one trained, not only at the end.
- `at_bytes`: the same at equal text read (interpolated in log bytes): how well each model uses a
  byte of training text, whatever its speed.
- `gain_per_doubling`: bits per byte gained per doubling of text read, over the first and the
  second half of each run's log-text range (least squares on log2 bytes).

`--figure` also draws the curves (bits per byte against CPU minutes and against text read) as a
PNG (plotly + kaleido, which drives the system chromium). No model is run; the figures are those
the training runs logged. All runs share one schedule shape (warm-up, cosine decay to the end of
the budget), so the late points include the decay.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODELS = ("hat-tiny", "bpe-tiny", "byte-tiny")


def read_curve(log_path: Path) -> list[tuple[float, float, float]]:
    """(CPU seconds, bytes read, validation bits per byte) at every evaluation in a training log."""
    with log_path.open(newline="") as f:
        return [
            (float(row["seconds"]), float(row["bytes_seen"]), float(row["val_bpb"]))
            for row in csv.DictReader(f)
            if row.get("val_bpb")
        ]


def interpolate(xs: list[float], ys: list[float], x: float) -> float | None:
    """Linear interpolation of y at x; None outside [xs[0], xs[-1]] (no extrapolation)."""
    y = float(np.interp(x, xs, ys, left=np.nan, right=np.nan)) if xs else math.nan
    return None if math.isnan(y) else y


def slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of ys on xs; None with fewer than two distinct xs."""
    return float(np.polyfit(xs, ys, 1)[0]) if len(set(xs)) >= 2 else None


def gain_per_doubling(curve: list[tuple[float, float, float]]) -> dict[str, float | None]:
    """Bits per byte gained per doubling of text read, over the lower and upper half of log2(bytes)."""
    logs = [math.log2(b) for _, b, _ in curve]
    middle = (logs[0] + logs[-1]) / 2
    halves = {
        "first_half": [(x, y) for x, (_, _, y) in zip(logs, curve) if x <= middle],
        "second_half": [(x, y) for x, (_, _, y) in zip(logs, curve) if x >= middle],
    }
    out: dict[str, float | None] = {}
    for name, points in halves.items():
        s = slope([x for x, _ in points], [y for _, y in points])
        out[name] = None if s is None else round(-s, 4)
    return out


def compare(
    curves: dict[str, list[tuple[float, float, float]]], reference: str, axis: str, grid: list[float]
) -> list[dict]:
    """Each model's bits per byte (and ratio to the reference) at every grid point all curves cover."""
    # Bytes are interpolated in log2 bytes: the curves are near-linear there.
    scale = math.log2 if axis == "bytes" else float
    series = {
        name: ([scale(p[0 if axis == "seconds" else 1]) for p in curve], [p[2] for p in curve])
        for name, curve in curves.items()
    }
    rows = []
    for x in grid:
        values = {name: interpolate(xs, ys, scale(x)) for name, (xs, ys) in series.items()}
        if any(v is None for v in values.values()):
            continue
        row: dict = {axis: round(x, 1), "bpb": {k: round(v, 4) for k, v in values.items()}}
        row[f"ratio_to_{reference}"] = {
            k: round(v / values[reference], 4) for k, v in values.items() if k != reference
        }
        rows.append(row)
    return rows


def read_curves(models: list[str], root: Path = ROOT) -> dict[str, list[tuple[float, float, float]]]:
    """Each shipped model's curve, from `<root>/assets/models/<name>/train_log.csv`."""
    folders = {name: root / "assets" / "models" / name for name in models}
    missing = [name for name, folder in folders.items() if not (folder / "train_log.csv").is_file()]
    if missing:
        raise SystemExit(f"no training log for: {', '.join(missing)} (shipped: {', '.join(DEFAULT_MODELS)})")
    # A run continued with --init-from restarts its clock: its train_log.csv holds the last phase only.
    phased = [name for name, folder in folders.items() if (folder / "train_log_phase1.csv").is_file()]
    if phased:
        raise SystemExit(f"trained in several phases, so no single curve: {', '.join(phased)}")
    return {name: read_curve(folder / "train_log.csv") for name, folder in folders.items()}


def report(curves: dict[str, list[tuple[float, float, float]]], reference: str) -> dict:
    """The curves compared at equal CPU seconds and equal text read, and their gains per doubling."""
    models = list(curves)
    empty = [name for name, curve in curves.items() if not curve]
    if empty:
        raise SystemExit(f"no validation evaluations in the training log of: {', '.join(empty)}")
    if reference not in curves:
        raise SystemExit(f"--reference {reference!r} is not among --models ({', '.join(models)})")
    # Grids over the range every curve covers: every 600 CPU-seconds, and doublings of text read;
    # each ends at the shortest run's last evaluation.
    first_second = max(c[0][0] for c in curves.values())
    last_second = min(c[-1][0] for c in curves.values())
    seconds_grid = [600.0 * k for k in range(math.ceil(first_second / 600), int(last_second // 600) + 1)]
    if not seconds_grid or last_second - seconds_grid[-1] > 1.0:
        seconds_grid.append(last_second)
    low = max(c[0][1] for c in curves.values())
    high = min(c[-1][1] for c in curves.values())
    bytes_grid = [low * 2**k for k in range(int(math.log2(high / low)) + 1)]
    if high / bytes_grid[-1] > 1.01:
        bytes_grid.append(high)
    return {
        "source": "assets/models/<name>/train_log.csv (bits per byte on the 64 KB head of the validation split)",
        "final": {
            name: {"seconds": c[-1][0], "bytes_seen": int(c[-1][1]), "bpb": c[-1][2]} for name, c in curves.items()
        },
        "at_seconds": compare(curves, reference, "seconds", seconds_grid),
        "at_bytes": compare(curves, reference, "bytes", bytes_grid),
        "gain_per_doubling": {name: gain_per_doubling(c) for name, c in curves.items()},
    }


def figure(curves: dict[str, list[tuple[float, float, float]]]) -> Any:
    """Validation bits per byte against CPU minutes (left) and against MB of text read (right, log)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("equal training time", "equal text read"))
    colours = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")
    for i, (name, curve) in enumerate(curves.items()):
        line = {"color": colours[i % len(colours)]}
        bpb = [p[2] for p in curve]
        fig.add_trace(go.Scatter(x=[p[0] / 60 for p in curve], y=bpb, name=name, line=line), row=1, col=1)
        fig.add_trace(
            go.Scatter(x=[p[1] / 1e6 for p in curve], y=bpb, name=name, line=line, showlegend=False), row=1, col=2
        )
    fig.update_xaxes(title_text="CPU minutes", row=1, col=1)
    fig.update_xaxes(title_text="MB of text read", type="log", row=1, col=2)
    fig.update_yaxes(title_text="bits per byte, 64 KB validation prefix", row=1, col=1)
    fig.update_layout(template="plotly_white", title="Validation bits per byte during training (training logs)")
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated shipped model names")
    ap.add_argument("--reference", default="bpe-tiny", help="the model every ratio divides by")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument("--figure", type=Path, help="also draw the curves as a PNG here")
    args = ap.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    curves = read_curves(models)
    result = report(curves, args.reference)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if args.figure:
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        figure(curves).write_image(str(args.figure), width=1100, height=450, scale=1)


if __name__ == "__main__":
    main()
