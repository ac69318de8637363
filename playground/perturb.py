"""Typed perturbations of a text: seeded, reproducible, and with an alignment of what changed.

Every perturbation is a function ``(text, rate, seed) -> PerturbResult``; ``perturb(text, kind,
rate, seed)`` dispatches by name (``KINDS`` lists them).

Words and rate
--------------
A *word* is a maximal run of letters and digits (plus combining marks) that holds at least one
letter (``WORD_RE``). ``rate`` is the share of the text's words that get touched:
``k = round(rate * n_words)`` words (at least one when ``rate > 0``), at most the number of words
the perturbation can change at all (``lower`` cannot change a word that is already lower case;
``misspelling`` only knows some words). ``PerturbResult.touched_share`` says how many were.

Which words: the words the perturbation can change are shuffled once by a generator seeded with
``seed`` and the first ``k`` are touched. What happens to a word is drawn from a generator seeded
with ``(seed, kind, word index)``. So, for one seed, the words touched at rate 0.1 are also
touched, in the same way, at rate 0.2: a sweep over rates adds damage and never reshuffles it.
Generators are ``random.Random`` seeded with strings (SHA-512 based, independent of
``PYTHONHASHSEED``), so results are identical across runs and machines.

Every touched word gets exactly one edit, confined to the word itself or, for the spacing kinds,
to the space right after it. Text outside the edits is never changed.

Alignment
---------
``PerturbResult.changes`` lists each edit as a ``Change``: the character span it replaced in the
clean text (``start, end``) and the span of its replacement in the perturbed text (``new_start,
new_end``), trimmed to the characters that really differ (a swapped pair, an inserted letter, an
empty span for a deletion's replacement). ``segments()`` covers both texts completely with
unchanged and changed pieces, and ``map_offset`` moves a clean offset into the perturbed text.

Kinds
-----
- typos: ``keyboard`` (QWERTY), ``keyboard-qwertz``, ``keyboard-azerty``: one letter replaced by a
  neighbouring key's letter (nlpaug's keyboard maps, vendored in ``assets/perturb/``);
  ``swap`` (two adjacent characters), ``delete``, ``insert`` (a keyboard neighbour of the letter
  next to it, as a finger hitting two keys), ``double`` (a character typed twice), and ``typo``:
  one of those five, drawn per word.
- ``misspelling``: the word replaced by a real misspelling of it (codespell's dictionary,
  inverted; case kept: ``The`` -> ``Teh``).
- casing: ``upper``, ``lower``, ``title``, ``random-case``.
- spacing: ``drop-space`` (the space after the word removed, gluing it to the next),
  ``double-space`` (the space after the word doubled), ``split-word`` (a space inside the word).
- ``homoglyph``: one letter replaced by a Cyrillic or Greek look-alike (``homoglyphs`` package).
- ``strip-accents`` (all accents of the word removed), ``add-accents`` (one vowel, ``n`` or ``c``
  gets an accent).
- ``leetspeak``: every letter of the word that has a leet digit replaced (a->4, e->3, i->1, ...).
- ``ocr``: one character replaced by an OCR confusion (nlpaug's ``ocr/en.json``, both ways).
- ``mix``: per word, a family drawn at random (typo, misspelling, casing, spacing, homoglyph,
  accents, leetspeak, OCR), then one of its kinds that applies to the word.

CLI: ``python -m playground.perturb --kind typo --rate 0.1 --seed 0 [--json] [TEXT | --text FILE]``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from models.errors import UserError

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "perturb"
KEYBOARD_FILES = {
    "qwerty": "keyboard_qwerty_en.json",
    "qwertz": "keyboard_qwertz_de.json",
    "azerty": "keyboard_azerty_fr.json",
}
OCR_FILE = "ocr_en.json"

_MARKS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
WORD_RE = re.compile(rf"(?:[^\W_]|[{_MARKS}])+")
LEET = {"a": "4", "b": "8", "e": "3", "g": "9", "i": "1", "l": "1", "o": "0", "s": "5", "t": "7", "z": "2"}
ACCENTS = {
    "a": "àáâäãå",
    "e": "èéêë",
    "i": "ìíîï",
    "o": "òóôöõ",
    "u": "ùúûü",
    "y": "ýÿ",
    "n": "ñ",
    "c": "ç",
}
# Basic Greek and Cyrillic letters only: the look-alikes used in real mixed-script spoofing
# (а, е, о, р, с, х, ο, ν, ...), not the rarer historic letters of the extended blocks.
HOMOGLYPH_RANGES = ((0x0391, 0x03C9), (0x0400, 0x045F))


class PerturbError(UserError):
    """A bad perturbation request (unknown kind, rate out of range), with a message for people."""


class UnknownPerturbationError(PerturbError):
    """The perturbation kind is not one of `KINDS`."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Change:
    """One edit: clean ``text[start:end] == before`` became perturbed ``text[new_start:new_end] == after``."""

    start: int
    end: int
    new_start: int
    new_end: int
    before: str
    after: str
    op: str  # the kind that made it (for `mix`, the kind drawn for the word)
    word: int  # index of the touched word among the text's words


