"""Token-boundaries tab: the text cut into coloured units by every chosen segmenter.

The analysis lives in :mod:`playground.segment`; this module only turns its results into
gradio components, escaped HTML and plotly figures.
"""

from __future__ import annotations

import html
import itertools
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import gradio as gr
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from models.registry import get_spec
from playground import segment as core
from playground.ui.common import LIGHT_POOL, as_gr_error, model_label, short_name, user_errors
from playground.ui.links import TabState, replay_trigger

if TYPE_CHECKING:
    from playground.config import AppConfig


KEY = "segment"  # the tab's name in links
N_COLORS = 6
VARIANT_COLORS = {"clean": "#4c6ef5", "perturbed": "#f76707"}
_INVISIBLE = {"Cf", "Cc", "Zl", "Zp", "Cn"}

# Scoped to the HTML component by gradio (css_template), so it cannot leak into other tabs.
CSS = """
.seg-legend { font-size: 0.85em; opacity: 0.85; margin: 0 0 8px 0; }
.seg-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 12px; }
.seg-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px;
  background: var(--background-fill-primary); min-width: 0; }
.seg-head { display: flex; flex-wrap: wrap; gap: 4px 10px; align-items: baseline; margin-bottom: 6px; }
.seg-name { font-weight: 600; overflow-wrap: anywhere; }
.seg-count, .seg-note { font-size: 0.85em; opacity: 0.8; }
.seg-row { display: flex; gap: 8px; align-items: flex-start; margin-top: 4px; }
.seg-variant { flex: 0 0 4.2em; font-size: 0.75em; opacity: 0.75; padding-top: 4px; text-align: right; }
.seg-text { flex: 1 1 auto; min-width: 0; white-space: pre-wrap; overflow-wrap: anywhere;
  font-family: var(--font-mono); font-size: 14px; line-height: 1.95; max-height: 22em; overflow-y: auto; }
.seg-error { color: var(--error-text-color, #c92a2a); font-size: 0.9em; }
.u { border-radius: 3px; padding: 2px 0; color: #111; box-shadow: inset -1px 0 0 rgba(0, 0, 0, 0.35); }
.u:hover { outline: 2px solid #1c7ed6; }
.c0 { background: #ffc9c9; } .c1 { background: #ffe8a3; } .c2 { background: #b2f2bb; }
.c3 { background: #a5d8ff; } .c4 { background: #d0bfff; } .c5 { background: #fcc2d7; }
.u.partial { text-decoration: underline wavy #c2255c; text-underline-offset: 3px; }
.u.cont { font-size: 0.62em; vertical-align: 0.15em; padding: 1px 2px; letter-spacing: -0.02em; }
.u.fb { outline: 1.5px dashed #c92a2a; outline-offset: -1.5px; }
.u.sp { font-weight: 700; }
.u.inv { font-size: 0.75em; }
"""

LEGEND = (
    '<div class="seg-legend">Each coloured span is one unit (colours cycle). Hover a unit for its '
    "id, bytes and text. <u>Wavy underline</u>: the unit splits a character (small hex boxes are "
    "units holding only the rest of a character's bytes); dashed outline: byte-fallback piece "
    "(&lt;0xNN&gt;); bold: added/special token.</div>"
)


# --------------------------------------------------------------------------- HTML


def _display(s: str, visible_ws: bool) -> str:
    """What a unit shows on screen (not yet escaped).

    Control characters always become visible symbols (they would otherwise be invisible or
    break the layout); a unit made only of invisible characters (e.g. a lone zero-width
    joiner) shows their code points, or the span would be empty. Format characters inside a
    unit stay raw so emoji sequences still render as one glyph.
    """
    if s.isprintable():  # the common case; only the space needs a decision
        return s.replace(" ", "⋅") if visible_ws else s
    if all(unicodedata.category(c) in _INVISIBLE and c not in "\n\t" for c in s):
        return core.visible(s)
    out = []
    for c in s:
        if c == "\n":
            out.append("↵\n" if visible_ws else "\n")
        elif c == "\t":
            out.append("→\t" if visible_ws else "\t")
        elif c == " ":
            out.append("⋅" if visible_ws else " ")
        elif unicodedata.category(c) in ("Cc", "Zl", "Zp") or (visible_ws and c.isspace()):
            out.append(core.visible(c))  # \r, NUL, U+2028... (HTML would turn \r into a line break)
        else:
            out.append(c)
    return "".join(out)


