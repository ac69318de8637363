"""Helpers shared by the view tabs: user errors, model pickers, text checks, display names."""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import gradio as gr

from models.errors import UserError
from models.registry import ModelSpec, default_registry, format_params, get_spec, is_out_of_memory, load_state
from playground.config import AppConfig, validate_text

F = TypeVar("F", bound=Callable[..., Any])
logger = logging.getLogger(__name__)


def model_slots() -> int:
    """How many model runs may compute at once: one per CPU core (at most 2 by default; set
    HAT_PLAYGROUND_MODEL_SLOTS to change it). More would only share the same cores."""
    value = os.environ.get("HAT_PLAYGROUND_MODEL_SLOTS")
    return max(1, int(value)) if value else max(1, min(2, os.cpu_count() or 1))


def light_slots() -> int:
    """How many light events (segmentation, lesson steps) may run at once: 8 by default (set
    HAT_PLAYGROUND_LIGHT_SLOTS to change it); each is short, so more slots mostly cut queueing."""
    value = os.environ.get("HAT_PLAYGROUND_LIGHT_SLOTS")
    return max(1, int(value)) if value else 8


# Queue pools (gradio concurrency groups). Every event that runs a model joins MODEL_POOL, a
# bounded pool sized to the machine, so many users share one loaded model safely (forward passes
# only read it) while segmentation, lesson steps and other light events never wait behind them.
MODEL_POOL: dict[str, Any] = {"concurrency_id": "models", "concurrency_limit": model_slots()}
LIGHT_POOL: dict[str, Any] = {"concurrency_id": "light", "concurrency_limit": light_slots()}


def _as_user_error(err: Exception) -> gr.Error | None:
    """The message for an error users should see, or None for a bug (whose traceback is logged)."""
    if isinstance(err, gr.Error):
        return err
    if isinstance(err, UserError):
        return as_gr_error(err)
    if is_out_of_memory(err):
        default_registry().free_after_oom()  # the server stays up; models reload on next use
        logger.warning("out of memory in an event: %s", err)
        return gr.Error(
            "The server ran out of memory on this request, so it unloaded its models. Please try a shorter "
            "text or fewer models.",
            print_exception=False,
        )
    return None


def user_errors(fn: F) -> F:
    """Decorate an event handler so a user error (`models.errors.UserError`) or running out of memory is shown
    as a `gr.Error` with a message saying what to change.

    Works for plain functions and generators. Other exceptions propagate unchanged (Gradio
    shows a generic error and the traceback is logged).
    """
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except Exception as err:
                shown = _as_user_error(err)
                if shown is None:
                    raise
                raise shown from err

        return gen_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            shown = _as_user_error(err)
            if shown is None:
                raise
            raise shown from err

    return wrapper  # type: ignore[return-value]


def on_gpu(fn: F) -> F:
    """`spaces.GPU(fn)` where the `spaces` package is installed (a Hugging Face ZeroGPU Space lends a
    GPU to the event while it runs), else `fn` unchanged. For the events that run models."""
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(fn)


# What a first load costs, for the message shown while it happens (docs/performance.md).
_LOAD_NOTES = {
    "convert": "first use on this server: converting its GGUF file to a safetensors copy "
    "(about 40 s for smollm2-135m, 100 s for gemma3-270m); later loads take a second or two",
    "hub": "first use: downloading it from the Hugging Face hub",
    "load": "reading its weights",
}


def announce_loading(names: Iterable[str], progress: Any = None) -> list[str]:
    """Tell the user which of `names` must load before the answer comes (a toast, and the
    description of `progress`, a `gr.Progress`, when given), so a first load is never a silent
    wait. Returns the messages (none when every model is in memory already)."""
    messages = []
    for name in dict.fromkeys(names):
        try:
            state = load_state(name)
        except ValueError:  # an unknown name: the view's own check reports it
            continue
        if state != "loaded":
            messages.append(f"Loading {short_name(name)}: {_LOAD_NOTES[state]}.")
    for message in messages:
        gr.Info(message, duration=8)
    if messages and progress is not None:
        progress(0.0, desc=" ".join(messages))
    return messages


def as_gr_error(err: Exception) -> gr.Error:
    """A `gr.Error` carrying the message of `err` (no traceback printed: it is a user error)."""
    return gr.Error(str(err), print_exception=False)


def check_text(text: str | None, config: AppConfig) -> str:
    """`validate_text` with the app's character limit; raises `TextInputError` (a `UserError`)."""
    return validate_text(text, config.max_text_chars, limit_note=config.limit_note)


def limits_markdown(config: AppConfig) -> str:
    """The per-request bounds of this app as a Markdown table (the footer's "Limits")."""
    rows = "\n".join(f"| {bound} | {value} |" for bound, value in config.limits.rows())
    return "| bound | at most |\n| --- | --- |\n" + rows


def model_label(spec: ModelSpec) -> str:
    """Display name of a model, e.g. `"smollm2-135m · bpe · 134.5M"`."""
    return f"{spec.name} · {spec.family} · {format_params(spec.params)}"


def model_choices(config: AppConfig, families: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """`(label, name)` pairs of the app's models, optionally only those of some families."""
    wanted = set(families) if families is not None else None
    choices = []
    for name in config.models:
        spec = get_spec(name)
        if wanted is None or spec.family in wanted:
            choices.append((model_label(spec), name))
    return choices


def model_selector(
    config: AppConfig,
    *,
    label: str = "Models",
    value: list[str] | str | None = None,
    multiselect: bool = True,
    families: Iterable[str] | None = None,
    info: str | None = None,
    **kwargs: Any,
) -> gr.Dropdown:
    """A dropdown over the app's models (multi-select by default).

    `value` defaults to all offered models for a multi-select, the first one otherwise. Extra
    keyword arguments go to `gr.Dropdown`.
    """
    choices = model_choices(config, families)
    names = [name for _, name in choices]
    if value is None:
        value = names if multiselect else (names[0] if names else None)
    return gr.Dropdown(
        choices=choices,
        value=value,
        multiselect=multiselect,
        label=label,
        info=info,
        **kwargs,
    )


def short_name(name: str) -> str:
    """A display name: ``hf:/long/path/to/model`` -> ``hf:model``; registry names stay as they are."""
    if name.startswith("hf:"):
        return "hf:" + (name[3:].rstrip("/").rsplit("/", 1)[-1] or name[3:])
    return name


def forget_sessions_on_leave(demo: gr.Blocks) -> None:
    """When a user's page (or API client) disconnects, drop everything the server kept for that
    session at once.

    Gradio keeps, per session, a copy of the app's config with the last value of every output
    (the figures, tables and HTML a user was shown, for deep links), and deletes only `gr.State`
    values of a closed session, an hour later; the session itself stays until 10,000 newer ones
    push it out. On a shared Space that grows with every visitor. This app's views restore from
    the page's own inputs and its links, so nothing is lost when a departed session is forgotten;
    `demo.launch(state_session_capacity=...)` (app.py) bounds the sessions of users still connected."""

    def forget(request: gr.Request) -> None:
        holder = getattr(demo, "state_holder", None)
        session = getattr(request, "session_hash", None)
        if holder is None or session is None:
            return
        with holder.lock:
            state = holder.session_data.pop(session, None)
            holder.time_last_used.pop(session, None)
        if state is not None:
            for component, value, _ in state.state_components:  # what gr.State's own cleanup does
                component.delete_callback(value)

    demo.unload(forget)
