"""Model families: what differs between a HAT, a subword-token model and a byte model, in one place.

The registry says which family a model belongs to (`ModelSpec.family`, read from its config).
Code that must treat the families differently asks for the family's `ModelFamily` and calls it;
it does not test the family's name:

| family | `unit` (one position reads) | text to ids | per-byte bits | live loss | generation |
| --- | --- | --- | --- | --- | --- |
| `hat` | a word of UTF-8 bytes | `hat-splitter` words (the model's own `split`) | bytes of each word + its end-of-word | the model's byte loss | `generate_text`, byte by byte |
| `bpe` | a token | the tokenizer, BOS first | a token's bits spread over its bytes | token NLL / bytes | `transformers` `generate` |
| `byte` | a byte | one id per byte (ByT5: byte + 3) | one token per byte | token NLL / bytes | `transformers` `generate` |

`family_named(spec.family)` gives it from a registry name, `family_of(model, tokenizer)` from a
model in hand (a HAT has no tokenizer). `models.scoring`, `models.objective` and
`models.generate` dispatch through it; the views read `unit` and `hierarchical` from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from models.errors import UserError
from models.hat import HATForCausalLM
from models.tiny import BYTE_BOS_ID
from models.units import encode_with_byte_spans, is_byte_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Family = Literal["bpe", "hat", "byte"]
LN2 = math.log(2)


@dataclass
class TextScore:
    """Bits of a text under one model: in total, per byte, and per unit of the model."""

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


def bos_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id a token model's text starts from: BOS, else EOS."""
    for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    raise UserError("this tokenizer has neither a BOS nor an EOS token to condition the first token on")


class ModelFamily(Protocol):
    """What differs between model families (see the module docstring). ``model`` and
    ``tokenizer`` are as the registry loads them (``tokenizer`` is None for a HAT)."""

    name: Family
    unit: str  # what one position of the model reads: "word", "token" or "byte"
    hierarchical: bool  # bytes -> words -> bytes, with encoder, backbone and decoder levels

    def score_blocks(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None, blocks: list[str]
    ) -> list[TextScore]:
        """Bits of each block, each read from the model's start alone (see `models.scoring`)."""
        ...

    def next_byte_entropy(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None, block: str
    ) -> np.ndarray:
        """Entropy in bits of the distribution that predicts each byte of ``block``."""
        ...

    def loss(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase | None,
        texts: list[str],
        device: torch.device | str,
    ) -> torch.Tensor:
        """Summed NLL (nats) of the texts' bytes over their byte count: the training objective."""
        ...

    def generate(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase | None,
        prompt: str,
        max_new_bytes: int,
        temperature: float,
        top_p: float,
        top_k: int,
        seed: int,
    ) -> str:
        """A continuation of at most ``max_new_bytes`` bytes; greedy when temperature is 0."""
        ...


class HATFamily:
    """A HAT (`models.hat`): it splits, scores and writes text itself, byte by byte within words."""

    name: Family = "hat"
    unit = "word"
    hierarchical = True

    @torch.no_grad()
    def score_blocks(self, model: HATForCausalLM, tokenizer: None, blocks: list[str]) -> list[TextScore]:
        # Bits of every byte of every word plus the word's [EOW] (added to its last byte), except
        # the [EOW] of the block's last word, which the text may continue.
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

    @torch.no_grad()
    def next_byte_entropy(self, model: HATForCausalLM, tokenizer: None, block: str) -> np.ndarray:
        words = model.split(block)
        res = model(model.batch_from_words([words]).to(model.device), return_details=True)
        ent = (res.symbol_entropy / LN2).double().cpu().numpy()
        return np.concatenate([ent[i, : len(w)] for i, w in enumerate(words)]) if words else np.zeros(0)

    def loss(
        self, model: HATForCausalLM, tokenizer: None, texts: list[str], device: torch.device | str
    ) -> torch.Tensor:
        return model(model.batch_from_texts(texts).to(device), score_final_eow=False).loss

    def generate(
        self,
        model: HATForCausalLM,
        tokenizer: None,
        prompt: str,
        max_new_bytes: int,
        temperature: float,
        top_p: float,
        top_k: int,
        seed: int,
    ) -> str:
        return model.generate_text(
            prompt, max_new_bytes=max_new_bytes, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed
        )


