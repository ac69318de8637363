"""Where hat-tiny and bpe-tiny differ: bits per byte by class of word, as JSON.

    python bench/word_classes.py [--text data/corpus/en/val.txt] [--bytes 150000]

Both models score the same text (every byte once, `models.scoring`). Each byte's surprisal is
taken from each model (HAT: exact per byte, its [EOW] charged to the word's last byte; BPE: a
token's surprisal spread evenly over its bytes) and summed over HAT's words (hat-splitter). Words
are classed by their frequency rank in the first 5 MB of the training split: the 100 most frequent,
ranks 100-1k, 1k-10k, rarer, never seen, and words without a letter or digit (spaces, punctuation).

``positions``: mean surprisal (bits) of a byte by its place in its word, for hat-tiny and the flat
byte model byte-tiny (both exact per byte): the spaces before a word, its 1st, 2nd, ... byte after
them, and its last byte (HAT's [EOW] included, which says the word ends there). It shows what the
hierarchy buys and where it does not.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.registry import Registry
from models.scoring import score_text

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ("top-100", "100-1k", "1k-10k", "rarer", "unseen", "no letters")


def word_class(word: bytes, rank: dict[bytes, int]) -> str:
    if not any(ch.isalnum() for ch in word.decode("utf-8", errors="replace")):
        return "no letters"
    r = rank.get(word)
    if r is None:
        return "unseen"
    return "top-100" if r < 100 else "100-1k" if r < 1000 else "1k-10k" if r < 10000 else "rarer"


POSITIONS = ("space", "1", "2", "3", "4", "5", "6", "7", "8+")


def position_labels(word: bytes) -> list[str]:
    """Each byte's place in ``word``: ``"space"`` for leading spaces, then 1, 2, ... (8+)."""
    lead = len(word) - len(word.lstrip(b" "))
    return ["space"] * lead + [str(i) if i < 8 else "8+" for i in range(1, len(word) - lead + 1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", type=Path, default=ROOT / "data/corpus/en/val.txt")
    ap.add_argument("--train", type=Path, default=ROOT / "data/corpus/en/train.txt")
    ap.add_argument("--bytes", type=int, default=150_000, help="score this many bytes from the start of --text")
    args = ap.parse_args()

    text = args.text.read_bytes()[: args.bytes].decode("utf-8", errors="ignore")
    registry = Registry(attention="sdpa")  # scores only: sdpa's numbers are eager's, faster
    hat, bpe, flat = (registry.load_model(name) for name in ("hat-tiny", "bpe-tiny", "byte-tiny"))
    counts = collections.Counter(hat.model.split(args.train.read_bytes()[: 5 << 20].decode("utf-8", errors="ignore")))
    rank = {w: i for i, (w, _) in enumerate(counts.most_common())}
    by_hat, by_bpe, by_flat = score_text(hat, text), score_text(bpe, text), score_text(flat, text)
    raw = text.encode()
    sums = {c: {"words": 0, "bytes": 0, "hat_bits": 0.0, "bpe_bits": 0.0} for c in CLASSES}
    places = {p: {"bytes": 0, "hat_bits": 0.0, "byte_bits": 0.0} for p in (*POSITIONS, "last")}
    for start, end in by_hat.units:
        s = sums[word_class(raw[start:end], rank)]
        s["words"] += 1
        s["bytes"] += end - start
        s["hat_bits"] += float(by_hat.byte_bits[start:end].sum())
        s["bpe_bits"] += float(by_bpe.byte_bits[start:end].sum())
        for i, label in enumerate(position_labels(raw[start:end])):
            for place in (label, "last") if i == end - start - 1 else (label,):
                places[place]["bytes"] += 1
                places[place]["hat_bits"] += float(by_hat.byte_bits[start + i])
                places[place]["byte_bits"] += float(by_flat.byte_bits[start + i])
    report = {
        "text": str(args.text.relative_to(ROOT) if args.text.is_relative_to(ROOT) else args.text),
        "bytes": by_hat.n_bytes,
        "bpb": {
            "hat-tiny": round(by_hat.bpb, 4),
            "bpe-tiny": round(by_bpe.bpb, 4),
            "byte-tiny": round(by_flat.bpb, 4),
        },
        "classes": {
            c: {
                "words": s["words"],
                "bytes": s["bytes"],
                "hat_bpb": round(s["hat_bits"] / s["bytes"], 3),
                "bpe_bpb": round(s["bpe_bits"] / s["bytes"], 3),
                # this class's share of the gap, in bits per byte of the whole text
                "gap_share_bpb": round((s["hat_bits"] - s["bpe_bits"]) / by_hat.n_bytes, 3),
            }
            for c, s in sums.items()
            if s["bytes"]
        },
        "positions": {
            p: {
                "bytes": v["bytes"],
                "hat_bits": round(v["hat_bits"] / v["bytes"], 3),
                "byte_tiny_bits": round(v["byte_bits"] / v["bytes"], 3),
            }
            for p, v in places.items()
            if v["bytes"]
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
