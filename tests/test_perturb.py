"""Property and example tests of playground/perturb.py (pure Python, no models)."""

from __future__ import annotations

import itertools
import json
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from playground import perturb as P

KINDS = list(P.KINDS)

WORDS = [
    "The",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "the",
    "lazy",
    "dog",
    "because",
    "receive",
    "Café",
    "naïve",
    "Straße",
    "ÜBER",
    "HAT",
    "tokenizers",
    "2025",
    "x",
    "a",
    "I",
    "über",
    "e\u0301te\u0301",
    "日本語",
    "Ελληνικά",
    "русский",
    "ﬁne",
    "ǅemal",
    "don't",
    "3.14",
]
SEPARATORS = [" ", " ", " ", "  ", ", ", ". ", "\n", "\t", "-", "", " (", ") ", "\u00a0", "🙂 ", "\r\n"]

# Sentences made of real words (so every kind finds something to do) ...
sentences = st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPARATORS)), max_size=30).map(
    lambda pairs: "".join(w + s for w, s in pairs)
)
# ... and arbitrary Unicode text without surrogates (valid UTF-8 in, valid UTF-8 out).
any_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=80)
texts = st.one_of(sentences, any_text)
rates = st.one_of(st.sampled_from([0.0, 0.05, 0.1, 0.3, 1.0]), st.floats(0.0, 1.0))
seeds = st.integers(-(2**40), 2**40)
kinds = st.sampled_from(KINDS)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(texts, kinds, rates, seeds)
def test_same_seed_same_output(text: str, kind: str, rate: float, seed: int) -> None:
    a = P.perturb(text, kind, rate, seed)
    b = P.perturb(text, kind, rate, seed)
    assert a == b
    assert a.text == b.text and a.changes == b.changes


@FAST
@given(texts, kinds, seeds)
def test_rate_zero_is_identity(text: str, kind: str, seed: int) -> None:
    r = P.perturb(text, kind, 0.0, seed)
    assert r.text == text
    assert r.changes == ()
    assert [(s.start, s.end, s.new_start, s.new_end, s.changed) for s in r.segments()] == [
        (0, len(text), 0, len(text), False)
    ]


def _check_alignment(r: P.PerturbResult) -> None:
    clean, pert = r.original, r.text
    # every change is what it says it is, and they are ordered and disjoint
    prev_end = prev_new_end = 0
    for c in r.changes:
        assert prev_end <= c.start <= c.end <= len(clean)
        assert prev_new_end <= c.new_start <= c.new_end <= len(pert)
        assert clean[c.start : c.end] == c.before
        assert pert[c.new_start : c.new_end] == c.after
        assert c.before != c.after
        # text between changes is unchanged and keeps its length
        assert clean[prev_end : c.start] == pert[prev_new_end : c.new_start]
        prev_end, prev_new_end = c.end, c.new_end
    assert clean[prev_end:] == pert[prev_new_end:]
    # the segments cover both texts end to end
    segs = r.segments()
    assert segs[0].start == 0 and segs[0].new_start == 0
    assert segs[-1].end == len(clean) and segs[-1].new_end == len(pert)
    for a, b in itertools.pairwise(segs):
        assert a.end == b.start and a.new_end == b.new_start
    assert "".join(pert[s.new_start : s.new_end] for s in segs) == pert
    for s in segs:
        if not s.changed:
            assert clean[s.start : s.end] == pert[s.new_start : s.new_end]
    assert sum(s.changed for s in segs) == len(r.changes)


@FAST
@given(texts, kinds, rates, seeds)
def test_alignment_maps_every_changed_span(text: str, kind: str, rate: float, seed: int) -> None:
    r = P.perturb(text, kind, rate, seed)
    _check_alignment(r)
    # map_offset is monotone and exact outside changes
    mapped = [r.map_offset(i) for i in range(len(text) + 1)]
    assert mapped == sorted(mapped)
    for s in r.segments():
        if not s.changed:
            for i in range(s.start + 1, s.end):
                assert mapped[i] == s.new_start + i - s.start


@FAST
@given(texts, kinds, rates, seeds)
def test_valid_utf8_and_nothing_lost_outside_touched_words(text: str, kind: str, rate: float, seed: int) -> None:
    r = P.perturb(text, kind, rate, seed)
    r.text.encode("utf-8")  # never a lone surrogate or anything else unencodable
    assert not any(unicodedata.category(ch) == "Cs" for ch in r.text)
    words = P.words_of(text)
    assert r.n_words == len(words)
    touched = [c.word for c in r.changes]
    assert len(set(touched)) == len(touched)  # one edit per touched word
    for c in r.changes:
        m = words[c.word]
        # inside the word, or (spacing) the one space right after it
        assert m.start() <= c.start and c.end <= m.end() + 1, (c, m)
        assert c.op in P.KINDS
    assert r.n_touched == min(P.n_to_touch(r.rate, r.n_words), r.n_eligible)


