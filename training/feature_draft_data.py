"""Self-distillation data for a feature draft head: the target's own answers to generic
instructions, with its hidden states and greedy choice at every position.

Usage::

    python -m training.feature_draft_data --target smollm2-135m --out runs/feature-draft/data \
        [--minutes 30] [--batch 8] [--max-new-tokens 160] [--seed 0]

Prompts are built from the offline corpus (``python -m training.corpus``): generic instruction
templates (stories, poems, explanations, letters, tips, dialogues...) about topics drawn from
the corpus's own vocabulary, and tasks on passages of its training split (summarise, continue,
rewrite, main idea). Nothing is taken from the bench's or the view's example prompts, and no
template is chosen for them. The target answers greedily in its chat template (what the
bench and the view decode), batched. A second, teacher-forced pass over each finished
sequence records, per position ``j``: the token ``ids[j]``, the target's final hidden state
``features[j]`` (after its last norm: what its LM head reads), the hidden states of a low, a
middle and a high layer concatenated, ``layer_features[j]`` (what an EAGLE-3 head fuses;
``eagle3_layers``), and its greedy next token ``labels[j]``. Shards of sequences are written as they finish, so the run can stop at any
time (``--minutes``) and a rerun continues after the last shard. ``--export-ids FILE`` keeps
just the token ids (small enough to commit: generation is the costly part), and ``--from-ids
FILE`` records the shards again from them with a teacher-forced pass.

With ``--source corpus`` no text is generated: the teacher-forced pass runs over windows of
the corpus itself (``--window`` tokens each, in order from a seeded offset), which gives
about five times more positions per CPU second; the labels are still the target's greedy
choices, the text is not its own.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import collections
import random
import re
import sys
import time
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from models.feature_draft import layer_states
from models.generate import chat_prompt_ids

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO_ROOT / "data" / "corpus" / "en" / "train.txt"

TOPIC_TASKS = (
    "Write a short story about {topic}.",
    "Write a poem about {topic}.",
    "Explain {topic} to a ten-year-old.",
    "Describe {topic} in a few paragraphs.",
    "Write a letter to a friend about {topic}.",
    "Give me three tips about {topic}.",
    "What is the history of {topic}?",
    "Write a blog post about {topic}.",
    "Write a dialogue between two people who disagree about {topic}.",
    "Why does {topic} matter?",
    "Write a news report about {topic}.",
    "List the pros and cons of {topic}.",
    "Write a fairy tale that involves {topic}.",
    "Describe a day in the life of someone who loves {topic}.",
)
# Added for the second prompt set (``--prompt-set wide``): other registers and forms, so a head
# trained on the answers meets more of what users ask (mails, guides, speeches, reviews...).
WIDE_TOPIC_TASKS = (
    "Write an email to your manager about {topic}.",
    "Write a step-by-step guide to {topic}.",
    "Write a short speech about {topic}.",
    "Write a diary entry about {topic}.",
    "Write a review of a book about {topic}.",
    "Compare {topic} with something similar.",
    "Write an interview with an expert on {topic}.",
    "Tell me a funny story about {topic}.",
    "Write a children's story about {topic}.",
    "Explain how {topic} works, step by step.",
    "Write a short essay arguing for {topic}.",
    "Write a conversation between a teacher and a student about {topic}.",
    "What are common mistakes people make with {topic}?",
    "Write a product description for something related to {topic}.",
    "Describe {topic} as if you were a tour guide.",
    "Write a thank-you note that mentions {topic}.",
    "Give advice to a beginner about {topic}.",
    "Write the opening of a mystery novel involving {topic}.",
)
PASSAGE_TASKS = (
    "Summarize the following text in a few sentences.\n\n{passage}",
    "Continue the following text.\n\n{passage}",
    "Rewrite the following text in plain modern English.\n\n{passage}",
    "What is the main idea of the following text?\n\n{passage}",
    "Write three questions about the following text and answer them.\n\n{passage}",
)


def topic_words(text: str, skip_most_common: int = 50, keep: int = 4000) -> list[str]:
    """Words that follow "the", "a" or "an" in the corpus (mostly nouns), by frequency,
    without the most common ones."""
    counts = collections.Counter(re.findall(r"\b(?:the|a|an) ([a-z]{4,14})\b", text))
    ranked = [w for w, c in counts.most_common(skip_most_common + keep) if c >= 5]
    return ranked[skip_most_common:]


def passages(text: str, rng: random.Random, n: int, min_chars: int = 300, max_chars: int = 900) -> list[str]:
    """``n`` windows of whole lines from the corpus."""
    lines = [line for line in text.split("\n") if line.strip()]
    out = []
    while len(out) < n:
        start = rng.randrange(len(lines))
        chunk = ""
        for line in lines[start:]:
            if len(chunk) + len(line) > max_chars:
                break
            chunk += line + "\n"
        if len(chunk) >= min_chars:
            out.append(chunk.strip())
    return out


def build_prompts(
    corpus_text: str, n: int, seed: int = 0, passage_share: float = 0.35, prompt_set: str = "v1"
) -> list[str]:
    """``n`` generic instructions, deterministic for ``seed`` and ``prompt_set`` ("v1": the
    templates of the first head; "wide": those and ``WIDE_TOPIC_TASKS``)."""
    topic_tasks = TOPIC_TASKS + (WIDE_TOPIC_TASKS if prompt_set == "wide" else ())
    rng = random.Random(seed)
    words = topic_words(corpus_text)
    n_passage = int(n * passage_share)
    texts = passages(corpus_text, rng, n_passage)
    prompts = [rng.choice(PASSAGE_TASKS).format(passage=p) for p in texts]
    for _ in range(n - n_passage):
        a, b = rng.sample(words, 2)
        topic = rng.choice([f"the {a}", f"a {a}", f"{a} and {b}", f"the {a} of the {b}", a])
        prompts.append(rng.choice(topic_tasks).format(topic=topic))
    rng.shuffle(prompts)
    return prompts


@torch.inference_mode()
def generate_batch(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_new_tokens: int
) -> list[list[int]]:
    """Greedy answers in the chat template; prompt + answer ids per prompt (no padding)."""
    encoded = [chat_prompt_ids(tokenizer, p) for p in prompts]  # as the view and the bench encode them
    width = max(len(e) for e in encoded)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded])
    attention = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded])
    out = model.generate(
        input_ids=input_ids,
        attention_mask=attention,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=pad,
    )
    eos = tokenizer.eos_token_id
    sequences = []
    for prompt_ids, row in zip(encoded, out[:, width:].tolist(), strict=True):
        answer = []
        for token in row:
            answer.append(token)
            if token == eos:
                break
        sequences.append(prompt_ids + answer)
    return sequences


def eagle3_layers(num_hidden_layers: int) -> tuple[int, int, int]:
    """Indices into ``output_hidden_states`` (0 is the embeddings) of the low, middle and high
    layers an EAGLE-3 head fuses: the inputs of layers 2, L/2 and L-3, as EAGLE-3 captures them."""
    return 2, num_hidden_layers // 2, num_hidden_layers - 3


@torch.inference_mode()
def teacher_forced(
    model: PreTrainedModel, sequences: list[list[int]], layers: tuple[int, ...] = ()
) -> list[dict[str, torch.Tensor]]:
    """Final hidden states, greedy next tokens and (with ``layers``) the hidden states of those
    layers concatenated, at every position (right-padded batch)."""
    width = max(len(s) for s in sequences)
    ids = torch.tensor([s + [0] * (width - len(s)) for s in sequences])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences])
    out = model.model(input_ids=ids, attention_mask=mask, output_hidden_states=bool(layers))
    hidden = out.last_hidden_state
    labels = model.get_output_embeddings()(hidden).argmax(-1)
    fused = layer_states(out.hidden_states, layers) if layers else None
    records = []
    for i, s in enumerate(sequences):
        record = {
            "ids": torch.tensor(s, dtype=torch.int32),
            "features": hidden[i, : len(s)].to(torch.float16).clone(),
            "labels": labels[i, : len(s)].to(torch.int32).clone(),
        }
        if fused is not None:
            record["layer_features"] = fused[i, : len(s)].to(torch.float16).clone()
        records.append(record)
    return records


def load_shards(directory: Path) -> list[dict[str, torch.Tensor]]:
    """Every record of ``directory``'s shards, in order."""
    records: list[dict[str, torch.Tensor]] = []
    for path in sorted(directory.glob("shard_*.pt")):
        records += torch.load(path, weights_only=True)
    return records


