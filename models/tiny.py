"""The three models this project trains: one hierarchical, two flat controls, matched in size.

All three share the backbone: 6 Llama layers of width 256 (4 heads of 64, SwiGLU 1024).
- `hat-tiny`:  byte encoder (2 layers, width 128) -> backbone over words -> byte decoder (2 layers, 128)
               reading the backbone output as two positions
- `bpe-tiny`:  the backbone over byte-level BPE tokens (4,096 tokens trained on the same text), tied head
- `byte-tiny`: the backbone over raw UTF-8 bytes (ByT5 ids: byte + 3), tied head
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerFast

from models.hat import HATConfig, HATForCausalLM

if TYPE_CHECKING:
    from transformers import ByT5Tokenizer

TRAINED = ("hat-tiny", "bpe-tiny", "byte-tiny")
BACKBONE = {"hidden_size": 256, "num_hidden_layers": 6, "num_attention_heads": 4, "intermediate_size": 1024}
BPE_VOCAB = 4096
BOS_TEXT = "<|endoftext|>"  # bpe-tiny's document separator, also its BOS
BYTE_BOS_ID = 1  # ByT5's "</s>", used by byte-tiny as its BOS


def hat_tiny_config() -> HATConfig:
    return HATConfig(
        max_word_bytes=16,
        encoder_hidden_size=128,
        encoder_layers=2,
        encoder_heads=2,
        encoder_intermediate_size=352,
        encoder_mean_pool=True,  # the word vector also reads the mean of its byte states (docs/design.md)
        backbone_hidden_size=BACKBONE["hidden_size"],
        backbone_layers=BACKBONE["num_hidden_layers"],
        backbone_heads=BACKBONE["num_attention_heads"],
        backbone_intermediate_size=BACKBONE["intermediate_size"],
        decoder_hidden_size=128,
        decoder_layers=2,
        decoder_heads=2,
        decoder_intermediate_size=352,
        decoder_context_slots=2,  # the backbone output reaches the decoder as two positions, not one
    )


def flat_config(vocab_size: int, bos_token_id: int, max_positions: int) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=bos_token_id,
        eos_token_id=bos_token_id,
        pad_token_id=None,
        initializer_range=0.02,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        **BACKBONE,
    )


def train_bpe_tokenizer(train_file: Path, vocab_size: int = BPE_VOCAB) -> PreTrainedTokenizerFast:
    """Byte-level BPE (GPT-2 style pre-tokenisation) trained with `tokenizers` on the training text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train([str(train_file)], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS_TEXT, eos_token=BOS_TEXT)


def byte_tokenizer() -> ByT5Tokenizer:
    from transformers import ByT5Tokenizer  # loaded only when a byte model needs it

    return ByT5Tokenizer()


def _override(config, overrides: dict | None):
    """`config` with some settings changed (for exploring variants); unknown names are an error.

    Built anew rather than patched, so settings derived at construction follow the change."""
    if not overrides:
        return config
    unknown = [key for key in overrides if not hasattr(config, key)]
    if unknown:
        raise ValueError(f"{type(config).__name__} has no setting {unknown[0]!r}")
    return type(config)(**{**config.to_dict(), **overrides})


def build(
    name: str, bpe_tokenizer: PreTrainedTokenizerFast | None = None, overrides: dict | None = None
) -> tuple[PreTrainedModel, object]:
    """A freshly initialised model and its tokenizer (None for HAT, which splits text itself).

    `overrides` changes config settings of the shipped recipe, e.g. {"encoder_layers": 4}.
    """
    if name == "hat-tiny":
        return HATForCausalLM(_override(hat_tiny_config(), overrides)), None
    if name == "bpe-tiny":
        if bpe_tokenizer is None:
            raise ValueError("bpe-tiny needs its trained tokenizer")
        bos = bpe_tokenizer.convert_tokens_to_ids(BOS_TEXT)
        return LlamaForCausalLM(_override(flat_config(len(bpe_tokenizer), bos, 2048), overrides)), bpe_tokenizer
    if name == "byte-tiny":
        tok = byte_tokenizer()
        return LlamaForCausalLM(_override(flat_config(len(tok), BYTE_BOS_ID, 4096), overrides)), tok
    raise ValueError(f"unknown trainable model {name!r}; choose from {', '.join(TRAINED)}")
