"""A text as the units a model reads: token ids with the exact UTF-8 bytes each one spells.

Every view that lines tokens up with text (segmentation, attention, next-word probes, bits per
byte) goes through this module, so there is one answer to "which bytes does token t hold":

- `tokenizer_scheme(tok)`: how a tokenizer spells bytes in its vocabulary pieces: `"byt5"` (one id
  per byte, id = byte + offset), `"byte-level"` (GPT-2's printable alphabet, "Ġthe"),
  `"metaspace"` (SentencePiece: "▁" for a space, `<0xNN>` byte fallback) or `"plain"`.
- `piece_bytes(tok, ids)`: the bytes every token spells, read from its piece (added tokens from
  their content), with whether it is a byte-fallback piece and whether it is special.
- `encode_with_byte_spans(tok, text)`: ids and each token's byte span by the tokenizer's own
  character offsets (what the scorer charges bits to).
- `token_byte_spans(tok, text)`: the same ids with exact byte spans where the pieces spell the text
  (a token holding half a character gets exactly its bytes), else the offsets' spans.

HAT words and raw bytes need no tokenizer: `models.hat.HATForCausalLM.split` and `str.encode`.
"""

from __future__ import annotations

import re
import weakref
from functools import lru_cache
from typing import Any, Literal

import numpy as np

Scheme = Literal["byt5", "byte-level", "metaspace", "plain"]
Alignment = Literal["exact", "offsets"]

BYTE_FALLBACK_RE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@lru_cache(maxsize=1)
def byte_level_alphabet() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode: the printable stand-in character of every byte -> byte."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def tokenizer_scheme(tok: Any) -> Scheme:
    """How a tokenizer spells bytes in its pieces (see the module docstring)."""
    if type(tok).__name__.startswith("ByT5"):
        return "byt5"
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        return "plain"
    # repr() of the pipeline parts is cheap; to_str() would serialise a 262k vocabulary.
    desc = " ".join(repr(getattr(backend, part, None)) for part in ("pre_tokenizer", "decoder"))
    return "byte-level" if "ByteLevel" in desc else "metaspace"


def is_byte_tokenizer(tok: Any) -> bool:
    """ByT5-style: one id per UTF-8 byte (ids = byte + 3), no offset mapping."""
    return tok is not None and tokenizer_scheme(tok) == "byt5"


_ADDED_CACHE: weakref.WeakKeyDictionary[Any, dict[int, tuple[bytes, bool, bool]]] = weakref.WeakKeyDictionary()


def _added_tokens(tok: Any) -> dict[int, tuple[bytes, bool, bool]]:
    """{id: (bytes, False, special)} of a tokenizer's added tokens, cached per tokenizer:
    transformers rebuilds ``added_tokens_decoder`` on every access (30 ms for Gemma's)."""
    try:
        return _ADDED_CACHE[tok]
    except (KeyError, TypeError):
        pass
    # Gemma's "\n" is an added but ordinary token; ByT5's "</s>" is special without the flag.
    special_ids = set(getattr(tok, "all_special_ids", []) or [])
    added = {
        int(k): (str(v.content).encode("utf-8"), False, bool(v.special) or int(k) in special_ids)
        for k, v in (getattr(tok, "added_tokens_decoder", None) or {}).items()
    }
    try:
        _ADDED_CACHE[tok] = added
    except TypeError:  # not weak-referenceable: no cache
        pass
    return added


def piece_bytes(
    tok: Any, ids: list[int], pieces: list[str] | None = None, scheme: Scheme | None = None
) -> list[tuple[bytes, bool, bool]]:
    """(bytes, byte_fallback, special) of every token, read from the tokenizer's vocabulary."""
    if pieces is None:
        pieces = [str(p) for p in tok.convert_ids_to_tokens(ids)]
    scheme = scheme or tokenizer_scheme(tok)
    added = _added_tokens(tok)
    alphabet = byte_level_alphabet()
    offset = int(getattr(tok, "offset", 3))
    out: list[tuple[bytes, bool, bool]] = []
    for i, p in zip(ids, pieces, strict=True):
        if i in added:
            out.append(added[i])
        elif scheme == "byt5" and offset <= i < offset + 256:
            out.append((bytes([i - offset]), False, False))
        elif scheme == "byte-level" and all(c in alphabet for c in p):
            out.append((bytes(alphabet[c] for c in p), False, False))
        elif scheme == "metaspace" and p.startswith("<0x") and (m := BYTE_FALLBACK_RE.match(p)):
            out.append((bytes([int(m.group(1), 16)]), True, False))
        elif scheme == "metaspace":
            out.append((p.replace("▁", " ").encode("utf-8"), False, False))
        else:
            out.append((p.encode("utf-8"), False, False))
    return out


def byte_offsets(text: str) -> np.ndarray:
    """Byte offset of every character boundary: offsets[i] = bytes before character i."""
    return np.concatenate([[0], np.cumsum([len(c.encode()) for c in text])]).astype(np.int64)


def encode_with_byte_spans(tok: Any, text: str) -> dict[str, list]:
    """Token ids of `text` (no special tokens) and each token's byte span by the tokenizer's offsets."""
    if is_byte_tokenizer(tok):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        return {"input_ids": ids, "byte_spans": [(i, i + 1) for i in range(len(ids))]}
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = byte_offsets(text)
    spans = [(int(offsets[c0]), int(offsets[c1])) for c0, c1 in enc["offset_mapping"]]
    return {"input_ids": list(enc["input_ids"]), "byte_spans": spans}


def exact_lengths(data: bytes, pieces: list[bytes]) -> list[int] | None:
    """Bytes per token when the pieces spell `data` exactly, else None. SentencePiece may put a space
    before the first word that the text does not have ("▁Hello" for "Hello"); that space is taken off
    the first piece."""
    lengths = [len(p) for p in pieces]
    joined = b"".join(pieces)
    if joined == data:
        return lengths
    if joined == b" " + data and lengths and lengths[0] >= 1:  # the model saw a space the text lacks
        return [lengths[0] - 1, *lengths[1:]]
    return None


def token_byte_spans(tok: Any, text: str) -> tuple[list[int], list[tuple[int, int]], Alignment]:
    """Token ids of `text` (no special tokens), each token's UTF-8 byte span, and how they were aligned.

    "exact": the tokens' own bytes spell the text (byte-level BPE, SentencePiece with byte
    fallback, ByT5), so a token holding half a character gets exactly its bytes. "offsets": the
    tokenizer's character offsets (tokens inside one character then share its bytes).
    """
    enc = encode_with_byte_spans(tok, text)
    ids = [int(i) for i in enc["input_ids"]]
    spans = [(int(a), int(b)) for a, b in enc["byte_spans"]]
    if is_byte_tokenizer(tok):
        return ids, spans, "exact"
    lengths = exact_lengths(text.encode("utf-8"), [b for b, _, _ in piece_bytes(tok, ids)])
    if lengths is None:
        return ids, spans, "offsets"
    ends = np.cumsum(lengths).tolist() if lengths else []
    return ids, [(e - n, e) for e, n in zip(ends, lengths, strict=True)], "exact"
