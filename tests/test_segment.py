"""Token-boundaries view: segmenters, offsets, entropy patches, CLI and the tab's event.

The property tests are the acceptance criterion of the view: for any Unicode string, every
segmenter's units concatenate back to the exact input with contiguous, consistent offsets.
Tokenizers are tiny ones built here (no downloads); the registry path uses `hf:<dir>`.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from playground import segment as core

REPO = Path(__file__).resolve().parent.parent

# Characters that stress segmenters: ZWJ sequences, combining marks, skin tones, flags, CJK,
# controls, separators, BOM, non-BMP, and strings that look like tokenizer syntax or HTML.
TRICKY = [
    "\u200d", "\u0301", "\u0308", "👨", "👩", "👧", "🏽", "🇩", "🇪", "👍", "日", "本", "語", "한",
    "\x00", "\x07", "\x1b", "\x7f", "\x85", "\r", "\n", "\t", " ", "\u00a0", "\u2028", "\u3000",
    "\ufeff", "\U0010ffff", "\U0001f600", "é", "ß", "𒀀", "▁", "Ġ", "<0x41>", "</s>", "<|endoftext|>",
    "<script>", "&amp;", '"', "'", "${x}", "{{value}}",
]  # fmt: skip
chars = st.one_of(st.characters(codec="utf-8"), st.sampled_from(TRICKY), st.sampled_from("abc xyz"))
texts = st.lists(chars, min_size=0, max_size=40).map("".join)
nonempty = st.lists(chars, min_size=1, max_size=40).map("".join)
PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Tokenizers cut rare words into several pieces, bytes never fail.",
    "Die Straßenbahn fährt über die Brücke.",
    "def add(a, b):\n    return a + b\n",
]


# ---------------------------------------------------------------------------------- helpers


def check_units(text: str, seg: core.Segmentation) -> None:
    """Every invariant a segmentation promises (see the playground.segment docstring)."""
    data = text.encode("utf-8")
    units = seg.units
    assert "".join(u.text for u in units) == text
    if not text:
        assert units == [] or all(u.byte_start == u.byte_end == 0 for u in units)
        return
    assert units[0].start == 0 and units[0].byte_start == 0
    assert units[-1].end == len(text) and units[-1].byte_end == len(data)
    first_byte = np.cumsum([0] + [len(c.encode("utf-8")) for c in text])
    for a, b in itertools.pairwise(units):
        assert a.end == b.start and a.byte_end == b.byte_start
    for u in units:
        assert 0 <= u.start <= u.end <= len(text) and u.byte_start <= u.byte_end
        assert u.text == text[u.start : u.end]
        assert u.hex == data[u.byte_start : u.byte_end].hex(" ")
        # a character belongs to the unit that holds its first byte
        for c in range(u.start, u.end):
            assert u.byte_start <= first_byte[c] < u.byte_end
        on_boundary = {int(x) for x in first_byte}
        assert u.partial == (u.byte_start not in on_boundary or u.byte_end not in on_boundary)
        if u.byte_end > u.byte_start:
            lo, hi = u.char_span
            assert first_byte[lo] <= u.byte_start and u.byte_end <= first_byte[hi]
        if u.text == "" and u.byte_end > u.byte_start:
            assert u.partial  # only continuation bytes can make an empty unit


def _fast(tokenizer: Any) -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>")


def byte_level_bpe(lowercase: bool = False) -> Any:
    """GPT-2 style byte-level BPE (like SmolLM2 and bpe-tiny); optionally with a lowercasing
    normalizer, which makes the pieces differ from the text (offset-mapping fallback)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    if lowercase:
        tok.normalizer = normalizers.Lowercase()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<unk>", "<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return _fast(tok)


