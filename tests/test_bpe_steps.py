"""The BPE stepper: its cut after k merges is the `tokenizers` BPE trained to 256 + k tokens, and exact."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from playground import bpe_steps as B

TEXT = (
    "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs.\n"
    "Der schnelle braune Fuchs springt über den faulen Hund. Grüße aus Köln! 🦊🦊 naïve café\n"
) * 4


@pytest.fixture(scope="module")
def stepper() -> B.BPEStepper:
    return B.BPEStepper(TEXT, 60)


@pytest.mark.parametrize("k", [0, 1, 2, 7, 25, 60])
def test_cut_after_k_merges_is_the_tokenizer_trained_to_256_plus_k(stepper: B.BPEStepper, k: int) -> None:
    trained = B.train_tokenizer(TEXT, k)
    for text in (TEXT, B.misspelled(TEXT, seed=3), "unseen wörds like qiuck and Fuchsbau"):
        assert stepper.tokenizer_at(k).encode(text).tokens == trained.encode(text).tokens
    assert len(stepper.merges) == 60 and trained.get_vocab_size() == 256 + k


def test_units_per_word_fall_as_merges_grow(stepper: B.BPEStepper) -> None:
    curve = [upw for _, upw in stepper.curve(TEXT, [0, 10, 30, 60])]
    assert curve == sorted(curve, reverse=True) and curve[0] > curve[-1]
    assert stepper.cut(TEXT, 0).units == [bytes([b]) for b in TEXT.encode()]  # k = 0: one unit per byte


def test_each_merge_is_the_most_frequent_pair_at_its_step(stepper: B.BPEStepper) -> None:
    for k in (1, 2, 10, 40):
        counts = stepper.pair_counts(k - 1)
        assert stepper.pair_count(k) == max(counts.values()) > 0
        rule = stepper.merges[k - 1]
        assert stepper.cut(TEXT, k).units.count(rule.merged) >= 1


def test_bad_input_is_a_user_error(stepper: B.BPEStepper) -> None:
    with pytest.raises(B.BPEStepError, match="enter some text"):
        B.BPEStepper("  \n", 10)
    with pytest.raises(B.BPEStepError, match="limit is 20,000"):
        B.BPEStepper("a" * 20_001, 10)
    with pytest.raises(B.BPEStepError, match="between 1 and 400"):
        B.BPEStepper(TEXT, 0)
    with pytest.raises(B.BPEStepError, match="between 0 and 60"):
        stepper.cut(TEXT, 61)


def test_a_text_with_few_pairs_learns_fewer_merges() -> None:
    small = B.BPEStepper("ab ab", 50)
    assert 1 <= small.n_merges < 50
    assert b"".join(small.cut("ab ab", small.n_merges).units) == b"ab ab"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=1, max_size=80).filter(lambda s: s.strip()), st.integers(0, 30))
def test_units_join_back_to_any_unicode_text(text: str, k: int) -> None:
    stepper = B.BPEStepper(text * 3, 30)
    k = min(k, stepper.n_merges)
    for probe in (text, text[::-1], "\u200d🧑\u200d🌾 x\u0301 \ufeff"):
        assert b"".join(stepper.cut(probe, k).units) == probe.encode("utf-8")
