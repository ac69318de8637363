"""Every view reopened from a link in a fresh page: the link's text and settings are back and the
view shows its result. These pages are the README's screenshots, one per view.

Runs against the app with the project's tiny models (`trained_app_url`). `assets/screenshots/<view>.png`
is written when it is missing or HAT_PLAYGROUND_UPDATE_SCREENSHOT=1, so test runs do not keep
rewriting committed files.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from PIL import Image

import app

pytestmark = pytest.mark.browser

README_SHOTS = Path(__file__).resolve().parents[2] / "assets" / "screenshots"
TIMEOUT_MS = 180_000
SHOT_WIDTH = 1100  # px in the README
SHOT_MAX_HEIGHT = 1500  # px of the page, from the top (the controls and the first results)

LABELS = {module.rsplit(".", 1)[-1]: label for label, module in app.TABS}  # view key -> tab label
ROSES = "Roses are red, violets are blue. Roses are red, violets are blue. Roses are"
FOX = "The quick brown fox jumps over the lazy dog while the children watch from the garden."


def q(text: str) -> str:
    return quote(text, safe="")


# (view, query, element that shows the result, {field element id: value the link set})
VIEWS = [
    ("learn", "lesson=bpe&k=12", "#learn-bpe-curve .main-svg", {"learn-bpe-k": "12"}),
    (
        "segment",
        f"text={q('The qiuck brown fox jumps over the lazy dgo in Zürich 🦊.')}&units=bytes,bpe-tiny,hat-words",
        "#segment-cards .seg-card",
        {"segment-text": "The qiuck brown fox jumps over the lazy dgo in Zürich 🦊."},
    ),
    (
        "attention",
        (
            f"text={q('The quick brown fox jumps over the lazy dog.')}&model_a=hat-tiny&model_b=bpe-tiny"
            "&level=backbone&axes=chars&layer=3"
        ),
        "#attention-plot .main-svg",
        {"attention-layer": "3"},
    ),
    (
        "speculative",
        f"prompt={q(ROSES)}&target=bpe-tiny&drafter=prompt-lookup&max_new_tokens=48&step=12",
        "#spec-tree .main-svg",
        {"spec-step": "12", "spec-prompt": ROSES},
    ),
    (
        "robustness",
        f"text={q(FOX)}&models=hat-tiny,bpe-tiny,byte-tiny&perturbation=typo&rate=0.3&seed=4",
        "#robustness-heat .rb-row",
        {"robustness-rate": "0.3", "robustness-seed": "4"},
    ),
    ("adaptation", "language=de", "#adaptation-curves .main-svg", {}),
]


def value_of(page: Any, elem_id: str) -> str:
    box = page.locator(f"#{elem_id} textarea, #{elem_id} input[type=number], #{elem_id} input").first
    return box.input_value()


def save_readme_shot(page: Any, path: Path) -> None:
    """The top of the page, scaled to the README's width (PNG, palette-optimised)."""
    image = Image.open(io.BytesIO(page.screenshot(full_page=True)))
    image = image.crop((0, 0, image.width, min(image.height, SHOT_MAX_HEIGHT)))
    image = image.resize((SHOT_WIDTH, round(image.height * SHOT_WIDTH / image.width)), Image.LANCZOS)
    image.convert("RGB").quantize(256).save(path, optimize=True)


@pytest.mark.parametrize("view, query, result, fields", VIEWS, ids=[v[0] for v in VIEWS])
def test_a_link_reopens_the_view(
    page_at: Any, trained_app_url: str, screenshot_dir: Path, view: str, query: str, result: str, fields: dict
) -> None:
    with page_at(f"{trained_app_url}?tab={view}&{query}") as page:
        page.locator(result).first.wait_for(state="visible", timeout=TIMEOUT_MS)
        selected = page.locator("[role=tab][aria-selected=true]").inner_text()
        assert selected.strip() == LABELS[view]  # the link's tab is open
        for elem_id, value in fields.items():
            assert value_of(page, elem_id) == value, elem_id
        if view == "speculative":  # the run happened on the link's settings, then went to its step
            page.wait_for_function(
                "() => /Step 12 of/.test(document.querySelector('#spec-step-info').innerText)", timeout=TIMEOUT_MS
            )
            assert "prompt-lookup" in value_of(page, "spec-drafter")
        if view == "attention":
            assert "layer 3" in page.locator("#attention-plot").inner_text()
        page.wait_for_timeout(800)  # let plotly finish drawing
        path = screenshot_dir / f"link-{view}.png"
        page.screenshot(path=str(path), full_page=True)
        readme = README_SHOTS / f"{view}.png"
        if not readme.exists() or os.environ.get("HAT_PLAYGROUND_UPDATE_SCREENSHOT") == "1":
            README_SHOTS.mkdir(parents=True, exist_ok=True)
            save_readme_shot(page, readme)


def test_a_bad_link_says_what_it_could_not_use(page_at: Any, trained_app_url: str) -> None:
    with page_at(f"{trained_app_url}?tab=robustness&models=hat-tiny,gpt-9&rate=7&text={q(FOX)}") as page:
        toast = page.locator(".toast-body").first
        toast.wait_for(state="visible", timeout=60_000)
        message = toast.inner_text()
        assert "gpt-9" in message and "rate: above the maximum 1" in message
        page.locator("#robustness-heat .rb-row").first.wait_for(state="visible", timeout=TIMEOUT_MS)
        assert value_of(page, "robustness-text") == FOX  # what fitted was still restored and run


def test_a_plain_page_load_runs_no_view(browser: Any, trained_app_url: str) -> None:
    """Without a link nothing is replayed: the page sends the link restore and its follow-up, and
    no view's event (one run of every view per visitor would be a heavy price)."""
    context = browser.new_context()
    page = context.new_page()
    joins: list[str] = []
    page.on("request", lambda r: joins.append(r.post_data or "") if "queue/join" in r.url else None)
    try:
        page.goto(trained_app_url)
        page.get_by_role("tab", name="Learn", exact=True).wait_for(timeout=120_000)
        page.wait_for_timeout(4000)  # the restore and its follow-up have run by now
        assert len(joins) == 2, joins
    finally:
        context.close()
