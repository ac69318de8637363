"""Shareable links: a tab's state (text, models, settings, step) as a URL query string, and back.

A teacher who shares "this sentence, these two models, step 7" shares a link such as
`?tab=learn&lesson=bpe&text=...&k=7`. `encode` writes one from the values of a tab's fields;
`decode` reads one back, keeping only values that fit each field (a choice that the app offers,
a number within its bounds, a text within the length limit), so a link can set what a user could
set by hand and nothing more. What does not fit is dropped with a note that names it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlencode

from playground.config import DEFAULT_MAX_TEXT_CHARS, TextInputError, check_unicode

TAB_KEY = "tab"  # the query key that names the tab
MAX_QUERY_CHARS = 64_000  # longer query strings are not read at all (browsers stop near 64 K anyway)

Kind = Literal["text", "int", "float", "bool", "choice", "choices"]


@dataclass(frozen=True)
class Field:
    """What one query key may hold: its kind and bounds (for numbers), choices or length (for texts)."""

    kind: Kind
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    max_chars: int = DEFAULT_MAX_TEXT_CHARS

    def parse(self, values: Sequence[str]) -> Any:
        """The value of this field from its query strings; raises `ValueError` saying what is wrong."""
        if self.kind == "choices":
            picked = [v for item in values for v in item.split(",") if v]
            bad = [v for v in picked if v not in self.choices]
            if bad:
                raise ValueError(f"not offered here: {', '.join(bad[:3])}")
            return list(dict.fromkeys(picked))
        raw = values[-1]
        if self.kind == "text":
            if len(raw) > self.max_chars:
                raise ValueError(f"longer than {self.max_chars:,} characters")
            try:
                check_unicode(raw)
            except TextInputError as err:
                raise ValueError(str(err)) from err
            return raw
        if self.kind == "choice":
            if raw not in self.choices:
                raise ValueError(f"{raw[:40]!r} is not offered here")
            return raw
        if self.kind == "bool":
            if raw not in ("0", "1", "true", "false"):
                raise ValueError("must be 0 or 1")
            return raw in ("1", "true")
        number = float(raw)  # ValueError for words
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        if self.kind == "int":
            if number != int(number):
                raise ValueError("must be a whole number")
            number = int(number)
        if self.minimum is not None and number < self.minimum:
            raise ValueError(f"below the minimum {self.minimum:g}")
        if self.maximum is not None and number > self.maximum:
            raise ValueError(f"above the maximum {self.maximum:g}")
        return number

    def format(self, value: Any) -> list[str]:
        """The query strings of a value (none for an empty one)."""
        if value is None:
            return []
        if self.kind == "choices":
            return [",".join(str(v) for v in value)] if value else []
        if self.kind == "bool":
            return ["1" if value else "0"]
        if self.kind == "int":
            return [str(int(value))]
        if self.kind == "float":
            return [f"{float(value):g}"]
        return [str(value)]


@dataclass
class Restored:
    """What a link asks for: a tab, the values of its fields that fit, and notes on what did not."""

    tab: str | None
    values: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def encode(tab: str, values: Mapping[str, Any], fields: Mapping[str, Field]) -> str:
    """The query string (without `?`) for `tab` with `values`; keys not in `fields` are left out."""
    pairs: list[tuple[str, str]] = [(TAB_KEY, tab)]
    for name, value in values.items():
        if name in fields and name != TAB_KEY:
            pairs.extend((name, s) for s in fields[name].format(value))
    return urlencode(pairs, quote_via=quote, safe=",:/")


def decode(query: str, tabs: Mapping[str, Mapping[str, Field]]) -> Restored:
    """Read a query string against each tab's fields. An empty query restores nothing."""
    query = query.lstrip("?")
    if not query:
        return Restored(None)
    if len(query) > MAX_QUERY_CHARS:
        return Restored(None, problems=[f"the link is longer than {MAX_QUERY_CHARS:,} characters; not read"])
    params: dict[str, list[str]] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, errors="replace"):
        params.setdefault(key, []).append(value)
    tab = (params.pop(TAB_KEY, None) or [None])[-1]
    if tab is None:
        return Restored(None, problems=["the link names no tab"] if params else [])
    if tab not in tabs:
        return Restored(None, problems=[f"the link names an unknown tab {tab[:40]!r}"])
    restored = Restored(tab)
    fields = tabs[tab]
    for key, values in params.items():
        if key not in fields:
            restored.problems.append(f"unknown setting {key[:40]!r}")
            continue
        try:
            restored.values[key] = fields[key].parse(values)
        except ValueError as err:
            restored.problems.append(f"{key}: {err}")
    return restored
