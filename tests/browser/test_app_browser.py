"""The served app in headless chromium: title, one tab per view, and the README screenshot."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

import app

pytestmark = pytest.mark.browser

README_SCREENSHOT = Path(__file__).resolve().parents[2] / "assets" / "screenshot.png"


def test_app_serves_every_tab(page: Any, app_models: list[str], screenshot_dir: Path) -> None:
    page.get_by_role("heading", name="HAT Playground").wait_for()
    # Gradio sets the document title from script after the first render: wait for it.
    page.wait_for_function("document.title.length > 0", timeout=60_000)
    assert page.title() == app.TITLE
    # The tab bar may render after the heading: expect() retries until the labels match.
    expect(page.get_by_role("tab")).to_have_text([label for label, _ in app.TABS])
    footer = page.get_by_text("Device: cpu").inner_text()
    for name in app_models:
        assert name in footer
    page.screenshot(path=str(screenshot_dir / "app.png"), full_page=True)


@pytest.mark.pretrained
def test_readme_screenshot(
    page_at: Any, pretrained_app_url: str, pretrained_models: list[str], screenshot_dir: Path
) -> None:
    """Run the first view on the real models and save the README screenshot.

    `assets/screenshot.png` is written when it is missing or HAT_PLAYGROUND_UPDATE_SCREENSHOT=1,
    so test runs do not keep rewriting a committed file.
    """
    with page_at(pretrained_app_url) as page:
        page.get_by_role("tab", name="Token boundaries").click()
        page.get_by_role("button", name="typos", exact=True).click()
        page.locator("#segment-run").click()
        # First use may convert the GGUF tokenizers (tens of seconds); later runs read the cache.
        page.locator("#segment-cards .u").first.wait_for(state="visible", timeout=120_000)
        page.locator("#segment-chart .js-plotly-plot").first.wait_for(state="visible", timeout=30_000)
        path = screenshot_dir / "readme.png"
        page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    if not README_SCREENSHOT.exists() or os.environ.get("HAT_PLAYGROUND_UPDATE_SCREENSHOT") == "1":
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_SCREENSHOT)
