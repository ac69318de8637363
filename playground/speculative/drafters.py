"""Drafters: given the committed tokens, propose a tree of likely next tokens.

Model-free drafters (prompt lookup, suffix automaton, Token Recycling) propose deterministic
candidates. Model drafters (a smaller model of the same tokenizer, the target's own layers
with some skipped, or a feature head) draw a chain, a static top-k tree, a dynamic tree under
a node budget, or an adaptive tree: a dynamic tree cut to the size that pays for itself on
this machine (see :class:`PassCostModel`).
"""

from __future__ import annotations

import contextlib
import heapq
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from transformers import PreTrainedModel

from models.cpu_kernels import padded_rows, prefill_rows
from models.errors import UserError
from models.feature_draft import FeatureDraftHead
from playground.speculative.modeling import (
    crop_to,
    forward_nodes,
    forward_tokens,
    layer_skip_model,
    new_cache,
    supports_hidden_states,
    tree_level_inputs,
)
from playground.speculative.suffix_automaton import SuffixAutomaton
from playground.speculative.tree import ROOT, DraftTree, causal_mask

DRAFTER_NAMES: tuple[str, ...] = (
    "feature-head",
    "draft-model",
    "layer-skip",
    "prompt-lookup",
    "suffix-automaton",
    "token-recycling",
    "suffix-automaton+token-recycling",
    "suffix-automaton+feature-head",
    "eagle3-head",
    "suffix-automaton+eagle3-head",
)
MODEL_FREE_DRAFTERS: tuple[str, ...] = (
    "prompt-lookup",
    "suffix-automaton",
    "token-recycling",
    "suffix-automaton+token-recycling",
)
#: The drafters that draft with a feature head trained for the target: ``feature-head`` reads its
#: final hidden state (EAGLE-2's head), ``eagle3-head`` its low, middle and high layers (EAGLE-3's).
FEATURE_HEAD_DRAFTERS: tuple[str, ...] = (
    "feature-head",
    "suffix-automaton+feature-head",
    "eagle3-head",
    "suffix-automaton+eagle3-head",
)


def head_kind(drafter: str) -> str:
    """Which shipped head a feature-head drafter uses: ``"eagle3"`` or ``"eagle2"``."""
    return "eagle3" if drafter.endswith("eagle3-head") else "eagle2"


TreeShape = Literal["chain", "static", "dynamic", "adaptive"]
TREE_SHAPES: tuple[str, ...] = ("chain", "static", "dynamic", "adaptive")
MAX_TREE_BUDGET = 128


class DrafterError(UserError):
    """An unknown drafter or an invalid drafter setting."""


@dataclass(frozen=True)
class DraftSettings:
    """``budget``: most draft nodes per step; ``max_depth``: longest draft path."""

    budget: int = 8
    max_depth: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.budget <= MAX_TREE_BUDGET:
            raise DrafterError(f"tree budget must be between 1 and {MAX_TREE_BUDGET}, got {self.budget}")
        if self.max_depth < 1:
            raise DrafterError(f"max depth must be at least 1, got {self.max_depth}")


class Drafter(ABC):
    """Proposes a :class:`DraftTree` below the last committed token at every step."""

    name: str = ""
    #: Whether :meth:`observe` should get the target's logits (prefill and every verification).
    wants_target_logits: bool = False
    #: Whether to observe every tree row (costs the LM head on all of them) or only the rows
    #: verification evaluated (the root and the accepted path).
    observe_all_rows: bool = False
    #: Whether :meth:`observe_hidden` should get the target's final hidden states.
    wants_target_hidden: bool = False
    #: With ``wants_target_hidden``: the target's ``output_hidden_states`` indices to hand over,
    #: concatenated (an EAGLE-3 head's low, middle and high layers); None: its final states.
    target_layers: tuple[int, ...] | None = None

    def __init__(self, settings: DraftSettings) -> None:
        self.settings = settings

    def start(self, prompt_ids: Sequence[int]) -> None:
        """Reset per-generation state; called before the first :meth:`draft`."""

    @abstractmethod
    def draft(self, context: Sequence[int], temperature: float, generator: torch.Generator) -> DraftTree:
        """Propose a tree below ``context[-1]`` (``context``: prompt and output so far)."""

    def observe(self, inputs: Sequence[int], logits: torch.Tensor) -> None:
        """The target's logits after each of ``inputs`` (rows match), when wanted."""

    def observe_hidden(self, hidden: torch.Tensor, next_tokens: Sequence[int]) -> None:
        """The target's final hidden states at newly committed positions (rows in order) and
        the token committed after each, when wanted."""

    def observe_pass(self, nodes: int, seconds: float) -> None:
        """How long the target took to verify a tree of ``nodes`` nodes (every step)."""


