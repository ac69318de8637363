"""Browser test of the Learn tab: walk every lesson, check each ran its core (real units and numbers).

As a script it drives any running app and saves the screenshots:

    python tests/browser/test_learn_browser.py --url http://127.0.0.1:7860/ --out-dir /tmp/shots
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

TIMEOUT_MS = 120_000


def text_of(page: Any, elem_id: str) -> str:
    return page.locator(f"#{elem_id}").inner_text()


def wait_text(page: Any, elem_id: str, pattern: str) -> None:
    page.wait_for_function(
        "([id, p]) => new RegExp(p).test((document.querySelector('#' + id) || {innerText: ''}).innerText)",
        arg=[elem_id, pattern],
        timeout=TIMEOUT_MS,
    )


def walk_lessons(page: Any, screenshot_dir: Path) -> None:
    page.get_by_role("tab", name="Learn", exact=True).click()
    # 1: one sentence, cut four ways
    page.locator("#learn-units-run").click()
    page.locator("#learn-units-cards .u").first.wait_for(timeout=TIMEOUT_MS)
    cards = page.locator("#learn-units-cards .seg-card")
    names = [c.get_attribute("data-segmenter") for c in cards.all()]
    assert names[0] == "bytes" and "hat-words" in names and len(names) >= 3
    units = page.locator("#learn-units-cards .seg-card").first.locator(".u").count()
    assert units == len("The unbelievable Schifffahrtsgesellschaft sailed to Zürich 🚢.".encode())
    assert "units per word" in text_of(page, "learn-units-table")
    page.screenshot(path=str(screenshot_dir / "learn-1-units.png"), full_page=True)
    page.locator("#learn-next-0").click()
    # 2: the shipped units-per-word figure
    page.locator("#learn-upw img").wait_for(timeout=30_000)
    page.locator("#learn-next-1").click()
    # 3: BPE merges, step by step
    page.locator("#learn-bpe-train").click()
    wait_text(page, "learn-bpe-note", r"Merge 10: .* times in the text")
    rows = page.locator("#learn-bpe-cards .seg-row")
    assert rows.count() == 2  # the text and its misspelled copy
    at_10 = rows.first.locator(".u").count()
    box = page.locator("#learn-bpe-k input[type=number]")
    box.fill("30")
    box.press("Enter")
    wait_text(page, "learn-bpe-note", r"Merge 30:")
    assert rows.first.locator(".u").count() < at_10  # more merges, fewer units
    assert re.search(r"\b30\b", text_of(page, "learn-bpe-merges"))
    page.locator("#learn-bpe-curve .main-svg").first.wait_for(timeout=30_000)
    page.screenshot(path=str(screenshot_dir / "learn-3-bpe.png"), full_page=True)
    page.locator("#learn-next-2").click()
    # 4: a typo, read by the models
    page.locator("#learn-typo-run").click()
    wait_text(page, "learn-typo-table", r"%")
    assert page.locator("#learn-typo-cards .seg-row").count() >= 4  # clean and typos per segmenter
    assert re.search(r"\d\.\d{3}", text_of(page, "learn-typo-table"))
    page.screenshot(path=str(screenshot_dir / "learn-4-typo.png"), full_page=True)
    page.locator("#learn-next-3").click()
    glossary = page.locator("#learn-step-4")
    glossary.get_by_text("acceptance", exact=False).first.wait_for(state="visible")
    assert "bits per byte" in glossary.inner_text()


def test_learn_tab_walks_every_lesson(page: Any, screenshot_dir: Path) -> None:
    walk_lessons(page, screenshot_dir)


if __name__ == "__main__":
    from script import run_walk

    run_walk(walk_lessons, __doc__.split("\n")[0])
