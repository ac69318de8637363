"""Learn tab: a guided path through tokenization, one lesson per step, each running a real core."""

from __future__ import annotations

import html
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from playground import bpe_steps, learn, segment
from playground.config import AppConfig
from playground.ui.common import on_gpu, short_name, user_errors
from playground.ui.segment import CSS, render_html

FIGURES = Path(__file__).resolve().parents[2] / "assets" / "figures"


# ------------------------------------------------------------------------------------ lesson views


def units_view(text: str, config: AppConfig) -> tuple[str, pd.DataFrame]:
    result = learn.units_lesson(text, config.models)
    rows = [
        {"unit": short_name(name), "units": seg.count, "units per word": segment.stats(seg, text).units_per_word}
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
            f"Units per word: {segment.stats(step.clean, stepper.text).units_per_word:.2f} in the text, "
            f"{segment.stats(step.misspelled, step.misspelled_text).units_per_word:.2f} in the misspelled copy."
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


N_STEPS = len(learn.LESSONS) + 1  # the lessons, then the glossary


class _Panels:
    """The lessons' accordion panels, one open at a time, each ending in Back / Next buttons."""

    def __init__(self) -> None:
        self.accordions: list[gr.Accordion] = []
        self.buttons: list[tuple[gr.Button | None, gr.Button | None]] = []

    @contextmanager
    def panel(self, title: str) -> Iterator[None]:
        i = len(self.accordions)
        with gr.Accordion(title, open=i == 0, elem_id=f"learn-step-{i}") as acc:
            yield
            with gr.Row():
                back = gr.Button("← Back", size="sm", elem_id=f"learn-back-{i}") if i > 0 else None
                forward = (
                    gr.Button("Next →", size="sm", variant="primary", elem_id=f"learn-next-{i}")
                    if i < N_STEPS - 1
                    else None
                )
        self.accordions.append(acc)
        self.buttons.append((back, forward))

    def wire(self) -> None:
        """Back / Next open the neighbour and close the rest (once every panel exists)."""

        def go_to(target: int) -> list[gr.Accordion]:
            return [gr.Accordion(open=i == target) for i in range(len(self.accordions))]

        for i, (back, forward) in enumerate(self.buttons):
            if back is not None:
                back.click(lambda i=i: go_to(i - 1), outputs=self.accordions, api_name=False)
            if forward is not None:
                forward.click(lambda i=i: go_to(i + 1), outputs=self.accordions, api_name=False)


def _sentence_lesson(
    lesson: learn.Lesson, button: str, table_label: str, seed: bool = False
) -> tuple[list[gr.components.Component], gr.Button, gr.HTML, gr.Dataframe]:
    """A lesson on one sentence: its text (and a typo seed), a run button, the cut as cards, a table."""
    gr.Markdown(lesson.body)
    with gr.Row():
        inputs = [
            gr.Textbox(value=lesson.example, label="Sentence", lines=2, scale=3, elem_id=f"learn-{lesson.key}-text")
        ]
        if seed:
            inputs.append(
                gr.Number(value=0, precision=0, label="Typo seed", scale=1, elem_id=f"learn-{lesson.key}-seed")
            )
    run = gr.Button(button, variant="primary", elem_id=f"learn-{lesson.key}-run")
    cards = gr.HTML(css_template=CSS, elem_id=f"learn-{lesson.key}-cards")
    table = gr.Dataframe(label=table_label, interactive=False, elem_id=f"learn-{lesson.key}-table")
    return inputs, run, cards, table


def build_tab(config: AppConfig) -> None:
    """Create the lessons and wire their events (inside a gr.Tab)."""
    units, vocabulary, bpe, typo = learn.LESSONS
    gr.Markdown(
        "A short path through how language models cut text into units. Each step runs the real code of the "
        "playground on its example; change the text and run it again. The other tabs go deeper."
    )
    panels = _Panels()
    with panels.panel(units.title):
        u_inputs, u_run, u_cards, u_table = _sentence_lesson(units, "Cut it", "Units per word")
    with panels.panel(vocabulary.title):
        gr.Markdown(vocabulary.body)
        gr.Image(str(FIGURES / "units_per_word.png"), show_label=False, interactive=False, elem_id="learn-upw")
    with panels.panel(bpe.title):
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
    with panels.panel(typo.title):
        t_inputs, t_run, t_cards, t_table = _sentence_lesson(typo, "Add typos and read", "Bits per byte", seed=True)
    with panels.panel(learn.GLOSSARY_TITLE):
        gr.Markdown("\n".join(f"- **{term}**: {meaning}" for term, meaning in learn.GLOSSARY.items()))
    panels.wire()

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

    u_run.click(cut, inputs=u_inputs, outputs=[u_cards, u_table], api_name="learn_units")
    b_train.click(
        train, inputs=[b_text], outputs=[stepper, b_k, b_cards, b_note, b_merges, b_curve], api_name="learn_bpe"
    )
    b_k.input(
        move,
        inputs=[stepper, b_text, b_k],
        outputs=[stepper, b_cards, b_note, b_merges, b_curve],
        api_name="learn_bpe_step",
    )
    t_run.click(on_gpu(read), inputs=t_inputs, outputs=[t_cards, t_table], api_name="learn_typo")
