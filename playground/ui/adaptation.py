"""Adaptation tab: the shipped German runs' curves, and a live panel that adapts copies on your text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from models import registry
from playground import adaptation as core
from playground import links, segment
from playground.config import AppConfig
from playground.ui.common import LIGHT_POOL, MODEL_POOL, on_gpu, user_errors
from playground.ui.links import TabState

KEY = "adaptation"  # the tab's name in links
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "assets" / "examples" / "adaptation"
REPORT = Path(__file__).resolve().parents[2] / "assets" / "reports" / "adaptation.json"  # bench/adaptation.py
COLOURS = {"hat-tiny": "#e8590c", "bpe-tiny": "#1c7ed6", "byte-tiny": "#2f9e44"}
SESSIONS = core.LiveSessions()
SUMMARY_COLUMNS = ["model", "bits/byte, start → end", "English bits/byte, start → end", "CPU minutes", "MB read"]


def _example(name: str) -> str:
    path = EXAMPLES_DIR / name
    return path.read_text(encoding="utf-8").strip() if path.is_file() else ""


# ---------------------------------------------------------------------------------------- figures


def curves_figure(
    curves: dict[str, list[core.CurvePoint]], language: str, threshold: float | None = None
) -> go.Figure:
    """New-language bits per byte against CPU minutes and against text read; English over the same run."""
    lang = core.LANGUAGES.get(language, language)
    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=(f"{lang}, by training time", f"{lang}, by text read", "English (forgetting)"),
        horizontal_spacing=0.07,
    )
    for name, curve in curves.items():
        line = {"color": COLOURS.get(name)}
        minutes = [p.seconds / 60 for p in curve]
        bpb = [p.bpb for p in curve]
        fig.add_trace(go.Scatter(x=minutes, y=bpb, name=name, line=line, mode="lines+markers"), row=1, col=1)
        # Step 0 has read nothing; a log axis starts at the first evaluation after it.
        read = [(p.bytes_seen / 1e6, p.bpb) for p in curve if p.bytes_seen > 0]
        fig.add_trace(
            go.Scatter(x=[r[0] for r in read], y=[r[1] for r in read], name=name, line=line, showlegend=False),
            row=1,
            col=2,
        )
        en = [(m, p.bpb_en) for m, p in zip(minutes, curve, strict=True) if p.bpb_en is not None]
        fig.add_trace(
            go.Scatter(x=[e[0] for e in en], y=[e[1] for e in en], name=name, line=line, showlegend=False),
            row=1,
            col=3,
        )
    if threshold is not None:
        for col in (1, 2):
            fig.add_hline(y=threshold, line_dash="dot", line_color="#868e96", row=1, col=col)
    fig.update_xaxes(title_text="CPU minutes", row=1, col=1)
    fig.update_xaxes(title_text="MB of text read", type="log", row=1, col=2)
    fig.update_xaxes(title_text="CPU minutes", row=1, col=3)
    fig.update_yaxes(title_text="bits per byte (lower is better)", row=1, col=1)
    fig.update_layout(template="plotly_white", height=380, margin={"t": 50, "l": 50, "r": 20, "b": 50})
    return fig


def units_figure(units: dict[str, Any], language: str) -> go.Figure:
    """Units per word of the new language's validation text under each model (`bench/adaptation.py`)."""
    names = [n for n in core.BASE_MODELS if n in units]
    fig = go.Figure(
        go.Bar(
            x=[f"{n} ({units[n]['segmenter']})" for n in names],
            y=[units[n]["units_per_word"] for n in names],
            marker_color=[COLOURS.get(n) for n in names],
            text=[f"{units[n]['units_per_word']:.2f}" for n in names],
            textposition="outside",
        )
    )
    fig.update_layout(
        template="plotly_white",
        height=360,
        title=f"{core.LANGUAGES.get(language, language)} units per word ({units.get('text', '')})",
        yaxis={"title": "units per word", "range": [0, 1.15 * max(units[n]["units_per_word"] for n in names)]},
        margin={"t": 60, "l": 50, "r": 20, "b": 40},
    )
    return fig


