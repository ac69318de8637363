"""Links that reopen a view: every tab's state in the page URL, a copy-link button per tab, and
the lessons' "try it" buttons that open a tab pre-filled.

Each tab's `build_tab` returns a `TabState`: the components whose values make up its state (named
as in the link), and a `trigger` it re-runs its main event on. `wire` (called once by `app.py`)
restores a link on page load and wires the "try it" buttons; both set the fields, select the tab
and bump its trigger, so the tab shows the same result as the one that was shared. The query
string itself is written and read by `playground.links`, which checks every value.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from playground import links
from playground.config import AppConfig

logger = logging.getLogger(__name__)

# Composes the full link from the query string, puts it into the address bar and the clipboard.
# The clipboard needs a secure context (https or localhost); the link box shows it either way.
_COPY_JS = """
(query) => {
  const url = window.location.origin + window.location.pathname + "?" + query;
  try { window.history.replaceState(null, "", "?" + query); } catch (e) {}
  try { navigator.clipboard.writeText(url).catch(() => {}); } catch (e) {}
  return url;
}
"""


def replay_trigger() -> gr.Number:
    """A hidden number whose change re-runs a tab's main event. Not a gr.State: gradio fires a
    State's change event whenever an event writes it, even with the same value; a component
    fires only when its value really changes, and a skipped output leaves it alone."""
    return gr.Number(0, visible=False, precision=0)


@dataclass
class TryIt:
    """A button in one tab that opens `tab` with its fields set from `values` (components or constants)."""

    button: gr.Button
    tab: str
    values: Mapping[str, Any]


@dataclass
class TabState:
    """What a tab shares in a link. `fields` maps link keys to components; `bounds` overrides the
    schema read from a component (for sliders whose range changes at run time, or a gr.State);
    the tab re-runs its main event when `trigger` changes."""

    key: str
    fields: dict[str, Any]
    trigger: gr.Number | None = None
    bounds: dict[str, links.Field] = field(default_factory=dict)
    try_its: list[TryIt] = field(default_factory=list)

    def schema(self, config: AppConfig) -> dict[str, links.Field]:
        return {name: self.bounds.get(name) or field_for(comp, config) for name, comp in self.fields.items()}


def _choice_values(component: Any) -> tuple[str, ...]:
    return tuple(str(c[1] if isinstance(c, tuple | list) else c) for c in (component.choices or []))


def field_for(component: Any, config: AppConfig) -> links.Field:
    """The link schema of a component: its kind, its bounds or choices, the app's text limit."""
    if isinstance(component, gr.Textbox):
        return links.Field("text", max_chars=config.max_text_chars)
    if isinstance(component, gr.Checkbox):
        return links.Field("bool")
    if isinstance(component, gr.CheckboxGroup):
        return links.Field("choices", choices=_choice_values(component))
    if isinstance(component, gr.Dropdown):
        return links.Field("choices" if component.multiselect else "choice", choices=_choice_values(component))
    if isinstance(component, gr.Radio):
        return links.Field("choice", choices=_choice_values(component))
    if isinstance(component, gr.Slider):
        whole = float(component.step).is_integer() and float(component.minimum).is_integer()
        return links.Field("int" if whole else "float", minimum=component.minimum, maximum=component.maximum)
    if isinstance(component, gr.Number):
        return links.Field(
            "int" if component.precision == 0 else "float", minimum=component.minimum, maximum=component.maximum
        )
    raise TypeError(f"no link schema for {type(component).__name__}; give one in TabState.bounds")


def _update(component: Any, value: Any) -> Any:
    """A component update that sets `value` (a slider's range grows to hold it)."""
    if isinstance(component, gr.Slider) and value is not None:
        return gr.Slider(value=value, maximum=max(float(component.maximum), float(value)))
    return value if isinstance(component, gr.State) else gr.update(value=value)


def share_row(state: TabState, config: AppConfig) -> None:
    """A "copy link" button and the link it made, at the foot of the tab (inside its gr.Tab)."""
    schema = state.schema(config)
    names = list(state.fields)
    with gr.Row(equal_height=True):
        button = gr.Button("🔗 Copy link to this view", size="sm", scale=0, elem_id=f"{state.key}-copy-link")
        query = gr.Textbox(visible=False)
        link = gr.Textbox(
            label="Link to this view (open it to see the same text and settings)",
            interactive=False,
            buttons=["copy"],
            scale=4,
            elem_id=f"{state.key}-link",
        )

    def make_query(*values: Any) -> str:
        return links.encode(state.key, dict(zip(names, values, strict=True)), schema)

    button.click(make_query, [state.fields[n] for n in names], query, queue=False, api_name=False).then(
        None, query, link, js=_COPY_JS, queue=False, api_name=False
    )


