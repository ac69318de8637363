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

# Open-ended prompts written for `bench/speculative.py --prompt-set unseen` (stories, letters,
# explanations, dialogue): none is a template or topic of the draft heads' training prompts
# (`training/feature_draft_data.py`; a test checks the training prompts never contain them), so a
# head's speed-up on them is a speed-up on text it was never trained to continue.
UNSEEN_OPEN_ENDED: dict[str, str] = {
    "lighthouse_story": "Tell a story about an old lighthouse keeper who finds a message in a bottle on the "
    "morning of her last day at work.",
    "letter_to_grandmother": "My grandmother is turning ninety next week and lives far away. Help me write "
    "her a warm letter about the summers I spent at her farm.",
    "why_leaves_change": "Why do the leaves of some trees turn red and yellow in autumn while others stay "
    "green all winter?",
    "dialogue_chess": "A grumpy chess champion has just been beaten in a park by a seven-year-old. Write "
    "what the two of them say to each other afterwards.",
    "explain_vaccines": "How does a vaccine teach the body to fight a disease it has never met? Keep it "
    "simple for someone without a science background.",
    "apology_to_neighbour": "I accidentally broke my neighbour's fence while moving a sofa. Write a short, "
    "sincere note apologising and offering to fix it.",
    "moon_base_diary": "Imagine you are the cook on the first base on the Moon. Describe your first week "
    "there and what you miss most about Earth.",
    "interview_bakery": "A radio host interviews the owner of a small bakery that has been open every day "
    "for fifty years. Write their conversation.",
    "saving_money": "What are some practical ways a student living alone for the first time can spend less "
    "on food each month?",
    "train_mystery": "Begin a mystery in which every passenger on a night train wakes up to find their "
    "watches have stopped at the same minute.",
}

EXAMPLES: list[tuple[str, str]] = [
    ("Grounded: summarise an article", GROUNDED_PROMPT),
    ("Open-ended: a short story", OPEN_ENDED_PROMPT),
]
