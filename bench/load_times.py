"""Time the first load (from GGUF) and the cached load (from safetensors) of each pretrained model.

    python bench/load_times.py [--models smollm2-135m,gemma3-270m] [--repeats 3]

Prints JSON. The first load uses an empty temporary cache directory, so it includes the GGUF
de-quantization and the safetensors save; cached loads use a new registry over that directory
(no in-memory cache), and report the median of `--repeats` runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.registry import PRETRAINED, Registry  # imports `models` first: OMP_WAIT_POLICY before torch


def time_load(registry: Registry, name: str) -> tuple[float, float]:
    """(seconds for load_tokenizer alone, seconds for load_model with its tokenizer), from the disk cache."""
    start = time.perf_counter()
    registry.load_tokenizer(name)
    tokenizer_s = time.perf_counter() - start
    registry.clear()
    start = time.perf_counter()
    registry.load_model(name)
    return tokenizer_s, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(PRETRAINED))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    results: dict[str, dict[str, float | int | None]] = {}
    for name in [n.strip() for n in args.models.split(",") if n.strip()]:
        with tempfile.TemporaryDirectory(prefix="hat-playground-bench-") as cache:
            registry = Registry(device="cpu", cache_dir=Path(cache))
            if not registry.get_spec(name).available:
                results[name] = {"error": registry.get_spec(name).unavailable_reason}  # type: ignore[dict-item]
                continue
            start = time.perf_counter()
            lm = registry.load_model(name)
            first = time.perf_counter() - start
            params = sum(p.numel() for p in lm.model.parameters())
            memory = lm.memory_bytes
            cache_bytes = sum(f.stat().st_size for f in registry.pretrained_cache_path(name).rglob("*"))
            del lm
            registry.clear()
            tokenizer_times, model_times = [], []
            for _ in range(args.repeats):
                fresh = Registry(device="cpu", cache_dir=Path(cache))
                tok_s, model_s = time_load(fresh, name)
                tokenizer_times.append(tok_s)
                model_times.append(model_s)
                fresh.clear()
        results[name] = {
            "first_load_s": round(first, 2),
            "cached_load_s": round(statistics.median(model_times), 3),
            "cached_tokenizer_only_load_s": round(statistics.median(tokenizer_times), 3),
            "params": params,
            "weights_mb": round(memory / 2**20, 1),
            "cache_mb": round(cache_bytes / 2**20, 1),
        }
    report = {
        "machine": {"cpus": torch.get_num_threads(), "platform": platform.platform(), "torch": torch.__version__},
        "models": results,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
