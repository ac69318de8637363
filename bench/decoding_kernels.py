"""What one target pass costs on this CPU, by kernel choice and dtype; prints JSON.

    python bench/decoding_kernels.py [--threads 1] [--model smollm2-135m]

For n = 1, 2, 4, 6, 8, 16 tokens appended to a 300-token cache: the median time of the model's body
(all decoder layers, no LM head) and of the LM head on n rows, for
- ``fp32-default``: the model as loaded (MKL sgemm),
- ``fp32-onednn``: `decoding_model`'s view (linear layers on oneDNN, weights reordered once
  for calls of four rows, smaller calls padded to four: `OneDNNLinear`),
- ``fp32-onednn-1row``: the same with weights reordered for one row and no padding (what
  `OneDNNLinear` did before),
- ``fp16-weights``: `decoding_model(model, "float16")` (`HalfWeightLinear`: float16 weights,
  float32 activations; a tree pass computes per row exactly what single steps compute);
- ``bf16``: a bfloat16 copy (for comparison only: batched and single passes round differently);
and for the feature draft head shipped for the model (if any), one drafting level (head layer
on n rows, then its draft LM head) with ``fp32-onednn`` and with ``fp16-weights``
(`HalfWeightLinear`, what the drafter uses: a draft's precision cannot change the output).
A draft tree of n - 1 nodes costs about body[n] + head[rows reached] against body[1] + head[1] for
a plain step, which bounds what speculative decoding can gain.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from models.cpu_kernels import OneDNNLinear, decoding_model, onednn_linear, swap_linears
from models.feature_draft import FeatureDraftHead, shipped_head_path
from models.registry import load_model
from playground.speculative.compare import encode_prompt
from playground.speculative.modeling import crop_to, forward_tokens, new_cache
from playground.speculative.prompts import GROUNDED_PROMPT

SIZES = (1, 2, 4, 6, 8, 16)


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 2)


@torch.inference_mode()
def costs(model, prompt_ids: list[int], repeats: int) -> dict[str, dict[str, float]]:
    cache = new_cache()
    forward_tokens(model, cache, prompt_ids)
    prefix = len(prompt_ids)
    base = getattr(model, model.base_model_prefix)
    head = model.get_output_embeddings()
    hidden = torch.randn(max(SIZES), model.config.hidden_size, dtype=model.dtype)
    body, heads = {}, {}
    for n in SIZES:

        def run_body(n: int = n) -> None:
            base(
                input_ids=torch.tensor([prompt_ids[:n]]),
                position_ids=torch.arange(prefix, prefix + n)[None],
                past_key_values=cache,
                use_cache=True,
            )
            crop_to(cache, prefix)

        body[str(n)] = _median_ms(run_body, repeats)
        heads[str(n)] = _median_ms(lambda n=n: head(hidden[:n]), repeats)
    return {"body_ms": body, "head_ms": heads}


@torch.inference_mode()
def head_level_costs(head: FeatureDraftHead, repeats: int) -> dict[str, float]:
    """Median ms of one drafting level on n rows, on top of a 300-position head cache."""
    width = head.config.hidden_size
    cache = new_cache()
    head(torch.randn(1, 300, width), torch.zeros(1, 300, dtype=torch.long), past_key_values=cache, use_cache=True)
    out = {}
    for n in SIZES:

        def level(n: int = n) -> None:
            predicted = head(
                torch.randn(1, n, width),
                torch.zeros(1, n, dtype=torch.long),
                position_ids=torch.full((1, n), 300),
                past_key_values=cache,
                use_cache=True,
            )
            head.draft_logits(predicted[0])
            crop_to(cache, 300)

        out[str(n)] = _median_ms(level, repeats)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    lm = load_model(args.model)
    model = lm.model.eval()
    prompt_ids = (encode_prompt(lm.tokenizer, GROUNDED_PROMPT, chat=False) * 2)[:300]
    result = {
        "model": args.model,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cache_tokens": len(prompt_ids),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "fp32-default": costs(model, prompt_ids, args.repeats),
    }
    view = decoding_model(model)
    if view is not model:
        result["fp32-onednn"] = costs(view, prompt_ids, args.repeats)
        one_row = swap_linears(
            copy.deepcopy(model), lambda m: OneDNNLinear(m, min_rows=1) if type(m) is torch.nn.Linear else m
        )
        result["fp32-onednn-1row"] = costs(one_row, prompt_ids, args.repeats)
    result["fp16-weights"] = costs(decoding_model(model, "float16"), prompt_ids, args.repeats)
    result["bf16"] = costs(copy.deepcopy(model).to(torch.bfloat16), prompt_ids, args.repeats)
    head_dir = shipped_head_path(args.model)
    if head_dir is not None:
        onednn = FeatureDraftHead.from_pretrained(str(head_dir)).attach_target(model).for_decoding(onednn_linear)
        half = FeatureDraftHead.from_pretrained(str(head_dir)).attach_target(model).for_decoding()
        result["feature_head_level_ms"] = {
            "fp32-onednn": head_level_costs(onednn, args.repeats),
            "fp16-weights": head_level_costs(half, args.repeats),
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
