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

from models import registry
from models.errors import UserError
from models.family import TextScore
from models.registry import load_model
from models.scoring import DEFAULT_BLOCK_BYTES, score_text
from playground.config import read_text


def evaluate(names: list[str], text: str, block_bytes: int = DEFAULT_BLOCK_BYTES) -> dict[str, dict]:
    """Score `text` with each model; returns {name: {bpb, bytes, units, bits, seconds, lossless}}."""
    if not text:
        raise UserError("the text is empty: nothing to score")
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


# ---- --perturb KIND:RATE (the robustness view's part, issue 3) -------------------------------


def parse_perturb(spec: str) -> tuple[str, float]:
    """`"typo:0.1"` -> `("typo", 0.1)`; a clear `ValueError` for anything else."""
    from playground.perturb import check_kind, check_rate

    kind, sep, rate = spec.partition(":")
    if not sep or not kind.strip() or not rate.strip():
        raise UserError(f"--perturb takes KIND:RATE, e.g. typo:0.1 (got {spec!r})")
    return check_kind(kind.strip()), check_rate(rate.strip())


def add_perturbation(
    results: dict[str, dict], text: str, spec: str, seed: int, block_bytes: int = DEFAULT_BLOCK_BYTES
) -> dict:
    """Score the text perturbed by `spec` (KIND:RATE) too; adds bpb_clean, bpb_perturbed, rise per model.

    `rise` is the relative rise in bits per byte, `bpb_perturbed / bpb_clean - 1`. Returns what
    was done: kind, rate, seed, words and words touched.
    """
    from playground.perturb import perturb
    from playground.robustness import relative_rise

    kind, rate = parse_perturb(spec)
    result = perturb(text, kind, rate, seed)
    for name, r in results.items():
        score = score_text(load_model(name), result.text, block_bytes)
        r["bpb_clean"] = r["bpb"]
        r["bpb_perturbed"] = round(score.bpb, 6)
        r["rise"] = round(relative_rise(r["bpb"], score.bpb), 6)
        r["units_perturbed"] = len(score.units)
    return {
        "kind": kind,
        "rate": rate,
        "seed": seed,
        "words": result.n_words,
        "touched": result.n_touched,
        "touched_share": round(result.touched_share, 6),
    }


# ---- end of --perturb ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", required=True, help="comma-separated registry names")
    ap.add_argument("--text", required=True, help="UTF-8 text file, or - for stdin")
    ap.add_argument("--block-bytes", type=int, default=DEFAULT_BLOCK_BYTES)
    ap.add_argument("--json", action="store_true", help="print JSON")
    ap.add_argument(
        "--perturb", metavar="KIND:RATE", help="also score the text perturbed, e.g. typo:0.1 (see playground.perturb)"
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of --perturb (default 0)")
    args = ap.parse_args(argv)
    perturbation = None
    try:
        text = read_text(args.text)
        if args.perturb:
            parse_perturb(args.perturb)  # fail before scoring anything
        results = evaluate([m.strip() for m in args.models.split(",") if m.strip()], text, args.block_bytes)
        if args.perturb:
            perturbation = add_perturbation(results, text, args.perturb, args.seed, args.block_bytes)
    except (ValueError, OSError) as exc:  # RegistryError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        out: dict = {"models": results}
        if perturbation is not None:
            out["perturbation"] = perturbation
        print(json.dumps(out, indent=2))
    else:
        for name, r in results.items():
            line = (
                f"{name:>24}  {r['bpb']:.4f} bits/byte  {r['units']} units  {r['bytes']} bytes  {r['seconds']:.1f} s"
            )
            if "rise" in r:
                line += f"  perturbed {r['bpb_perturbed']:.4f} ({r['rise']:+.1%})"
            print(line)
    return 0


if __name__ == "__main__":
    registry.configure_for_scoring()
    sys.exit(main())
