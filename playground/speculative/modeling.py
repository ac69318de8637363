"""Running a transformers causal LM over a draft tree on top of a ``DynamicCache``.

Everything model-specific lives here: the 4D float mask (a dict per layer type for models
with sliding-window layers, such as Gemma 3), position ids by depth, selecting the cache rows
of the accepted path, and the layer-skipping self-draft that shares the target's weights.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from transformers import DynamicCache, PreTrainedModel

from models.errors import UserError
from models.feature_draft import layer_states
from playground.speculative.tree import DraftTree, causal_mask, tree_attention_mask, tree_position_ids


def new_cache() -> DynamicCache:
    """A cache of plain (full-length) layers: tree masks handle sliding windows themselves."""
    return DynamicCache()


def cache_length(cache: DynamicCache) -> int:
    for layer in cache.layers:
        if layer.is_initialized and layer.keys is not None and layer.keys.numel() > 0:
            return int(layer.keys.shape[-2])
    return 0


def _sliding_window(model: PreTrainedModel) -> int | None:
    config = model.config.get_text_config(decoder=True)
    types = getattr(config, "layer_types", None) or []
    if "sliding_attention" in types:
        return int(config.sliding_window)
    return None


def _mask_argument(model: PreTrainedModel, build) -> torch.Tensor | dict[str, torch.Tensor]:
    """``build(sliding_window)`` gives one 4D mask; models with sliding layers get a dict."""
    window = _sliding_window(model)
    if window is None:
        return build(None)
    return {"full_attention": build(None), "sliding_attention": build(window)}


def _dtype(model: PreTrainedModel) -> torch.dtype:
    dtype = model.dtype
    return dtype if dtype.is_floating_point else torch.float32


# Architectures whose causal-LM head is exactly ``lm_head(base(...))`` (plus an optional final
# logit soft-cap): for these, verification applies the head only to the tree rows it reaches.
_LAZY_HEAD_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "gemma3_text", "smollm3", "olmo2"})


class TreeLogits:
    """The target's logits for ``[root] + tree`` rows, computed on first use.

    Verification only reads the rows on the path it follows (the root, then each accepted
    node), so for most architectures the LM head, a large share of a small model's cost,
    runs on those rows only. The root row is computed alone (most steps stop there when
    drafts are poor); once a node is accepted, its row and its whole subtree go through the
    head in one matrix product: on a CPU the head is bound by reading its weights, so one
    product over many rows costs little more than over one (SmolLM2-135M, one thread, oneDNN:
    1 row 4.1 ms, 8 rows 7.7 ms; `bench/decoding_kernels.py`). ``computed_rows`` tells which
    rows were evaluated.
    """

    def __init__(
        self,
        hidden: torch.Tensor | None,
        head: nn.Module | None,
        softcap: float | None,
        logits: torch.Tensor | None = None,
        tree: DraftTree | None = None,
        features: torch.Tensor | None = None,
    ) -> None:
        self._hidden, self._head, self._softcap, self._tree = hidden, head, softcap, tree
        self._features = features  # what a drafter reads, when not the final states (EAGLE-3)
        self._rows: dict[int, torch.Tensor] = {}
        self._all = logits.float().cpu() if logits is not None else None
        self.n_rows = int((logits if logits is not None else hidden).shape[0])

    def __len__(self) -> int:
        return self.n_rows

    def _subtree_rows(self, row: int) -> list[int]:
        """``row`` and the rows of its node's descendants (row i + 1 is node i)."""
        if row == 0 or self._tree is None:
            return [row]
        inside = {row - 1}
        for node, parent in enumerate(self._tree.parents):  # parents come before children
            if parent in inside:
                inside.add(node)
        return [node + 1 for node in sorted(inside) if node + 1 not in self._rows]

    @torch.inference_mode()
    def __getitem__(self, row: int) -> torch.Tensor:
        if self._all is not None:
            self._rows.setdefault(row, self._all[row])
            return self._all[row]
        if row not in self._rows:
            rows = self._subtree_rows(row)
            for r, logits in zip(rows, self._apply_head(self._hidden[rows]), strict=True):
                self._rows[r] = logits
        return self._rows[row]

    @torch.inference_mode()
    def all(self) -> torch.Tensor:
        """Every row's logits ``(rows, vocab)``."""
        if self._all is None:
            self._all = self._apply_head(self._hidden)
            self._rows = {}
        for row in range(self.n_rows):
            self._rows.setdefault(row, self._all[row])
        return self._all

    @property
    def computed_rows(self) -> list[int]:
        return sorted(self._rows)

    def hidden(self, rows: Sequence[int]) -> torch.Tensor:
        """The target's final hidden states (what its head reads) at ``rows``, or the layer states
        ``forward_tree`` was asked for."""
        if self._hidden is None:
            raise UserError("this architecture's verification pass does not expose hidden states")
        return (self._features if self._features is not None else self._hidden)[list(rows)]

    def _apply_head(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self._head(hidden)
        if self._softcap is not None:
            logits = torch.tanh(logits / self._softcap) * self._softcap
        return logits.float().cpu()


@torch.inference_mode()
def forward_tree(
    model: PreTrainedModel,
    cache: DynamicCache,
    root_token: int,
    tree: DraftTree,
    layers: Sequence[int] | None = None,
) -> TreeLogits:
    """Score ``[root_token] + tree.tokens`` in one pass; row 0 is the root, row i + 1 node i.

    The cache must hold every committed token before the root; afterwards it also holds the
    root and all tree nodes (see :func:`keep_positions`). With ``layers``, ``hidden(rows)`` gives
    those entries of the pass's ``output_hidden_states``, concatenated (what an EAGLE-3 head reads).
    """
    prefix = cache_length(cache)
    device = model.device
    mask = _mask_argument(model, lambda w: tree_attention_mask(tree, prefix, _dtype(model), device, sliding_window=w))
    kwargs = {
        "input_ids": torch.tensor([[root_token, *tree.tokens]], device=device),
        "attention_mask": mask,
        "position_ids": tree_position_ids(tree, prefix).to(device),
        "past_key_values": cache,
        "use_cache": True,
    }
    if supports_hidden_states(model):
        out = getattr(model, model.base_model_prefix)(**kwargs, output_hidden_states=bool(layers))
        softcap = getattr(model.config.get_text_config(decoder=True), "final_logit_softcapping", None)
        features = layer_states(out.hidden_states, layers)[0] if layers else None
        return TreeLogits(
            out.last_hidden_state[0], model.get_output_embeddings(), softcap, tree=tree, features=features
        )
    return TreeLogits(None, None, None, logits=model(**kwargs).logits[0])


def supports_hidden_states(model: PreTrainedModel) -> bool:
    """Whether verification can hand the target's final hidden states to a drafter (the
    architectures whose head is exactly ``lm_head(base(...))``)."""
    config = model.config.get_text_config(decoder=True)
    return config.model_type in _LAZY_HEAD_TYPES and hasattr(model, model.base_model_prefix)


@torch.inference_mode()
def forward_hidden(
    model: PreTrainedModel, cache: DynamicCache, tokens: Sequence[int], layers: Sequence[int] | None = None
) -> torch.Tensor:
    """Append ``tokens`` causally to the cache; the final hidden states ``(len(tokens), hidden)``
    (or, with ``layers``, those entries of ``output_hidden_states`` concatenated)."""
    if not supports_hidden_states(model):
        raise UserError(f"{type(model).__name__} does not expose final hidden states to drafters")
    base = getattr(model, model.base_model_prefix)
    out = base(**_causal_inputs(model, cache, tokens), output_hidden_states=bool(layers))
    return layer_states(out.hidden_states, layers)[0] if layers else out.last_hidden_state[0]


def _causal_inputs(model: PreTrainedModel, cache: DynamicCache, tokens: Sequence[int]) -> dict:
    """Keyword arguments that append ``tokens`` causally to ``cache``."""
    prefix = cache_length(cache)
    device = model.device
    n = len(tokens)
    return {
        "input_ids": torch.tensor([list(tokens)], device=device),
        "attention_mask": _mask_argument(
            model, lambda w: causal_mask(n, prefix, _dtype(model), device, sliding_window=w)
        ),
        "position_ids": torch.arange(prefix, prefix + n, device=device)[None],
        "past_key_values": cache,
        "use_cache": True,
    }


@torch.inference_mode()
def forward_tokens(
    model: PreTrainedModel,
    cache: DynamicCache,
    tokens: Sequence[int],
    last_only: bool = False,
) -> torch.Tensor:
    """Append ``tokens`` causally to the cache; float32 logits ``(len(tokens) or 1, vocab)``."""
    out = model(**_causal_inputs(model, cache, tokens), logits_to_keep=1 if last_only else 0)
    return out.logits[0].float()


@torch.inference_mode()
def forward_nodes(
    model: PreTrainedModel,
    cache: DynamicCache,
    prefix_len: int,
    tree: DraftTree,
    nodes: Sequence[int],
    cache_slot: dict[int, int],
) -> torch.Tensor:
    """Append tree ``nodes`` (one expansion level of a draft model) to a draft cache.

    The cache holds ``prefix_len`` committed tokens (the root last) followed by earlier tree
    nodes at ``cache_slot[node]``; each new node sees the prefix, its cached ancestors and
    itself. Records the new nodes' slots and returns their logits ``(len(nodes), vocab)``.
    """
    mask, positions = tree_level_inputs(model, cache, prefix_len, tree, nodes, cache_slot)
    out = model(
        input_ids=torch.tensor([[tree.tokens[i] for i in nodes]], device=model.device),
        attention_mask=mask,
        position_ids=positions,
        past_key_values=cache,
        use_cache=True,
    )
    return out.logits[0].float()


def tree_level_inputs(
    model: PreTrainedModel,
    cache: DynamicCache,
    prefix_len: int,
    tree: DraftTree,
    nodes: Sequence[int],
    cache_slot: dict[int, int],
) -> tuple[torch.Tensor | dict[str, torch.Tensor], torch.Tensor]:
    """The attention mask and position ids that append tree ``nodes`` to a draft cache laid
    out as :func:`forward_nodes` describes; records the nodes' cache slots."""
    start = cache_length(cache)
    device = model.device
    depths = tree.depths()
    positions = torch.tensor([[prefix_len - 1 + depths[i] for i in nodes]], device=device)
    allowed = torch.zeros((len(nodes), start + len(nodes)), dtype=torch.bool)
    allowed[:, :prefix_len] = True
    for row, node in enumerate(nodes):
        for ancestor in tree.path_to(node)[:-1]:
            allowed[row, cache_slot[ancestor]] = True
        allowed[row, start + row] = True

    def build(window: int | None) -> torch.Tensor:
        ok = allowed
        if window is not None:
            k_pos = torch.full((start + len(nodes),), -(10**9), dtype=torch.long)
            k_pos[:prefix_len] = torch.arange(prefix_len)
            for node, slot in cache_slot.items():
                k_pos[slot] = prefix_len - 1 + depths[node]
            k_pos[start:] = positions[0].cpu()
            ok = allowed & ((positions[0].cpu()[:, None] - k_pos[None, :]) < window)
        mask = torch.zeros(ok.shape, dtype=_dtype(model)).masked_fill_(~ok, torch.finfo(_dtype(model)).min)
        return mask[None, None].to(device)

    mask = _mask_argument(model, build)
    for row, node in enumerate(nodes):
        cache_slot[node] = start + row
    return mask, positions


def keep_positions(cache: DynamicCache, keep: int, extra: Sequence[int] = ()) -> None:
    """Trim the cache to its first ``keep`` positions followed by positions ``extra``
    (the accepted tree nodes), in place."""
    extra = list(extra)
    if extra == list(range(keep, keep + len(extra))):
        crop_to(cache, keep + len(extra))
        return
    index = torch.tensor(list(range(keep)) + extra, dtype=torch.long)
    for layer in cache.layers:
        if layer.is_initialized and layer.keys is not None and layer.keys.numel() > 0:
            idx = index.to(layer.keys.device)
            layer.keys = layer.keys.index_select(-2, idx)
            layer.values = layer.values.index_select(-2, idx)


def crop_to(cache: DynamicCache, length: int) -> None:
    """Drop every cached position from ``length`` on."""
    excess = cache_length(cache) - length
    if excess > 0:
        cache.crop(-excess)


class LayerSkipError(UserError):
    """The layer-skip draft cannot be built for this model or layer choice."""


def layer_skip_model(model: PreTrainedModel, keep_layers: Sequence[int]) -> PreTrainedModel:
    """A self-draft: the target with only ``keep_layers`` of its decoder layers, sharing every
    weight (embeddings, kept layers, final norm, head). No copy, no training.

    Layer ``i`` keeps its index, so the draft's own ``DynamicCache`` grows a (empty) slot for
    each skipped layer below the last kept one.
    """
    base_name = model.base_model_prefix
    base = getattr(model, base_name, None)
    layers = getattr(base, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise LayerSkipError(
            f"layer skipping needs a decoder with `{base_name}.layers`; {type(model).__name__} has none"
        )
    keep = sorted({int(i) for i in keep_layers})
    if not keep or keep[0] < 0 or keep[-1] >= len(layers):
        raise LayerSkipError(f"layers to keep must be within 0..{len(layers) - 1}, got {list(keep_layers)}")
    if len(keep) == len(layers):
        raise LayerSkipError("layer skipping must skip at least one layer")
    config = copy.deepcopy(model.config)
    text_config = config.get_text_config(decoder=True)
    text_config.num_hidden_layers = len(keep)
    if getattr(text_config, "layer_types", None):
        text_config.layer_types = [text_config.layer_types[i] for i in keep]
    with torch.device("meta"):
        draft = type(model)(config)
    draft_base = getattr(draft, base_name)
    for name, child in base.named_children():
        setattr(draft_base, name, nn.ModuleList([layers[i] for i in keep]) if name == "layers" else child)
    for name, child in model.named_children():
        if name != base_name:
            setattr(draft, name, child)
    leftovers = [n for n, t in [*draft.named_parameters(), *draft.named_buffers()] if t.is_meta]
    if leftovers:
        raise LayerSkipError(f"could not share these weights with the target: {leftovers[:5]}")
    draft.eval()
    return draft
