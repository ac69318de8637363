"""Browser test of the adaptation tab: the shipped curves, then a live run on the pasted text, score, generate.

The live panel adapts copies of the shipped hat-tiny and bpe-tiny (in `assets/models/`), whatever
models the app was started with. As a script it drives any running app and saves the screenshots:

    python tests/browser/test_adaptation_browser.py --url http://127.0.0.1:7860/ --out-dir /tmp/shots
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

RESULT_TIMEOUT_MS = 240_000  # the live run loads two models, copies them and trains on a busy CPU


def status(page: Any) -> str:
    return page.locator("#adaptation-live-status").inner_text()


def run_live(page: Any, steps: int = 2) -> None:
    page.get_by_role("tab", name="Adaptation").click()
    box = page.locator("#adaptation-live-steps input[type=number]")
    box.fill(str(steps))
    box.press("Enter")
    page.locator("#adaptation-live-run").click()
    page.wait_for_function(
        "() => (document.querySelector('#adaptation-live-status') || {innerText: ''}).innerText.includes('Done')",
        timeout=RESULT_TIMEOUT_MS,
    )
    page.wait_for_selector("#adaptation-live-chart .main-svg", timeout=30_000)
    page.wait_for_timeout(700)  # let plotly finish drawing


def check_live(page: Any, steps: int = 2) -> None:
    assert f"{steps} steps" in status(page)
    # two loss curves (one per model), each with one point per step
    traces = page.locator("#adaptation-live-chart .scatterlayer .trace")
    assert traces.count() == 2
    assert traces.first.locator(".point").count() == steps
    legend = " ".join(page.locator("#adaptation-live-chart .legendtext").all_text_contents())
    assert "hat-tiny" in legend and "bpe-tiny" in legend
    units = page.locator("#adaptation-units").inner_text()
    assert "hat-words" in units and "bpe-tiny" in units and "bytes" in units
    page.locator("#adaptation-score").click()
    page.wait_for_function(
        "() => /bpe-tiny/.test((document.querySelector('#adaptation-scores') || {innerText: ''}).innerText)",
        timeout=RESULT_TIMEOUT_MS,
    )
    scores = page.locator("#adaptation-scores").inner_text()
    assert "hat-tiny" in scores and "%" in scores


def check_bound(page: Any, max_steps: int = 60) -> None:
    """Over the step bound: the slider's box falls back to the bound once it loses focus."""
    box = page.locator("#adaptation-live-steps input[type=number]")
    box.fill(str(max_steps + 40))
    box.press("Tab")
    page.wait_for_timeout(500)
    assert float(box.input_value()) == max_steps


def test_the_step_bound_holds_through_the_api(app_url: str) -> None:
    """A client that skips the slider gets the bound's message, not a long run or a traceback."""
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    with pytest.raises(Exception, match="greater than maximum value 60"):
        client.predict("Ein Text. " * 30, 100, api_name="/adaptation_live")


def test_adaptation_tab(page: Any, screenshot_dir: Path) -> None:
    page.get_by_role("tab", name="Adaptation").click()
    page.locator("#adaptation-live-text textarea").wait_for()
    speedup = page.locator("#adaptation-speedup").inner_text()
    if "Speed-up" in speedup:  # the shipped runs: their curves are drawn, three panels
        page.locator("#adaptation-curves .main-svg").first.wait_for(timeout=30_000)
        assert page.locator("#adaptation-curves .xtick").count() > 0
        assert re.search(r"\d\.\d\d×", speedup)
    else:
        assert "No adaptation run" in speedup
    run_live(page)
    check_live(page)
    page.screenshot(path=str(screenshot_dir / "adaptation.png"), full_page=True)
    check_bound(page)


if __name__ == "__main__":
    from script import run_walk

    run_walk(test_adaptation_tab, __doc__.split("\n")[0])
