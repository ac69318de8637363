"""Run a browser test's walk against any running app, outside pytest (for screenshots by hand)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, for conftest's settings

from conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOT_DIR


def run_walk(walk: Callable[[Any, Path], None], description: str) -> None:
    """`walk(page, screenshot_dir)` on `--url`, screenshots to `--out-dir`."""
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--url", default="http://127.0.0.1:7860/")
    ap.add_argument("--out-dir", type=Path, default=SCREENSHOT_DIR)
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(args.url)
        walk(page, args.out_dir)
        browser.close()
