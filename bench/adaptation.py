"""Compare the shipped adaptation runs: does HAT learn a new language faster than bpe-tiny?

    python bench/adaptation.py [--language de] [--out assets/reports/adaptation.json]
                               [--figure assets/figures/adaptation_de.png]

Reads the training logs that `python -m training.adapt --model M --language L` wrote
(`assets/reports/adaptation/<M>-<L>.csv`) and prints JSON (`playground.adaptation.report`):

- every run's curve: CPU seconds, bytes read, bits per byte on the whole validation split of the
  new language and on the 64 KB English validation prefix (forgetting), from step 0 (the English
  model) to the end of the budget;
- start and end figures of each run;
- the speed-up: CPU seconds (and bytes read) each model needs to reach a German bits per byte,
  interpolated between evaluations, never extrapolated. The headline threshold is the best value
  both models reach in their runs (the worse of their final values); `speedup_by_threshold`
  repeats the measure on a grid down to it;
- units per word of the new language's whole validation split (the text the curves score) under
  each model: HAT words, bpe-tiny's English BPE tokens, bytes. Needs `python -m training.corpus`.

`--figure F.png` draws the curves (the Adaptation tab's figure) and `F_units.png` the units per
word, as PNGs with kaleido.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import models  # noqa: F401  (sets OMP_WAIT_POLICY before torch is imported)
from playground import adaptation as core
from playground import segment


def units_per_word(language: str) -> dict | None:
    """Units per word of the language's validation split under each model."""
    val = REPO / "data" / "corpus" / language / "val.txt"
    if not val.is_file():
        return None
    text = val.read_text(encoding="utf-8")
    segmenters = {"hat-tiny": "hat-words", "bpe-tiny": "bpe-tiny", "byte-tiny": "bytes"}
    result = segment.segment(text, list(segmenters.values()), allowed_models=["bpe-tiny"])
    out = {"text": f"data/corpus/{language}/val.txt ({len(text):,} characters)", "words": segment.count_words(text)}
    for model, name in segmenters.items():
        st = segment.stats(result[name], text)
        out[model] = {"segmenter": name, "units": st.units, "units_per_word": st.units_per_word}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--language", default="de", choices=list(core.LANGUAGES))
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument("--figure", type=Path, help="also draw the curves as a PNG here")
    args = ap.parse_args()
    try:
        result = core.report(args.language)
    except core.AdaptationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result["units_per_word"] = units_per_word(args.language)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    if args.figure:
        from playground.ui.adaptation import curves_figure, units_figure

        curves = core.read_curves(args.language)
        threshold = result["speedup"][0]["threshold_bpb"] if result["speedup"] else None
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        curves_figure(curves, args.language, threshold).write_image(str(args.figure), width=1300, height=420, scale=1)
        if result["units_per_word"]:
            units_png = args.figure.with_name(args.figure.stem + "_units.png")
            units_figure(result["units_per_word"], args.language).write_image(str(units_png), width=700, height=360)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