@dataclass(frozen=True)
class TokenFamily:
    """A causal token model with its tokenizer: subword tokens (``bpe``: byte-level BPE or
    SentencePiece with byte fallback) or one token per byte (``byte``)."""

    name: Family
    unit: str
    hierarchical: bool = False

    @torch.no_grad()
    def score_blocks(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, blocks: list[str]
    ) -> list[TextScore]:
        # [BOS] + tokens; bits = -log2 p of every token, spread evenly over the bytes of the
        # characters it covers (the views' approximation; the total is exact).
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
                    n_bytes,
                    float(token_bits.sum()),
                    byte_bits,
                    enc["byte_spans"],
                    token_bits,
                    lossless=decoded == block,
                )
            )
        return scores

    @torch.no_grad()
    def next_byte_entropy(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, block: str) -> np.ndarray:
        ids = tokenizer(block, add_special_tokens=False)["input_ids"]
        if len(ids) != len(block.encode()):
            raise UserError("next-byte entropy needs a byte-level model (one token per byte)")
        batch = torch.tensor([[bos_id(tokenizer)] + list(ids)], device=model.device)
        logp = F.log_softmax(model(input_ids=batch).logits[0, :-1].float(), -1)
        return (-(logp.exp() * logp).nansum(-1) / LN2).double().cpu().numpy()

    def input_ids(self, tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> tuple[torch.Tensor, int]:
        """The texts as [BOS] + ids, right-padded with -100, and their byte count."""
        if self.name == "byte":  # the tiny byte model's own ids (what it was trained on)
            seqs = [[BYTE_BOS_ID] + [b + 3 for b in t.encode()] for t in texts]
        else:
            bos = bos_id(tokenizer)
            seqs = [[bos] + tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        longest = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), longest), -100, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
        return ids, sum(len(t.encode()) for t in texts)

    def loss(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: list[str], device: torch.device | str
    ) -> torch.Tensor:
        ids, n_bytes = self.input_ids(tokenizer, texts)
        ids = ids.to(device)
        logits = model(input_ids=ids.clamp(min=0)).logits
        return (
            F.cross_entropy(
                logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten(), ignore_index=-100, reduction="sum"
            )
            / n_bytes
        )

    @torch.no_grad()
    def generate(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        prompt: str,
        max_new_bytes: int,
        temperature: float,
        top_p: float,
        top_k: int,
        seed: int,
    ) -> str:
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        bos = bos_id(tokenizer)
        ids = torch.cat([torch.tensor([[bos]]), ids], 1).to(model.device)
        torch.manual_seed(seed)
        sample = temperature > 0
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_bytes,  # a token has at least one byte; trimmed to bytes below
            do_sample=sample,
            temperature=temperature if sample else None,
            top_p=top_p if sample else None,
            top_k=top_k if sample and top_k else None,
            pad_token_id=tokenizer.eos_token_id if tokenizer.eos_token_id is not None else bos,
        )
        text = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        return text.encode()[:max_new_bytes].decode("utf-8", errors="ignore")


FAMILIES: dict[str, ModelFamily] = {
    "hat": HATFamily(),
    "bpe": TokenFamily("bpe", "token"),
    "byte": TokenFamily("byte", "byte"),
}


def family_named(name: str) -> ModelFamily:
    """The family of a registry spec (``spec.family``)."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise UserError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}") from None


def family_of(model: object, tokenizer: PreTrainedTokenizerBase | None) -> ModelFamily:
    """The family of a model in hand: a HAT (no tokenizer), a byte model (one id per byte) or a
    subword-token model."""
    if isinstance(model, HATForCausalLM):
        return FAMILIES["hat"]
    if tokenizer is None:
        raise UserError("a token model needs its tokenizer")
    return FAMILIES["byte"] if is_byte_tokenizer(tokenizer) else FAMILIES["bpe"]
