"""Learn tab: a guided path through tokenization, one lesson per step, each running a real core."""

from __future__ import annotations

import html
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from playground import bpe_steps, learn, links, segment
from playground.config import AppConfig
from playground.ui import speculative as spec_ui
from playground.ui.attention import heatmap_figure
from playground.ui.common import LIGHT_POOL, MODEL_POOL, on_gpu, short_name, user_errors
from playground.ui.links import TabState, TryIt, replay_trigger
from playground.ui.segment import CSS, render_html

KEY = "learn"  # the tab's name in links

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
    def show(piece: bytes) -> str:
        return segment.visible(bpe_steps.show_bytes(piece))

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
            f"Merge {step.k}: “{html.escape(segment.visible(bpe_steps.show_bytes(m.left)))}” + "
            f"“{html.escape(segment.visible(bpe_steps.show_bytes(m.right)))}” → “{html.escape(segment.visible(bpe_steps.show_bytes(m.merged)))}”, "
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


def hat_view(text: str, config: AppConfig) -> tuple[str, go.Figure, pd.DataFrame]:
    lesson = learn.hat_lesson(text, config.models)
    words = "".join(f'<span class="u c{i % 6}">{html.escape(w)}</span>' for i, w in enumerate(lesson.words))
    cards = f'<div class="seg-card"><div class="seg-units">{words}</div></div>'
    fig = heatmap_figure([lesson.maps[level] for level in ("encoder", "backbone", "decoder")])
    what = {
        "encoder": "bytes of each word, plus one [WORD] summary per word",
        "backbone": "[BOS] and one vector per word",
        "decoder": "backbone context and bytes, per word",
    }
    rows = [{"level": lvl, "positions": n, "what they are": what[lvl]} for lvl, n in lesson.units.items()]
    return cards, fig, pd.DataFrame(rows)


def speculative_view(prompt: str, config: AppConfig) -> tuple[str, go.Figure, str]:
    data = learn.speculative_lesson(prompt, config.models)
    best = data["best_step"]
    s = data["summary"]
    same = "**identical** ✓" if data["identical"] else "**different** ✗ (a bug: please report it)"
    note = (
        f"{data['model']} wrote {s['new_tokens']} tokens. Plain decoding took {data['plain_passes']} passes of "
        f"the model; with drafts it took {s['steps']} ({s['tokens_per_forward']:.2f} tokens per pass). The two "
        f"texts are {same}. The tree below is step {best}, the one that accepted most: "
        + spec_ui.step_markdown(data, best)
    )
    return note, spec_ui.tree_figure(data["steps"][best] if data["steps"] else None), spec_ui.text_html(data, best)


# ------------------------------------------------------------------------------------------ layout


N_STEPS = len(learn.LESSONS) + 1  # the lessons, then the glossary
MAX_MERGES = 60  # the BPE lesson learns this many merges at most
LESSON_KEYS = tuple(lesson.key for lesson in learn.LESSONS) + ("glossary",)


class _Panels:
    """The lessons' accordion panels, one open at a time, each ending in Back / Next buttons (and a
    "try it" button when the lesson has a full tab). `current` holds the open lesson's key."""

    def __init__(self) -> None:
        self.accordions: list[gr.Accordion] = []
        self.buttons: list[tuple[gr.Button | None, gr.Button | None]] = []
        self.current = gr.State(LESSON_KEYS[0])

    @contextmanager
    def panel(self, title: str, try_it: str | None = None) -> Iterator[list[gr.Button | None]]:
        i = len(self.accordions)
        with gr.Accordion(title, open=i == 0, elem_id=f"learn-step-{i}") as acc:
            button: list[gr.Button | None] = [None]  # the "try it" button, made after the lesson's content
            yield button
            with gr.Row():
                back = gr.Button("← Back", size="sm", elem_id=f"learn-back-{i}") if i > 0 else None
                if try_it:
                    button[0] = gr.Button(
                        f"Try it: open {try_it} →", size="sm", variant="secondary", elem_id=f"learn-try-{i}"
                    )
                forward = (
                    gr.Button("Next →", size="sm", variant="primary", elem_id=f"learn-next-{i}")
                    if i < N_STEPS - 1
                    else None
                )
        self.accordions.append(acc)
        self.buttons.append((back, forward))

    def go_to(self, target: int) -> list[Any]:
        return [*(gr.Accordion(open=i == target) for i in range(len(self.accordions))), LESSON_KEYS[target]]

    def wire(self) -> None:
        """Back / Next open the neighbour and close the rest (once every panel exists)."""
        outputs = [*self.accordions, self.current]
        for i, (back, forward) in enumerate(self.buttons):
            if back is not None:
                back.click(lambda i=i: self.go_to(i - 1), outputs=outputs, api_name=False)
            if forward is not None:
                forward.click(lambda i=i: self.go_to(i + 1), outputs=outputs, api_name=False)
        for i, acc in enumerate(self.accordions):  # a panel opened by hand is the current one
            acc.expand(lambda i=i: LESSON_KEYS[i], outputs=self.current, api_name=False)