def _title(name: str, k: int, u: core.Unit, text: str) -> str:
    lines = [f"{name} · unit {k} · id {u.id if u.id is not None else '–'}"]
    if u.piece is not None and u.piece != u.text:
        lines.append(f"piece: {core.visible(u.piece)}")
    hexs = u.hex if len(u.hex) <= 120 else u.hex[:117] + "…"
    lines.append(f"bytes ({u.byte_end - u.byte_start}): {hexs or '(none)'}")
    lines.append(f"text: “{core.visible(u.text)}”")
    if u.partial:
        lo, hi = u.char_span
        lines.append(f"splits a character: holds part of “{core.visible(text[lo:hi])}” (chars {lo}–{hi})")
    if u.byte_fallback:
        lines.append("byte-fallback piece: the vocabulary has no token for this character")
    if u.special:
        lines.append("added/special token")
    return "\n".join(lines)


def render_units(seg: core.Segmentation, text: str, visible_ws: bool) -> str:
    """The units of one segmentation as escaped, coloured spans."""
    parts = []
    for k, u in enumerate(seg.units):
        cls = ["u", f"c{k % N_COLORS}"]
        if u.partial:
            cls.append("partial")
        if u.byte_fallback:
            cls.append("fb")
        if u.special:
            cls.append("sp")
        if u.text == "":
            cls.append("cont")
            shown = u.hex.replace(" ", "")  # continuation bytes: show them, or the unit is invisible
        else:
            shown = _display(u.text, visible_ws)
            if shown != u.text and all(unicodedata.category(c) in _INVISIBLE for c in u.text):
                cls.append("inv")
        parts.append(
            f'<span class="{" ".join(cls)}" title="{html.escape(_title(seg.name, k, u, text), quote=True)}">'
            f"{html.escape(shown)}</span>"
        )
    return "".join(parts)


def _card(name: str, variants: list[tuple[str, str, core.Segmentation | str]], visible_ws: bool) -> str:
    counts, notes = [], []
    rows = []
    for label, text, seg in variants:
        if isinstance(seg, str):  # an error message for this segmenter
            body = f'<span class="seg-error">{html.escape(seg)}</span>'
        else:
            counts.append(f"{seg.count}")
            body = render_units(seg, text, visible_ws)
            if seg.alignment != "exact" and f"aligned by {seg.alignment}" not in notes:
                notes.append(f"aligned by {seg.alignment}")
            if "max_word_bytes" in seg.extra and not notes:
                notes.append(f"≤ {seg.extra['max_word_bytes']} bytes/word")
            if "threshold" in seg.extra and not notes:
                notes.append(f"threshold {seg.extra['threshold']:g} bits")
                if "entropy_model" in seg.extra:
                    notes.append(f"entropy from {short_name(seg.extra['entropy_model'])}")
        label_html = f'<div class="seg-variant">{label}</div>' if len(variants) > 1 else ""
        rows.append(f'<div class="seg-row">{label_html}<div class="seg-text">{body}</div></div>')
    count = " → ".join(counts) + " units" if counts else ""
    note = "".join(f'<span class="seg-note">{html.escape(n)}</span>' for n in notes)
    return (
        f'<div class="seg-card" data-segmenter="{html.escape(name, quote=True)}">'
        f'<div class="seg-head"><span class="seg-name" title="{html.escape(name, quote=True)}">'
        f"{html.escape(short_name(name))}</span>"
        f'<span class="seg-count">{count}</span>{note}</div>{"".join(rows)}</div>'
    )


def render_html(
    runs: list[tuple[str, str, dict[str, core.Segmentation | str]]], names: Sequence[str], visible_ws: bool
) -> str:
    """All cards: ``runs`` holds (variant label, text, {segmenter: result or error message})."""
    cards = [_card(n, [(label, text, res[n]) for label, text, res in runs], visible_ws) for n in names]
    return LEGEND + f'<div class="seg-grid">{"".join(cards)}</div>'


# --------------------------------------------------------------------------- table and charts

STAT_COLUMNS = [
    "segmenter",
    "variant",
    "units",
    "bytes/unit",
    "units/word",
    "chars",
    "bytes",
    "split-char units",
    "byte-fallback",
    "ms",
]


