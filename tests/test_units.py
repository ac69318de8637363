"""models.units: which bytes each token holds, for every tokenizer scheme."""

from __future__ import annotations

from pathlib import Path

from models import units
from models.registry import Registry


def test_exact_lengths() -> None:
    assert units.exact_lengths(b"abc", [b"a", b"bc"]) == [1, 2]
    assert units.exact_lengths(b"abc", [b" a", b"bc"]) == [1, 2]  # SentencePiece's leading space comes off
    assert units.exact_lengths(b"", []) == []
    assert units.exact_lengths(b"abc", [b"a", b"b"]) is None  # a byte missing
    assert units.exact_lengths(b"abc", [b"ab", b"cd"]) is None  # a byte too many
    assert units.exact_lengths(b" abc", [b" ", b"abc"]) == [1, 3]  # the text's own space stays


def test_token_byte_spans_are_exact_for_byte_level_and_byte_tokenizers(
    tiny_bpe_dir: Path, tiny_byte_dir: Path
) -> None:
    reg = Registry(device="cpu")
    text = "Grüße 🦊 qiuck"
    data = text.encode()
    for name, scheme in ((f"hf:{tiny_bpe_dir}", "byte-level"), (f"hf:{tiny_byte_dir}", "byt5")):
        tok = reg.load_tokenizer(name)
        assert units.tokenizer_scheme(tok) == scheme
        ids, spans, alignment = units.token_byte_spans(tok, text)
        assert alignment == "exact" and len(ids) == len(spans)
        assert b"".join(data[a:b] for a, b in spans) == data
        assert [b for _, b in spans[:-1]] == [a for a, _ in spans[1:]]  # contiguous
        pieces = units.piece_bytes(tok, ids)
        assert b"".join(p for p, _, _ in pieces) == data
    assert units.is_byte_tokenizer(reg.load_tokenizer(f"hf:{tiny_byte_dir}"))
    assert not units.is_byte_tokenizer(None)
