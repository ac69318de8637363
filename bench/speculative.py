"""Benchmark speculative decoding of SmolLM2-135M on this machine; prints JSON.

    python bench/speculative.py [--threads 1] [--max-new-tokens 128] [--rounds 2] [--weights float32] [--out FILE]
                                [--prompt-set examples|unseen] [--prompts NAME ...] [--configs LABEL ...]

For a grounded prompt (summarise an article) and an open-ended one (write a story), every
drafter configuration runs greedy speculative decoding, each run paired with plain greedy
decoding of the same prompt right before it, in the same process (configurations rotate
between rounds), so load from other jobs on a shared machine hits both sides of a ratio alike.
Reported per configuration: mean accepted draft tokens per step, tokens per target pass, the
wall clock of every run, ``speedup`` = median over rounds of plain seconds / speculative
seconds (both include the prefill), and whether every output was identical to plain greedy.
With ``--prompt-set unseen`` the prompts are ten open-ended ones written for this bench and never
used to train a draft head (`playground/speculative/prompts.py`); ``across_prompts`` then gives
each configuration's speed-up per prompt, their median and the range of all paired ratios.
"""

from __future__ import annotations

import os

# Before torch starts its thread pool: OpenMP threads that spin at barriers make a busy
# 2-core machine many times slower (models/__init__.py sets the same).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from models.cpu_kernels import WEIGHT_FORMATS, decoding_model
from models.registry import load_model
from playground.speculative.compare import RunSettings, build_drafter, encode_prompt, eos_token_ids, load_draft
from playground.speculative.drafters import MODEL_FREE_DRAFTERS
from playground.speculative.engine import Generation, plain_generate, speculative_generate
from playground.speculative.modeling import (
    cache_length,
    crop_to,
    forward_tokens,
    forward_tree,
    new_cache,
)
from playground.speculative.prompts import GROUNDED_PROMPT, OPEN_ENDED_PROMPT, UNSEEN_OPEN_ENDED
from playground.speculative.tree import DraftTree

MODEL = "smollm2-135m"
PROMPTS = {"grounded": GROUNDED_PROMPT, "open_ended": OPEN_ENDED_PROMPT}
# --prompt-set unseen: open-ended prompts written for the bench, never used in training.
PROMPT_SETS = {"examples": PROMPTS, "unseen": UNSEEN_OPEN_ENDED}

# (label, settings): one or two budgets per drafter. SmolLM2 has no smaller model with its
# tokenizer offline, so the draft-model drafter is not benchmarked here; the feature head this
# project trained on SmolLM2's own hidden states (assets/models/feature-draft/) is.
CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("feature-head/dynamic-5", {"drafter": "feature-head", "tree_budget": 5, "max_depth": 5, "tree_shape": "dynamic"}),
    ("feature-head/dynamic-8", {"drafter": "feature-head", "tree_budget": 8, "max_depth": 6, "tree_shape": "dynamic"}),
    (
        "feature-head/dynamic-16",
        {"drafter": "feature-head", "tree_budget": 16, "max_depth": 6, "tree_shape": "dynamic"},
    ),
    ("feature-head/chain-3", {"drafter": "feature-head", "tree_budget": 3, "max_depth": 3, "tree_shape": "chain"}),
    (
        "feature-head/adaptive-16",
        {"drafter": "feature-head", "tree_budget": 16, "max_depth": 6, "tree_shape": "adaptive"},
    ),
    (
        "suffix-automaton+feature-head/adaptive-16",
        {"drafter": "suffix-automaton+feature-head", "tree_budget": 16, "max_depth": 6, "tree_shape": "adaptive"},
    ),
    ("eagle3-head/dynamic-8", {"drafter": "eagle3-head", "tree_budget": 8, "max_depth": 6, "tree_shape": "dynamic"}),
    ("eagle3-head/chain-3", {"drafter": "eagle3-head", "tree_budget": 3, "max_depth": 3, "tree_shape": "chain"}),
    (
        "eagle3-head/adaptive-16",
        {"drafter": "eagle3-head", "tree_budget": 16, "max_depth": 6, "tree_shape": "adaptive"},
    ),
    (
        "suffix-automaton+eagle3-head/adaptive-16",
        {"drafter": "suffix-automaton+eagle3-head", "tree_budget": 16, "max_depth": 6, "tree_shape": "adaptive"},
    ),
    ("prompt-lookup/8", {"drafter": "prompt-lookup", "tree_budget": 8, "max_depth": 8}),
    ("suffix-automaton/8", {"drafter": "suffix-automaton", "tree_budget": 8, "max_depth": 8}),
    ("suffix-automaton/16", {"drafter": "suffix-automaton", "tree_budget": 16, "max_depth": 12}),
    ("token-recycling/8", {"drafter": "token-recycling", "tree_budget": 8, "max_depth": 4}),
    ("token-recycling/16", {"drafter": "token-recycling", "tree_budget": 16, "max_depth": 6}),
    ("suffix-automaton+token-recycling/16", {"drafter": "suffix-automaton+token-recycling", "tree_budget": 16}),
    ("layer-skip/chain-3", {"drafter": "layer-skip", "tree_budget": 3, "max_depth": 3, "tree_shape": "chain"}),
]