def live_figure(losses: dict[str, list[float]], steps: int) -> go.Figure:
    """Training loss of each copy on the pasted text, step by step."""
    fig = go.Figure()
    for name, values in losses.items():
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(values) + 1)),
                y=values,
                name=name,
                mode="lines+markers",
                line={"color": COLOURS.get(name)},
            )
        )
    fig.update_layout(
        template="plotly_white",
        height=300,
        xaxis={"title": "step", "range": [0.5, steps + 0.5]},
        yaxis={"title": "training loss, bits per byte"},
        margin={"t": 30, "l": 50, "r": 20, "b": 40},
    )
    return fig


# ------------------------------------------------------------------------------------ shipped runs


def shipped_view(language: str) -> tuple[go.Figure | None, pd.DataFrame, str]:
    """The shipped runs of `language`: curves, a table of start and end figures, the speed-up sentence."""
    curves = core.read_curves(language)
    if not curves:
        return (
            None,
            pd.DataFrame(),
            (
                f"No adaptation run for {core.LANGUAGES[language]} is shipped yet "
                f"(`python -m training.adapt --model hat-tiny --language {language}`)."
            ),
        )
    rows = []
    for name, s in core.summary(curves).items():
        rows.append(
            {
                "model": name,
                "bits/byte, start → end": f"{s['start_bpb']:.3f} → {s['final_bpb']:.3f}",
                "English bits/byte, start → end": f"{s['start_bpb_en']:.3f} → {s['final_bpb_en']:.3f}",
                "CPU minutes": round(s["cpu_seconds"] / 60, 1),
                "MB read": round(s["bytes_seen"] / 1e6, 2),
            }
        )
    note, threshold = "", None
    if "hat-tiny" in curves and "bpe-tiny" in curves:
        s = core.speedup(curves)
        threshold = s["threshold_bpb"]
        t_hat, t_bpe = s["seconds"]["hat-tiny"], s["seconds"]["bpe-tiny"]
        note = (
            f"**Speed-up** (the paper's measure): the CPU time each model needs to reach "
            f"{threshold:.3f} bits per byte on the {core.LANGUAGES[language]} validation text, the best "
            f"value both reach in their runs (dotted line). hat-tiny: {t_hat / 60:.1f} CPU-min, "
            f"bpe-tiny: {t_bpe / 60:.1f} CPU-min, so HAT is **{s['speedup_cpu_time']:.2f}×** as fast "
            f"(by text read: {s['speedup_text_read']:.2f}×)."
        )
    return curves_figure(curves, language, threshold), pd.DataFrame(rows), note


# ---------------------------------------------------------------------------------- live panel


