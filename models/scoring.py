"""Exact bits per byte for any model of the registry, and per-byte surprisal for the views.

How a text is scored, the same for every model:
- it is cut into blocks of at most `block_bytes` UTF-8 bytes at line ends (or, for a longer line,
  at the last space or character boundary); each block is scored from the model's BOS alone,
  so every byte of the text is predicted exactly once;
- each model family scores a block its own way (`models.family`: `score_blocks`):
  - token models: block -> [BOS] + tokens; bits = -log2 p of every token; a token's bits are spread
    evenly over the bytes of the characters it covers (the documented approximation for the views;
    the total, and so bits per byte, is exact);
  - HAT: bits of every byte of every word plus each word's [EOW] (added to the word's last byte),
    except the [EOW] of the block's last word, which the text may continue;
- bits per byte = total bits / UTF-8 bytes of the text.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import torch

from models.family import TextScore, family_of

if TYPE_CHECKING:  # annotations only: the registry imports this module
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from models.registry import LoadedModel

DEFAULT_BLOCK_BYTES = 1024  # the tiny models' training length


def split_blocks(text: str, block_bytes: int = DEFAULT_BLOCK_BYTES) -> list[str]:
    """Cut `text` into blocks of at most `block_bytes` bytes that concatenate back to it."""
    blocks: list[str] = []
    current, size = [], 0
    for line in text.splitlines(keepends=True):
        n = len(line.encode())
        if size + n > block_bytes and current:
            blocks.append("".join(current))
            current, size = [], 0
        while n > block_bytes:  # a very long line: cut at a space, else at a character boundary
            cut, used = 0, 0
            for i, ch in enumerate(line):
                used += len(ch.encode())
                if used > block_bytes:
                    break
                cut = i + 1
            space = line.rfind(" ", 0, cut)
            cut = space + 1 if space > 0 else max(cut, 1)
            blocks.append(line[:cut])
            line = line[cut:]
            n = len(line.encode())
        if line:
            current.append(line)
            size += n
    if current:
        blocks.append("".join(current))
    return blocks


def head_blocks(text: str, n_bytes: int, block_bytes: int = DEFAULT_BLOCK_BYTES) -> list[str]:
    """The first blocks of `split_blocks(text)`, whole, until they hold at least `n_bytes` bytes."""
    blocks, size = [], 0
    for block in split_blocks(text, block_bytes):
        if size >= n_bytes:
            break
        blocks.append(block)
        size += len(block.encode())
    return blocks


def score_with(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase | None,
    text: str,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    batch_size: int = 8,
) -> TextScore:
    """Score `text` with a model in hand (a HAT, whose `tokenizer` is None, or a causal token LM)."""
    start = time.perf_counter()
    family = family_of(model, tokenizer)
    blocks = split_blocks(text, block_bytes)
    parts: list[TextScore] = []
    for i in range(0, len(blocks), batch_size):
        chunk = blocks[i : i + batch_size]
        parts += family.score_blocks(model, tokenizer, chunk)
    units, offset = [], 0
    for p in parts:
        units += [(a + offset, b + offset) for a, b in p.units]
        offset += p.n_bytes
    return TextScore(
        n_bytes=offset,
        total_bits=float(sum(p.total_bits for p in parts)),
        byte_bits=np.concatenate([p.byte_bits for p in parts]) if parts else np.zeros(0),
        units=units,
        unit_bits=np.concatenate([p.unit_bits for p in parts]) if parts else np.zeros(0),
        seconds=time.perf_counter() - start,
        lossless=all(p.lossless for p in parts),
    )


def score_text(lm: LoadedModel, text: str, block_bytes: int = DEFAULT_BLOCK_BYTES) -> TextScore:
    """Score with a `models.registry.LoadedModel`."""
    return score_with(lm.model, lm.tokenizer, text, block_bytes)


@torch.no_grad()
def next_byte_entropy_with(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase | None,
    text: str,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> np.ndarray:
    """Entropy in bits of the distribution that predicts each byte (byte-level models and HAT)."""
    family = family_of(model, tokenizer)
    out = [family.next_byte_entropy(model, tokenizer, block) for block in split_blocks(text, block_bytes)]
    return np.concatenate(out) if out else np.zeros(0)


def next_byte_entropy(lm: LoadedModel, text: str, block_bytes: int = DEFAULT_BLOCK_BYTES) -> np.ndarray:
    """Entropy (bits) before each byte of `text`, from a `models.registry.LoadedModel`."""
    return next_byte_entropy_with(lm.model, lm.tokenizer, text, block_bytes)