class PassCostModel:
    """What a verification pass and a draft level cost on this machine, learned while decoding.

    A pass over a tree of ``n`` nodes reads ``n + 1`` rows (the root too). Its cost is flat up to
    the rows the target's kernel pads every call to (``free_rows``: 4 for ``OneDNNLinear``), then
    grows by about the same amount per row: on a CPU a small model's step is bound by reading its
    weights, and the padded kernel pays for its rows whether they are used or not (SmolLM2-135M,
    one thread, this AMD host: body 50.3 ms for 1 token, 51.1 for 4, 63.2 for 6, 74.0 for 8;
    `assets/reports/decoding_kernels_epyc.json`). So the model is ``fixed + per_row * max(0,
    n + 1 - free_rows)``, both terms fitted by least squares over the last ``window`` passes
    (``free_rows = 1`` is a straight line); until two costs differ, ``per_row`` is
    ``prior_ratio * fixed``. A draft level's cost is the mean of the last ones timed.
    """

    def __init__(self, prior_ratio: float = 0.1, window: int = 64, free_rows: int = 1) -> None:
        self.prior_ratio, self.window, self.free_rows = prior_ratio, window, max(1, free_rows)
        self._passes: list[tuple[int, float]] = []
        self._levels: list[float] = []

    def add_pass(self, nodes: int, seconds: float) -> None:
        self._passes = [*self._passes, (nodes, seconds)][-self.window :]

    def add_level(self, seconds: float) -> None:
        self._levels = [*self._levels, seconds][-self.window :]

    def extra_rows(self, nodes: int) -> int:
        """Rows of a ``nodes``-node pass beyond what the kernel pays for anyway."""
        return max(0, nodes + 1 - self.free_rows)

    @property
    def fixed_and_per_node(self) -> tuple[float, float]:
        """(cost of a pass within the free rows, cost of each row beyond them)."""
        if not self._passes:
            return 1.0, self.prior_ratio  # only ratios matter before the first pass
        xs = [float(self.extra_rows(n)) for n, _ in self._passes]
        ys = [t for _, t in self._passes]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mean_x) ** 2 for x in xs)
        if var > 0:
            slope = max(0.0, sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var)
            fixed = mean_y - slope * mean_x
            if fixed > 0:
                return fixed, slope
        fixed = sum(y / (1 + self.prior_ratio * x) for x, y in zip(xs, ys, strict=True)) / len(xs)
        return fixed, self.prior_ratio * fixed

    def verify_seconds(self, nodes: int) -> float:
        fixed, per_node = self.fixed_and_per_node
        return fixed + per_node * self.extra_rows(nodes)

    def marginal_seconds(self, nodes: int) -> float:
        """What one more node costs on top of a ``nodes``-node tree (0 within the free rows)."""
        return self.verify_seconds(nodes + 1) - self.verify_seconds(nodes)

    @property
    def level_seconds(self) -> float:
        if self._levels:
            return sum(self._levels) / len(self._levels)
        return self.prior_ratio * self.fixed_and_per_node[0]


def best_tree_size(
    path_probs: Sequence[float], verify_seconds: Callable[[int], float], spent: float
) -> tuple[int, float]:
    """How many of the candidates (``path_probs``: each one's chance that its whole path is
    accepted, in decreasing order) to send to the target, maximising expected tokens per second
    of the step: ``(1 + sum(path_probs[:m])) / (verify_seconds(m) + spent)``, ``spent`` being
    what drafting already cost. Returns ``m`` and that rate; ``m = 0`` is a plain step."""
    best, best_rate, expected = 0, 1.0 / (verify_seconds(0) + spent), 1.0
    for m, p in enumerate(path_probs, start=1):
        expected += p
        rate = expected / (verify_seconds(m) + spent)
        if rate > best_rate:
            best, best_rate = m, rate
    return best, best_rate