@dataclass
class SentenceLesson:
    """A lesson on one sentence: its inputs (the text, maybe a typo seed), a run button, the cut
    as cards, a table, its "try it" button (filled in once the panel closes), and ``extra``
    components a lesson adds below (a plot, a note)."""

    inputs: list[gr.components.Component]
    run: gr.Button
    cards: gr.HTML
    table: gr.Dataframe | None
    try_it: list[gr.Button | None]
    extra: list[gr.components.Component] = field(default_factory=list)


@dataclass
class BPELesson:
    """The BPE lesson: its training text, the learnt stepper, the merge slider and what it shows
    (``outputs()``: in the order `train` returns them)."""

    text: gr.Textbox
    train: gr.Button
    stepper: gr.State
    k: gr.Slider
    note: gr.Markdown
    cards: gr.HTML
    merges: gr.Dataframe
    curve: gr.Plot
    try_it: list[gr.Button | None]

    def outputs(self) -> list[Any]:
        return [self.stepper, self.k, self.cards, self.note, self.merges, self.curve]


@dataclass
class Lessons:
    """Every lesson panel of the tab."""

    panels: _Panels
    units: SentenceLesson
    vocabulary_try: list[gr.Button | None]
    bpe: BPELesson
    typo: SentenceLesson
    hat: SentenceLesson
    speculative: SentenceLesson


def _sentence_lesson(
    lesson: learn.Lesson,
    button: str,
    table_label: str | None,
    try_it: list[gr.Button | None],
    seed: bool = False,
    css: str = CSS,
) -> SentenceLesson:
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
    cards = gr.HTML(css_template=css, elem_id=f"learn-{lesson.key}-cards")
    table = (
        gr.Dataframe(label=table_label, interactive=False, elem_id=f"learn-{lesson.key}-table")
        if table_label
        else None
    )
    return SentenceLesson(inputs, run, cards, table, try_it)


def _bpe_lesson(lesson: learn.Lesson, try_it: list[gr.Button | None]) -> BPELesson:
    """The BPE lesson: learn merges on a text, then step through them with a slider."""
    gr.Markdown(lesson.body)
    stepper = gr.State(None)
    with gr.Row():
        text = gr.Textbox(
            value=lesson.example.strip(),
            label=f"Training text (at most {bpe_steps.MAX_TRAIN_CHARS:,} characters)",
            lines=4,
            scale=3,
            elem_id="learn-bpe-text",
        )
        train = gr.Button("Learn merges", variant="primary", scale=1, elem_id="learn-bpe-train")
    k = gr.Slider(0, MAX_MERGES, value=0, step=1, label="k: merges applied", elem_id="learn-bpe-k")
    note = gr.Markdown(elem_id="learn-bpe-note")
    cards = gr.HTML(css_template=CSS, elem_id="learn-bpe-cards")
    with gr.Row():
        merges = gr.Dataframe(label="Merge table (newest first)", interactive=False, elem_id="learn-bpe-merges")
        curve = gr.Plot(label="Units per word as merges grow", elem_id="learn-bpe-curve")
    return BPELesson(text, train, stepper, k, note, cards, merges, curve, try_it)


