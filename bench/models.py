"""Training throughput and generation speed of the trained tiny models, as JSON.

    python bench/models.py [--threads 1] [--steps 6] [--gen-bytes 200] [--precision auto|bf16|fp32]
                           [--mmap-threshold BYTES]

Training: the exact step of `training.train` (AdamW, batch 16 x 1,024-byte windows of the same text
for every model, and its autocast: bf16 on a CPU that multiplies bf16 natively, else fp32;
`--precision` forces one), fresh weights, median of `--steps` timed steps after one warm-up.
Bytes per second count UTF-8 bytes of text, so the three models are on the same scale.
Generation: greedy continuation of a fixed prompt with the shipped checkpoints and a KV cache,
measured until `--gen-bytes` bytes of new text.
`--mmap-threshold` serves allocations of at least that many bytes from mmap (glibc `mallopt`),
as the shipped models' second training phase did; it shows what that setting cost.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from models.generate import generate
from models.objective import loss_on, windows
from models.registry import TRAINED as REGISTERED
from models.tiny import TRAINED, build
from training.train import native_bf16, resolve_mixed_precision

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "The history of the city begins in the twelfth century, when"


def sample_text() -> bytes:
    corpus = ROOT / "data/corpus/en/train.txt"
    if corpus.exists():
        return corpus.read_bytes()[: 4 << 20]
    return (ROOT / "tests/data/sample_en.txt").read_bytes() * 8


def cpu_name() -> str:
    """The CPU's model name (Linux), so a speed figure says which machine it is from."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def train_throughput(name: str, data: bytes, steps: int, batch: int, window: int, bf16: bool) -> dict:
    tok = None
    if name == "bpe-tiny":
        from transformers import PreTrainedTokenizerFast

        tok = PreTrainedTokenizerFast.from_pretrained(ROOT / "assets/models/bpe-tiny")
    torch.manual_seed(0)
    model, tokenizer = build(name, tok)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = windows(data, window, batch, seed=0)
    times, n_bytes = [], 0
    for i in range(steps + 1):
        texts = next(batches)
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_on(model, tokenizer, texts, REGISTERED[name][0], "cpu")  # its family
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:  # the first step warms up kernels and allocators
            times.append(time.perf_counter() - t0)
            n_bytes = sum(len(t.encode()) for t in texts)
    step = statistics.median(times)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "step_seconds": round(step, 3),
        "train_bytes_per_second": round(n_bytes / step, 1),
    }


def generation_speed(name: str, gen_bytes: int) -> dict:
    generate(name, PROMPT, max_new_bytes=8, temperature=0.0)  # load + warm up
    t0 = time.perf_counter()
    text = generate(name, PROMPT, max_new_bytes=gen_bytes, temperature=0.0)
    dt = time.perf_counter() - t0
    n = len(text.encode())
    return {"generated_bytes": n, "generate_seconds": round(dt, 3), "generate_bytes_per_second": round(n / dt, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--window", type=int, default=1024)
    ap.add_argument("--gen-bytes", type=int, default=200)
    ap.add_argument("--models", default=",".join(TRAINED))
    ap.add_argument("--mmap-threshold", type=int, default=None, metavar="BYTES")
    ap.add_argument(
        "--precision",
        choices=["auto", "bf16", "fp32"],
        default="auto",
        help="training step in bf16 autocast or fp32; auto: what training.train picks on this CPU",
    )
    args = ap.parse_args()
    bf16 = resolve_mixed_precision(args.precision, "cpu") == "bf16"  # fp32 passes through as not bf16
    if args.mmap_threshold is not None:
        import ctypes
        import ctypes.util

        ctypes.CDLL(ctypes.util.find_library("c")).mallopt(-3, args.mmap_threshold)  # -3 = M_MMAP_THRESHOLD
    torch.set_num_threads(args.threads)
    data = sample_text()
    results = {}
    for name in args.models.split(","):
        results[name] = train_throughput(name, data, args.steps, args.batch, args.window, bf16)
        if (ROOT / "assets/models" / name).exists():
            results[name].update(generation_speed(name, args.gen_bytes))
    report = {
        "cpu": cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": native_bf16("cpu"),
        "train_precision": "bf16" if bf16 else "fp32",
        "threads": args.threads,
        "batch": args.batch,
        "window_bytes": args.window,
        "models": results,
    }
    if args.mmap_threshold is not None:
        report["mmap_threshold"] = args.mmap_threshold
    if "hat-tiny" in results and "bpe-tiny" in results:
        report["hat_over_bpe_train_throughput"] = round(
            results["hat-tiny"]["train_bytes_per_second"] / results["bpe-tiny"]["train_bytes_per_second"], 3
        )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
