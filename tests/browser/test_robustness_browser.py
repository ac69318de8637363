"""Browser test of the robustness tab: perturb, compare, read the heat strips, sweep, stop a sweep.

Runs against the app started by the `app_url` fixture (tiny `hf:` models). As a script it drives
any running app and saves the screenshots, e.g. with the trained models:

    python tests/browser/test_robustness_browser.py --url http://127.0.0.1:7860/ --out-dir /tmp/shots
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

TEXT = (
    "The quick brown fox jumps over the lazy dog. Tokenizers cut this sentence into pieces, "
    'and HAT keeps every word whole. <b id="injected">bold?</b>\nA second line with more words.'
)
RESULT_TIMEOUT_MS = 120_000  # the first run loads the models


def select_option(page: Any, elem_id: str, label: str) -> None:
    """Pick `label` in the gradio dropdown `elem_id`."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=label, exact=True).click()


def run_compare(page: Any, text: str = TEXT, rate: float = 0.3, seed: int = 2) -> None:
    page.get_by_role("tab", name="Robustness").click()
    page.locator("#robustness-text textarea").fill(text)
    rate_box = page.locator("#robustness-rate input[type=number]")
    rate_box.fill(str(rate))
    rate_box.press("Enter")
    page.locator("#robustness-seed input").fill(str(seed))
    page.locator("#robustness-run").click()
    page.wait_for_selector("#robustness-heat .rb-row", timeout=RESULT_TIMEOUT_MS)
    # next-word accuracy comes in a second, chained event
    page.wait_for_function(
        "() => { const t = document.querySelector('#robustness-next-word'); return t && /\\d%/.test(t.innerText); }",
        timeout=RESULT_TIMEOUT_MS,
    )


def run_sweep(page: Any, step_label: str = "10% steps") -> None:
    select_option(page, "robustness-sweep-step", step_label)
    page.locator("#robustness-sweep-run").click()
    page.wait_for_function(
        "() => (document.querySelector('#robustness-sweep-status') || {innerText: ''}).innerText.includes('Done')",
        timeout=RESULT_TIMEOUT_MS,
    )
    page.wait_for_selector("#robustness-sweep-chart .main-svg", timeout=RESULT_TIMEOUT_MS)
    page.wait_for_timeout(700)  # let plotly finish drawing


def check_view(page: Any, n_models: int) -> None:
    # the two texts, with the changes marked, and the user's HTML kept as text
    panels = page.locator("#robustness-texts .rb-panel")
    assert panels.count() == 2
    assert page.locator("#robustness-texts .rb-del").count() > 0
    assert page.locator("#robustness-texts .rb-ins").count() > 0
    assert page.locator("#injected").count() == 0
    assert '<b id="injected">' in panels.first.inner_text().replace("∅", "")  # ∅ marks an insertion
    # one row per model and variant in every chunk of the heat strips, aligned column by column
    chunks = page.locator("#robustness-heat .rb-chunk")
    assert chunks.count() >= 2  # the text has a newline
    first = chunks.first
    assert first.locator(".rb-row").count() == 2 * n_models
    widths = {row.locator(".rb-c").count() for row in first.locator(".rb-row").all()}
    assert len(widths) == 1  # every row of a chunk has the same number of columns
    assert page.locator("#robustness-heat .rb-c.chg").count() > 0
    cell = first.locator(".rb-row").first.locator(".rb-c").first
    assert "bits" in (cell.get_attribute("title") or "")
    box = cell.bounding_box()
    assert box is not None and box["width"] > 3 and box["height"] > 8  # rendered, not collapsed
    # the scores table names every model
    scores = page.locator("#robustness-scores").inner_text()
    assert "bits/byte clean" in scores and scores.count("hf:") == n_models
    assert page.locator("#robustness-next-word").inner_text().count("hf:") == n_models


def check_chart(page: Any, n_models: int) -> None:
    chart = page.locator("#robustness-sweep-chart")
    assert chart.locator(".main-svg").count() > 0
    assert chart.locator(".scatterlayer .trace").count() == n_models
    assert chart.locator(".scatterlayer .trace path.js-line").count() == n_models
    assert "Rise in bits per byte" in chart.inner_text()


def test_robustness_view(page: Any, app_models: list[str], screenshot_dir: Path) -> None:
    run_compare(page)
    check_view(page, len(app_models))
    page.locator("#robustness-heat").screenshot(path=str(screenshot_dir / "robustness-heat.png"))
    run_sweep(page)
    check_chart(page, len(app_models))
    page.locator("#robustness-sweep-chart").screenshot(path=str(screenshot_dir / "robustness-sweep.png"))
    page.screenshot(path=str(screenshot_dir / "robustness.png"), full_page=True)

    # a long sweep (2.5% steps, a new seed: nothing cached) stops on "Stop"
    page.locator("#robustness-seed input").fill("99")
    select_option(page, "robustness-sweep-step", "2.5% steps")
    page.locator("#robustness-sweep-run").click()
    page.wait_for_timeout(300)
    page.locator("#robustness-sweep-stop").click()
    page.wait_for_function(
        "() => (document.querySelector('#robustness-sweep-status') || {innerText: ''}).innerText.includes('Stopped')",
        timeout=RESULT_TIMEOUT_MS,
    )
    page.wait_for_timeout(1500)
    assert "Done" not in page.locator("#robustness-sweep-status").inner_text()


def test_robustness_empty_text_error(page: Any) -> None:
    page.get_by_role("tab", name="Robustness").click()
    page.locator("#robustness-text textarea").fill("   ")
    page.locator("#robustness-run").click()
    page.get_by_text("Please enter some text first.").first.wait_for(timeout=RESULT_TIMEOUT_MS)


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:7860/")
    parser.add_argument("--out-dir", default="tests/browser/screenshots")
    parser.add_argument("--models", type=int, default=3, help="how many models the app preselects")
    args = parser.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"], headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(args.url)
        page.wait_for_selector(".gradio-container")
        run_compare(page)
        page.locator("#robustness-heat").screenshot(path=str(out / "robustness-heat.png"))
        run_sweep(page, "5% steps")
        page.locator("#robustness-sweep-chart").screenshot(path=str(out / "robustness-sweep.png"))
        page.screenshot(path=str(out / "robustness.png"), full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
