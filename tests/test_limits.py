"""Per-request bounds: one config, shown to users, and a request over a bound gets a message naming it."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest

import app
from models import registry
from playground import attention
from playground.config import APP_LIMIT_NOTE, HOSTED_LIMIT_NOTE, AppConfig, Limits, validate_models
from playground.ui import robustness as robustness_ui
from playground.ui import segment as segment_ui
from playground.ui import speculative as speculative_ui
from playground.ui.common import announce_loading, check_text, limits_markdown

MODELS = ["hat-tiny", "bpe-tiny", "byte-tiny", "hat-tiny-de", "bpe-tiny-de", "byte-tiny-de"]


def test_one_config_holds_every_bound_and_the_views_use_it() -> None:
    limits = AppConfig(max_text_chars=123).limits
    assert limits.text_chars == 123
    table = limits_markdown(AppConfig(max_text_chars=123))
    for bound, value in limits.rows():
        assert f"| {bound} | {value} |" in table
    # the attention core's bounds are the config's, not a second copy
    assert attention.MAX_AXIS_UNITS == Limits().attention_axis_units
    assert attention.MAX_ATTENTION_WEIGHTS * 4 == Limits().attention_megabytes * 1_000_000


def test_too_many_models_is_named() -> None:
    config = AppConfig(models=MODELS)
    assert validate_models(MODELS[:4], config, at_most=4) == MODELS[:4]
    with pytest.raises(ValueError, match=r"6 models selected; this app compares at most 4 per request"):
        validate_models(MODELS, config, at_most=config.limits.models_per_request)
    with pytest.raises(gr.Error, match="models per request"):
        robustness_ui.run_compare("Some text here.", MODELS, "typo", 0.1, 0, config=config)


def test_too_many_segmenters_is_named() -> None:
    config = AppConfig(models=MODELS)
    names = ["bytes", "hat-words", "entropy-patches", *MODELS]
    assert len(names) > config.limits.segmenters_per_request
    with pytest.raises(gr.Error, match="at most 8 per request"):
        segment_ui.run_segment("Some text.", names, 16, 3.0, False, False, 0, config=config)


@pytest.mark.parametrize("field, value, bound", [("max_new_tokens", 300, 256), ("budget", 65, 64)])
def test_speculative_bounds_are_named(field: str, value: int, bound: int) -> None:
    config = AppConfig(models=["bpe-tiny"])
    args = {"max_new_tokens": 8, "budget": 4} | {field: value}
    with pytest.raises(ValueError, match=f"this app allows at most {bound}"):
        speculative_ui.run_speculative(
            "a prompt", "bpe-tiny", "prompt-lookup", None, "chain", args["budget"], 0.0,
            args["max_new_tokens"], False, config=config,
        )  # fmt: skip


def test_hosted_messages_do_not_suggest_server_flags() -> None:
    long = "x" * 11
    with pytest.raises(ValueError, match=APP_LIMIT_NOTE):
        check_text(long, AppConfig(max_text_chars=10))
    with pytest.raises(ValueError, match=HOSTED_LIMIT_NOTE) as err:
        check_text(long, AppConfig(max_text_chars=10, hosted=True))
    assert "--max-text-chars" not in str(err.value)
    config = app.build_config(app.parse_args(["--hosted", "--models", "bpe-tiny"]))
    assert config.hosted and config.limit_note == HOSTED_LIMIT_NOTE


def test_a_first_load_is_announced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = registry.Registry(device="cpu", cache_dir=tmp_path / "empty-cache")
    monkeypatch.setattr(registry, "_default", reg)
    assert reg.load_state("bpe-tiny") == "load"
    if reg.get_spec("smollm2-135m").available:
        assert reg.load_state("smollm2-135m") == "convert"  # no safetensors copy in this cache yet
    shown: list[str] = []
    monkeypatch.setattr(gr, "Info", lambda message, **_: shown.append(message))
    progress: list[str] = []
    messages = announce_loading(["bpe-tiny", "bpe-tiny", "no-such-model"], lambda _, desc: progress.append(desc))
    assert messages == shown == ["Loading bpe-tiny: reading its weights."] and progress == messages
    reg.load_model("bpe-tiny")
    assert reg.load_state("bpe-tiny") == "loaded"
    assert announce_loading(["bpe-tiny"]) == []  # in memory: nothing to say