def _session_id(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "local"


def units_table(text: str) -> pd.DataFrame:
    """Units per word of the pasted text: HAT words, bpe-tiny's English tokens, bytes."""
    offered = [n for n in core.LIVE_MODELS if registry.get_spec(n).available]
    wanted = ["hat-words", *[n for n in offered if registry.get_spec(n).family == "bpe"], "bytes"]
    result = segment.segment(text, wanted, allowed_models=offered)
    rows = []
    for name, seg in result.items():
        st = segment.stats(seg, text)
        rows.append({"segmenter": name, "units": st.units, "units per word": st.units_per_word})
    return pd.DataFrame(rows)


@user_errors
def run_live(
    text: str, steps: float, request: gr.Request | None = None, progress: Any = None
) -> Iterator[tuple[go.Figure, str, pd.DataFrame, str]]:
    """Adapt the session's copies; yields the live loss chart and a status line after every step."""
    session = _session_id(request)
    adapter = SESSIONS.get(session)
    text, n = adapter.check_text(text), adapter.check_steps(steps)
    units = units_table(text)
    yield live_figure({}, n), "Loading the shipped models and copying them…", units, session
    losses: dict[str, list[float]] = {name: [] for name in adapter.names}
    for step in adapter.train(text, n):
        for name, loss in step.losses.items():
            losses[name].append(loss)
        if progress is not None:
            progress((step.step, step.steps), desc="adapting")
        status = f"Step {step.step}/{step.steps} · {step.seconds:.0f} s · " + " · ".join(
            f"{name} {loss:.2f} bits/byte" for name, loss in step.losses.items()
        )
        yield live_figure(losses, n), status, units, session
    done = f"Done: {n} steps. The adapted copies live in this browser session only; generate or score below."
    yield live_figure(losses, n), done, units, session


@user_errors
def run_generate(prompt: str, max_new_bytes: float, request: gr.Request | None = None) -> pd.DataFrame:
    adapter = SESSIONS.get(_session_id(request))
    out = adapter.generate(prompt, int(max_new_bytes))
    return pd.DataFrame(
        [{"model": n, "shipped (English)": d["shipped"], "adapted copy": d["adapted"]} for n, d in out.items()]
    )


@user_errors
def run_score(text: str, request: gr.Request | None = None) -> pd.DataFrame:
    adapter = SESSIONS.get(_session_id(request))
    out = adapter.score(text)
    return pd.DataFrame(
        [
            {
                "model": n,
                "shipped, bits/byte": round(d["shipped"], 3),
                "adapted copy, bits/byte": round(d["adapted"], 3),
                "change": f"{(d['adapted'] / d['shipped'] - 1) * 100:+.1f}%",
            }
            for n, d in out.items()
        ]
    )


def _drop_session(session_id: str | None) -> None:
    if session_id:
        SESSIONS.drop(session_id)


# ------------------------------------------------------------------------------------------ layout


def _shipped_section() -> tuple[gr.Radio, gr.Plot, gr.Dataframe, gr.Markdown]:
    gr.Markdown("### The shipped runs: English models continued on German")
    figure, summary, sentence = shipped_view("de")  # static files: drawn when the page is built
    language = gr.Radio(
        choices=[(label, code) for code, label in core.LANGUAGES.items()],
        value="de",
        label="New language",
        elem_id="adaptation-language",
    )
    plot = gr.Plot(
        figure,
        visible=figure is not None,
        label="Bits per byte during adaptation (training logs)",
        elem_id="adaptation-curves",
    )
    note = gr.Markdown(sentence, elem_id="adaptation-speedup")
    table = gr.Dataframe(summary, label="Start and end of each run", interactive=False, elem_id="adaptation-summary")
    units = json.loads(REPORT.read_text()).get("units_per_word") if REPORT.is_file() else None
    if units:
        gr.Plot(units_figure(units, "de"), label="Why: German units per word", elem_id="adaptation-units-de")
    gr.Markdown(
        "<small>Protocol (`training/adapt.py`): each English model continues on the German training text of "
        "the offline corpus (fortunes, LibreOffice help, man pages) with the same windows in the same order, "
        "the same budget of CPU seconds on one thread, the same learning-rate schedule; bpe-tiny keeps its "
        "English vocabulary. Bits per byte count every byte of the whole German validation split and of the "
        "64 KB English validation prefix.</small>"
    )
    return language, plot, table, note


def _live_section(limits: core.LiveLimits, available: bool) -> dict[str, Any]:
    gr.Markdown(
        "### Try it: adapt copies of hat-tiny and bpe-tiny to your text\n"
        "Paste text in a new language; private copies of both models train on it side by side "
        f"(at most {limits.max_steps} steps of {limits.batch} windows of {limits.window_bytes} bytes; "
        f"{limits.min_chars:,}–{limits.max_chars:,} characters). The copies live in your browser session "
        "only and are dropped when it ends; the shipped models are never changed."
    )
    c: dict[str, Any] = {}
    with gr.Row():
        with gr.Column(scale=3):
            c["text"] = gr.Textbox(
                label=f"Training text ({limits.min_chars:,}–{limits.max_chars:,} characters)",
                value=_example("de.txt"),
                lines=8,
                max_lines=16,
                elem_id="adaptation-live-text",
            )
        with gr.Column(scale=2):
            c["steps"] = gr.Slider(
                1,
                limits.max_steps,
                value=limits.default_steps,
                step=1,
                label=f"Steps (at most {limits.max_steps})",
                elem_id="adaptation-live-steps",
            )
            with gr.Row():
                c["run"] = gr.Button("Adapt", variant="primary", interactive=available, elem_id="adaptation-live-run")
                c["stop"] = gr.Button("Stop", variant="stop", elem_id="adaptation-live-stop")
            c["status"] = gr.Markdown(
                "" if available else "The live panel needs hat-tiny and bpe-tiny, which this app does not have.",
                elem_id="adaptation-live-status",
            )
            c["units"] = gr.Dataframe(
                pd.DataFrame(columns=["segmenter", "units", "units per word"]),
                label="Units per word of your text",
                interactive=False,
                elem_id="adaptation-units",
            )
    c["chart"] = gr.Plot(label="Training loss on your text", elem_id="adaptation-live-chart")
    with gr.Row():
        with gr.Column():
            c["prompt"] = gr.Textbox(label="Prompt", value="Am Abend ging Anna", elem_id="adaptation-prompt")
            c["new_bytes"] = gr.Slider(
                10, limits.max_new_bytes, value=80, step=10, label="New bytes (greedy)", elem_id="adaptation-new-bytes"
            )
            c["generate"] = gr.Button("Generate", elem_id="adaptation-generate")
        with gr.Column():
            c["heldout"] = gr.Textbox(
                label="Text to score (not trained on)",
                value=_example("de-heldout.txt"),
                lines=3,
                elem_id="adaptation-heldout",
            )
            c["score"] = gr.Button("Score", elem_id="adaptation-score")
    c["generated"] = gr.Dataframe(
        pd.DataFrame(columns=["model", "shipped (English)", "adapted copy"]),
        label="Shipped vs adapted continuation",
        interactive=False,
        wrap=True,
        elem_id="adaptation-generated",
    )
    c["scores"] = gr.Dataframe(
        pd.DataFrame(columns=["model", "shipped, bits/byte", "adapted copy, bits/byte", "change"]),
        label="Bits per byte, shipped vs adapted",
        interactive=False,
        elem_id="adaptation-scores",
    )
    return c


def build_tab(config: AppConfig) -> TabState:
    """Create the adaptation components and wire their events (inside a gr.Tab)."""
    gr.Markdown(
        "Does a hierarchical model learn a **new language** faster? The HAT paper reports that in continued "
        "pretraining HAT “trains almost twice as fast” as a BPE model, whose vocabulary stays fitted to the "
        "old language and shatters the new one's words. Here the same is measured at this project's tiny scale."
    )
    language, plot, table, note = _shipped_section()
    available = all(registry.get_spec(n).available for n in core.LIVE_MODELS)
    live = _live_section(SESSIONS.limits, available)
    session = gr.State(None, time_to_live=3600, delete_callback=_drop_session)

    def adapt(
        text: str,
        steps: float,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008  (gradio's API)
    ) -> Iterator[tuple[go.Figure, str, pd.DataFrame, str]]:
        yield from run_live(text, steps, request, progress)

    def show_runs(language: str) -> tuple[gr.Plot, pd.DataFrame, str]:
        figure, summary, sentence = shipped_view(language)
        return gr.Plot(figure, visible=figure is not None), summary, sentence

    language.change(
        show_runs, inputs=[language], outputs=[plot, table, note], api_name="adaptation_runs", **LIGHT_POOL
    )
    live_event = live["run"].click(
        on_gpu(adapt),
        inputs=[live["text"], live["steps"]],
        outputs=[live["chart"], live["status"], live["units"], session],
        api_name="adaptation_live",
        concurrency_limit=1,
        concurrency_id="adaptation-live",
    )
    live["stop"].click(lambda: "Stopped.", outputs=[live["status"]], cancels=[live_event], api_name=False)
    live["generate"].click(
        on_gpu(run_generate),
        inputs=[live["prompt"], live["new_bytes"]],
        outputs=[live["generated"]],
        api_name="adaptation_generate",
        **MODEL_POOL,
    )
    live["score"].click(
        on_gpu(run_score),
        inputs=[live["heldout"]],
        outputs=[live["scores"]],
        api_name="adaptation_score",
        **MODEL_POOL,
    )
    shared = {"language": language, "text": live["text"], "steps": live["steps"], "prompt": live["prompt"]}
    shared["scored_text"] = live["heldout"]
    # A link sets the texts and settings; the live run itself stays a click (one per session).
    return TabState(KEY, shared, bounds={"text": links.Field("text", max_chars=SESSIONS.limits.max_chars)})