def _lessons() -> Lessons:
    """The panels, one per lesson, then the glossary."""
    units, vocabulary, bpe, typo, hat, spec = learn.LESSONS
    panels = _Panels()
    with panels.panel(units.title, "Token boundaries") as try_it:
        units_lesson = _sentence_lesson(units, "Cut it", "Units per word", try_it)
    with panels.panel(vocabulary.title, "Adaptation") as vocabulary_try:
        gr.Markdown(vocabulary.body)
        gr.Image(str(FIGURES / "units_per_word.png"), show_label=False, interactive=False, elem_id="learn-upw")
    with panels.panel(bpe.title, "Token boundaries") as try_it:
        bpe_lesson = _bpe_lesson(bpe, try_it)
    with panels.panel(typo.title, "Robustness") as try_it:
        typo_lesson = _sentence_lesson(typo, "Add typos and read", "Bits per byte", try_it, seed=True)
    with panels.panel(hat.title, "Attention maps") as try_it:
        hat_lesson = _sentence_lesson(hat, "Read it", "Positions at each level", try_it)
        hat_lesson.extra = [
            gr.Plot(label="Attention, last layer of each level (mean of heads)", elem_id="learn-hat-plot")
        ]
    with panels.panel(spec.title, "Speculative decoding") as try_it:
        spec_lesson = _sentence_lesson(spec, "Decode both ways", None, try_it, css=spec_ui.CSS)
        spec_lesson.extra = [
            gr.Markdown(elem_id="learn-speculative-note"),
            gr.Plot(label="Draft tree of one step", elem_id="learn-speculative-tree"),
        ]
    with panels.panel(learn.GLOSSARY_TITLE):
        gr.Markdown("\n".join(f"- **{term}**: {meaning}" for term, meaning in learn.GLOSSARY.items()))
    return Lessons(panels, units_lesson, vocabulary_try, bpe_lesson, typo_lesson, hat_lesson, spec_lesson)


# A lesson's event: its function, its inputs and its outputs.
LessonEvent = tuple[Any, list[Any], list[Any]]


def _wire_lessons(config: AppConfig, ls: Lessons) -> dict[str, LessonEvent]:
    """Each lesson's run button (and the BPE slider); returns each lesson's event for the replay."""

    @user_errors
    def cut(text: str) -> tuple[str, pd.DataFrame]:
        return units_view(text, config)

    @user_errors
    def train(
        text: str, k: float | None = None
    ) -> tuple[bpe_steps.BPEStepper, Any, str, str, pd.DataFrame, go.Figure]:
        s = bpe_steps.BPEStepper(text, MAX_MERGES)
        k = min(10 if k is None else int(k), s.n_merges)
        return (s, gr.Slider(maximum=s.n_merges, value=k), *bpe_view(s, k))

    @user_errors
    def move(s: bpe_steps.BPEStepper | None, text: str, k: float) -> tuple[Any, ...]:
        if s is None:  # the slider moved before "Learn merges": learn from the box's text first
            s = bpe_steps.BPEStepper(text, MAX_MERGES)
        return (s, *bpe_view(s, min(int(k), s.n_merges)))

    @user_errors
    def read(text: str, seed: float) -> tuple[str, pd.DataFrame]:
        return typo_view(text, seed, config)

    @user_errors
    def read_hat(text: str) -> tuple[str, go.Figure, pd.DataFrame]:
        return hat_view(text, config)

    @user_errors
    def decode(prompt: str) -> tuple[str, go.Figure, str]:
        return speculative_view(prompt, config)

    u, b, t, h, s = ls.units, ls.bpe, ls.typo, ls.hat, ls.speculative
    (hat_plot,) = h.extra
    spec_note, spec_tree = s.extra
    lessons: dict[str, LessonEvent] = {
        "units": (cut, u.inputs, [u.cards, u.table]),
        "bpe": (train, [b.text, b.k], b.outputs()),
        "typo": (read, t.inputs, [t.cards, t.table]),
        "hat": (read_hat, h.inputs, [h.cards, hat_plot, h.table]),
        "speculative": (decode, s.inputs, [spec_note, spec_tree, s.cards]),
    }
    u.run.click(cut, inputs=u.inputs, outputs=lessons["units"][2], api_name="learn_units", **LIGHT_POOL)
    b.train.click(train, inputs=[b.text], outputs=b.outputs(), api_name="learn_bpe", **LIGHT_POOL)
    b.k.input(
        move,
        inputs=[b.stepper, b.text, b.k],
        outputs=[b.stepper, b.cards, b.note, b.merges, b.curve],
        api_name="learn_bpe_step",
        **LIGHT_POOL,
    )
    for key, lesson in (("typo", t), ("hat", h), ("speculative", s)):
        fn, inputs, outputs = lessons[key]
        lesson.run.click(on_gpu(fn), inputs=inputs, outputs=outputs, api_name=f"learn_{key}", **MODEL_POOL)
    return lessons