@FAST
@given(sentences, kinds, seeds, st.floats(0.0, 0.5), st.floats(0.0, 0.5))
def test_rates_are_nested(text: str, kind: str, seed: int, r1: float, r2: float) -> None:
    lo, hi = sorted((r1, r2))
    a, b = P.perturb(text, kind, lo, seed), P.perturb(text, kind, hi, seed)

    def key(c: P.Change) -> tuple:
        return c.start, c.end, c.before, c.after, c.op, c.word

    assert {key(c) for c in a.changes} <= {key(c) for c in b.changes}


@FAST
@given(sentences, seeds)
def test_word_count_kept_by_in_word_kinds(text: str, seed: int) -> None:
    """Kinds that edit inside a word keep the number of words (only spacing kinds change it)."""
    for kind in ("keyboard", "swap", "double", "upper", "lower", "title", "random-case", "homoglyph", "ocr"):
        r = P.perturb(text, kind, 0.5, seed)
        assert len(P.words_of(r.text)) == len(P.words_of(text)), (kind, r.text)


# --------------------------------------------------------------------------- examples

TEXT = "The quick brown fox jumps over the lazy dog because we receive the tokenizers."


def test_rate_is_share_of_words() -> None:
    n = len(P.words_of(TEXT))
    assert n == 14
    for rate, k in ((0.0, 0), (0.01, 1), (0.1, 1), (0.2, 3), (0.5, 7), (1.0, 14)):
        assert P.perturb(TEXT, "upper", rate, 3).n_touched == k
    r = P.perturb(TEXT, "upper", 1.0, 3)
    assert r.text == TEXT.upper()
    assert r.touched_share == 1.0


def test_keyboard_uses_real_neighbours() -> None:
    for layout, kind in (("qwerty", "keyboard"), ("qwertz", "keyboard-qwertz"), ("azerty", "keyboard-azerty")):
        near = P.keyboard_neighbours(layout)
        r = P.perturb(TEXT, kind, 1.0, 7)
        assert r.n_touched >= 13
        for c in r.changes:
            assert len(c.before) == len(c.after) == 1
            assert c.after.lower() in near[c.before.lower()]
            assert c.after.isupper() == c.before.isupper()
    assert "y" in P.keyboard_neighbours("qwertz")["a"]  # z and y swap places on QWERTZ
    assert "z" in P.keyboard_neighbours("qwerty")["a"]
    assert "a" not in P.keyboard_neighbours("qwerty")["a"]  # en.json lists the key itself
    with pytest.raises(P.PerturbError):
        P.keyboard_neighbours("dvorak")


def test_typo_kinds_do_what_they_say() -> None:
    for seed in range(5):
        for c in P.perturb(TEXT, "swap", 1.0, seed).changes:
            assert c.after == c.before[::-1] and len(c.before) == 2
        for c in P.perturb(TEXT, "delete", 1.0, seed).changes:
            assert c.after == "" and len(c.before) == 1
        for c in P.perturb(TEXT, "double", 1.0, seed).changes:
            assert c.before == "" and len(c.after) == 1
        for c in P.perturb(TEXT, "insert", 1.0, seed).changes:
            assert c.before == "" and c.after.isalpha()
        ops = {c.op for s in range(5) for c in P.perturb(TEXT, "typo", 1.0, s).changes}
        assert ops <= set(P.TYPO_KINDS) and len(ops) >= 4


def test_misspellings_come_from_codespell_and_keep_case() -> None:
    table = P.misspellings()
    assert len(table) > 10_000
    assert "teh" in table["the"]
    r = P.perturb("The THE the because", "misspelling", 1.0, 0)
    words = r.text.split()
    assert words[0][0].isupper() and words[0][1:].islower()
    assert words[1].isupper()
    assert words[2].islower()
    for c in r.changes:
        assert c.op == "misspelling"
    for w, orig in zip(words, ["the", "the", "the", "because"], strict=True):
        assert w.lower() in table[orig]
    # a word codespell does not know is left alone
    assert P.perturb("Qzxv", "misspelling", 1.0, 0).text == "Qzxv"


