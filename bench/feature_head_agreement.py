"""How often the shipped feature heads' drafts match SmolLM2's greedy token on the bench's
own answers, teacher-forced; prints JSON.

    python bench/feature_head_agreement.py [--max-new-tokens 128] [--prompt-set examples|unseen]
                                           [--drafters feature-head eagle3-head]

For the bench's prompts (`examples`: the grounded and the open-ended one; `unseen`: the 10
open-ended prompts never used in training; chat template, greedy, float16 weights as in
`bench/speculative.py --weights float16`), the target's answer is decoded once; then each head
(`feature-head`: the EAGLE-2 head, `eagle3-head`: the EAGLE-3 head) reads the target's features
at every answer position (depth 1, as when drafting the first token) and the share of positions
where the target's greedy next token is among the head's top k (k = 1..4) is reported, per
prompt and as the median over the prompts.
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

from models.cpu_kernels import decoding_model
from models.registry import load_model
from playground.speculative.compare import encode_prompt, eos_token_ids, load_draft
from playground.speculative.engine import plain_generate
from playground.speculative.modeling import forward_hidden, new_cache
from playground.speculative.prompts import GROUNDED_PROMPT, OPEN_ENDED_PROMPT, UNSEEN_OPEN_ENDED

MODEL = "smollm2-135m"
PROMPT_SETS = {"examples": {"grounded": GROUNDED_PROMPT, "open_ended": OPEN_ENDED_PROMPT}, "unseen": UNSEEN_OPEN_ENDED}
HEADS = ("feature-head", "eagle3-head")


@torch.inference_mode()
def agreement(model, head, prompt_ids: list[int], answer: list[int], ks=(1, 2, 3, 4)) -> dict[str, float]:
    ids = prompt_ids + answer
    hidden = forward_hidden(model, new_cache(), ids)  # row j: the target's final state at position j
    greedy = model.get_output_embeddings()(hidden).argmax(-1)  # the target's token after j
    layers = head.config.feature_layers  # an EAGLE-3 head reads fused layers instead
    features = head.fuse_features(forward_hidden(model, new_cache(), ids, layers).to(head.dtype)) if layers else hidden
    predicted = head(features[None, :-1].to(head.dtype), torch.tensor([ids[1:]]))[0]  # guesses of row j + 1
    top = head.draft_vocab[head.draft_logits(predicted).float().topk(max(ks), -1).indices]
    first = len(prompt_ids) - 1  # the guess made while the last prompt token is the root
    guesses, wanted = top[first:], greedy[first + 1 :]
    return {f"top{k}": round(float((guesses[:, :k] == wanted[:, None]).any(-1).float().mean()), 3) for k in ks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--prompt-set", choices=sorted(PROMPT_SETS), default="examples")
    parser.add_argument("--drafters", nargs="+", choices=HEADS, default=list(HEADS), help="the heads to compare")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lm = load_model(MODEL)
    model = decoding_model(lm.model, "float16")
    heads = {name: load_draft(name, MODEL, model, None, load_model) for name in args.drafters}
    out = {"model": MODEL, "weights": "float16", "prompt_set": args.prompt_set, "prompts": {}, "median": {}}
    for name, prompt in PROMPT_SETS[args.prompt_set].items():
        ids = encode_prompt(lm.tokenizer, prompt, chat=True)
        answer = plain_generate(
            model, ids, max_new_tokens=args.max_new_tokens, eos_ids=eos_token_ids(model, lm.tokenizer)
        )
        out["prompts"][name] = {"answer_tokens": len(answer.output_ids)} | {
            drafter: agreement(model, head, ids, answer.output_ids) for drafter, head in heads.items()
        }
    for drafter in heads:
        rows = [p[drafter] for p in out["prompts"].values()]
        out["median"][drafter] = {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