def pass_costs(model: Any, prompt_ids: list[int], sizes: tuple[int, ...] = (1, 4, 8, 16, 32)) -> dict[str, float]:
    """Median ms of one verification pass (a chain of ``n`` tokens, lazy head on one row) on the
    prompt's cache: what a step costs before any token is accepted."""
    cache = new_cache()
    forward_tokens(model, cache, prompt_ids[:-1], last_only=True)
    base = cache_length(cache)
    out = {}
    for n in sizes:
        tree = DraftTree()
        for i in range(n - 1):
            tree.add(prompt_ids[i % len(prompt_ids)], i - 1)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            logits = forward_tree(model, cache, prompt_ids[-1], tree)
            logits[0]
            times.append(time.perf_counter() - start)
            crop_to(cache, base)
        out[str(n)] = round(1000 * statistics.median(times), 1)
    return out


def summarize_runs(runs: list[Generation], plain_runs: list[Generation]) -> dict[str, Any]:
    """Acceptance over all runs; speed from the (plain, speculative) pairs."""
    steps = [s for r in runs for s in r.steps]
    tokens = sum(len(r.output_ids) for r in runs)
    ratios = [p.seconds / r.seconds for p, r in zip(plain_runs, runs, strict=True)]
    return {
        "mean_accepted": round(sum(len(s.accepted) for s in steps) / max(len(steps), 1), 3),
        "tokens_per_forward": round(tokens / max(sum(r.target_passes for r in runs), 1), 3),
        "mean_tree_size": round(sum(len(s.tree) for s in steps) / max(len(steps), 1), 2),
        "seconds": [round(r.seconds, 3) for r in runs],
        "paired_plain_seconds": [round(p.seconds, 3) for p in plain_runs],
        "draft_seconds_per_run": round(sum(s.draft_seconds for s in steps) / len(runs), 3),
        "verify_seconds_per_run": round(sum(s.verify_seconds for s in steps) / len(runs), 3),
        "speedup": round(statistics.median(ratios), 3),
        "speedup_per_pair": [round(x, 3) for x in ratios],
        "identical": all(r.output_ids == p.output_ids for p, r in zip(plain_runs, runs, strict=True)),
    }


def bench_prompt(lm: Any, prompt: str, args: argparse.Namespace) -> dict[str, Any]:
    model, tokenizer = decoding_model(lm.model, args.weights), lm.tokenizer  # what the view and CLI decode with
    prompt_ids = encode_prompt(tokenizer, prompt, chat=True)
    eos = eos_token_ids(model, tokenizer)
    kwargs = {"max_new_tokens": args.max_new_tokens, "eos_ids": eos}
    configs = [
        (label, RunSettings(**c))
        for label, c in CONFIGS
        if c["drafter"] in args.drafters and (not args.configs or label in args.configs)
    ]
    drafts = {s.drafter: load_draft(s.drafter, MODEL, model, None, load_model) for _, s in configs}
    forward_tokens(model, new_cache(), prompt_ids, last_only=True)  # warm-up, not timed
    plain_runs: dict[str, list[Generation]] = {label: [] for label, _ in configs}
    spec_runs: dict[str, list[Generation]] = {label: [] for label, _ in configs}
    for round_index in range(args.rounds):
        shift = round_index % len(configs)
        for label, settings in configs[shift:] + configs[:shift]:
            # Each speculative run is paired with a plain run right before it, so load that
            # comes and goes on a shared machine hits both sides of a ratio alike.
            plain_runs[label].append(plain_generate(model, prompt_ids, **kwargs))
            drafter = build_drafter(settings, model, drafts[settings.drafter])
            spec_runs[label].append(speculative_generate(model, prompt_ids, drafter, **kwargs))
            print(
                f"  {label}: plain {plain_runs[label][-1].seconds:.2f} s, speculative "
                f"{spec_runs[label][-1].seconds:.2f} s",
                file=sys.stderr,
                flush=True,
            )
    drafters = {label: summarize_runs(spec_runs[label], plain_runs[label]) for label, _ in configs}
    all_plain = [r for runs in plain_runs.values() for r in runs]
    model_free = {k: v for k, v in drafters.items() if k.split("/")[0] in MODEL_FREE_DRAFTERS}
    best_free = max(model_free, key=lambda k: model_free[k]["speedup"], default=None)
    best = max(drafters, key=lambda k: drafters[k]["speedup"])
    return {
        "prompt_tokens": len(prompt_ids),
        "new_tokens": len(all_plain[0].output_ids),
        "output_start": tokenizer.decode(all_plain[0].output_ids)[:200],
        "plain": {
            "runs": len(all_plain),
            "median_seconds": round(statistics.median(r.seconds for r in all_plain), 3),
            "min_seconds": round(min(r.seconds for r in all_plain), 3),
            "max_seconds": round(max(r.seconds for r in all_plain), 3),
            "prefill_seconds": round(statistics.median(r.prefill_seconds for r in all_plain), 3),
        },
        "pass_cost_ms": pass_costs(model, prompt_ids),
        "drafters": drafters,
        "best_model_free": {"config": best_free, "speedup": model_free[best_free]["speedup"]} if best_free else None,
        "best": {"config": best, "speedup": drafters[best]["speedup"]},
    }


