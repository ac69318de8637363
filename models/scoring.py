"""Exact bits per byte for any model of the registry, and per-byte surprisal for the views.

How a text is scored, the same for every model:
- it is cut into blocks of at most `block_bytes` UTF-8 bytes at line ends (or, for a longer line,
  at the last space or character boundary); each block is scored from the model's BOS alone,
  so every byte of the text is predicted exactly once;
- token models: block -> [BOS] + tokens; bits = -log2 p of every token; a token's bits are spread
  evenly over the bytes of the characters it covers (the documented approximation for the views;
  the total, and so bits per byte, is exact);
- HAT: bits of every byte of every word plus each word's [EOW] (added to the word's last byte),
  except the [EOW] of the block's last word, which the text may continue;
- bits per byte = total bits / UTF-8 bytes of the text.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from models.errors import UserError
from models.hat import HATForCausalLM
from models.units import encode_with_byte_spans

if TYPE_CHECKING:  # annotations only: the registry imports this module
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from models.registry import LoadedModel

DEFAULT_BLOCK_BYTES = 1024  # the tiny models' training length
LN2 = math.log(2)


@dataclass
class TextScore:
    n_bytes: int
    total_bits: float
    byte_bits: np.ndarray  # (n_bytes,) surprisal of each byte in bits
    units: list[tuple[int, int]] = field(default_factory=list)  # byte spans of the model's units
    unit_bits: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seconds: float = 0.0
    lossless: bool = True  # False if the tokenizer could not reproduce the text exactly

    @property
    def bpb(self) -> float:
        return self.total_bits / self.n_bytes if self.n_bytes else float("nan")


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


def bos_id(tokenizer: PreTrainedTokenizerBase) -> int:
    for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    raise UserError("this tokenizer has neither a BOS nor an EOS token to condition the first token on")


@torch.no_grad()
def _score_token_blocks(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, blocks: list[str]
) -> list[TextScore]:
    bos = bos_id(tokenizer)
    encs = [encode_with_byte_spans(tokenizer, b) for b in blocks]
    ids = [[bos] + list(e["input_ids"]) for e in encs]
    longest = max(len(x) for x in ids)
    batch = torch.zeros(len(ids), longest, dtype=torch.long)
    for i, x in enumerate(ids):
        batch[i, : len(x)] = torch.tensor(x)
    logits = model(input_ids=batch.to(model.device)).logits.float()
    logp = F.log_softmax(logits[:, :-1], -1).gather(-1, batch[:, 1:, None].to(logits.device)).squeeze(-1).cpu()
    scores = []
    for i, (block, enc) in enumerate(zip(blocks, encs, strict=True)):
        n_bytes = len(block.encode())
        n_tok = len(enc["input_ids"])
        token_bits = (-logp[i, :n_tok] / LN2).double().numpy()
        byte_bits = np.zeros(n_bytes)
        for t, (b0, b1) in enumerate(enc["byte_spans"]):
            if b1 > b0:
                byte_bits[b0:b1] += token_bits[t] / (b1 - b0)
            elif n_bytes:  # a token with no characters of its own: charge the byte before it
                byte_bits[min(max(b0 - 1, 0), n_bytes - 1)] += token_bits[t]
        decoded = tokenizer.decode(enc["input_ids"], skip_special_tokens=False)
        scores.append(
            TextScore(
                n_bytes, float(token_bits.sum()), byte_bits, enc["byte_spans"], token_bits, lossless=decoded == block
            )
        )
    return scores


@torch.no_grad()
def _score_hat_blocks(model: HATForCausalLM, blocks: list[str]) -> list[TextScore]:
    words = [model.split(b) for b in blocks]
    batch = model.batch_from_words(words).to(model.device)
    out = model(batch, score_final_eow=False, return_details=True)
    bits = (-(out.symbol_logprobs * out.scored) / LN2).double().cpu().numpy()
    scores, w = [], 0
    for block_words in words:
        n_bytes = sum(len(x) for x in block_words)
        byte_bits, units, unit_bits, pos = np.zeros(n_bytes), [], [], 0
        for word in block_words:
            n = len(word)
            byte_bits[pos : pos + n] = bits[w, :n]
            byte_bits[pos + n - 1] += bits[w, n]  # the word's [EOW] (0 when not scored)
            units.append((pos, pos + n))
            unit_bits.append(bits[w, : n + 1].sum())
            pos, w = pos + n, w + 1
        scores.append(TextScore(n_bytes, float(byte_bits.sum()), byte_bits, units, np.array(unit_bits)))
    return scores


def score_with(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase | None,
    text: str,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    batch_size: int = 8,
) -> TextScore:
    """Score `text` with a model (HAT when `tokenizer` is None, else a causal token LM)."""
    start = time.perf_counter()
    blocks = split_blocks(text, block_bytes)
    parts: list[TextScore] = []
    for i in range(0, len(blocks), batch_size):
        chunk = blocks[i : i + batch_size]
        parts += _score_hat_blocks(model, chunk) if tokenizer is None else _score_token_blocks(model, tokenizer, chunk)
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
    out: list[np.ndarray] = []
    for block in split_blocks(text, block_bytes):
        data = block.encode()
        if tokenizer is None:
            words = model.split(block)
            res = model(model.batch_from_words([words]).to(model.device), return_details=True)
            ent = (res.symbol_entropy / LN2).double().cpu().numpy()
            out.append(np.concatenate([ent[i, : len(w)] for i, w in enumerate(words)]) if words else np.zeros(0))
            continue
        ids = tokenizer(block, add_special_tokens=False)["input_ids"]
        if len(ids) != len(data):
            raise UserError("next-byte entropy needs a byte-level model (one token per byte)")
        batch = torch.tensor([[bos_id(tokenizer)] + list(ids)], device=model.device)
        logp = F.log_softmax(model(input_ids=batch).logits[0, :-1].float(), -1)
        out.append((-(logp.exp() * logp).nansum(-1) / LN2).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def next_byte_entropy(lm: LoadedModel, text: str, block_bytes: int = DEFAULT_BLOCK_BYTES) -> np.ndarray:
    """Entropy (bits) before each byte of `text`, from a `models.registry.LoadedModel`."""
    return next_byte_entropy_with(lm.model, lm.tokenizer, text, block_bytes)
