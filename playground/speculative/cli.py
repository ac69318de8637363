"""Command line: ``python -m playground.speculative --model NAME --drafter NAME ... [--json]``.

Runs plain decoding and speculative decoding of the same prompt in one call and prints the
per-step records and a summary (JSON with ``--json``). Errors meant for people exit with 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import models  # noqa: F401  (sets OMP_WAIT_POLICY before torch loads)
from models.errors import UserError
from playground.speculative.compare import MAX_NEW_TOKENS, WEIGHT_FORMATS
from playground.speculative.drafters import DRAFTER_NAMES, TREE_SHAPES
from playground.speculative.view import MAX_DRAFT_WORDS, SpeculativeRequest, run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m playground.speculative",
        description="Speculative decoding step by step, compared with plain decoding of the same prompt.",
    )
    parser.add_argument("--model", required=True, help="target model (registry name, e.g. smollm2-135m or hf:DIR)")
    parser.add_argument("--drafter", required=True, choices=DRAFTER_NAMES)
    parser.add_argument(
        "--draft-model",
        help="draft model for --drafter draft-model (same tokenizer); for the feature-head drafters, a directory "
        "with a head trained for the target (default: the one shipped for it)",
    )
    parser.add_argument("--tree-budget", type=int, default=8, help="most draft tokens per step (default 8)")
    parser.add_argument("--max-depth", type=int, default=8, help="longest draft path (default 8)")
    parser.add_argument(
        "--tree-shape",
        choices=TREE_SHAPES,
        help="for model drafters (default: adaptive for the feature-head drafters, whose draft probabilities track "
        "acceptance; chain for the others)",
    )
    parser.add_argument(
        "--keep-layers", help="layer-skip: layers to keep, e.g. 0-23 (default: the first 80%% of the layers)"
    )
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    parser.add_argument("--seed", type=int, default=0)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="the prompt text")
    source.add_argument("--prompt-file", type=Path, help="read the prompt from this file")
    parser.add_argument("--max-new-tokens", type=int, default=64, help=f"1..{MAX_NEW_TOKENS} (default 64)")
    parser.add_argument(
        "--max-new-bytes", type=int, default=200, help="for HAT models, which draft whole words (default 200)"
    )
    parser.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat template")
    parser.add_argument(
        "--weights",
        choices=WEIGHT_FORMATS,
        default="float32",
        help="the target's linear weights on CPU: float32 (exact, default) or float16 (half the bytes per step, "
        "activations stay float32; plain decoding uses the same weights)",
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", action="store_true", help="print per-step records and the summary as JSON")
    return parser


def _run(args: argparse.Namespace) -> dict:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.drafter == "draft-model" and not args.draft_model:
        raise UserError("--drafter draft-model needs --draft-model NAME")
    request = SpeculativeRequest(
        prompt=args.prompt if args.prompt is not None else _read(args.prompt_file),
        target=args.model,
        drafter=args.drafter,
        draft_model=args.draft_model,
        tree_shape=args.tree_shape,
        tree_budget=args.tree_budget,
        max_depth=args.max_depth,
        temperature=args.temperature,
        max_new_tokens=args.max_new_tokens,
        chat=args.chat,
        weights=args.weights,
        keep_layers=args.keep_layers,
        seed=args.seed,
        max_new_bytes=args.max_new_bytes,
        max_draft_words=min(args.tree_budget, MAX_DRAFT_WORDS),
    )
    data = run(request)
    data["threads"] = torch.get_num_threads()
    return data


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read the prompt file: {exc}") from exc


def _print_human(data: dict) -> None:
    s = data["summary"]
    unit = data.get("unit", "token")  # HAT runs count words and backbone passes
    for step in data["steps"]:
        accepted = "".join(step["new_texts"][: len(step["accepted_tokens"])])
        print(
            f"step {step['step']:3d}: tree {len(step['tree']['tokens']):3d} nodes, "
            f"accepted {len(step['accepted_tokens'])} {accepted!r} + bonus {step['bonus_text']!r}"
        )
    print()
    print(data["text"])
    print()
    print(f"mean accepted per step {s['mean_accepted']:.2f}, {unit}s per target pass {s['tokens_per_forward']:.2f}")
    print(
        f"speculative {s['speculative_tokens_per_second']:.1f} {unit}s/s, plain {s['plain_tokens_per_second']:.1f} "
        f"{unit}s/s, speedup {s['speedup']:.2f}x ({data['threads']} threads)"
    )
    if s["identical"] is not None:
        print(f"identical to plain greedy: {'yes' if s['identical'] else 'NO'}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        data = _run(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        json.dump(data, sys.stdout, indent=1)
        print()
    else:
        _print_human(data)
    return 0


__all__ = ["build_parser", "main"]