def stats_frame(runs: list[tuple[str, str, dict[str, core.Segmentation | str]]], names: Sequence[str]) -> pd.DataFrame:
    rows = []
    for n in names:
        for label, text, res in runs:
            seg = res[n]
            if isinstance(seg, str):
                continue
            s = core.stats(seg, text)
            rows.append(
                [
                    short_name(n),
                    label,
                    s.units,
                    s.bytes_per_unit,
                    s.units_per_word,
                    s.chars,
                    s.bytes,
                    s.partial_units,
                    s.byte_fallback_units,
                    round(seg.seconds * 1000, 1),
                ]
            )
    return pd.DataFrame(rows, columns=STAT_COLUMNS)


def stats_figure(df: pd.DataFrame) -> go.Figure:
    """Horizontal grouped bars (clean vs perturbed) of units, bytes per unit and units per word.

    Horizontal, so segmenter names read on one shared axis however many there are.
    """
    metrics = [("units", "units"), ("bytes/unit", "bytes per unit"), ("units/word", "units per word")]
    fig = make_subplots(
        rows=1, cols=3, subplot_titles=[t for _, t in metrics], shared_yaxes=True, horizontal_spacing=0.04
    )
    names = list(dict.fromkeys(df["segmenter"])) if len(df) else []
    for variant in dict.fromkeys(df["variant"]) if len(df) else []:
        part = df[df["variant"] == variant]
        for col, (key, _) in enumerate(metrics, start=1):
            fig.add_trace(
                go.Bar(
                    y=part["segmenter"],
                    x=part[key],
                    orientation="h",
                    name=variant,
                    legendgroup=variant,
                    showlegend=col == 1,
                    marker_color=VARIANT_COLORS.get(variant),
                    texttemplate="%{x:.3~g}",
                    textposition="outside",
                    cliponaxis=False,
                    hovertemplate=f"%{{y}} ({variant})<br>{key}: %{{x}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
    n_variants = max(1, df["variant"].nunique()) if len(df) else 1
    fig.update_layout(
        barmode="group",
        height=110 + 22 * max(1, len(names)) * n_variants,
        margin={"l": 10, "r": 40, "t": 30, "b": 30},
        legend={"orientation": "h", "y": -0.05, "yanchor": "top"},
        bargap=0.25,
    )
    # First segmenter on top, as in the cards and the table.
    fig.update_yaxes(categoryorder="array", categoryarray=names[::-1], automargin=True)
    fig.update_xaxes(rangemode="tozero")
    return fig


def entropy_figure(
    runs: list[tuple[str, str, dict[str, core.Segmentation | str]]], threshold: float
) -> go.Figure | None:
    """Next-byte entropy over the text (one point per byte), the threshold and patch starts."""
    fig = go.Figure()
    ticks: tuple[list[int], list[str]] | None = None
    for label, text, res in runs:
        seg = res.get("entropy-patches")
        if not isinstance(seg, core.Segmentation):
            continue
        ent = seg.extra["entropy"]
        data = text.encode("utf-8")
        # The character each byte belongs to: the x axis reads as the text itself.
        chars = [core.visible(c) for c in text for _ in c.encode("utf-8")]
        first = list(itertools.accumulate((len(c.encode("utf-8")) for c in text[:-1]), initial=0))
        hover = [f"byte {i} = {data[i]:02x} of “{chars[i]}”<br>{e:.2f} bits" for i, e in enumerate(ent)]
        color = VARIANT_COLORS.get(label)
        fig.add_trace(
            go.Scatter(
                x=list(range(len(ent))),
                y=ent,
                mode="lines",
                line={"shape": "hvh", "color": color, "width": 1.6},
                name=f"entropy ({label})",
                hovertext=hover,
                hoverinfo="text",
            )
        )
        starts = [u.byte_start for u in seg.units]
        fig.add_trace(
            go.Scatter(
                x=starts,
                y=[ent[i] for i in starts],
                mode="markers",
                marker={"symbol": "triangle-up", "size": 8, "color": color},
                name=f"patch start ({label})",
                hoverinfo="skip",
            )
        )
        if ticks is None:
            # Label the x axis with the text itself; every k-th character when it would crowd.
            step = max(1, math.ceil(len(text) / 120))
            ticks = (first[::step], [core.visible(c) for c in text[::step]])
    if not fig.data:
        return None
    # The threshold as a legend entry rather than an annotation, which would sit on the line.
    n = max(len(tr.x) for tr in fig.data)
    fig.add_trace(
        go.Scatter(
            x=[-0.5, n - 0.5],
            y=[threshold, threshold],
            mode="lines",
            line={"dash": "dash", "color": "#c92a2a", "width": 1.4},
            name=f"threshold {threshold:g} bits",
            hoverinfo="skip",
        )
    )
    fig.update_xaxes(range=[-0.5, n - 0.5])
    fig.update_layout(
        height=300,
        margin={"l": 50, "r": 20, "t": 40, "b": 40},
        title={
            "text": "Next-byte entropy (bits): a new patch starts where it exceeds the threshold",
            "font": {"size": 13},
        },
        yaxis={"title": "bits", "rangemode": "tozero"},
        legend={"orientation": "h", "y": -0.3},
        hovermode="closest",
    )
    if ticks is not None:
        fig.update_xaxes(
            tickvals=ticks[0], ticktext=ticks[1], tickangle=0, tickfont={"family": "monospace", "size": 10}
        )
    else:
        fig.update_xaxes(title="byte")
    return fig


# --------------------------------------------------------------------------- event


Outputs = tuple[str, pd.DataFrame, go.Figure, Any, dict[str, Any]]


def run_segment(
    text: str,
    segmenters: Sequence[str] | str | None,
    max_word_bytes: float | None,
    threshold: float | None,
    visible_ws: bool,
    perturb_on: bool,
    seed: float | None,
    *,
    config: AppConfig,
) -> Outputs:
    """The view's main event (API name ``segment``); user errors are raised as ``gr.Error``."""
    try:
        return _run(text, segmenters, max_word_bytes, threshold, visible_ws, perturb_on, seed, config)
    except ValueError as e:  # SegmentError, TextInputError, registry errors: all meant for users
        raise as_gr_error(e) from None


def _run(
    text: str,
    segmenters: Sequence[str] | str | None,
    max_word_bytes: float | None,
    threshold: float | None,
    visible_ws: bool,
    perturb_on: bool,
    seed: float | None,
    config: AppConfig,
) -> Outputs:
    request = core.SegmentRequest(text, segmenters, max_word_bytes, threshold, bool(perturb_on), seed)
    result = core.run(request, config)
    for message in result.errors().values():
        gr.Warning(message)
    df = stats_frame(result.runs, result.names)
    ent = entropy_figure(result.runs, result.entropy_threshold)
    return (
        render_html(result.runs, result.names, bool(visible_ws)),
        df,
        stats_figure(df),
        gr.update(value=ent, visible=ent is not None),
        result.to_dict(),
    )


def _default_selection(choices: Sequence[str]) -> list[str]:
    preferred = ["hat-words", "bpe-tiny", "smollm2-135m", "gemma3-270m"]
    picked = [c for c in preferred if c in choices][:3]
    return picked or list(core.DEFAULT_SEGMENTERS)


def _choice_labels(config: AppConfig) -> list[tuple[str, str]]:
    builtin = {"bytes": "bytes (UTF-8)", "hat-words": "hat-words (hat-splitter)", "entropy-patches": "entropy-patches"}
    out = []
    for name in core.available_segmenters(config.models):
        if name in builtin:
            out.append((builtin[name], name))
            continue
        try:
            out.append((model_label(get_spec(name)), name))
        except ValueError:
            out.append((name, name))
    return out


@dataclass
class Inputs:
    """The text, the segmenters and their options (``values()``: in the order `run_segment`
    takes them), and the run button."""

    text: gr.Textbox
    segmenters: gr.CheckboxGroup
    max_word_bytes: gr.Number
    threshold: gr.Slider
    visible_ws: gr.Checkbox
    perturb_on: gr.Checkbox
    seed: gr.Number
    button: gr.Button

    def values(self) -> list[Any]:
        return [getattr(self, f.name) for f in fields(self) if f.name != "button"]


@dataclass
class Results:
    """The unit cards, the statistics table and chart, the entropy plot and the raw JSON
    (``outputs()``: in the order `run_segment` returns them)."""

    cards: gr.HTML
    table: gr.Dataframe
    chart: gr.Plot
    entropy: gr.Plot
    raw: gr.JSON

    def outputs(self) -> list[Any]:
        return [getattr(self, f.name) for f in fields(self)]


def _intro() -> None:
    gr.Markdown(
        "How does each model cut your text? **HAT** keeps whole words (split by the paper's "
        "`hat-splitter`), **BPE** models cut subwords, **bytes** and **entropy patches** (BLT-style, "
        "from the byte model's uncertainty) work below the character level."
    )


def _inputs(config: AppConfig) -> Inputs:
    """The text and its examples, the segmenter choice, the HAT and entropy options, the typos."""
    examples = core.load_examples()
    choices = _choice_labels(config)
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(
                label=f"Text (at most {config.max_text_chars:,} characters)",
                value=examples[0][1] if examples else "The quick brown fox jumps over the lazy dog.",
                lines=4,
                max_lines=12,
                elem_id="segment-text",
            )
            if examples:
                gr.Examples(
                    examples=[[t] for _, t in examples],
                    inputs=[text],
                    example_labels=[label for label, _ in examples],
                    label="Examples",
                )
        with gr.Column(scale=2):
            segmenters = gr.CheckboxGroup(
                choices=choices,
                value=_default_selection([v for _, v in choices]),
                label=f"Segmenters (at most {config.limits.segmenters_per_request})",
                elem_id="segment-segmenters",
            )
            with gr.Row():
                max_word_bytes = gr.Number(
                    value=core.DEFAULT_MAX_WORD_BYTES,
                    precision=0,
                    minimum=1,
                    maximum=core.MAX_WORD_BYTES_LIMIT,
                    label="HAT max word bytes",
                    info="hat_splitter.split_with_limit",
                )
                threshold = gr.Slider(
                    0.0,
                    8.0,
                    value=core.DEFAULT_ENTROPY_THRESHOLD,
                    step=0.05,
                    label="Entropy threshold (bits)",
                    info="entropy-patches",
                )
            with gr.Row():
                visible_ws = gr.Checkbox(label="Visible whitespace (⋅ ↵)", value=False)
                perturb_on = gr.Checkbox(label="Perturb: seeded typos", value=False, elem_id="segment-perturb")
                seed = gr.Number(value=0, precision=0, label="Typo seed", min_width=80, elem_id="segment-seed")
            button = gr.Button("Segment", variant="primary", elem_id="segment-run")
    return Inputs(text, segmenters, max_word_bytes, threshold, visible_ws, perturb_on, seed, button)


def _results() -> Results:
    """The unit cards, the statistics, the entropy plot and the raw JSON."""
    cards = gr.HTML(
        css_template=CSS,
        js_on_load=None,
        elem_id="segment-cards",
        apply_default_css=True,
    )
    table = gr.Dataframe(label="Statistics", interactive=False, wrap=True, elem_id="segment-stats")
    chart = gr.Plot(label="Units per segmenter", elem_id="segment-chart")
    entropy = gr.Plot(label="Next-byte entropy", visible=False, elem_id="segment-entropy")
    with gr.Accordion("Raw result (JSON, as returned by the API)", open=False):
        raw = gr.JSON(elem_id="segment-json")
    return Results(cards, table, chart, entropy, raw)


def _wire(config: AppConfig, i: Inputs, r: Results) -> gr.State:
    """Every event of the tab; returns the trigger a shared link or a lesson's "try it" changes."""

    @user_errors
    def fn(*args: Any) -> Outputs:
        return run_segment(*args, config=config)

    inputs, outputs = i.values(), r.outputs()
    replay = replay_trigger()  # changed by a shared link or a lesson's "try it"
    # Tokenizers and the splitter only (entropy patches: one pass of the small byte model).
    i.button.click(fn, inputs, outputs, api_name="segment", **LIGHT_POOL)
    # Same computation on Enter, on option changes and on a restored link, kept out of the API docs.
    for trigger in (
        i.text.submit,
        i.visible_ws.change,
        i.perturb_on.change,
        i.threshold.release,
        i.max_word_bytes.submit,
        replay.change,
    ):
        trigger(fn, inputs, outputs, api_visibility="private", **LIGHT_POOL)
    return replay


def build_tab(config: AppConfig) -> TabState:
    """Create the token-boundaries components and wire their events (inside a gr.Tab)."""
    _intro()
    i = _inputs(config)
    r = _results()
    replay = _wire(config, i, r)
    names = ["text", "units", "max_word_bytes", "threshold", "visible_whitespace", "typos", "seed"]
    return TabState(KEY, dict(zip(names, i.values(), strict=True)), replay)
