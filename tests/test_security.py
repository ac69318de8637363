"""Each loading rule of the threat model, tried with an attempt to break it.

- `hf:` local directories only inside `--models-dir` (path traversal and symlinks out refused);
- hub ids only with `--allow-hub`;
- safetensors only: a pickle-only checkpoint is refused before anything is read;
- a model that ships its own code runs only with `--trust-remote-code`, which hosted mode refuses;
- an upload over the app's cap is refused by the running server, nothing of it stored.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

import app
from models.registry import ModelUnavailableError, Registry
from playground.config import Limits


@pytest.fixture
def allowed(tmp_path: Path, tiny_bpe_dir: Path) -> Path:
    root = tmp_path / "allowed"
    shutil.copytree(tiny_bpe_dir, root / "bpe")
    return root


def test_a_model_inside_the_allowed_directory_loads(allowed: Path) -> None:
    reg = Registry(device="cpu", models_dir=allowed)
    assert reg.get_spec(f"hf:{allowed / 'bpe'}").family == "bpe"
    assert reg.get_spec("hf:bpe").family == "bpe"  # relative names are read inside the directory
    assert reg.load_model("hf:bpe").model is not None


@pytest.mark.parametrize("name", ["hf:../../etc", "hf:/etc", "hf:..", "hf:bpe/../../"])
def test_paths_out_of_the_allowed_directory_are_refused(allowed: Path, name: str) -> None:
    reg = Registry(device="cpu", models_dir=allowed)
    with pytest.raises(ModelUnavailableError, match="must be inside"):
        reg.get_spec(name)


def test_a_symlink_out_of_the_allowed_directory_is_refused(allowed: Path, tiny_byte_dir: Path) -> None:
    os.symlink(tiny_byte_dir, allowed / "escape")
    reg = Registry(device="cpu", models_dir=allowed)
    with pytest.raises(ModelUnavailableError, match="must be inside"):
        reg.get_spec("hf:escape")
    with pytest.raises(ModelUnavailableError, match="must be inside"):
        reg.get_spec(f"hf:{allowed / 'escape'}")


def test_hub_ids_need_allow_hub() -> None:
    with pytest.raises(ModelUnavailableError, match="--allow-hub"):
        Registry(device="cpu", allow_hub=False).get_spec("hf:HuggingFaceTB/SmolLM2-135M-Instruct")


def test_a_pickle_only_checkpoint_is_refused(tmp_path: Path, tiny_bpe_dir: Path) -> None:
    import torch

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_bpe_dir, pickled)
    (pickled / "model.safetensors").unlink()

    class Boom:
        def __reduce__(self) -> tuple:  # would run when unpickled
            return (Path(tmp_path / "pwned").touch, ())

    torch.save({"x": Boom()}, pickled / "pytorch_model.bin")
    reg = Registry(device="cpu")
    with pytest.raises(ModelUnavailableError, match="no .safetensors"):
        reg.load_model(f"hf:{pickled}")
    assert not (tmp_path / "pwned").exists()


def test_remote_code_needs_its_flag(tmp_path: Path, tiny_bpe_dir: Path) -> None:
    custom = tmp_path / "custom"
    shutil.copytree(tiny_bpe_dir, custom)
    config = json.loads((custom / "config.json").read_text())
    config.update(model_type="evil-custom", auto_map={"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"})
    (custom / "config.json").write_text(json.dumps(config))
    (custom / "modeling_evil.py").write_text(f"open({str(tmp_path / 'pwned')!r}, 'w').close()\n")
    with pytest.raises(ModelUnavailableError):
        Registry(device="cpu").load_model(f"hf:{custom}")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.usefixtures("restore_default_registry")
def test_hosted_mode_refuses_remote_code_and_outside_models(tiny_bpe_dir: Path) -> None:
    with pytest.raises(ValueError, match="refused in hosted mode"):
        app.build_config(app.parse_args(["--hosted", "--trust-remote-code", "--models", "hat-tiny"]))
    with pytest.raises(ModelUnavailableError, match="must be inside"):
        app.build_config(app.parse_args(["--hosted", "--models", f"hf:{tiny_bpe_dir}"]))
    config = app.build_config(app.parse_args(["--hosted", "--models", "hat-tiny", "bpe-tiny"]))
    assert config.models == ["hat-tiny", "bpe-tiny"] and not config.trust_remote_code


def test_an_oversized_upload_is_refused(hosted_app_url: str) -> None:
    """No view takes a file, but Gradio's upload route answers any client: the cap holds there."""
    route = f"{hosted_app_url.rstrip('/')}/gradio_api/upload"
    cap = Limits().upload_bytes
    small = httpx.post(route, files={"files": ("note.txt", b"a few bytes")}, timeout=30)
    assert small.status_code == 200, small.text
    big = httpx.post(route, files={"files": ("big.txt", b"x" * (cap + 1))}, timeout=30)
    assert big.status_code == 413, big.text
    assert "maximum allowed size" in big.text