# --- model-free ---------------------------------------------------------------------------


class PromptLookupDrafter(Drafter):
    """Prompt lookup decoding: find the latest n-gram that ends the context earlier in the
    prompt or output and propose what followed it; several matches form a trie."""

    name = "prompt-lookup"

    def __init__(self, settings: DraftSettings, max_ngram: int = 3, min_ngram: int = 1) -> None:
        super().__init__(settings)
        self.max_ngram, self.min_ngram = max_ngram, min_ngram
        self._seen = 0
        self._ends: dict[tuple[int, ...], list[int]] = {}

    def start(self, prompt_ids: Sequence[int]) -> None:
        self._seen, self._ends = 0, {}

    def _index(self, context: Sequence[int]) -> None:
        """Record the end position of every n-gram completed since the last call, except the
        context's own suffix: an occurrence is indexed once a token follows it."""
        for end in range(max(self._seen - 1, 0), len(context) - 1):
            for n in range(self.min_ngram, self.max_ngram + 1):
                if end - n + 1 >= 0:
                    self._ends.setdefault(tuple(context[end - n + 1 : end + 1]), []).append(end)
        self._seen = len(context)

    def draft(self, context: Sequence[int], temperature: float, generator: torch.Generator) -> DraftTree:
        self._index(context)
        tree = DraftTree()
        budget, depth = self.settings.budget, self.settings.max_depth
        for n in range(min(self.max_ngram, len(context)), self.min_ngram - 1, -1):
            ends = self._ends.get(tuple(context[-n:]), [])
            for end in reversed(ends):
                tree.add_path(list(context[end + 1 : end + 1 + depth]), budget)
                if len(tree) >= budget:
                    return tree
            if len(tree):
                return tree
        return tree


class SuffixAutomatonDrafter(Drafter):
    """SAM-Decoding: a suffix automaton over prompt and output finds the longest suffix of the
    context that occurred before, in O(1) amortised per token; the continuations after the
    latest occurrence of that suffix and of shorter ones form a trie."""

    name = "suffix-automaton"

    def __init__(self, settings: DraftSettings, min_match: int = 1) -> None:
        super().__init__(settings)
        self.min_match = min_match
        self._sam = SuffixAutomaton()

    def start(self, prompt_ids: Sequence[int]) -> None:
        self._sam = SuffixAutomaton()

    def draft(self, context: Sequence[int], temperature: float, generator: torch.Generator) -> DraftTree:
        if list(context[: len(self._sam)]) != self._sam.text:  # not a continuation: start over
            self._sam = SuffixAutomaton()
        self._sam.extend(list(context[len(self._sam) :]))
        tree = DraftTree()
        text, depth = self._sam.text, self.settings.max_depth
        for length, end in self._sam.matches:
            if length < self.min_match or len(tree) >= self.settings.budget:
                break
            tree.add_path(text[end + 1 : end + 1 + depth], self.settings.budget)
        return tree


class TokenRecyclingDrafter(Drafter):
    """Token Recycling: keep, for every token, the target's top-k next tokens the last time it
    was scored (an adjacency matrix filled from the prompt and every verified tree), and draft
    by walking it breadth-first into a tree of fixed shape for the budget."""

    name = "token-recycling"
    wants_target_logits = True
    #: Assumed chance that the rank-r candidate is right; shapes the static tree.
    RANK_PRIOR: tuple[float, ...] = (0.6, 0.15, 0.08, 0.05, 0.03, 0.02, 0.015, 0.01)

    def __init__(self, settings: DraftSettings, top_k: int = 8, observe_all_rows: bool = False) -> None:
        super().__init__(settings)
        self.top_k = min(top_k, len(self.RANK_PRIOR))
        self.observe_all_rows = observe_all_rows
        self._next: dict[int, list[int]] = {}
        self._shape = self._tree_shape(settings.budget, settings.max_depth)

    def _tree_shape(self, budget: int, max_depth: int) -> list[tuple[int, int]]:
        """(parent, rank) of each node in the best-first tree of ``budget`` nodes under the
        rank prior; parents come first."""
        shape: list[tuple[int, int]] = []
        heap = [(-self.RANK_PRIOR[r], ROOT, r, 1) for r in range(self.top_k)]
        heapq.heapify(heap)
        while heap and len(shape) < budget:
            neg, parent, rank, depth = heapq.heappop(heap)
            shape.append((parent, rank))
            node = len(shape) - 1
            if depth < max_depth:
                for r in range(self.top_k):
                    heapq.heappush(heap, (neg * self.RANK_PRIOR[r], node, r, depth + 1))
        return shape

    def start(self, prompt_ids: Sequence[int]) -> None:
        self._next = {}

    def observe(self, inputs: Sequence[int], logits: torch.Tensor) -> None:
        top = torch.topk(logits, self.top_k, dim=-1).indices.tolist()
        for token, candidates in zip(inputs, top, strict=True):
            self._next[int(token)] = candidates

    def draft(self, context: Sequence[int], temperature: float, generator: torch.Generator) -> DraftTree:
        tree = DraftTree()
        node_of: list[int | None] = []  # shape index -> tree node (None: pruned)
        for parent, rank in self._shape:
            parent_node = ROOT if parent == ROOT else node_of[parent]
            if parent_node is None:
                node_of.append(None)
                continue
            parent_token = context[-1] if parent_node == ROOT else tree.tokens[parent_node]
            candidates = self._next.get(parent_token, [])
            node_of.append(tree.add(candidates[rank], parent_node) if rank < len(candidates) else None)
        return tree


