"""Next-word prediction under perturbation: is a model's greedy next word still the clean one?

Definition
----------
Words are those of ``playground.perturb.words_of`` (runs of letters and digits holding a letter).
A *position* is every clean word ``j >= 1`` whose separator from word ``j-1`` (the clean text
between them) holds no letter or digit and is at most ``MAX_SEPARATOR_CHARS`` long. For position
``j`` the model reads

- the context: the *perturbed* text up to where the end of clean word ``j-1`` lands in it
  (``PerturbResult.map_offset``), from the start of its scoring block (``models.scoring``'s
  blocks of at most 1,024 bytes, each read from the model's BOS, as when scoring), and
- the target: the *clean* separator and word ``j`` (e.g. ``" fox"`` or ``". The"``).

The position is a **hit** when greedy decoding from the context reproduces the target and then
ends the word: the next symbol the model picks is not a letter or digit (for HAT: ``[EOW]`` or a
byte of an ASCII non-alphanumeric character; for token models: a special token or a token whose
text starts with neither a letter nor a digit; a byte of a non-ASCII character counts as going
on). Accuracy = hits / positions. The clean-text accuracy uses the clean text as context.

Every model's context ends at the end of word ``j-1``, a natural boundary for all of them: BPE
tokens and HAT words both attach the space to the *next* word (``" fox"``).

How it is computed (exact, and cheap)
-------------------------------------
Greedy decoding reproduces the target exactly when, at every step along it, the model's arg-max
is the target's next symbol. So no sampling loop is needed: one forward pass over each block
(with a KV cache) gives the arg-max at every position of the text, which decides every position
whose target is the text that follows the context anyway (all positions of the clean text, and
the perturbed text's positions away from the touched words). For the other positions the cache is
cut back to the context and only the target is run through the model (teacher forcing).

Token models follow the tokenizer's canonical tokens of the target: reaching the same word along a
different split of tokens counts as a miss (greedy decoding essentially never does that).
``[EOW]`` followed by a new HAT word that begins with a letter would continue the word in the
text; it is counted as ending it (the splitter starts such words only at its byte cap).
"""

from __future__ import annotations

import models  # noqa: F401  (sets OMP_WAIT_POLICY before torch is imported)

# isort: split

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import DynamicCache

from models.family import bos_id, family_of
from models.hat import EOW, length_buckets
from models.scoring import split_blocks
from models.units import encode_with_byte_spans, is_byte_tokenizer
from playground.perturb import PerturbResult, words_of

MAX_SEPARATOR_CHARS = 8
NEAR_WORDS = 3  # a position is "near a change" if one of its previous NEAR_WORDS words was touched


@dataclass(frozen=True)
class Probe:
    """Does the model continue `context_end` (a char offset into the base text) with `target`?"""

    word: int  # index of the clean word j
    context_end: int  # char offset in the base (clean or perturbed) text
    target: str  # clean separator + clean word j


@dataclass
class NextWordResult:
    """Hits per position; `near` marks positions whose context holds a change among its last words."""

    words: list[int] = field(default_factory=list)  # clean word index of each position
    hits: list[bool] = field(default_factory=list)
    near: list[bool] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n(self) -> int:
        return len(self.hits)

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.hits)) if self.hits else float("nan")

    @property
    def near_accuracy(self) -> float:
        picked = [h for h, n in zip(self.hits, self.near, strict=True) if n]
        return float(np.mean(picked)) if picked else float("nan")

    @property
    def n_near(self) -> int:
        return int(sum(self.near))

    def summary(self) -> dict[str, Any]:
        return {
            "positions": self.n,
            "hits": int(sum(self.hits)),
            "accuracy": self.accuracy,
            "near_positions": self.n_near,
            "near_accuracy": self.near_accuracy,
        }


def probes_for(result: PerturbResult, perturbed: bool = True) -> list[Probe]:
    """The positions of the module docstring, for the perturbed (or the clean) text of `result`."""
    clean = result.original
    words = words_of(clean)
    out = []
    for j in range(1, len(words)):
        sep = clean[words[j - 1].end() : words[j].start()]
        if len(sep) > MAX_SEPARATOR_CHARS or any(ch.isalnum() for ch in sep):
            continue
        end = words[j - 1].end()
        out.append(Probe(j, result.map_offset(end) if perturbed else end, clean[end : words[j].end()]))
    return out


def near_flags(result: PerturbResult, probes: Sequence[Probe], near_words: int = NEAR_WORDS) -> list[bool]:
    touched = set(result.touched_words)
    return [any(j - k in touched for k in range(1, near_words + 1)) for j in (p.word for p in probes)]


# --------------------------------------------------------------------------- helpers


def _blocks(text: str) -> list[tuple[int, str]]:
    """(char offset, block text) of the scoring blocks of `text`."""
    out, pos = [], 0
    for b in split_blocks(text):
        out.append((pos, b))
        pos += len(b)
    return out


def _cache_prefix(cache: DynamicCache, n: int) -> DynamicCache:
    """A new cache holding the first `n` positions of `cache` (the original is left alone)."""
    data = [(layer.keys[:, :, :n], layer.values[:, :, :n]) for layer in cache.layers]
    return DynamicCache(ddp_cache_data=data)


