"""Robustness tab: perturb a text, and see how much worse each model reads it.

The analysis lives in :mod:`playground.robustness` (and :mod:`playground.perturb`,
:mod:`playground.nextword`); this module turns its results into escaped HTML, tables and plotly
figures, and wires the events:

- "Perturb and compare" (API name ``robustness``): the two texts with the changes marked, bits per
  byte clean vs perturbed per model, and the aligned per-character heat strips; then, chained,
  next-word accuracy (API name ``robustness_next_word``), the slower part.
- "Run sweep" (API name ``robustness_sweep``): the rise in bits per byte over rates 0-30%, drawn
  point by point with a progress bar; "Stop" cancels it (between points).
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from models.registry import get_spec
from playground import perturb as P
from playground import robustness as core
from playground.config import Limits
from playground.segment import VISIBLE_WHITESPACE, visible
from playground.ui.common import (
    MODEL_POOL,
    announce_loading,
    as_gr_error,
    model_selector,
    on_gpu,
    short_name,
    user_errors,
)
from playground.ui.links import TabState, replay_trigger

if TYPE_CHECKING:
    from playground.config import AppConfig

log = logging.getLogger(__name__)

KEY = "robustness"  # the tab's name in links
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "assets" / "examples"
DEFAULT_TEXT = (
    "The quick brown fox jumps over the lazy dog. Hierarchical models read bytes, build words, "
    "and predict the next word. Subword tokenizers cut rare words into several pieces, so a single "
    "typo can change how a whole word is read."
)
SWEEP_MAX_RATE = Limits().sweep_max_rate  # the default; an app's own bounds are in config.limits
HEAT_WIDTH = 96  # columns per heat-strip line
HEAT_MAX_BITS = 16.0  # colour scale of the heat strips: 0 .. 16 bits per character (capped)
HEAT_LEVELS = 10
FAMILY_COLORS = {"hat": "#e8590c", "bpe": "#1c7ed6", "byte": "#2f9e44"}  # as in the report's plots
MODEL_COLORS = ["#ae3ec9", "#f08c00", "#0c8599", "#c2255c", "#5c940d", "#862e9c"]

# Scoped to each HTML component by gradio (css_template).
CSS = """
.rb-legend { font-size: 0.85em; opacity: 0.85; margin: 2px 0 8px 0; }
.rb-texts { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.rb-panel { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px; min-width: 0; }
.rb-panel h4 { margin: 0 0 6px 0; font-size: 0.9em; opacity: 0.8; }
.rb-text { white-space: pre-wrap; overflow-wrap: anywhere; font-family: var(--font-mono); font-size: 14px;
  line-height: 1.7; max-height: 18em; overflow-y: auto; }
.rb-del { background: #ffc9c9; color: #111; border-radius: 3px; text-decoration: line-through; }
.rb-ins { background: #b2f2bb; color: #111; border-radius: 3px; }
.rb-ins.empty, .rb-del.empty { padding: 0 2px; text-decoration: none; }
.rb-heat { font-family: var(--font-mono); font-size: 13px; overflow-x: auto; }
.rb-chunk { margin: 0 0 10px 0; }
.rb-row { display: flex; align-items: stretch; white-space: pre; line-height: 1.45; }
.rb-label { flex: 0 0 11em; max-width: 11em; overflow: hidden; text-overflow: ellipsis; font-size: 0.8em;
  opacity: 0.8; padding-right: 6px; text-align: right; align-self: center; }
.rb-row.pert { margin-bottom: 3px; }
.rb-c { display: inline-block; width: 1.05ch; min-width: 1.05ch; text-align: center; color: #111; overflow: hidden; }
.rb-c.ws { color: #868e96; }
.rb-c.gap { background: repeating-linear-gradient(45deg, #dee2e6, #dee2e6 2px, #f8f9fa 2px, #f8f9fa 4px); }
.rb-c.chg { outline: 2px solid #5f3dc4; outline-offset: -2px; }
.h0 { background: #fff9db; } .h1 { background: #fff3bf; } .h2 { background: #ffec99; } .h3 { background: #ffe066; }
.h4 { background: #ffd43b; } .h5 { background: #fcc419; } .h6 { background: #ffa94d; } .h7 { background: #ff8787; }
.h8 { background: #fa5252; } .h9 { background: #e03131; color: #fff; }
.rb-scale { display: inline-flex; gap: 0; vertical-align: middle; margin: 0 4px; }
.rb-scale span { display: inline-block; width: 1.6em; height: 1em; }
"""


# --------------------------------------------------------------------------- HTML


def _esc(s: str) -> str:
    return html.escape(s, quote=True)


def render_texts(result: P.PerturbResult) -> str:
    """Clean and perturbed text side by side; each change marked, with `before -> after` on hover."""
    clean, pert = [], []
    for seg in result.segments():
        a = result.original[seg.start : seg.end]
        b = result.text[seg.new_start : seg.new_end]
        if not seg.changed:
            clean.append(_esc(a))
            pert.append(_esc(b))
            continue
        change = next(c for c in result.changes if c.start == seg.start and c.new_start == seg.new_start)
        title = _esc(f"{change.op}: “{visible(a)}” → “{visible(b)}”")
        clean.append(f'<span class="rb-del{" empty" if not a else ""}" title="{title}">{_esc(a) if a else "∅"}</span>')
        pert.append(
            f'<span class="rb-ins{" empty" if not b else ""}" title="{title}">{_esc(_show_space(b)) if b else "∅"}</span>'
        )
    summary = (
        f"{result.n_touched} of {result.n_words} words touched ({result.touched_share:.1%}) · "
        f"kind {_esc(result.kind)} · rate {result.rate:.0%} · seed {result.seed}"
    )
    if result.n_touched < P.n_to_touch(result.rate, result.n_words):
        summary += f" · only {result.n_eligible} words could be changed this way"
    return (
        f'<div class="rb-legend">{summary}. Red: replaced or removed in the clean text; green: what the '
        "perturbed text has instead (hover for details).</div>"
        '<div class="rb-texts">'
        f'<div class="rb-panel" data-variant="clean"><h4>Clean</h4><div class="rb-text">{"".join(clean)}</div></div>'
        f'<div class="rb-panel" data-variant="perturbed"><h4>Perturbed</h4><div class="rb-text">{"".join(pert)}</div></div>'
        "</div>"
    )


def _show_space(s: str) -> str:
    """An inserted space would be invisible: show it as the views show a space."""
    return s.replace(" ", VISIBLE_WHITESPACE[" "]) if s.strip() == "" else s


def _level(bits: float) -> int:
    if not math.isfinite(bits):
        return HEAT_LEVELS - 1
    return int(min(HEAT_LEVELS - 1, max(0.0, bits) / HEAT_MAX_BITS * HEAT_LEVELS))


def _cell(ch: str | None, bits: float | None, changed: bool) -> str:
    if ch is None:
        return f'<span class="rb-c gap{" chg" if changed else ""}" title="(no character here)"> </span>'
    shown = VISIBLE_WHITESPACE.get(ch, "␣" if ch.isspace() else ch)  # one cell per character
    cls = ["rb-c", f"h{_level(bits or 0.0)}"]
    if ch.isspace():
        cls.append("ws")
    if changed:
        cls.append("chg")
    title = f"{visible(ch)} U+{ord(ch):04X} · {bits:.2f} bits" if bits is not None else visible(ch)
    return f'<span class="{" ".join(cls)}" title="{_esc(title)}">{_esc(shown)}</span>'


def _chunks(columns: Sequence[core.Column], clean: str, width: int) -> list[tuple[int, int]]:
    """Cut the columns into lines of at most `width`: after each clean newline, else after a space."""
    out, start, last_space = [], 0, -1
    for i, col in enumerate(columns):
        ch = clean[col.clean] if col.clean is not None else ""
        if ch == "\n":
            out.append((start, i + 1))
            start, last_space = i + 1, -1
            continue
        if ch == " " and not col.changed:
            last_space = i
        if i + 1 - start >= width:
            cut = last_space + 1 if last_space - start >= width * 3 // 4 else i + 1
            out.append((start, cut))
            start, last_space = cut, -1
    if start < len(columns):
        out.append((start, len(columns)))
    return out


def render_heat(result: core.RobustnessResult, width: int = HEAT_WIDTH) -> str:
    """Per-character surprisal strips: for each model, the clean row above the perturbed row.

    Both rows of every model share the same columns (``core.aligned_columns``), so a character
    and its perturbed counterpart sit on top of each other; columns of a change are outlined and
    characters missing on one side are hatched.
    """
    p = result.perturbation
    columns = core.aligned_columns(p)
    scale = "".join(f'<span class="h{i}"></span>' for i in range(HEAT_LEVELS))
    legend = (
        f'<div class="rb-legend">Surprisal of each character in bits (the sum over its UTF-8 bytes; token '
        f'models spread a token\'s bits evenly over its bytes): 0 <span class="rb-scale">{scale}</span> '
        f"≥{HEAT_MAX_BITS:g}. For each model the clean text is above the perturbed one; outlined columns "
        "are changed, hatched cells have no character on that side.</div>"
    )
    parts = [legend, '<div class="rb-heat">']
    for lo, hi in _chunks(columns, p.original, width):
        parts.append('<div class="rb-chunk">')
        for m in result.models:
            for variant, text, bits, key in (
                ("clean", p.original, m.clean_char_bits, "clean"),
                ("perturbed", p.text, m.perturbed_char_bits, "perturbed"),
            ):
                cells = []
                for col in columns[lo:hi]:
                    idx = getattr(col, key)
                    cells.append(
                        _cell(
                            text[idx] if idx is not None else None,
                            float(bits[idx]) if idx is not None else None,
                            col.changed,
                        )
                    )
                label = short_name(m.name) if variant == "clean" else "↳ perturbed"
                parts.append(
                    f'<div class="rb-row {"pert" if variant == "perturbed" else "clean"}" data-model="{_esc(m.name)}" '
                    f'data-variant="{variant}"><span class="rb-label" title="{_esc(f"{m.name} · {variant}")}">'
                    f"{_esc(label)}</span>{''.join(cells)}</div>"
                )
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


# --------------------------------------------------------------------------- tables and figures


def _pct(x: float | None, signed: bool = True) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x:+.1%}" if signed else f"{x:.1%}"


def score_frame(result: core.RobustnessResult) -> pd.DataFrame:
    rows = []
    for m in result.models:
        rows.append(
            {
                "model": m.name,
                "family": m.family,
                "bits/byte clean": f"{m.bpb_clean:.4f}",
                "bits/byte perturbed": f"{m.bpb_perturbed:.4f}",
                "relative rise": _pct(m.rise),
                "units clean": m.units_clean,
                "units perturbed": m.units_perturbed,
                "units +": m.units_perturbed - m.units_clean,
            }
        )
    return pd.DataFrame(rows)


def next_word_frame(result: core.RobustnessResult) -> pd.DataFrame:
    rows = []
    for m in result.models:
        if m.next_clean is None or m.next_perturbed is None:
            continue
        s = m.summary()["next_word"]
        rows.append(
            {
                "model": m.name,
                "positions": s["positions"],
                "clean": _pct(s["accuracy_clean"], signed=False),
                "perturbed": _pct(s["accuracy_perturbed"], signed=False),
                "positions after a change": s["near_positions"],
                "after a change, clean": _pct(s["near_accuracy_clean"], signed=False),
                "after a change, perturbed": _pct(s["near_accuracy_perturbed"], signed=False),
            }
        )
    return pd.DataFrame(rows)


def _model_colors(names: Sequence[str]) -> dict[str, str]:
    """The first model of each family gets the family's colour, the others the next spare colour."""
    out: dict[str, str] = {}
    spare = iter(MODEL_COLORS * (len(names) // len(MODEL_COLORS) + 1))
    used: set[str] = set()
    for name in names:
        try:
            color = FAMILY_COLORS.get(get_spec(name).family)
        except ValueError:
            color = None
        if color is None or color in used:
            color = next(spare)
        used.add(color)
        out[name] = color
    return out


def sweep_figure(result: core.SweepResult | None, names: Sequence[str] = ()) -> go.Figure:
    """Relative rise in bits per byte against the rate, a line per model."""
    fig = go.Figure()
    if result is not None:
        colors = _model_colors(result.models)
        for name in result.models:
            pts = result.series(name)
            fig.add_trace(
                go.Scatter(
                    x=[p.rate * 100 for p in pts],
                    y=[p.rise * 100 if math.isfinite(p.rise) else None for p in pts],
                    mode="lines+markers",
                    name=name,
                    line={"color": colors[name], "width": 2.5},
                    customdata=[[p.bpb_clean, p.bpb_perturbed, p.touched_share * 100] for p in pts],
                    hovertemplate=(
                        "%{fullData.name}<br>rate %{x:.0f}% (touched %{customdata[2]:.1f}%)<br>"
                        "bits/byte %{customdata[0]:.4f} → %{customdata[1]:.4f}<br>rise %{y:+.2f}%<extra></extra>"
                    ),
                )
            )
    title = "Rise in bits per byte" + (f" · {result.kind}, seed {result.seed}" if result is not None else "")
    if result is not None and result.cancelled:
        title += " (stopped)"
    fig.update_layout(
        title={"text": title},
        xaxis={"title": {"text": "rate (% of words perturbed)"}, "ticksuffix": "%", "rangemode": "tozero"},
        yaxis={"title": {"text": "relative rise in bits per byte"}, "ticksuffix": "%", "zeroline": True},
        height=380,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        legend={"orientation": "h", "y": -0.2},
        template="plotly_white",
    )
    return fig


# --------------------------------------------------------------------------- events


def run_compare(
    text: str, selected: Sequence[str] | str | None, kind: str, rate: float, seed: float | None, *, config: AppConfig
) -> tuple[str, pd.DataFrame, str, dict[str, Any]]:
    """The main event (API name ``robustness``): texts, scores and heat strips (no next word)."""
    try:
        result = core.run(core.RobustnessRequest(text, selected, kind, rate, seed), config)
    except ValueError as err:
        raise as_gr_error(err) from None
    payload = result.to_dict()
    return render_texts(result.perturbation), score_frame(result), render_heat(result), payload


def run_next_word(
    text: str, selected: Sequence[str] | str | None, kind: str, rate: float, seed: float | None, *, config: AppConfig
) -> pd.DataFrame:
    """Next-word accuracy, clean and perturbed (API name ``robustness_next_word``)."""
    try:
        result = core.run(core.RobustnessRequest(text, selected, kind, rate, seed, next_words=True), config)
    except ValueError as err:
        raise as_gr_error(err) from None
    return next_word_frame(result)


def run_sweep(
    text: str,
    selected: Sequence[str] | str | None,
    kind: str,
    seed: float | None,
    step: float,
    *,
    config: AppConfig,
    progress: gr.Progress | None = None,
) -> Iterator[tuple[go.Figure, str]]:
    """The sweep (API name ``robustness_sweep``): yields the chart after every (model, rate) point.

    Yielding after each point is what makes "Stop" work: gradio cancels a generator between yields.
    """

    def on_point(done: int, total: int, label: str) -> None:
        if progress is not None:
            progress((done, total), desc=label)

    points = core.run_sweep(core.SweepRequest(text, selected, kind, seed, step), config, on_point=on_point)
    acc, total = None, 0
    while True:
        try:
            acc = next(points)
        except StopIteration:
            break
        except ValueError as err:
            raise as_gr_error(err) from None
        total = acc.total
        yield sweep_figure(acc.result), f"{acc.done} of {total} points · {kind}, seed {acc.result.seed}"
    if acc is None:
        return
    stats = f"cache: {core.CACHE.hits} hits, {core.CACHE.misses} misses"
    yield sweep_figure(acc.result), f"Done: {total} points · {kind}, seed {acc.result.seed} · {stats}"


# --------------------------------------------------------------------------- layout


def _examples() -> list[tuple[str, str]]:
    out = []
    for f in sorted(EXAMPLES_DIR.glob("*.txt")):
        label = f.stem.split("-", 1)[-1].replace("-", " ")
        out.append((label, f.read_text(encoding="utf-8")))
    return out


def _default_models(config: AppConfig) -> list[str]:
    """HAT and its matched baselines first; at most four models so the view stays fast."""
    order = {"hat": 0, "bpe": 1, "byte": 2}
    names = list(config.models)
    try:
        names.sort(key=lambda n: (order.get(get_spec(n).family, 3), names.index(n)))
    except ValueError:
        pass
    return names[:4]


@dataclass
class Inputs:
    """The text, the models, the perturbation, its rate and seed (``values()``: in the order the
    events take them), and the run button."""

    text: gr.Textbox
    models: gr.Dropdown
    kind: gr.Dropdown
    rate: gr.Slider
    seed: gr.Number
    button: gr.Button

    def values(self) -> list[Any]:
        return [self.text, self.models, self.kind, self.rate, self.seed]


@dataclass
class Results:
    """Both texts, the scores, the heat strips, next-word accuracy and the raw JSON."""

    texts_html: gr.HTML
    scores: gr.Dataframe
    heat: gr.HTML
    next_words: gr.Dataframe
    payload: gr.JSON

    def comparison(self) -> list[Any]:
        """What the comparison event returns, in its order."""
        return [self.texts_html, self.scores, self.heat, self.payload]


@dataclass
class Sweep:
    """The sweep's step, its run and stop buttons, status and chart."""

    step: gr.Dropdown
    run: gr.Button
    stop: gr.Button
    status: gr.Markdown
    chart: gr.Plot


def _intro() -> None:
    gr.Markdown(
        "How much does a typo hurt? Perturb a share of the words and compare each model's **bits per "
        "byte** on the clean and the perturbed text. HAT reads bytes into words, so a typo changes one "
        "word vector; a subword tokenizer may cut the misspelled word into unfamiliar pieces."
    )


def _inputs(config: AppConfig) -> Inputs:
    """The text and its examples, the models, the perturbation, its rate and seed."""
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(
                label=f"Text (at most {config.max_text_chars:,} characters)",
                value=DEFAULT_TEXT,
                lines=5,
                max_lines=14,
                elem_id="robustness-text",
            )
            examples = _examples()
            if examples:
                gr.Examples(
                    examples=[[t] for _, t in examples],
                    inputs=[text],
                    example_labels=[label for label, _ in examples],
                    label="Examples",
                )
        with gr.Column(scale=2):
            models = model_selector(
                config,
                value=_default_models(config)[: config.limits.models_per_request],
                label=f"Models (at most {config.limits.models_per_request})",
                elem_id="robustness-models",
            )
            kind = gr.Dropdown(
                choices=P.kind_choices(),
                value="typo",
                label="Perturbation",
                info="what happens to each touched word",
                elem_id="robustness-kind",
            )
            with gr.Row():
                rate = gr.Slider(
                    0.0, 1.0, value=0.1, step=0.01, label="Rate (share of words)", elem_id="robustness-rate"
                )
                seed = gr.Number(value=0, precision=0, label="Seed", min_width=80, elem_id="robustness-seed")
            button = gr.Button("Perturb and compare", variant="primary", elem_id="robustness-run")
    return Inputs(text, models, kind, rate, seed, button)


def _results() -> Results:
    """Both texts, the scores, the heat strips, next-word accuracy and the raw JSON."""
    texts_html = gr.HTML(css_template=CSS, js_on_load=None, elem_id="robustness-texts")
    scores = gr.Dataframe(
        label="Bits per byte, clean vs perturbed", interactive=False, wrap=True, elem_id="robustness-scores"
    )
    heat = gr.HTML(css_template=CSS, js_on_load=None, elem_id="robustness-heat")
    next_words = gr.Dataframe(
        label="Next-word accuracy: share of word positions where greedy decoding still gives the clean next word",
        interactive=False,
        wrap=True,
        elem_id="robustness-next-word",
    )
    gr.Markdown(
        "<small>Next word: for every word after the first, the model reads the perturbed text up to the end "
        "of the previous word and decodes greedily; a hit when it writes the clean separator and word (e.g. "
        "“ fox”) and then ends the word. “After a change”: positions with a touched word among the previous "
        "three. Exact, computed by teacher forcing (see <code>playground/nextword.py</code>).</small>"
    )
    with gr.Accordion("Raw results (JSON)", open=False):
        payload = gr.JSON(elem_id="robustness-json")
    return Results(texts_html, scores, heat, next_words, payload)


def _sweep_panel() -> Sweep:
    """The sweep's step, its run and stop buttons, status and chart."""
    gr.Markdown("### Sweep: rate 0–30%")
    with gr.Row():
        step = gr.Dropdown(
            choices=[("5% steps", 0.05), ("2.5% steps", 0.025), ("10% steps", 0.1)],
            value=0.05,
            label="Rates",
            scale=1,
            elem_id="robustness-sweep-step",
        )
        sweep_button = gr.Button("Run sweep", variant="secondary", scale=1, elem_id="robustness-sweep-run")
        stop_button = gr.Button("Stop", variant="stop", scale=1, elem_id="robustness-sweep-stop")
    sweep_status = gr.Markdown("", elem_id="robustness-sweep-status")
    chart = gr.Plot(label="Sweep", elem_id="robustness-sweep-chart")
    return Sweep(step, sweep_button, stop_button, sweep_status, chart)


def _wire(config: AppConfig, i: Inputs, r: Results, w: Sweep) -> gr.State:
    """Every event of the tab; returns the trigger a shared link or a lesson's "try it" changes."""
    inputs = i.values()

    @user_errors
    def compare(
        text: str,
        selected: list[str],
        kind: str,
        rate: float,
        seed: float | None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008  (gradio's API)
    ) -> tuple[str, pd.DataFrame, str, dict[str, Any]]:
        announce_loading(selected or [], progress)
        return run_compare(text, selected, kind, rate, seed, config=config)

    @user_errors
    def next_word(text: str, selected: list[str], kind: str, rate: float, seed: float | None) -> pd.DataFrame:
        return run_next_word(text, selected, kind, rate, seed, config=config)

    @user_errors
    def sweep(
        text: str,
        selected: list[str],
        kind: str,
        seed: float | None,
        step: float,
        progress: gr.Progress = gr.Progress(),  # noqa: B008  (gradio's API)
    ) -> Iterator[tuple[go.Figure, str]]:
        announce_loading(selected or [], progress)
        yield from run_sweep(text, selected, kind, seed, step, config=config, progress=progress)

    event = i.button.click(
        on_gpu(compare),
        inputs=inputs,
        outputs=r.comparison(),
        api_name="robustness",
        **MODEL_POOL,
    )
    event.success(
        on_gpu(next_word), inputs=inputs, outputs=[r.next_words], api_name="robustness_next_word", **MODEL_POOL
    )
    replay = replay_trigger()  # changed by a shared link or a lesson's "try it"
    replayed = replay.change(
        on_gpu(compare),
        inputs=inputs,
        outputs=r.comparison(),
        api_visibility="private",
        **MODEL_POOL,
    )
    replayed.success(on_gpu(next_word), inputs=inputs, outputs=[r.next_words], api_visibility="private", **MODEL_POOL)
    sweep_event = w.run.click(
        on_gpu(sweep),
        inputs=[i.text, i.models, i.kind, i.seed, w.step],
        outputs=[w.chart, w.status],
        api_name="robustness_sweep",
        **MODEL_POOL,
    )
    w.stop.click(lambda: "Stopped.", outputs=[w.status], cancels=[sweep_event], api_name=False)
    return replay


def build_tab(config: AppConfig) -> TabState:
    """Create the robustness components and wire their events (inside a gr.Tab)."""
    _intro()
    i = _inputs(config)
    r = _results()
    w = _sweep_panel()
    replay = _wire(config, i, r, w)
    shared = dict(zip(["text", "models", "perturbation", "rate", "seed"], i.values(), strict=True))
    return TabState(KEY, shared, replay)