def _wire_replay(panels: _Panels, lessons: dict[str, LessonEvent]) -> gr.State:
    """A shared link opens its lesson and runs it on the link's text; returns the trigger."""
    all_inputs = [i for _, inputs, _ in lessons.values() for i in inputs]
    all_outputs = list(dict.fromkeys(o for _, _, outputs in lessons.values() for o in outputs))

    def replay_lesson(key: str, *values: Any) -> list[Any]:
        given = dict(zip(all_inputs, values, strict=True))
        updates: dict[Any, Any] = {}
        if key in lessons:
            fn, inputs, outputs = lessons[key]
            updates = dict(zip(outputs, fn(*(given[i] for i in inputs)), strict=True))
        return [*panels.go_to(LESSON_KEYS.index(key))[:-1], *(updates.get(o, gr.skip()) for o in all_outputs)]

    replay = replay_trigger()
    replay.change(
        on_gpu(replay_lesson),
        [panels.current, *all_inputs],
        [*panels.accordions, *all_outputs],
        api_name=False,
        **MODEL_POOL,
    )
    return replay


def build_tab(config: AppConfig) -> TabState:
    """Create the lessons and wire their events (inside a gr.Tab)."""
    gr.Markdown(
        "A short path through how language models cut text into units. Each step runs the real code of the "
        "playground on its example; change the text and run it again, or open the full tab with **Try it**."
    )
    ls = _lessons()
    ls.panels.wire()
    replay = _wire_replay(ls.panels, _wire_lessons(config, ls))
    u, b, t, h, s = ls.units, ls.bpe, ls.typo, ls.hat, ls.speculative
    shared = {"lesson": ls.panels.current, "text": u.inputs[0], "bpe_text": b.text, "k": b.k}
    shared |= {"typo_text": t.inputs[0], "seed": t.inputs[1], "hat_text": h.inputs[0], "prompt": s.inputs[0]}
    bounds = {
        "lesson": links.Field("choice", choices=LESSON_KEYS),
        "k": links.Field("int", 0, MAX_MERGES),
        "bpe_text": links.Field("text", max_chars=bpe_steps.MAX_TRAIN_CHARS),
    }
    tiny_units = ["bytes", "bpe-tiny", "hat-words"]
    try_its = [
        TryIt(u.try_it[0], "segment", {"text": u.inputs[0], "units": tiny_units}),
        TryIt(ls.vocabulary_try[0], "adaptation", {"language": "de"}),
        TryIt(b.try_it[0], "segment", {"text": b.text, "units": tiny_units, "typos": True}),
        TryIt(
            t.try_it[0], "robustness", {"text": t.inputs[0], "perturbation": "typo", "rate": 0.3, "seed": t.inputs[1]}
        ),
        TryIt(h.try_it[0], "attention", {"text": h.inputs[0], "model_a": "hat-tiny", "level": "encoder"}),
        TryIt(s.try_it[0], "speculative", {"prompt": s.inputs[0], "target": "bpe-tiny", "drafter": "prompt-lookup"}),
    ]
    return TabState(KEY, shared, replay, bounds, try_its)
