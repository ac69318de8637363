"""The speculative decoding loop, and plain decoding to compare it with.

One step: the drafter proposes a tree below the last committed token; the target scores the
root and every node in one forward pass (tree attention over its cache); the acceptance rule
keeps a path plus one token of the target's own; the cache is trimmed to that path. Every
step is recorded.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel

from models.cpu_kernels import prefill_rows
from playground.speculative.acceptance import accept_greedy, accept_sampling
from playground.speculative.drafters import Drafter
from playground.speculative.modeling import (
    TreeLogits,
    cache_length,
    forward_hidden,
    forward_tokens,
    forward_tree,
    keep_positions,
    new_cache,
)
from playground.speculative.tree import ROOT, DraftTree


@dataclass
class StepRecord:
    """One draft-and-verify step.

    ``target_probs[i]``: the target's probability of node i given its path (temperature-scaled
    when sampling); ``status[i]``: ``"accepted"``, ``"rejected"`` (its parent was reached but
    the node was not accepted) or ``"unreached"``. ``new_tokens``: the accepted tokens and the
    bonus token, after truncation at EOS or the token limit.
    """

    tree: DraftTree
    target_probs: list[float | None]
    accepted: list[int]
    bonus: int
    new_tokens: list[int]
    draft_seconds: float
    verify_seconds: float

    @property
    def status(self) -> list[str]:
        reached = {ROOT, *self.accepted}
        accepted = set(self.accepted)
        return [
            "accepted" if i in accepted else "rejected" if p in reached else "unreached"
            for i, p in enumerate(self.tree.parents)
        ]


@dataclass
class Generation:
    """Tokens generated after ``prompt_ids``, how long it took and how many target passes."""

    prompt_ids: list[int]
    output_ids: list[int] = field(default_factory=list)
    seconds: float = 0.0
    prefill_seconds: float = 0.0
    target_passes: int = 0
    steps: list[StepRecord] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return len(self.output_ids) / self.seconds if self.seconds > 0 else 0.0


def _next_token(logits: torch.Tensor, temperature: float, generator: torch.Generator) -> int:
    if temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits.cpu() / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator).item())


def _node_probs(tree: DraftTree, logits: TreeLogits, temperature: float) -> list[float | None]:
    """The target's probability of each node given its path, for the rows verification
    evaluated (``None`` for nodes below rows it never reached)."""
    probs: dict[int, torch.Tensor] = {}
    for row in logits.computed_rows:
        probs[row] = torch.softmax(logits[row] / (temperature if temperature > 0 else 1.0), dim=-1)
    out: list[float | None] = []
    for token, parent in zip(tree.tokens, tree.parents, strict=True):
        row = 0 if parent == ROOT else parent + 1
        out.append(float(probs[row][token]) if row in probs else None)
    return out


def _truncate(tokens: list[int], room: int, eos_ids: Collection[int]) -> tuple[list[int], bool]:
    """At most ``room`` tokens, ending at the first EOS; whether an EOS ended them."""
    out = []
    for token in tokens[:room]:
        out.append(token)
        if token in eos_ids:
            return out, True
    return out, False


def plain_generate(
    model: PreTrainedModel,
    prompt_ids: Sequence[int],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    seed: int = 0,
    eos_ids: Collection[int] = (),
) -> Generation:
    """One target pass per token, with a KV cache (the baseline)."""
    generator = torch.Generator().manual_seed(seed)
    result = Generation(prompt_ids=list(prompt_ids))
    start = time.perf_counter()
    cache = new_cache()
    if len(prompt_ids) > 1:
        with prefill_rows():
            forward_tokens(model, cache, prompt_ids[:-1], last_only=True)
    result.prefill_seconds = time.perf_counter() - start
    last = prompt_ids[-1]
    while len(result.output_ids) < max_new_tokens:
        logits = forward_tokens(model, cache, [last], last_only=True)[-1]
        result.target_passes += 1
        last = _next_token(logits, temperature, generator)
        result.output_ids.append(last)
        if last in eos_ids:
            break
    result.seconds = time.perf_counter() - start
    return result


def speculative_generate(
    model: PreTrainedModel,
    prompt_ids: Sequence[int],
    drafter: Drafter,
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    seed: int = 0,
    eos_ids: Collection[int] = (),
) -> Generation:
    """Speculative decoding of ``model`` with ``drafter``: greedy (exact match) when
    ``temperature`` is 0, speculative sampling otherwise. Lossless in both modes."""
    generator = torch.Generator().manual_seed(seed)
    result = Generation(prompt_ids=list(prompt_ids))
    start = time.perf_counter()
    context = list(prompt_ids)
    cache = new_cache()
    drafter.start(context)
    with prefill_rows():
        if len(context) > 1 and drafter.wants_target_hidden:
            drafter.observe_hidden(forward_hidden(model, cache, context[:-1], drafter.target_layers), context[1:])
        elif len(context) > 1:
            logits = forward_tokens(model, cache, context[:-1], last_only=not drafter.wants_target_logits)
            if drafter.wants_target_logits:
                drafter.observe(context[:-1], logits)
    result.prefill_seconds = time.perf_counter() - start
    observe_seconds = 0.0
    while len(result.output_ids) < max_new_tokens:
        t0 = time.perf_counter()
        tree = drafter.draft(context, temperature, generator)
        t1 = time.perf_counter()
        prefix, root = cache_length(cache), context[-1]
        logits = forward_tree(model, cache, root, tree, drafter.target_layers)
        result.target_passes += 1
        if temperature > 0:
            verdict = accept_sampling(tree, logits, temperature, generator)
        else:
            verdict = accept_greedy(tree, logits)
        keep_positions(cache, prefix + 1, [prefix + 1 + i for i in verdict.accepted])
        t2 = time.perf_counter()
        drafter.observe_pass(len(tree), t2 - t1)
        target_probs = _node_probs(tree, logits, temperature)
        new, stop = _truncate(
            [tree.tokens[i] for i in verdict.accepted] + [verdict.bonus],
            max_new_tokens - len(result.output_ids),
            eos_ids,
        )
        result.steps.append(
            StepRecord(tree, target_probs, verdict.accepted, verdict.bonus, new, t1 - t0 + observe_seconds, t2 - t1)
        )
        context += new
        result.output_ids += new
        if stop:
            break
        t3 = time.perf_counter()
        if drafter.wants_target_hidden:  # the root's and the accepted nodes' rows, each with its successor
            rows = [0, *(i + 1 for i in verdict.accepted)]
            drafter.observe_hidden(logits.hidden(rows), [tree.tokens[i] for i in verdict.accepted] + [verdict.bonus])
        if drafter.wants_target_logits:
            inputs = [root, *tree.tokens]
            if drafter.observe_all_rows:
                drafter.observe(inputs, logits.all())
            else:  # only the rows verification evaluated anyway (no extra LM-head work)
                rows = logits.computed_rows
                drafter.observe([inputs[r] for r in rows], torch.stack([logits[r] for r in rows]))
        observe_seconds = time.perf_counter() - t3
    result.seconds = time.perf_counter() - start
    return result
