"""Browser test of the token-boundaries tab: enter text, run, find the spans and the charts.

Runs against the app started by the `app_url` fixture (tiny `hf:` models). The same driver,
run as a script against an app with the pretrained models, takes the README screenshot:

    python tests/browser/test_segment_browser.py --url http://127.0.0.1:7860/ --out assets/screenshot.png
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

# Emoji, CJK, a typo-able English sentence and HTML that must stay text.
TEXT = 'The quick brown fox jumps over the lazy dog. 👨\u200d👩\u200d👧 日本語 <b id="injected">bold?</b>'
RESULT_TIMEOUT_MS = 90_000  # the first run loads tokenizers and the byte model


def check_segmenters(page: Any, wanted: list[str]) -> None:
    """Tick the segmenter checkboxes whose labels contain any of ``wanted`` (and untick none).

    Checked twice: a tick made while gradio is still hydrating the page can be reset by it.
    """
    group = page.locator("#segment-segmenters")
    group.wait_for(state="visible")
    for _ in range(2):
        for label in group.locator("label").all():
            text = label.inner_text()
            box = label.locator("input[type=checkbox]")
            if any(w in text for w in wanted) and not box.is_checked():
                box.check()
        page.wait_for_timeout(300)


def run_view(
    page: Any, text: str, segmenters: list[str], perturb: bool = True, visible_ws: bool = False, seed: int = 0
) -> None:
    page.get_by_role("tab", name="Token boundaries").click()
    page.locator("#segment-text textarea").fill(text)
    check_segmenters(page, segmenters)
    if perturb:
        page.locator("#segment-seed input").fill(str(seed))
        page.locator("#segment-perturb input[type=checkbox]").check()
    if visible_ws:
        page.get_by_label(re.compile("Visible whitespace")).check()
    page.locator("#segment-run").click()
    page.wait_for_selector("#segment-cards .seg-card .u", timeout=RESULT_TIMEOUT_MS)
    # the chart is drawn after the cards; plotly marks the finished plot with .main-svg
    page.wait_for_selector("#segment-chart .main-svg", timeout=RESULT_TIMEOUT_MS)
    page.wait_for_timeout(500)  # let plotly finish its transition before screenshots


def test_segment_view(page: Any, screenshot_dir: Path) -> None:
    run_view(page, TEXT, ["bytes", "entropy-patches", "· bpe", "· byte"])
    cards = page.locator("#segment-cards .seg-card")
    names = [c.get_attribute("data-segmenter") for c in cards.all()]
    assert "hat-words" in names and "bytes" in names and "entropy-patches" in names
    assert any(n.startswith("hf:") for n in names)

    # Spans: one per unit, hover text with id and bytes; HAT keeps "quick" whole.
    hat = page.locator('#segment-cards .seg-card[data-segmenter="hat-words"]')
    hat_units = [u.inner_text() for u in hat.locator(".seg-row").first.locator(".u").all()]
    assert " quick" in hat_units
    title = hat.locator(".u").nth(1).get_attribute("title")
    assert "id 1" in title and "bytes (6): 20 71 75 69 63 6b" in title
    byte_card = page.locator('#segment-cards .seg-card[data-segmenter="bytes"]')
    assert byte_card.locator(".u.cont").count() > 0  # continuation bytes of emoji/CJK are shown
    assert byte_card.locator(".u.partial").count() > 0
    # Clean and perturbed cuts side by side
    assert hat.locator(".seg-variant").all_inner_texts() == ["clean", "perturbed"]

    # User text is never HTML
    assert page.locator("#injected").count() == 0
    assert '<b id="injected">' in page.locator("#segment-cards").inner_text().replace("⋅", " ")

    # Statistics table, bar chart and the entropy line
    stats = page.locator("#segment-stats")
    assert "hat-words" in stats.inner_text()
    assert page.locator("#segment-chart .main-svg").count() > 0
    assert page.locator("#segment-chart .bars path").count() > 0
    assert page.locator("#segment-entropy .main-svg").count() > 0

    path = screenshot_dir / "segment.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000


def test_segment_view_errors(page: Any, screenshot_dir: Path) -> None:
    page.get_by_role("tab", name="Token boundaries").click()
    page.locator("#segment-text textarea").fill("")
    page.locator("#segment-run").click()
    toast = page.locator(".toast-body").first
    toast.wait_for(timeout=30_000)
    assert "enter some text" in toast.inner_text().lower()
    page.screenshot(path=str(screenshot_dir / "segment-error.png"))


def main() -> None:
    """Take the README screenshot from a running app (pretrained models make a better picture)."""
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--url", default="http://127.0.0.1:7860/")
    ap.add_argument("--out", default="tests/browser/screenshots/segment-readme.png")
    ap.add_argument("--segmenters", default="bpe-tiny,smollm2-135m,gemma3-270m,entropy-patches")
    ap.add_argument("--seed", type=int, default=12, help="typo seed (12 turns quick into qhick)")
    args = ap.parse_args()
    text = "The quick brown fox jumps over the lazy dog. Donaudampfschifffahrt! 👨\u200d👩\u200d👧 日本語"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(args.url)
        page.wait_for_selector(".gradio-container")
        run_view(page, text, args.segmenters.split(","), seed=args.seed)
        page.screenshot(path=args.out, full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
