"""Continue training a shipped English model on a new language: does HAT adapt faster?

    python -m training.adapt --model hat-tiny --language de --minutes 45
    accelerate launch -m training.adapt --model bpe-tiny --language de --minutes 45   # several GPUs

The HAT paper's claim (Neitemeier et al., ICLR 2025, section 5): in continued pretraining on a
language the model has not seen, HAT learns faster than a BPE model, whose vocabulary stays fitted
to the old language. This is `training.train` with the adaptation protocol fixed, so the three
models get the same run:

- start from `assets/models/<model>/` (weights only, fresh optimizer); bpe-tiny keeps its English
  tokenizer and embedding size, which is the point of the comparison;
- read seeded 1,024-byte windows of `data/corpus/<language>/train.txt`: the same windows in the
  same order for every model (`training.train.windows` depends on the seed and the text only);
- the same budget of CPU seconds per thread, one thread, the same peak learning rate with
  warm-up and cosine decay;
- every `--eval-every` seconds, bits per byte on the new language's whole validation split
  (`val_bpb`) and on the English 64 KB validation prefix the English runs logged (`val_bpb_en`,
  forgetting), with bytes read and CPU seconds;
- export to `assets/models/<model>-<language>/` (a registry model) with its `training.json`; the
  log goes to `assets/reports/adaptation/<model>-<language>.csv`, which `bench/adaptation.py` and
  the Adaptation tab read (the English phase's log stays with the English model only).

Rerunning the command resumes from the run's checkpoint under `runs/adapt/`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from models.adaptation import ADAPT_PEAK_LR, ADAPT_SEED, ADAPT_VAL_BYTES, LANGUAGES, LOGS_DIR, ROOT, adapted_name
from models.tiny import TRAINED
from training import train


def train_args(
    model: str,
    language: str,
    minutes: float,
    corpus_root: Path = ROOT / "data" / "corpus",
    models_dir: Path = ROOT / "assets" / "models",
    workdir: Path = ROOT / "runs" / "adapt",
    out: Path | None = None,
    eval_every: float = 180.0,
    extra: list[str] | None = None,
) -> list[str]:
    """The `training.train` command line of one adaptation run."""
    return [
        "--model", model,
        "--name", adapted_name(model, language),
        "--corpus", str(corpus_root / language),
        "--init-from", str(models_dir / model),
        "--also-validate", f"en={corpus_root / 'en'}",
        "--val-bytes", str(ADAPT_VAL_BYTES),
        "--minutes", str(minutes),
        "--lr", str(ADAPT_PEAK_LR),
        "--seed", str(ADAPT_SEED),
        "--threads", "1",
        "--eval-every", str(eval_every),
        "--save-every", str(eval_every),
        "--workdir", str(workdir),
        "--out", str(out or models_dir),
        *(extra or []),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=TRAINED)
    ap.add_argument("--language", required=True, choices=LANGUAGES)
    ap.add_argument("--minutes", type=float, default=45.0, help="budget in CPU minutes per thread")
    ap.add_argument("--corpus-root", type=Path, default=ROOT / "data" / "corpus", help="built by training.corpus")
    ap.add_argument("--models-dir", type=Path, default=ROOT / "assets" / "models", help="the English models")
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "adapt")
    ap.add_argument("--out", type=Path, default=None, help="export directory (default: --models-dir)")
    ap.add_argument("--eval-every", type=float, default=180.0, help="CPU seconds between validations")
    ap.add_argument("--logs-dir", type=Path, default=LOGS_DIR)
    args, rest = ap.parse_known_args(argv)  # anything else goes to training.train (e.g. --val-bytes)
    if not (args.corpus_root / args.language / "train.txt").exists():
        raise SystemExit(f"no {args.language} corpus under {args.corpus_root}: run python -m training.corpus first")
    train.main(
        train_args(
            args.model,
            args.language,
            args.minutes,
            args.corpus_root,
            args.models_dir,
            args.workdir,
            args.out,
            args.eval_every,
            rest,
        )
    )
    export_log(args.out or args.models_dir, adapted_name(args.model, args.language), args.logs_dir)


def export_log(out: Path, name: str, logs_dir: Path) -> Path:
    """Move the exported run's log beside the other adaptation logs; drop the copy of the English
    phase's log (it ships with the English model)."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    target = logs_dir / f"{name}.csv"
    (out / name / "train_log.csv").replace(target)
    for phase in (out / name).glob("train_log_phase*.csv"):
        phase.unlink()
    return target


if __name__ == "__main__":
    main()
