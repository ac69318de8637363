"""Where each trained tiny model spends its compute, per byte of text, as JSON.

    python bench/compute_per_byte.py [--text data/corpus/en/val.txt] [--bytes 65536] [--models a,b] [--out F]

Runs the training forward pass (`training.train.loss_on`: the same windows, the same loss) of
`hat-tiny`, `bpe-tiny` and `byte-tiny` (or any registered HAT, BPE or byte model, such as a
variant's `hf:runs/.../out/hat-tiny`) over the head of `--text`, cut into 1,024-byte blocks at
line ends, under `torch.utils.flop_counter.FlopCounterMode`, which counts the FLOPs of every
matrix product (projections, MLPs, attention scores and mixes, output heads; element-wise work
is not counted). Reports per model and per top-level module: parameters (a tied output head owns
none), forward FLOPs per byte of text and their share, and how many positions the backbone runs
per 1,000 bytes.

The figures depend on the models' shapes and on how the text splits into units, not on their
weights: they say how much of a model's work sits in its backbone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from torch.utils.flop_counter import FlopCounterMode

from models.objective import loss_on
from models.registry import load_model
from models.scoring import head_blocks
from models.tiny import TRAINED

ROOT = Path(__file__).resolve().parent.parent
BACKBONE = {"hat": "backbone", "bpe": "model", "byte": "model"}  # the module that runs once per unit


def backbone_positions(lm, blocks: list[str]) -> int:
    """Positions the backbone runs over the blocks: BOS + units (HAT: BOS + every word but the last,
    which predicts nothing; the flat models run their last position anyway)."""
    if lm.spec.family == "hat":
        return sum(len(lm.model.split(b)) for b in blocks)
    if lm.spec.family == "byte":
        return sum(len(b.encode()) + 1 for b in blocks)
    return sum(len(lm.tokenizer(b, add_special_tokens=False)["input_ids"]) + 1 for b in blocks)


def measure(name: str, blocks: list[str], batch: int = 16) -> dict:
    lm = load_model(name)
    model = lm.model.float().eval()
    n_bytes = sum(len(b.encode()) for b in blocks)
    counter = FlopCounterMode(depth=2, display=False)
    with torch.no_grad(), counter:
        for i in range(0, len(blocks), batch):
            loss_on(model, lm.tokenizer, blocks[i : i + batch], lm.spec.family, torch.device("cpu"))
    per_module = counter.get_flop_counts()
    root = type(model).__name__
    total = sum(per_module["Global"].values())
    components, seen = {}, set()
    for module_name, module in model.named_children():
        flops = sum(per_module.get(f"{root}.{module_name}", {}).values())
        own = [p for p in module.parameters() if id(p) not in seen]  # a tied head owns no new weights
        seen.update(id(p) for p in own)
        if flops or own:
            components[module_name] = {
                "parameters": sum(p.numel() for p in own),
                "flops_per_byte": round(flops / n_bytes),
                "share": round(flops / total, 4),
            }
    for param_name, p in model.named_parameters(recurse=False):  # e.g. HAT's learned start vector
        components[param_name] = {"parameters": p.numel(), "flops_per_byte": 0, "share": 0.0}
    positions = backbone_positions(lm, blocks)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "flops_per_byte": round(total / n_bytes),
        "backbone": BACKBONE[lm.spec.family],
        "backbone_positions_per_1000_bytes": round(1000 * positions / n_bytes, 1),
        "backbone_flops_per_byte": components[BACKBONE[lm.spec.family]]["flops_per_byte"],
        "components": components,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", type=Path, default=ROOT / "data/corpus/en/val.txt")
    ap.add_argument("--bytes", type=int, default=65536, help="measure on about this many bytes from the start")
    ap.add_argument("--models", default=",".join(TRAINED))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "assets/reports/compute_per_byte.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not args.text.exists():
        sys.exit(f"{args.text} not found: build the corpus with `python -m training.corpus`, or pass --text FILE")
    blocks = head_blocks(args.text.read_text(encoding="utf-8"), args.bytes)
    report = {
        "text": str(args.text.relative_to(ROOT) if args.text.is_relative_to(ROOT) else args.text),
        "bytes": sum(len(b.encode()) for b in blocks),
        "blocks": len(blocks),
        "models": {name: measure(name, blocks) for name in args.models.split(",")},
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