class HybridDrafter(Drafter):
    """Suffix automaton first, Token Recycling for the rest of the budget (the combination
    that did best among model-free drafters in Spec-Bench): a long earlier match drafts the
    copy, the recycled candidates cover text that was never seen before."""

    name = "suffix-automaton+token-recycling"
    wants_target_logits = True

    def __init__(self, settings: DraftSettings, min_match: int = 2) -> None:
        super().__init__(settings)
        self._sam = SuffixAutomatonDrafter(settings, min_match=min_match)
        self._recycling = TokenRecyclingDrafter(settings)

    def start(self, prompt_ids: Sequence[int]) -> None:
        self._sam.start(prompt_ids)
        self._recycling.start(prompt_ids)

    def observe(self, inputs: Sequence[int], logits: torch.Tensor) -> None:
        self._recycling.observe(inputs, logits)

    def draft(self, context: Sequence[int], temperature: float, generator: torch.Generator) -> DraftTree:
        tree = self._sam.draft(context, temperature, generator)
        recycled = self._recycling.draft(context, temperature, generator)
        for node in range(len(recycled)):
            if len(tree) >= self.settings.budget:
                break
            tree.add_path([recycled.tokens[i] for i in recycled.path_to(node)], self.settings.budget)
        return tree


# --- model drafters -----------------------------------------------------------------------