@dataclass(frozen=True)
class Segment:
    """A piece of the alignment: clean ``[start, end)`` corresponds to perturbed ``[new_start, new_end)``."""

    start: int
    end: int
    new_start: int
    new_end: int
    changed: bool


@dataclass(frozen=True)
class PerturbResult:
    """The perturbed text and how it lines up with the clean one (see the module docstring)."""

    original: str
    text: str
    changes: tuple[Change, ...]
    kind: str
    rate: float
    seed: int
    n_words: int  # words in the clean text
    n_eligible: int  # words this perturbation could change

    def __str__(self) -> str:
        return self.text

    @property
    def n_touched(self) -> int:
        return len(self.changes)

    @property
    def touched_share(self) -> float:
        """Share of the words actually touched (can be below `rate`, see the module docstring)."""
        return self.n_touched / self.n_words if self.n_words else 0.0

    @property
    def touched_words(self) -> tuple[int, ...]:
        return tuple(c.word for c in self.changes)

    def segments(self) -> list[Segment]:
        """Unchanged and changed pieces, in order, covering both texts end to end."""
        out: list[Segment] = []
        pos = new_pos = 0
        for c in self.changes:
            if c.start > pos:
                out.append(Segment(pos, c.start, new_pos, c.new_start, False))
            out.append(Segment(c.start, c.end, c.new_start, c.new_end, True))
            pos, new_pos = c.end, c.new_end
        if pos < len(self.original) or not out:
            out.append(Segment(pos, len(self.original), new_pos, len(self.text), False))
        return out

    def map_offset(self, offset: int) -> int:
        """The perturbed offset of clean offset `offset` (a boundary between characters).

        Offsets in unchanged text move by the length changes before them; an offset at the start of
        a change maps to the start of its replacement, one inside or at its end to its end.
        """
        shift = 0
        for c in self.changes:
            if offset <= c.start:
                break
            if offset <= c.end:
                return c.new_end
            shift = c.new_end - c.end
        return offset + shift

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rate": self.rate,
            "seed": self.seed,
            "n_words": self.n_words,
            "n_eligible": self.n_eligible,
            "n_touched": self.n_touched,
            "touched_share": self.touched_share,
            "text": self.text,
            "changes": [asdict(c) for c in self.changes],
        }


# --------------------------------------------------------------------------- data


def _read_json(name: str) -> dict[str, Any]:
    path = ASSETS / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise RuntimeError(f"perturbation data file missing: {path} ({err})") from err


@cache
def keyboard_neighbours(layout: str = "qwerty") -> dict[str, tuple[str, ...]]:
    """Lower-case letter -> neighbouring letters on the layout (`qwerty`, `qwertz`, `azerty`)."""
    if layout not in KEYBOARD_FILES:
        raise PerturbError(f"Unknown keyboard layout {layout!r}; choose one of: {', '.join(KEYBOARD_FILES)}.")
    out: dict[str, tuple[str, ...]] = {}
    for key, near in _read_json(KEYBOARD_FILES[layout]).items():
        near = [near] if isinstance(near, str) else near
        letters = tuple(dict.fromkeys(n.lower() for n in near if n.isalpha() and n.lower() != key.lower()))
        if key.isalpha() and letters:
            out[key.lower()] = letters
    return out