def save_shard(directory: Path, records: list[dict[str, torch.Tensor]]) -> int:
    """Write ``records`` as the next ``shard_NNNNN.pt`` (atomically: a stopped run leaves no
    partial shard); its index."""
    index = len(list(directory.glob("shard_*.pt")))
    path = directory / f"shard_{index:05d}.pt"
    torch.save(records, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").rename(path)
    return index


def corpus_windows(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, text: str, args: argparse.Namespace
) -> int:
    """Teacher-forced shards over consecutive token windows of the corpus."""
    start = time.monotonic()
    offset = random.Random(args.seed).randrange(len(text) // 2)
    chars = args.window * 4 * args.batch  # about enough characters for one batch of windows
    position = offset + len(list(args.out.glob("shard_*.pt"))) * chars
    while (time.monotonic() - start) / 60 <= args.minutes and position < len(text):
        ids = tokenizer(text[position : position + chars])["input_ids"]
        sequences = [ids[i : i + args.window] for i in range(0, len(ids) - args.window + 1, args.window)]
        if sequences:
            index = save_shard(args.out, teacher_forced(model, sequences, args.layers))
            print(f"shard {index}: {len(sequences)} windows, {time.monotonic() - start:.0f} s", flush=True)
        position += chars
    return 0


def export_ids(directory: Path, path: Path, metadata: dict[str, str]) -> int:
    """The token ids of every sequence in ``directory``'s shards, in order, into one small
    safetensors file (``ids`` flat, ``lengths`` per sequence): what generation costs hours to
    make, without the features a teacher-forced pass (``--from-ids``) recomputes in minutes.
    Returns the number of sequences."""
    from safetensors.torch import save_file

    sequences = [
        r["ids"] for shard in sorted(directory.glob("shard_*.pt")) for r in torch.load(shard, weights_only=True)
    ]
    lengths = torch.tensor([len(ids) for ids in sequences], dtype=torch.int64)
    flat = torch.cat(sequences).to(torch.int32) if sequences else torch.zeros(0, dtype=torch.int32)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"ids": flat, "lengths": lengths}, str(path), metadata=metadata)
    return len(sequences)