class ModelDrafter(Drafter):
    """A draft model with its own cache. Shapes:

    - ``chain``: one token per depth (speculative decoding as first proposed);
    - ``static``: every expanded node gets its top-``branch`` children, level by level;
    - ``dynamic``: EAGLE-2 / DySpec style: expand the ``beam`` most probable nodes of each
      level (by product of draft probabilities along the path), then keep the ``budget``
      most probable nodes overall.
    - ``adaptive``: the dynamic tree, with the product of draft probabilities along a path taken
      as the chance the target accepts it (EAGLE-2's observation: draft confidence tracks
      acceptance), grown and cut by what passes and draft levels cost on this machine
      (:class:`PassCostModel`, learned while decoding): a level is drafted only if its best
      node could pay for itself, and the tree sent to the target is the prefix of the ``budget``
      best nodes that maximises expected tokens per second (:func:`best_tree_size`), none at all
      (a plain step) when the draft is too unsure. Where a dynamic tree of fixed size loses
      time on hard text, this one falls back towards plain decoding.

    With temperature > 0, chain and static children are drawn without replacement from the
    draft distribution (Gumbel top-k), which the sampling rule needs to stay lossless. The
    dynamic tree's shape depends on the candidates' probabilities, so its candidates stay
    deterministic (top-k) and are verified as point masses.
    """

    name = "draft-model"

    def __init__(
        self,
        model: PreTrainedModel,
        settings: DraftSettings,
        shape: TreeShape = "chain",
        branch: int = 2,
        beam: int = 4,
        free_rows: int = 1,
    ) -> None:
        super().__init__(settings)
        if shape not in TREE_SHAPES:
            raise DrafterError(f"unknown tree shape {shape!r}; choose one of: {', '.join(TREE_SHAPES)}")
        self.model, self.shape, self.branch, self.beam = model, shape, branch, beam
        self._cache = new_cache()
        self._cached: list[int] = []
        # Used by the adaptive shape; free_rows: what the target's kernel pads a pass to
        # (`models.cpu_kernels.padded_rows`), below which a pass costs what one token does.
        self.costs = PassCostModel(free_rows=free_rows)

    def observe_pass(self, nodes: int, seconds: float) -> None:
        self.costs.add_pass(nodes, seconds)

    def start(self, prompt_ids: Sequence[int]) -> None:
        self._cache, self._cached = new_cache(), []

    def _catch_up(self, context: Sequence[int]) -> torch.Tensor | None:
        """Feed the committed tokens the draft cache lacks; logits after the root."""
        common = 0
        for a, b in zip(self._cached, context, strict=False):
            if a != b:
                break
            common += 1
        common = min(common, len(context) - 1)
        crop_to(self._cache, common)
        with prefill_rows() if common == 0 else contextlib.nullcontext():  # the prompt, once
            logits = forward_tokens(self.model, self._cache, context[common:], last_only=True)[-1]
        self._cached = list(context)
        return logits

    def _prefix_length(self, context: Sequence[int]) -> int:
        """Committed positions in the draft cache while drafting below ``context[-1]``."""
        return len(context)

    def _expand(self, prefix_len: int, tree: DraftTree, nodes: list[int], slots: dict[int, int]) -> torch.Tensor:
        """Run the draft on tree ``nodes`` (one level); their logits ``(len(nodes), columns)``."""
        return forward_nodes(self.model, self._cache, prefix_len, tree, nodes, slots)

    def _tokens(self, columns: list[int]) -> list[int]:
        """Target token ids of logit columns (the identity for a draft model of the same vocabulary)."""
        return columns

    def _full_distribution(self, probs: torch.Tensor) -> torch.Tensor:
        """A distribution over logit columns as one over the target's vocabulary."""
        return probs

    def draft(self, context: Sequence[int], temperature: float, generator: torch.Generator) -> DraftTree:
        started = time.perf_counter()
        root_logits = self._catch_up(context)
        if root_logits is None:
            return DraftTree()
        prefix_len = self._prefix_length(context)
        try:
            if self.shape in ("dynamic", "adaptive"):
                return self._dynamic(root_logits, prefix_len, temperature, started)
            return self._levels(root_logits, prefix_len, temperature, generator)
        finally:
            crop_to(self._cache, prefix_len)

    def _timed_expand(self, prefix_len: int, tree: DraftTree, nodes: list[int], slots: dict[int, int]) -> torch.Tensor:
        start = time.perf_counter()
        logits = self._expand(prefix_len, tree, nodes, slots)
        self.costs.add_level(time.perf_counter() - start)
        return logits

    def _levels(
        self, root_logits: torch.Tensor, prefix_len: int, temperature: float, generator: torch.Generator
    ) -> DraftTree:
        """Chain (branch 1) or static top-k tree, grown one level per draft pass."""
        budget, branch = self.settings.budget, 1 if self.shape == "chain" else self.branch
        tree, slots = DraftTree(), {}
        frontier, frontier_logits = [ROOT], root_logits[None]
        for depth in range(1, self.settings.max_depth + 1):
            level: list[int] = []
            for node, logits in zip(frontier, frontier_logits, strict=True):
                if len(tree) >= budget:
                    break
                probs = _softmax(logits, temperature)
                k = min(branch, budget - len(tree))
                if temperature > 0:
                    tree.proposals[node] = self._full_distribution(probs)
                    picks = _gumbel_top_k(probs, k, generator)
                else:
                    picks = torch.topk(logits, k).indices.tolist()
                level += [tree.add(t, node, float(probs[c])) for c, t in zip(picks, self._tokens(picks), strict=True)]
            if not level or len(tree) >= budget or depth == self.settings.max_depth:
                break
            frontier, frontier_logits = level, self._expand(prefix_len, tree, level, slots)
        return tree

    def _dynamic(self, root_logits: torch.Tensor, prefix_len: int, temperature: float, started: float) -> DraftTree:
        """Grow by draft probability, then keep the ``budget`` best nodes (ancestor-closed,
        since a child is never more probable than its parent). Growth stops early once no
        node of the newest level ranks among the ``budget`` best: none of its descendants could.
        The adaptive shape also stops when no node of the newest level could pay for a level and
        a node below it, and keeps only as many nodes as pay for themselves."""
        k = min(self.beam, self.settings.budget)
        adaptive = self.shape == "adaptive"
        full, slots = DraftTree(), {}
        scores: list[float] = []
        level_nodes = [ROOT]
        level_logits = root_logits[None]
        for depth in range(1, self.settings.max_depth + 1):
            candidates = []
            logp = torch.log_softmax(level_logits / temperature if temperature > 0 else level_logits, -1)
            top = torch.topk(logp, k, dim=-1)
            for node, values, columns in zip(level_nodes, top.values.tolist(), top.indices.tolist(), strict=True):
                base = 0.0 if node == ROOT else scores[node]
                for lp, tok in zip(values, self._tokens(columns), strict=True):
                    child = full.add(tok, node, math.exp(lp))
                    scores.append(base + lp)
                    candidates.append(child)
            if depth == self.settings.max_depth:
                break
            if len(scores) > self.settings.budget:
                cutoff = sorted(scores, reverse=True)[self.settings.budget - 1]
                if max(scores[i] for i in candidates) < cutoff:
                    break
            if adaptive:
                # A child is at most as likely as its parent: a level is worth drafting only if
                # its best parent's chance could pay for the level and one more node.
                size, rate = self._adaptive_size(scores, started)
                more = self.costs.marginal_seconds(size) + self.costs.level_seconds
                if math.exp(max(scores[i] for i in candidates)) < rate * more:
                    break
            level_nodes = sorted(candidates, key=lambda i: -scores[i])[: self.beam]
            level_logits = self._timed_expand(prefix_len, full, level_nodes, slots)
        depths = full.depths()
        size = self._adaptive_size(scores, started)[0] if adaptive else self.settings.budget
        keep = sorted(range(len(full)), key=lambda i: (-scores[i], depths[i]))[:size]
        keep_set = set(keep)
        keep = [i for i in range(len(full)) if i in keep_set and all(a in keep_set for a in full.path_to(i))]
        tree, new_index = DraftTree(), {ROOT: ROOT}
        for i in keep:  # parents-first order is preserved
            new_index[i] = tree.add(full.tokens[i], new_index[full.parents[i]], full.draft_probs[i])
        return tree

    def _adaptive_size(self, scores: list[float], started: float) -> tuple[int, float]:
        """:func:`best_tree_size` over the ``budget`` best candidates so far."""
        best = sorted(scores, reverse=True)[: self.settings.budget]
        return best_tree_size([math.exp(s) for s in best], self.costs.verify_seconds, time.perf_counter() - started)


