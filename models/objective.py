"""The training objective and schedule shared by the offline training scripts (`training/`) and
the app's live adaptation panel: seeded text windows, the loss in nats per byte for every model
family, and the learning-rate schedule (warm-up, then cosine decay to a floor)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from models.family import family_named


def windows(data: bytes, size: int, batch: int, seed: int, rank: int = 0, world: int = 1) -> Iterator[list[str]]:
    """Endless batches of `size`-byte windows at seeded random offsets, cut at character boundaries."""
    rng = random.Random(seed)
    while True:
        texts = []
        for i in range(batch * world):
            start = rng.randrange(0, len(data) - size - 8)
            if i % world != rank:
                continue
            while data[start] & 0xC0 == 0x80:  # skip UTF-8 continuation bytes
                start += 1
            end = start + size
            while data[end] & 0xC0 == 0x80:
                end -= 1
            texts.append(data[start:end].decode("utf-8"))
        yield texts


def loss_on(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase | None,
    texts: list[str],
    family: str,
    device: torch.device | str,
) -> torch.Tensor:
    """Summed NLL (nats) of the windows' bytes over their byte count, for a model of `family`
    (`hat`, `bpe` or `byte`: how its input is built, `models.family`; the loss is the same per byte)."""
    return family_named(family).loss(model, tokenizer, texts, device)


def lr_at(progress: float, peak: float, warmup: float = 0.03, floor: float = 0.1) -> float:
    if progress < warmup:
        return peak * progress / warmup
    p = min((progress - warmup) / (1 - warmup), 1.0)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))
