"""The README a newcomer reads: short, every picture and figure reproducible, every link resolves."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
COMMAND = re.compile(r"`(?:\.venv/bin/)?python[^`]*`|`HAT_PLAYGROUND_UPDATE_SCREENSHOT=1[^`]*`")


def test_the_readme_is_short() -> None:
    assert len(README.splitlines()) < 250


def test_every_figure_names_the_command_that_reproduces_it() -> None:
    """Each image has a command (a `python ...` or the screenshot test) in its section."""
    sections = re.split(r"\n(?=## )", README)
    for section in sections:
        images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", section)
        for image in images:
            assert (REPO / image).is_file(), image
            assert COMMAND.search(section), f"{image}: no command in its section"


def test_local_links_resolve() -> None:
    for target in re.findall(r"\]\(((?!https?:)[^)#]+)(?:#[^)]*)?\)", README):
        assert (REPO / target).exists(), target
    for doc in (REPO / "docs").glob("*.md"):
        for target in re.findall(r"\]\(((?!https?:)[^)#]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            assert (doc.parent / target).exists(), f"{doc.name}: {target}"


def test_the_two_commands_are_there() -> None:
    assert "make run" in README and "make test" in README
    assert README.count("<!-- robustness-report:start -->") == 1  # bench/robustness_report.py --readme