class LayerSkipDrafter(ModelDrafter):
    """Self-speculative decoding: the target with some layers skipped drafts for itself."""

    name = "layer-skip"

    def __init__(
        self,
        target: PreTrainedModel,
        settings: DraftSettings,
        keep_layers: Sequence[int] | None = None,
        shape: TreeShape = "chain",
        branch: int = 2,
        beam: int = 4,
    ) -> None:
        n_layers = target.config.get_text_config(decoder=True).num_hidden_layers
        self.keep_layers = list(keep_layers) if keep_layers is not None else default_keep_layers(n_layers)
        draft = layer_skip_model(target, self.keep_layers)
        super().__init__(draft, settings, shape, branch, beam, free_rows=padded_rows(target))


class FeatureDrafter(ModelDrafter):
    """EAGLE-style drafting from the target's own features (``models/feature_draft.py``).

    The head keeps a KV cache over pairs (target feature at position j, token at j + 1) of the
    committed text, fed from every verification pass (the accepted rows' hidden states cost
    nothing extra). Its prediction for the last pair is its guess of the root's feature, whose
    draft logits give the first level; deeper levels feed the head's own predicted features
    back in, one batched head pass per level, under the same tree masks as a draft model.
    Default shape: the dynamic tree of EAGLE-2.
    """

    name = "feature-head"
    wants_target_hidden = True

    def __init__(
        self,
        head: FeatureDraftHead,
        settings: DraftSettings,
        shape: TreeShape = "dynamic",
        branch: int = 2,
        beam: int = 4,
        free_rows: int = 1,
    ) -> None:
        if not head.attached:
            raise DrafterError("the feature draft head must be attached to its target (attach_target)")
        super().__init__(head, settings, shape, branch, beam, free_rows=free_rows)
        self._pairs = 0  # committed pairs in the head's cache
        self._root_feature: torch.Tensor | None = None
        self._features: dict[int, torch.Tensor] = {}  # tree node -> predicted feature
        self._vocab = head.draft_vocab.cpu()  # logit column -> target token id
        layers = head.config.feature_layers
        self.target_layers = tuple(layers) if layers else None  # an EAGLE-3 head's fused layers

    def start(self, prompt_ids: Sequence[int]) -> None:
        super().start(prompt_ids)
        self._pairs, self._root_feature, self._features = 0, None, {}

    @torch.inference_mode()
    def observe_hidden(self, hidden: torch.Tensor, next_tokens: Sequence[int]) -> None:
        crop_to(self._cache, self._pairs)
        n = len(next_tokens)
        device = self.model.device
        predicted = self.model(
            self.model.fuse_features(hidden[None].to(device=device, dtype=self.model.dtype)),
            torch.tensor([list(next_tokens)], device=device),
            attention_mask=causal_mask(n, self._pairs, self.model.dtype, device),
            position_ids=torch.arange(self._pairs, self._pairs + n, device=device)[None],
            past_key_values=self._cache,
            use_cache=True,
        )
        self._pairs += n
        self._root_feature = predicted[0, -1]

    def _catch_up(self, context: Sequence[int]) -> torch.Tensor | None:
        if self._root_feature is None:  # nothing observed yet (a one-token prompt): no draft
            return None
        if self._pairs != len(context) - 1:
            raise DrafterError("the feature drafter lost track of the committed text; call start() first")
        crop_to(self._cache, self._pairs)
        self._features = {}
        return self.model.draft_logits(self._root_feature[None])[0].float()

    def _prefix_length(self, context: Sequence[int]) -> int:
        return self._pairs

    @torch.inference_mode()
    def _expand(self, prefix_len: int, tree: DraftTree, nodes: list[int], slots: dict[int, int]) -> torch.Tensor:
        mask, positions = tree_level_inputs(self.model, self._cache, prefix_len, tree, nodes, slots)
        parents = [self._root_feature if tree.parents[i] == ROOT else self._features[tree.parents[i]] for i in nodes]
        predicted = self.model(
            torch.stack(parents)[None],
            torch.tensor([[tree.tokens[i] for i in nodes]], device=self.model.device),
            attention_mask=mask,
            position_ids=positions,
            past_key_values=self._cache,
            use_cache=True,
        )[0]
        for row, node in enumerate(nodes):
            self._features[node] = predicted[row]
        return self.model.draft_logits(predicted).float()

    def _tokens(self, columns: list[int]) -> list[int]:
        return self._vocab[columns].tolist()

    def _full_distribution(self, probs: torch.Tensor) -> torch.Tensor:
        full = torch.zeros(self.model.config.target_vocab_size, dtype=probs.dtype)
        return full.index_copy_(0, self._vocab, probs)


