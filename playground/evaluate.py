"""Bits per byte of a text under each model: `python -m playground.evaluate`.

    python -m playground.evaluate --models hat-tiny,bpe-tiny,byte-tiny --text FILE --json

Every byte of the text is predicted exactly once (see `models.scoring` for how texts are cut into
blocks and how the first unit of each block is conditioned on the model's BOS). `units` counts
what the model reads: tokens, HAT words or bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from models.registry import RegistryError, load_model
from models.scoring import DEFAULT_BLOCK_BYTES, TextScore, score_text


def evaluate(names: list[str], text: str, block_bytes: int = DEFAULT_BLOCK_BYTES) -> dict[str, dict]:
    """Score `text` with each model; returns {name: {bpb, bytes, units, bits, seconds, lossless}}."""
    if not text:
        raise ValueError("the text is empty: nothing to score")
    results: dict[str, dict] = {}
    for name in names:
        score: TextScore = score_text(load_model(name), text, block_bytes)
        results[name] = {
            "bpb": round(score.bpb, 6),
            "bytes": score.n_bytes,
            "units": len(score.units),
            "bits": round(score.total_bits, 3),
            "seconds": round(score.seconds, 3),
            "lossless": score.lossless,
        }
    return results


def read_text(path: str) -> str:
    """Read a UTF-8 text file ('-' for standard input) with a clear error for anything else."""
    data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not valid UTF-8 (byte {exc.start}): {exc.reason}") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", required=True, help="comma-separated registry names")
    ap.add_argument("--text", required=True, help="UTF-8 text file, or - for stdin")
    ap.add_argument("--block-bytes", type=int, default=DEFAULT_BLOCK_BYTES)
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args(argv)
    try:
        text = read_text(args.text)
        results = evaluate([m.strip() for m in args.models.split(",") if m.strip()], text, args.block_bytes)
    except (ValueError, OSError) as exc:  # RegistryError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"models": results}, indent=2))
    else:
        for name, r in results.items():
            print(f"{name:>24}  {r['bpb']:.4f} bits/byte  {r['units']} units  {r['bytes']} bytes  {r['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