LINEAR_LAYERS = {
    "float32": "oneDNN, weights reordered once (OneDNNLinear)",
    "float16": "fbgemm, float16 weights and float32 activations (HalfWeightLinear)",
}
PROMPT_LABELS = {"grounded": "grounded (summarise an article)", "open_ended": "open-ended (a short story)"}


def across_prompts(prompts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per configuration over every prompt of the run: each prompt's speed-up (a median of its
    paired runs), their median, the spread of all paired ratios, and whether every output was
    identical to plain greedy decoding."""
    labels = next(iter(prompts.values()))["drafters"]
    out = {}
    for label in labels:
        rows = {name: result["drafters"][label] for name, result in prompts.items()}
        pairs = [x for row in rows.values() for x in row["speedup_per_pair"]]
        out[label] = {
            "median_speedup": round(statistics.median(row["speedup"] for row in rows.values()), 3),
            "per_prompt": {name: row["speedup"] for name, row in rows.items()},
            "paired_ratio_range": [min(pairs), max(pairs)],
            "mean_accepted": round(statistics.mean(row["mean_accepted"] for row in rows.values()), 3),
            "identical": all(row["identical"] for row in rows.values()),
        }
    return out


def readme_table(results: dict[str, Any]) -> str:
    """The README's table and pass costs, from a saved run of this bench."""
    lines = []
    for name, prompt in results["prompts"].items():
        costs = " / ".join(str(v) for v in prompt["pass_cost_ms"].values())
        sizes = " / ".join(prompt["pass_cost_ms"])
        lines.append(
            f"{PROMPT_LABELS.get(name, name)}: one verification pass over n = {sizes} tokens cost {costs} ms."
        )
    lines += ["", "| prompt | drafter / budget | accepted per step | tokens per target pass | speedup | identical |"]
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for name, prompt in results["prompts"].items():
        best = prompt["best"]["config"]
        for i, (label, row) in enumerate(prompt["drafters"].items()):
            speed = f"{row['speedup']:.2f}×"
            cells = [
                PROMPT_LABELS.get(name, name) if i == 0 else name.replace("_", "-"),
                label,
                f"{row['mean_accepted']:.2f}",
                f"{row['tokens_per_forward']:.2f}",
                f"**{speed}**" if label == best else speed,
                "yes" if row["identical"] else "NO",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions (default 2)")
    parser.add_argument(
        "--prompt-set",
        choices=sorted(PROMPT_SETS),
        default="examples",
        help="examples: the view's grounded and open-ended prompts; unseen: 10 open-ended prompts written for "
        "this bench and never used in training (adds a median over them)",
    )
    parser.add_argument("--prompts", nargs="+", help="only these prompts of the set (default: all)")
    parser.add_argument("--configs", nargs="+", help="only these configurations (labels, e.g. feature-head/dynamic-8)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--readme", type=Path, metavar="JSON", help="print the README table of a saved run and exit")
    parser.add_argument(
        "--weights",
        choices=WEIGHT_FORMATS,
        default="float32",
        help="the target's linear weights, for plain and speculative decoding alike (default float32)",
    )
    names = sorted({c["drafter"] for _, c in CONFIGS})
    parser.add_argument("--drafters", nargs="+", choices=names, default=names, help="default: all")
    args = parser.parse_args(argv)
    prompt_set = PROMPT_SETS[args.prompt_set]
    if args.prompts and set(args.prompts) - set(prompt_set):
        parser.error(f"--prompts: choose from {', '.join(prompt_set)}")
    labels = [label for label, _ in CONFIGS]
    if args.configs and set(args.configs) - set(labels):
        parser.error(f"--configs: choose from {', '.join(labels)}")
    if args.readme:
        print(readme_table(json.loads(args.readme.read_text(encoding="utf-8"))))
        return 0
    torch.set_num_threads(args.threads)
    lm = load_model(MODEL)
    results: dict[str, Any] = {
        "model": MODEL,
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "max_new_tokens": args.max_new_tokens,
        "rounds": args.rounds,
        "decoding": "greedy, chat template",
        "weights": args.weights,
        "linear_layers": LINEAR_LAYERS[args.weights]
        if decoding_model(lm.model, args.weights) is not lm.model
        else "default (MKL)",
        "speedup_definition": "median over rounds of plain seconds / speculative seconds, each speculative run "
        "paired with a plain run of the same prompt right before it (same process; both include the prefill)",
        "prompt_set": args.prompt_set,
        "prompts": {},
    }
    for name in args.prompts or list(prompt_set):
        print(f"{name}:", file=sys.stderr, flush=True)
        results["prompts"][name] = bench_prompt(lm, prompt_set[name], args)
    if len(results["prompts"]) > 1:
        results["across_prompts"] = across_prompts(results["prompts"])
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(results, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
