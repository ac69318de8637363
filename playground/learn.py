"""Learn view core: guided lessons on tokenization, each running a real core on its example.

- `units_lesson`: one sentence as bytes, BPE tokens, HAT words and entropy patches (`playground.segment`).
- `bpe_lesson`: byte-level BPE learned step by step on a text and a misspelled copy (`playground.bpe_steps`).
- `typo_lesson`: what a typo does to each model: the cut and bits per byte of the clean and the
  misspelled sentence (`playground.segment`, `playground.robustness`).
- `hat_lesson`: how HAT reads and writes: its words and the attention of its three levels, byte
  encoder, word backbone and byte decoder (`playground.attention`).
- `speculative_lesson`: why speculative decoding is lossless: one prompt decoded plainly and with
  drafts checked by the target, the same text, and the step that accepted most
  (`playground.speculative`).

The lessons' words live here too (`LESSONS`, `GLOSSARY`), so the UI only lays them out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from models import registry
from models.errors import UserError
from playground import attention, bpe_steps, robustness, segment
from playground.config import validate_text
from playground.speculative.compare import RunSettings, compare, to_json

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
    Lesson(
        "hat",
        "5 · How HAT reads and writes",
        "HAT works at three levels, each a small transformer with its own **attention** (which earlier "
        "units each position looks at; brighter = more). The **byte encoder** reads the bytes of one word "
        "at a time, so its map is a chain of small squares, one per word, and sums each word up in one "
        "vector. The **word backbone**, the big part, reads those vectors in order: each word looks only "
        "at the words before it. The **byte decoder** then spells the next word byte by byte, looking at "
        "the backbone's context and the bytes it already wrote. Words in, bytes out: no vocabulary.",
        "HAT reads whole words and spells the next one.",
    ),
    Lesson(
        "speculative",
        "6 · Why speculative decoding is lossless",
        "A big model writes one token per pass. **Speculative decoding** lets a cheap drafter guess a few "
        "next tokens (here: copy what followed the same tokens earlier in the text), and the big model "
        "checks all the guesses in **one** pass. It keeps the guesses it would have written itself "
        "(**accepted**, green) and adds its own next token after the first wrong one (orange). So the text "
        "is exactly the one plain decoding writes, only in fewer passes. Below, both run on the same prompt.",
        "Roses are red, violets are blue. Roses are red, violets are blue. Roses are",
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


def _hat_model(models: Sequence[str]) -> str:
    """The HAT model a lesson shows: hat-tiny when offered, else the first HAT; a user error without one."""
    hats = [n for n in models if registry.get_spec(n).family == "hat"]
    if not hats:
        raise UserError("This lesson needs a HAT model, and this app offers none (see --models).")
    return "hat-tiny" if "hat-tiny" in hats else hats[0]


@dataclass(frozen=True)
class HatLesson:
    model: str
    words: list[str]  # the text cut into HAT's words
    maps: dict[str, attention.Heatmap]  # encoder, backbone, decoder: the last layer, mean of heads
    units: dict[str, int]  # positions per level


def hat_lesson(text: str | None, models: Sequence[str]) -> HatLesson:
    """Lesson 5: the text as HAT's words, and the last layer's attention at each of its three levels."""
    text = validate_text(text, MAX_LESSON_CHARS, limit_note=LESSON_LIMIT_NOTE)
    name = _hat_model(models)
    result = attention.cached_attention(name, text)
    maps, units = {}, {}
    for level in ("encoder", "backbone", "decoder"):
        lvl = result.level(level)
        maps[level] = attention.heatmap(result, level, layer=lvl.n_layers - 1, how="mean")
        units[level] = lvl.n_units
    words = [text[a:b] for a, b in result.word_spans]
    return HatLesson(name, words, maps, units)


SPECULATIVE_LESSON_TOKENS = 24


def speculative_lesson(prompt: str | None, models: Sequence[str]) -> dict[str, Any]:
    """Lesson 6: the prompt decoded greedily, plainly and speculatively (prompt-lookup drafts checked by
    the target), by bpe-tiny when offered; the speculative view's JSON, the step that accepted most
    (`best_step`) and whether the two texts are identical (`identical`)."""
    prompt = validate_text(prompt, MAX_LESSON_CHARS, limit_note=LESSON_LIMIT_NOTE)
    target = _bpe_model(models)
    if target is None:
        raise UserError("This lesson needs a BPE model, and this app offers none (see --models).")
    lm = registry.load_model(target)
    settings = RunSettings("prompt-lookup", max_new_tokens=SPECULATIVE_LESSON_TOKENS, tree_budget=6, max_depth=6)
    comparison = compare(lm.model, lm.tokenizer, prompt, settings)
    data = to_json(comparison, lm.tokenizer)
    data["plain_passes"] = comparison.plain.target_passes
    steps = data["steps"]
    data["best_step"] = max(range(len(steps)), key=lambda i: len(steps[i]["accepted_nodes"])) if steps else 0
    data["identical"] = data["summary"]["identical"]
    data["model"] = target
    return data
