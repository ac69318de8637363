"""Attention-maps tab: where each layer and head looks, two models side by side.

The analysis lives in :mod:`playground.attention`; this module turns its results into plotly
figures, head-grid thumbnails (a `gr.Gallery`, because `gr.Plot` has no click event in gradio 6),
a clickable text for picking the query unit, and export files.
"""

from __future__ import annotations

import functools
import html
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.colors import diverging, sequential
from plotly.colors import hex_to_rgb as _hex_to_rgb
from plotly.subplots import make_subplots

from models.registry import get_spec
from playground import attention as core
from playground import links
from playground.ui.common import (
    MODEL_POOL,
    announce_loading,
    check_text,
    model_choices,
    on_gpu,
    short_name,
    user_errors,
)
from playground.ui.links import TabState, replay_trigger

if TYPE_CHECKING:
    from playground.config import AppConfig

log = logging.getLogger(__name__)

KEY = "attention"  # the tab's name in links
MAX_LINK_LAYERS = 256  # a link's layer or head index is checked against the models after it runs
NONE = ""  # model B: nothing
LEVELS = core.VIEW_LEVELS
AGG_CHOICES = [
    ("mean of heads", "mean"),
    ("max of heads", "max"),
    ("one head", "head"),
    ("rollout (mean heads, layers ≤ L)", "rollout"),
]
AXES_CHOICES = [("model units", "units"), ("characters (compare models)", "chars")]
SCALE_CHOICES = [("√ (small weights visible)", "sqrt"), ("linear", "linear")]
ALL_TICKS = 72  # label every unit up to this many per axis (divided by the panels); plotly thins above
MAX_BOUNDARY_LINES = 300
THUMB_PX = 112
GRID_COLUMNS = 5  # gradio's gallery cells are at least 100 px wide
FIG_HEIGHTS = {1: 620, 2: 560, 3: 460}  # by number of panels, so square maps fill the width

_VIRIDIS = [_hex_to_rgb(c) for c in sequential.Viridis]
_RDBU = list(reversed(diverging.RdBu))  # blue = negative, red = positive


# ------------------------------------------------------------------------------ colour scales


def _lerp_colors(colors: Sequence[tuple[int, int, int]], t: np.ndarray) -> np.ndarray:
    """Colours at positions t ∈ [0, 1] along a list of RGB stops (piecewise linear)."""
    stops = np.asarray(colors, dtype=np.float64)
    x = np.clip(t, 0, 1) * (len(stops) - 1)
    lo = np.floor(x).astype(int).clip(0, len(stops) - 2)
    frac = (x - lo)[..., None]
    return stops[lo] * (1 - frac) + stops[lo + 1] * frac


def colorscale(scale: str, diverging_: bool = False, steps: int = 24) -> list[list[Any]]:
    """A plotly colorscale; with "sqrt", colour follows √weight so small weights stay visible
    while the hover and the colour bar keep the true weights."""
    palette = _RDBU if diverging_ else sequential.Viridis
    rgb = [_hex_to_rgb(c) if c.startswith("#") else tuple(int(v) for v in c[4:-1].split(",")) for c in palette]
    out = []
    for i in range(steps + 1):
        t = i / steps  # colour position
        if diverging_:
            s = 2 * t - 1
            pos = 0.5 + 0.5 * np.sign(s) * (s * s if scale == "sqrt" else abs(s))
        else:
            pos = t * t if scale == "sqrt" else t
        r, g, b = _lerp_colors(rgb, np.array(t))
        out.append([float(pos), f"rgb({r:.0f},{g:.0f},{b:.0f})"])
    return out


def thumbnail(matrix: np.ndarray, scale: str, px: int = THUMB_PX) -> Image.Image:
    """A small viridis image of one head (normalised by its own maximum)."""
    m = np.asarray(matrix, dtype=np.float64)
    top = float(m.max()) if m.size else 0.0
    t = m / top if top > 0 else m
    if scale == "sqrt":
        t = np.sqrt(t)
    rgb = _lerp_colors(_VIRIDIS, t).astype(np.uint8)
    image = Image.fromarray(rgb, "RGB")
    n = max(m.shape)
    if n and n < px:
        image = image.resize((px - px % n, px - px % n), Image.Resampling.NEAREST)
    return image


# ------------------------------------------------------------------------------------ figures


def _categories(labels: Sequence[str], bin_size: int) -> list[str]:
    """Unique axis categories: position (or range when binned) and the unit's label."""
    out = []
    for i, label in enumerate(labels):
        pos = f"{i * bin_size}–{(i + 1) * bin_size - 1}" if bin_size > 1 else str(i)
        out.append(f"{pos}: {core.shorten(label, 24)}")
    return out


