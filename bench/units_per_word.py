"""Regenerate the precomputed chart of units per word, per language, across segmenters.

    python bench/units_per_word.py [--sample-chars 50000] [--out assets/figures/units_per_word]

Text per language (en, de, es): the first `--sample-chars` characters (whole lines) of
`data/corpus/<lang>/val.txt` when `python -m training.corpus` has built it, else the example texts in
`assets/examples/` for that language. Words are whitespace-separated (tokenizer "fertility").
Segmenters: bytes, hat-words and every available registered model but the language-adapted
ones (its tokenizer; HAT words for HAT models), plus entropy-patches when `byte-tiny` is available. Writes `<out>.json` and
`<out>.png` (plotly + kaleido, which drives the system chromium) and prints the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import models  # noqa: F401  (sets OMP_WAIT_POLICY before torch is imported)
from models import registry
from playground import segment as core

LANGUAGES = {"en": "English", "de": "German", "es": "Spanish"}
# Which example files stand in for a language when the corpus is not there.
EXAMPLE_LANGUAGE = {"english": "en", "typos": "en", "numbers": "en", "german": "de", "compound": "de", "spanish": "es"}
COLORS = {"en": "#4c6ef5", "de": "#f76707", "es": "#37b24d"}


def corpus_sample(path: Path, n_chars: int) -> str:
    """Whole lines from the start of ``path`` up to about ``n_chars`` characters."""
    out, total = [], 0
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            out.append(line)
            total += len(line)
            if total >= n_chars:
                break
    return "".join(out)


def language_texts(n_chars: int) -> dict[str, tuple[str, str]]:
    """{lang: (source description, text)}."""
    examples = core.load_examples()
    out: dict[str, tuple[str, str]] = {}
    for lang in LANGUAGES:
        val = REPO / "data" / "corpus" / lang / "val.txt"
        if val.exists() and val.stat().st_size > 0:
            out[lang] = (f"data/corpus/{lang}/val.txt (first {n_chars:,} chars)", corpus_sample(val, n_chars))
            continue
        texts = [t for label, t in examples if EXAMPLE_LANGUAGE.get(label) == lang]
        if texts:
            out[lang] = ("assets/examples", "\n".join(texts))
    return out


def figure(result: dict) -> object:
    import plotly.graph_objects as go

    # Segmenters that cut identically (byte-tiny's ByT5 tokens are the bytes; hat-tiny's words
    # are hat-words) share one group of bars, labelled "bytes = byte-tiny".
    groups: dict[tuple, list[str]] = {}
    for name in result["segmenters"]:
        key = tuple(result["counts"][lang]["units"].get(name) for lang in result["units_per_word"])
        groups.setdefault(key, []).append(name)
    segs = [names[0] for names in groups.values()]
    labels = [" = ".join(names) for names in groups.values()]
    labels = [f"{lab} ({result['entropy_threshold']:g} bits)" if lab == "entropy-patches" else lab for lab in labels]
    fig = go.Figure()
    for lang, row in result["units_per_word"].items():
        fig.add_trace(
            go.Bar(
                x=labels,
                y=[row.get(s) for s in segs],
                name=LANGUAGES[lang],
                marker_color=COLORS.get(lang),
                texttemplate="%{y:.2f}",
                textposition="outside",
                cliponaxis=False,
            )
        )
    fig.update_layout(
        title={"text": "Units per word (whitespace-separated) by segmenter and language", "font": {"size": 16}},
        barmode="group",
        yaxis_title="units per word",
        template="plotly_white",
        legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"},
        margin={"l": 60, "r": 20, "t": 80, "b": 60},
    )
    return fig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sample-chars", type=int, default=50_000)
    ap.add_argument("--out", default=str(REPO / "assets" / "figures" / "units_per_word"))
    ap.add_argument("--segmenters", default=None, help="comma-separated (default: all available)")
    ap.add_argument(
        "--entropy-threshold",
        type=float,
        default=core.DEFAULT_ENTROPY_THRESHOLD,
        help=f"bits, for entropy-patches (default {core.DEFAULT_ENTROPY_THRESHOLD:g}, the view's default)",
    )
    args = ap.parse_args(argv)

    registry.configure_for_scoring(device="cpu")  # entropies only, no attention maps
    # The language-adapted models cut text exactly as the models they continue: not listed twice.
    available = [s.name for s in registry.list_models(available_only=True) if s.adapted_from is None]
    if args.segmenters:
        names = args.segmenters.split(",")
    else:
        names = ["bytes", "hat-words", *available]
        if core.DEFAULT_ENTROPY_MODEL in available:
            names.append("entropy-patches")
    texts = language_texts(args.sample_chars)
    result: dict = {
        "words": "whitespace-separated",
        "max_word_bytes": core.DEFAULT_MAX_WORD_BYTES,
        "entropy_threshold": args.entropy_threshold,
        "sources": {lang: src for lang, (src, _) in texts.items()},
        "segmenters": [],
        "units_per_word": {},
        "bytes_per_unit": {},
        "counts": {},
        "seconds": {},
    }
    for lang, (_, text) in texts.items():
        words = core.count_words(text)
        result["counts"][lang] = {"chars": len(text), "bytes": len(text.encode("utf-8")), "words": words, "units": {}}
        result["units_per_word"][lang] = {}
        result["bytes_per_unit"][lang] = {}
        for name in names:
            start = time.perf_counter()
            try:
                seg = core.segment_one(text, name, entropy_threshold=args.entropy_threshold)
            except core.SegmentError as err:
                print(f"skipping {name}: {err}", file=sys.stderr)
                continue
            st = core.stats(seg, text)
            result["units_per_word"][lang][name] = st.units_per_word
            result["bytes_per_unit"][lang][name] = st.bytes_per_unit
            result["counts"][lang]["units"][name] = st.units
            result["seconds"].setdefault(name, 0.0)
            result["seconds"][name] = round(result["seconds"][name] + time.perf_counter() - start, 3)
    result["segmenters"] = [n for n in names if any(n in row for row in result["units_per_word"].values())]

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    fig = figure(result)
    fig.write_image(str(out.with_suffix(".png")), width=1100, height=500, scale=1)  # type: ignore[attr-defined]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