def test_casing_spacing_and_lookalikes() -> None:
    assert P.perturb("hello world", "title", 1.0, 0).text == "Hello World"
    assert P.perturb("Hello World", "lower", 1.0, 0).text == "hello world"
    rc = P.perturb("hello world", "random-case", 1.0, 0)
    assert rc.text.lower() == "hello world" and rc.text != "hello world"
    assert P.perturb("a b c", "drop-space", 1.0, 0).text == "abc"
    assert P.perturb("a b c", "double-space", 1.0, 0).text == "a  b  c"
    split = P.perturb("hello", "split-word", 1.0, 0).text
    assert split.replace(" ", "") == "hello" and split.count(" ") == 1
    assert P.perturb("Café naïve", "strip-accents", 1.0, 0).text == "Cafe naive"
    assert P.perturb("cafe\u0301", "strip-accents", 1.0, 0).text == "cafe"  # decomposed input
    added = P.perturb("cafe", "add-accents", 1.0, 0).text
    assert added != "cafe" and unicodedata.normalize("NFD", added).encode("ascii", "ignore").decode() == "cafe"
    homo = P.perturb("paypal", "homoglyph", 1.0, 0)
    (c,) = homo.changes
    assert unicodedata.name(c.after).split()[0] in ("CYRILLIC", "GREEK")
    ocr = P.perturb("good", "ocr", 1.0, 0)
    (c,) = ocr.changes
    assert c.after in P.ocr_confusions()[c.before]


def test_homoglyphs_do_not_depend_on_the_characters_asked_before() -> None:
    """The answer for a letter is the same whatever was asked first, and asking about other
    scripts (CJK, Armenian, Hebrew) neither changes it nor grows the table."""
    latin = [*"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "\u01b7", "\u021c", "\u00b5"]
    P.homoglyphs_of.cache_clear()
    P._homoglyph_table.cache_clear()
    forward = {ch: P.homoglyphs_of(ch) for ch in latin}
    size = len(P._homoglyph_table())
    P.homoglyphs_of.cache_clear()
    for other in "\u4e00\u0561\u05d0\u13a0":
        P.homoglyphs_of(other)
    backward = {ch: P.homoglyphs_of(ch) for ch in reversed(latin)}
    assert forward == backward and len(P._homoglyph_table()) == size
    assert forward["o"] and forward["\u00b5"] == ("\u03bc",)  # micro sign -> Greek mu
    assert all(0x0391 <= ord(c) <= 0x03C9 or 0x0400 <= ord(c) <= 0x045F for v in forward.values() for c in v)


def test_leetspeak_keeps_a_letter() -> None:
    # "toast" -> "70457" would have no letter left: not a word any more, so it is not eligible
    assert P.perturb("toast", "leetspeak", 1.0, 0).text == "toast"
    assert P.perturb("hello", "leetspeak", 1.0, 0).text == "h3110"


def test_mix_uses_many_kinds() -> None:
    text = " ".join(["Hello wonderful Café world because people receive"] * 8)
    ops = {c.op for c in P.perturb(text, "mix", 1.0, 1).changes}
    assert len(ops) >= 8


def test_map_offset() -> None:
    r = P.perturb("ab cd ef", "drop-space", 1.0, 0)
    assert r.text == "abcdef"
    assert [r.map_offset(i) for i in range(9)] == [0, 1, 2, 2, 3, 4, 4, 5, 6]


def test_errors() -> None:
    with pytest.raises(P.UnknownPerturbationError, match="Valid kinds: typo"):
        P.perturb("x", "typos", 0.1)
    for bad in (-0.1, 1.5, float("nan"), "lots"):
        with pytest.raises(P.PerturbError, match="rate"):
            P.perturb("x", "typo", bad)  # type: ignore[arg-type]
    assert P.perturb("", "typo", 0.5, 0).text == ""
    assert P.perturb("123 456 !!", "typo", 0.5, 0).n_words == 0


def test_named_functions_and_str() -> None:
    assert P.typo(TEXT, 0.2, 5) == P.perturb(TEXT, "typo", 0.2, 5)
    assert P.misspell(TEXT, 0.2, 5).kind == "misspelling"
    assert str(P.upper_case("abc", 1.0)) == "ABC"


def test_cli(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    f = tmp_path / "t.txt"
    f.write_text(TEXT, encoding="utf-8")
    assert P.main(["--text", str(f), "--kind", "upper", "--rate", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["text"] == TEXT.upper() and out["n_touched"] == 14
    assert P.main(["--kind", "nope", "abc"]) == 2
    assert "Unknown perturbation" in capsys.readouterr().err
