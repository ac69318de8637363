"""Browser test of the Learn tab: walk every lesson, check each ran its core (real units and numbers),
follow a "try it" into its tab, and reopen a shared link in a fresh page.

As a script it drives any running app and saves the screenshots:

    python tests/browser/test_learn_browser.py --url http://127.0.0.1:7860/ --out-dir /tmp/shots
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

TIMEOUT_MS = 120_000


@pytest.fixture()
def page(page_at: Any, trained_app_url: str) -> Iterator[Any]:
    """A fresh page on the app with the project's tiny models, which the lessons are written for."""
    with page_at(trained_app_url) as page:
        yield page


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
    # 5: HAT's three levels on one sentence
    page.locator("#learn-hat-run").click()
    page.locator("#learn-hat-plot .main-svg").first.wait_for(timeout=TIMEOUT_MS)
    sentence = "HAT reads whole words and spells the next one."
    words = page.locator("#learn-hat-cards .u").all_inner_texts()
    assert "".join(words) == sentence and len(words) == len(sentence.split())
    table = text_of(page, "learn-hat-table")
    assert f"backbone\n{len(words) + 1}\n" in table  # [BOS] and one vector per word
    assert f"encoder\n{len(sentence.encode()) + len(words)}\n" in table  # bytes + one [WORD] per word
    titles = page.locator("#learn-hat-plot .annotation-text").all_text_contents()  # subplot titles
    assert [t for t in titles if "encoder" in t] and [t for t in titles if "decoder" in t]
    page.screenshot(path=str(screenshot_dir / "learn-5-hat.png"), full_page=True)
    page.locator("#learn-next-4").click()
    # 6: speculative decoding gives the plain text, in fewer passes
    page.locator("#learn-speculative-run").click()
    wait_text(page, "learn-speculative-note", r"identical")
    note = text_of(page, "learn-speculative-note")
    assert "identical ✓" in note, note
    plain, spec = (int(n) for n in re.search(r"took (\d+) passes .* took (\d+) \(", note).groups())
    assert spec < plain  # the prompt repeats itself: drafts copied from it are accepted
    page.locator("#learn-speculative-tree .main-svg").first.wait_for(timeout=30_000)
    page.screenshot(path=str(screenshot_dir / "learn-6-speculative.png"), full_page=True)
    page.locator("#learn-next-5").click()
    glossary = page.locator("#learn-step-6")
    glossary.get_by_text("acceptance", exact=False).first.wait_for(state="visible")
    assert "bits per byte" in glossary.inner_text()


def try_it_opens_robustness(page: Any, screenshot_dir: Path) -> None:
    """The typo lesson's "try it" opens the Robustness tab on the lesson's sentence and runs it."""
    page.get_by_role("tab", name="Learn", exact=True).click()
    page.locator("#learn-step-3").get_by_text("4 · What a typo does").click()  # open the panel
    sentence = "A sentence of my own, with a few words to misspell."
    page.locator("#learn-typo-text textarea").fill(sentence)
    page.locator("#learn-try-3").click()
    page.locator("#robustness-text textarea").wait_for(state="visible", timeout=30_000)
    page.wait_for_function(
        "s => document.querySelector('#robustness-text textarea').value === s", arg=sentence, timeout=30_000
    )
    wait_text(page, "robustness-scores", r"hat-tiny")  # the tab ran on it
    assert page.locator("#robustness-kind input").input_value().endswith("typo")  # its label: "typos · typo"
    assert page.locator("#robustness-rate input[type=number]").input_value() == "0.3"
    page.screenshot(path=str(screenshot_dir / "learn-7-try-it.png"), full_page=True)


def shared_link_reopens(page: Any, screenshot_dir: Path) -> tuple[str, str, str]:
    """Copy the BPE lesson's link at step 7 and open it in a fresh page (the caller's): the same view."""
    page.get_by_role("tab", name="Learn", exact=True).click()
    page.locator("#learn-step-2").get_by_text("3 · How BPE is learned").click()
    text = "a rose is a rose is a rose, said the poet; a nose is not a rose."
    page.locator("#learn-bpe-text textarea").fill(text)
    page.locator("#learn-bpe-train").click()
    wait_text(page, "learn-bpe-note", r"Merge \d+:")
    box = page.locator("#learn-bpe-k input[type=number]")
    box.fill("7")
    box.press("Enter")
    wait_text(page, "learn-bpe-note", r"Merge 7:")
    note = text_of(page, "learn-bpe-note")
    page.locator("#learn-copy-link").click()
    # The box's value, not its text (its label matches anything at once: a race under load).
    page.wait_for_function(
        "() => (document.querySelector('#learn-link textarea') || {}).value?.includes('k=7')", timeout=30_000
    )
    link = page.locator("#learn-link textarea").input_value()
    assert "tab=learn" in link and "lesson=bpe" in link and "k=7" in link, link
    assert page.url == link  # the address bar shows it too
    return link, note, text


def test_learn_tab_walks_every_lesson(page: Any, screenshot_dir: Path) -> None:
    walk_lessons(page, screenshot_dir)


def test_try_it_opens_the_full_tab(page: Any, screenshot_dir: Path) -> None:
    try_it_opens_robustness(page, screenshot_dir)


def test_shared_link_restores_the_view(page: Any, page_at: Any, screenshot_dir: Path) -> None:
    link, note, text = shared_link_reopens(page, screenshot_dir)
    with page_at(link) as fresh:  # a new browser context: nothing shared with the first page
        wait_text(fresh, "learn-bpe-note", r"Merge 7:")
        assert text_of(fresh, "learn-bpe-note") == note  # the same merge, counts and units per word
        assert fresh.locator("#learn-bpe-text textarea").input_value() == text
        assert fresh.locator("#learn-step-2").get_by_text("Merge table").is_visible()  # its panel is open
        fresh.screenshot(path=str(screenshot_dir / "learn-8-shared-link.png"), full_page=True)


if __name__ == "__main__":
    from script import run_walk

    run_walk(walk_lessons, __doc__.split("\n")[0])