def sentencepiece_bpe(prefix_space: bool = False) -> Any:
    """Gemma-style BPE: "▁" for spaces and <0xNN> byte-fallback pieces for unknown characters.
    With ``prefix_space`` a leading "▁" is added (Llama-2 style "dummy prefix")."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    if prefix_space:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    else:
        tok.normalizer = normalizers.Replace(" ", "▁")
    trainer = trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>"], show_progress=False)
    tok.train_from_iterator([c.replace(" ", "▁") for c in CORPUS], trainer)
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    for b in range(256):  # byte-fallback pieces live in the vocabulary, as in Gemma's
        vocab.setdefault(f"<0x{b:02X}>", len(vocab))
    spec["model"]["byte_fallback"] = True
    tok = Tokenizer.from_str(json.dumps(spec))
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    return _fast(tok)


@pytest.fixture(scope="module")
def tokenizers() -> dict[str, Any]:
    from transformers import ByT5Tokenizer

    return {
        "byte-level": byte_level_bpe(),
        "byte-level-lower": byte_level_bpe(lowercase=True),
        "sentencepiece": sentencepiece_bpe(),
        "sentencepiece-prefix": sentencepiece_bpe(prefix_space=True),
        "byt5": ByT5Tokenizer(),
    }


# ---------------------------------------------------------------------------------- properties


@PROPERTY
@given(text=texts)
def test_bytes_property(text: str) -> None:
    seg = core.segment_bytes(text)
    check_units(text, seg)
    assert [u.id for u in seg.units] == list(text.encode("utf-8"))


@PROPERTY
@given(text=texts, limit=st.integers(1, 40))
def test_hat_words_property(text: str, limit: int) -> None:
    from hat_splitter import HATSplitter

    seg = core.segment_hat_words(text, limit)
    check_units(text, seg)
    words = HATSplitter().split_with_limit(text, limit) if text else []
    assert [text.encode()[u.byte_start : u.byte_end] for u in seg.units] == words
    assert all(u.byte_end - u.byte_start <= limit for u in seg.units)


@PROPERTY
@given(text=texts, data=st.data(), threshold=st.floats(-1, 9, allow_nan=False))
def test_entropy_patches_property(text: str, data: st.DataObject, threshold: float) -> None:
    n = len(text.encode("utf-8"))
    entropy = np.array(data.draw(st.lists(st.floats(0, 8, allow_nan=False), min_size=n, max_size=n)))
    seg = core.segment_entropy_patches(text, entropy, threshold)
    check_units(text, seg)
    starts = [u.byte_start for u in seg.units]
    assert starts == core.entropy_patch_starts(entropy, threshold)
    for i in range(1, n):  # a patch starts exactly where the entropy exceeds the threshold
        assert (i in starts) == bool(entropy[i] > threshold)


@PROPERTY
@given(text=texts)
def test_tokenizer_property(tokenizers: dict[str, Any], text: str) -> None:
    for name, tok in tokenizers.items():
        seg = core.segment_tokenizer(text, tok, name)
        check_units(text, seg)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert [u.id for u in seg.units] == ids or (not ids and seg.alignment == "approximate")


@PROPERTY
@given(text=st.text(alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzäöüß.,;!? \n\t0123456789"), max_size=60))
def test_tokenizers_align_exactly_without_normalization(tokenizers: dict[str, Any], text: str) -> None:
    # Piece bytes must spell the text: the offset-mapping fallback is only for normalizers.
    for name in ("byte-level", "sentencepiece", "sentencepiece-prefix", "byt5"):
        assert core.segment_tokenizer(text, tokenizers[name], name).alignment == "exact", name


# ---------------------------------------------------------------------------------- tokenizers


def test_byte_level_tokens_that_split_an_emoji(tokenizers: dict[str, Any]) -> None:
    text = "a 👨\u200d👩 b"
    seg = core.segment_tokenizer(text, tokenizers["byte-level"], "bpe")
    check_units(text, seg)
    assert seg.alignment == "exact"
    partial = [u for u in seg.units if u.partial]
    assert partial, "an untrained emoji must come out as partial byte-level pieces"
    assert any(u.text == "" for u in partial)  # pieces holding only continuation bytes
    assert all(u.char_span[1] - u.char_span[0] >= 1 for u in partial)


def test_sentencepiece_byte_fallback_is_marked(tokenizers: dict[str, Any]) -> None:
    text = "the 日 fox"
    seg = core.segment_tokenizer(text, tokenizers["sentencepiece"], "sp")
    check_units(text, seg)
    assert seg.alignment == "exact"
    fb = [u for u in seg.units if u.byte_fallback]
    assert [u.hex for u in fb] == ["e6", "97", "a5"]
    assert [u.piece for u in fb] == ["<0xE6>", "<0x97>", "<0xA5>"]
    assert [u.text for u in fb] == ["日", "", ""]


def test_dummy_prefix_space_is_not_in_the_text(tokenizers: dict[str, Any]) -> None:
    text = "the fox"
    seg = core.segment_tokenizer(text, tokenizers["sentencepiece-prefix"], "sp")
    check_units(text, seg)
    assert seg.alignment == "exact" and seg.units[0].piece.startswith("▁")


def test_normalizing_tokenizer_falls_back_to_offsets(tokenizers: dict[str, Any]) -> None:
    text = "The QUICK fox"
    seg = core.segment_tokenizer(text, tokenizers["byte-level-lower"], "lower")
    check_units(text, seg)
    assert seg.alignment == "offsets"


def test_byt5_special_token_text_is_aligned(tokenizers: dict[str, Any]) -> None:
    # ByT5 strips the spaces around "</s>" (lstrip/rstrip): its pieces cannot spell the text.
    text = "a </s> b"
    seg = core.segment_tokenizer(text, tokenizers["byt5"], "byt5")
    check_units(text, seg)
    assert any(u.special for u in seg.units)


def test_tokenizer_loader_and_unknown_names(tokenizers: dict[str, Any]) -> None:
    res = core.segment("fox", ["bytes", "byt5"], tokenizer_loader=tokenizers.__getitem__, allowed_models=["byt5"])
    assert list(res) == ["bytes", "byt5"]
    with pytest.raises(core.UnknownSegmenterError, match="Valid names: bytes, hat-words, entropy-patches, mine"):
        core.segment("fox", ["nope"], allowed_models=["mine"])


# ---------------------------------------------------------------------------------- entropy patches


def test_entropy_patch_starts_synthetic() -> None:
    e = np.array([5.0, 0.5, 3.0, 1.0, 2.5, 2.0, 0.1])
    assert core.entropy_patch_starts(e, 2.0) == [0, 2, 4]  # 2.0 is not above 2.0
    assert core.entropy_patch_starts(e, 10.0) == [0]  # one patch
    assert core.entropy_patch_starts(e, -1.0) == list(range(7))  # every byte
    assert core.entropy_patch_starts(np.zeros(0), 1.0) == []
    with pytest.raises(ValueError, match="NaN"):
        core.entropy_patch_starts(np.array([1.0, float("nan")]), 1.0)


def test_entropy_patches_through_segment() -> None:
    text = "ab日c"  # 6 bytes; a patch starting inside 日 is a partial unit
    entropy = np.array([0, 3, 0, 3, 0, 3], dtype=float)
    res = core.segment(text, ["entropy-patches"], entropy_fn=lambda t: entropy, entropy_threshold=1.0)
    seg = res["entropy-patches"]
    check_units(text, seg)
    assert [(u.byte_start, u.byte_end) for u in seg.units] == [(0, 1), (1, 3), (3, 5), (5, 6)]
    assert [u.text for u in seg.units] == ["a", "b日", "", "c"]
    assert seg.extra["entropy"] == entropy.tolist()
    with pytest.raises(ValueError, match="6 bytes"):
        core.segment_entropy_patches(text, np.zeros(3))


def test_entropy_from_a_registered_byte_model(tiny_byte_dir: Path) -> None:
    pytest.importorskip("models.scoring")
    text = "Hi 👋 there"
    fn = core.default_entropy_fn(f"hf:{tiny_byte_dir}")
    entropy = fn(text)
    assert entropy.shape == (len(text.encode()),) and np.all(entropy >= 0)
    assert entropy.max() <= 8.5  # at most log2(vocab) bits, about 8 for a byte model
    seg = core.segment_one(text, "entropy-patches", entropy_fn=fn, entropy_threshold=float(np.median(entropy)))
    check_units(text, seg)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=nonempty.filter(lambda t: not any(s in t for s in ("</s>", "<pad>", "<unk>"))))
def test_entropy_patches_from_a_model_property(tiny_byte_dir: Path, text: str) -> None:
    pytest.importorskip("models.scoring")
    fn = core.default_entropy_fn(f"hf:{tiny_byte_dir}")
    seg = core.segment_one(text, "entropy-patches", entropy_fn=fn, entropy_threshold=7.9)
    check_units(text, seg)
    assert len(seg.extra["entropy"]) == len(text.encode("utf-8"))


def test_missing_entropy_model_is_a_clear_error() -> None:
    with pytest.raises(core.SegmentError, match="entropy-patches needs the byte model"):
        core.segment("abc", ["entropy-patches"], entropy_model="hf:/nonexistent/dir")


# ---------------------------------------------------------------------------------- registry


def test_registry_tokenizers(tiny_bpe_dir: Path, tiny_byte_dir: Path) -> None:
    text = "Hello wörld 👋, 日本!"
    bpe, byte = f"hf:{tiny_bpe_dir}", f"hf:{tiny_byte_dir}"
    res = core.segment(text, ["bytes", "hat-words", bpe, byte])
    for seg in res.values():
        check_units(text, seg)
    assert res[bpe].alignment == "exact" and res[bpe].kind == "tokenizer"
    assert [u.id for u in res[byte].units] == [b + 3 for b in text.encode()]  # ByT5: id = byte + 3
    with pytest.raises(core.UnknownSegmenterError, match="Valid names: bytes, hat-words"):
        core.segment(text, ["no-such-model"])
    with pytest.raises(core.SegmentError):
        core.segment(text, ["hf:/no/such/dir"])


def test_hat_model_uses_its_word_cap(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from tiny_hat import build_tiny_hat  # max_word_bytes=8

    name = f"hf:{build_tiny_hat(tmp_path / 'hat')}"
    text = "Donaudampfschifffahrt und so"
    seg = core.segment(text, [name], max_word_bytes=32)[name]
    check_units(text, seg)
    assert seg.kind == "hat" and seg.extra["max_word_bytes"] == 8
    assert max(u.byte_end - u.byte_start for u in seg.units) == 8


# ---------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("", {}, "enter some text"),
        ("x" * 11, {"max_chars": 10}, "limit is 10"),
        ("ok \ud800 no", {}, "not valid Unicode"),
        ("abc", {"max_word_bytes": 0}, "between 1 and"),
        ("abc", {"max_word_bytes": 2.5}, "whole number"),
        ("abc", {"segmenters": []}, "at least one segmenter"),
        ("abc", {"segmenters": ["bytes", "zzz"], "allowed_models": []}, "Unknown segmenter 'zzz'"),
    ],
)
def test_bad_input(text: str, kwargs: dict[str, Any], message: str) -> None:
    kwargs = {"segmenters": ["bytes"], **kwargs}
    with pytest.raises(core.SegmentError, match=re.compile(message, re.IGNORECASE)):
        core.segment(text, **kwargs)


def test_whitespace_only_text_is_segmentable() -> None:
    res = core.segment(" \n\t ", ["bytes", "hat-words"])
    assert res["bytes"].count == 4


# ---------------------------------------------------------------------------------- stats, display, perturb


def test_stats() -> None:
    text = "the quick fox"
    s = core.stats(core.segment_bytes(text), text)
    assert (s.units, s.words, s.bytes, s.chars) == (13, 3, 13, 13)
    assert s.units_per_word == round(13 / 3, 3) and s.bytes_per_unit == 1.0
    h = core.stats(core.segment_hat_words(text), text)
    assert h.units == 3 and h.units_per_word == 1.0


@PROPERTY
@given(text=texts)
def test_visible_leaves_nothing_invisible(text: str) -> None:
    assert core.visible(text).isprintable()
    shown = "".join(ui._display(u.text, visible_ws=True) for u in core.segment_hat_words(text).units)
    # whitespace and controls are all visible; format characters may stay (emoji ZWJ sequences)
    assert all(unicodedata.category(c) not in ("Cc", "Zs", "Zl", "Zp") or c in "\n\t" for c in shown)


def test_visible() -> None:
    assert core.visible("a b\nc\td\r\x00\x7f\u200d\u2028") == "a⋅b↵c→d␍␀␡⟨ZWJ⟩⟨U+2028⟩"
    assert core.visible("日é") == "日é"


def test_perturb_is_seeded_and_small() -> None:
    text = "The quick brown fox jumps over the lazy dog"
    a, b = core.perturb(text, seed=1), core.perturb(text, seed=1)
    assert a == b != text
    assert len(a) == len(text) and 1 <= sum(x != y for x, y in zip(a, text, strict=True)) <= 2
    assert core.perturb("12 34", seed=0) == "12 34"  # nothing to perturb


def test_examples_cover_the_brief() -> None:
    labels = [label for label, _ in core.load_examples()]
    assert labels[:7] == ["english", "typos", "german", "code", "numbers", "emoji cjk", "compound"]
    assert "spanish" in labels  # the units-per-word chart falls back to examples per language


# ---------------------------------------------------------------------------------- CLI


def test_cli_json() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "playground.segment", "--text", "Größe 👍", "--segmenters", "bytes,hat-words",
         "--max-word-bytes", "4", "--json"],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    data = json.loads(out.stdout)
    segs = data["segmenters"]
    assert set(segs) == {"bytes", "hat-words"}
    assert segs["bytes"]["count"] == len("Größe 👍".encode())
    for s in segs.values():
        assert "".join(u["text"] for u in s["units"]) == "Größe 👍"
        assert {"text", "start", "end", "id", "byte_start", "byte_end", "hex", "partial"} <= set(s["units"][0])
    assert segs["hat-words"]["max_word_bytes"] == 4


def test_cli_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert core.main(["--text", "", "--json"]) == 2
    assert "enter some text" in capsys.readouterr().err
    assert core.main(["--text", "abc", "--segmenters", "nope", "--json"]) == 2
    assert "Unknown segmenter 'nope'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- the tab's event

ui = pytest.importorskip("playground.ui.segment")


def _config(models: list[str] | None = None, max_chars: int = 100) -> Any:
    from playground.config import AppConfig

    return AppConfig(models=models or [], max_text_chars=max_chars)


def test_html_escapes_user_text() -> None:
    text = '<img src=x onerror="alert(1)"> & ${1+1} {{value}}'
    for seg in (core.segment_hat_words(text), core.segment_entropy_patches(text, np.zeros(len(text)), 1.0)):
        html = ui.render_units(seg, text, visible_ws=False)
        assert "<img" not in html and "&lt;" in html
        assert html.count("<span") == seg.count == html.count("</span>")
        assert 'onerror="' not in html  # quotes inside title attributes are escaped too
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html  # one patch: the whole text


def test_html_marks_partial_and_fallback(tokenizers: dict[str, Any]) -> None:
    text = "the 日 fox"
    seg = core.segment_tokenizer(text, tokenizers["sentencepiece"], "sp")
    html = ui.render_units(seg, text, visible_ws=True)
    assert html.count("fb") >= 3 and "partial" in html and "cont" in html
    assert "⋅" in html and "byte-fallback piece" in html


def test_run_segment(tokenizers: dict[str, Any]) -> None:
    out_html, df, fig, _entropy, payload = ui.run_segment(
        "The quick fox", ["bytes", "hat-words"], 16, 2.0, True, True, 0, config=_config()
    )
    assert 'data-segmenter="hat-words"' in out_html and "perturbed" in out_html
    assert list(df["variant"]) == ["clean", "perturbed", "clean", "perturbed"]
    assert len(fig.data) == 6  # 3 metrics x (clean, perturbed)
    assert payload["clean"]["segmenters"]["hat-words"]["count"] == 3
    assert payload["perturbed"]["text"] != "The quick fox"


@pytest.mark.parametrize(
    ("text", "segmenters", "mwb", "message"),
    [
        ("", ["bytes"], 16, "enter some text"),
        ("x" * 101, ["bytes"], 16, "limit is 100"),
        ("a\ud800", ["bytes"], 16, "not valid Unicode"),
        ("abc", ["gpt-9"], 16, "Unknown segmenter 'gpt-9'"),
        ("abc", [], 16, "at least one segmenter"),
        ("abc", ["hat-words"], 0, "between 1 and"),
        ("abc", ["hat-words"], None, "whole number"),
    ],
)
def test_run_segment_errors(text: str, segmenters: list[str], mwb: Any, message: str) -> None:
    import gradio as gr

    with pytest.raises(gr.Error, match=f"(?i){message}"):
        ui.run_segment(text, segmenters, mwb, 2.0, False, False, 0, config=_config())


def test_missing_model_becomes_an_error_card() -> None:
    # A model that fails to load must not hide the other segmenters' results.
    cfg = _config(models=["hf:/no/such/model/dir"])
    out_html, df, *_ = ui.run_segment("abc", ["bytes", "hf:/no/such/model/dir"], 16, 2.0, False, False, 0, config=cfg)
    assert "seg-error" in out_html and list(df["segmenter"]) == ["bytes"]


def test_unit_to_dict_has_every_field() -> None:
    import dataclasses

    u = core.segment_bytes("é").units[0]
    d = dataclasses.asdict(u)
    d["char_span"] = list(u.char_span)
    assert u.to_dict() == d
