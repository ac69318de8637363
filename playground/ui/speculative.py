"""Speculative-decoding tab: draft trees step by step, against plain decoding of the same prompt.

The engine lives in :mod:`playground.speculative`; this module turns its JSON (the same as
``python -m playground.speculative --json``) into gradio components, HTML and plotly figures.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import gradio as gr
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from playground import links
from playground.segment import visible
from playground.speculative.compare import MAX_NEW_TOKENS, WEIGHT_FORMATS
from playground.speculative.drafters import DRAFTER_NAMES, FEATURE_HEAD_DRAFTERS, MAX_TREE_BUDGET, TREE_SHAPES
from playground.speculative.prompts import EXAMPLES
from playground.speculative.tree import DraftTree, tree_layout, tree_layout_root_x
from playground.speculative.view import SpeculativeRequest, default_drafter, run
from playground.ui.common import MODEL_POOL, announce_loading, model_choices, on_gpu, user_errors
from playground.ui.links import TabState, replay_trigger

if TYPE_CHECKING:
    from playground.config import AppConfig

KEY = "speculative"  # the tab's name in links
TOKEN_FAMILIES = ("bpe", "byte")
STATUS_COLORS = {"accepted": "#2f9e44", "rejected": "#e03131", "unreached": "#adb5bd"}
BONUS_COLOR = "#f59f00"
ROOT_COLOR = "#1c7ed6"
STEP_COLORS = ("#d3f9d8", "#d0ebff")

DRAFTER_HELP = {
    "prompt-lookup": "model-free: continue the latest earlier n-gram match in prompt or output",
    "suffix-automaton": "model-free: longest earlier match via a suffix automaton (SAM-Decoding)",
    "token-recycling": "model-free: the target's past top-k candidates per token, walked as a tree",
    "suffix-automaton+token-recycling": "model-free: earlier matches first, recycled candidates fill the budget",
    "layer-skip": "the target with layers skipped drafts for itself (no training)",
    "draft-model": "a smaller model with the same tokenizer",
    "feature-head": "EAGLE-style head trained on the target's own hidden states (shipped for SmolLM2-135M)",
    "suffix-automaton+feature-head": "a copy of an earlier match of 4+ tokens when there is one, else the feature head",
    "eagle3-head": "EAGLE-3-style head: fuses the target's low, middle and high layers, trained on its own guesses "
    "over several draft steps (shipped for SmolLM2-135M)",
    "suffix-automaton+eagle3-head": "a copy of an earlier match of 4+ tokens when there is one, else the EAGLE-3 head",
}

CSS = """
.spec-text { white-space: pre-wrap; font-family: var(--font-mono); font-size: 14px; line-height: 1.9;
  max-height: 24em; overflow-y: auto; }
