"""Attention-maps tab in headless chromium: run, switch layer and head, open a head from the grid,
compare on character axes, pick a query unit, export, and show an error for empty text.

Runs against the `hat_app_url` app: a tiny HAT and the tiny BPE model.
Screenshots go to tests/browser/screenshots/attention-*.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

TEXT = "The quick brown fox jumps over the lazy dog. Über 😀!"
TITLES = "(sel) => Array.from(document.querySelectorAll(sel + ' .annotation-text')).map((e) => e.textContent)"
Z_DATA = """(sel) => {
  const plot = document.querySelector(sel + ' .js-plotly-plot');
  return plot && plot.data ? plot.data.map((t) => JSON.stringify(t.z)).join('|') : null;
}"""


@pytest.fixture()
def tab(browser: Any, hat_app_url: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(hat_app_url)
    page.wait_for_selector(".gradio-container", state="visible")
    page.get_by_role("tab", name="Attention maps").click()
    try:
        yield page
    finally:
        context.close()


def titles(page: Any, sel: str = "#attention-plot") -> list[str]:
    return page.evaluate(TITLES, sel)


def wait_title(page: Any, text: str, sel: str = "#attention-plot") -> None:
    """Wait until a subplot title of the plot contains `text`."""
    page.wait_for_function(f"(sel) => ({TITLES})(sel).some((t) => t.includes({text!r}))", arg=sel)


def z_data(page: Any) -> str:
    return page.evaluate(Z_DATA, "#attention-plot")


def test_attention_view(tab: Any, screenshot_dir: Path) -> None:
    page = tab
    page.fill("#attention-text textarea", TEXT)
    page.click("#attention-run")
    wait_title(page, "backbone · layer 0 · mean of heads")
    page.wait_for_selector("#attention-grid-a .thumbnail-item")
    page.wait_for_timeout(500)
    page.screenshot(path=str(screenshot_dir / "attention-1-run.png"), full_page=True)
    assert any(t.endswith("tokens · layer 0 · mean of heads") for t in titles(page))  # model B beside it
    # HAT units with visible whitespace on the axis.
    assert page.locator("#attention-plot .xtick text", has_text="⋅quick").count() >= 1
    mean_layer0 = z_data(page)

    # Switch the layer (slider's number box), then one head, then the next head (keyboard on the slider).
    box = page.locator("#attention-layer input[type=number]")
    box.fill("1")
    box.press("Enter")
    wait_title(page, "backbone · layer 1 · mean of heads")
    assert z_data(page) != mean_layer0
    page.locator("#attention-how").get_by_label("one head").check()
    wait_title(page, "backbone · layer 1 · head 0")
    head0 = z_data(page)
    slider = page.locator("#attention-head input[type=range]")
    slider.focus()
    slider.press("ArrowRight")
    wait_title(page, "backbone · layer 1 · head 1")
    assert z_data(page) != head0
    page.screenshot(path=str(screenshot_dir / "attention-2-head.png"), full_page=True)

    # Back to the mean, then open head 0 from the head grid of model A.
    page.locator("#attention-how").get_by_label("mean of heads").check()
    wait_title(page, "backbone · layer 1 · mean of heads")
    mean_layer1 = z_data(page)
    page.locator("#attention-grid-a .thumbnail-item").first.click()
    wait_title(page, "backbone · layer 1 · head 0")
    assert z_data(page) != mean_layer1
    assert z_data(page) == head0
    assert page.locator("#attention-head input[type=number]").input_value() == "0"
    page.locator("#attention-grid-a").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "attention-3-grid-click.png"), full_page=True)

    # Character axes: both models on the same characters plus the difference map.
    page.locator("#attention-axes").get_by_label("characters (compare models)").check()
    page.wait_for_function(f"(sel) => ({TITLES})(sel).some((t) => t.includes('difference'))", arg="#attention-plot")
    assert len(titles(page)) == 3

    # What does "fox" attend to: click it in the query text.
    page.locator("#attention-query span", has_text="fox").first.click()
    wait_title(page, "what char 16 “f” attends to", sel="#attention-profile")
    page.screenshot(path=str(screenshot_dir / "attention-4-chars-profile.png"), full_page=True)

    # HAT's encoder level, with its word boundaries.
    page.locator("#attention-level").get_by_label("encoder").check()
    wait_title(page, "encoder · layer 0 · head 0")
    page.locator("#attention-axes").get_by_label("model units").check()
    page.wait_for_function(f"(sel) => ({TITLES})(sel).length === 2", arg="#attention-plot")
    assert page.locator("#attention-plot .xtick text", has_text="[WORD]").count() >= 1
    page.screenshot(path=str(screenshot_dir / "attention-5-encoder.png"), full_page=True)

    # Raw weights as .npz, one file per model.
    page.click("#attention-export-npz")
    page.wait_for_selector("#attention-files a")
    names = page.locator("#attention-files").inner_text()
    assert ".npz" in names and names.count(".npz") == 2


def test_attention_empty_text_shows_an_error(tab: Any, screenshot_dir: Path) -> None:
    page = tab
    page.fill("#attention-text textarea", "   ")
    page.click("#attention-run")
    toast = page.locator(".toast-body", has_text="Please enter some text")
    toast.first.wait_for(state="visible")
    page.screenshot(path=str(screenshot_dir / "attention-6-error.png"))
