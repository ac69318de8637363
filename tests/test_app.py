"""app.py: flags, config building and the tab list (no server started here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import app
from models import registry as reg
from playground.config import AppConfig

pytestmark = pytest.mark.usefixtures("restore_default_registry")  # build_config reconfigures it


def test_defaults() -> None:
    args = app.parse_args([])
    assert args.host == "127.0.0.1" and args.port == 7860
    assert args.device == "auto" and args.quantize == "none"
    assert not args.share and not args.trust_remote_code


def test_models_flag_accepts_spaces_and_commas(tiny_bpe_dir: Path, tiny_byte_dir: Path) -> None:
    bpe, byte = f"hf:{tiny_bpe_dir}", f"hf:{tiny_byte_dir}"
    args = app.parse_args(["--device", "cpu", "--models", f"{bpe},{byte}", "--models", bpe])
    config = app.build_config(args)
    assert isinstance(config, AppConfig)
    assert config.models == [bpe, byte]
    assert config.device == "cpu"
    assert config.max_text_chars == app.DEFAULT_MAX_TEXT_CHARS


def test_default_models_are_the_available_builtins() -> None:
    """Every available built-in but the language-adapted ones (the Adaptation view loads those)."""
    config = app.build_config(app.parse_args(["--device", "cpu"]))
    available = [s.name for s in reg.list_models(available_only=True)]
    assert config.models == [n for n in available if not n.endswith("-de")]
    assert "hat-tiny-de" in available and "hat-tiny" in config.models


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--models", "nope"], "Unknown model 'nope'"),
        (["--quantize", "4bit"], "needs a CUDA GPU"),
        (["--max-text-chars", "0"], "at least 1"),
    ],
)
def test_bad_flags_exit_2_with_a_message(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert app.main(["--device", "cpu", *argv]) == 2
    assert message in capsys.readouterr().err


def test_every_listed_tab_module_exists() -> None:
    assert app.TABS[0] == ("Learn", "playground.ui.learn")  # a newcomer starts with the lessons
    for _, module in app.TABS:
        assert importlib.util.find_spec(module) is not None, module
