"""Learn view core: guided lessons on tokenization, each running a real core on its example.

- `units_lesson`: one sentence as bytes, BPE tokens, HAT words and entropy patches (`playground.segment`).
- `bpe_lesson`: byte-level BPE learned step by step on a text and a misspelled copy (`playground.bpe_steps`).
- `typo_lesson`: what a typo does to each model: the cut and bits per byte of the clean and the
  misspelled sentence (`playground.segment`, `playground.robustness`).

The lessons' words live here too (`LESSONS`, `GLOSSARY`), so the UI only lays them out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from models import registry
from playground import bpe_steps, robustness, segment
from playground.config import validate_text

MAX_LESSON_CHARS = 600
LESSON_LIMIT_NOTE = "lessons take short texts; the other tabs take longer ones"


@dataclass(frozen=True)
class Lesson:
    key: str
    title: str
    body: str  # Markdown, for a student
    example: str


LESSONS: tuple[Lesson, ...] = (
    Lesson(
        "units",
        "1 · What is a token?",
        "A language model never reads letters. It reads **units**: numbers that stand for pieces of text. "
        "Different models cut the same sentence differently. **Bytes** are the smallest pieces: UTF-8 "
        "spends one byte on a plain letter and two to four on `ü`, `é` or an emoji. A **BPE tokenizer** "
        "glues frequent byte sequences into **tokens** from a fixed vocabulary. **HAT** cuts at word "
        "boundaries and reads each whole **word** with a small byte encoder. **Entropy patches** (as in "
        "BLT) start a new unit where a small byte model is surprised. Fewer units per word means shorter "
        "sequences, so less work for the big part of the model.",
        "The unbelievable Schifffahrtsgesellschaft sailed to Zürich 🚢.",
    ),
    Lesson(
        "vocabulary",
        "2 · Why vocabularies matter",
        "A vocabulary learned mostly from English text has tokens for English words. German or Spanish "
        "words, which it saw rarely, fall apart into more pieces: more units per word. HAT words stay "
        "about one unit per word in every language. The chart counts units per word on the validation "
        "text of each language (`python bench/units_per_word.py`); the **Adaptation** tab shows what "
        "this means when a model learns a new language.",
        "",  # a shipped figure, no example to run
    ),
    Lesson(
        "bpe",
        "3 · How BPE is learned",
        "BPE starts from the 256 possible bytes and repeats one rule: find the pair of neighbouring units "
        "that occurs most often in the training text, and **merge** it into a new unit. Slide *k* to "
        "watch the first *k* merges: frequent words become single tokens, rare ones stay in pieces. The "
        "misspelled copy shows why typos hurt a BPE model: the merges were learned from correct words, "
        "so a misspelled word falls apart into more, rarer pieces.",
        "the cat sat on the mat and the dog sat on the log. then the cat saw the dog and the dog saw the "
        "cat. the cat ran to the house, the dog ran to the garden, and the children ran after them both. "
        "in the evening the cat and the dog slept in the warm kitchen, and the children read their books "
        "there, talking about the animals, the garden and the long summer holidays that were coming.",
    ),
    Lesson(
        "typo",
        "4 · What a typo does",
        "Here two models trained on the same English text read a sentence and a copy with seeded keyboard "
        "typos. **Bits per byte** measures surprise: how many yes/no questions the model needs, on average, "
        "to guess each byte (lower is better). A typo changes one word vector for HAT; for BPE it can "
        "change how many tokens the word has and which ones.",
        "The quick brown fox jumps over the lazy dog while the children watch from the garden.",
    ),
)

GLOSSARY_TITLE = "Glossary"
GLOSSARY: dict[str, str] = {
    "unit": "one position of a model's input: a byte, a token, a word or a patch",
    "token": "a unit from a tokenizer's fixed vocabulary, usually a piece of a word",
    "word": "HAT's unit: the bytes between word boundaries (hat-splitter), read as one vector",
    "patch": "a run of bytes that a byte model predicts easily; a new patch starts where it is surprised",
    "merge": "one BPE training step: two neighbouring units that occur together most often become one",
    "bits per byte": "the model's surprise per byte of text (log2 of 1/probability, averaged); lower is better",
    "draft": "in speculative decoding, cheap guesses of the next tokens that the big model checks at once",
    "acceptance": "the drafted tokens the big model would have written itself; kept, so the output is unchanged",
}


def _bpe_model(models: Sequence[str]) -> str | None:
    """The BPE model a lesson shows: bpe-tiny when offered (trained on the same text as hat-tiny)."""
    bpe = [n for n in models if registry.get_spec(n).family == "bpe"]
    return "bpe-tiny" if "bpe-tiny" in bpe else (bpe[0] if bpe else None)


def units_lesson(text: str | None, models: Sequence[str]) -> dict[str, segment.Segmentation]:
    """Lesson 1: the text as bytes, one BPE model's tokens, HAT words and (with byte-tiny) entropy patches."""
    text = validate_text(text, MAX_LESSON_CHARS, limit_note=LESSON_LIMIT_NOTE)
    names = ["bytes"]
    if (bpe := _bpe_model(models)) is not None:
        names.append(bpe)
    names.append("hat-words")
    if "byte-tiny" in models:
        names.append("entropy-patches")
    return segment.segment(text, names, allowed_models=list(models), max_chars=MAX_LESSON_CHARS)


@dataclass(frozen=True)
class BPELessonStep:
    k: int
    clean: segment.Segmentation
    misspelled: segment.Segmentation
    misspelled_text: str
    merges: list[bpe_steps.MergeRule]
    last_count: int  # how often the k-th merge's pair occurred when it was learned
    curve: list[tuple[int, float | None, float | None]]  # (k, units per word clean, misspelled)


def bpe_lesson(stepper: bpe_steps.BPEStepper, k: Any, seed: int = 0) -> BPELessonStep:
    """Lesson 2 at step k: the text and a misspelled copy after k merges, the merge table so far."""
    k = stepper.check_k(k)
    typo = bpe_steps.misspelled(stepper.text, seed)
    ks = sorted({*range(0, stepper.n_merges + 1, max(1, stepper.n_merges // 20)), stepper.n_merges})
    clean, misspelt = stepper.curve(stepper.text, ks), stepper.curve(typo, ks)
    curve = [(j, a, b) for (j, a), (_, b) in zip(clean, misspelt, strict=True)]
    return BPELessonStep(
        k,
        stepper.segmentation(stepper.text, k),
        stepper.segmentation(typo, k),
        typo,
        stepper.merges[:k],
        stepper.pair_count(k),
        curve,
    )


def typo_lesson(text: str | None, models: Sequence[str], seed: int = 0, rate: float = 0.3) -> dict[str, Any]:
    """Lesson 3: the clean and misspelled text cut by HAT and BPE, and each model's bits per byte."""
    text = validate_text(text, MAX_LESSON_CHARS, limit_note=LESSON_LIMIT_NOTE)
    readers = [n for n in ("hat-tiny", _bpe_model(models)) if n is not None and n in models]
    result = robustness.analyze(readers, text, "typo", rate, seed, next_words=False, max_chars=MAX_LESSON_CHARS)
    perturbed = result.perturbation.text
    cuts = [n for n in ("hat-words", _bpe_model(models)) if n is not None]
    return {
        "clean_text": text,
        "perturbed_text": perturbed,
        "clean": segment.segment(text, cuts, allowed_models=list(models)),
        "perturbed": segment.segment(perturbed, cuts, allowed_models=list(models)),
        "scores": {
            m.name: {"clean": m.bpb_clean, "perturbed": m.bpb_perturbed, "rise": m.rise} for m in result.models
        },
    }
