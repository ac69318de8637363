"""A feature draft head: drafts tokens for a target language model from the target's own
final hidden states, as in EAGLE (Li et al., "EAGLE: Speculative Sampling Requires
Rethinking Feature Uncertainty", ICML 2024).

    target    ... h_j = final hidden state at position j (what its LM head reads)
    head      x_j = fc([h_j ; embed(t_{j+1})])       the feature and the token that followed it
              g_j = one causal transformer layer over x_0..x_j (own KV cache)
              g_j predicts h_{j+1}; draft logits = g_j @ W_head[draft vocabulary]

An EAGLE-3 head (Li et al., "EAGLE-3: Scaling up Inference Acceleration of Large Language Models
via Training-Time Test", 2025; ``feature_layers`` set) reads, instead of ``h_j``, the hidden states
of a low, a middle and a high layer of the target, concatenated and mapped to the target's width
by ``fuse``; deeper draft steps read the head's own outputs as before. It is trained on the token
loss alone, over several draft steps with its own outputs as inputs (training-time test:
``training/train_feature_draft.py``), so its output is free to be what drafts well rather than a
copy of the target's next feature.

The token embedding and the LM-head rows are the target's (shared, never trained or saved):
the head owns only ``fc`` and one Llama decoder layer (with its final norm). Drafting deeper
feeds the head's own predicted features back in. Scoring a draft over the full vocabulary
would cost a third of a target step on a small model, so the head scores only the
``draft_vocab_size`` most frequent tokens of its training data (as in FR-Spec); the target
still verifies over the full vocabulary, so nothing about the output changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import Cache, LlamaConfig, LlamaModel, PreTrainedConfig, PreTrainedModel
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from models.cpu_kernels import draft_linear, swap_linears
from models.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_HEADS = REPO_ROOT / "assets" / "models" / "feature-draft"  # <target registry name>/


class FeatureDraftConfig(PreTrainedConfig):
    """Sizes of the head (the target's width, heads and MLP by default) and its vocabulary."""

    model_type = "feature_draft"

    target: str = ""  # registry name of the target this head was trained on
    target_vocab_size: int = 49152
    draft_vocab_size: int = 8192
    hidden_size: int = 576
    intermediate_size: int = 1536
    num_attention_heads: int = 9
    num_key_value_heads: int = 3
    rms_norm_eps: float = 1e-5
    rope_theta: float = 100000.0
    max_position_embeddings: int = 8192
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False
    # EAGLE-3: indices into the target's ``output_hidden_states`` (0: the embeddings) whose states
    # are concatenated and fused; None: the target's final hidden state (EAGLE, EAGLE-2).
    feature_layers: list[int] | None = None

    def layer_config(self) -> LlamaConfig:
        return LlamaConfig(
            vocab_size=1,  # the head reads fused vectors, not ids: a 1-row table keeps LlamaModel happy
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=1,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads,
            max_position_embeddings=self.max_position_embeddings,
            rms_norm_eps=self.rms_norm_eps,
            initializer_range=self.initializer_range,
            rope_parameters={"rope_type": "default", "rope_theta": self.rope_theta},
            pad_token_id=None,
            bos_token_id=None,
            eos_token_id=None,
            attn_implementation=self._attn_implementation or "sdpa",
        )

    @classmethod
    def for_target(
        cls, target: PreTrainedModel, name: str, draft_vocab_size: int, feature_layers: list[int] | None = None
    ) -> FeatureDraftConfig:
        """A head as wide as ``target``'s hidden states, with its attention and MLP shapes."""
        text = target.config.get_text_config(decoder=True)
        rope = getattr(text, "rope_parameters", None) or {}
        return cls(
            target=name,
            target_vocab_size=int(target.get_output_embeddings().weight.shape[0]),
            draft_vocab_size=draft_vocab_size,
            hidden_size=text.hidden_size,
            intermediate_size=text.intermediate_size,
            num_attention_heads=text.num_attention_heads,
            num_key_value_heads=getattr(text, "num_key_value_heads", text.num_attention_heads),
            rms_norm_eps=text.rms_norm_eps,
            rope_theta=float(rope.get("rope_theta", 10000.0)),
            max_position_embeddings=text.max_position_embeddings,
            feature_layers=list(feature_layers) if feature_layers else None,
        )


class FeatureDraftHead(PreTrainedModel):
    config: FeatureDraftConfig
    config_class = FeatureDraftConfig
    base_model_prefix = "feature_draft"
    _supports_sdpa = True
    _no_split_modules = ("LlamaDecoderLayer",)

    def __init__(self, config: FeatureDraftConfig):
        super().__init__(config)
        self.fc = nn.Linear(2 * config.hidden_size, config.hidden_size, bias=False)
        layers = config.feature_layers or []
        # EAGLE-3: the target's low, middle and high layer states -> one vector of its width.
        self.fuse = nn.Linear(len(layers) * config.hidden_size, config.hidden_size, bias=False) if layers else None
        # ...normalised (EAGLE-3's hidden_norm): the raw layer states are large (a few "massive"
        # dimensions set their scale, about 100 for SmolLM2), while the head's own outputs, which
        # deeper draft steps read in the same place, leave its final norm at the scale of 1.
        self.fuse_norm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps) if layers else None
        self.decoder = LlamaModel(config.layer_config())
        # Target token ids of the draft vocabulary, most frequent first (saved with the head).
        self.register_buffer("draft_vocab", torch.arange(config.draft_vocab_size), persistent=True)
        self._target_embed: nn.Module | None = None
        self._draft_lm: nn.Module | None = None
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif hasattr(module, "weight") and module.__class__.__name__.endswith("RMSNorm"):
            nn.init.ones_(module.weight)

    def attach_target(self, target: PreTrainedModel) -> FeatureDraftHead:
        """Share ``target``'s token embedding and copy its LM-head rows of the draft vocabulary
        (neither becomes a parameter of the head, neither is saved with it)."""
        head = target.get_output_embeddings().weight
        if head.shape[0] != self.config.target_vocab_size or head.shape[1] != self.config.hidden_size:
            raise UserError(
                f"this draft head was trained for a target with vocabulary {self.config.target_vocab_size} and "
                f"width {self.config.hidden_size} ({self.config.target or 'unknown'}); got {tuple(head.shape)}"
            )
        # Not a submodule: the target's embedding is neither trained nor saved with the head.
        object.__setattr__(self, "_target_embed", target.get_input_embeddings())
        rows = head.detach()[self.draft_vocab.to(head.device)].to(self.fc.weight.dtype).clone()
        draft_lm = nn.Linear(rows.shape[1], rows.shape[0], bias=False, device=rows.device, dtype=rows.dtype)
        draft_lm.weight = nn.Parameter(rows, requires_grad=False)
        object.__setattr__(self, "_draft_lm", draft_lm)  # not a submodule either: not saved
        return self

    def for_decoding(self, linear: Callable[[nn.Module], nn.Module] = draft_linear) -> FeatureDraftHead:
        """Eval mode, and every linear layer (the draft LM head included) converted by ``linear``:
        by default ``draft_linear``, float16 weights on CPU (a draft's precision cannot change
        the output, which the target verifies, and a head level then reads half the bytes)."""
        self.eval()
        swap_linears(self, linear)
        object.__setattr__(self, "_draft_lm", linear(self._draft_lm))
        return self

    def fuse_features(self, layer_features: torch.Tensor) -> torch.Tensor:
        """``(batch, n, k * hidden)`` concatenated layer states -> ``(batch, n, hidden)`` (identity
        for an EAGLE-2 head, whose input is already the target's final state)."""
        if self.fuse is None or self.fuse_norm is None:
            return layer_features
        return self.fuse_norm(self.fuse(layer_features.to(self.fuse.weight.dtype)))

    @property
    def attached(self) -> bool:
        return self._draft_lm is not None

    def forward(
        self,
        features: torch.Tensor,
        next_tokens: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: Cache | None = None,
        use_cache: bool = False,
    ) -> torch.Tensor:
        """Predicted features ``(batch, n, hidden)`` from the target's (or the head's own)
        features ``(batch, n, hidden)`` and the tokens that followed them ``(batch, n)``."""
        if self._target_embed is None:
            raise RuntimeError("attach_target(target) first: the head uses the target's token embedding")
        embedded = self._target_embed(next_tokens).to(features.dtype)
        fused = self.fc(torch.cat([features, embedded], dim=-1))
        return self.decoder(
            inputs_embeds=fused,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
        ).last_hidden_state

    def draft_logits(self, predicted: torch.Tensor) -> torch.Tensor:
        """Logits over the draft vocabulary (column i is target token ``draft_vocab[i]``)."""
        if self._draft_lm is None:
            raise RuntimeError("attach_target(target) first: the head uses the target's LM head")
        return self._draft_lm(predicted)


