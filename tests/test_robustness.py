"""Robustness core, next-word accuracy, CLIs and the tab's handlers, on tiny models built here."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from conftest import load_bench
from hypothesis import given, settings
from hypothesis import strategies as st

from models.family import bos_id
from models.hat import HATConfig, HATForCausalLM
from models.registry import LoadedModel, UnknownModelError, load_model
from models.scoring import score_text
from playground import evaluate as E
from playground import nextword as NW
from playground import perturb as P
from playground import robustness as R
from playground.config import AppConfig, TextInputError

TEXT = (
    "The quick brown fox jumps over the lazy dog. Tokenizers cut this sentence into pieces, "
    "and HAT keeps every word whole.\n"
)
TINY_HAT = {
    "max_word_bytes": 8,
    "encoder_hidden_size": 32, "encoder_layers": 1, "encoder_heads": 2, "encoder_intermediate_size": 64,
    "backbone_hidden_size": 48, "backbone_layers": 2, "backbone_heads": 2, "backbone_intermediate_size": 96,
    "decoder_hidden_size": 32, "decoder_layers": 1, "decoder_heads": 2, "decoder_intermediate_size": 64,
}  # fmt: skip


def _train_token(directory: Path, out: Path, steps: int) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(directory)
    tok = AutoTokenizer.from_pretrained(directory)
    ids = torch.tensor([[bos_id(tok)] + tok(TEXT, add_special_tokens=False)["input_ids"]])
    _fit(model, lambda: model(input_ids=ids, labels=ids).loss, steps, lr=5e-3)
    model.save_pretrained(out)
    tok.save_pretrained(out)


def _fit(model: torch.nn.Module, loss_fn: Callable[[], torch.Tensor], steps: int, lr: float = 1e-2) -> None:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def _hat(out: Path, steps: int) -> None:
    torch.manual_seed(0)
    model = HATForCausalLM(HATConfig(**TINY_HAT))
    if steps:
        batch = model.batch_from_texts([TEXT])
        _fit(model, lambda: model(batch).loss, steps, lr=5e-3)
    model.save_pretrained(out)


@pytest.fixture(scope="module")
def random_models(tmp_path_factory: pytest.TempPathFactory, tiny_bpe_dir: Path, tiny_byte_dir: Path) -> list[str]:
    """Untrained tiny models: HAT, BPE and byte (registry names)."""
    hat = tmp_path_factory.mktemp("rob-hat")
    _hat(hat, 0)
    return [f"hf:{hat}", f"hf:{tiny_bpe_dir}", f"hf:{tiny_byte_dir}"]


@pytest.fixture(scope="module")
def trained_models(tmp_path_factory: pytest.TempPathFactory, tiny_bpe_dir: Path, tiny_byte_dir: Path) -> list[str]:
    """Tiny HAT, BPE and byte models that have memorised TEXT (so greedy decoding hits)."""
    root = tmp_path_factory.mktemp("rob-trained")
    _hat(root / "hat", 120)
    _train_token(tiny_bpe_dir, root / "bpe", 120)
    _train_token(tiny_byte_dir, root / "byte", 120)
    return [f"hf:{root / 'hat'}", f"hf:{root / 'bpe'}", f"hf:{root / 'byte'}"]


# --------------------------------------------------------------------------- next word


def _greedy_bytes(lm: LoadedModel, context: str, n: int = 24) -> bytes:
    """Plain greedy decoding, the reference the teacher-forced computation must match."""
    if lm.tokenizer is None:
        return lm.model.generate_bytes(context, max_new_bytes=n)
    tok = lm.tokenizer
    ids = [bos_id(tok)] + tok(context, add_special_tokens=False)["input_ids"]
    out = lm.model.generate(
        torch.tensor([ids]),
        attention_mask=torch.ones(1, len(ids), dtype=torch.long),
        max_new_tokens=n,
        do_sample=False,
        pad_token_id=0,
    )[0, len(ids) :].tolist()
    data = b""
    for tid in out:
        if tid in tok.all_special_ids:
            break
        if type(tok).__name__.startswith("ByT5"):
            data += bytes([tid - 3])
        else:
            data += tok.convert_tokens_to_string([tok.convert_ids_to_tokens(tid)]).encode()
    return data


def _expected_hit(generated: bytes, target: str) -> bool:
    t = target.encode()
    if not generated.startswith(t):
        return False
    if len(generated) == len(t):
        return True
    nxt = generated[len(t)]
    return nxt < 128 and not chr(nxt).isalnum()


@pytest.mark.parametrize("kind", ["typo", "split-word"])
def test_next_word_matches_greedy_decoding(trained_models: list[str], kind: str) -> None:
    """The teacher-forced hits equal what greedy decoding from each context really writes."""
    result = P.perturb(TEXT, kind, 0.3, 3)
    assert result.n_touched > 0
    for name in trained_models:
        lm = load_model(name)
        probes = NW.probes_for(result, perturbed=True)
        assert len(probes) == len(P.words_of(TEXT)) - 1
        got = NW.next_word_hits_with(lm.model, lm.tokenizer, result.text, probes)
        expected = [
            _expected_hit(_greedy_bytes(lm, result.text[: p.context_end], len(p.target.encode()) + 2), p.target)
            for p in probes
        ]
        assert got == expected, (name, kind)


@pytest.mark.parametrize("slots", [1, 2])
def test_hat_batched_argmax_matches_stepwise_decoding(slots: int) -> None:
    """The batched decoder read of the next-word check equals the step-by-step decoder of
    generation, whatever the number of context slots the decoder reads."""
    import torch
    from tiny_hat import randomize, tiny_hat

    model = randomize(tiny_hat(seed=5, encoder_mean_pool=slots > 1, decoder_context_slots=slots), std=0.3)
    words = [b" cat", b" on", b"x", b" mat.", b"\xc3\xbc"]
    contexts = torch.randn(len(words), model.config.backbone_hidden_size)
    batched = NW._hat_decoder_argmax(model, contexts, words)
    with torch.no_grad():
        for w, word in enumerate(words):
            context = model.backbone_to_decoder(contexts[w])
            stepwise = [int(model._decoder_logits(context, word[:i], None).argmax()) for i in range(len(word) + 1)]
            assert batched[w] == stepwise


def test_trained_models_see_the_damage(trained_models: list[str]) -> None:
    res = R.analyze(trained_models, TEXT, "typo", 0.3, 1)
    for m in res.models:
        assert m.next_clean is not None and m.next_perturbed is not None
        assert m.next_clean.accuracy >= 0.8, m.name  # the text is memorised
        assert m.next_perturbed.accuracy < m.next_clean.accuracy, m.name
        assert m.bpb_perturbed > m.bpb_clean and m.rise > 0
        s = m.summary()["next_word"]
        assert s["near_positions"] > 0 and s["near_accuracy_perturbed"] <= s["near_accuracy_clean"]


def test_probes() -> None:
    result = P.perturb("ab cd, ef 12 gh.", "drop-space", 1.0, 0)
    assert result.text == "abcd, ef12 gh."  # "12" is no word, but a word may be glued to it
    probes = NW.probes_for(result)
    # "cd" (sep " "), "ef" (sep ", "); "gh" follows "12", a separator with digits: no position
    assert [(p.word, p.target) for p in probes] == [(1, " cd"), (2, ", ef")]
    assert probes[0].context_end == 2  # the dropped space maps to the end of "ab"
    assert NW.near_flags(result, probes) == [True, True]


# --------------------------------------------------------------------------- analysis


def test_analyze_matches_scoring(random_models: list[str]) -> None:
    R.CACHE.clear()
    res = R.analyze(random_models, TEXT, "misspelling", 0.2, 0, next_words=False)
    p = res.perturbation
    assert p.text != TEXT and p.n_touched == P.n_to_touch(0.2, p.n_words)
    families = [m.family for m in res.models]
    assert families == ["hat", "bpe", "byte"]
    for m in res.models:
        lm = load_model(m.name)
        assert m.bpb_clean == pytest.approx(score_text(lm, TEXT).bpb)
        assert m.bpb_perturbed == pytest.approx(score_text(lm, p.text).bpb)
        assert m.rise == pytest.approx(m.bpb_perturbed / m.bpb_clean - 1)
        assert m.clean_char_bits.shape == (len(TEXT),)
        assert m.perturbed_char_bits.shape == (len(p.text),)
        assert m.clean_char_bits.sum() == pytest.approx(m.clean.total_bits)
        assert m.units_clean == len(m.clean.units)
    assert [m.units_clean for m in res.models][2] == len(TEXT.encode())  # bytes
    payload = res.to_dict()
    json.dumps(payload, allow_nan=False)
    assert payload["perturbation"]["n_touched"] == p.n_touched
    assert set(payload["models"]) == set(random_models)
    assert R.CACHE.hits == 0 and len(R.CACHE) == 6
    R.analyze(random_models, TEXT, "misspelling", 0.2, 0, next_words=False)
    assert R.CACHE.hits == 6  # cached per (model, text)


def test_rate_zero_changes_nothing(random_models: list[str]) -> None:
    res = R.analyze(random_models[:2], TEXT, "typo", 0.0, 5)
    for m in res.models:
        assert m.rise == 0.0 and m.units_clean == m.units_perturbed
        assert np.array_equal(m.clean_char_bits, m.perturbed_char_bits)
        assert m.next_clean is not None and m.next_perturbed is not None
        assert m.next_clean.hits == m.next_perturbed.hits


@settings(max_examples=60, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("abc dé\n,ÜX")), max_size=40),
    st.sampled_from(list(P.KINDS)),
    st.integers(0, 9),
)
def test_aligned_columns(text: str, kind: str, seed: int) -> None:
    result = P.perturb(text, kind, 0.5, seed)
    cols = R.aligned_columns(result)
    assert [c.clean for c in cols if c.clean is not None] == list(range(len(text)))
    assert [c.perturbed for c in cols if c.perturbed is not None] == list(range(len(result.text)))
    for c in cols:
        if not c.changed:
            assert text[c.clean] == result.text[c.perturbed]


def test_char_bits() -> None:
    from models.family import TextScore

    score = TextScore(n_bytes=4, total_bits=10.0, byte_bits=np.array([1.0, 2.0, 3.0, 4.0]))
    assert R.char_bits(score, "aé!").tolist() == [1.0, 5.0, 4.0]
    with pytest.raises(ValueError):
        R.char_bits(score, "ab")
    assert math.isnan(R.relative_rise(0.0, 1.0))


def test_sweep_progress_cache_and_stop(random_models: list[str]) -> None:
    names = random_models[1:]
    calls: list[tuple[int, int, str]] = []
    res = R.sweep(names, TEXT, "typo", "0.2, 0, 0.1", 7, progress=lambda d, t, m: calls.append((d, t, m)))
    assert res.rates == [0.0, 0.1, 0.2] and not res.cancelled
    assert [p.rate for p in res.series(names[0])] == [0.0, 0.1, 0.2]
    assert res.series(names[0])[0].rise == 0.0
    assert calls[0][:2] == (0, 6) and calls[-1] == (6, 6, "done")
    hits = R.CACHE.hits
    again = R.sweep(names, TEXT, "typo", [0.0, 0.1, 0.2], 7)
    assert R.CACHE.hits - hits == 12  # clean + perturbed for every point, all cached
    assert [p.bpb_perturbed for p in again.points] == [p.bpb_perturbed for p in res.points]
    stops = iter([False, False, True])
    stopped = R.sweep(names, TEXT, "typo", [0.0, 0.1], 7, should_stop=lambda: next(stops))
    assert stopped.cancelled and len(stopped.points) == 2
    d = res.to_dict()
    assert d["perturbation"] == "typo" and len(d["models"][names[0]]) == 3


def test_errors(random_models: list[str]) -> None:
    with pytest.raises(TextInputError):
        R.analyze(random_models, "   ", "typo", 0.1)
    with pytest.raises(TextInputError, match="limit"):
        R.analyze(random_models, "x" * 50, "typo", 0.1, max_chars=10)
    with pytest.raises(P.UnknownPerturbationError, match="Valid kinds"):
        R.analyze(random_models, TEXT, "typos", 0.1)
    with pytest.raises(UnknownModelError):
        R.analyze(["no-such-model"], TEXT, "typo", 0.1)
    with pytest.raises(R.RobustnessError, match="at least one model"):
        R.analyze([], TEXT, "typo", 0.1)
    with pytest.raises(P.PerturbError):
        R.analyze(random_models, TEXT, "typo", 2.0)
    with pytest.raises(R.RobustnessError, match="Bad rate"):
        R.parse_rates("0,lots")
    with pytest.raises(R.RobustnessError):
        R.parse_rates("")


# --------------------------------------------------------------------------- CLIs


def test_robustness_cli(random_models: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "t.txt"
    f.write_text(TEXT, encoding="utf-8")
    args = ["--models", ",".join(random_models[:2]), "--text", str(f), "--perturb", "upper", "--rates", "0,0.1"]
    assert R.main([*args, "--seed", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["perturbation"] == "upper" and out["seed"] == 2 and out["rates"] == [0.0, 0.1]
    for series in out["models"].values():
        assert [p["rate"] for p in series] == [0.0, 0.1] and series[0]["rise"] == 0.0
    assert R.main([*args, "--next-word"]) == 0
    assert "next word" in capsys.readouterr().out
    assert R.main(["--models", "nope", "--text", str(f)]) == 2
    assert "Unknown model" in capsys.readouterr().err
    assert R.main(["--models", random_models[1], "--text", str(f), "--perturb", "nope"]) == 2


def test_evaluate_perturb(random_models: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "t.txt"
    f.write_text(TEXT, encoding="utf-8")
    names = ",".join(random_models[:2])
    assert E.main(["--models", names, "--text", str(f), "--perturb", "typo:0.2", "--seed", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["perturbation"]["kind"] == "typo" and out["perturbation"]["seed"] == 3
    for name in random_models[:2]:
        r = out["models"][name]
        assert r["bpb_clean"] == r["bpb"]
        assert r["rise"] == pytest.approx(r["bpb_perturbed"] / r["bpb_clean"] - 1, abs=1e-5)
        expected = score_text(load_model(name), P.perturb(TEXT, "typo", 0.2, 3).text).bpb
        assert r["bpb_perturbed"] == pytest.approx(expected, abs=1e-5)
    assert E.main(["--models", names, "--text", str(f), "--perturb", "typo"]) == 2
    assert "KIND:RATE" in capsys.readouterr().err
    assert E.main(["--models", names, "--text", str(f), "--perturb", "nope:0.1"]) == 2


# --------------------------------------------------------------------------- the tab's handlers


def test_tab_handlers(random_models: list[str]) -> None:
    from playground.ui import robustness as U

    config = AppConfig(models=random_models, max_text_chars=500)
    text = 'The quick <b id="x">brown</b> fox & the lazy dog.'
    texts_html, frame, heat, payload = U.run_compare(text, random_models, "typo", 0.5, 1, config=config)
    assert "<b " not in texts_html and "</b>" not in texts_html and texts_html.count("&lt;") == 4  # both texts
    assert texts_html.count('class="rb-del') == payload["perturbation"]["n_touched"]
    assert list(frame["model"]) == random_models
    assert heat.count('class="rb-row clean"') == heat.count('class="rb-row pert"')
    assert heat.count('data-variant="perturbed"') == 3 * heat.count('class="rb-chunk"')
    assert "<b " not in heat
    nw = U.run_next_word(text, ",".join(random_models), "typo", 0.5, 1, config=config)
    assert list(nw["model"]) == random_models and (nw["positions"] > 0).all()
    with pytest.raises(gr.Error, match="Please enter some text"):
        U.run_compare("", random_models, "typo", 0.1, 0, config=config)
    with pytest.raises(gr.Error, match="limit"):
        U.run_compare("x" * 501, random_models, "typo", 0.1, 0, config=config)
    with pytest.raises(gr.Error, match="Unknown model"):
        U.run_compare(text, ["gpt-9"], "typo", 0.1, 0, config=config)
    with pytest.raises(gr.Error, match="Unknown perturbation"):
        U.run_compare(text, random_models, "nope", 0.1, 0, config=config)
    with pytest.raises(gr.Error, match="whole number"):
        U.run_compare(text, random_models, "typo", 0.1, 1.5, config=config)

    frames = list(U.run_sweep(text, random_models[1:], "upper", 0, 0.1, config=config))
    assert len(frames) == 4 * 2 + 1  # a chart per (rate, model) point, then the final one
    fig, status = frames[-1]
    assert status.startswith("Done") and len(fig.data) == 2
    assert list(fig.data[0].x) == [0, 10, 20, 30]
    with pytest.raises(gr.Error, match="step"):
        list(U.run_sweep(text, random_models, "upper", 0, 0.5, config=config))


# --------------------------------------------------------------------------- the report


def test_report_generator(random_models: list[str], tmp_path: Path) -> None:
    report = load_bench("robustness_report")
    text = tmp_path / "val.txt"
    text.write_text((TEXT + "\n") * 4, encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{report.README_START}\nold\n{report.README_END}\n\nafter\n", encoding="utf-8")
    out = tmp_path / "reports" / "robustness.md"
    args = [
        "--models", ",".join(random_models), "--text", str(text), "--max-bytes", "300", "--kinds", "typo,misspelling,upper",
        "--sweep-kinds", "typo", "--sweep-rates", "0,0.2", "--next-word-bytes", "150", "--out", str(out),
        "--no-plots", "--readme", str(readme),
    ]  # fmt: skip
    assert report.main(args) == 0
    md = out.read_text(encoding="utf-8")
    assert "## Headline" in md and "| misspelling |" in md and "### typo" in md and "Next-word accuracy" in md
    assert "HAT's rise is" in md  # the verdict is stated, whichever way it goes
    data = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert set(data["kinds"]) == {"typo", "misspelling", "upper"} and data["bytes"] <= 300
    assert [p["rate"] for p in data["sweeps"]["typo"][random_models[0]]] == [0.0, 0.2]
    new_readme = readme.read_text(encoding="utf-8")
    assert "old" not in new_readme and "| typo |" in new_readme and new_readme.endswith("after\n")
    assert report.main([*args[:2], "--text", str(tmp_path / "missing.txt")]) == 2
