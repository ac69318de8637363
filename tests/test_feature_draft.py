"""The feature draft head's data and training scripts, end to end on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from conftest import SENTENCES

import models  # noqa: F401  (OMP_WAIT_POLICY before torch threads start)
from models.feature_draft import FeatureDraftHead, layer_states, load_feature_head
from playground.speculative.prompts import GROUNDED_PROMPT, OPEN_ENDED_PROMPT
from training.feature_draft_data import build_prompts, load_shards
from training.feature_draft_data import main as data_main
from training.train_feature_draft import answer_start, draft_vocabulary, make_batch, split
from training.train_feature_draft import main as train_main

NOUNS = [f"{c}{v}nter" for c in "bcdfghjklmnprst" for v in "aeiou"]  # 75 made-up nouns
CORPUS = "\n".join(
    f"The {a} met a {b} near the {a}, and the {b} said hello to the {a}."
    for a, b in zip(NOUNS, NOUNS[1:] + NOUNS[:1], strict=True)
)


def test_prompts_are_deterministic_and_generic() -> None:
    first, again, other = (
        build_prompts(CORPUS * 20, 50, 0),
        build_prompts(CORPUS * 20, 50, 0),
        build_prompts(CORPUS * 20, 50, 1),
    )
    assert first == again and first != other and len(first) == 50
    assert any("\n\n" in p for p in first) and any("\n\n" not in p for p in first)  # passage and topic tasks
    assert GROUNDED_PROMPT not in first and OPEN_ENDED_PROMPT not in first


def test_batches_pair_each_feature_with_the_next_token_and_targets() -> None:
    seqs = [
        {
            "ids": torch.tensor([5, 6, 7, 8]),
            "features": torch.randn(4, 3).half(),
            "labels": torch.tensor([6, 7, 9, 2]),
        },
        {"ids": torch.tensor([1, 2]), "features": torch.randn(2, 3).half(), "labels": torch.tensor([2, 4])},
    ]
    vocab = draft_vocabulary(seqs, 4, always=[2])
    assert vocab[0] == 2 and len(vocab) == 4
    index_of = torch.full((10,), -100, dtype=torch.long)
    index_of[vocab] = torch.arange(len(vocab))
    batch = make_batch(seqs, index_of)
    assert batch["ids"].tolist() == [[6, 7, 8], [2, 0, 0]]
    assert batch["mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    torch.testing.assert_close(batch["inputs"][0], seqs[0]["features"][:3].float())
    torch.testing.assert_close(batch["targets"][0], seqs[0]["features"][1:].float())
    assert batch["labels"][0].tolist() == index_of[torch.tensor([7, 9, 2])].tolist()
    assert batch["labels"][1, 1:].tolist() == [-100, -100]
    assert not batch["answer"].any()  # no answer_start: corpus windows
    seqs[0]["answer_start"] = 3  # answer ids[3:] = [8]: position 1 predicts it, position 2 what follows
    assert make_batch(seqs, index_of)["answer"].tolist() == [[False, True, True], [False, False, False]]
    train, held = split(list(range(45)), every=20)  # type: ignore[arg-type]
    assert held == [0, 20, 40] and len(train) == 42


def test_answer_start_follows_the_last_header() -> None:
    header = [1, 520, 198]
    assert answer_start([1, 9, 198, 1, 520, 198, 7, 1, 520, 198, 42, 43], header) == 10
    assert answer_start([5, 6, 7], header) is None
    assert answer_start([1, 520, 198], header) == 3  # an empty answer
    assert answer_start([5, 6], []) is None


def test_data_then_training_then_drafting(tiny_bpe_dir: Path, tmp_path: Path) -> None:
    """Corpus windows through the target, a short training run, and the saved head drafts."""
    from models.registry import load_model
    from playground.speculative.drafters import DraftSettings, make_drafter
    from playground.speculative.engine import plain_generate, speculative_generate

    corpus = tmp_path / "train.txt"
    corpus.write_text("\n".join(SENTENCES * 10) + "\n" + CORPUS * 4, encoding="utf-8")
    name = f"hf:{tiny_bpe_dir}"
    data = tmp_path / "data"
    args = ["--target", name, "--source", "corpus", "--corpus", str(corpus), "--out", str(data)]
    assert data_main([*args, "--window", "16", "--batch", "8", "--minutes", "1"]) == 0
    shards = sorted(data.glob("shard_*.pt"))
    assert shards
    first = torch.load(shards[0], weights_only=True)[0]
    assert first["features"].shape == (16, 32) and first["labels"].shape == (16,)

    out = tmp_path / "head"
    train_args = ["--target", name, "--data", str(data), "--extra-data", "--out", str(out), "--minutes", "0.05"]
    assert train_main([*train_args, "--batch", "4", "--draft-vocab", "64", "--mixed-precision", "no"]) == 0
    meta = json.loads((out / "training.json").read_text())
    assert meta["steps"] >= 1 and 0.0 <= meta["held_out"]["acc_depth1"] <= 1.0 and meta["draft_vocab"] <= 64
    assert "# Feature draft head" in (out / "README.md").read_text()
    assert (out / "train_log.csv").read_text().startswith("step,")
    again = tmp_path / "head2"  # a second phase continues from the first head
    args2 = [*train_args[:-4], "--out", str(again), "--minutes", "0.05", "--init-from", str(out)]
    assert train_main([*args2, "--batch", "4", "--mixed-precision", "no"]) == 0
    meta2 = json.loads((again / "training.json").read_text())
    assert [p["steps"] for p in meta2["earlier_phases"]] == [meta["steps"]]
    assert (again / "train_log_phase1.csv").read_text() == (out / "train_log.csv").read_text()
    assert "continuing (`--init-from`) from 1 earlier run" in (again / "README.md").read_text()
    first_vocab = FeatureDraftHead.from_pretrained(str(out)).draft_vocab
    assert torch.equal(FeatureDraftHead.from_pretrained(str(again)).draft_vocab, first_vocab)

    target = load_model(name).model
    head = load_feature_head(out, target)
    prompt = target.config.bos_token_id, 40, 41, 42, 40, 41
    drafter = make_drafter("feature-head", target, DraftSettings(6, 4), draft_model=head, shape="dynamic")
    spec = speculative_generate(target, list(prompt), drafter, max_new_tokens=12)
    assert spec.output_ids == plain_generate(target, list(prompt), max_new_tokens=12).output_ids


def test_training_time_test_sees_what_drafting_sees(tiny_bpe_dir: Path) -> None:
    """EAGLE-3's training-time test: the head's output at draft step s and position j, computed for
    every position at once with `ttt_mask`, equals drafting it: the target's fused features up to
    j - s in the head's cache, then s steps fed the head's own outputs one at a time."""
    from transformers import DynamicCache

    from models.feature_draft import FeatureDraftConfig
    from models.registry import load_model
    from training.train_feature_draft import ttt_losses, ttt_mask, ttt_outputs

    target = load_model(f"hf:{tiny_bpe_dir}").model
    torch.manual_seed(0)
    config = FeatureDraftConfig.for_target(target, "tiny", 16, feature_layers=[0, 1, 2])
    config._attn_implementation = "sdpa"
    head = FeatureDraftHead(config).attach_target(target).eval()
    hidden, n = config.hidden_size, 9
    layer_inputs = torch.randn(2, n, 3 * hidden)
    ids = torch.randint(4, 60, (2, n))
    mask = torch.ones(2, n, dtype=torch.long)
    mask[1, 6:] = 0  # a shorter second sequence, right-padded
    with torch.no_grad():
        outputs = ttt_outputs(head, layer_inputs, ids, mask, steps=3)
        for row, length in ((0, n), (1, 6)):
            for step in range(3):
                for j in range(step, length):
                    cache = DynamicCache()
                    start = j - step
                    context = head.fuse_features(layer_inputs[row : row + 1, : start + 1])
                    out = head(context, ids[row : row + 1, : start + 1], past_key_values=cache, use_cache=True)
                    guess = out[:, -1:]
                    for r in range(1, step + 1):
                        at = start + r
                        guess = head(
                            guess,
                            ids[row : row + 1, at : at + 1],
                            position_ids=torch.tensor([[at]]),
                            past_key_values=cache,
                            use_cache=True,
                        )
                    torch.testing.assert_close(outputs[step][row, j], guess[0, -1], atol=1e-5, rtol=1e-4)
    assert all(torch.isfinite(o).all() for o in outputs)  # padded positions stay finite too
    # The mask itself: step 2 at position 5 sees step 0 up to 3, step 1 at 4, step 2 at 5.
    seen = ttt_mask(torch.ones(1, 8, dtype=torch.long), 2)[0, 0, 5].nonzero().flatten().tolist()
    assert seen == [0, 1, 2, 3, 8 + 4, 16 + 5]
    batch = {"layer_inputs": layer_inputs, "ids": ids, "mask": mask, "answer": mask.bool()}
    batch["labels"] = torch.randint(0, 16, (2, n)).masked_fill(~mask.bool(), -100)
    head.train()
    loss, stats = ttt_losses(head, batch, steps=3)
    loss.backward()
    assert head.fuse.weight.grad is not None and head.fuse.weight.grad.abs().sum() > 0
    assert [s[3] for s in stats] == [15, 13, 11]  # positions with a chain of `step` guesses behind them


def test_an_eagle3_head_trains_on_layer_features(tiny_bpe_dir: Path, tmp_path: Path) -> None:
    """The data records the target's low, middle and high layers; `--ttt-steps` trains an EAGLE-3
    head on them, saved with its layers, reloadable and reading what the data recorded."""
    from models.registry import load_model
    from training.feature_draft_data import eagle3_layers

    corpus = tmp_path / "train.txt"
    corpus.write_text("\n".join(SENTENCES * 10) + "\n" + CORPUS * 4, encoding="utf-8")
    name, data = f"hf:{tiny_bpe_dir}", tmp_path / "data"
    args = ["--target", name, "--source", "corpus", "--corpus", str(corpus), "--out", str(data)]
    assert data_main([*args, "--window", "16", "--batch", "8", "--minutes", "1"]) == 0
    first = torch.load(min(data.glob("shard_*.pt")), weights_only=True)[0]
    target = load_model(name).model
    layers = eagle3_layers(target.config.num_hidden_layers)
    with torch.no_grad():
        states = target.model(input_ids=first["ids"][None].long(), output_hidden_states=True).hidden_states
    expected = torch.cat([states[i] for i in layers], dim=-1)[0].to(torch.float16)  # by hand, not layer_states
    torch.testing.assert_close(first["layer_features"], expected, atol=2e-3, rtol=1e-2)

    out = tmp_path / "head"
    train_args = ["--target", name, "--data", str(data), "--extra-data", "--out", str(out), "--minutes", "0.05"]
    assert (
        train_main([*train_args, "--batch", "4", "--draft-vocab", "64", "--mixed-precision", "no", "--ttt-steps", "2"])
        == 0
    )
    meta = json.loads((out / "training.json").read_text())
    assert meta["ttt_steps"] == 2 and meta["feature_layers"] == list(layers)
    assert 0.0 <= meta["held_out"]["acc_depth2"] <= 1.0
    assert "EAGLE-3 draft head" in (out / "README.md").read_text()
    head = load_feature_head(out, target)
    assert head.config.feature_layers == list(layers) and head.fuse is not None
    with torch.no_grad():
        fused = head.fuse_features(layer_states(states, head.config.feature_layers))
    assert fused.shape == (1, len(first["ids"]), target.config.hidden_size)


def test_the_bench_unseen_prompts_are_never_training_prompts() -> None:
    """`bench/speculative.py --prompt-set unseen` measures text the heads were not trained on: no
    training prompt (either template set, several seeds) contains one of its prompts, nor the
    reverse, and none shares its opening words with one."""
    from playground.speculative.prompts import UNSEEN_OPEN_ENDED

    assert len(UNSEEN_OPEN_ENDED) >= 8
    unseen = [p.lower() for p in UNSEEN_OPEN_ENDED.values()]
    openings = {" ".join(p.split()[:4]) for p in unseen}
    for prompt_set in ("v1", "wide"):
        for seed in range(3):
            for prompt in build_prompts(CORPUS * 20, 400, seed=seed, prompt_set=prompt_set):
                low = prompt.lower()
                assert not any(u in low or low in u for u in unseen), prompt
                assert " ".join(low.split()[:4]) not in openings, prompt


def test_exported_ids_record_the_same_shards_again(tiny_bpe_dir: Path, tmp_path: Path) -> None:
    """Generation is the costly part: its token ids export to one small file, from which a
    teacher-forced pass records the same sequences (ids, labels, features) again, in shards of
    `--batch` sequences as answer generation writes them (so a generation run resumes after them)."""
    corpus = tmp_path / "train.txt"
    corpus.write_text("\n".join(SENTENCES * 10) + "\n" + CORPUS * 4, encoding="utf-8")
    name, data, again = f"hf:{tiny_bpe_dir}", tmp_path / "data", tmp_path / "again"
    common = ["--target", name, "--corpus", str(corpus), "--batch", "8"]
    assert data_main([*common, "--source", "corpus", "--out", str(data), "--window", "16", "--minutes", "1"]) == 0
    ids_file = tmp_path / "ids.safetensors"
    assert data_main([*common, "--out", str(data), "--export-ids", str(ids_file)]) == 0
    assert ids_file.stat().st_size < sum(p.stat().st_size for p in data.glob("shard_*.pt")) / 20
    assert data_main([*common, "--out", str(again), "--from-ids", str(ids_file)]) == 0

    assert all(len(torch.load(p, weights_only=True)) == 8 for p in sorted(again.glob("shard_*.pt"))[:-1])
    first, second = load_shards(data), load_shards(again)
    assert len(first) == len(second) > 8
    for x, y in zip(first, second, strict=True):
        assert torch.equal(x["ids"], y["ids"]) and torch.equal(x["labels"], y["labels"])
        torch.testing.assert_close(x["layer_features"], y["layer_features"], atol=2e-3, rtol=1e-2)
