"""Continue a prompt with any registered model: `python -m models.generate --model NAME --prompt TEXT`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from models.family import family_of
from models.registry import RegistryError, load_model


def chat_prompt_ids(tokenizer: PreTrainedTokenizerBase, prompt: str) -> list[int]:
    """``prompt`` as one user turn in the tokenizer's chat template, ready for the answer."""
    encoded = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True
    )
    return [int(i) for i in (encoded["input_ids"] if hasattr(encoded, "keys") else encoded)]


def generate(name: str, prompt: str, **options: Any) -> str:
    """A continuation of `prompt` by the registry model `name`; `options` as for `generate_with`."""
    lm = load_model(name)
    return generate_with(lm.model, lm.tokenizer, prompt, **options)


@torch.no_grad()
def generate_with(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase | None,
    prompt: str,
    max_new_bytes: int = 200,
    temperature: float = 0.8,
    top_p: float = 0.95,
    top_k: int = 0,
    seed: int = 0,
) -> str:
    """A continuation of `prompt` of at most `max_new_bytes` UTF-8 bytes by a model in hand (a HAT, or a
    causal LM with its tokenizer); greedy when temperature is 0."""
    family = family_of(model, tokenizer)
    return family.generate(model, tokenizer, prompt, max_new_bytes, temperature, top_p, top_k, seed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--max-new-bytes", type=int, default=200)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--top-k", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        print(
            generate(
                args.model,
                args.prompt,
                max_new_bytes=args.max_new_bytes,
                temperature=args.temperature,
                top_p=args.top_p,
                top_k=args.top_k,
                seed=args.seed,
            )
        )
    except (RegistryError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
