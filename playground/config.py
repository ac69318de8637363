"""App-wide settings shared by the views, and the text checks every view applies."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from models.errors import UserError

DEFAULT_MAX_TEXT_CHARS = 2000


class TextInputError(UserError):
    """The input text is empty or too long."""


@dataclass(frozen=True)
class Limits:
    """Per-request bounds, in one place. Each view checks its inputs against them (a request over a
    bound gets a message naming it) and shows them next to its controls; `rows` lists them all."""

    text_chars: int = DEFAULT_MAX_TEXT_CHARS
    models_per_request: int = 4  # robustness and attention compare at most this many models
    segmenters_per_request: int = 8
    max_new_tokens: int = 256  # speculative decoding; the engine itself allows 512
    tree_budget: int = 64  # draft-tree nodes per step
    sweep_max_rate: float = 0.3  # robustness sweep: rates 0 .. this
    sweep_min_step: float = 0.025  # at most 13 rates per sweep
    attention_axis_units: int = 512  # more units per axis are drawn in bins
    attention_megabytes: int = 480  # attention weights of one model and text
    # No view takes a file, but Gradio's upload route accepts any client's: cap what it stores.
    upload_bytes: int = 1_000_000
    # Sessions (open pages) whose last results the server keeps; past it the least recently used
    # is forgotten (its next request starts from what its page sends). About 1-5 MB each.
    sessions: int = 200

    def rows(self) -> list[tuple[str, str]]:
        """(bound, value) for people, in the order of the tabs."""
        return [
            ("text length", f"{self.text_chars:,} characters"),
            ("segmenters per request (token boundaries)", f"{self.segmenters_per_request}"),
            ("models per request (robustness)", f"{self.models_per_request}"),
            (
                "attention",
                (
                    f"{self.attention_megabytes:,} MB of weights per model; bins past "
                    f"{self.attention_axis_units:,} units per axis"
                ),
            ),
            ("speculative decoding", f"{self.max_new_tokens} new tokens, {self.tree_budget} draft-tree nodes"),
            ("robustness sweep", f"rates 0-{self.sweep_max_rate:.0%} in steps of at least {self.sweep_min_step:.1%}"),
            ("uploaded file", f"{self.upload_bytes / 1e6:g} MB"),
            ("open pages remembered", f"{self.sessions} (the least recently used is forgotten first)"),
        ]


@dataclass(frozen=True)
class AppConfig:
    """Settings built by `app.py` from its command-line flags and passed to every `build_tab`.

    Attributes:
        models: registry names offered in the model pickers, in display order.
        max_text_chars: longest input text the views accept.
        device: the resolved torch device (`"cpu"`, `"cuda"` or `"mps"`).
        quantize: `"none"`, `"8bit"` or `"4bit"`.
        trust_remote_code: whether `hf:` models may run their own code.
        memory_budget: bytes of model weights kept loaded before the least recently used is evicted.
        hosted: served to strangers (`app.py --hosted`): messages do not suggest server flags.
    """

    models: list[str] = field(default_factory=list)
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
    device: str = "cpu"
    quantize: str = "none"
    trust_remote_code: bool = False
    memory_budget: int | None = None
    hosted: bool = False

    def __post_init__(self) -> None:
        if self.max_text_chars < 1:
            raise ValueError(f"max_text_chars must be positive, got {self.max_text_chars}")

    @property
    def limits(self) -> Limits:
        return Limits(text_chars=self.max_text_chars)

    @property
    def limit_note(self) -> str:
        """Where the text limit comes from, for messages."""
        return HOSTED_LIMIT_NOTE if self.hosted else APP_LIMIT_NOTE


# What a too-long text's message says about the limit, unless a caller names its own bound.
APP_LIMIT_NOTE = "start the app with --max-text-chars to change it"
HOSTED_LIMIT_NOTE = "the limit of this shared app; please shorten the text"


def validate_text(
    text: str | None,
    max_chars: int,
    error: type[UserError] = TextInputError,
    limit_note: str = APP_LIMIT_NOTE,
    allow_blank: bool = False,
) -> str:
    """Return `text` unchanged if it is non-empty, at most `max_chars` characters long and valid Unicode.

    The one text check of every view. Raises `error` (a `UserError`, `TextInputError` by default)
    with a message for people otherwise; `limit_note` says where the limit comes from.
    Whitespace-only text counts as empty unless `allow_blank` (segmenting spaces is a question too).
    Length is counted in Unicode code points (Python `len`).
    """
    if not isinstance(text, str | None):
        raise error(f"The text must be a string, got {type(text).__name__}.")
    if text is None or text == "" or (not allow_blank and not text.strip()):
        raise error("Please enter some text first.")
    if len(text) > max_chars:
        raise error(f"The text has {len(text):,} characters; the limit is {max_chars:,} ({limit_note}).")
    return check_unicode(text, error)


def validate_models(
    selected: Iterable[str] | str | None, config: AppConfig, at_least: int = 1, at_most: int | None = None
) -> list[str]:
    """A model picker's value as a list of names, checked against the models the app offers (and,
    with `at_most`, the per-request bound); a `UserError` otherwise."""
    if selected is None:
        names: list[str] = []
    elif isinstance(selected, str):
        names = [selected]
    else:
        names = list(selected)
    unknown = [n for n in names if n not in config.models]
    if unknown:
        raise UserError(f"Unknown model(s): {', '.join(unknown)}. This app offers: {', '.join(config.models)}.")
    if len(names) < at_least:
        raise UserError(f"Please select at least {at_least} model{'s' if at_least > 1 else ''}.")
    if at_most is not None and len(names) > at_most:
        raise UserError(
            f"{len(names)} models selected; this app compares at most {at_most} per request "
            "(models per request). Please remove some."
        )
    return names


def validate_bound(value: object, bound: float, what: str, error: type[UserError] = UserError) -> None:
    """A `error` naming the bound when `value` (a number, or None: unset) is over `bound`."""
    if value is None:
        return
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise error(f"{what} must be a number, got {value!r}.") from None
    if number > bound:
        raise error(f"{what} is {number:g}; this app allows at most {bound} ({what}).")


def check_unicode(text: str, error: type[UserError] = TextInputError) -> str:
    """`text` if UTF-8 can encode it, else `error`: lone surrogates arrive through JSON ("\\ud800"),
    undecodable files and command-line bytes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise error(
            f"The text is not valid Unicode: character {err.start} is a lone surrogate "
            f"(U+{ord(text[err.start]):04X}), which UTF-8 cannot encode. Remove it or paste the text again."
        ) from None
    return text


def read_text(path: str) -> str:
    """Read a UTF-8 text file ('-' for standard input) with a clear error for anything else."""
    data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not valid UTF-8 (byte {exc.start}): {exc.reason}") from None
