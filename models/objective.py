"""The training objective and schedule shared by the offline training scripts (`training/`) and
the app's live adaptation panel: seeded text windows, the loss in nats per byte for every model
family, and the learning-rate schedule (warm-up, then cosine decay to a floor)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from models.scoring import bos_id
from models.tiny import BYTE_BOS_ID


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


def flat_ids(tokenizer: PreTrainedTokenizerBase, texts: list[str], byte_level: bool) -> tuple[torch.Tensor, int]:
    if byte_level:
        seqs = [[BYTE_BOS_ID] + [b + 3 for b in t.encode()] for t in texts]
    else:
        bos = bos_id(tokenizer)
        seqs = [[bos] + tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    longest = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), longest), -100, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
    return ids, sum(len(t.encode()) for t in texts)


def loss_on(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase | None,
    texts: list[str],
    family: str,
    device: torch.device | str,
) -> torch.Tensor:
    """Summed NLL (nats) of the windows' bytes over their byte count, for a model of `family`
    (`hat`, `bpe` or `byte`: how its input is built; the loss is the same per byte)."""
    if family == "hat":
        batch = model.batch_from_texts(texts).to(device)
        return model(batch, score_final_eow=False).loss
    ids, n_bytes = flat_ids(tokenizer, texts, byte_level=family == "byte")
    ids = ids.to(device)
    logits = model(input_ids=ids.clamp(min=0)).logits
    return (
        F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten(), ignore_index=-100, reduction="sum")
        / n_bytes
    )


def lr_at(progress: float, peak: float, warmup: float = 0.03, floor: float = 0.1) -> float:
    if progress < warmup:
        return peak * progress / warmup
    p = min((progress - warmup) / (1 - warmup), 1.0)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))