def _fields(states: Sequence[TabState]) -> list[Any]:
    return [comp for s in states for comp in s.fields.values()]


def _triggers(states: Sequence[TabState]) -> list[gr.Number]:
    return [s.trigger for s in states if s.trigger is not None]


def _set_fields(
    states: Sequence[TabState], key: str | None, values: Mapping[str, Any], current: Mapping[int, Any]
) -> list[Any]:
    """Updates for `_fields(states)`: the fields of tab `key` set from `values`, the rest left as they
    are. A gr.State is given its `current` value back (by id): gradio would take a skipped State for
    a changed one and fire its change events."""
    updates = []
    for s in states:
        for name, comp in s.fields.items():
            if s.key == key and name in values:
                updates.append(_update(comp, values[name]))
            else:
                updates.append(current[id(comp)] if isinstance(comp, gr.State) else gr.skip())
    return updates


def wire(tabs: gr.Tabs, states: Sequence[TabState], config: AppConfig, demo: gr.Blocks) -> None:
    """Restore a shared link when a page loads, and wire every tab's "try it" buttons.

    Two steps each: first the fields are set and the tab selected, then (once the page shows those
    values) the tab's trigger changes, so its own event runs on the restored values. States that do
    not change get their own value back, never a skip (see `_set_fields`).
    """
    schemas = {s.key: s.schema(config) for s in states}
    opened = gr.State(None)  # the tab a link or a "try it" opened
    state_fields = [c for c in _fields(states) if isinstance(c, gr.State)]
    triggers = _triggers(states)
    outputs = [tabs, opened, *_fields(states)]

    def restore(request: gr.Request, *current: Any) -> list[Any]:
        now = dict(zip((id(c) for c in state_fields), current, strict=True))
        restored = links.decode(str(request.query_params), schemas)
        if restored.problems:
            logger.info("link partly restored: %s", "; ".join(restored.problems))
            gr.Warning("Part of this link could not be used: " + "; ".join(restored.problems[:4]) + ".")
        selected = gr.Tabs(selected=restored.tab) if restored.tab else gr.skip()
        return [selected, restored.tab, *_set_fields(states, restored.tab, restored.values, now)]

    def run(key: str | None) -> list[Any]:
        """Tab `key`'s trigger changes (so it re-runs); the others are left alone."""
        return [time.time_ns() % 2**50 if s.key == key else gr.skip() for s in states if s.trigger is not None]

    # No model runs in these: outside the queue's model pool, so a page opens while others compute.
    light = {"api_name": False, "concurrency_limit": None}
    demo.load(restore, state_fields, outputs, **light).then(run, opened, triggers, **light)
    for source in states:
        for try_it in source.try_its:
            event = wire_try_it(try_it, states, schemas[try_it.tab], outputs, tabs, state_fields)
            event.then(run, opened, triggers, **light)


def wire_try_it(
    try_it: TryIt,
    states: Sequence[TabState],
    schema: Mapping[str, links.Field],
    outputs: list[Any],
    tabs: gr.Tabs,
    state_fields: list[gr.State],
) -> Any:
    """The button's click: select the tab and set its fields (through the same checks as a link's values)."""
    names = list(try_it.values)
    live = [n for n in names if isinstance(try_it.values[n], gr.components.Component | gr.State)]

    def open_tab(*values: Any) -> list[Any]:
        now = dict(zip((id(c) for c in state_fields), values[len(live) :], strict=True))
        given = dict(try_it.values) | dict(zip(live, values[: len(live)], strict=True))
        fitting = {}
        for name, value in given.items():
            if value is None:
                continue
            if schema[name].kind == "choices":  # what this app offers of them
                value = [v for v in value if v in schema[name].choices]
            try:
                fitting[name] = schema[name].parse(schema[name].format(value))
            except (ValueError, IndexError):
                continue
        return [gr.Tabs(selected=try_it.tab), try_it.tab, *_set_fields(states, try_it.tab, fitting, now)]

    inputs = [try_it.values[n] for n in live] + state_fields
    return try_it.button.click(open_tab, inputs, outputs, api_name=False, concurrency_limit=None)
