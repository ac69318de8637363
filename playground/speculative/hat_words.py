"""Speculative decoding for HAT at the word level (greedy, lossless).

A HAT writes a word per backbone step and spells it byte by byte with its decoder. Here a
drafter proposes whole next words, found by looking the last words up earlier in the prompt
and output (prompt lookup over words). One backbone pass reads the last committed word and all
drafted words; one batched decoder pass then checks every drafted word at once: a word is
accepted when, given its backbone context, the decoder's arg-max at each position spells
exactly its bytes and then [EOW]. After the first miss the decoder spells the next word itself
(the bonus word), from the context that the same backbone pass already produced. The output is
the one of `HATForCausalLM.generate_bytes(..., temperature=0)`, byte for byte.

Cache convention: the backbone cache holds every committed word except the last one, whose
vector is fed at the start of the next pass (like the root token of a token tree).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache

from models.hat import EOW, PAD
from playground.speculative.modeling import crop_to


@dataclass
class WordStep:
    """One step: the drafted words, how many the target accepted, the word it spelled itself."""

    drafted: list[bytes]
    accepted: int
    bonus: bytes
    continued: bytes  # the start of the bonus word that was already written (the prompt's last word)
    backbone_words: int  # words fed to the backbone in this step's single pass
    draft_seconds: float
    verify_seconds: float
    spell_seconds: float


@dataclass
class WordGeneration:
    output: bytes = b""
    seconds: float = 0.0
    backbone_passes: int = 0
    steps: list[WordStep] = field(default_factory=list)


def lookup_words(history: Sequence[bytes], max_words: int, max_ngram: int = 3) -> list[bytes]:
    """The words that followed the latest earlier occurrence of the longest suffix (up to
    ``max_ngram`` words) of ``history``; empty when even the last word never occurred before."""
    n_hist = len(history)
    for n in range(min(max_ngram, n_hist - 1), 0, -1):
        suffix = list(history[n_hist - n :])
        for end in range(n_hist - 2, n - 2, -1):  # `end`: index of the occurrence's last word
            if list(history[end - n + 1 : end + 1]) == suffix:
                return list(history[end + 1 : end + 1 + max_words])
    return []


def _accepted_words(model: Any, contexts: torch.Tensor, drafted: Sequence[bytes]) -> int:
    """How many leading drafted words the decoder spells exactly, each from its context."""
    width = max(len(w) for w in drafted) + 1
    rows = torch.full((len(drafted), width), PAD, dtype=torch.long, device=model.device)
    targets = rows.clone()
    for i, word in enumerate(drafted):
        rows[i, : len(word)] = torch.tensor(list(word), dtype=torch.long)
        targets[i, : len(word)] = rows[i, : len(word)]
        targets[i, len(word)] = EOW
    logits, _ = model.decoder_logits(model.backbone_to_decoder(contexts), rows)
    best = logits.argmax(-1)
    ok = [bool((best[i, : len(w) + 1] == targets[i, : len(w) + 1]).all()) for i, w in enumerate(drafted)]
    return next((i for i, good in enumerate(ok) if not good), len(ok))


@torch.no_grad()
def speculative_generate_words(
    model: Any,
    prompt: str,
    max_new_bytes: int,
    max_draft_words: int = 4,
    max_ngram: int = 3,
    drafter: Callable[[list[bytes], int], list[bytes]] | None = None,
) -> WordGeneration:
    """Greedy continuation of ``prompt`` (the bytes `generate_bytes` would give), drafting
    whole words and verifying them with one backbone pass per step. ``drafter(history,
    max_words)`` proposes the next words after the committed ``history`` (prompt words and
    output words so far); by default :func:`lookup_words`."""
    if drafter is None:

        def drafter(history: list[bytes], max_words: int) -> list[bytes]:
            return lookup_words(history, max_words, max_ngram)

    start = time.perf_counter()
    result = WordGeneration()
    words = model.split(prompt)
    partial = words.pop() if words else b""
    history = list(words)
    cache = DynamicCache()
    # Everything but the last committed word goes into the cache now.
    first = [model.bos_word.view(1, -1), *([model.word_vectors(words[:-1])] if len(words) > 1 else [])]
    if words:
        model.backbone(inputs_embeds=torch.cat(first).unsqueeze(0), past_key_values=cache, use_cache=True)
        result.backbone_passes += 1
    last = model.word_vectors(words[-1:]) if words else first[0]
    new = b""
    while len(new) < max_new_bytes:
        t0 = time.perf_counter()
        drafted = [] if partial else list(drafter(history, max_draft_words))[:max_draft_words]
        fits = [len(w) <= model.config.max_word_bytes for w in drafted]
        drafted = drafted[: fits.index(False)] if False in fits else drafted
        t1 = time.perf_counter()
        feed = torch.cat([last, model.word_vectors(drafted)]) if drafted else last
        prefix = cache.get_seq_length()
        hidden = model.backbone(inputs_embeds=feed.unsqueeze(0), past_key_values=cache, use_cache=True)
        hidden = hidden.last_hidden_state[0]
        result.backbone_passes += 1
        accepted = _accepted_words(model, hidden[: len(drafted)], drafted) if drafted else 0
        # Keep the last committed word and the accepted drafts; drop the rejected ones.
        crop_to(cache, prefix + 1 + accepted)
        t2 = time.perf_counter()
        room = max_new_bytes - len(new) - sum(len(w) for w in drafted[:accepted])
        bonus = model.spell_word(model.backbone_to_decoder(hidden[accepted]), partial, room) if room > 0 else b""
        t3 = time.perf_counter()
        new += b"".join(drafted[:accepted]) + bonus[len(partial) :]
        history += [*drafted[:accepted], bonus] if bonus else drafted[:accepted]
        result.steps.append(WordStep(drafted, accepted, bonus, partial, len(feed), t1 - t0, t2 - t1, t3 - t2))
        if not bonus:  # out of room: the accepted drafts filled it
            break
        last = model.word_vectors([bonus])  # accepted drafts are in the cache; the bonus word is fed next
        partial = b""
    result.output = new[:max_new_bytes]
    result.seconds = time.perf_counter() - start
    return result


@dataclass
class WordComparison:
    prompt: str
    plain: bytes
    plain_seconds: float
    speculative: WordGeneration

    @property
    def identical(self) -> bool:
        return self.plain == self.speculative.output


def compare_words(model: Any, prompt: str, max_new_bytes: int = 200, max_draft_words: int = 4) -> WordComparison:
    """Plain greedy HAT decoding and word-level speculative decoding of the same prompt."""
    t0 = time.perf_counter()
    plain = model.generate_bytes(prompt, max_new_bytes=max_new_bytes, temperature=0.0)
    plain_seconds = time.perf_counter() - t0
    spec = speculative_generate_words(model, prompt, max_new_bytes, max_draft_words=max_draft_words)
    return WordComparison(prompt, plain, plain_seconds, spec)


def summarize_words(comparison: WordComparison) -> dict[str, Any]:
    spec = comparison.speculative
    steps = spec.steps
    words_out = sum(s.accepted + (1 if s.bonus else 0) for s in steps)
    return {
        "steps": len(steps),
        "new_bytes": len(spec.output),
        "new_words": words_out,
        "mean_accepted_words": round(sum(s.accepted for s in steps) / max(len(steps), 1), 3),
        "words_per_backbone_pass": round(words_out / max(len(steps), 1), 3),
        "plain_seconds": round(comparison.plain_seconds, 4),
        "speculative_seconds": round(spec.seconds, 4),
        "speedup": round(comparison.plain_seconds / spec.seconds, 3) if spec.seconds > 0 else None,
        "identical": comparison.identical,
    }


def _text(word: bytes) -> str:
    return word.decode("utf-8", errors="replace")


def to_json_words(comparison: WordComparison, max_new_bytes: int) -> dict[str, Any]:
    """A word-level run in the schema of `compare.to_json`, words in place of tokens: each
    step's tree is the chain of drafted words (the view draws it like a token chain)."""
    spec = comparison.speculative
    steps, root = [], comparison.prompt.split()[-1] if comparison.prompt.split() else ""
    room = len(spec.output)
    for index, step in enumerate(spec.steps):
        n = len(step.drafted)
        status = ["accepted"] * step.accepted + ["rejected"] * min(1, n - step.accepted)
        status += ["unreached"] * (n - len(status))
        new_words = [*step.drafted[: step.accepted], *([step.bonus[len(step.continued) :]] if step.bonus else [])]
        cut = []  # what this step added to the output, cut at the byte limit
        for word in new_words:
            cut.append(word[:room])
            room -= len(cut[-1])
        steps.append(
            {
                "step": index,
                "unit": "word",
                "root_token": -1,
                "root_text": root,
                "tree": {
                    "tokens": list(range(n)),
                    "texts": [_text(w) for w in step.drafted],
                    "parents": list(range(-1, n - 1)),
                    "draft_probs": [None] * n,
                    "target_probs": [None] * n,
                    "status": status,
                },
                "accepted_nodes": list(range(step.accepted)),
                "accepted_tokens": list(range(step.accepted)),
                "bonus_token": -1,
                "bonus_text": _text(step.bonus),
                "new_tokens": list(range(len(cut))),
                "new_texts": [_text(w) for w in cut],
                "new_bytes": sum(len(w) for w in cut),
                "draft_seconds": step.draft_seconds,
                "verify_seconds": step.verify_seconds + step.spell_seconds,
            }
        )
        root = _text(step.bonus) if step.bonus else root
    summary = summarize_words(comparison)
    words = summary["new_words"]
    return {
        "settings": {"drafter": "prompt-lookup (words)", "max_new_bytes": max_new_bytes, "temperature": 0.0},
        "unit": "word",
        "prompt_tokens": len(comparison.prompt.encode()),
        "prompt_text": comparison.prompt,
        "text": _text(spec.output),
        "plain_text": _text(comparison.plain),
        "steps": steps,
        "summary": {
            "steps": len(steps),
            "new_tokens": words,
            "new_bytes": summary["new_bytes"],
            "mean_accepted": summary["mean_accepted_words"],
            "mean_tree_size": sum(len(s.drafted) for s in spec.steps) / max(len(spec.steps), 1),
            "tokens_per_forward": summary["words_per_backbone_pass"],
            "speculative_seconds": spec.seconds,
            "plain_seconds": comparison.plain_seconds,
            # Identical outputs hold the same words, so both rates count the speculative run's words.
            "speculative_tokens_per_second": words / spec.seconds if spec.seconds else 0.0,
            "plain_tokens_per_second": words / comparison.plain_seconds if comparison.plain_seconds else 0.0,
            "speedup": summary["speedup"] or 0.0,
            "draft_seconds": sum(s.draft_seconds for s in spec.steps),
            "verify_seconds": sum(s.verify_seconds + s.spell_seconds for s in spec.steps),
            "prefill_seconds": {"speculative": 0.0, "plain": 0.0},
            "identical": comparison.identical,
        },
    }
