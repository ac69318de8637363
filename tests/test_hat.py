"""HAT model: splitting, exact scoring, batching, save/load and cached generation (tiny configs)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_hat import randomize, tiny_hat
from transformers import DynamicCache

from models.hat import EOW, HATForCausalLM
from models.scoring import score_with, split_blocks

TEXT = "The qiuck brown fox jumps over the lazy dog.\nÜber 😀👍🏽 漢字かな, x**2 == 4!"


SPLITTER_MODEL = tiny_hat()
# The interface options (models.hat.HATConfig): the default, and a wider word vector + two context
# slots. Every exactness test below runs on both.
LAYOUTS = {"one-slot": {}, "wide": {"encoder_mean_pool": True, "decoder_context_slots": 2}}
layouts = pytest.mark.parametrize("layout", list(LAYOUTS.values()), ids=list(LAYOUTS))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_splitter_round_trip(text: str) -> None:
    model = SPLITTER_MODEL
    words = model.split(text)
    assert b"".join(words) == text.encode("utf-8")
    assert all(1 <= len(w) <= model.config.max_word_bytes for w in words)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=400), st.integers(min_value=8, max_value=64))
def test_split_blocks_round_trip(text: str, block: int) -> None:
    blocks = split_blocks(text, block)
    assert "".join(blocks) == text
    assert all(len(b.encode()) <= block for b in blocks)


@layouts
def test_untrained_model_is_near_uniform(layout: dict) -> None:
    """An untrained HAT spreads its mass evenly over the 257 symbols (256 bytes + [EOW]).

    It pays about 8 bits for each byte and for each word end it predicts, minus what the legality
    masks rule out: a word's first byte has 256 choices ([EOW] cannot come first) and a full word
    (max_word_bytes) can only end. The text's last [EOW] is not scored.
    """
    model = tiny_hat(**layout)
    score = score_with(model, None, TEXT)
    words = model.split(TEXT)
    full = model.config.max_word_bytes
    expected = sum(
        math.log2(256) + (len(w) - 1) * math.log2(257) + (0 if len(w) == full else math.log2(257)) for w in words
    )
    expected -= 0 if len(words[-1]) == full else math.log2(257)
    assert score.total_bits == pytest.approx(expected, rel=0.01)
    symbols = score.n_bytes + len(words) - 1
    assert 7.9 < score.total_bits / symbols < 8.1


@layouts
def test_loss_equals_summed_byte_log_probs(layout: dict) -> None:
    model = randomize(tiny_hat(**layout))
    batch = model.batch_from_texts([TEXT])
    out = model(batch, score_final_eow=False)
    score = score_with(model, None, TEXT)
    assert out.total_nll.item() / math.log(2) == pytest.approx(score.total_bits, rel=1e-5)
    assert score.byte_bits.sum() == pytest.approx(score.total_bits, rel=1e-9)
    assert len(score.byte_bits) == len(TEXT.encode())
    assert out.loss.item() == pytest.approx(out.total_nll.item() / len(TEXT.encode()), rel=1e-6)


@layouts
def test_probabilities_are_normalised_over_legal_symbols(layout: dict) -> None:
    model = randomize(tiny_hat(**layout))
    batch = model.batch_from_texts(["ab cdefghijk"])
    lengths = batch.word_lengths
    starts = torch.cumsum(lengths, 0) - lengths
    vectors, _ = model.encode_words(batch.byte_ids, starts, lengths)
    contexts, _ = model.run_backbone(vectors, batch.words_per_seq)
    logits, _ = model.decoder_logits(model.backbone_to_decoder(contexts[:1]), batch.byte_ids[None, :9])
    probs = torch.softmax(logits, -1).detach()
    assert torch.allclose(probs.sum(-1), torch.ones(1, 9))
    assert probs[0, 0, EOW] == 0  # a word has at least one byte
    assert probs[0, 8, EOW].item() == pytest.approx(1.0)  # and at most max_word_bytes


@layouts
def test_batching_does_not_change_scores(layout: dict) -> None:
    model = randomize(tiny_hat(**layout))
    texts = [TEXT, "short", "another line with several words of different lengths " * 3]
    alone = [score_with(model, None, t).byte_bits for t in texts]
    batch = model.batch_from_texts(texts)
    together = model(batch, score_final_eow=False, return_details=True)
    joint = -(together.symbol_logprobs * together.scored).sum().item() / math.log(2)
    assert joint == pytest.approx(sum(a.sum() for a in alone), rel=1e-5)


@layouts
def test_save_and_load_give_identical_logits(tmp_path, layout: dict) -> None:
    from transformers import AutoModelForCausalLM

    import models.hat  # noqa: F401  (registers model_type "hat")

    model = randomize(tiny_hat(**layout))
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, HATForCausalLM)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    a = model(model.batch_from_texts([TEXT]), return_details=True).symbol_logprobs
    b = loaded(loaded.batch_from_texts([TEXT]), return_details=True).symbol_logprobs
    assert torch.allclose(a, b, atol=1e-4)
    # Bit-identical once the weights sit in freshly allocated memory: safetensors' memory-mapped
    # buffers are aligned differently, which changes the SIMD summation order (~1e-5).
    with torch.no_grad():
        for p in loaded.parameters():
            p.data = p.data.clone()
    assert torch.equal(a, loaded(loaded.batch_from_texts([TEXT]), return_details=True).symbol_logprobs)


@layouts
def test_generation_reads_the_same_probabilities_as_scoring(layout: dict) -> None:
    """The step-by-step decoder of generation and the batched one of scoring are the same model."""
    model = randomize(tiny_hat(seed=2, **layout), std=0.3)
    words = model.split("The cat sat on the mat")
    scored = model(model.batch_from_words([words]), return_details=True).symbol_logprobs[-1]
    vectors, _ = model.encode_words(*_word_tensors(model, words[:-1]))
    contexts, _ = model.run_backbone(torch.cat([vectors, vectors[:1]]), torch.tensor([len(words)]))
    context = model.backbone_to_decoder(contexts[-1])
    last = words[-1]
    for cache in (None, DynamicCache()):
        stepwise = [
            torch.log_softmax(model._decoder_logits(context, last[:i], cache), -1)[last[i] if i < len(last) else EOW]
            for i in range(len(last) + 1)
        ]
        assert torch.allclose(torch.stack(stepwise), scored[: len(last) + 1], atol=1e-5)


def _word_tensors(model, words):
    batch = model.batch_from_words([words])
    return batch.byte_ids, torch.cumsum(batch.word_lengths, 0) - batch.word_lengths, batch.word_lengths


@layouts
@pytest.mark.parametrize("prompt", ["", "The cat", "Hello world ", "über"])
def test_cached_generation_equals_uncached(prompt: str, layout: dict) -> None:
    model = randomize(tiny_hat(seed=3, **layout), std=0.3)
    cached = model.generate_bytes(prompt, max_new_bytes=40, use_cache=True)
    uncached = model.generate_bytes(prompt, max_new_bytes=40, use_cache=False)
    assert cached == uncached
    assert len(cached) <= 40


def test_sampling_is_seeded_and_stops_at_stop_strings() -> None:
    model = randomize(tiny_hat(seed=1), std=0.3)
    a = model.generate_bytes("Once", max_new_bytes=30, temperature=1.0, top_p=0.9, seed=7)
    b = model.generate_bytes("Once", max_new_bytes=30, temperature=1.0, top_p=0.9, seed=7)
    assert a == b
    text = a.decode("utf-8", errors="ignore")
    assert text, "the sample should hold at least one whole character"
    stop = text[len(text) // 2]
    stopped = model.generate_bytes("Once", max_new_bytes=30, temperature=1.0, top_p=0.9, seed=7, stop=[stop])
    assert stop.encode() not in stopped
    assert a.startswith(stopped)


@layouts
def test_attention_maps_have_every_level(layout: dict) -> None:
    model = randomize(tiny_hat(**layout))
    maps = model.attention_maps("a bc def")
    words = model.split("a bc def")
    assert len(maps.encoder) == len(words) == len(maps.decoder)
    for w, word in enumerate(words):
        for a in maps.encoder[w]:  # the bytes, then [WORD]
            assert a.shape[-1] == len(word) + 1
        for a in maps.decoder[w]:  # the context slots, then the bytes
            assert a.shape[-1] == model.config.decoder_context_slots + len(word)
        for a in maps.encoder[w] + maps.decoder[w]:
            assert torch.allclose(a.sum(-1), torch.ones_like(a.sum(-1)), atol=1e-5)
            assert torch.all(torch.triu(a, 1) == 0)  # causal
    for a in maps.backbone:
        assert a.shape[-1] == len(words)
        assert torch.all(torch.triu(a, 1) == 0)
