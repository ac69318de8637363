"""models.family: each model family's behaviour, reached the same way from a registry name or a model in hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.errors import UserError
from models.family import FAMILIES, family_named, family_of
from models.objective import loss_on
from models.registry import Registry
from models.scoring import next_byte_entropy, score_with, split_blocks

TEXT = "The qiuck brown fox, Grüße 🦊.\nA second line."


@pytest.fixture(scope="module")
def loaded(tiny_bpe_dir: Path, tiny_byte_dir: Path, tiny_hat_dir: Path) -> dict[str, object]:
    reg = Registry(device="cpu")
    return {
        family: reg.load_model(f"hf:{d}")
        for family, d in (("bpe", tiny_bpe_dir), ("byte", tiny_byte_dir), ("hat", tiny_hat_dir))
    }


def test_a_loaded_model_and_its_registry_name_give_the_same_family(loaded: dict[str, object]) -> None:
    for name, lm in loaded.items():
        assert lm.spec.family == name
        assert family_of(lm.model, lm.tokenizer) is family_named(lm.spec.family) is FAMILIES[name]
    assert [FAMILIES[n].unit for n in ("hat", "bpe", "byte")] == ["word", "token", "byte"]
    assert [n for n, f in FAMILIES.items() if f.hierarchical] == ["hat"]


def test_unknown_family_and_a_token_model_without_tokenizer_are_user_errors(loaded: dict[str, object]) -> None:
    with pytest.raises(UserError, match="unknown model family"):
        family_named("rnn")
    with pytest.raises(UserError, match="needs its tokenizer"):
        family_of(loaded["bpe"].model, None)


def test_every_family_scores_every_byte_and_its_loss_matches_its_bits(loaded: dict[str, object]) -> None:
    n_bytes = len(TEXT.encode())
    for name, lm in loaded.items():
        score = score_with(lm.model, lm.tokenizer, TEXT)
        assert score.n_bytes == n_bytes == len(score.byte_bits)
        assert score.total_bits == pytest.approx(score.byte_bits.sum())
        # The training loss (nats per byte) is the same quantity as the scorer's bits per byte,
        # up to HAT's [EOW] of the last word, which only the loss charges.
        blocks = split_blocks(TEXT)
        with torch.no_grad():
            loss = float(loss_on(lm.model, lm.tokenizer, blocks, name, "cpu"))
        if name != "hat":
            assert loss / np.log(2) == pytest.approx(score.bpb, rel=1e-4)


def test_next_byte_entropy_is_per_byte_where_a_family_predicts_bytes(loaded: dict[str, object]) -> None:
    for name in ("byte", "hat"):
        entropy = next_byte_entropy(loaded[name], TEXT)
        assert entropy.shape == (len(TEXT.encode()),) and np.all(entropy >= 0)
    with pytest.raises(UserError, match="byte-level model"):
        next_byte_entropy(loaded["bpe"], TEXT)
