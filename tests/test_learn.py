"""The lessons' cores on the project's shipped tiny models: real units, real numbers, user errors."""

from __future__ import annotations

import pytest

from playground import learn
from playground.config import TextInputError

TRAINED = ["hat-tiny", "bpe-tiny", "byte-tiny"]


def test_hat_lesson_reads_words_and_shows_three_levels() -> None:
    text = "HAT reads whole words and spells the next one."
    lesson = learn.hat_lesson(text, TRAINED)
    assert lesson.model == "hat-tiny"
    assert "".join(lesson.words) == text and len(lesson.words) == 9
    n_bytes, n_words = len(text.encode()), len(lesson.words)
    assert lesson.units["backbone"] == n_words + 1  # [BOS] and one vector per word
    assert lesson.units["encoder"] == n_bytes + n_words  # each word's bytes and its [WORD] summary
    for level, heat in lesson.maps.items():
        assert heat.matrix.shape == (lesson.units[level],) * 2
        assert heat.description.startswith(f"{level} · layer")
    # The encoder never looks across words: every weight outside the word blocks is zero.
    enc = lesson.maps["encoder"].matrix
    start = 0
    for word in lesson.words:
        end = start + len(word.encode()) + 1
        block = enc[start:end]
        assert block[:, :start].sum() == 0 and block[:, end:].sum() == 0
        assert block[:, start:end].sum() == pytest.approx(end - start, rel=1e-4)  # rows sum to 1 inside
        start = end


def test_speculative_lesson_is_lossless_and_drafts_pay_on_a_repeating_prompt() -> None:
    prompt = learn.LESSONS[5].example
    data = learn.speculative_lesson(prompt, TRAINED)
    assert data["model"] == "bpe-tiny" and data["identical"] is True
    assert data["text"] == data["plain_text"]
    summary = data["summary"]
    assert summary["new_tokens"] == learn.SPECULATIVE_LESSON_TOKENS
    assert summary["steps"] < data["plain_passes"] == learn.SPECULATIVE_LESSON_TOKENS
    best = data["steps"][data["best_step"]]
    assert len(best["accepted_nodes"]) == max(len(s["accepted_nodes"]) for s in data["steps"]) > 0


@pytest.mark.parametrize("lesson", [learn.hat_lesson, learn.speculative_lesson])
def test_lessons_refuse_bad_text_and_missing_models(lesson) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TextInputError):
        lesson("  ", TRAINED)
    with pytest.raises(TextInputError, match="lessons take short texts"):
        lesson("x" * (learn.MAX_LESSON_CHARS + 1), TRAINED)
    with pytest.raises(ValueError, match="this app offers none"):
        lesson("hello", ["byte-tiny"])
