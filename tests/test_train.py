"""The training script end to end on a tiny corpus: export, logs, variants, resuming."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import load_bench

from training import train

TINY = {
    "encoder_hidden_size": 32,
    "encoder_layers": 1,
    "encoder_heads": 2,
    "encoder_intermediate_size": 64,
    "backbone_hidden_size": 32,
    "backbone_layers": 1,
    "backbone_heads": 2,
    "backbone_intermediate_size": 64,
    "decoder_hidden_size": 32,
    "decoder_layers": 1,
    "decoder_heads": 2,
    "decoder_intermediate_size": 64,
}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    text = (Path(__file__).parent / "data/sample_en.txt").read_text()
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "train.txt").write_text(text * 2)
    (root / "val.txt").write_text(text[:3000])
    source = {"package": "deb:fortunes", "version": "1:1.99.1-7.3", "train_bytes": 2 * len(text.encode())}
    manifest = {"languages": {"corpus": {"files": {}, "sources": {"fortunes": {**source, "documents": 3}}}}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))  # as training.corpus writes it, beside the language
    return root


def _run(corpus: Path, tmp_path: Path, minutes: float, *extra: str) -> None:
    train.main(
        [
            "--model", "hat-tiny", "--corpus", str(corpus), "--minutes", str(minutes), "--clock", "wall",
            "--batch", "2", "--window", "256", "--val-bytes", "1024", "--eval-every", "1", "--save-every", "0",
            "--mixed-precision", "no", "--workdir", str(tmp_path / "runs"), "--out", str(tmp_path / "out"),
            "--config-overrides", json.dumps(TINY), *extra,
        ]
    )  # fmt: skip


def test_training_exports_a_loadable_model_with_its_logs(corpus: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    _run(corpus, tmp_path, 0.03)
    out = tmp_path / "out/hat-tiny"
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.backbone_layers == 1 and model.config.encoder_hidden_size == 32
    meta = json.loads((out / "training.json").read_text())
    assert meta["config_overrides"] == TINY
    recorded = {
        "package": "deb:fortunes",
        "version": "1:1.99.1-7.3",
        "train_bytes": (corpus / "train.txt").stat().st_size,
    }
    assert meta["corpus_sources"] == {"fortunes": recorded}  # the package versions, not the manifest's other fields
    assert meta["mixed_precision"] == "no"
    assert meta["parameters"] == sum(p.numel() for p in model.parameters())
    rows = list(csv.DictReader((out / "train_log.csv").open()))
    assert int(rows[-1]["step"]) == meta["steps"] >= 1
    assert rows[-1]["val_bpb"], "the last step is validated"
    assert 0 < float(rows[-1]["val_bpb"]) < 12


def test_a_rerun_resumes_from_the_checkpoint(corpus: Path, tmp_path: Path) -> None:
    _run(corpus, tmp_path, 0.02)
    first = json.loads((tmp_path / "out/hat-tiny/training.json").read_text())
    _run(corpus, tmp_path, 0.05)
    second = json.loads((tmp_path / "out/hat-tiny/training.json").read_text())
    assert second["steps"] > first["steps"]
    assert second["bytes_seen"] > first["bytes_seen"]
    log = list(csv.DictReader((tmp_path / "out/hat-tiny/train_log.csv").open()))
    assert [int(r["step"]) for r in log] == list(range(1, second["steps"] + 1))  # one log, no restart


def test_unknown_config_settings_are_refused(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no setting 'encoder_depth'"):
        _run(corpus, tmp_path, 0.01, "--config-overrides", '{"encoder_depth": 3}')


def test_model_cards_name_only_the_trainings_that_match() -> None:
    """A card says "same windows, same budget" only of models whose every phase agrees with its own."""
    cards = load_bench("model_cards")
    phase = {"steps": 10, "batch": 16, "window_bytes": 1024, "peak_lr": 0.002, "seed": 1234, "threads": 1,
             "clock": "cpu", "mixed_precision": "bf16", "train_seconds": 9000.0, "bytes_seen": 100}  # fmt: skip
    one_phase = {**phase, "parameters": 1}
    two_phases = {**phase, "seed": 1235, "train_seconds": 3300.0, "parameters": 1, "earlier_phases": [phase]}
    trainings = {"hat-tiny": one_phase, "bpe-tiny": {**one_phase, "steps": 12}, "byte-tiny": two_phases}
    hat = cards.training_text("hat-tiny", trainings)
    assert "One phase (from scratch)" in hat and "same order as `bpe-tiny`," in hat
    assert "`byte-tiny` was trained differently (2 phase(s), 3.42 h in all" in hat
    byte = cards.training_text("byte-tiny", trainings)
    assert "Phase 2 (from the phase before's weights" in byte and "same order as" not in byte
    assert cards.protocol({**one_phase, "peak_lr": 0.001}) != cards.protocol(one_phase)


def test_model_cards_name_the_corpus_sources_that_moved() -> None:
    """A Debian point release can change a source between training and evaluation: the card names it."""
    cards = load_bench("model_cards")
    then = {
        "web-bible": {"package": "deb:sword-text-web", "version": "426.0-1", "train_bytes": 10, "val_bytes": 1},
        "help": {"package": "deb:libreoffice-help-en-us", "version": "1+u13", "train_bytes": 20, "val_bytes": 2},
    }
    now = {**then, "help": {**then["help"], "version": "1+u14", "train_bytes": 18}}
    assert cards.changed_sources(then, then) == ""
    assert cards.changed_sources(then, now) == "help (deb:libreoffice-help-en-us 1+u13 -> 1+u14)"
    assert cards.changed_sources(then, {"web-bible": then["web-bible"]}) == "help dropped"
    rebuilt = {**then, "help": {**then["help"], "train_bytes": 25}}  # same package, other cleaning
    assert cards.changed_sources(then, rebuilt) == "help (same package version, +5 training bytes)"
    files = {"train": {"bytes": 30, "sha256": "a" * 64}}
    manifest = {"en": {"files": {"train": {"bytes": 28, "sha256": "b" * 64}}, "sources": now}}
    phase = {"corpus_files": files, "corpus_sources": then}
    note = cards.build_note(phase, manifest)
    assert "differs from it by -2 bytes" in note and "changed since: help (deb:libreoffice-help-en-us 1+u13" in note
    assert "did not record" in cards.build_note({"corpus_files": files}, manifest)
    assert "exactly the build" in cards.build_note(
        phase, {"en": {**manifest["en"], "files": {"train": files["train"]}}}
    )
    assert "cleaning code changed" in cards.build_note(phase, {"en": {**manifest["en"], "sources": then}})


def test_auto_mixed_precision_is_bf16_only_where_the_hardware_has_it(monkeypatch) -> None:
    import torch

    assert train.resolve_mixed_precision("no", "cpu") == "no"
    assert train.resolve_mixed_precision("bf16", "cpu") == "bf16"  # asked for: honoured, even if emulated
    for amx, avx512_bf16, expected in [(False, False, "no"), (True, False, "bf16"), (False, True, "bf16")]:
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda amx=amx: amx)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        assert train.resolve_mixed_precision("auto", "cpu") == expected
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert train.resolve_mixed_precision("auto", "cuda") == "no"
