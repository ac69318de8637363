"""Robustness report: every perturbation kind x every model, plus rate sweeps, as Markdown + PNGs.

    python bench/robustness_report.py [--models hat-tiny,bpe-tiny,byte-tiny]
        [--text data/corpus/en/val.txt] [--max-bytes 32768] [--rate 0.1] [--seed 0]
        [--sweep-kinds typo,misspelling,upper] [--sweep-rates 0,0.05,0.1,0.2,0.3]
        [--next-word-bytes 8192] [--out assets/reports/robustness.md] [--no-plots] [--readme]

Writes `assets/reports/robustness.md`, its numbers as `robustness.json`, and PNG plots
(plotly + kaleido, rendered by Debian's chromium: `BROWSER_PATH` defaults to /usr/bin/chromium)
next to it. With `--readme`, the headline table in README.md's Robustness section (between the
`robustness-report` markers) is replaced by the one from this report.

The text is the head of the validation text (its ~4 KB blocks are shuffled, so the head mixes all
sources), cut at the last blank line within `--max-bytes` (0 = all of it; the whole ~650 KB takes
hours on a small CPU, the default 32 KB some minutes per model). Scores come from
`playground.robustness` (exact bits per byte, `models.scoring`); the rise of a model is
`bpb(perturbed) / bpb(clean) - 1`, each text's bits divided by its own UTF-8 bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import re
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from models.registry import configure_for_scoring, get_spec, load_model
from playground import perturb as P
from playground import robustness as R

DEFAULT_MODELS = "hat-tiny,bpe-tiny,byte-tiny"
DEFAULT_TEXT = REPO / "data" / "corpus" / "en" / "val.txt"
DEFAULT_OUT = REPO / "assets" / "reports" / "robustness.md"
README = REPO / "README.md"
README_START = "<!-- robustness-report:start -->"
README_END = "<!-- robustness-report:end -->"
HEADLINE_KINDS = ("typo", "misspelling", "upper", "mix")
COLORS = {"hat": "#e8590c", "bpe": "#1c7ed6", "byte": "#2f9e44"}
EXTRA_COLORS = ["#ae3ec9", "#f08c00", "#0c8599", "#c2255c"]


# --------------------------------------------------------------------------- text


def load_text(path: Path, max_bytes: int) -> str:
    """The text, cut at the last blank line (or line end) before `max_bytes` UTF-8 bytes (0 = all)."""
    text = path.read_text(encoding="utf-8")
    if max_bytes <= 0 or len(text.encode()) <= max_bytes:
        return text
    head = text.encode()[:max_bytes].decode("utf-8", "ignore")
    for sep in ("\n\n", "\n"):
        cut = head.rfind(sep)
        if cut > max_bytes // 2:
            return head[: cut + len(sep)]
    return head


# --------------------------------------------------------------------------- runs


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_all(
    names: Sequence[str],
    text: str,
    kinds: Sequence[str],
    rate: float,
    seed: int,
    sweep_kinds: Sequence[str],
    sweep_rates: Sequence[float],
    next_word_text: str | None,
) -> dict[str, Any]:
    start = time.perf_counter()
    out: dict[str, Any] = {"kinds": {}, "sweeps": {}, "next_word": {}}
    steps = len(kinds) + len(sweep_kinds) * len(sweep_rates)
    done = 0

    def tick(label: str) -> None:
        nonlocal done
        done += 1
        spent = time.perf_counter() - start
        eta = spent / done * (steps - done)
        log(f"[{done}/{steps}] {label}  ({spent:.0f} s, about {eta:.0f} s left)")

    for name in names:  # load, and score the clean text once (cached for everything after)
        t0 = time.perf_counter()
        load_model(name)
        R.cached_score(name, text)
        log(f"{name}: clean text scored in {time.perf_counter() - t0:.1f} s")
    for kind in kinds:
        sw = R.sweep(names, text, kind, [rate], seed)
        pert = P.perturb(text, kind, rate, seed)
        out["kinds"][kind] = {
            "touched_share": pert.touched_share,
            "n_touched": pert.n_touched,
            "n_eligible": pert.n_eligible,
            "models": {p.model: _point(p) for p in sw.points},
        }
        tick(f"{kind} at {rate:.0%}")
    for kind in sweep_kinds:
        series: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        for r in sweep_rates:
            sw = R.sweep(names, text, kind, [r], seed)
            for p in sw.points:
                series[p.model].append({"rate": r, **_point(p)})
            tick(f"sweep {kind} at {r:.0%}")
        out["sweeps"][kind] = series
    if next_word_text:
        for kind in sweep_kinds:
            t0 = time.perf_counter()
            res = R.analyze(names, next_word_text, kind, rate, seed, next_words=True)
            out["next_word"][kind] = {m.name: m.summary()["next_word"] for m in res.models}
            log(f"next word, {kind}: {time.perf_counter() - t0:.1f} s")
    out["seconds"] = time.perf_counter() - start
    return out


def _point(p: R.SweepPoint) -> dict[str, Any]:
    return {
        "touched_share": p.touched_share,
        "bpb_clean": p.bpb_clean,
        "bpb_perturbed": p.bpb_perturbed,
        "rise": p.rise,
    }


# --------------------------------------------------------------------------- plots


def _colors(names: Sequence[str]) -> dict[str, str]:
    out, extra = {}, iter(EXTRA_COLORS * 4)
    used: set[str] = set()
    for n in names:
        c = COLORS.get(get_spec(n).family)
        if c is None or c in used:
            c = next(extra)
        used.add(c)
        out[n] = c
    return out


def make_plots(data: dict[str, Any], names: Sequence[str], rate: float, out_dir: Path, stem: str) -> list[Path]:
    """Bar chart of the rise per kind, and one line chart per sweep; PNGs via kaleido."""
    import plotly.graph_objects as go

    os.environ.setdefault("BROWSER_PATH", "/usr/bin/chromium")
    import kaleido

    colors = _colors(names)
    figures: list[tuple[str, Any]] = []
    kinds = list(data["kinds"])
    bars = go.Figure()
    for n in names:
        bars.add_trace(
            go.Bar(
                x=kinds,
                y=[_pct_value(data["kinds"][k]["models"][n]["rise"]) for k in kinds],
                name=n,
                marker_color=colors[n],
            )
        )
    bars.update_layout(
        title={"text": f"Relative rise in bits per byte with {rate:.0%} of the words perturbed"},
        barmode="group",
        yaxis={"title": {"text": "rise in bits per byte"}, "ticksuffix": "%"},
        xaxis={"tickangle": -40},
        template="plotly_white",
        legend={"orientation": "h", "y": 1.08},
        margin={"t": 80, "b": 120},
    )
    figures.append((f"{stem}-kinds.png", bars))
    for kind, series in data["sweeps"].items():
        fig = go.Figure()
        for n in names:
            pts = series[n]
            fig.add_trace(
                go.Scatter(
                    x=[p["rate"] * 100 for p in pts],
                    y=[_pct_value(p["rise"]) for p in pts],
                    mode="lines+markers",
                    name=n,
                    line={"color": colors[n], "width": 3},
                )
            )
        fig.update_layout(
            title={"text": f"Sweep: {kind}"},
            xaxis={"title": {"text": "words perturbed"}, "ticksuffix": "%"},
            yaxis={"title": {"text": "rise in bits per byte"}, "ticksuffix": "%"},
            template="plotly_white",
            legend={"orientation": "h", "y": 1.1},
        )
        figures.append((f"{stem}-sweep-{kind}.png", fig))
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    kaleido.start_sync_server(mathjax=False, silence_warnings=True)  # one browser for all plots, no CDN
    try:
        warnings.filterwarnings("ignore", message="The kopts argument is ignored", category=UserWarning)
        for filename, fig in figures:
            path = out_dir / filename
            t0 = time.perf_counter()
            fig.write_image(str(path), width=1000, height=520, scale=1)
            log(
                f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path} ({time.perf_counter() - t0:.1f} s)"
            )
            paths.append(path)
    finally:
        kaleido.stop_sync_server(silence_warnings=True)
    return paths


def _pct_value(x: float) -> float | None:
    return x * 100 if x is not None and math.isfinite(x) else None


# --------------------------------------------------------------------------- markdown


def _pct(x: float | None) -> str:
    return f"{x:+.1%}" if x is not None and math.isfinite(x) else "–"


def _rel(path: Path, base: Path) -> str:
    return os.path.relpath(path, base)


def headline_table(data: dict[str, Any], names: Sequence[str], rate: float) -> str:
    kinds = [k for k in HEADLINE_KINDS if k in data["kinds"]]
    lines = [
        "| perturbation (" + f"{rate:.0%} of words) | " + " | ".join(f"`{n}`" for n in names) + " |",
        "| --- | " + " | ".join("---:" for _ in names) + " |",
    ]
    for k in kinds:
        row = [_pct(data["kinds"][k]["models"][n]["rise"]) for n in names]
        lines.append(f"| {k} | " + " | ".join(row) + " |")
    clean = [f"{data['kinds'][kinds[0]]['models'][n]['bpb_clean']:.3f}" for n in names] if kinds else []
    if clean:
        lines.append("| *bits/byte, clean* | " + " | ".join(clean) + " |")
    return "\n".join(lines)


def verdicts(data: dict[str, Any], names: Sequence[str]) -> list[str]:
    """Plain statements: is HAT's rise smaller than the BPE baseline's, per kind?"""
    fam = {n: get_spec(n).family for n in names}
    hats = [n for n in names if fam[n] == "hat"]
    bpes = [n for n in names if fam[n] == "bpe"]
    out = []
    for h in hats:
        for b in bpes:
            for kind in ("typo", "misspelling"):
                if kind not in data["kinds"]:
                    continue
                rh, rb = data["kinds"][kind]["models"][h]["rise"], data["kinds"][kind]["models"][b]["rise"]
                ok = rh < rb
                out.append(
                    f"- **{kind}**: `{h}` rises {_pct(rh)}, `{b}` {_pct(rb)} — "
                    + (
                        "as expected, HAT's rise is smaller."
                        if ok
                        else "**not** as expected: HAT's rise is not smaller."
                    )
                )
            worse = [
                k
                for k, v in data["kinds"].items()
                if math.isfinite(v["models"][h]["rise"]) and v["models"][h]["rise"] > v["models"][b]["rise"]
            ]
            if worse:
                out.append(
                    f"- Perturbations that hurt `{h}` more than `{b}` (larger relative rise): "
                    + ", ".join(
                        f"{k} ({_pct(data['kinds'][k]['models'][h]['rise'])} vs "
                        f"{_pct(data['kinds'][k]['models'][b]['rise'])})"
                        for k in worse
                    )
                    + "."
                )
            else:
                out.append(f"- No perturbation hurt `{h}` more than `{b}`.")
    return out


def write_markdown(
    path: Path,
    data: dict[str, Any],
    names: Sequence[str],
    args: argparse.Namespace,
    text: str,
    plots: list[Path],
    command: str,
) -> None:
    base = path.parent
    specs = {n: get_spec(n) for n in names}
    lines = [
        "# Robustness to typed perturbations",
        "",
        f"Generated by `{command}` ({data['seconds'] / 60:.1f} min, Python {platform.python_version()}).",
        "Do not edit by hand: rerun the command.",
        "",
        "## Setup",
        "",
        (
            f"- Text: the first {len(text.encode()):,} bytes of `{_rel(Path(args.text), REPO)}` "
            f"({len(P.words_of(text)):,} words; sha256 `{hashlib.sha256(text.encode()).hexdigest()[:16]}…`), "
            "cut at a blank line. The validation blocks are shuffled, so this mixes all sources."
        ),
        (
            f"- Perturbations from `playground/perturb.py`, seed {args.seed}; a rate is the share of words touched "
            "(one edit per touched word). Where fewer words can be changed (e.g. `lower` on mostly lower-case text), "
            "the touched share is lower; it is listed below."
        ),
        (
            "- Scores: exact bits per byte from `models/scoring.py` (each ~1 KB block read from the model's BOS). "
            "Rise = bits per byte of the perturbed text / bits per byte of the clean text − 1; each text's bits are "
            "divided by its own UTF-8 bytes."
        ),
        (
            "- Models: "
            + "; ".join(
                f"`{n}` ({s.family}, {s.params:,} parameters)" if s.params else f"`{n}` ({s.family})"
                for n, s in specs.items()
            )
            + "."
        ),
        "",
        "## Headline",
        "",
        headline_table(data, names, args.rate),
        "",
        *verdicts(data, names),
        "",
    ]
    kinds_png = next((p for p in plots if p.name.endswith("-kinds.png")), None)
    if kinds_png:
        lines += [f"![Rise per perturbation kind]({_rel(kinds_png, base)})", ""]
    lines += [
        f"## Every perturbation at {args.rate:.0%}",
        "",
        "| kind | words touched | "
        + " | ".join(f"`{n}` bits/byte (clean → perturbed)" for n in names)
        + " | "
        + " | ".join(f"`{n}` rise" for n in names)
        + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in names) + " | " + " | ".join("---:" for _ in names) + " |",
    ]
    for kind, v in data["kinds"].items():
        bpb = [f"{v['models'][n]['bpb_clean']:.3f} → {v['models'][n]['bpb_perturbed']:.3f}" for n in names]
        rise = [_pct(v["models"][n]["rise"]) for n in names]
        lines.append(f"| {kind} | {v['touched_share']:.1%} | " + " | ".join(bpb) + " | " + " | ".join(rise) + " |")
    lines += [
        "",
        "What each kind does: " + "; ".join(f"**{k.name}**: {k.description}" for k in P.KINDS.values()) + ".",
        "",
    ]
    if data["sweeps"]:
        lines += ["## Sweeps", ""]
        for kind, series in data["sweeps"].items():
            rates = [p["rate"] for p in series[names[0]]]
            lines += [
                f"### {kind}",
                "",
                "| rate | " + " | ".join(f"`{n}`" for n in names) + " |",
                "| ---: | " + " | ".join("---:" for _ in names) + " |",
            ]
            for i, r in enumerate(rates):
                lines.append(f"| {r:.0%} | " + " | ".join(_pct(series[n][i]["rise"]) for n in names) + " |")
            png = next((p for p in plots if p.name.endswith(f"-sweep-{kind}.png")), None)
            lines += ["", f"![Sweep: {kind}]({_rel(png, base)})" if png else "", ""]
    if data["next_word"]:
        lines += [
            f"## Next-word accuracy at {args.rate:.0%}",
            "",
            (
                f"On the first {args.next_word_bytes:,} bytes of the text. A position is a hit when greedy decoding "
                "from the perturbed text up to the end of the previous word writes the clean next word (with its "
                "separator) and ends it (`playground/nextword.py`). “After a change”: positions with a touched word "
                "among the previous three."
            ),
            "",
            "| kind | model | positions | clean | perturbed | after a change: clean → perturbed |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for kind, per_model in data["next_word"].items():
            for n in names:
                s = per_model[n]
                lines.append(
                    f"| {kind} | `{n}` | {s['positions']} | {_acc(s['accuracy_clean'])} | {_acc(s['accuracy_perturbed'])} "
                    f"| {_acc(s['near_accuracy_clean'])} → {_acc(s['near_accuracy_perturbed'])} |"
                )
        lines.append("")
    lines += [
        "## Data",
        "",
        (
            "Keyboard neighbours and OCR confusions: nlpaug 1.1.11 (MIT); misspellings: codespell's dictionary "
            "(CC BY-SA 3.0); homoglyphs: the `homoglyphs` package (MIT). See `assets/perturb/ATTRIBUTION.md`."
        ),
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def _finite(obj: Any) -> Any:
    """NaN and infinities -> None, recursively (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _acc(x: float | None) -> str:
    return f"{x:.1%}" if x is not None and math.isfinite(x) else "–"


def update_readme(readme: Path, table: str, report: Path) -> bool:
    """Replace the text between the README markers with `table` (the headline); False if no markers."""
    content = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.DOTALL)
    if not pattern.search(content):
        return False
    link = _rel(report, readme.parent)
    body = (
        f"{README_START}\n{table}\n\nFrom [{link}]({link}) "
        f"(`python bench/robustness_report.py --readme`).\n{README_END}"
    )
    readme.write_text(pattern.sub(lambda _: body, content, count=1), encoding="utf-8")
    return True


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--models", default=DEFAULT_MODELS, help=f"comma-separated registry names (default {DEFAULT_MODELS})"
    )
    ap.add_argument("--text", default=str(DEFAULT_TEXT), help="UTF-8 text (default data/corpus/en/val.txt)")
    ap.add_argument("--max-bytes", type=int, default=32768, help="use the head of the text up to this size (0 = all)")
    ap.add_argument("--kinds", default=",".join(P.KINDS), help="perturbation kinds (default: all)")
    ap.add_argument("--rate", type=float, default=0.1, help="rate of the every-kind table (default 0.1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sweep-kinds", default="typo,misspelling,upper")
    ap.add_argument("--sweep-rates", default="0,0.05,0.1,0.2,0.3")
    ap.add_argument("--next-word-bytes", type=int, default=8192, help="text for next-word accuracy (0 = skip)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="Markdown report (JSON and PNGs go next to it)")
    ap.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    ap.add_argument(
        "--readme",
        nargs="?",
        const=str(README),
        default=None,
        metavar="PATH",
        help="also update the headline table in README.md (or PATH)",
    )
    args = ap.parse_args(argv)
    given = list(sys.argv[1:] if argv is None else argv)
    command = " ".join(["python bench/robustness_report.py", *given])
    try:
        names = R.check_models(args.models.split(","))
        for n in names:
            spec = get_spec(n)
            if not spec.available:
                raise ValueError(f"{n} is not available: {spec.unavailable_reason}")
        kinds = [P.check_kind(k.strip()) for k in args.kinds.split(",") if k.strip()]
        sweep_kinds = [P.check_kind(k.strip()) for k in args.sweep_kinds.split(",") if k.strip()]
        sweep_rates = R.parse_rates(args.sweep_rates)
        rate = P.check_rate(args.rate)
        text_path = Path(args.text)
        if not text_path.is_file():
            raise ValueError(f"{text_path} does not exist (build it with `python -m training.corpus`)")
        text = load_text(text_path, args.max_bytes)
        R.check_text(text)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    nw_text = load_text(text_path, args.next_word_bytes) if args.next_word_bytes > 0 else None
    log(f"{len(text.encode()):,} bytes, {len(names)} models, {len(kinds)} kinds, sweeps {sweep_kinds}")
    data = run_all(names, text, kinds, rate, args.seed, sweep_kinds, sweep_rates, nw_text)
    out = Path(args.out)
    stem = out.stem
    plots = [] if args.no_plots else make_plots(data, names, rate, out.parent / stem, stem)
    write_markdown(out, data, names, args, text, plots, command)
    payload = {"models": names, "rate": rate, "seed": args.seed, "bytes": len(text.encode()), **data}
    out.with_suffix(".json").write_text(
        json.dumps(_finite(payload), indent=1, allow_nan=False) + "\n", encoding="utf-8"
    )
    log(f"wrote {out}")
    if args.readme:
        readme = Path(args.readme)
        headline = headline_table(data, names, rate) + "\n\n" + "\n".join(verdicts(data, names))
        if update_readme(readme, headline, out):
            log(f"updated the Robustness table in {readme}")
        else:
            log(f"{readme} has no {README_START} ... {README_END} markers: not updated")
    return 0


if __name__ == "__main__":
    configure_for_scoring()
    raise SystemExit(main())
