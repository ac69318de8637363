"""Learn tab: a guided path through tokenization, one lesson per step, each running a real core."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from playground import bpe_steps, learn
from playground.config import AppConfig
from playground.ui.common import on_gpu, short_name, user_errors
from playground.ui.segment import CSS, render_html

FIGURES = Path(__file__).resolve().parents[2] / "assets" / "figures"


# ------------------------------------------------------------------------------------ lesson views


def units_view(text: str, config: AppConfig) -> tuple[str, pd.DataFrame]:
    result = learn.units_lesson(text, config.models)
    words = len(text.split())
    rows = [
        {
            "unit": short_name(name),
            "units": seg.count,
            "units per word": round(seg.count / words, 2) if words else None,
        }
        for name, seg in result.items()
    ]
    return render_html([("", text, result)], list(result), visible_ws=True), pd.DataFrame(rows)


def _merge_table(step: learn.BPELessonStep) -> pd.DataFrame:
    show = bpe_steps.show_bytes
    rows = [
        {"merge": m.rank, "left": show(m.left), "right": show(m.right), "new unit": show(m.merged)}
        for m in step.merges[-12:][::-1]  # the newest first
    ]
    return pd.DataFrame(rows, columns=["merge", "left", "right", "new unit"])


def _curve_figure(step: learn.BPELessonStep) -> go.Figure:
    ks = [c[0] for c in step.curve]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=ks, y=[c[1] for c in step.curve], name="text", mode="lines+markers"))
    fig.add_trace(go.Scatter(x=ks, y=[c[2] for c in step.curve], name="misspelled copy", mode="lines+markers"))
    fig.add_vline(x=step.k, line_dash="dot", line_color="#868e96")
    fig.update_layout(
        template="plotly_white",
        height=280,
        xaxis={"title": "merges learned (k)"},
        yaxis={"title": "units per word"},
        margin={"t": 20, "l": 50, "r": 20, "b": 40},
    )
    return fig


def bpe_view(stepper: bpe_steps.BPEStepper, k: float) -> tuple[str, str, pd.DataFrame, go.Figure]:
    step = learn.bpe_lesson(stepper, int(k))
    name = step.clean.name
    cards = render_html(
        [("text", stepper.text, {name: step.clean}), ("typos", step.misspelled_text, {name: step.misspelled})],
        [name],
        visible_ws=True,
    )
    if step.k == 0:
        note = "k = 0: no merges yet, every byte is its own unit."
    else:
        m = step.merges[-1]
        note = (
            f"Merge {step.k}: “{html.escape(bpe_steps.show_bytes(m.left))}” + "
            f"“{html.escape(bpe_steps.show_bytes(m.right))}” → “{html.escape(bpe_steps.show_bytes(m.merged))}”, "
            f"the most frequent pair at that point ({step.last_count} times in the text). "
            f"Units per word: {step.clean.count / max(1, len(stepper.text.split())):.2f} in the text, "
            f"{step.misspelled.count / max(1, len(step.misspelled_text.split())):.2f} in the misspelled copy."
        )
    return cards, note, _merge_table(step), _curve_figure(step)


def typo_view(text: str, seed: float, config: AppConfig) -> tuple[str, pd.DataFrame]:
    out = learn.typo_lesson(text, config.models, seed=int(seed or 0))
    names = list(out["clean"])
    cards = render_html(
        [("clean", out["clean_text"], out["clean"]), ("typos", out["perturbed_text"], out["perturbed"])],
        names,
        visible_ws=False,
    )
    rows = [
        {
            "model": short_name(n),
            "bits/byte, clean": round(s["clean"], 3),
            "bits/byte, with typos": round(s["perturbed"], 3),
            "rise": f"{s['rise'] * 100:+.1f}%",
        }
        for n, s in out["scores"].items()
    ]
    return cards, pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------ layout


N_STEPS = 5


def _nav_buttons(step: int) -> tuple[gr.Button | None, gr.Button | None]:
    """The Back / Next buttons of a lesson (wired in `build_tab` once every panel exists)."""
    with gr.Row():
        back = gr.Button("← Back", size="sm", elem_id=f"learn-back-{step}") if step > 0 else None
        forward = (
            gr.Button("Next →", size="sm", variant="primary", elem_id=f"learn-next-{step}")
            if step < N_STEPS - 1
            else None
        )
    return back, forward


def build_tab(config: AppConfig) -> None:
    """Create the lessons and wire their events (inside a gr.Tab)."""
    units, bpe, typo = learn.LESSONS
    gr.Markdown(
        "A short path through how language models cut text into units. Each step runs the real code of the "
        "playground on its example; change the text and run it again. The other tabs go deeper."
    )
    steps: list[gr.Accordion] = []
    navs: list[tuple[gr.Button | None, gr.Button | None]] = []
    with gr.Accordion(units.title, open=True, elem_id="learn-step-0") as acc:
        gr.Markdown(units.body)
        u_text = gr.Textbox(value=units.example, label="Sentence", lines=2, elem_id="learn-units-text")
        u_run = gr.Button("Cut it", variant="primary", elem_id="learn-units-run")
        u_cards = gr.HTML(css_template=CSS, elem_id="learn-units-cards")
        u_table = gr.Dataframe(label="Units per word", interactive=False, elem_id="learn-units-table")
        navs.append(_nav_buttons(0))
    steps.append(acc)
    with gr.Accordion("2 · Why vocabularies matter", open=False, elem_id="learn-step-1") as acc:
        gr.Markdown(
            "A vocabulary learned mostly from English text has tokens for English words. German or Spanish "
            "words, which it saw rarely, fall apart into more pieces: more units per word. HAT words stay "
            "about one unit per word in every language. The chart counts units per word on the validation "
            "text of each language (`python bench/units_per_word.py`); the **Adaptation** tab shows what "
            "this means when a model learns a new language."
        )
        gr.Image(str(FIGURES / "units_per_word.png"), show_label=False, interactive=False, elem_id="learn-upw")
        navs.append(_nav_buttons(1))
    steps.append(acc)
    with gr.Accordion(bpe.title, open=False, elem_id="learn-step-2") as acc:
        gr.Markdown(bpe.body)
        stepper = gr.State(None)
        with gr.Row():
            b_text = gr.Textbox(
                value=bpe.example.strip(),
                label=f"Training text (at most {bpe_steps.MAX_TRAIN_CHARS:,} characters)",
                lines=4,
                scale=3,
                elem_id="learn-bpe-text",
            )
            b_train = gr.Button("Learn merges", variant="primary", scale=1, elem_id="learn-bpe-train")
        b_k = gr.Slider(0, 60, value=0, step=1, label="k: merges applied", elem_id="learn-bpe-k")
        b_note = gr.Markdown(elem_id="learn-bpe-note")
        b_cards = gr.HTML(css_template=CSS, elem_id="learn-bpe-cards")
        with gr.Row():
            b_merges = gr.Dataframe(label="Merge table (newest first)", interactive=False, elem_id="learn-bpe-merges")
            b_curve = gr.Plot(label="Units per word as merges grow", elem_id="learn-bpe-curve")
        navs.append(_nav_buttons(2))
    steps.append(acc)
    with gr.Accordion(typo.title, open=False, elem_id="learn-step-3") as acc:
        gr.Markdown(typo.body)
        with gr.Row():
            t_text = gr.Textbox(value=typo.example, label="Sentence", lines=2, scale=3, elem_id="learn-typo-text")
            t_seed = gr.Number(value=0, precision=0, label="Typo seed", scale=1, elem_id="learn-typo-seed")
        t_run = gr.Button("Add typos and read", variant="primary", elem_id="learn-typo-run")
        t_cards = gr.HTML(css_template=CSS, elem_id="learn-typo-cards")
        t_table = gr.Dataframe(label="Bits per byte", interactive=False, elem_id="learn-typo-table")
        navs.append(_nav_buttons(3))
    steps.append(acc)
    with gr.Accordion("Glossary", open=False, elem_id="learn-step-4") as acc:
        gr.Markdown("\n".join(f"- **{term}**: {meaning}" for term, meaning in learn.GLOSSARY.items()))
        navs.append(_nav_buttons(4))

    steps.append(acc)

    def go_to(target: int) -> list[gr.Accordion]:  # one lesson open at a time
        return [gr.Accordion(open=i == target) for i in range(N_STEPS)]

    for i, (back, forward) in enumerate(navs):
        if back is not None:
            back.click(lambda i=i: go_to(i - 1), outputs=steps, api_name=False)
        if forward is not None:
            forward.click(lambda i=i: go_to(i + 1), outputs=steps, api_name=False)

    @user_errors
    def cut(text: str) -> tuple[str, pd.DataFrame]:
        return units_view(text, config)

    @user_errors
    def train(text: str) -> tuple[bpe_steps.BPEStepper, Any, str, str, pd.DataFrame, go.Figure]:
        s = bpe_steps.BPEStepper(text, 60)
        k = min(10, s.n_merges)
        return (s, gr.Slider(maximum=s.n_merges, value=k), *bpe_view(s, k))

    @user_errors
    def move(s: bpe_steps.BPEStepper | None, text: str, k: float) -> tuple[Any, ...]:
        if s is None:  # the slider moved before "Learn merges": learn from the box's text first
            s = bpe_steps.BPEStepper(text, 60)
        return (s, *bpe_view(s, min(int(k), s.n_merges)))

    @user_errors
    def read(text: str, seed: float) -> tuple[str, pd.DataFrame]:
        return typo_view(text, seed, config)

    u_run.click(cut, inputs=[u_text], outputs=[u_cards, u_table], api_name="learn_units")
    b_train.click(
        train, inputs=[b_text], outputs=[stepper, b_k, b_cards, b_note, b_merges, b_curve], api_name="learn_bpe"
    )
    b_k.input(
        move,
        inputs=[stepper, b_text, b_k],
        outputs=[stepper, b_cards, b_note, b_merges, b_curve],
        api_name="learn_bpe_step",
    )
    t_run.click(on_gpu(read), inputs=[t_text, t_seed], outputs=[t_cards, t_table], api_name="learn_typo")
