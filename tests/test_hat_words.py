"""Word-level speculative decoding for HAT: lossless against plain greedy `generate_bytes`."""

from __future__ import annotations

import json

import pytest
from tiny_hat import build_tiny_hat, randomize, tiny_hat

from playground.speculative.cli import main as cli_main
from playground.speculative.hat_words import compare_words, lookup_words, speculative_generate_words

PROMPTS = ["", "The cat", "Hello world ", "über", "a b c a b c a b c a b"]


def test_lookup_words_finds_the_latest_longest_match() -> None:
    history = [b"a", b" b", b" c", b" d", b" b", b" c", b" e", b" b", b" c"]
    assert lookup_words(history, 2) == [b" e", b" b"]  # " b c" last occurred before " e"
    assert lookup_words(history, 5, max_ngram=1) == [b" e", b" b", b" c"]  # latest " c"
    assert lookup_words([b"x", b"y"], 3) == []
    assert lookup_words([], 3) == []


@pytest.mark.parametrize("wide", [False, True], ids=["one-slot", "wide"])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_output_is_identical_to_plain(seed: int, prompt: str, wide: bool) -> None:
    layout = {"encoder_mean_pool": True, "decoder_context_slots": 2} if wide else {}
    model = randomize(tiny_hat(seed=seed, **layout), std=0.3)
    comparison = compare_words(model, prompt, max_new_bytes=50)
    assert comparison.identical, (comparison.plain, comparison.speculative.output)
    assert len(comparison.plain) == 50


def _generated_words(model, prompt: str, max_new_bytes: int) -> list[bytes]:
    """The words greedy decoding writes after `prompt` (no drafts: every step spells one)."""
    plain = speculative_generate_words(model, prompt, max_new_bytes, drafter=lambda history, k: [])
    assert all(step.accepted == 0 for step in plain.steps)
    return [step.bonus for step in plain.steps]


def test_right_drafts_are_all_accepted_and_wrong_ones_are_not() -> None:
    model = randomize(tiny_hat(seed=4), std=0.3)
    prompt = "Once upon "
    words = _generated_words(model, prompt, 80)
    n_prompt = len(model.split(prompt)) - 1  # the prompt's last word is continued, not kept

    def oracle(history: list[bytes], k: int) -> list[bytes]:
        return words[len(history) - n_prompt : len(history) - n_prompt + k]

    right = speculative_generate_words(model, prompt, 80, max_draft_words=3, drafter=oracle)
    assert right.output == model.generate_bytes(prompt, max_new_bytes=80)
    drafted_steps = [s for s in right.steps if s.drafted]
    # (The last word was cut at the byte limit, so as a draft it lacks its [EOW] and fails.)
    assert len(drafted_steps) > 1 and all(s.accepted == len(s.drafted) for s in drafted_steps[:-1])
    assert right.backbone_passes < len(words)  # several words per backbone pass

    def second_wrong(history: list[bytes], k: int) -> list[bytes]:
        draft = oracle(history, k)
        return draft[:1] + [b"zz" + w for w in draft[1:2]] + draft[2:]

    wrong = speculative_generate_words(model, prompt, 80, max_draft_words=3, drafter=second_wrong)
    assert wrong.output == right.output
    assert any(len(s.drafted) >= 2 and s.accepted == 1 for s in wrong.steps)


def test_cli_runs_hat_at_the_word_level(tmp_path, capsys) -> None:
    model_dir = build_tiny_hat(tmp_path / "hat")
    args = ["--model", f"hf:{model_dir}", "--prompt", "a b c a b c a b", "--max-new-bytes", "30", "--json"]
    assert cli_main([*args, "--drafter", "prompt-lookup"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["unit"] == "word" and data["summary"]["identical"] is True
    assert data["summary"]["new_bytes"] == 30
    assert cli_main([*args, "--drafter", "token-recycling"]) == 2
    assert "prompt-lookup" in capsys.readouterr().err


def test_view_runs_hat_words_and_draws_the_word_chain(tmp_path) -> None:
    from models import registry as reg
    from playground.config import AppConfig
    from playground.ui import speculative as ui

    reg.configure(device="cpu")
    name = f"hf:{build_tiny_hat(tmp_path / 'hat')}"
    config = AppConfig(models=[name], max_text_chars=500)
    data = ui.run_speculative("a b c a b c a b", name, "prompt-lookup", None, "chain", 4, 0.0, 10, True, config=config)
    assert data["unit"] == "word" and data["summary"]["identical"] is True
    assert sum(s["new_bytes"] for s in data["steps"]) == 4 * 10  # "max new tokens" 10 = 40 bytes
    assert "words per pass" in ui.summary_markdown(data)
    fig, info, body = ui.show_step(data, 1)
    assert fig.data and "Step 1" in info and 'class="prompt"' in body
    with pytest.raises(ValueError, match="prompt-lookup"):
        ui.run_speculative("a b", name, "token-recycling", None, "chain", 4, 0.0, 10, True, config=config)
