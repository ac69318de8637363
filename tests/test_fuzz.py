"""Hypothesis fuzzing of the view cores with arbitrary text: only documented user errors escape, and cuts stay exact.

Texts mix emoji and ZWJ sequences, combining marks, right-to-left scripts, control characters,
lone surrogates (as uploads and JSON can carry them), long single "words", and empty or
whitespace-only text. The cores run on the tiny random models of `conftest.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.errors import UserError
from models.registry import Registry
from models.scoring import score_with
from playground import attention, robustness, segment
from playground.config import read_text, validate_text

PIECES = [
    "word", " ", "\n", "\t", "👩\u200d👩\u200d👧", "🇩🇪", "e\u0301", "שלום", "مرحبا", "\u202e", "\x00", "\x07",
    "\ufeff", "\u200b", "Straße", "日本語", "\ud800", "a" * 40, "qiuck", "3.14",
]  # fmt: skip
TEXTS = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=12).map("".join),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=40),
    st.sampled_from(["", "   ", "\n\n", "x" * 3000]),
)
FUZZ = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def reg() -> Registry:
    return Registry(device="cpu")


def encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@FUZZ
@given(text=TEXTS)
def test_validate_text_accepts_only_what_the_cores_can_read(text: str) -> None:
    try:
        out = validate_text(text, 2000)
    except UserError as err:
        assert str(err) and ("surrogate" in str(err) or not text.strip() or len(text) > 2000)
        return
    assert out == text and encodable(text) and text.strip()


@FUZZ
@given(text=TEXTS)
def test_segmenters_stay_exact(text: str, tiny_bpe_dir: Path, tiny_byte_dir: Path) -> None:
    names = ["bytes", "hat-words", f"hf:{tiny_bpe_dir}", f"hf:{tiny_byte_dir}"]
    try:
        result = segment.segment(text, names, allowed_models=names[2:], max_chars=2000)
    except segment.SegmentError as err:
        assert str(err)
        return
    data = text.encode("utf-8")
    for name, seg in result.items():
        ends = [0] + [u.byte_end for u in seg.units]
        assert [u.byte_start for u in seg.units] == ends[:-1], name  # contiguous
        assert ends[-1] == len(data), name  # covering every byte
        assert b"".join(data[u.byte_start : u.byte_end] for u in seg.units) == data


@FUZZ
@given(text=TEXTS)
def test_scoring_counts_every_byte(text: str, reg: Registry, tiny_bpe_dir: Path, tiny_hat_dir: Path) -> None:
    try:
        text = validate_text(text, 2000)
    except UserError:
        return
    for name in (f"hf:{tiny_bpe_dir}", f"hf:{tiny_hat_dir}"):
        lm = reg.load_model(name)
        score = score_with(lm.model, lm.tokenizer, text)
        assert score.n_bytes == len(text.encode()) == len(score.byte_bits)
        assert abs(score.byte_bits.sum() - score.total_bits) < 1e-6 * max(1.0, score.total_bits)


@FUZZ
@given(text=TEXTS)
def test_attention_and_robustness_raise_only_user_errors(
    text: str, reg: Registry, tiny_bpe_dir: Path, tiny_hat_dir: Path
) -> None:
    names = [f"hf:{tiny_bpe_dir}", f"hf:{tiny_hat_dir}"]
    try:
        result = robustness.analyze(
            names, text, "mix", 0.3, 1, next_words=False, max_chars=2000, loader=reg.load_model
        )
        assert set(result.to_dict()["models"]) == set(names)
    except UserError as err:
        assert str(err)
    try:
        checked = validate_text(text, 2000)
    except UserError:
        return
    for name in names:
        try:
            out = attention.compute_attention(reg.load_model(name), checked)
        except attention.AttentionInputError as err:
            assert str(err)
            continue
        assert out.levels


def test_invalid_utf8_files_get_a_message(tmp_path: Path) -> None:
    path = tmp_path / "upload.txt"
    path.write_bytes(b"caf\xe9 \xff\xfe")
    with pytest.raises(UserError, match="not valid UTF-8"):
        read_text(str(path))


def test_a_100_kb_single_word_is_refused_or_cut(tiny_bpe_dir: Path) -> None:
    word = "x" * 100_000
    with pytest.raises(UserError, match="limit"):
        validate_text(word, 2000)
    result = segment.segment(word, ["bytes", "hat-words"], max_chars=None)
    assert sum(u.byte_end - u.byte_start for u in result["hat-words"].units) == 100_000


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(text=TEXTS)
def test_speculative_raises_only_user_errors_and_stays_lossless(text: str, reg: Registry, tiny_bpe_dir: Path) -> None:
    from playground.speculative.compare import RunSettings, compare

    try:
        prompt = validate_text(text, 2000)
    except UserError:
        return
    lm = reg.load_model(f"hf:{tiny_bpe_dir}")
    try:
        out = compare(lm.model, lm.tokenizer, prompt, RunSettings(drafter="prompt-lookup", max_new_tokens=6))
    except UserError as err:
        assert str(err)
        return
    assert out.speculative.output_ids == out.plain.output_ids  # greedy: identical to plain decoding