def _axis_ticks(labels: Sequence[str], categories: Sequence[str], panels: int = 1) -> dict[str, Any]:
    """Every unit's label when they fit the panel, else every k-th one (the hover names every cell)."""
    fit = max(ALL_TICKS // max(panels, 1), 8)
    stride = max(1, -(-len(labels) // fit))
    picked = range(0, len(labels), stride)
    return {
        "tickmode": "array",
        "tickvals": [categories[i] for i in picked],
        "ticktext": [core.shorten(labels[i], 10) for i in picked],
    }


def panel_title(model: str, description: str) -> str:
    return f"<b>{html.escape(short_name(model))}</b><br>{html.escape(description)}"


def _boundary_shapes(bounds: Sequence[float], n: int, xref: str, yref: str, rows: bool = True) -> list[dict[str, Any]]:
    if not bounds or len(bounds) > MAX_BOUNDARY_LINES:
        return []
    dense = len(bounds) > 20  # fainter lines when words are many, so the weights stay readable
    style = {"color": f"rgba(255,255,255,{0.3 if dense else 0.55})", "width": 0.6 if dense else 1, "dash": "dot"}
    shapes = []
    for b in bounds:
        x = b - 0.5
        shapes.append(
            {"type": "line", "xref": xref, "yref": f"{yref} domain", "x0": x, "x1": x, "y0": 0, "y1": 1, "line": style}
        )
        if rows:
            shapes.append(
                {
                    "type": "line",
                    "yref": yref,
                    "xref": f"{xref} domain",
                    "y0": x,
                    "y1": x,
                    "x0": 0,
                    "x1": 1,
                    "line": style,
                }
            )
    return shapes


def heatmap_figure(maps: Sequence[core.Heatmap], diff: core.Heatmap | None = None, scale: str = "sqrt") -> go.Figure:
    """The models' heatmaps side by side (shared colour bar), then A − B on character axes."""
    panels = [*maps, *([diff] if diff is not None else [])]
    fig = make_subplots(
        rows=1,
        cols=len(panels),
        subplot_titles=[
            panel_title("A − B", "difference") if p is diff else panel_title(p.model, p.description) for p in panels
        ],
        horizontal_spacing=0.1 if len(panels) > 2 else 0.08,
    )
    top = max([float(np.nanmax(m.matrix)) for m in maps if m.matrix.size] + [1e-6])
    shapes: list[dict[str, Any]] = []
    for i, panel in enumerate(panels, start=1):
        is_diff = diff is not None and panel is diff
        cats = _categories(panel.labels, panel.bin_size)
        fig.add_trace(
            go.Heatmap(
                z=panel.matrix,
                x=cats,
                y=cats,
                coloraxis="coloraxis2" if is_diff else "coloraxis",
                hovertemplate="query %{y}<br>key %{x}<br>"
                + ("A − B" if is_diff else "weight")
                + " %{z:.4f}<extra></extra>",
                hoverongaps=False,
            ),
            row=1,
            col=i,
        )
        suffix = "" if i == 1 else str(i)
        ticks = _axis_ticks(panel.labels, cats, len(panels))
        fig.update_layout(
            {
                f"xaxis{suffix}": {
                    "type": "category",
                    "tickangle": -90,
                    "tickfont": {"size": 10},
                    "constrain": "domain",
                    **ticks,
                },
                f"yaxis{suffix}": {
                    "type": "category",
                    "autorange": "reversed",
                    "tickfont": {"size": 10},
                    "scaleanchor": f"x{suffix}",
                    "constrain": "domain",
                    **ticks,
                },
            }
        )
        shapes += _boundary_shapes(panel.boundaries, len(cats), f"x{suffix}", f"y{suffix}")
    # The weight colour bar goes right of the last model panel, the A − B bar at the far right.
    weight_bar_x = 1.0 if diff is None else fig.layout[f"xaxis{len(maps)}"].domain[1] + 0.005
    layout: dict[str, Any] = {
        "height": FIG_HEIGHTS.get(len(panels), 470),
        "margin": {"l": 80, "r": 30, "t": 60, "b": 90},
        "coloraxis": {
            "colorscale": colorscale(scale),
            "cmin": 0.0,
            "cmax": top,
            "colorbar": {"title": {"text": "weight"}, "x": weight_bar_x, "len": 0.8, "thickness": 12},
        },
        "shapes": shapes,
        "font": {"size": 11},
    }
    if diff is not None:
        span = max(float(np.abs(diff.matrix).max()) if diff.matrix.size else 0.0, 1e-6)
        layout["coloraxis2"] = {
            "colorscale": colorscale(scale, diverging_=True),
            "cmin": -span,
            "cmax": span,
            "colorbar": {"title": {"text": "A − B"}, "x": 1.0, "len": 0.8, "thickness": 12},
        }
    fig.update_layout(layout)
    fig.update_annotations(font_size=12)
    return fig


def profile_figure(profiles: Sequence[core.Profile], scale: str = "sqrt") -> go.Figure:
    """For each model, a strip per layer: what the query attends to."""
    heights = [len(p.matrix) for p in profiles]
    row_px = 22 if max(heights) <= 12 else 14  # pixels per layer strip
    fig = make_subplots(
        rows=len(profiles),
        cols=1,
        subplot_titles=[f"<b>{html.escape(short_name(p.model))}</b> · {html.escape(p.description)}" for p in profiles],
        row_heights=heights,
        vertical_spacing=min(0.25, 90 / max(sum(row_px * h + 90 for h in heights), 1)),
    )
    top = max([float(p.matrix.max()) for p in profiles if p.matrix.size] + [1e-6])
    shapes: list[dict[str, Any]] = []
    for i, p in enumerate(profiles, start=1):
        cats = _categories(p.labels, p.bin_size)
        layers = [f"layer {k}" for k in range(len(p.matrix))]
        fig.add_trace(
            go.Heatmap(
                z=p.matrix,
                x=cats,
                y=layers,
                coloraxis="coloraxis",
                hovertemplate=f"{html.escape(p.query)} → %{{x}}<br>%{{y}}<br>weight %{{z:.4f}}<extra></extra>",
            ),
            row=i,
            col=1,
        )
        suffix = "" if i == 1 else str(i)
        fig.update_layout(
            {
                f"xaxis{suffix}": {
                    "type": "category",
                    "tickangle": -90,
                    "tickfont": {"size": 10},
                    **_axis_ticks(p.labels, cats),
                },
                f"yaxis{suffix}": {"type": "category", "autorange": "reversed", "tickfont": {"size": 10}},
            }
        )
        shapes += _boundary_shapes(p.boundaries, len(cats), f"x{suffix}", f"y{suffix}", rows=False)
    fig.update_layout(
        height=int(sum(row_px * h + 150 for h in heights)),
        margin={"l": 70, "r": 30, "t": 40, "b": 40},
        coloraxis={
            "colorscale": colorscale(scale),
            "cmin": 0.0,
            "cmax": top,
            "colorbar": {"title": {"text": "weight"}, "thickness": 12},
        },
        shapes=shapes,
        font={"size": 11},
    )
    fig.update_annotations(font_size=12)
    return fig


# ------------------------------------------------------------------------------------ the view


def _note(results: Sequence[core.AttentionResult], maps: Sequence[core.Heatmap], level: str, axes: str) -> str:
    lines = []
    for r, m in zip(results, maps, strict=True):
        lvl = r.level(level)
        sink = ""
        if m.special is not None and m.special.size:
            sink = f" Weight on units without characters ([BOS], [CTX]…), spread back over the characters: {m.special.mean():.0%} on average."
        lines.append(
            f"**{html.escape(r.model)}** · {lvl.name}: {lvl.n_units:,} units, {lvl.n_layers} layers × {lvl.n_heads} heads "
            f"(computed in {r.seconds:.2f} s). {lvl.note}{sink}"
        )
        lines += [f"⚠ {n}" for n in m.notes]
    if any(r.word_spans for r in results):
        lines.append("Dotted lines: HAT word boundaries.")
    if len(results) == 2 and axes == "units":
        lines.append(
            "The two models cut the text differently: switch the axes to **characters** for a difference map."
        )
    return "\n\n".join(f"<small>{line}</small>" for line in lines)


def _query_text(result: core.AttentionResult, level: str, char: int) -> list[tuple[str, str | None]]:
    """The text cut into the first model's units (of the shown level), the query unit marked."""
    lvl = result.level(level)
    q = core.query_index(lvl, char)
    spans: list[tuple[str, str | None]] = []
    seen = -1
    for i, u in enumerate(lvl.units):
        if u.special or u.char_end <= seen:
            continue
        start = max(u.char_start, seen)
        spans.append((result.text[start : u.char_end], "query" if i == q else "unit"))
        seen = u.char_end
    return spans


def _char_of_span(result: core.AttentionResult, level: str, index: int) -> int:
    """The character a click on span `index` of the query text picks: its first non-space one."""
    spans = _query_text(result, level, 0)
    start = sum(len(t) for t, _ in spans[: max(0, index)])
    span = spans[index][0] if 0 <= index < len(spans) else ""
    return start + next((i for i, c in enumerate(span) if not c.isspace()), 0)


def grid_height(n_heads: int) -> int:
    """Pixel height of a head-grid gallery showing `n_heads` thumbnails."""
    return 60 + 125 * max(1, -(-n_heads // GRID_COLUMNS))


def render(
    config: AppConfig,
    text: str,
    model_a: str | None,
    model_b: str | None,
    level: str,
    axes: str,
    how: str,
    layer: int,
    head: int,
    scale: str,
    query: int | None,
) -> dict[str, Any]:
    """Everything the view shows, as plain values (figures, images, markdown)."""
    request = core.AttentionRequest(text, model_a, model_b, level, axes, how, layer, head, query)
    start = time.perf_counter()
    view = core.run(request, config)
    figure = heatmap_figure(view.maps, view.difference, scale)
    grids, grid_labels = [], []
    for r, thumbs in zip(view.results, view.grids, strict=True):
        lvl = r.level(view.request.level)
        grids.append([(thumbnail(m, scale), f"head {h}") for h, m in enumerate(thumbs)])
        shown = core.clamp(view.layer, lvl.n_layers)
        grid_labels.append(f"{short_name(r.model)} · {lvl.name} layer {shown} · click a head to open it")
    log.debug("attention view rendered in %.2f s", time.perf_counter() - start)
    return {
        "results": view.results,
        "figure": figure,
        "note": _note(view.results, view.maps, view.request.level, view.request.axes),
        "grids": grids,
        "grid_labels": grid_labels,
        "profile": profile_figure(view.profiles, scale),
        "query_text": _query_text(view.results[0], view.request.level, view.query),
        "layer": view.layer,
        "head": view.head,
        "query": view.query,
        "max_layers": view.max_layers,
        "max_heads": view.max_heads,
        "has_hat": view.has_word_boundaries,
        "names": view.names,
    }


@dataclass
class Inputs:
    """The text, the model pickers, the run button, the display options and the sliders
    (``controls()``: in the order `render` takes them, with the query character last)."""

    text: gr.Textbox
    model_a: gr.Dropdown
    model_b: gr.Dropdown
    run: gr.Button
    level: gr.Radio
    axes: gr.Radio
    how: gr.Radio
    scale: gr.Radio
    layer: gr.Slider
    head: gr.Slider


@dataclass
class Maps:
    """What a rendering shows: the note, the map, the head grids, the query text and its profile,
    and the query character (hidden) that a click on the query text sets."""

    note: gr.Markdown
    plot: gr.Plot
    grid_a: gr.Gallery
    grid_b: gr.Gallery
    query_text: gr.HighlightedText
    query: gr.Number
    profile_plot: gr.Plot


@dataclass
class Exports:
    """The download buttons and the files they give."""

    png: gr.Button
    page: gr.Button
    npz: gr.Button
    files: gr.File


def _controls(i: Inputs, m: Maps) -> list[Any]:
    """The inputs of every rendering, in the order `render` takes them."""
    return [i.text, i.model_a, i.model_b, i.level, i.axes, i.how, i.layer, i.head, i.scale, m.query]


def _default_models(config: AppConfig) -> tuple[list[tuple[str, str]], str | None, str, dict[str, str]]:
    """The model choices, and the pair shown first: a HAT (A) next to a model of another family (B)."""
    choices = model_choices(config)
    names = [n for _, n in choices]
    families = {n: get_spec(n).family for n in names}
    default_a = next((n for n in names if families[n] == "hat"), names[0] if names else None)
    default_b = next((n for n in names if n != default_a and families[n] != families.get(default_a or "")), None)
    default_b = default_b or next((n for n in names if n != default_a), NONE)

    return choices, default_a, default_b, families


def _intro() -> None:
    gr.Markdown(
        "Where does each layer look? Rows are queries, columns the units they attend to. Put two models side by "
        "side, switch to **character** axes to compare them on the same characters (with a difference map), "
        "open a single head from the **head grid**, or click a unit of the text to see what it attends to in "
        "every layer. For **HAT**, choose the byte encoder, the word backbone or the byte decoder."
    )


def _inputs(config: AppConfig) -> Inputs:
    """The text, the two model pickers, the display options and the layer and head sliders."""
    choices, default_a, default_b, families = _default_models(config)
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(
                label=f"Text (at most {config.max_text_chars:,} characters)",
                value="The quick brown fox jumps over the lazy dog.",
                lines=3,
                max_lines=10,
                elem_id="attention-text",
            )
        with gr.Column(scale=2):
            with gr.Row():
                model_a = gr.Dropdown(choices=choices, value=default_a, label="Model A", elem_id="attention-model-a")
                model_b = gr.Dropdown(
                    choices=[("— none —", NONE), *choices],
                    value=default_b,
                    label="Model B",
                    elem_id="attention-model-b",
                )
            run = gr.Button("Show attention", variant="primary", elem_id="attention-run")
    with gr.Row():
        level = gr.Radio(
            choices=list(LEVELS),
            value="backbone",
            label="HAT level",
            visible=any(families.get(n) == "hat" for n in (default_a, default_b)),
            elem_id="attention-level",
        )
        axes = gr.Radio(choices=AXES_CHOICES, value="units", label="Axes", elem_id="attention-axes")
        how = gr.Radio(choices=AGG_CHOICES, value="mean", label="Heads", elem_id="attention-how")
        scale = gr.Radio(choices=SCALE_CHOICES, value="sqrt", label="Colour", elem_id="attention-scale")
    with gr.Row():
        layer = gr.Slider(0, 1, value=0, step=1, label="Layer", elem_id="attention-layer")
        head = gr.Slider(0, 1, value=0, step=1, label="Head (for “one head”)", elem_id="attention-head")
    return Inputs(text, model_a, model_b, run, level, axes, how, scale, layer, head)


def _maps() -> Maps:
    """The note, the attention map, the head grids, the query text and its profile."""
    note = gr.Markdown(elem_id="attention-note")
    plot = gr.Plot(label="Attention", show_label=False, elem_id="attention-plot")
    gr.Markdown("#### Head grid: every head of the layer — click one to open it above")
    with gr.Row():
        grid_a = gr.Gallery(
            label="Model A heads",
            columns=GRID_COLUMNS,
            fit_columns=False,
            height=grid_height(2),
            allow_preview=False,
            buttons=[],
            object_fit="contain",
            elem_id="attention-grid-a",
        )
        grid_b = gr.Gallery(
            label="Model B heads",
            columns=GRID_COLUMNS,
            fit_columns=False,
            height=grid_height(2),
            allow_preview=False,
            buttons=[],
            object_fit="contain",
            elem_id="attention-grid-b",
        )
    gr.Markdown("#### What does this unit attend to? Click a unit of the text (units of model A)")
    query_text = gr.HighlightedText(
        label="Query",
        show_legend=False,
        show_inline_category=False,
        color_map={"query": "#ff922b", "unit": "#e7f5ff"},
        elem_id="attention-query",
    )
    query = gr.Number(value=-1, precision=0, label="Query character", visible=False, elem_id="attention-query-char")
    profile_plot = gr.Plot(
        label="Attention of the query in every layer", show_label=False, elem_id="attention-profile"
    )
    return Maps(note, plot, grid_a, grid_b, query_text, query, profile_plot)


def _exports() -> Exports:
    """Download buttons and the files they give."""
    with gr.Row():
        png = gr.Button("Figure as PNG", size="sm", elem_id="attention-export-png")
        page = gr.Button("Figure as HTML", size="sm", elem_id="attention-export-html")
        npz = gr.Button("Raw weights (.npz)", size="sm", elem_id="attention-export-npz")
    files = gr.File(
        label="Downloads",
        file_count="multiple",
        interactive=False,
        visible=False,
        height=140,
        elem_id="attention-files",
    )
    return Exports(png, page, npz, files)


def _wire_view(config: AppConfig, i: Inputs, m: Maps) -> gr.State:
    """The events that render the view; returns the trigger a shared link or a lesson's "try it" changes."""
    controls = _controls(i, m)
    outputs = [m.plot, m.note, m.grid_a, m.grid_b, m.profile_plot, m.query_text, i.layer, i.head, m.query, i.level]

    @user_errors
    def show(*args: Any, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
        announce_loading([m for m in args[1:3] if m], progress)  # model A and model B
        view = render(config, *args)
        grids = view["grids"] + [[]]
        return (
            view["figure"],
            view["note"],
            gr.Gallery(
                value=grids[0],
                label=view["grid_labels"][0],
                height=grid_height(len(grids[0])),
                selected_index=None,
            ),
            gr.Gallery(
                value=grids[1],
                label=view["grid_labels"][1] if len(view["names"]) > 1 else "Model B heads",
                height=grid_height(len(grids[1])),
                visible=len(view["names"]) > 1,
                selected_index=None,
            ),
            view["profile"],
            view["query_text"],
            gr.Slider(maximum=max(view["max_layers"] - 1, 1), value=view["layer"]),
            gr.Slider(maximum=max(view["max_heads"] - 1, 1), value=view["head"]),
            view["query"],
            gr.Radio(visible=view["has_hat"]),
        )

    common = MODEL_POOL
    replay = replay_trigger()  # changed by a shared link or a lesson's "try it"
    i.run.click(on_gpu(show), controls, outputs, api_name="attention", **common)
    for trigger in (i.text.submit, replay.change):
        trigger(on_gpu(show), controls, outputs, api_visibility="private", **common)
    for radio in (i.level, i.axes, i.how, i.scale):
        radio.input(show, controls, outputs, api_visibility="private", **common)
    for slider in (i.layer, i.head):
        slider.input(show, controls, outputs, api_visibility="private", trigger_mode="always_last", **common)

    def open_head(evt: gr.SelectData) -> tuple[int, str]:
        return int(evt.index), "head"

    for grid in (m.grid_a, m.grid_b):
        grid.select(open_head, None, [i.head, i.how], api_visibility="private", **common).then(
            show, controls, outputs, api_visibility="private", **common
        )

    @user_errors
    def pick_query(text_value: str, model: str | None, level_value: str, evt: gr.SelectData) -> int:
        (name,) = core.check_request_models(config, model, None)
        result = core.cached_attention(name, check_text(text_value, config))
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return _char_of_span(result, level_value, int(index))

    m.query_text.select(pick_query, [i.text, i.model_a, i.level], [m.query], api_visibility="private", **common).then(
        show, controls, outputs, api_visibility="private", **common
    )
    return replay


def _wire_exports(config: AppConfig, controls: list[Any], e: Exports) -> None:
    """The download buttons' events (their own queue)."""

    @user_errors
    def export(kind: str, *args: Any) -> gr.File:
        return gr.File(value=export_files(kind, *args), visible=True)

    def export_files(kind: str, *args: Any) -> list[str]:
        view = render(config, *args)
        folder = Path(tempfile.mkdtemp(prefix="attention-"))
        stem = "-".join(_slug(n) for n in view["names"])
        if kind == "npz":
            return [str(core.save_npz(r, folder / f"attention-{_slug(r.model)}.npz")) for r in view["results"]]
        if kind == "html":
            path = folder / f"attention-{stem}.html"
            view["figure"].write_html(path, include_plotlyjs=True, full_html=True)
            return [str(path)]
        path = folder / f"attention-{stem}.png"
        try:
            view["figure"].write_image(path, width=1400, scale=1.5)
        except Exception as err:  # kaleido needs a Chrome/Chromium; the plot's own camera icon works without
            raise gr.Error(
                f"PNG export needs Chrome/Chromium for kaleido ({err}). Use the camera icon of the plot instead."
            ) from err
        return [str(path)]

    for button, kind in ((e.png, "png"), (e.page, "html"), (e.npz, "npz")):
        # Its own queue: a slow PNG (kaleido starts a browser) must not hold up the view's updates.
        button.click(
            functools.partial(export, kind),
            controls,
            [e.files],
            api_visibility="private",
            concurrency_id="attention-export",
            concurrency_limit=1,
        )


def build_tab(config: AppConfig) -> TabState:
    """Create the attention-maps components and wire their events (inside a gr.Tab)."""
    _intro()
    i = _inputs(config)
    m = _maps()
    e = _exports()
    replay = _wire_view(config, i, m)
    _wire_exports(config, _controls(i, m), e)
    shared = {"text": i.text, "model_a": i.model_a, "model_b": i.model_b, "level": i.level, "axes": i.axes}
    shared |= {"heads": i.how, "colour": i.scale, "layer": i.layer, "head": i.head}
    # The layer and head sliders get their range from the models after a run: bound them loosely here.
    bounds = {"layer": links.Field("int", 0, MAX_LINK_LAYERS), "head": links.Field("int", 0, MAX_LINK_LAYERS)}
    return TabState(KEY, shared, replay, bounds)


def _slug(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "-" for c in name.split("/")[-1] or name)
    return keep.strip("-") or "model"
