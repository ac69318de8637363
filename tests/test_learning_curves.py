"""bench/learning_curves.py compares training logs at equal time and equal text, without extrapolating."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import load_bench


def _write_log(root: Path, name: str, rows: list[tuple[float, float, float | None]]) -> None:
    """A training log in `training.train`'s format (evaluations only on some steps, as there)."""
    folder = root / "assets" / "models" / name
    folder.mkdir(parents=True)
    lines = ["step,seconds,bytes_seen,train_loss_bpb,val_bpb,lr"]
    for step, (seconds, bytes_seen, val) in enumerate(rows, start=1):
        lines.append(f"{step},{seconds},{int(bytes_seen)},3.0,{'' if val is None else val},0.001")
    (folder / "train_log.csv").write_text("\n".join(lines) + "\n")


def test_curves_compare_at_equal_seconds_and_equal_text(tmp_path: Path) -> None:
    bench = load_bench("learning_curves")
    # a: 1,000 bytes per second, loses 0.5 bits per doubling of text; b: twice as fast, 0.25 per doubling.
    a = [(s, 1000.0 * s, 10 - 0.5 * math.log2(1000.0 * s)) for s in (600.0, 1200.0, 2400.0)]
    b = [(s, 2000.0 * s, 8 - 0.25 * math.log2(2000.0 * s)) for s in (600.0, 1200.0, 2400.0)]
    _write_log(tmp_path, "a", [(300.0, 3e5, None), *a])
    _write_log(tmp_path, "b", b[:2] + [(1800.0, 3.6e6, None)] + b[2:])
    r = bench.report(bench.read_curves(["a", "b"], root=tmp_path), "b")

    assert [row["seconds"] for row in r["at_seconds"]] == [600.0, 1200.0, 1800.0, 2400.0]
    at_1800 = r["at_seconds"][2]  # halfway between the 1200 s and 2400 s evaluations of both
    assert at_1800["bpb"]["a"] == pytest.approx((a[1][2] + a[2][2]) / 2, abs=1e-4)
    assert at_1800["ratio_to_b"]["a"] == pytest.approx(at_1800["bpb"]["a"] / at_1800["bpb"]["b"], abs=1e-3)

    # Equal text: from the larger first point (b's 1.2 MB) to the smaller last one (a's 2.4 MB).
    assert [row["bytes"] for row in r["at_bytes"]] == [1.2e6, 2.4e6]
    for row in r["at_bytes"]:  # both curves are straight in log bytes, so interpolation is exact
        assert row["bpb"]["a"] == pytest.approx(10 - 0.5 * math.log2(row["bytes"]), abs=1e-4)
        assert row["bpb"]["b"] == pytest.approx(8 - 0.25 * math.log2(row["bytes"]), abs=1e-4)

    assert r["gain_per_doubling"]["a"] == {"first_half": 0.5, "second_half": 0.5}
    assert r["gain_per_doubling"]["b"] == {"first_half": 0.25, "second_half": 0.25}
    assert r["final"]["a"] == {"seconds": 2400.0, "bytes_seen": 2400000, "bpb": pytest.approx(a[2][2])}


def test_interpolation_never_extrapolates() -> None:
    bench = load_bench("learning_curves")
    assert bench.interpolate([1.0, 2.0], [4.0, 2.0], 1.5) == 3.0
    assert bench.interpolate([1.0, 2.0], [4.0, 2.0], 0.5) is None
    assert bench.interpolate([1.0, 2.0], [4.0, 2.0], 2.5) is None


def test_shipped_logs_give_every_model_a_curve() -> None:
    bench = load_bench("learning_curves")
    r = bench.report(bench.read_curves(list(bench.DEFAULT_MODELS)), "bpe-tiny")
    assert set(r["final"]) == set(bench.DEFAULT_MODELS)
    assert r["at_seconds"] and r["at_bytes"]
    last = r["at_seconds"][-1]
    assert last["ratio_to_bpe-tiny"]["hat-tiny"] == pytest.approx(
        last["bpb"]["hat-tiny"] / last["bpb"]["bpe-tiny"], abs=1e-3
    )


def test_figure_draws_each_curve_against_time_and_text() -> None:
    bench = load_bench("learning_curves")
    curves = {"a": [(600.0, 6e5, 3.0), (1200.0, 1.2e6, 2.5)], "b": [(600.0, 1.2e6, 2.8), (1200.0, 2.4e6, 2.4)]}
    fig = bench.figure(curves)
    assert [t.name for t in fig.data] == ["a", "a", "b", "b"]
    assert list(fig.data[0].x) == [10.0, 20.0] and list(fig.data[1].x) == [0.6, 1.2]  # minutes; MB
    assert list(fig.data[3].y) == [2.8, 2.4]


def test_missing_or_phased_logs_are_refused(tmp_path: Path) -> None:
    bench = load_bench("learning_curves")
    with pytest.raises(SystemExit, match="no training log for: a"):
        bench.read_curves(["a"], root=tmp_path)
    _write_log(tmp_path, "a", [(600.0, 6e5, 3.0)])
    (tmp_path / "assets" / "models" / "a" / "train_log_phase1.csv").write_text("step\n")
    with pytest.raises(SystemExit, match="several phases"):
        bench.read_curves(["a"], root=tmp_path)
