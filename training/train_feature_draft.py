"""Train a feature draft head (see ``models/feature_draft.py``) on self-distillation data.

Usage::

    python -m training.feature_draft_data --target smollm2-135m        # answers (runs/feature-draft/data)
    python -m training.feature_draft_data --target smollm2-135m --source corpus --out runs/feature-draft/corpus
    python -m training.train_feature_draft --target smollm2-135m --minutes 25 \
        [--data runs/feature-draft/data] [--out assets/models/feature-draft/smollm2-135m]

The same script runs on several GPUs with ``accelerate launch``. Every 20th sequence of the
answers is held out; the extra (corpus) shards only train. Loss per position ``j`` (inputs: the target's feature ``h_j`` and the token
``t_{j+1}``): smooth L1 between the predicted and the target's feature ``h_{j+1}``, plus
cross-entropy of the draft logits against the target's greedy token after ``j+1``
(EAGLE's two losses). Input features get uniform noise (EAGLE). With ``--ttt-steps K`` the head
is EAGLE-3's instead: it reads the target's low, middle and high layers (``layer_features`` of the
data), fused, and is trained on the token loss alone over K draft steps, each step's inputs the
head's own outputs of the step before, attending as drafting does (training-time test,
``ttt_mask``). With ``--unroll 2`` a second
pass feeds the head its own predicted features instead of the target's, with the same
losses, so that it learns to draft a second token from its first guess (the situation of
every depth beyond 1 when drafting). Learning rate: warm-up, then cosine decay over the
time budget. The log (CSV) has step, seconds, sequences seen, losses and held-out top-1
accuracy at depth 1 and 2 (the latter with the head's own features as context).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import collections
import csv
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from transformers import PreTrainedTokenizerBase

from models.feature_draft import SHIPPED_HEADS, FeatureDraftConfig, FeatureDraftHead
from training.feature_draft_data import eagle3_layers, load_shards
from training.train import earlier_phases, resolve_mixed_precision

REPO_ROOT = Path(__file__).resolve().parent.parent

Sequence_ = dict[str, torch.Tensor]


def split(sequences: list[Sequence_], every: int = 20) -> tuple[list[Sequence_], list[Sequence_]]:
    """(train, held out): every ``every``-th sequence is held out."""
    train = [s for i, s in enumerate(sequences) if i % every]
    held = [s for i, s in enumerate(sequences) if not i % every]
    return train, held


def draft_vocabulary(sequences: list[Sequence_], size: int, always: list[int]) -> torch.Tensor:
    """The ``size`` tokens the target predicts most often (its greedy labels), ``always`` first."""
    counts = collections.Counter()
    for s in sequences:
        counts.update(s["labels"].tolist())
    vocab = list(dict.fromkeys([*always, *(t for t, _ in counts.most_common(size))]))[:size]
    return torch.tensor(vocab, dtype=torch.long)


def answer_start(ids: list[int], header: list[int]) -> int | None:
    """Where the answer begins: after the last ``header`` (the chat template's tokens between
    the user's message and the answer); ``None`` when there is no header (corpus windows)."""
    n = len(header)
    if not n:
        return None
    for i in range(len(ids) - n, -1, -1):
        if ids[i : i + n] == header:
            return i + n
    return None


def assistant_header(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The chat template's tokens after the user's message: the common tail of two prompts
    (none without a chat template)."""
    from models.generate import chat_prompt_ids

    if not getattr(tokenizer, "chat_template", None):
        return []
    a, b = chat_prompt_ids(tokenizer, "a"), chat_prompt_ids(tokenizer, "b")
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return a[len(a) - n :]


def make_batch(sequences: list[Sequence_], index_of: torch.Tensor) -> dict[str, torch.Tensor]:
    """Right-padded inputs (``h_j``, ``t_{j+1}``) and targets (``h_{j+1}``, greedy label at
    ``j+1`` as a draft-vocabulary index or -100) for ``j`` in ``0..len-2``; ``answer`` marks the
    positions whose label is a token of the answer (sequences with an ``answer_start``)."""
    width = max(len(s["ids"]) for s in sequences) - 1
    hidden = sequences[0]["features"].shape[-1]
    features = torch.zeros(len(sequences), width + 1, hidden)
    ids = torch.zeros(len(sequences), width, dtype=torch.long)
    labels = torch.full((len(sequences), width), -100, dtype=torch.long)
    mask = torch.zeros(len(sequences), width, dtype=torch.long)
    answer = torch.zeros(len(sequences), width, dtype=torch.bool)
    fused = "layer_features" in sequences[0]
    if fused:  # an EAGLE-3 head's inputs: the target's low, middle and high layers at j
        layer_inputs = torch.zeros(len(sequences), width, sequences[0]["layer_features"].shape[-1])
    for row, s in enumerate(sequences):
        n = len(s["ids"]) - 1
        if fused:
            layer_inputs[row, :n] = s["layer_features"][:n].float()
        features[row, : n + 1] = s["features"].float()
        ids[row, :n] = s["ids"][1:].long()
        labels[row, :n] = index_of[s["labels"][1:].long()]
        mask[row, :n] = 1
        if s.get("answer_start") is not None:  # position j's label is the token at j + 2
            answer[row, max(0, int(s["answer_start"]) - 2) : n] = True
    batch = {
        "inputs": features[:, :-1],
        "targets": features[:, 1:],
        "ids": ids,
        "labels": labels,
        "mask": mask,
        "answer": answer,
    }
    if fused:
        batch["layer_inputs"] = layer_inputs
    return batch


def ttt_mask(mask: torch.Tensor, step: int) -> torch.Tensor:
    """Which keys the queries of draft step ``step`` (0: from the target's features) see, as
    ``(batch, 1, n, (step + 1) * n)`` booleans over the keys of steps ``0..step`` in order.

    Drafting ``step + 1`` tokens after position ``j - step``, the head has read the target's
    features up to there (step 0 at positions ``<= j - step``) and then its own chain: the query of
    step ``s`` at position ``j`` sees step ``r``'s key at ``j - s + r`` for ``r = 1..s``. This is
    EAGLE-3's training-time test: each step is trained in exactly the situation drafting meets."""
    batch, n = mask.shape
    i = torch.arange(n)
    blocks = [(i[None, :] <= i[:, None] - step)]  # step 0 keys: the committed context
    for r in range(1, step + 1):
        blocks.append(i[None, :] == i[:, None] - step + r)
    allowed = torch.cat(blocks, dim=1)[None, None].expand(batch, 1, n, (step + 1) * n)
    keys = mask.bool().repeat(1, step + 1)[:, None, None, :]
    # Every query sees at least itself (a padded one only itself): a row with no key would give
    # NaN, which the next step would read and attention would spread (0 weight x NaN = NaN).
    itself = torch.zeros(n, (step + 1) * n, dtype=torch.bool)
    itself[i, step * n + i] = True
    return (allowed & keys) | itself[None, None]


def ttt_outputs(
    head: FeatureDraftHead, layer_inputs: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, steps: int
) -> list[torch.Tensor]:
    """The head's outputs ``(batch, n, hidden)`` at draft steps ``0..steps-1``: step 0 from the
    target's fused layers at every position, step ``s`` from the head's own step ``s-1`` outputs
    (not detached: later steps teach earlier ones), each attending as in drafting (``ttt_mask``;
    the keys of earlier steps come from one growing cache)."""
    from transformers import DynamicCache

    n = mask.shape[1]
    inputs = head.fuse_features(layer_inputs)
    positions = torch.arange(n, device=ids.device)[None].expand(mask.shape[0], n)
    cache, outputs = DynamicCache(), []
    for step in range(steps):
        out = head(
            inputs,
            ids,
            attention_mask=ttt_mask(mask, step).to(ids.device),
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
        )
        outputs.append(out)
        # Step s + 1 at position j reads the head's step-s output at j - 1: its guess of the
        # feature at j (position 0 has no earlier guess; its label is not counted).
        inputs = torch.cat([torch.zeros_like(out[:, :1]), out[:, :-1]], dim=1)
    return outputs


def ttt_losses(
    head: FeatureDraftHead, batch: dict[str, torch.Tensor], steps: int, noise: float = 0.0
) -> tuple[torch.Tensor, list[tuple[float, float, int, int, int, int]]]:
    """EAGLE-3's loss: the token loss summed over draft steps ``0..steps-1`` (``ttt_outputs``).
    Stats per step as ``losses`` (its feature-regression term is 0: EAGLE-3 has none)."""
    layer_inputs = batch["layer_inputs"]
    if noise > 0:
        layer_inputs = layer_inputs + (torch.rand_like(layer_inputs) * 2 - 1) * noise
    valid = batch["mask"].bool()
    total, stats = 0.0, []
    for step, out in enumerate(ttt_outputs(head, layer_inputs, batch["ids"], batch["mask"], steps)):
        labels = batch["labels"].clone()
        labels[:, :step] = -100  # a chain of `step` guesses needs `step` earlier positions
        keep = valid & (labels >= 0)
        logits = head.draft_logits(out)
        cls = F.cross_entropy(logits[keep], labels[keep]) if keep.any() else logits.sum() * 0
        total = total + cls
        hits = logits[keep].argmax(-1) == labels[keep]
        in_answer = batch["answer"][keep]
        stats.append(
            (0.0, cls.item(), int(hits.sum()), int(keep.sum()), int(hits[in_answer].sum()), int(in_answer.sum()))
        )
    return total, stats


def losses(
    head: FeatureDraftHead, batch: dict[str, torch.Tensor], noise: float, unroll: int, cls_weight: float = 0.1
) -> tuple[torch.Tensor, list[tuple[float, float, int, int, int, int]]]:
    """Summed loss over unroll depths; per depth (reg, cls, correct, counted, and the same two
    over answer positions only)."""
    mask = batch["mask"].bool()
    inputs = batch["inputs"]
    if noise > 0:
        inputs = inputs + (torch.rand_like(inputs) * 2 - 1) * noise
    total, stats = 0.0, []
    for depth in range(unroll):
        predicted = head(inputs, batch["ids"], attention_mask=batch["mask"])
        reg = F.smooth_l1_loss(predicted[mask], batch["targets"][mask])
        logits = head.draft_logits(predicted)
        cls = F.cross_entropy(logits[mask], batch["labels"][mask], ignore_index=-100)
        total = total + reg + cls_weight * cls
        counted = batch["labels"][mask] >= 0
        hits = logits[mask].argmax(-1) == batch["labels"][mask]
        in_answer = counted & batch["answer"][mask]
        stats.append(
            (reg.item(), cls.item(), int(hits[counted].sum()), int(counted.sum()),
             int(hits[in_answer].sum()), int(in_answer.sum()))
        )  # fmt: skip
        if depth + 1 < unroll:
            # Next pass: position j reads the head's prediction of h_j (made at j-1) instead of
            # the target's h_j; position 0 keeps the target's (there is no earlier guess).
            guess = predicted.detach()
            inputs = torch.cat([batch["inputs"][:, :1], guess[:, :-1]], dim=1)
            keep = torch.cat([torch.zeros_like(mask[:, :1]), mask[:, :-1]], dim=1) & mask
            batch = {**batch, "labels": batch["labels"].masked_fill(~keep, -100)}
    return total, stats


@torch.no_grad()
def evaluate(
    head: FeatureDraftHead, sequences: list[Sequence_], index_of: torch.Tensor, batch_size: int, ttt: bool = False
) -> dict:
    """Held-out top-1 agreement with the target's greedy token at depth 1 and 2, over every
    position and over the answers' positions only (what drafting meets; the chat template's
    fixed system prompt is easy to learn by heart)."""
    head.eval()
    sums = [[0, 0, 0, 0], [0, 0, 0, 0]]
    for i in range(0, len(sequences), batch_size):
        batch = make_batch(sequences[i : i + batch_size], index_of)
        _, stats = ttt_losses(head, batch, 2) if ttt else losses(head, batch, 0.0, 2)
        for depth, counts in enumerate(stats):
            for k in range(4):
                sums[depth][k] += counts[2 + k]
    head.train()
    out = {}
    for d, (correct, counted, correct_answer, counted_answer) in enumerate(sums):
        out[f"acc_depth{d + 1}"] = round(correct / max(counted, 1), 4)
        out[f"acc_depth{d + 1}_answers"] = round(correct_answer / max(counted_answer, 1), 4)
    return out


def _earlier(meta: dict) -> str:
    phases = meta.get("earlier_phases") or []
    if not phases:
        return ""
    steps = sum(p["steps"] for p in phases)
    minutes = sum(p["minutes"] for p in phases)
    return (
        f", continuing (`--init-from`) from {len(phases)} earlier run(s) of this script "
        f"({steps:,} steps in {minutes:g} minutes; `training.json` has their settings)"
    )


def model_card(meta: dict) -> str:
    """A short card from ``training.json``'s numbers."""
    data, held = meta["data"], meta["held_out"]
    reads = (
        f"An EAGLE-3 draft head (`models/feature_draft.py`): from the target's hidden states at layers "
        f"{', '.join(map(str, meta['feature_layers']))} at position j, fused, and the token at j + 1, one Llama "
        f"decoder layer drafts the token after it (trained on the token loss with training-time test over "
        f"{meta['ttt_steps']} draft steps)"
        if meta.get("ttt_steps")
        else "An EAGLE-style draft head (`models/feature_draft.py`): from the target's final hidden state at "
        "position j and the token at j + 1 it predicts the hidden state at j + 1, with one Llama decoder layer"
    )
    return f"""# Feature draft head for `{meta["target"]}`

{reads}; the target's own LM head, restricted to the {meta["draft_vocab"]:,} tokens it predicted
most often in the training data, turns that into draft tokens. The head owns
{meta["parameters"]:,} parameters; the token embedding and LM-head rows are the target's,
taken when the head is loaded. Used by the `{"eagle3-head" if meta.get("ttt_steps") else "feature-head"}` drafter of
`python -m playground.speculative` and the Speculative decoding tab.

- Data: `{data["made_by"]}`; {data["sequences_train"]:,} sequences for training
  ({data["tokens_train"]:,} tokens, prompts included): {data["sequences_train_answers"]:,} answers
  ({data["tokens_train_answers"]:,} answer tokens) and {data["sequences_train_corpus_windows"]:,} windows of
  the offline corpus read by the target (`--source corpus`); {data["sequences_held_out"]:,} answers held out.
  Shards: {", ".join(f"`{d}`" for d in data["answer_dirs"])}.
- Training: `python -m training.train_feature_draft --target {meta["target"]} --minutes {meta["minutes"]:g}`
  ({meta["steps"]:,} steps of {meta["batch"]} sequences, peak learning rate {meta["lr"]:g}, input noise
  {meta["noise"]:g}, unroll {meta["unroll"]}, token-loss weight {meta["cls_weight"]:g}), on this project's 2-core CPU machine{_earlier(meta)}.
- Held out, over the answers' tokens: the head's top draft token equals the target's greedy
  token {held["acc_depth1_answers"]:.1%} of the time from the target's features (depth 1) and
  {held["acc_depth2_answers"]:.1%} from its own previous guess (depth 2); over every position,
  the chat template's fixed system prompt included, {held["acc_depth1"]:.1%} and {held["acc_depth2"]:.1%}.
  The draft vocabulary contains the target's token {meta["held_out_label_coverage"]:.1%} of the time.
- Lossless: the target verifies every drafted token over its full vocabulary, so decoding
  output is the target's own whatever the head proposes.
- Speed on this machine: `python bench/speculative.py` (`assets/reports/speculative.json`).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="smollm2-135m")
    parser.add_argument("--data", type=Path, default=REPO_ROOT / "runs" / "feature-draft" / "data", help="answers")
    parser.add_argument(
        "--extra-data",
        type=Path,
        nargs="*",
        default=[REPO_ROOT / "runs" / "feature-draft" / "corpus"],
        help="more shards used for training only (e.g. --source corpus ones; missing directories are skipped)",
    )
    parser.add_argument("--out", type=Path, help="default: assets/models/feature-draft/<target>")
    parser.add_argument("--minutes", type=float, default=25.0)
    parser.add_argument("--batch", type=int, default=8, help="sequences per step")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=50, help="warm-up steps")
    parser.add_argument("--draft-vocab", type=int, default=8192)
    parser.add_argument("--noise", type=float, default=0.1, help="uniform input noise, times the feature scale")
    parser.add_argument("--unroll", type=int, default=2, choices=(1, 2))
    parser.add_argument(
        "--ttt-steps",
        type=int,
        default=0,
        help="train an EAGLE-3 head (fused low/middle/high layers, token loss) with training-time test over "
        "this many draft steps; 0: an EAGLE-2 head (final features, --unroll). Needs data with layer features.",
    )
    parser.add_argument("--cls-weight", type=float, default=0.1, help="weight of the token loss (EAGLE: 0.1)")
    parser.add_argument("--eval-every", type=float, default=120.0, help="seconds between held-out evaluations")
    parser.add_argument(
        "--mixed-precision",
        choices=("auto", "no", "bf16", "fp16"),
        default="auto",
        help="autocast; auto: bf16 where the hardware multiplies it natively (1.7x faster than fp32 on such a CPU), "
        "else fp32",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--init-from",
        type=Path,
        help="continue from a saved head (its weights and draft vocabulary; a fresh optimizer and schedule)",
    )
    args = parser.parse_args(argv)
    out = args.out or SHIPPED_HEADS / args.target
    torch.manual_seed(args.seed)
    args.mixed_precision = resolve_mixed_precision(args.mixed_precision)
    accelerator = Accelerator(mixed_precision=args.mixed_precision)

    from models.registry import load_model

    lm = load_model(args.target)
    target = lm.model.requires_grad_(False)  # shared with the head, never trained
    sequences = load_shards(args.data)
    if not sequences:
        print(f"no data in {args.data}: run `python -m training.feature_draft_data` first", file=sys.stderr)
        return 2
    header = assistant_header(lm.tokenizer)
    train, held = split(sequences)
    extra = [s for d in args.extra_data if d.exists() for s in load_shards(d)]
    for s in (*train, *held, *extra):
        s["answer_start"] = answer_start(s["ids"].tolist(), header)
    # Answers from other runs (another --seed) only train: drop any whose prompt is held out.
    held_prompts = {tuple(s["ids"][: s["answer_start"]].tolist()) for s in held if s["answer_start"]}
    extra = [
        s for s in extra if not s["answer_start"] or tuple(s["ids"][: s["answer_start"]].tolist()) not in held_prompts
    ]
    train += extra
    if args.ttt_steps:  # an EAGLE-3 head reads layer features: sequences recorded without them cannot train it
        kept = [s for s in train if "layer_features" in s]
        accelerator.print(f"EAGLE-3 head: {len(kept)} of {len(train)} training sequences have layer features")
        train, held = kept, [s for s in held if "layer_features" in s]
        if not train or not held:
            raise SystemExit("no data with layer features: run python -m training.feature_draft_data first")
    eos = target.generation_config.eos_token_id
    always = [eos] if isinstance(eos, int) else list(eos or [])
    earlier = earlier_phases(args.init_from)  # read now: this run's log may overwrite init_from's
    if args.init_from:
        head = FeatureDraftHead.from_pretrained(str(args.init_from))
        vocab, config = head.draft_vocab.clone(), head.config
    else:
        vocab = draft_vocabulary(train, args.draft_vocab, always)
        layers = None
        if args.ttt_steps:
            layers = list(eagle3_layers(target.config.get_text_config(decoder=True).num_hidden_layers))
        config = FeatureDraftConfig.for_target(target, args.target, len(vocab), feature_layers=layers)
        head = FeatureDraftHead(config)
        head.draft_vocab.copy_(vocab)
    head.attach_target(target)
    index_of = torch.full((config.target_vocab_size,), -100, dtype=torch.long)
    index_of[vocab] = torch.arange(len(vocab))
    key = "layer_features" if args.ttt_steps else "features"
    scale = float(torch.cat([s[key][:64].float() for s in train[:200]]).std())
    label_cover = sum(int((index_of[s["labels"].long()] >= 0).sum()) for s in held) / sum(
        len(s["labels"]) for s in held
    )

    optimizer = torch.optim.AdamW(head.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)
    head, optimizer = accelerator.prepare(head, optimizer)
    raw = accelerator.unwrap_model(head)
    out.mkdir(parents=True, exist_ok=True)
    for k, (_, earlier_log) in enumerate(earlier, start=1):  # as training.train.export keeps them
        (out / f"train_log_phase{k}.csv").write_text(earlier_log)
    log_path = out / "train_log.csv"
    log = csv.writer(log_path.open("w", newline=""))
    accuracies = ["acc_depth1", "acc_depth2", "acc_depth1_answers", "acc_depth2_answers"]
    log.writerow(["step", "seconds", "sequences", "reg", "cls", "reg2", "cls2", *accuracies])
    accelerator.print(
        f"{len(train)} train / {len(held)} held-out sequences, "
        f"{sum(len(s['ids']) for s in train)} train tokens; draft vocabulary {len(vocab)} covers "
        f"{label_cover:.1%} of held-out labels; feature scale {scale:.3f}"
    )
    rng = random.Random(args.seed)
    budget, start, step, seen, last_eval = args.minutes * 60, time.monotonic(), 0, 0, -1e9
    order: list[int] = []
    metrics: dict = {}
    held_out: dict = {}  # the latest evaluation; the last step always evaluates
    done = budget <= 0
    while not done:
        elapsed = time.monotonic() - start
        if not order:
            order = list(range(len(train)))
            rng.shuffle(order)
        picks, order = order[: args.batch], order[args.batch :]
        warm = min(1.0, (step + 1) / args.warmup)
        lr = args.lr * warm * 0.5 * (1 + math.cos(math.pi * min(1.0, elapsed / budget)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = make_batch([train[i] for i in picks], index_of)
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        with accelerator.autocast():
            model = raw if accelerator.num_processes == 1 else head
            if args.ttt_steps:
                loss, stats = ttt_losses(model, batch, args.ttt_steps, args.noise * scale)
            else:
                loss, stats = losses(model, batch, args.noise * scale, args.unroll, args.cls_weight)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(head.parameters(), 0.5)
        optimizer.step()
        step, seen = step + 1, seen + len(picks) * accelerator.num_processes
        done = time.monotonic() - start >= budget
        if elapsed - last_eval >= args.eval_every or done:
            metrics = held_out = (
                evaluate(raw, held, index_of, args.batch, bool(args.ttt_steps)) if accelerator.is_main_process else {}
            )
            last_eval = elapsed
            accelerator.print(f"step {step} {elapsed:.0f}s seen {seen} loss {loss.item():.3f} {metrics}", flush=True)
        second = stats[1] if len(stats) > 1 else (float("nan"), float("nan"))
        log.writerow(
            [step, round(elapsed, 1), seen, round(stats[0][0], 5), round(stats[0][1], 4), round(second[0], 5),
             round(second[1], 4), *(metrics.get(k, "") for k in accuracies)]
        )  # fmt: skip
        metrics = {}
    if accelerator.is_main_process:
        raw.save_pretrained(out)
        meta = {
            "target": args.target,
            "data": {
                "sequences_train": len(train),
                "sequences_train_corpus_windows": sum(1 for s in extra if not s["answer_start"]),
                "sequences_train_answers": sum(1 for s in train if s["answer_start"]),
                "tokens_train_answers": sum(len(s["ids"]) - s["answer_start"] for s in train if s["answer_start"]),
                "sequences_held_out": len(held),
                "tokens_train": sum(len(s["ids"]) for s in train),
                "made_by": "python -m training.feature_draft_data (greedy answers of the target in its chat template)",
                "answer_dirs": [
                    str(d.relative_to(REPO_ROOT)) if d.is_relative_to(REPO_ROOT) else str(d)
                    for d in [args.data, *args.extra_data]
                    if d.exists()
                ],
            },
            "draft_vocab": len(vocab),
            "held_out_label_coverage": round(label_cover, 4),
            "steps": step,
            "sequences_seen": seen,
            "minutes": args.minutes,
            "lr": args.lr,
            "batch": args.batch,
            "noise": args.noise,
            "unroll": args.unroll,
            "ttt_steps": args.ttt_steps,
            "feature_layers": config.feature_layers,
            "cls_weight": args.cls_weight,
            "mixed_precision": args.mixed_precision,
            "parameters": sum(p.numel() for p in raw.parameters()),
            "earlier_phases": [m for m, _ in earlier],
            "held_out": held_out or evaluate(raw, held, index_of, args.batch, bool(args.ttt_steps)),
        }
        (out / "training.json").write_text(json.dumps(meta, indent=1) + "\n")
        (out / "README.md").write_text(model_card(meta), encoding="utf-8")
        accelerator.print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