class CopyOrFeatureDrafter(Drafter):
    """SAM-Decoding's combination with a trained drafter: when the context's suffix occurred
    before for at least ``min_match`` tokens (4, SAM-Decoding's default), draft the copy (the
    continuations of those earlier matches, at most ``copy_budget`` nodes and the tree budget,
    as deep as they go within that; no model call); otherwise the feature head's tree, whose
    depth ``max_depth`` bounds. Copies cost nothing to draft and run long where the
    output quotes its input; the head covers text that was never written before. The head
    observes every pass either way, so its cache never falls behind."""

    name = "suffix-automaton+feature-head"
    wants_target_hidden = True

    def __init__(self, head: FeatureDrafter, min_match: int = 4, copy_budget: int = 8) -> None:
        super().__init__(head.settings)
        self.head = head
        copy_nodes = min(copy_budget, head.settings.budget)
        self._copy = SuffixAutomatonDrafter(DraftSettings(copy_nodes, copy_nodes), min_match=min_match)

    def start(self, prompt_ids: Sequence[int]) -> None:
        self.head.start(prompt_ids)
        self._copy.start(prompt_ids)

    @property
    def target_layers(self) -> tuple[int, ...] | None:  # type: ignore[override]
        return self.head.target_layers

    def observe_hidden(self, hidden: torch.Tensor, next_tokens: Sequence[int]) -> None:
        self.head.observe_hidden(hidden, next_tokens)

    def observe_pass(self, nodes: int, seconds: float) -> None:
        self.head.observe_pass(nodes, seconds)

    def draft(self, context: Sequence[int], temperature: float, generator: torch.Generator) -> DraftTree:
        tree = self._copy.draft(context, temperature, generator)
        return tree if len(tree) else self.head.draft(context, temperature, generator)