def _ascii_ends_word(byte: int) -> bool:
    return byte < 128 and not chr(byte).isalnum()


class _TokenEndsWord:
    """Whether a token id ends a word when it comes next (cached per id)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.byte = is_byte_tokenizer(tokenizer)
        self.special = set(getattr(tokenizer, "all_special_ids", []) or [])
        self._memo: dict[int, bool] = {}

    def __call__(self, tid: int) -> bool:
        if tid in self._memo:
            return self._memo[tid]
        if tid in self.special:
            ends = True
        elif self.byte:
            ends = 3 <= tid < 259 and _ascii_ends_word(tid - 3)
        else:
            s = self.tokenizer.decode([tid])
            ends = (not s) or (s[0] != "\ufffd" and not s[0].isalnum())
        self._memo[tid] = ends
        return ends


# --------------------------------------------------------------------------- token models


@torch.no_grad()
def _token_block(model: Any, tokenizer: Any, base: str, probes: list[Probe], ends_word: _TokenEndsWord) -> list[bool]:
    enc = encode_with_byte_spans(tokenizer, base)
    ids = list(enc["input_ids"])
    spans = enc["byte_spans"]
    device = model.device
    inp = torch.tensor([[bos_id(tokenizer)] + ids], device=device)
    cache = DynamicCache()
    out = model(input_ids=inp, past_key_values=cache, use_cache=True)
    argmax = out.logits[0].argmax(-1).tolist()  # argmax[i] predicts ids[i] (i = len(ids): after the end)
    cache = out.past_key_values
    char_bytes = np.concatenate([[0], np.cumsum([len(c.encode()) for c in base])]).astype(int)
    starts: dict[int, int] = {}  # byte offset -> index of the token starting there, at clean boundaries
    prev_end = 0
    for k, (s, e) in enumerate(spans):
        if s == prev_end and e > s and s not in starts:
            starts[s] = k
        prev_end = max(prev_end, e)
    if prev_end == char_bytes[-1]:
        starts[prev_end] = len(ids)
    hits = []
    for p in probes:
        cb = int(char_bytes[p.context_end])
        tb = p.target.encode()
        k0 = starts.get(cb)
        k1 = starts.get(cb + len(tb))
        if k0 is not None and k1 is not None and base[p.context_end : p.context_end + len(p.target)] == p.target:
            # the text goes on with the target: read the arg-max of the full pass
            ok = all(argmax[k] == ids[k] for k in range(k0, k1)) and ends_word(argmax[k1])
            hits.append(ok)
            continue
        cont = tokenizer(p.target, add_special_tokens=False)["input_ids"]
        if not cont:
            hits.append(False)
            continue
        if k0 is not None:  # the context ends on a token boundary: reuse the cache
            first = argmax[k0]
            step = model(
                input_ids=torch.tensor([cont], device=device),
                past_key_values=_cache_prefix(cache, k0 + 1),
                use_cache=True,
            )
            rest = step.logits[0].argmax(-1).tolist()
        else:  # it ends inside a token of the full text: run context + target afresh
            ctx = tokenizer(base[: p.context_end], add_special_tokens=False)["input_ids"]
            full = torch.tensor([[bos_id(tokenizer)] + list(ctx) + list(cont)], device=device)
            am = model(input_ids=full).logits[0].argmax(-1).tolist()
            first, rest = am[len(ctx)], am[len(ctx) + 1 :]
        predicted = [first] + rest[:-1]
        hits.append(predicted == list(cont) and ends_word(rest[-1]))
    return hits


# --------------------------------------------------------------------------- HAT


def _offsets(words: Sequence[bytes]) -> list[int]:
    out = [0]
    for w in words:
        out.append(out[-1] + len(w))
    return out


@torch.no_grad()
def _hat_decoder_argmax(model: Any, contexts: torch.Tensor, words: Sequence[bytes]) -> list[list[int]]:
    """Arg-max symbol at each position of each word (bytes then the slot after the last byte)."""
    if not words:
        return []
    batch = model.batch_from_words([list(words)]).to(model.device)
    lengths = batch.word_lengths
    starts = torch.cumsum(lengths, 0) - lengths
    result: list[list[int]] = [[] for _ in words]
    for width, idx in length_buckets(lengths + 1):
        rows = model.word_matrix(batch.byte_ids, starts[idx], lengths[idx], width)
        logits, _ = model.decoder_logits(model.backbone_to_decoder(contexts[idx]), rows)
        am = logits.argmax(-1).tolist()
        for j, w in enumerate(idx.tolist()):
            result[w] = am[j][: len(words[w]) + 1]
    return result


def _hat_checks(words: Sequence[bytes], argmax_of: Callable[[int], list[int]], cb: int, end: int) -> bool:
    """Greedy reproduces bytes [cb, end) of the word sequence and then ends the word."""
    offs = _offsets(words)
    for i, w in enumerate(words):
        a, b = offs[i], offs[i + 1]
        if b < cb:
            continue
        am = None
        if b == cb and cb > 0:  # the context's last word: the model must end it here
            am = argmax_of(i)
            if am[len(w)] != EOW:
                return False
            continue
        for pos in range(max(a, cb) - a, len(w)):
            am = am if am is not None else argmax_of(i)
            if am[pos] != w[pos]:
                return False
        am = am if am is not None else argmax_of(i)
        if b < end and am[len(w)] != EOW:
            return False
        if b >= end:  # the target is complete: does the model end the word here?
            nxt = am[len(w)]
            return nxt == EOW or (nxt < 256 and _ascii_ends_word(nxt))
    return False


@torch.no_grad()
def _hat_block(model: Any, base: str, probes: list[Probe]) -> list[bool]:
    words = model.split(base)
    device = model.device
    bos = model.bos_word.view(1, 1, -1)
    if words:
        vectors = model.word_vectors(words)
        seq = torch.cat([bos, vectors[:-1].unsqueeze(0).to(bos.dtype)], 1)
    else:
        vectors = torch.zeros(0, model.config.backbone_hidden_size, device=device)
        seq = bos
    out = model.backbone(inputs_embeds=seq, past_key_values=DynamicCache(), use_cache=True)
    contexts = out.last_hidden_state[0]  # contexts[i] predicts word i
    cache = out.past_key_values
    full_argmax = _hat_decoder_argmax(model, contexts[: len(words)], words)
    char_bytes = np.concatenate([[0], np.cumsum([len(c.encode()) for c in base])]).astype(int)
    hits = []
    for p in probes:
        cb = int(char_bytes[p.context_end])
        probe_text = base[: p.context_end] + p.target
        pw = model.split(probe_text)
        end = len(probe_text.encode())
        q = 0
        while q < min(len(pw), len(words)) and pw[q] == words[q]:
            q += 1
        m = len(pw)
        if q >= m - 1 and (q == m or (q < len(words) and words[q].startswith(pw[q]))):
            # the probe is the text itself (its last word maybe cut short): read the full pass
            hits.append(_hat_checks(pw, lambda i: full_argmax[i], cb, end))
            continue
        # Backbone outputs 0..c0-1 of the full pass only depend on words the probe shares with
        # the text; outputs c0..m-1 need the probe's words c0-1..m-2 fed on top of the cache.
        c0 = min(q, len(contexts) - 1) + 1
        ctx = contexts[:c0]
        if m > c0:
            new_vectors = model.word_vectors(pw[c0 - 1 : m - 1])
            step = model.backbone(
                inputs_embeds=new_vectors.unsqueeze(0).to(bos.dtype),
                past_key_values=_cache_prefix(cache, c0),
                use_cache=True,
            )
            ctx = torch.cat([ctx, step.last_hidden_state[0]], 0)
        first_needed = next(i for i, o in enumerate(_offsets(pw)[1:]) if o >= cb) if cb > 0 else 0
        lo = max(min(first_needed, q), 0)
        fresh = _hat_decoder_argmax(model, ctx[lo:m], pw[lo:m])
        table = {lo + k: row for k, row in enumerate(fresh)}
        hits.append(_hat_checks(pw, lambda i, t=table: t[i] if i in t else full_argmax[i], cb, end))
    return hits


# --------------------------------------------------------------------------- entry points


def next_word_hits_with(model: Any, tokenizer: Any, base: str, probes: Sequence[Probe]) -> list[bool]:
    """Hit or miss for each probe, whose `context_end` indexes `base` (HAT when `tokenizer` is None)."""
    blocks = _blocks(base)
    starts = [s for s, _ in blocks]
    by_block: dict[int, list[tuple[int, Probe]]] = {}
    for n, p in enumerate(probes):
        # the block holding the context's last character
        b = max(0, int(np.searchsorted(starts, p.context_end - 1, side="right")) - 1)
        by_block.setdefault(b, []).append((n, p))
    hits = [False] * len(probes)
    hierarchical = family_of(model, tokenizer).hierarchical  # a HAT spells the next word itself
    ends_word = None if hierarchical else _TokenEndsWord(tokenizer)
    for b, items in by_block.items():
        offset, text = blocks[b]
        local = [Probe(p.word, p.context_end - offset, p.target) for _, p in items]
        if hierarchical:
            got = _hat_block(model, text, local)
        else:
            assert ends_word is not None
            got = _token_block(model, tokenizer, text, local, ends_word)
        for (n, _), h in zip(items, got, strict=True):
            hits[n] = h
    return hits


def next_word(lm: Any, result: PerturbResult, perturbed: bool = True) -> NextWordResult:
    """Next-word accuracy of a `models.registry.LoadedModel` on the perturbed (or clean) text."""
    import time

    start = time.perf_counter()
    probes = probes_for(result, perturbed)
    base = result.text if perturbed else result.original
    hits = next_word_hits_with(lm.model, lm.tokenizer, base, probes) if probes else []
    return NextWordResult(
        words=[p.word for p in probes],
        hits=hits,
        near=near_flags(result, probes),
        seconds=time.perf_counter() - start,
    )
