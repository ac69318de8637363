"""Speculative decoding of a text prompt next to plain decoding of the same prompt, and the
JSON both the CLI and the view are built from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from transformers import PreTrainedModel

from models.cpu_kernels import WEIGHT_FORMATS, decoding_model, draft_decoding_model
from models.errors import UserError
from models.feature_draft import load_feature_head, shipped_head_path
from models.generate import chat_prompt_ids
from playground.speculative.drafters import (
    DRAFTER_NAMES,
    FEATURE_HEAD_DRAFTERS,
    TREE_SHAPES,
    Drafter,
    DraftSettings,
    head_kind,
    make_drafter,
    parse_layers,
)
from playground.speculative.engine import Generation, plain_generate, speculative_generate
from playground.speculative.modeling import forward_tokens, new_cache

MAX_NEW_TOKENS = 512
MAX_TEMPERATURE = 2.0


class SpeculativeInputError(UserError):
    """A prompt or setting that cannot be run."""


@dataclass(frozen=True)
class RunSettings:
    """What to run. ``tree_shape`` and ``keep_layers`` only matter for model drafters;
    ``keep_layers`` is a layer list such as ``"0-23"`` (default: see ``default_keep_layers``)."""

    drafter: str = "prompt-lookup"
    max_new_tokens: int = 64
    temperature: float = 0.0
    tree_budget: int = 8
    max_depth: int = 8
    tree_shape: str = "chain"
    keep_layers: str | None = None
    seed: int = 0
    chat: bool = False
    weights: str = "float32"  # the target's linear weights on CPU: "float32" or "float16" (see models.cpu_kernels)

    def __post_init__(self) -> None:
        if self.weights not in WEIGHT_FORMATS:
            raise SpeculativeInputError(
                f"unknown weight format {self.weights!r}; choose one of: {', '.join(WEIGHT_FORMATS)}"
            )
        if self.drafter not in DRAFTER_NAMES:
            raise SpeculativeInputError(f"unknown drafter {self.drafter!r}; choose one of: {', '.join(DRAFTER_NAMES)}")
        if self.tree_shape not in TREE_SHAPES:
            raise SpeculativeInputError(
                f"unknown tree shape {self.tree_shape!r}; choose one of: {', '.join(TREE_SHAPES)}"
            )
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS:
            raise SpeculativeInputError(
                f"max new tokens must be between 1 and {MAX_NEW_TOKENS}, got {self.max_new_tokens}"
            )
        if not 0.0 <= self.temperature <= MAX_TEMPERATURE:
            raise SpeculativeInputError(
                f"temperature must be between 0 (greedy) and {MAX_TEMPERATURE}, got {self.temperature}"
            )
        DraftSettings(self.tree_budget, self.max_depth)  # validates


@dataclass
class Comparison:
    """The same prompt decoded plainly and speculatively, one after the other."""

    settings: RunSettings
    prompt_ids: list[int]
    plain: Generation
    speculative: Generation
    # With float16 weights, plain decoding with the float32 weights too: the combined speed-up.
    plain_float32: Generation | None = None


def encode_prompt(tokenizer: Any, prompt: str, chat: bool = False) -> list[int]:
    """Token ids of ``prompt`` (wrapped in the tokenizer's chat template with ``chat``),
    without a trailing end-of-sequence token (ByT5 appends one)."""
    if not prompt or not prompt.strip():
        raise SpeculativeInputError("Please enter a prompt first.")
    if chat:
        if not getattr(tokenizer, "chat_template", None):
            raise SpeculativeInputError("this model's tokenizer has no chat template; run without chat")
        ids = chat_prompt_ids(tokenizer, prompt)
    else:
        ids = tokenizer(prompt)["input_ids"]
    ids = [int(i) for i in ids]
    while len(ids) > 1 and ids[-1] == tokenizer.eos_token_id:
        ids.pop()
    if not ids:
        raise SpeculativeInputError("the prompt encodes to no tokens")
    return ids


def eos_token_ids(model: PreTrainedModel, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for value in (getattr(tokenizer, "eos_token_id", None), getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    return ids


def load_draft(
    drafter: str, target_name: str, target: PreTrainedModel, draft_name: str | None, load: Callable[[str], Any]
) -> PreTrainedModel | None:
    """The model a drafter drafts with: for ``draft-model``, the registered model ``draft_name``
    (``load(name)`` gives a registry entry); for the feature-head drafters, the head trained for
    ``target_name`` (shipped in ``assets/``) or, when ``draft_name`` is given, the head saved in
    that directory; none for the other drafters."""
    if drafter == "draft-model":
        if not draft_name:
            raise SpeculativeInputError("the draft-model drafter needs a draft model with the target's tokenizer")
        return load(draft_name).model
    if drafter in FEATURE_HEAD_DRAFTERS:
        kind = head_kind(drafter)
        path = draft_name or shipped_head_path(target_name, kind)
        if path is None:
            layers = " --ttt-steps 3" if kind == "eagle3" else ""
            raise SpeculativeInputError(
                f"no feature draft head was trained for {target_name} ({kind.upper()} head); train one with "
                f"`python -m training.feature_draft_data --target {target_name}` then "
                f"`python -m training.train_feature_draft --target {target_name}{layers}`"
            )
        try:
            return load_feature_head(path, target)
        except (OSError, ValueError) as exc:
            raise SpeculativeInputError(f"cannot use the feature draft head at {path}: {exc}") from exc
    return None


def build_drafter(
    settings: RunSettings, model: PreTrainedModel, draft_model: PreTrainedModel | None = None
) -> Drafter:
    n_layers = model.config.get_text_config(decoder=True).num_hidden_layers
    keep = parse_layers(settings.keep_layers, n_layers) if settings.keep_layers else None
    return make_drafter(
        settings.drafter,
        model,
        DraftSettings(settings.tree_budget, settings.max_depth),
        draft_model=draft_model,
        shape=settings.tree_shape,  # type: ignore[arg-type]
        keep_layers=keep,
    )


def compare(
    model: PreTrainedModel,
    tokenizer: Any,
    prompt: str,
    settings: RunSettings,
    draft_model: PreTrainedModel | None = None,
) -> Comparison:
    """Decode ``prompt`` plainly, then speculatively, with the same settings and seed."""
    prompt_ids = encode_prompt(tokenizer, prompt, settings.chat)
    limit = getattr(model.config.get_text_config(decoder=True), "max_position_embeddings", None)
    if limit and len(prompt_ids) + settings.max_new_tokens > limit:
        raise SpeculativeInputError(
            f"the prompt has {len(prompt_ids)} tokens; with {settings.max_new_tokens} new tokens that "
            f"exceeds the model's {limit} positions"
        )
    original = model
    try:  # both decodings below run the same (CPU-tuned) view of the target
        model = decoding_model(model, settings.weights)
    except ValueError as exc:
        raise SpeculativeInputError(str(exc)) from exc
    # A draft's precision cannot change the output (the target verifies every token).
    draft_model = draft_decoding_model(draft_model) if draft_model is not None else None
    drafter = build_drafter(settings, model, draft_model)
    eos = eos_token_ids(model, tokenizer)
    forward_tokens(model, new_cache(), prompt_ids[:1], last_only=True)  # warm-up, not timed
    kwargs = {
        "max_new_tokens": settings.max_new_tokens,
        "temperature": settings.temperature,
        "seed": settings.seed,
        "eos_ids": eos,
    }
    plain = plain_generate(model, prompt_ids, **kwargs)
    speculative = speculative_generate(model, prompt_ids, drafter, **kwargs)
    plain_float32 = None
    if settings.weights != "float32":
        plain_float32 = plain_generate(decoding_model(original, "float32"), prompt_ids, **kwargs)
    return Comparison(settings, prompt_ids, plain, speculative, plain_float32)


def summarize(comparison: Comparison) -> dict[str, Any]:
    """Headline numbers: accepted draft tokens per step, tokens per target pass, speed."""
    spec, plain = comparison.speculative, comparison.plain
    steps = spec.steps
    n_steps = max(len(steps), 1)
    identical = spec.output_ids == plain.output_ids if comparison.settings.temperature == 0 else None
    return {
        "steps": len(steps),
        "new_tokens": len(spec.output_ids),
        "mean_accepted": sum(len(s.accepted) for s in steps) / n_steps,
        "mean_tree_size": sum(len(s.tree) for s in steps) / n_steps,
        "tokens_per_forward": len(spec.output_ids) / max(spec.target_passes, 1),
        "speculative_seconds": spec.seconds,
        "plain_seconds": plain.seconds,
        "speculative_tokens_per_second": spec.tokens_per_second,
        "plain_tokens_per_second": plain.tokens_per_second,
        "speedup": spec.tokens_per_second / plain.tokens_per_second if plain.tokens_per_second else 0.0,
        "draft_seconds": sum(s.draft_seconds for s in steps),
        "verify_seconds": sum(s.verify_seconds for s in steps),
        "prefill_seconds": {"speculative": spec.prefill_seconds, "plain": plain.prefill_seconds},
        "identical": identical,
        **_float32_baseline(comparison),
    }


def _float32_baseline(comparison: Comparison) -> dict[str, Any]:
    """With float16 weights: plain float32 decoding's speed and the combined speed-up over it
    (cheaper steps and speculation together)."""
    base = comparison.plain_float32
    if base is None:
        return {}
    spec = comparison.speculative
    return {
        "plain_float32_seconds": base.seconds,
        "plain_float32_tokens_per_second": base.tokens_per_second,
        "combined_speedup": spec.tokens_per_second / base.tokens_per_second if base.tokens_per_second else 0.0,
    }


def token_text(tokenizer: Any, token: int) -> str:
    return tokenizer.decode([token])


def step_records(comparison: Comparison, tokenizer: Any) -> list[dict[str, Any]]:
    """Every step as plain data: the tree, probabilities, statuses, bonus and timings."""
    records = []
    root = comparison.prompt_ids[-1]
    for index, step in enumerate(comparison.speculative.steps):
        tree = step.tree
        records.append(
            {
                "step": index,
                "root_token": root,
                "root_text": token_text(tokenizer, root),
                "tree": {
                    "tokens": tree.tokens,
                    "texts": [token_text(tokenizer, t) for t in tree.tokens],
                    "parents": tree.parents,
                    "draft_probs": tree.draft_probs,
                    "target_probs": step.target_probs,
                    "status": step.status,
                },
                "accepted_nodes": step.accepted,
                "accepted_tokens": [tree.tokens[i] for i in step.accepted],
                "bonus_token": step.bonus,
                "bonus_text": token_text(tokenizer, step.bonus),
                "new_tokens": step.new_tokens,
                "new_texts": [token_text(tokenizer, t) for t in step.new_tokens],
                "draft_seconds": step.draft_seconds,
                "verify_seconds": step.verify_seconds,
            }
        )
        root = step.new_tokens[-1]
    return records


def to_json(comparison: Comparison, tokenizer: Any) -> dict[str, Any]:
    """The whole comparison as JSON-ready data (what ``--json`` prints)."""
    return {
        "settings": asdict(comparison.settings),
        "prompt_tokens": len(comparison.prompt_ids),
        "prompt_text": tokenizer.decode(comparison.prompt_ids),
        "text": tokenizer.decode(comparison.speculative.output_ids),
        "plain_text": tokenizer.decode(comparison.plain.output_ids),
        "steps": step_records(comparison, tokenizer),
        "summary": summarize(comparison),
    }
