"""Shared UI helpers and the text checks."""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr
import pytest

from models import registry as reg
from playground.config import AppConfig, TextInputError, validate_models, validate_text
from playground.ui import common


def test_validate_text() -> None:
    assert validate_text("hi", 5) == "hi"
    with pytest.raises(TextInputError, match="enter some text"):
        validate_text("  \n", 5)
    with pytest.raises(TextInputError, match="enter some text"):
        validate_text(None, 5)
    with pytest.raises(TextInputError, match="6 characters; the limit is 5"):
        validate_text("abcdef", 5)
    assert issubclass(TextInputError, ValueError)


def test_check_text_uses_the_app_limit() -> None:
    config = AppConfig(models=[], max_text_chars=3)
    assert common.check_text("abc", config) == "abc"
    with pytest.raises(ValueError, match="limit is 3"):
        common.check_text("abcd", config)


def test_visible_whitespace() -> None:
    from playground.segment import visible

    assert visible("a b\nc\td") == "a⋅b↵c→d"
    assert visible("a\nb", keep_newlines=True) == "a↵\nb"
    assert visible("↵") == "↵"


def test_short_name() -> None:
    assert common.short_name("hf:/tmp/some/dir/model/") == "hf:model"
    assert common.short_name("hat-tiny") == "hat-tiny"


def test_user_errors_turns_value_errors_into_gr_errors() -> None:
    @common.user_errors
    def handler(text: str) -> str:
        """Doc."""
        return validate_text(text, 3)

    assert handler("ok") == "ok"
    assert handler.__doc__ == "Doc."
    with pytest.raises(gr.Error, match="limit is 3"):
        handler("too long")

    @common.user_errors
    def stream(text: str):
        yield "start"
        validate_text(text, 3)

    with pytest.raises(gr.Error, match="enter some text"):
        list(stream(""))

    @common.user_errors
    def bug() -> None:
        raise KeyError("not a user error")

    with pytest.raises(KeyError):
        bug()


def test_model_selector_and_checks(tmp_path: Path, tiny_bpe_dir: Path, tiny_byte_dir: Path) -> None:
    previous = reg._default
    try:
        reg.configure(device="cpu", cache_dir=tmp_path)
        bpe, byte = f"hf:{tiny_bpe_dir}", f"hf:{tiny_byte_dir}"
        config = AppConfig(models=[bpe, byte])
        choices = common.model_choices(config)
        assert [value for _, value in choices] == [bpe, byte]
        assert choices[0][0].startswith(f"{bpe} · bpe · ")
        assert common.model_choices(config, families=["byte"]) == [choices[1]]
        with gr.Blocks():
            multi = common.model_selector(config)
            single = common.model_selector(config, multiselect=False, label="Model")
        assert multi.value == [bpe, byte] and multi.multiselect
        assert single.value == bpe
        assert validate_models([bpe], config) == [bpe]
        assert validate_models(byte, config) == [byte]
        with pytest.raises(ValueError, match="Unknown model"):
            validate_models(["gpt-5"], config)
        with pytest.raises(ValueError, match="at least 1 model"):
            validate_models([], config)
    finally:
        reg._default = previous


def test_on_gpu_uses_spaces_only_where_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    def handler(x: int) -> int:
        return x + 1

    monkeypatch.setitem(sys.modules, "spaces", None)  # not installed: `import spaces` fails
    assert common.on_gpu(handler) is handler
    fake = types.ModuleType("spaces")
    fake.GPU = lambda fn: types.SimpleNamespace(wrapped=fn)  # what a ZeroGPU Space's decorator returns
    monkeypatch.setitem(sys.modules, "spaces", fake)
    assert common.on_gpu(handler).wrapped is handler


def test_a_session_is_forgotten_when_its_user_leaves() -> None:
    """Gradio keeps a closed session's last outputs until 10,000 newer sessions push it out; the app
    drops it as soon as the user's page (here an API client) disconnects."""
    gradio_client = pytest.importorskip("gradio_client")
    from playground.ui.common import forget_sessions_on_leave

    with gr.Blocks() as demo:
        text = gr.Textbox()
        shown = gr.Textbox()
        gr.Button().click(lambda t: t * 1000, text, shown, api_name="grow")
        forget_sessions_on_leave(demo)
    demo.queue()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        client = gradio_client.Client(url, verbose=False)
        assert client.predict("abc", api_name="/grow") == "abc" * 1000
        session = client.session_hash
        assert session in demo.state_holder.session_data  # the server remembers the open session
        other = gradio_client.Client(url, verbose=False)
        other.predict("xyz", api_name="/grow")
        client.close()
        deadline = time.monotonic() + 20
        while session in demo.state_holder.session_data and time.monotonic() < deadline:
            time.sleep(0.2)
        assert session not in demo.state_holder.session_data
        assert other.session_hash in demo.state_holder.session_data  # a user still there keeps theirs
        assert other.predict("q", api_name="/grow") == "q" * 1000
        other.close()
    finally:
        demo.close()
