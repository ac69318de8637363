"""The speculative-decoding view's one entry: ``run(request) -> result``.

A request names a target and a drafter and the decoding settings; `run` checks it (against the
app's models and per-request bounds when given an `AppConfig`), loads the models, decodes the
prompt plainly and speculatively, and returns the JSON both the CLI (``python -m
playground.speculative``) and the tab show. A token model drafts tokens (`compare`); a HAT drafts
whole words (`hat_words`), with the prompt-lookup drafter and greedily.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from models.family import family_of
from models.feature_draft import shipped_head_path
from models.registry import load_model
from playground.config import AppConfig, validate_bound, validate_models, validate_text
from playground.speculative.compare import RunSettings, SpeculativeInputError, compare, load_draft, to_json
from playground.speculative.drafters import FEATURE_HEAD_DRAFTERS
from playground.speculative.hat_words import compare_words, to_json_words

BYTES_PER_TOKEN = 4  # a HAT writes bytes: "max new tokens" becomes about as much text
MAX_NEW_BYTES = 4096  # HAT runs (the engine of token models allows MAX_NEW_TOKENS)
MAX_DRAFT_WORDS = 16


@dataclass(frozen=True)
class SpeculativeRequest:
    """What to decode. ``tree_shape`` None: adaptive for the feature-head drafters (whose draft
    probabilities track acceptance), chain for the others. ``max_depth`` None: the budget for a
    chain, 8 otherwise. ``draft_model``: for ``draft-model``, a model with the target's tokenizer;
    for the feature-head drafters, a directory with a head (only where ``config`` is None: users of
    the app get the head shipped for the target). HAT targets write ``max_new_bytes`` (None:
    ``BYTES_PER_TOKEN`` x ``max_new_tokens``) and draft at most ``max_draft_words`` per step."""

    prompt: str
    target: str
    drafter: str = "prompt-lookup"
    draft_model: str | None = None
    tree_shape: str | None = None
    tree_budget: int = 8
    max_depth: int | None = None
    temperature: float = 0.0
    max_new_tokens: int = 64
    chat: bool = False
    weights: str = "float32"
    keep_layers: str | None = None
    seed: int = 0
    max_new_bytes: int | None = None
    max_draft_words: int = 4


def default_drafter(target: str | None) -> str:
    """The drafter a user starts with for ``target``: the EAGLE-3 head where this project ships
    one for it (SmolLM2-135M), else the suffix automaton (no model needed)."""
    return "eagle3-head" if target and shipped_head_path(target, "eagle3") else "suffix-automaton"


def check(request: SpeculativeRequest, config: AppConfig | None = None) -> SpeculativeRequest:
    """`request` with its numbers as numbers, or a `UserError` saying what to change. With `config`,
    the app's rules too: its text limit, its per-request bounds and the models it offers."""
    if not isinstance(request.prompt, str) or not request.prompt.strip():
        raise SpeculativeInputError("Please enter a prompt first.")
    if config is not None:
        validate_text(request.prompt, config.max_text_chars, SpeculativeInputError, config.limit_note)
        validate_bound(request.max_new_tokens, config.limits.max_new_tokens, "max new tokens", SpeculativeInputError)
        validate_bound(request.tree_budget, config.limits.tree_budget, "tree budget", SpeculativeInputError)
        (target,) = validate_models(request.target, config)
        draft_model = None
        if request.drafter == "draft-model":
            if not request.draft_model:
                raise SpeculativeInputError("Choose a draft model (same tokenizer as the target).")
            (draft_model,) = validate_models(request.draft_model, config)
        # otherwise the feature head is the one shipped for the target: no paths from users
        request = replace(request, target=target, draft_model=draft_model)
    try:
        return replace(
            request,
            tree_budget=int(request.tree_budget),
            temperature=float(request.temperature),
            max_new_tokens=int(request.max_new_tokens),
            max_draft_words=int(request.max_draft_words),
        )
    except (TypeError, ValueError):
        raise SpeculativeInputError("tree budget, temperature and max new tokens must be numbers") from None


def run(
    request: SpeculativeRequest, config: AppConfig | None = None, load: Callable[[str], Any] = load_model
) -> dict[str, Any]:
    """Decode ``request.prompt`` plainly and speculatively; the JSON of ``python -m
    playground.speculative --json`` (per-step records, texts, summary). ``load(name)`` gives a
    registry entry (``models.registry.load_model``)."""
    request = check(request, config)
    target = load(request.target)
    if family_of(target.model, target.tokenizer).hierarchical:  # a HAT: whole words are drafted and verified
        return _run_words(request, target.model)
    shape = request.tree_shape or ("adaptive" if request.drafter in FEATURE_HEAD_DRAFTERS else "chain")
    settings = RunSettings(
        drafter=request.drafter,
        max_new_tokens=request.max_new_tokens,
        temperature=request.temperature,
        tree_budget=request.tree_budget,
        max_depth=request.max_depth or (request.tree_budget if shape == "chain" else 8),
        tree_shape=shape,
        keep_layers=request.keep_layers,
        seed=request.seed,
        # Where the app offers "chat template", it means: use it when the model has one.
        chat=request.chat and (config is None or bool(getattr(target.tokenizer, "chat_template", None))),
        weights=request.weights,
    )
    draft = load_draft(request.drafter, request.target, target.model, request.draft_model, load)
    comparison = compare(target.model, target.tokenizer, request.prompt, settings, draft_model=draft)
    data = to_json(comparison, target.tokenizer)
    data["plain_tokens"] = comparison.plain.output_ids
    data["plain_passes"] = comparison.plain.target_passes
    data["model"], data["draft_model"] = request.target, request.draft_model
    return data


def _run_words(request: SpeculativeRequest, model: Any) -> dict[str, Any]:
    """HAT drafts whole words (prompt lookup over words) and checks them with one backbone pass."""
    if request.drafter != "prompt-lookup" or request.temperature != 0:
        raise SpeculativeInputError(
            f"{request.target} is a HAT model: it drafts whole words with the prompt-lookup drafter, greedy only "
            "(temperature 0)."
        )
    max_new_bytes = request.max_new_bytes or BYTES_PER_TOKEN * request.max_new_tokens
    if not 1 <= max_new_bytes <= MAX_NEW_BYTES:
        raise SpeculativeInputError(f"max new bytes must be between 1 and {MAX_NEW_BYTES}, got {max_new_bytes}")
    words = min(max(request.max_draft_words, 1), MAX_DRAFT_WORDS)
    comparison = compare_words(model, request.prompt, max_new_bytes=max_new_bytes, max_draft_words=words)
    data = to_json_words(comparison, max_new_bytes)
    data["plain_tokens"] = list(range(data["summary"]["new_tokens"]))
    data["plain_passes"] = data["summary"]["new_tokens"]  # plain decoding: one backbone pass per word
    data["model"], data["draft_model"] = request.target, None
    return data
