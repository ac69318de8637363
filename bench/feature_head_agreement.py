"""How often the shipped feature head's draft matches SmolLM2's greedy token on the bench's
own answers, teacher-forced; prints JSON.

    python bench/feature_head_agreement.py [--max-new-tokens 128]

For the bench's grounded and open-ended prompts (chat template, greedy, float16 weights as in
`bench/speculative.py --weights float16`), the target's answer is decoded once; then the head
reads the target's features at every answer position (depth 1, as when drafting the first
token) and the share of positions where the target's greedy next token is among the head's
top k (k = 1..4) is reported.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from models.cpu_kernels import decoding_model
from models.registry import load_model
from playground.speculative.compare import encode_prompt, eos_token_ids, load_draft
from playground.speculative.engine import plain_generate
from playground.speculative.modeling import forward_hidden, new_cache
from playground.speculative.prompts import GROUNDED_PROMPT, OPEN_ENDED_PROMPT

MODEL = "smollm2-135m"


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
    args = parser.parse_args()
    torch.set_num_threads(1)
    lm = load_model(MODEL)
    model = decoding_model(lm.model, "float16")
    head = load_draft("feature-head", MODEL, model, None, load_model)
    out = {"model": MODEL, "weights": "float16", "prompts": {}}
    for name, prompt in (("grounded", GROUNDED_PROMPT), ("open_ended", OPEN_ENDED_PROMPT)):
        ids = encode_prompt(lm.tokenizer, prompt, chat=True)
        answer = plain_generate(
            model, ids, max_new_tokens=args.max_new_tokens, eos_ids=eos_token_ids(model, lm.tokenizer)
        )
        out["prompts"][name] = {
            "answer_tokens": len(answer.output_ids),
            **agreement(model, head, ids, answer.output_ids),
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
