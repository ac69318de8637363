"""Acceptance rules: which path of a draft tree the target keeps, plus one token of its own.

Both rules are lossless. ``accept_greedy`` keeps exactly what plain greedy decoding would
produce. ``accept_sampling`` is speculative sampling generalised to trees by recursive
rejection over siblings (SpecInfer's multi-candidate rule, in the without-replacement form of
Recursive Speculative Decoding): each generated token is distributed exactly as the target's
(temperature-scaled) next-token distribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from playground.speculative.tree import ROOT, DraftTree


@dataclass(frozen=True)
class Verdict:
    """``accepted``: the accepted nodes, root's child first; ``bonus``: the target's own token."""

    accepted: list[int]
    bonus: int


def _row(node: int) -> int:
    """Row of ``node`` in the verifier's output: row 0 is the root, node i is row i + 1."""
    return 0 if node == ROOT else node + 1


class Rows(Protocol):
    """Target logits by row (row 0: the root, row i + 1: node i), e.g. a ``(rows, vocab)``
    tensor or a lazily evaluated :class:`~playground.speculative.modeling.TreeLogits`."""

    def __getitem__(self, row: int) -> torch.Tensor: ...


def accept_greedy(tree: DraftTree, target_logits: Rows) -> Verdict:
    """Follow the target's argmax down the tree; the first miss becomes the bonus token."""
    node, accepted = ROOT, []
    while True:
        best = int(target_logits[_row(node)].argmax())
        child = tree.child_with_token(node, best)
        if child is None:
            return Verdict(accepted, best)
        accepted.append(child)
        node = child


def accept_sampling(tree: DraftTree, target_logits: Rows, temperature: float, generator: torch.Generator) -> Verdict:
    """Speculative sampling over a tree with recursive rejection over siblings.

    The target distribution at a node is p = softmax(logits / temperature). Its children are
    tried in order. A child x drawn from a draft distribution q (``tree.proposals``; siblings
    drawn without replacement) is accepted with probability min(1, p(x)/q(x)); on rejection p
    becomes norm(max(0, p - q)) and x is removed from q. A deterministic child is the point
    mass q = δx: accepted with probability p(x), else p loses x. When every child is
    rejected, the bonus token is drawn from what is left of p.
    """
    if temperature <= 0:
        raise ValueError("speculative sampling needs a temperature > 0 (use accept_greedy for 0)")
    node, accepted = ROOT, []
    while True:
        target = torch.softmax(target_logits[_row(node)].double() / temperature, dim=-1)
        p = target.clone()
        q = tree.proposals.get(node)
        q = q.double().clone() if q is not None else None
        next_node = None
        for child in tree.children(node):
            x = tree.tokens[child]
            u = torch.rand((), generator=generator, dtype=torch.float64).item()
            if q is None:
                if u < p[x].item():
                    next_node = child
                    break
                p[x] = 0.0
            else:
                if q[x].item() <= 0.0:
                    raise ValueError(f"draft token {x} has zero probability under its proposal")
                if u < min(1.0, (p[x] / q[x]).item()):
                    next_node = child
                    break
                p = torch.clamp(p - q, min=0.0)
                q[x] = 0.0
                q = q / q.sum() if q.sum() > 0 else q
            total = p.sum()
            # p - q can only vanish when p == q, where rejection has probability 0.
            p = p / total if total > 0 else target.clone()
        if next_node is None:
            bonus = int(torch.multinomial(p.float(), 1, generator=generator).item())
            return Verdict(accepted, bonus)
        accepted.append(next_node)
        node = next_node