@lru_cache(maxsize=1)
def ocr_confusions() -> dict[str, tuple[str, ...]]:
    """Character -> characters an OCR engine confuses it with (nlpaug's map plus its reverse)."""
    mapping: dict[str, list[str]] = {}
    for key, values in _read_json(OCR_FILE).items():
        for v in values:
            mapping.setdefault(key, []).append(v)
            mapping.setdefault(v, []).append(key)
    return {k: tuple(dict.fromkeys(x for x in v if x != k)) for k, v in mapping.items()}


def codespell_dictionary_path() -> Path:
    return Path(str(resources.files("codespell_lib") / "data" / "dictionary.txt"))


@lru_cache(maxsize=1)
def misspellings() -> dict[str, tuple[str, ...]]:
    """Correct word (lower case) -> known misspellings, from codespell's dictionary inverted.

    Only single words of letters are kept on both sides; codespell's notes after the corrections
    are dropped (``wrong->right1, right2, reason``).
    """
    path = codespell_dictionary_path()
    inverted: dict[str, set[str]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise RuntimeError(f"codespell's dictionary is missing ({path}): pip install codespell") from err
    for line in lines:
        wrong, sep, data = line.partition("->")
        if not sep:
            continue
        wrong = wrong.strip().lower()
        if "," in data:
            data = data.rsplit(",", 1)[0]
        if not wrong.isalpha():
            continue
        for right in data.split(","):
            right = right.strip().lower()
            if right.isalpha() and right != wrong:
                inverted.setdefault(right, set()).add(wrong)
    return {k: tuple(sorted(v)) for k, v in inverted.items()}


@lru_cache(maxsize=4096)
def homoglyphs_of(ch: str) -> tuple[str, ...]:
    """Cyrillic and Greek letters that look like `ch` and have its case (``homoglyphs`` package):
    its confusables within one or two steps, as the package's own lookup finds them."""
    if not ch.isalpha():
        return ()
    table = _homoglyph_table()
    near = table.get(ch, frozenset())
    category = unicodedata.category(ch)
    out = set()
    for cand in near.union(*(table.get(c, frozenset()) for c in near)):
        if cand == ch or unicodedata.category(cand) != category:
            continue
        if any(lo <= ord(cand) <= hi for lo, hi in HOMOGLYPH_RANGES):
            out.add(cand)
    return tuple(sorted(out))


@lru_cache(maxsize=1)
def _homoglyph_table() -> dict[str, frozenset[str]]:
    """Character -> the characters it is confusable with, among Latin, Cyrillic, Greek and
    script-neutral ones (Unicode's "Common": the micro sign, which looks like Greek mu), built
    once and never changed. The package's own lookup (``get_combinations``) extends the
    alphabet with the script of every unknown character it meets (a CJK character loads tens of
    thousands, kept for the process's life) and grows its table's sets in place as it answers,
    so an answer depended on the characters asked before it; this table does neither."""
    try:
        import homoglyphs as hg
    except ImportError as err:  # a dependency in requirements.txt
        raise RuntimeError("the homoglyph perturbation needs the homoglyphs package: pip install homoglyphs") from err
    finder = hg.Homoglyphs(categories=("LATIN", "CYRILLIC", "GREEK", "COMMON"), strategy=hg.STRATEGY_IGNORE)
    return {ch: frozenset(alts) for ch, alts in finder.table.items()}


# --------------------------------------------------------------------------- word edits
#
# An edit function gets the text, the word's match and a generator, and returns
# (start, end, replacement) in clean offsets, or None when it cannot change this word.
# Edits stay inside the word, or (spacing) inside the gap right after it.

Edit = tuple[int, int, str]
EditFn = Callable[[str, "re.Match[str]", random.Random], Edit | None]


def _is_mark(ch: str) -> bool:
    return unicodedata.combining(ch) != 0


def _base_positions(word: str) -> list[int]:
    """Indices of the word's characters that are not combining marks."""
    return [i for i, ch in enumerate(word) if not _is_mark(ch)]


def _replace_at(m: re.Match[str], i: int, new: str, n: int = 1) -> Edit:
    w = m.group()
    return m.start(), m.end(), w[:i] + new + w[i + n :]


def _match_case(template: str, new: str) -> str:
    return new.upper() if template.isupper() else new


def _keyboard(layout: str) -> EditFn:
    def edit(text: str, m: re.Match[str], rng: random.Random) -> Edit | None:
        near = keyboard_neighbours(layout)
        w = m.group()
        spots = [i for i in _base_positions(w) if w[i].lower() in near]
        if not spots:
            return None
        i = rng.choice(spots)
        return _replace_at(m, i, _match_case(w[i], rng.choice(near[w[i].lower()])))

    return edit


def _swap(text: str, m: re.Match[str], rng: random.Random) -> Edit | None:
    w = m.group()
    spots = [i for i in range(len(w) - 1) if w[i] != w[i + 1] and not _is_mark(w[i]) and not _is_mark(w[i + 1])]
    # keep combining marks with their letters: only swap two bare characters
    spots = [i for i in spots if i + 2 >= len(w) or not _is_mark(w[i + 2])]
    if not spots:
        return None
    i = rng.choice(spots)
    return _replace_at(m, i, w[i + 1] + w[i], 2)


def _cluster_end(w: str, i: int) -> int:
    """End of the character at `i` together with the combining marks after it."""
    j = i + 1
    while j < len(w) and _is_mark(w[j]):
        j += 1
    return j


def _delete(text: str, m: re.Match[str], rng: random.Random) -> Edit | None:
    w = m.group()
    spots = _base_positions(w)
    if len(spots) < 2:
        return None
    letters = [i for i in spots if w[i].isalpha()]
    i = rng.choice(spots)
    if len(letters) == 1 and i == letters[0]:  # keep a letter, or the text has one word less
        i = rng.choice([j for j in spots if j != i])
    return m.start(), m.end(), w[:i] + w[_cluster_end(w, i) :]


def _insert(text: str, m: re.Match[str], rng: random.Random) -> Edit | None:
    near = keyboard_neighbours("qwerty")
    w = m.group()
    spots = [i for i in _base_positions(w) if w[i].lower() in near]
    if not spots:
        return None
    i = rng.choice(spots)
    extra = _match_case(w[i], rng.choice(near[w[i].lower()]))
    at = i if rng.random() < 0.5 else _cluster_end(w, i)  # the slip lands before or after the key
    return m.start(), m.end(), w[:at] + extra + w[at:]


def _double(text: str, m: re.Match[str], rng: random.Random) -> Edit | None:
    w = m.group()
    spots = _base_positions(w)
    i = rng.choice(spots)
    j = _cluster_end(w, i)
    return m.start(), m.end(), w[:j] + w[i:j] + w[j:]


TYPO_KINDS = ("keyboard", "swap", "delete", "insert", "double")


def _misspelling(text: str, m: re.Match[str], rng: random.Random) -> Edit | None:
    w = m.group()
    options = misspellings().get(w.lower())
    if not options:
        return None
    new = rng.choice(options)
    if len(w) > 1 and w.isupper():
        new = new.upper()
    elif w[:1].isupper():
        new = new[:1].upper() + new[1:]
    return (m.start(), m.end(), new) if new != w else None


def _casing(fn: Callable[[str], str]) -> EditFn:
    def edit(text: str, m: re.Match[str], rng: random.Random) -> Edit | None:
        new = fn(m.group())
        return (m.start(), m.end(), new) if new != m.group() else None

    return edit


def _title(w: str) -> str:
    return w[:1].upper() + w[1:].lower()


def _random_case(text: str, m: re.Match[str], rng: random.Random) -> Edit | None:
    w = m.group()
    cased = [i for i, ch in enumerate(w) if ch.upper() != ch.lower() and len(ch.upper()) == 1 and len(ch.lower()) == 1]
    if not cased:
        return None
    chars = list(w)
    for i in cased:
        chars[i] = chars[i].upper() if rng.random() < 0.5 else chars[i].lower()
    if "".join(chars) == w:  # make sure something changes
        i = rng.choice(cased)
        chars[i] = w[i].lower() if w[i].isupper() else w[i].upper()
    return m.start(), m.end(), "".join(chars)


def _drop_space(text: str, m: re.Match[str], rng: random.Random) -> Edit | None:
    e = m.end()
    if text[e : e + 1] == " " and e + 1 < len(text) and WORD_RE.match(text, e + 1):
        return e, e + 1, ""
    return None


def _double_space(text: str, m: re.Match[str], rng: random.Random) -> Edit | None:
    e = m.end()
    if text[e : e + 1] == " " and text[e + 1 : e + 2] not in ("", " "):
        return e, e + 1, "  "
    return None


def _split_word(text: str, m: re.Match[str], rng: random.Random) -> Edit | None:
    w = m.group()
    spots = [i for i in _base_positions(w) if i > 0]
    if not spots:
        return None
    i = rng.choice(spots)
    return m.start(), m.end(), w[:i] + " " + w[i:]


def _homoglyph(text: str, m: re.Match[str], rng: random.Random) -> Edit | None:
    w = m.group()
    spots = [i for i in _base_positions(w) if homoglyphs_of(w[i])]
    if not spots:
        return None
    i = rng.choice(spots)
    return _replace_at(m, i, rng.choice(homoglyphs_of(w[i])))


def _strip_accents(text: str, m: re.Match[str], rng: random.Random) -> Edit | None:
    w = m.group()
    new = unicodedata.normalize("NFC", "".join(ch for ch in unicodedata.normalize("NFD", w) if not _is_mark(ch)))
    return (m.start(), m.end(), new) if new != w else None


def _add_accents(text: str, m: re.Match[str], rng: random.Random) -> Edit | None:
    w = m.group()
    spots = [i for i in _base_positions(w) if w[i].lower() in ACCENTS and _cluster_end(w, i) == i + 1]
    if not spots:
        return None
    i = rng.choice(spots)
    new = rng.choice(ACCENTS[w[i].lower()])
    return _replace_at(m, i, new.upper() if w[i].isupper() else new)


def _leetspeak(text: str, m: re.Match[str], rng: random.Random) -> Edit | None:
    w = m.group()
    new = "".join(LEET.get(ch.lower(), ch) if ch.isascii() else ch for ch in w)
    if not any(ch.isalpha() for ch in new):  # keep a letter, or the word stops being a word
        return None
    return (m.start(), m.end(), new) if new != w else None


def _ocr(text: str, m: re.Match[str], rng: random.Random) -> Edit | None:
    table = ocr_confusions()
    w = m.group()
    spots = [i for i in _base_positions(w) if w[i] in table]
    if not spots:
        return None
    i = rng.choice(spots)
    return _replace_at(m, i, rng.choice(table[w[i]]))


MIX_FAMILIES: dict[str, tuple[str, ...]] = {
    "typo": TYPO_KINDS,
    "misspelling": ("misspelling",),
    "casing": ("upper", "lower", "title", "random-case"),
    "spacing": ("drop-space", "double-space", "split-word"),
    "homoglyph": ("homoglyph",),
    "accents": ("strip-accents", "add-accents"),
    "leetspeak": ("leetspeak",),
    "ocr": ("ocr",),
}


@dataclass(frozen=True)
class Kind:
    name: str
    group: str
    description: str


KINDS: dict[str, Kind] = {
    k.name: k
    for k in [
        Kind("typo", "typos", "one typo per word: keyboard slip, swap, deletion, insertion or doubled letter"),
        Kind("keyboard", "typos", "a letter replaced by a neighbouring key (QWERTY)"),
        Kind("keyboard-qwertz", "typos", "a letter replaced by a neighbouring key (German QWERTZ)"),
        Kind("keyboard-azerty", "typos", "a letter replaced by a neighbouring key (French AZERTY)"),
        Kind("swap", "typos", "two adjacent letters swapped"),
        Kind("delete", "typos", "a letter deleted"),
        Kind("insert", "typos", "an extra letter from a neighbouring key inserted"),
        Kind("double", "typos", "a letter typed twice"),
        Kind("misspelling", "misspellings", "a real human misspelling of the word (codespell's dictionary)"),
        Kind("upper", "casing", "the word in UPPER case"),
        Kind("lower", "casing", "the word in lower case"),
        Kind("title", "casing", "the word in Title case"),
        Kind("random-case", "casing", "each letter in rAnDoM case"),
        Kind("drop-space", "spacing", "the space after the word dropped"),
        Kind("double-space", "spacing", "the space after the word doubled"),
        Kind("split-word", "spacing", "the word split by a space"),
        Kind("homoglyph", "look-alikes", "a letter replaced by a Cyrillic or Greek look-alike"),
        Kind("strip-accents", "look-alikes", "accents removed (café -> cafe)"),
        Kind("add-accents", "look-alikes", "an accent added to a letter (cafe -> cafè)"),
        Kind("leetspeak", "look-alikes", "letters replaced by digits (leet -> 1337)"),
        Kind("ocr", "look-alikes", "a character replaced by one OCR engines confuse it with (o -> 0, l -> 1, S -> 8)"),
        Kind("mix", "mix", "per word, one perturbation drawn from all of the above"),
    ]
}

_EDITS: dict[str, EditFn] = {
    "keyboard": _keyboard("qwerty"),
    "keyboard-qwertz": _keyboard("qwertz"),
    "keyboard-azerty": _keyboard("azerty"),
    "swap": _swap,
    "delete": _delete,
    "insert": _insert,
    "double": _double,
    "misspelling": _misspelling,
    "upper": _casing(str.upper),
    "lower": _casing(str.lower),
    "title": _casing(_title),
    "random-case": _random_case,
    "drop-space": _drop_space,
    "double-space": _double_space,
    "split-word": _split_word,
    "homoglyph": _homoglyph,
    "strip-accents": _strip_accents,
    "add-accents": _add_accents,
    "leetspeak": _leetspeak,
    "ocr": _ocr,
}


def _first_that_applies(kinds: list[str], text: str, m: re.Match[str], rng: random.Random) -> tuple[str, Edit] | None:
    """Try `kinds` in a random order; the first that can change the word wins."""
    rng.shuffle(kinds)
    for kind in kinds:
        edit = _EDITS[kind](text, m, rng)
        if edit is not None:
            return kind, edit
    return None


def _draw(kind: str, text: str, m: re.Match[str], rng: random.Random) -> tuple[str, Edit] | None:
    """The edit `kind` makes to word `m`, with the name of the kind that made it (for typo and mix)."""
    if kind == "typo":
        return _first_that_applies(list(TYPO_KINDS), text, m, rng)
    if kind == "mix":
        families = list(MIX_FAMILIES)
        rng.shuffle(families)
        for family in families:
            drawn = _first_that_applies(list(MIX_FAMILIES[family]), text, m, rng)
            if drawn is not None:
                return drawn
        return None
    edit = _EDITS[kind](text, m, rng)
    return (kind, edit) if edit is not None else None


# --------------------------------------------------------------------------- the engine


def _trim(text: str, edit: Edit) -> tuple[int, int, str]:
    """Shrink an edit to the characters that differ (common prefix and suffix removed)."""
    start, end, new = edit
    old = text[start:end]
    p = 0
    while p < len(old) and p < len(new) and old[p] == new[p]:
        p += 1
    s = 0
    while s < len(old) - p and s < len(new) - p and old[len(old) - 1 - s] == new[len(new) - 1 - s]:
        s += 1
    # never start or end a change between a letter and its combining marks
    while p > 0 and ((p < len(old) and _is_mark(old[p])) or (p < len(new) and _is_mark(new[p]))):
        p -= 1
    while s > 0 and (
        (len(old) - s < len(old) and _is_mark(old[len(old) - s]))
        or (len(new) - s < len(new) and _is_mark(new[len(new) - s]))
    ):
        s -= 1
    return start + p, end - s, new[p : len(new) - s]


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random(":".join(str(p) for p in (seed, *parts)))


def check_rate(rate: float) -> float:
    try:
        rate = float(rate)
    except (TypeError, ValueError) as err:
        raise PerturbError(f"The rate must be a number between 0 and 1, got {rate!r}.") from err
    if not 0.0 <= rate <= 1.0:  # also rejects NaN
        raise PerturbError(f"The rate must be between 0 and 1 (a share of the words), got {rate}.")
    return rate


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise UnknownPerturbationError(f"Unknown perturbation {kind!r}. Valid kinds: {', '.join(KINDS)}.")
    return kind


def words_of(text: str) -> list[re.Match[str]]:
    """The words of `text` (see the module docstring)."""
    return [m for m in WORD_RE.finditer(text) if any(ch.isalpha() for ch in m.group())]


def n_to_touch(rate: float, n_words: int) -> int:
    """``round(rate * n_words)`` (halves up), and at least one word when ``rate > 0``."""
    if rate <= 0 or n_words == 0:
        return 0
    return max(1, int(rate * n_words + 0.5))


def perturb(text: str, kind: str, rate: float, seed: int = 0) -> PerturbResult:
    """Perturb a share `rate` of the words of `text` with perturbation `kind`, reproducibly from `seed`."""
    check_kind(kind)
    rate = check_rate(rate)
    seed = int(seed)
    words = words_of(text)
    planned: dict[int, tuple[str, Edit]] = {}
    for i, m in enumerate(words):
        drawn = _draw(kind, text, m, _rng(seed, kind, i))
        if drawn is None:
            continue
        start, end, new = drawn[1]
        if new == text[start:end]:
            continue
        if (start, end) == m.span() and not any(ch.isalpha() for ch in new):
            continue  # "I" -> "1": the word would stop being a word
        planned[i] = drawn
    order = sorted(planned)
    _rng(seed, kind, "order").shuffle(order)
    chosen = sorted(order[: n_to_touch(rate, len(words))])

    parts: list[str] = []
    changes: list[Change] = []
    pos = new_len = 0
    for i in chosen:
        op, edit = planned[i]
        start, end, new = _trim(text, edit)
        if start < pos:  # cannot happen: edits stay inside their word or the gap after it
            raise AssertionError(f"overlapping edits at {start}")
        parts.append(text[pos:start])
        new_len += start - pos
        changes.append(Change(start, end, new_len, new_len + len(new), text[start:end], new, op, i))
        parts.append(new)
        new_len += len(new)
        pos = end
    parts.append(text[pos:])
    return PerturbResult(
        original=text,
        text="".join(parts),
        changes=tuple(changes),
        kind=kind,
        rate=rate,
        seed=seed,
        n_words=len(words),
        n_eligible=len(planned),
    )


def _kind_function(kind: str) -> Callable[..., PerturbResult]:
    def fn(text: str, rate: float, seed: int = 0) -> PerturbResult:
        return perturb(text, kind, rate, seed)

    fn.__name__ = kind.replace("-", "_")
    fn.__doc__ = f"{KINDS[kind].description.capitalize()}, in a share `rate` of the words (see `perturb`)."
    return fn


typo = _kind_function("typo")
keyboard_typo = _kind_function("keyboard")
keyboard_qwertz = _kind_function("keyboard-qwertz")
keyboard_azerty = _kind_function("keyboard-azerty")
swap_letters = _kind_function("swap")
delete_letter = _kind_function("delete")
insert_letter = _kind_function("insert")
double_letter = _kind_function("double")
misspell = _kind_function("misspelling")
upper_case = _kind_function("upper")
lower_case = _kind_function("lower")
title_case = _kind_function("title")
random_case = _kind_function("random-case")
drop_spaces = _kind_function("drop-space")
double_spaces = _kind_function("double-space")
split_words = _kind_function("split-word")
homoglyph = _kind_function("homoglyph")
strip_accents = _kind_function("strip-accents")
add_accents = _kind_function("add-accents")
leetspeak = _kind_function("leetspeak")
ocr = _kind_function("ocr")
mix = _kind_function("mix")


def kind_choices() -> list[tuple[str, str]]:
    """``(label, name)`` pairs for a dropdown, e.g. ``("typos · swap", "swap")``."""
    return [(f"{k.group} · {k.name}", k.name) for k in KINDS.values()]


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m playground.perturb", description="Perturb a text, reproducibly.")
    parser.add_argument("text", nargs="?", help="the text (or use --text FILE, or stdin)")
    parser.add_argument("--text", dest="text_file", metavar="FILE", help="read the text from FILE")
    parser.add_argument("--kind", default="typo", help=f"one of: {', '.join(KINDS)} (default typo)")
    parser.add_argument("--rate", type=float, default=0.1, help="share of words touched, 0..1 (default 0.1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the result with its alignment as JSON")
    parser.add_argument("--list", action="store_true", help="list the perturbation kinds")
    args = parser.parse_args(argv)
    if args.list:
        for k in KINDS.values():
            print(f"{k.name:16} {k.group:13} {k.description}")
        return 0
    try:
        if args.text_file:
            text = Path(args.text_file).read_text(encoding="utf-8")
        elif args.text is not None:
            text = args.text
        else:
            text = sys.stdin.read()
        result = perturb(text, args.kind, args.rate, args.seed)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(result.text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
