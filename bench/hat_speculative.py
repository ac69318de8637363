"""Word-level speculative decoding of hat-tiny on this machine; prints JSON.

    python bench/hat_speculative.py [--threads 1] [--max-new-bytes 300] [--rounds 3] [--out FILE]

The two prompts of `bench/speculative.py` (raw text: hat-tiny has no chat template), each decoded
greedily by plain `generate_bytes` and by `playground.speculative.hat_words` (drafts: the words
that followed the latest earlier occurrence of the last 1-3 words), paired in the same process.
Reported: drafted words accepted per step, words per backbone pass, the median speedup over
rounds, and whether every output was byte-identical to plain greedy decoding.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from models.registry import load_model
from playground.speculative.hat_words import compare_words, summarize_words
from playground.speculative.prompts import GROUNDED_PROMPT, OPEN_ENDED_PROMPT

PROMPTS = {"grounded": GROUNDED_PROMPT + "\n\n", "open_ended": OPEN_ENDED_PROMPT + "\n\n"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="hat-tiny")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-new-bytes", type=int, default=300)
    parser.add_argument("--max-draft-words", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model(args.model).model
    result = {
        "model": args.model,
        "threads": torch.get_num_threads(),
        "max_new_bytes": args.max_new_bytes,
        "max_draft_words": args.max_draft_words,
        "rounds": args.rounds,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "prompts": {},
    }
    for name, prompt in PROMPTS.items():
        compare_words(model, prompt, 16)  # warm-up
        runs = [
            summarize_words(compare_words(model, prompt, args.max_new_bytes, args.max_draft_words))
            for _ in range(args.rounds)
        ]
        sample = compare_words(model, prompt, args.max_new_bytes, args.max_draft_words)
        result["prompts"][name] = {
            "output_start": sample.plain[:160].decode("utf-8", "replace"),
            "mean_accepted_words": runs[0]["mean_accepted_words"],
            "words_per_backbone_pass": runs[0]["words_per_backbone_pass"],
            "plain_seconds": [r["plain_seconds"] for r in runs],
            "speculative_seconds": [r["speculative_seconds"] for r in runs],
            "speedup": round(statistics.median(r["speedup"] for r in runs), 3),
            "identical": all(r["identical"] for r in runs) and sample.identical,
        }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
