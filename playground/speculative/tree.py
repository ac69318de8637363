"""Draft trees and the tree-attention inputs that let a model score a whole tree in one pass.

A draft tree hangs below a *root*: the last committed token, whose next-token distribution
the target has not computed yet. Nodes are stored parents-first (``parents[i] < i``, ``-1``
is the root), and the order of siblings is the order in which the acceptance rule tries them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

ROOT = -1


@dataclass
class DraftTree:
    """Tokens proposed by a drafter, as a tree below the last committed token.

    ``proposals`` maps a node (or ``ROOT``) to the draft distribution its children were drawn
    from *without replacement*, in sibling order. Children of a node missing from the map are
    deterministic candidates (a function of the context only, e.g. prompt lookup or a greedy
    top-k), which the sampling rule treats as point masses.
    """

    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    draft_probs: list[float | None] = field(default_factory=list)
    proposals: dict[int, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.tokens)

    def add(self, token: int, parent: int = ROOT, draft_prob: float | None = None) -> int:
        """Append a node and return its index; ``parent`` must already exist."""
        if parent != ROOT and not 0 <= parent < len(self.tokens):
            raise IndexError(f"parent {parent} is not a node of this tree")
        self.tokens.append(int(token))
        self.parents.append(parent)
        self.draft_probs.append(draft_prob)
        return len(self.tokens) - 1

    def child_with_token(self, parent: int, token: int) -> int | None:
        for i in self.children(parent):
            if self.tokens[i] == token:
                return i
        return None

    def add_path(self, tokens: list[int], budget: int, parent: int = ROOT) -> None:
        """Insert ``tokens`` as a path below ``parent``, sharing existing prefixes (a trie),
        while the tree has fewer than ``budget`` nodes."""
        node = parent
        for token in tokens:
            existing = self.child_with_token(node, token)
            if existing is None:
                if len(self) >= budget:
                    return
                existing = self.add(token, node)
            node = existing

    def children(self, node: int) -> list[int]:
        return [i for i, p in enumerate(self.parents) if p == node]

    def depths(self) -> list[int]:
        """Depth of every node (children of the root have depth 1)."""
        depths: list[int] = []
        for p in self.parents:
            depths.append(1 if p == ROOT else depths[p] + 1)
        return depths

    def path_to(self, node: int) -> list[int]:
        """Nodes from the root's child down to ``node`` (inclusive)."""
        path = []
        while node != ROOT:
            path.append(node)
            node = self.parents[node]
        return path[::-1]

    def ancestor_matrix(self) -> torch.Tensor:
        """Boolean (n, n) matrix: ``[i, j]`` is True when j is i or an ancestor of i."""
        n = len(self)
        anc = torch.zeros((n, n), dtype=torch.bool)
        for i, p in enumerate(self.parents):
            if p != ROOT:
                anc[i] = anc[p]
            anc[i, i] = True
        return anc


def tree_attention_mask(
    tree: DraftTree,
    prefix_len: int,
    dtype: torch.dtype,
    device: torch.device | str = "cpu",
    sliding_window: int | None = None,
) -> torch.Tensor:
    """The additive 4D mask for scoring ``[root] + tree.tokens`` on top of a cache of ``prefix_len``.

    Shape ``(1, 1, 1 + n, prefix_len + 1 + n)``: 0 where attention is allowed (the cached prefix,
    the root, the node's ancestors and itself), ``finfo(dtype).min`` elsewhere. With
    ``sliding_window`` the mask also hides keys ``sliding_window`` or more positions back.
    """
    n = len(tree)
    allowed = torch.zeros((1 + n, prefix_len + 1 + n), dtype=torch.bool)
    allowed[:, : prefix_len + 1] = True  # everyone sees the prefix and the root
    allowed[1:, prefix_len + 1 :] = tree.ancestor_matrix()
    if sliding_window is not None:
        q_pos = tree_position_ids(tree, prefix_len)[0]
        k_pos = torch.cat([torch.arange(prefix_len), q_pos])
        allowed &= (q_pos[:, None] - k_pos[None, :]) < sliding_window
    return _additive(allowed, dtype, device)


def tree_position_ids(tree: DraftTree, prefix_len: int) -> torch.Tensor:
    """Position ids ``(1, 1 + n)``: the root sits at ``prefix_len``, a node at root + depth."""
    return torch.tensor([[prefix_len] + [prefix_len + d for d in tree.depths()]], dtype=torch.long)


def causal_mask(
    n_new: int,
    prefix_len: int,
    dtype: torch.dtype,
    device: torch.device | str = "cpu",
    sliding_window: int | None = None,
) -> torch.Tensor:
    """The additive 4D causal mask for ``n_new`` tokens after a cache of ``prefix_len``."""
    q_pos = torch.arange(prefix_len, prefix_len + n_new)
    k_pos = torch.arange(prefix_len + n_new)
    allowed = k_pos[None, :] <= q_pos[:, None]
    if sliding_window is not None:
        allowed &= (q_pos[:, None] - k_pos[None, :]) < sliding_window
    return _additive(allowed, dtype, device)


def _additive(allowed: torch.Tensor, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[None, None].to(device)


def tree_layout(tree: DraftTree) -> list[tuple[float, int]]:
    """(x, depth) for every node, leaves spaced evenly and parents centred over their children;
    the root is at (``tree_layout_root_x``, 0)."""
    kids: dict[int, list[int]] = {ROOT: []}
    for i, p in enumerate(tree.parents):
        kids.setdefault(p, []).append(i)
        kids.setdefault(i, [])
    xs: dict[int, float] = {}
    next_leaf = [0.0]

    def place(node: int) -> float:
        if not kids[node]:
            xs[node] = next_leaf[0]
            next_leaf[0] += 1.0
        else:
            child_x = [place(c) for c in kids[node]]
            xs[node] = (child_x[0] + child_x[-1]) / 2
        return xs[node]

    place(ROOT)
    depths = tree.depths()
    return [(xs[i], depths[i]) for i in range(len(tree))]


def tree_layout_root_x(tree: DraftTree) -> float:
    """The x of the root in :func:`tree_layout`."""
    top = [x for (x, d) in tree_layout(tree) if d == 1]
    return (top[0] + top[-1]) / 2 if top else 0.0