.spec-text .prompt { opacity: 0.55; }
.spec-text .s0 { background: #d3f9d8; } .spec-text .s1 { background: #d0ebff; }
.spec-text .cur { outline: 2px solid #1c7ed6; }
.spec-text .bonus { border-bottom: 3px solid #f59f00; }
.spec-legend { font-size: 0.85em; opacity: 0.85; margin-bottom: 6px; }
"""


MODEL_DRAFTERS = ("draft-model", "layer-skip", *FEATURE_HEAD_DRAFTERS)  # the ones a tree shape applies to


def _label(text: str) -> str:
    shown = visible(text)
    return shown if len(shown) <= 14 else shown[:13] + "…"


def _prob(p: float | None) -> str:
    return "–" if p is None else f"{p:.3f}"


def tree_figure(record: dict[str, Any] | None) -> go.Figure:
    """The draft tree of one step: nodes coloured accepted / rejected / not reached, the bonus
    token hanging below the last accepted node; hover shows draft and target probabilities."""
    fig = go.Figure()
    if record is None:
        fig.update_layout(title="Run to see the draft trees", height=420)
        return fig
    t = record["tree"]
    tree = DraftTree(tokens=t["tokens"], parents=t["parents"], draft_probs=t["draft_probs"])
    pos = tree_layout(tree)
    root = (tree_layout_root_x(tree), 0)
    xs = [root[0]] + [x for x, _ in pos]
    ys = [0] + [-d for _, d in pos]
    edge_x: list[float | None] = []
    edge_y: list[float | None] = []
    for i, parent in enumerate(tree.parents):
        px, py = (xs[0], ys[0]) if parent == -1 else (xs[parent + 1], ys[parent + 1])
        edge_x += [px, xs[i + 1], None]
        edge_y += [py, ys[i + 1], None]
    # the bonus token hangs below the last accepted node (or the root)
    # (to the right of that node's rejected children, so it never hides one)
    last = record["accepted_nodes"][-1] + 1 if record["accepted_nodes"] else 0
    siblings = [xs[i + 1] for i, p in enumerate(tree.parents) if p + 1 == last]
    bonus_xy = (max(siblings) + 1 if siblings else xs[last], ys[last] - 1)
    edge_x += [xs[last], bonus_xy[0], None]
    edge_y += [ys[last], bonus_xy[1], None]
    fig.add_trace(
        go.Scatter(
            x=edge_x,
            y=edge_y,
            mode="lines",
            line={"color": "#ced4da", "width": 1.5},
            hoverinfo="skip",
            showlegend=False,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[xs[0]],
            y=[ys[0]],
            mode="markers+text",
            name=f"root (last committed {record.get('unit', 'token')})",
            marker={"size": 16, "color": ROOT_COLOR, "symbol": "square"},
            text=[_label(record["root_text"])],
            textposition="top center",
            hovertext=[f"root: {html.escape(visible(record['root_text']))}"],
            hoverinfo="text",
        )
    )
    for status, color in STATUS_COLORS.items():
        idx = [i for i, s in enumerate(t["status"]) if s == status]
        fig.add_trace(
            go.Scatter(
                x=[xs[i + 1] for i in idx],
                y=[ys[i + 1] for i in idx],
                mode="markers+text",
                name={"unreached": "not reached"}.get(status, status),
                marker={"size": 14, "color": color, "line": {"width": 1, "color": "#495057"}},
                text=[_label(t["texts"][i]) for i in idx],
                textposition="bottom center",
                textfont={"size": 11},
                hovertext=[
                    f"node {i}: {html.escape(visible(t['texts'][i]))}<br>"
                    f"draft p = {_prob(t['draft_probs'][i])}<br>target p = {_prob(t['target_probs'][i])}"
                    f"<br>{status}"
                    for i in idx
                ],
                hoverinfo="text",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=[bonus_xy[0]],
            y=[bonus_xy[1]],
            mode="markers+text",
            name=f"bonus (target's own {record.get('unit', 'token')})",
            marker={"size": 18, "color": BONUS_COLOR, "symbol": "star"},
            text=[_label(record["bonus_text"])],
            textposition="bottom center",
            hovertext=[f"bonus: {html.escape(visible(record['bonus_text']))}"],
            hoverinfo="text",
        )
    )
    depth = max([-y for y in ys] + [bonus_xy[1] * -1])
    fig.update_layout(
        title=f"Step {record['step']}: {len(t['tokens'])} draft {record.get('unit', 'token')}s, "
        f"{len(record['accepted_nodes'])} accepted",
        height=max(360, 90 * (depth + 2)),
        xaxis={"visible": False, "range": [min(xs) - 2, max(xs + [bonus_xy[0]]) + 2]},
        yaxis={"visible": False, "range": [-depth - 0.8, 0.8]},
        legend={"orientation": "h", "y": -0.05},
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        plot_bgcolor="white",
    )
    return fig


def charts_figure(data: dict[str, Any] | None) -> go.Figure:
    """Accepted tokens per step, their histogram, and drafting vs verifying time per step."""
    unit = (data or {}).get("unit", "token")
    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=(f"Accepted draft {unit}s per step", "Histogram of accepted lengths", "Time per step (ms)"),
    )
    if data is None or not data["steps"]:
        fig.update_layout(height=320)
        return fig
    steps = data["steps"]
    idx = [s["step"] for s in steps]
    accepted = [len(s["accepted_tokens"]) for s in steps]
    fig.add_trace(
        go.Bar(x=idx, y=accepted, marker_color=STATUS_COLORS["accepted"], name="accepted", showlegend=False),
        row=1,
        col=1,
    )
    counts = [accepted.count(k) for k in range(max(accepted) + 1)]
    fig.add_trace(
        go.Bar(x=list(range(len(counts))), y=counts, marker_color="#5c7cfa", name="steps", showlegend=False),
        row=1,
        col=2,
    )
    fig.add_trace(
        go.Bar(x=idx, y=[1000 * s["draft_seconds"] for s in steps], name="drafting", marker_color="#f59f00"),
        row=1,
        col=3,
    )
    fig.add_trace(
        go.Bar(x=idx, y=[1000 * s["verify_seconds"] for s in steps], name="verifying", marker_color="#1c7ed6"),
        row=1,
        col=3,
    )
    plain = data["summary"]["plain_tokens_per_second"]
    if plain:
        fig.add_hline(
            y=1000 / plain,
            line_dash="dot",
            line_color="#495057",
            row=1,
            col=3,
            annotation_text=f"plain: one {unit}",
            annotation_position="top left",
        )
    fig.update_layout(
        barmode="stack",
        height=340,
        margin={"l": 40, "r": 10, "t": 40, "b": 40},
        legend={"orientation": "h", "y": -0.2},
    )
    fig.update_xaxes(title_text="step", row=1, col=1)
    fig.update_xaxes(title_text=f"accepted {unit}s", row=1, col=2)
    fig.update_xaxes(title_text="step", row=1, col=3)
    return fig


def text_html(data: dict[str, Any] | None, current: int) -> str:
    """Prompt (faded) and output; each step's tokens shaded, bonus tokens underlined in amber,
    the chosen step outlined."""
    if data is None:
        return '<div class="spec-legend">Run to see the generated text.</div>'
    parts = [f'<span class="prompt">{html.escape(data["prompt_text"][-600:])}</span>']
    for s in data["steps"]:
        n_acc = len(s["accepted_tokens"])
        classes = f"s{s['step'] % 2}" + (" cur" if s["step"] == current else "")
        inner = []
        for k, text in enumerate(s["new_texts"]):
            cls = "acc" if k < n_acc else "bonus"
            inner.append(f'<span class="{cls}">{html.escape(text)}</span>')
        title = f"step {s['step']}: {n_acc} accepted + 1 bonus"
        parts.append(f'<span class="{classes}" data-step="{s["step"]}" title="{title}">{"".join(inner)}</span>')
    legend = (
        '<div class="spec-legend">Shading alternates per step; '
        '<span style="border-bottom:3px solid #f59f00">underlined</span>: the bonus token the target '
        "adds each step; outlined: the chosen step. Faded: the end of the prompt.</div>"
    )
    return legend + f'<div class="spec-text" id="spec-text-body">{"".join(parts)}</div>'


def summary_markdown(data: dict[str, Any]) -> str:
    s = data["summary"]
    identical = {True: "**yes**", False: "**NO**", None: "n/a (sampling)"}[s["identical"]]
    unit = data.get("unit", "token")  # HAT runs count words and backbone passes
    passes = "backbone passes" if unit == "word" else "target forward passes"
    settings = data.get("settings", {})
    weights = settings.get("weights")  # token targets only
    weights = f" · target weights: {weights} (both runs)" if weights else ""
    if settings.get("drafter") in MODEL_DRAFTERS and settings.get("tree_shape"):
        weights = f" · tree shape: {settings['tree_shape']}{weights}"
    combined = ""
    if "combined_speedup" in s:  # float16 weights: against plain decoding with the float32 weights
        combined = (
            f" · **{s['combined_speedup']:.2f}× over plain float32 decoding** "
            f"({s['plain_float32_tokens_per_second']:.1f} {unit}s/s, run in this call too): float16 weights "
            "and speculation together"
        )
    return (
        f"| | plain | speculative |\n|---|---|---|\n"
        f"| {unit}s | {len(data['plain_tokens'])} | {s['new_tokens']} |\n"
        f"| {passes} | {data['plain_passes']} | {s['steps']} |\n"
        f"| {unit}s per pass | 1.00 | {s['tokens_per_forward']:.2f} |\n"
        f"| wall clock (s, incl. prefill) | {s['plain_seconds']:.2f} | {s['speculative_seconds']:.2f} |\n"
        f"| {unit}s per second | {s['plain_tokens_per_second']:.1f} | {s['speculative_tokens_per_second']:.1f} |\n\n"
        f"**Speedup {s['speedup']:.2f}×**{combined} · mean accepted draft {unit}s per step {s['mean_accepted']:.2f} "
        f"(mean tree {s['mean_tree_size']:.1f} nodes) · drafting {s['draft_seconds']:.2f} s, verifying "
        f"{s['verify_seconds']:.2f} s · identical to plain greedy: {identical}{weights}\n\n"
        "Both runs happen one after the other in this call, on a machine that may be busy: timings are noisy."
    )


def step_markdown(data: dict[str, Any] | None, step: int) -> str:
    if data is None or not data["steps"]:
        return ""
    s = data["steps"][step]
    accepted = "".join(s["new_texts"][: len(s["accepted_tokens"])])
    if not s["tree"]["tokens"]:
        return (
            f"**Step {step}** of {len(data['steps'])} · root `{visible(s['root_text'])}` · no draft "
            f"(a plain step): the target adds `{visible(s['bonus_text'])}` · "
            f"drafting {1000 * s['draft_seconds']:.0f} ms, verifying {1000 * s['verify_seconds']:.0f} ms"
        )
    return (
        f"**Step {step}** of {len(data['steps'])} · root `{visible(s['root_text'])}` · "
        f"accepted {len(s['accepted_tokens'])} of {len(s['tree']['tokens'])}: "
        f"`{visible(accepted) or '∅'}` + bonus `{visible(s['bonus_text'])}` · "
        f"drafting {1000 * s['draft_seconds']:.0f} ms, verifying {1000 * s['verify_seconds']:.0f} ms"
    )


def run_speculative(
    prompt: str,
    target: str,
    drafter: str,
    draft_model: str | None,
    tree_shape: str,
    budget: float,
    temperature: float,
    max_new_tokens: float,
    chat: bool,
    weights: str = "float32",
    *,
    config: AppConfig,
) -> dict[str, Any]:
    """The tab's controls as a request to the view's core (`playground.speculative.view.run`)."""
    request = SpeculativeRequest(
        prompt=prompt,
        target=target,
        drafter=drafter,
        draft_model=draft_model,
        tree_shape=tree_shape,
        tree_budget=budget,  # type: ignore[arg-type]  (checked and made int by the core)
        temperature=temperature,
        max_new_tokens=max_new_tokens,  # type: ignore[arg-type]
        chat=bool(chat),
        weights=weights,
    )
    return run(request, config)


def _clamp(data: dict[str, Any] | None, step: float | None) -> int:
    if not data or not data["steps"]:
        return 0
    return min(max(int(step or 0), 0), len(data["steps"]) - 1)


def show_step(data: dict[str, Any] | None, step: float | None) -> tuple[go.Figure, str, str]:
    step = _clamp(data, step)
    record = data["steps"][step] if data and data["steps"] else None
    return tree_figure(record), step_markdown(data, step), text_html(data, step)


@dataclass
class Controls:
    """The tab's inputs (``settings()``: in the order the main event takes them) and its button."""

    prompt: gr.Textbox
    target: gr.Dropdown
    drafter: gr.Dropdown
    draft_model: gr.Dropdown
    shape: gr.Radio
    budget: gr.Slider
    temperature: gr.Slider
    max_new: gr.Slider
    chat: gr.Checkbox
    weights: gr.Radio
    run: gr.Button

    def settings(self) -> list[Any]:
        return [getattr(self, f.name) for f in fields(self) if f.name != "run"]


@dataclass
class Results:
    """What a run shows (``outputs()``: in the order the main event returns them), and the step
    buttons."""

    summary: gr.Markdown
    prev_btn: gr.Button
    step: gr.Slider
    next_btn: gr.Button
    step_info: gr.Markdown
    tree_plot: gr.Plot
    text: gr.HTML
    charts: gr.Plot
    raw: gr.JSON
    state: gr.State

    def outputs(self) -> list[Any]:
        return [self.summary, self.step, self.tree_plot, self.step_info, self.text, self.charts, self.raw, self.state]


def _intro() -> None:
    gr.Markdown(
        "**Speculative decoding**: a cheap *drafter* proposes a tree of next tokens, the target "
        "model checks the whole tree in **one** forward pass (tree attention), keeps the longest "
        "path it agrees with and adds one token of its own. Greedy output is identical to plain "
        "decoding; sampling keeps the target's distribution exactly. Plain decoding of the same "
        "prompt runs in the same call, for the speedup. With a **HAT** target (prompt-lookup, greedy) "
        "the drafts are whole *words*: one backbone pass reads them all, one decoder batch checks "
        "their spellings, and max new tokens × 4 bytes are written."
    )


def _controls(config: AppConfig, targets: list[tuple[str, str]], draft_targets: list[tuple[str, str]]) -> Controls:
    """The prompt and its examples, and the settings column."""
    first_target = draft_targets[0][1] if draft_targets else None
    first_drafter = default_drafter(first_target)
    with gr.Row():
        with gr.Column(scale=3):
            prompt = gr.Textbox(
                label=f"Prompt (at most {config.max_text_chars:,} characters)",
                value=EXAMPLES[0][1],
                lines=6,
                max_lines=14,
                elem_id="spec-prompt",
            )
            gr.Examples(
                examples=[[t] for _, t in EXAMPLES],
                inputs=[prompt],
                example_labels=[label for label, _ in EXAMPLES],
                label="Examples",
            )
        with gr.Column(scale=2):
            with gr.Row():
                target = gr.Dropdown(
                    choices=targets,
                    value=first_target,
                    label="Target model",
                    elem_id="spec-target",
                )
                drafter = gr.Dropdown(
                    choices=list(DRAFTER_NAMES),
                    value=first_drafter,
                    label="Drafter",
                    info=DRAFTER_HELP[first_drafter],
                    elem_id="spec-drafter",
                )
            with gr.Row():
                draft_model = gr.Dropdown(
                    choices=draft_targets,
                    value=None,
                    label="Draft model (same tokenizer)",
                    visible=False,
                    elem_id="spec-draft-model",
                )
                shape = gr.Radio(
                    list(TREE_SHAPES),
                    value="adaptive" if first_drafter in FEATURE_HEAD_DRAFTERS else "chain",
                    label="Tree shape (model drafters)",
                    info="chain: one token per depth · static: the top 2 children of every node · dynamic "
                    "(EAGLE-2): the budget's most probable nodes · adaptive: dynamic, cut to the size that pays "
                    "for itself on this machine (none at all when the draft is unsure)",
                    visible=first_drafter in MODEL_DRAFTERS,
                    elem_id="spec-shape",
                )
            with gr.Row():
                budget = gr.Slider(
                    1,
                    min(MAX_TREE_BUDGET, config.limits.tree_budget),
                    value=8,
                    step=1,
                    label=f"Tree budget (nodes, at most {min(MAX_TREE_BUDGET, config.limits.tree_budget)})",
                    elem_id="spec-budget",
                )
                temperature = gr.Slider(
                    0.0, 1.5, value=0.0, step=0.05, label="Temperature (0 = greedy)", elem_id="spec-temperature"
                )
            with gr.Row():
                max_new = gr.Slider(
                    1,
                    min(MAX_NEW_TOKENS, config.limits.max_new_tokens),
                    value=48,
                    step=1,
                    label=f"Max new tokens (at most {min(MAX_NEW_TOKENS, config.limits.max_new_tokens)})",
                    elem_id="spec-max-new",
                )
                chat = gr.Checkbox(value=True, label="Chat template (if the model has one)", elem_id="spec-chat")
            weights = gr.Radio(
                list(WEIGHT_FORMATS),
                value="float32",
                label="Target weights (CPU)",
                info="float16: half the bytes read per step, activations stay float32; plain decoding uses the "
                "same weights. Cheaper steps make tree passes relatively dearer.",
                elem_id="spec-weights",
            )
            run = gr.Button("Run", variant="primary", elem_id="spec-run")
    return Controls(
        prompt=prompt,
        target=target,
        drafter=drafter,
        draft_model=draft_model,
        shape=shape,
        budget=budget,
        temperature=temperature,
        max_new=max_new,
        chat=chat,
        weights=weights,
        run=run,
    )


def _results() -> Results:
    """The summary, the step controls, the tree, the text, the charts and the raw JSON."""
    summary = gr.Markdown(elem_id="spec-summary")
    with gr.Row():
        prev_btn = gr.Button("◀ Previous step", elem_id="spec-prev", size="sm")
        step = gr.Slider(0, 1, value=0, step=1, label="Step", elem_id="spec-step")
        next_btn = gr.Button("Next step ▶", elem_id="spec-next", size="sm")
    step_info = gr.Markdown(elem_id="spec-step-info")
    tree_plot = gr.Plot(label="Draft tree", elem_id="spec-tree")
    text = gr.HTML(css_template=CSS, elem_id="spec-text")
    charts = gr.Plot(label="Acceptance and time", elem_id="spec-charts")
    with gr.Accordion("Raw result (JSON, as returned by the API)", open=False):
        raw = gr.JSON(elem_id="spec-json")
    state = gr.State(None)
    return Results(
        summary=summary,
        prev_btn=prev_btn,
        step=step,
        next_btn=next_btn,
        step_info=step_info,
        tree_plot=tree_plot,
        text=text,
        charts=charts,
        raw=raw,
        state=state,
    )


def _wire(config: AppConfig, targets: list[tuple[str, str]], c: Controls, r: Results) -> gr.State:
    """Every event of the tab; returns the trigger a shared link or a lesson's "try it" changes."""

    def on_drafter(name: str) -> tuple[Any, Any, Any]:
        return (
            gr.update(visible=name == "draft-model"),
            gr.update(visible=name in MODEL_DRAFTERS),
            gr.update(info=DRAFTER_HELP.get(name, "")),
        )

    c.drafter.change(on_drafter, c.drafter, [c.draft_model, c.shape, c.drafter], api_visibility="private")
    # A user's pick of a feature head starts the adaptive tree: the head's draft probabilities
    # track acceptance, which the adaptive tree needs to size itself for the machine at hand (in
    # bench/speculative.py within the paired runs' spread of the best fixed-size tree); the others
    # keep their shape. Only a user's pick changes it (a shared link's shape stays as shared), and
    # in the browser, at once, so a shape picked right after is never overwritten by a late answer.
    c.drafter.input(
        None,
        [c.drafter, c.shape],
        c.shape,
        js=f"(name, shape) => {json.dumps(list(FEATURE_HEAD_DRAFTERS))}.includes(name) ? 'adaptive' : shape",
        api_visibility="private",
    )

    hat_targets = {name for _, name in model_choices(config, ("hat",))}

    def on_target(name: str | None) -> Any:
        return gr.update(visible=name not in hat_targets)  # a HAT has no token-model weights to pick

    c.target.change(on_target, c.target, c.weights, api_visibility="private")

    # A user's pick of a target starts from its default drafter and tree shape (a shared link's
    # stay as shared). Set in the browser, at once, so a drafter picked right after is never
    # overwritten by a late answer.
    starts = {
        name: ["prompt-lookup", "chain"]
        if name in hat_targets
        else [d := default_drafter(name), "adaptive" if d in FEATURE_HEAD_DRAFTERS else "chain"]
        for _, name in targets
    }
    c.target.input(
        None,
        c.target,
        [c.drafter, c.shape],
        js=f"(name) => ({json.dumps(starts)})[name] ?? ['suffix-automaton', 'chain']",
        api_visibility="private",
    )

    @user_errors
    def on_run(*args: Any, start: float | None = 0, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
        # the target, and the draft model when the drafter is one
        announce_loading([args[1], *([args[3]] if args[2] == "draft-model" and args[3] else [])], progress)
        data = run_speculative(*args, config=config)
        first = _clamp(data, start)
        fig, info, body = show_step(data, first)
        n = len(data["steps"])
        return (
            summary_markdown(data),
            gr.update(maximum=max(n - 1, 1), value=first),
            fig,
            info,
            body,
            charts_figure(data),
            data,
            data,
        )

    def on_replay(*args: Any, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
        return on_run(*args[:-1], start=args[-1], progress=progress)  # a shared link's step comes last

    settings, outputs = c.settings(), r.outputs()
    replay = replay_trigger()  # changed by a shared link or a lesson's "try it"
    c.run.click(on_gpu(on_run), settings, outputs, api_name="speculative", **MODEL_POOL)
    replay.change(on_gpu(on_replay), [*settings, r.step], outputs, api_visibility="private", **MODEL_POOL)
    r.step.change(show_step, [r.state, r.step], [r.tree_plot, r.step_info, r.text], api_visibility="private")

    def move(data: dict[str, Any] | None, current: float, delta: int) -> int:
        return _clamp(data, (current or 0) + delta)

    r.prev_btn.click(lambda d, s: move(d, s, -1), [r.state, r.step], r.step, api_visibility="private")
    r.next_btn.click(lambda d, s: move(d, s, 1), [r.state, r.step], r.step, api_visibility="private")
    return replay


def build_tab(config: AppConfig) -> TabState:
    """Create the speculative-decoding components and wire their events (inside a gr.Tab)."""
    targets = model_choices(config, (*TOKEN_FAMILIES, "hat"))
    draft_targets = model_choices(config, TOKEN_FAMILIES)
    _intro()
    c = _controls(config, targets, draft_targets)
    r = _results()
    replay = _wire(config, targets, c, r)
    names = ["prompt", "target", "drafter", "draft_model", "shape", "budget", "temperature", "max_new_tokens"]
    shared = dict(zip([*names, "chat", "weights"], c.settings(), strict=True)) | {"step": r.step}
    # The step slider's range comes from the run: a link's step is checked against it after the run.
    return TabState(KEY, shared, replay, {"step": links.Field("int", 0, MAX_NEW_TOKENS)})
