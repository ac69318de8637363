"""Adaptation: the continued-training loop, the live panel's copies and bounds, the shipped-run measures."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
from test_train import TINY, _run

from models import adaptation
from models.registry import Registry
from models.scoring import score_with
from playground import adaptation as core
from training import adapt, train

GERMAN = (
    "Der Zug fuhr langsam in den Bahnhof ein. Auf dem Bahnsteig warteten viele Menschen mit Koffern, "
    "Taschen und Fahrrädern. Eine Frau rief ihren Kindern etwas zu, und ein Schaffner pfiff. "
) * 6


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}


# ---- the training loop


@pytest.mark.parametrize("family", ["hat", "bpe"])
def test_continued_training_lowers_the_loss_on_the_adaptation_text(
    family: str, tiny_hat_dir: Path, tiny_bpe_dir: Path
) -> None:
    reg = Registry(device="cpu")
    lm = reg.load_model(f"hf:{tiny_hat_dir if family == 'hat' else tiny_bpe_dir}")
    model = core._loaded_copy(lm).model
    before = score_with(model, lm.tokenizer, GERMAN).bpb
    losses = [loss for _, loss in adaptation.continue_training(model, lm.tokenizer, family, GERMAN, 12, peak_lr=3e-3)]
    after = score_with(model, lm.tokenizer, GERMAN).bpb
    assert len(losses) == 12
    assert after < before - 0.1, (before, after)
    assert not model.training, "handed back in eval mode"


def test_text_windows_of_a_short_text_are_the_whole_text() -> None:
    batch = next(adaptation.text_windows("kurz", 256, 3, seed=0))
    assert batch == ["kurz"] * 3
    long = next(adaptation.text_windows(GERMAN, 64, 4, seed=0))
    assert all(w in GERMAN and 56 <= len(w.encode()) <= 64 for w in long)


# ---- the live panel


@pytest.fixture
def live_pair(tiny_hat_dir: Path, tiny_bpe_dir: Path) -> tuple[core.LiveAdapter, Registry, list[str]]:
    reg = Registry(device="cpu")
    names = [f"hf:{tiny_hat_dir}", f"hf:{tiny_bpe_dir}"]
    return core.LiveAdapter(names, core.LiveLimits(min_chars=50, max_steps=5), loader=reg.load_model), reg, names


def test_live_adaptation_never_touches_the_shipped_models(
    live_pair: tuple[core.LiveAdapter, Registry, list[str]], tiny_hat_dir: Path, tiny_bpe_dir: Path
) -> None:
    adapter, reg, names = live_pair
    files = {d: _digest(d) for d in (tiny_hat_dir, tiny_bpe_dir)}
    shipped = {n: {k: v.clone() for k, v in reg.load_model(n).model.state_dict().items()} for n in names}
    steps = list(adapter.train(GERMAN, 3))
    assert [s.step for s in steps] == [1, 2, 3] and set(steps[-1].losses) == set(names)
    for name in names:
        now = reg.load_model(name).model.state_dict()
        assert all((now[k] == v).all() for k, v in shipped[name].items()), f"{name} changed in memory"
        adapted = adapter._copies[name].model.state_dict()
        assert any((adapted[k] != v).any() for k, v in shipped[name].items()), "the copy did train"
    assert {d: _digest(d) for d in files} == files, "no file written"
    scores = adapter.score(GERMAN)
    assert all(s["adapted"] < s["shipped"] for s in scores.values())
    out = adapter.generate("Der Zug", max_new_bytes=12)
    assert set(out) == set(names) and all(set(v) == {"shipped", "adapted"} for v in out.values())


def test_live_panel_bounds_steps_and_text(live_pair: tuple[core.LiveAdapter, Registry, list[str]]) -> None:
    adapter = live_pair[0]
    with pytest.raises(core.AdaptationError, match="between 1 and 5"):
        next(adapter.train(GERMAN, 6))
    with pytest.raises(core.AdaptationError, match="between 1 and 5"):
        next(adapter.train(GERMAN, 0))
    with pytest.raises(core.AdaptationError, match="at least 50 characters"):
        next(adapter.train("zu kurz", 2))
    with pytest.raises(core.AdaptationError, match="enter some text"):
        next(adapter.train("   ", 2))
    with pytest.raises(core.AdaptationError, match="Train the copies first"):
        adapter.score(GERMAN)


def test_one_run_per_session(live_pair: tuple[core.LiveAdapter, Registry, list[str]]) -> None:
    adapter = live_pair[0]
    first = adapter.train(GERMAN, 3)
    next(first)  # the first run is going
    assert adapter.running
    with pytest.raises(core.AdaptationError, match="already going"):
        next(adapter.train(GERMAN, 2))
    first.close()  # the user cancels (or disconnects): the run ends and frees the session
    assert not adapter.running
    assert [s.step for s in adapter.train(GERMAN, 2)] == [1, 2]


def test_sessions_are_bounded_and_dropped() -> None:
    sessions = core.LiveSessions(core.LiveLimits(max_sessions=2), factory=lambda: core.LiveAdapter([]))
    a = sessions.get("a")
    assert sessions.get("a") is a
    sessions.get("b")
    sessions.get("c")  # evicts the least recently used idle adapter, "a"
    assert "a" not in sessions and len(sessions) == 2
    sessions.drop("b")
    assert "b" not in sessions
    busy = core.LiveSessions(core.LiveLimits(max_sessions=1), factory=lambda: core.LiveAdapter([]))
    held = busy.get("x")
    held._running.acquire()
    with pytest.raises(core.AdaptationError, match="running for other users"):
        busy.get("y")
    held._running.release()


# ---- the shipped runs' measures


def _log(path: Path, rows: list[tuple[float, int, float, float]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "seconds", "bytes_seen", "train_loss_bpb", "val_bpb", "lr", "val_bpb_en"])
        for i, (s, b, v, e) in enumerate(rows):
            w.writerow([i, s, b, "", v, "0.001", e])
            w.writerow([i, s + 1, b + 1, "3.0", "", "0.001", ""])  # a step without evaluation


def test_time_to_reach_and_speedup_are_exact(tmp_path: Path) -> None:
    _log(tmp_path / "hat-tiny-de.csv", [(0, 0, 5.0, 2.0), (100, 1000, 3.0, 2.5), (200, 2000, 2.0, 2.6)])
    _log(tmp_path / "bpe-tiny-de.csv", [(0, 0, 4.0, 1.8), (100, 500, 3.5, 2.0), (200, 1000, 2.5, 2.1)])
    curves = core.read_curves("de", logs_dir=tmp_path)
    assert set(curves) == {"hat-tiny", "bpe-tiny"}
    assert len(curves["hat-tiny"]) == 3  # evaluations only
    assert core.time_to_reach(curves["hat-tiny"], 4.0) == 50.0
    assert core.time_to_reach(curves["hat-tiny"], 2.5, "bytes") == 1500.0
    assert core.time_to_reach(curves["bpe-tiny"], 2.0) is None  # never reached: no extrapolation
    s = core.speedup(curves)
    assert s["threshold_bpb"] == 2.5  # the worse of the two final values
    assert s["seconds"] == {"hat-tiny": 150.0, "bpe-tiny": 200.0}
    assert s["speedup_cpu_time"] == pytest.approx(200 / 150)
    assert s["speedup_text_read"] == pytest.approx(1000 / 1500)
    summary = core.summary(curves)
    assert summary["hat-tiny"]["forgetting_bpb_en"] == pytest.approx(0.6)
    result = core.report("de", logs_dir=tmp_path)
    assert json.loads(json.dumps(result))["speedup"][0]["model"] == "hat-tiny"
    grid = [g["threshold_bpb"] for g in result["speedup_by_threshold"]]
    assert grid[0] == 3.0 and grid[-1] == 2.5  # from the worst post-start value every run passed to the common one


def test_unknown_language_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(core.AdaptationError, match="Unknown language"):
        core.read_curves("xx", logs_dir=tmp_path)
    with pytest.raises(core.AdaptationError, match="No adaptation run"):
        core.report("de", logs_dir=tmp_path)


# ---- the adaptation protocol of training.train


def test_continued_runs_log_their_start_and_the_extra_validation(tmp_path: Path) -> None:
    text = (Path(__file__).parent / "data/sample_en.txt").read_text()
    for lang, body in (("en", text), ("de", GERMAN * 4)):
        (tmp_path / "corpus" / lang).mkdir(parents=True)
        (tmp_path / "corpus" / lang / "train.txt").write_text(body * 2)
        (tmp_path / "corpus" / lang / "val.txt").write_text(body[:2000])
    _run(tmp_path / "corpus" / "en", tmp_path, 0.02)  # an "English" tiny HAT in tmp/out/hat-tiny
    _run(
        tmp_path / "corpus" / "de",
        tmp_path,
        0.02,
        "--init-from", str(tmp_path / "out" / "hat-tiny"),
        "--name", "hat-tiny-de",
        "--also-validate", f"en={tmp_path / 'corpus' / 'en'}",
        "--also-validate-bytes", "1024",
    )  # fmt: skip
    rows = list(csv.DictReader((tmp_path / "out/hat-tiny-de/train_log.csv").open()))
    assert rows[0]["step"] == "0" and rows[0]["val_bpb"] and rows[0]["val_bpb_en"], "the starting point is logged"
    assert rows[-1]["val_bpb"] and rows[-1]["val_bpb_en"]
    meta = json.loads((tmp_path / "out/hat-tiny-de/training.json").read_text())
    assert meta["init_from"] == "hat-tiny" and meta["also_validate"] == ["en"] and meta["corpus"] == "de"
    assert meta["config_overrides"] == TINY


def test_adapt_runs_models_train_with_the_fixed_protocol(tmp_path: Path) -> None:
    args = adapt.train_args("bpe-tiny", "de", 45, corpus_root=tmp_path)
    parsed = dict(zip(args[::2], args[1::2], strict=False))
    assert parsed["--name"] == "bpe-tiny-de" and parsed["--lr"] == str(adaptation.ADAPT_PEAK_LR)
    assert parsed["--corpus"] == str(tmp_path / "de") and parsed["--threads"] == "1"
    assert f"en={tmp_path / 'en'}" in args
    with pytest.raises(SystemExit, match="no de corpus"):
        adapt.main(["--model", "hat-tiny", "--language", "de", "--corpus-root", str(tmp_path)])
    assert train.REGISTERED["bpe-tiny"][0] == "bpe"  # the family loss_on reads bpe-tiny as


def test_adapt_moves_the_log_beside_the_other_adaptation_logs(tmp_path: Path) -> None:
    run = tmp_path / "models" / "hat-tiny-de"
    run.mkdir(parents=True)
    (run / "train_log.csv").write_text("step,seconds\n0,0.0\n")
    (run / "train_log_phase1.csv").write_text("the English phase\n")
    target = adapt.export_log(tmp_path / "models", "hat-tiny-de", tmp_path / "logs")
    assert target == tmp_path / "logs" / "hat-tiny-de.csv" and target.read_text().startswith("step,")
    assert sorted(p.name for p in run.iterdir()) == []
