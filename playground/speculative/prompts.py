"""Example prompts: one whose answer is grounded in its input, one open-ended.

The bench and the view use the same two, so the view's example reproduces the bench."""

from __future__ import annotations

ARTICLE = (
    "The city council of Riverton voted on Tuesday to build a new public library on the site of "
    "the old train station. The project will cost 12 million dollars and is expected to open in the "
    "spring of 2027. Mayor Elena Ruiz said the library will include a children's reading room, a "
    "maker space with 3D printers, and a community hall that can seat 200 people. The old train "
    "station, which closed in 1998, has been empty for more than twenty years. Some residents had "
    "asked the council to turn the site into a park instead, but the council argued that the library "
    "would serve more people throughout the year. Construction will begin in March, and the main "
    "street next to the station will be closed to traffic for six months."
)

GROUNDED_PROMPT = f"Summarize the following article in a few sentences.\n\n{ARTICLE}"

OPEN_ENDED_PROMPT = "Write a short story about a robot who learns to paint."

EXAMPLES: list[tuple[str, str]] = [
    ("Grounded: summarise an article", GROUNDED_PROMPT),
    ("Open-ended: a short story", OPEN_ENDED_PROMPT),
]
