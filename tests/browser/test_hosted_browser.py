"""The app in hosted mode, as strangers meet it on a Space: bounds are shown and named when crossed,
and mistakes get a friendly message (never a traceback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from playground.config import DEFAULT_MAX_TEXT_CHARS, HOSTED_LIMIT_NOTE

pytestmark = pytest.mark.browser

TIMEOUT_MS = 120_000


def toast_text(page: Any) -> str:
    toast = page.locator(".toast-body").first
    toast.wait_for(state="visible", timeout=TIMEOUT_MS)
    return toast.inner_text()


def test_hosted_app_shows_its_limits_and_names_a_crossed_bound(
    page_at: Any, hosted_app_url: str, screenshot_dir: Path
) -> None:
    with page_at(hosted_app_url) as page:
        assert "hosted mode" in page.get_by_text("Device:").inner_text()
        page.locator("#app-limits").get_by_text("Limits of this app").click()
        page.locator("#app-limits table").wait_for(state="visible")
        limits = page.locator("#app-limits").inner_text()
        assert f"{DEFAULT_MAX_TEXT_CHARS:,} characters" in limits and "new tokens" in limits
        page.get_by_role("tab", name="Token boundaries").click()
        label = page.locator("#segment-text").inner_text()
        assert f"at most {DEFAULT_MAX_TEXT_CHARS:,} characters" in label  # the bound next to its control
        page.locator("#segment-text textarea").fill("word " * (DEFAULT_MAX_TEXT_CHARS // 5 + 1))
        page.locator("#segment-run").click()
        message = toast_text(page)
        assert f"the limit is {DEFAULT_MAX_TEXT_CHARS:,}" in message and HOSTED_LIMIT_NOTE in message
        assert "--max-text-chars" not in message  # strangers cannot restart the server
        page.screenshot(path=str(screenshot_dir / "hosted-1-limit.png"), full_page=True)


def test_hosted_app_gives_a_friendly_error(page_at: Any, hosted_app_url: str, screenshot_dir: Path) -> None:
    with page_at(hosted_app_url) as page:
        page.get_by_role("tab", name="Robustness").click()
        page.locator("#robustness-models").get_by_role("button", name="Clear").first.click()  # no model
        page.locator("#robustness-run").click()
        message = toast_text(page)
        assert "Please select at least 1 model" in message
        assert "Traceback" not in message and "Error:" not in message.split("\n", 1)[-1]
        page.screenshot(path=str(screenshot_dir / "hosted-2-error.png"), full_page=True)


def test_a_first_load_is_announced_not_a_silent_wait(page_at: Any, hosted_app_url: str, screenshot_dir: Path) -> None:
    with page_at(hosted_app_url) as page:
        page.get_by_role("tab", name="Robustness").click()
        page.locator("#robustness-run").click()
        page.get_by_text("Loading hat-tiny: reading its weights.").first.wait_for(state="visible", timeout=TIMEOUT_MS)
        page.screenshot(path=str(screenshot_dir / "hosted-3-loading.png"), full_page=True)
        page.locator("#robustness-heat .rb-row").first.wait_for(state="visible", timeout=TIMEOUT_MS)