def read_ids(path: Path) -> list[list[int]]:
    """The sequences ``export_ids`` wrote."""
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    return [chunk.tolist() for chunk in torch.split(tensors["ids"], tensors["lengths"].tolist())]


def from_ids(model: PreTrainedModel, path: Path, args: argparse.Namespace) -> int:
    """Shards of ``--batch`` sequences each from exported ids, features recomputed (teacher
    forced); resumable, and laid out as generation wrote them, so a generation run with the same
    ``--out`` and ``--batch`` continues after them."""
    sequences = read_ids(path)
    start = len(list(args.out.glob("shard_*.pt"))) * args.batch
    for first in range(start, len(sequences), args.batch):
        index = save_shard(args.out, teacher_forced(model, sequences[first : first + args.batch], args.layers))
        print(f"shard {index}: sequences {first}-{min(first + args.batch, len(sequences)) - 1}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="smollm2-135m")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "feature-draft" / "data")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--prompts", type=int, default=8000, help="prompts to build (the run may stop earlier)")
    parser.add_argument("--minutes", type=float, default=30.0, help="stop starting new batches after this")
    parser.add_argument("--batch", type=int, default=32, help="sequences per generate call and shard file")
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", choices=("answers", "corpus"), default="answers")
    parser.add_argument("--window", type=int, default=256, help="tokens per corpus window (--source corpus)")
    parser.add_argument("--prompt-set", choices=("v1", "wide"), default="wide", help="v1: the first head's templates")
    parser.add_argument(
        "--no-layer-features", action="store_true", help="record only final features (an EAGLE-2 head's data)"
    )
    parser.add_argument("--export-ids", type=Path, metavar="FILE", help="write --out's token ids to FILE and exit")
    parser.add_argument(
        "--from-ids", type=Path, metavar="FILE", help="record shards from exported ids (no generation)"
    )
    args = parser.parse_args(argv)
    if args.export_ids:
        meta = {"target": args.target, "prompt_set": args.prompt_set, "batch": str(args.batch), "seed": str(args.seed)}
        n = export_ids(args.out, args.export_ids, meta)
        print(f"{n} sequences from {args.out} -> {args.export_ids}")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.corpus.exists():
        print(f"no corpus at {args.corpus}: run `python -m training.corpus` first", file=sys.stderr)
        return 2
    from models.cpu_kernels import decoding_model
    from models.registry import load_model

    lm = load_model(args.target)
    model, tokenizer = decoding_model(lm.model), lm.tokenizer
    n_layers = lm.model.config.get_text_config(decoder=True).num_hidden_layers
    args.layers = () if args.no_layer_features else eagle3_layers(n_layers)
    corpus_text = args.corpus.read_text(encoding="utf-8")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.from_ids:
        return from_ids(model, args.from_ids, args)
    if args.source == "corpus":
        return corpus_windows(model, tokenizer, corpus_text, args)
    prompts = build_prompts(corpus_text, args.prompts, args.seed, prompt_set=args.prompt_set)
    window = 8 * args.batch  # sorted by length within windows: batches of similar lengths pad little
    prompts = [p for w in range(0, len(prompts), window) for p in sorted(prompts[w : w + window], key=len)]
    done_shards = sorted(args.out.glob("shard_*.pt"))
    start_prompt = len(done_shards) * args.batch
    print(f"{len(prompts)} prompts; {len(done_shards)} shards done, continuing at prompt {start_prompt}", flush=True)
    start, tokens = time.monotonic(), 0
    for first in range(start_prompt, len(prompts), args.batch):
        if (time.monotonic() - start) / 60 > args.minutes:
            break
        sequences = generate_batch(model, tokenizer, prompts[first : first + args.batch], args.max_new_tokens)
        records = teacher_forced(model, sequences, args.layers)
        index = save_shard(args.out, records)
        tokens += sum(len(r["ids"]) for r in records)
        print(
            f"shard {index}: {len(records)} sequences, {tokens} tokens this run, {time.monotonic() - start:.0f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