def layer_states(hidden_states: tuple[torch.Tensor, ...], layers: Sequence[int]) -> torch.Tensor:
    """Entries ``layers`` of a model's ``output_hidden_states``, concatenated on the last axis:
    what an EAGLE-3 head fuses (``(..., len(layers) * hidden)``)."""
    return torch.cat([hidden_states[i] for i in layers], dim=-1)


HEAD_KINDS = ("eagle2", "eagle3")


def shipped_head_path(target_name: str, kind: str = "eagle2") -> Path | None:
    """The directory of the draft head this project trained for ``target_name``, if any: its
    EAGLE-2 head (final hidden state; ``<target>/``) or its EAGLE-3 head (``<target>-eagle3/``)."""
    if kind not in HEAD_KINDS:
        raise ValueError(f"unknown head kind {kind!r}; choose one of: {', '.join(HEAD_KINDS)}")
    path = SHIPPED_HEADS / (target_name if kind == "eagle2" else f"{target_name}-eagle3")
    return path if (path / "config.json").exists() else None


def load_feature_head(path: str | Path, target: PreTrainedModel) -> FeatureDraftHead:
    """A saved head for decoding: attached to ``target``, in eval mode on the target's device,
    its linear layers with float16 weights on CPU (``FeatureDraftHead.for_decoding``)."""
    head = FeatureDraftHead.from_pretrained(str(path))
    head.to(device=target.device)
    return head.attach_target(target).for_decoding()
