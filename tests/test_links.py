"""Shareable links: a tab's state survives the URL, and a link can set nothing a user could not."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import app
from playground import links
from playground.config import AppConfig
from playground.ui import links as links_ui

FIELDS = {
    "text": links.Field("text", max_chars=50),
    "models": links.Field("choices", choices=("hat-tiny", "bpe-tiny", "hf:/models/a b")),
    "kind": links.Field("choice", choices=("typo", "casing")),
    "rate": links.Field("float", 0.0, 1.0),
    "k": links.Field("int", 0, 60),
    "typos": links.Field("bool"),
}
TABS = {"robustness": FIELDS, "other": {"text": links.Field("text")}}


def roundtrip(values: dict[str, Any], tab: str = "robustness") -> links.Restored:
    return links.decode(links.encode(tab, values, TABS[tab]), TABS)


def test_every_kind_of_field_survives_the_link() -> None:
    values = {
        "text": "Zürich 🚢 a&b=c?d#e+f%20 ",
        "models": ["bpe-tiny", "hf:/models/a b"],
        "kind": "casing",
        "rate": 0.25,
        "k": 7,
        "typos": True,
    }
    restored = roundtrip(values)
    assert restored.tab == "robustness" and not restored.problems
    assert restored.values == values


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=50))
def test_any_text_survives_the_link(text: str) -> None:
    restored = roundtrip({"text": text}, "other")
    assert restored.values == {"text": text} and not restored.problems


def test_values_that_do_not_fit_are_dropped_and_named() -> None:
    query = "tab=robustness&models=hat-tiny,gpt-5&kind=rm%20-rf&rate=2&k=3.5&typos=maybe&text=" + "x" * 51
    restored = links.decode(query + "&path=/etc/passwd", TABS)
    assert restored.tab == "robustness" and restored.values == {}
    problems = " | ".join(restored.problems)
    for name in ("models: not offered here: gpt-5", "kind:", "rate: above the maximum 1", "k: must be a whole"):
        assert name in problems
    assert "typos: must be 0 or 1" in problems and "longer than 50 characters" in problems
    assert "unknown setting 'path'" in problems


@pytest.mark.parametrize(
    "query, problem",
    [
        ("tab=../../etc", "unknown tab '../../etc'"),
        ("text=hello", "names no tab"),
        ("tab=robustness&k=nan", "k:"),
        ("tab=robustness&k=inf", "k: must be a finite number"),
        ("tab=robustness&text=%ED%A0%80", None),  # undecodable bytes become U+FFFD, a valid text
        ("tab=robustness&" + "a" * links.MAX_QUERY_CHARS, "longer than"),
    ],
)
def test_bad_links_restore_nothing_unsafe(query: str, problem: str | None) -> None:
    restored = links.decode(query, TABS)
    if problem is None:
        assert restored.values == {"text": "\ufffd\ufffd\ufffd"} and not restored.problems
    else:
        assert any(problem in p for p in restored.problems), restored.problems
        assert "k" not in restored.values


def test_an_empty_query_restores_nothing_and_says_nothing() -> None:
    assert links.decode("", TABS) == links.Restored(None)
    assert links.decode("?", TABS) == links.Restored(None)


def test_component_schemas() -> None:
    config = AppConfig(models=["bpe-tiny"], max_text_chars=123)
    with gr.Blocks():
        assert links_ui.field_for(gr.Textbox(), config) == links.Field("text", max_chars=123)
        assert links_ui.field_for(gr.Slider(0, 8, step=0.05), config).kind == "float"
        assert links_ui.field_for(gr.Slider(1, 64, step=1), config) == links.Field("int", 1, 64)
        assert links_ui.field_for(gr.Number(precision=0, minimum=1), config) == links.Field("int", 1, None)
        assert links_ui.field_for(gr.Checkbox(), config).kind == "bool"
        group = links_ui.field_for(gr.CheckboxGroup(choices=[("bytes (UTF-8)", "bytes"), "x"]), config)
        assert group == links.Field("choices", choices=("bytes", "x"))
        assert links_ui.field_for(gr.Dropdown(choices=["a"], multiselect=True), config).kind == "choices"
        assert links_ui.field_for(gr.Radio(choices=[("A", "a")]), config) == links.Field("choice", choices=("a",))
        with pytest.raises(TypeError):
            links_ui.field_for(gr.State(), config)


def test_every_tab_shares_a_state_the_link_can_carry() -> None:
    """Each view's build_tab returns its TabState (key = the module's KEY and the tab id); its
    current values encode and decode to themselves."""
    config = AppConfig(models=["hat-tiny", "bpe-tiny", "byte-tiny"])
    states = {}
    with gr.Blocks():
        for _, module_name in app.TABS:
            module = __import__(module_name, fromlist=["build_tab"])
            with gr.Tab(module_name, id=module.KEY):
                state = module.build_tab(config)
            assert isinstance(state, links_ui.TabState) and state.key == module.KEY
            assert state.key not in states
            states[state.key] = state
            schema = state.schema(config)
            values = {n: c.value for n, c in state.fields.items() if c.value not in (None, "")}
            restored = links.decode(links.encode(state.key, values, schema), {state.key: schema})
            assert not restored.problems, (state.key, restored.problems)
            assert restored.values == values, state.key
    for state in states.values():
        for try_it in state.try_its:  # a lesson's "try it" names a tab and fields it has
            assert set(try_it.values) <= set(states[try_it.tab].fields), (try_it.tab, try_it.values)
    assert len(states["learn"].try_its) == 6  # one per lesson
