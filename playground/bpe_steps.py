"""BPE learned step by step: the merges a byte-level BPE learns from a text, and the text after k of them.

The tokenizer is the `tokenizers` library's own (`BpeTrainer` over GPT-2's byte-level alphabet, the
pre-tokenisation bpe-tiny uses): trained once to 256 + `max_merges` tokens. BPE training is greedy,
so the state after k merges is the first k merges of that run; `tokenizer_at(k)` builds the real
`tokenizers` BPE model from them, and its cut equals a tokenizer trained to 256 + k tokens (tested).
Only the presentation is this project's: merges as bytes, units per word as k grows, a misspelled
copy of the text beside the clean one.

    python -m playground.bpe_steps --text "the quick brown fox" --merges 20 --json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from models.errors import UserError
from models.units import byte_level_alphabet
from playground.config import validate_text
from playground.perturb import perturb
from playground.segment import Segmentation, segment_by_lengths

MAX_MERGES = 400
MAX_TRAIN_CHARS = 20_000
DEFAULT_TYPO_RATE = 0.2


class BPEStepError(UserError):
    """A user error of the BPE stepper (empty or huge text, a step out of range)."""


@dataclass(frozen=True)
class MergeRule:
    """Merge number `rank` (1-based): the adjacent units `left` and `right` become one."""

    rank: int
    left: bytes
    right: bytes

    @property
    def merged(self) -> bytes:
        return self.left + self.right


@dataclass(frozen=True)
class BPEState:
    """A text cut by the first k merges."""

    k: int
    units: list[bytes]  # join back to the text's UTF-8 bytes exactly
    words: int

    @property
    def units_per_word(self) -> float | None:
        return round(len(self.units) / self.words, 3) if self.words else None


def _new_tokenizer(merges: list[tuple[str, str]] | None = None, vocab: dict[str, int] | None = None) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    model = models.BPE() if merges is None else models.BPE(vocab=vocab, merges=merges)
    tok = Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def train_tokenizer(text: str, merges: int) -> Any:
    """The `tokenizers` byte-level BPE trained on `text` to 256 + `merges` tokens (no special tokens)."""
    from tokenizers import pre_tokenizers, trainers

    tok = _new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=256 + merges,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    tok.train_from_iterator([text], trainer)
    return tok


def piece_to_bytes(piece: str) -> bytes:
    """A byte-level piece ("Ġthe") as the bytes it stands for (b" the")."""
    alphabet = byte_level_alphabet()
    return bytes(alphabet[c] for c in piece)


class BPEStepper:
    """The merges learned from `text` (at most `max_merges`), and any text cut after k of them."""

    def __init__(self, text: str | None, max_merges: int = 100) -> None:
        self.text = validate_text(text, MAX_TRAIN_CHARS, BPEStepError, "the BPE stepper's bound")
        if not 1 <= int(max_merges) <= MAX_MERGES:
            raise BPEStepError(f"The number of merges must be between 1 and {MAX_MERGES}.")
        trained = train_tokenizer(self.text, int(max_merges))
        model = json.loads(trained.to_str())["model"]
        self._vocab: dict[str, int] = model["vocab"]
        self._pieces: list[tuple[str, str]] = [
            tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model["merges"]
        ]
        self.merges = [MergeRule(i + 1, piece_to_bytes(a), piece_to_bytes(b)) for i, (a, b) in enumerate(self._pieces)]
        self._tokenizers: dict[int, Any] = {}

    @property
    def n_merges(self) -> int:
        """How many merges the text supports (fewer than asked when no pair is left to merge)."""
        return len(self.merges)

    def check_k(self, k: Any) -> int:
        try:
            k = int(k)
        except (TypeError, ValueError):
            raise BPEStepError("The step must be a whole number.") from None
        if not 0 <= k <= self.n_merges:
            raise BPEStepError(f"The step must be between 0 and {self.n_merges} (the merges learned from this text).")
        return k

    def tokenizer_at(self, k: int) -> Any:
        """The real `tokenizers` BPE with the first `k` merges."""
        k = self.check_k(k)
        if k not in self._tokenizers:
            self._tokenizers[k] = _new_tokenizer(self._pieces[:k], self._vocab)
        return self._tokenizers[k]

    def cut(self, text: str, k: int) -> BPEState:
        """`text` after `k` merges: its units as bytes (they join back to the text exactly)."""
        pieces = self.tokenizer_at(k).encode(text).tokens if text else []
        return BPEState(k, [piece_to_bytes(p) for p in pieces], len(text.split()))

    def segmentation(self, text: str, k: int) -> Segmentation:
        """`cut` as the segmentation views' units (spans, hex, partial characters)."""
        state = self.cut(text, k)
        return segment_by_lengths(text, f"BPE after {k} merges", "bpe-steps", [len(u) for u in state.units])

    def pair_counts(self, k: int, text: str | None = None) -> dict[tuple[bytes, bytes], int]:
        """How often each pair of adjacent units occurs in `text` (default: the training text) after
        `k` merges, within pre-tokenised words: the counts from which the trainer picks merge k + 1."""
        tok = self.tokenizer_at(k)
        counts: dict[tuple[bytes, bytes], int] = {}
        for word, _ in tok.pre_tokenizer.pre_tokenize_str(text if text is not None else self.text):
            units = [piece_to_bytes(t.value) for t in tok.model.tokenize(word)]
            for pair in itertools.pairwise(units):
                counts[pair] = counts.get(pair, 0) + 1
        return counts

    def pair_count(self, k: int) -> int:
        """How often merge `k`'s pair stood side by side in the training text just before it was learned."""
        k = self.check_k(k)
        if k == 0:
            return 0
        rule = self.merges[k - 1]
        return self.pair_counts(k - 1).get((rule.left, rule.right), 0)

    def curve(self, text: str, ks: Sequence[int]) -> list[tuple[int, float | None]]:
        """(k, units per word of `text`) for every k in `ks`."""
        return [(k, self.cut(text, k).units_per_word) for k in ks]


def misspelled(text: str, seed: int = 0, rate: float = DEFAULT_TYPO_RATE) -> str:
    """A seeded keyboard-typo copy of `text` (the robustness view's perturbation)."""
    return perturb(text, "typo", rate, seed).text


def show_bytes(unit: bytes) -> str:
    """A unit for display: its text, with a partial UTF-8 character shown as its byte values."""
    try:
        return unit.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(chr(b) if b < 0x80 else f"<{b:02X}>" for b in unit)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m playground.bpe_steps", description=__doc__.split("\n")[0])
    ap.add_argument("--text", required=True)
    ap.add_argument("--merges", type=int, default=30)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        stepper = BPEStepper(args.text, args.merges)
    except BPEStepError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    steps = [
        {
            "k": k,
            "merge": None
            if k == 0
            else show_bytes(stepper.merges[k - 1].left) + " + " + show_bytes(stepper.merges[k - 1].right),
            "units": [show_bytes(u) for u in stepper.cut(stepper.text, k).units],
        }
        for k in range(stepper.n_merges + 1)
    ]
    if args.json:
        print(json.dumps({"merges": stepper.n_merges, "steps": steps}, ensure_ascii=False, indent=1))
    else:
        for s in steps:
            print(f"{s['k']:>4} {s['merge'] or '(bytes)':<20} {'|'.join(s['units'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