def default_keep_layers(n_layers: int) -> list[int]:
    """The first 80% of the layers (at least one, at most all but one).

    Without training, an early exit is a poor draft: on SmolLM2-135M, drafting with the first
    10, 16 or 20 of 30 layers accepted under 0.2 tokens per step, the first 24 about 0.5;
    keeping the last layers instead of middle ones did not help.
    """
    return list(range(min(max(1, round(0.8 * n_layers)), n_layers - 1)))


def parse_layers(spec: str, n_layers: int) -> list[int]:
    """Parse ``"0-11,26-29"`` style layer lists."""
    keep: list[int] = []
    try:
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            lo, _, hi = part.partition("-")
            keep += list(range(int(lo), int(hi or lo) + 1))
    except ValueError as exc:
        raise DrafterError(f"bad layer list {spec!r}: use e.g. '0-11,26-29'") from exc
    if not keep or min(keep) < 0 or max(keep) >= n_layers:
        raise DrafterError(f"layer list {spec!r} must name layers within 0..{n_layers - 1}")
    return sorted(set(keep))


def _softmax(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.softmax(logits / temperature if temperature > 0 else logits, dim=-1)


def _gumbel_top_k(probs: torch.Tensor, k: int, generator: torch.Generator) -> list[int]:
    """An ordered sample of ``k`` tokens without replacement from ``probs`` (Gumbel top-k)."""
    u = torch.rand(probs.shape, generator=generator, dtype=torch.float64).clamp_(1e-20, 1.0)
    keys = torch.log(probs.double()) - torch.log(-torch.log(u))
    k = min(k, int((probs > 0).sum()))
    return torch.topk(keys, k).indices.tolist()


def make_drafter(
    name: str,
    target: PreTrainedModel,
    settings: DraftSettings,
    *,
    draft_model: PreTrainedModel | None = None,
    shape: TreeShape = "chain",
    keep_layers: Sequence[int] | None = None,
) -> Drafter:
    """Build the drafter called ``name`` (one of :data:`DRAFTER_NAMES`)."""
    if name == "prompt-lookup":
        return PromptLookupDrafter(settings)
    if name == "suffix-automaton":
        return SuffixAutomatonDrafter(settings)
    if name == "token-recycling":
        return TokenRecyclingDrafter(settings)
    if name == "suffix-automaton+token-recycling":
        return HybridDrafter(settings)
    if name == "layer-skip":
        return LayerSkipDrafter(target, settings, keep_layers=keep_layers, shape=shape)
    if name in FEATURE_HEAD_DRAFTERS:
        if not isinstance(draft_model, FeatureDraftHead):
            raise DrafterError(f"the {name} drafter needs a feature draft head trained for this target")
        if not supports_hidden_states(target):
            raise DrafterError(f"{type(target).__name__} does not expose the hidden states a feature head reads")
        head = FeatureDrafter(draft_model, settings, shape=shape, free_rows=padded_rows(target))
        return CopyOrFeatureDrafter(head) if name.startswith("suffix-automaton+") else head
    if name == "draft-model":
        if draft_model is None:
            raise DrafterError("the draft-model drafter needs a draft model (--draft-model NAME)")
        target_vocab = target.get_output_embeddings().weight.shape[0]
        draft_vocab = draft_model.get_output_embeddings().weight.shape[0]
        if target_vocab != draft_vocab:
            raise DrafterError(
                f"draft model vocabulary ({draft_vocab}) differs from the target's ({target_vocab}): "
                "the two must share a tokenizer"
            )
        return ModelDrafter(draft_model, settings, shape=shape, free_rows=padded_rows(target))
    raise DrafterError(f"unknown drafter {name!r}; choose one of: {', '.join(DRAFTER_NAMES)}")
