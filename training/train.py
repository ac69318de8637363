"""Train hat-tiny, bpe-tiny or byte-tiny on the assembled corpus, under a time budget.

    python -m training.train --model hat-tiny --minutes 100          # one process, CPU or one GPU
    accelerate launch -m training.train --model hat-tiny --minutes 100   # several GPUs

All three models read the same 1,024-byte windows of `data/corpus/en/train.txt` in the same order
(seeded), and all report the same loss: summed negative log-likelihood over the window's bytes
divided by its byte count. The learning rate follows warm-up then cosine decay over the *time*
budget, so "the same budget" means the same time: on CPU the process's own CPU seconds per
thread (what the run would take alone, even when it shares the cores with other jobs), on GPUs
wall-clock. Every `--save-every` seconds a checkpoint (model, optimizer, RNG, elapsed time) lands
in `--workdir`; rerunning the command resumes from it.
At the end the model, its tokenizer and the CSV log are exported to `assets/models/<name>/`.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from models.hat import HATForCausalLM
from models.objective import loss_on, lr_at, windows
from models.registry import TRAINED as REGISTERED
from models.scoring import head_blocks, score_with
from models.tiny import TRAINED, build, train_bpe_tokenizer

ROOT = Path(__file__).resolve().parent.parent


def native_bf16(device_type: str) -> bool:
    """Whether this device multiplies bf16 natively (CUDA with bf16; a CPU with AVX512-BF16 or AMX).

    Elsewhere bf16 autocast emulates it: on an AVX-512 Xeon without either, a training step of
    hat-tiny and bpe-tiny took 3.1x and 3.5x as long as in fp32 (`bench/models.py --precision`)."""
    if device_type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def default_device_type() -> str:
    """The device `Accelerator()` trains on: CUDA when present, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_mixed_precision(choice: str, device_type: str | None = None) -> str:
    """`auto` -> bf16 where the device does it natively, else no autocast (fp32)."""
    if choice != "auto":
        return choice
    return "bf16" if native_bf16(device_type or default_device_type()) else "no"


def validate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None, val_blocks: list[str]) -> float:
    model.eval()
    total_bits = total_bytes = 0.0
    for i in range(0, len(val_blocks), 16):
        s = score_with(model, tokenizer, "".join(val_blocks[i : i + 16]), batch_size=16)
        total_bits, total_bytes = total_bits + s.total_bits, total_bytes + s.n_bytes
    model.train()
    return total_bits / total_bytes


def export(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase | None,
    out_dir: Path,
    log_path: Path,
    meta: dict,
    earlier: list[tuple[dict, str]],
) -> None:
    """Model, tokenizer, this run's CSV log and `training.json`; logs of earlier phases (runs this
    one continued via --init-from) are kept beside it as `train_log_phase<k>.csv`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    for k, (_, log) in enumerate(earlier, start=1):
        (out_dir / f"train_log_phase{k}.csv").write_text(log)
    (out_dir / "train_log.csv").write_text(log_path.read_text())
    (out_dir / "training.json").write_text(json.dumps(meta, indent=2) + "\n")


def earlier_phases(init_from: Path | None) -> list[tuple[dict, str]]:
    """(training.json, CSV log) of each phase behind an exported model, oldest first."""
    if init_from is None or not (init_from / "training.json").exists():
        return []
    meta = json.loads((init_from / "training.json").read_text())
    logs = sorted(init_from.glob("train_log_phase*.csv"), key=lambda p: int(p.stem.removeprefix("train_log_phase")))
    older = meta.pop("earlier_phases", [])
    phases = [(m, log.read_text()) for m, log in zip(older, logs, strict=False)]
    return phases + [(meta, (init_from / "train_log.csv").read_text())]


def _corpus_record(corpus: Path) -> dict:
    """What `training.corpus` recorded of this language's build (files, sources), or {} without a manifest."""
    manifest = corpus.parent / "manifest.json"
    if not manifest.exists():
        return {}
    return json.loads(manifest.read_text()).get("languages", {}).get(corpus.name, {})


def _corpus_files(corpus: Path) -> dict:
    """Sizes and hashes of the training text."""
    return _corpus_record(corpus).get("files", {})


def _corpus_sources(corpus: Path) -> dict:
    """Which package and version each source of the training text came from, with its byte counts.

    The archive's packages change between sessions (Debian point releases), so a later
    `training.corpus` may build a slightly different text; this lets a model card say which source moved."""
    keep = ("package", "version", "train_bytes", "val_bytes")
    sources = _corpus_record(corpus).get("sources", {})
    return {name: {k: s[k] for k in keep if k in s} for name, s in sources.items()}


class _HeapTrimmer:
    """Hand freed heap memory back to the OS every `every` steps (glibc's `malloc_trim`).

    Variable-shape batches (token and word counts differ per window) fragment glibc's heap: a
    bpe-tiny run grew to ~9 GB resident without any care. Serving large allocations from mmap
    instead (M_MMAP_THRESHOLD = 128 KiB) bounds that but page-faults every fresh tensor: measured
    here, it made hat-tiny steps 2x and bpe-tiny steps 1.5x slower (`bench/models.py
    --mmap-threshold`). Trimming refaults the returned pages too, so it runs only every `every`
    steps; 20-CPU-minute hat-tiny runs stayed at 4-5 GB resident with it.
    """

    def __init__(self, every: int = 25):
        import ctypes
        import ctypes.util

        self.every, self._trim = every, None
        name = ctypes.util.find_library("c")
        if name and "libc" in name:
            self._trim = getattr(ctypes.CDLL(name), "malloc_trim", None)  # glibc only

    def step(self, step: int) -> None:
        if self._trim is not None and step % self.every == 0:
            self._trim(0)


def _extra_validation(specs: list[str], val_bytes: int, window: int) -> dict[str, list[str]]:
    """`LABEL=DIR` -> the same fixed prefix of DIR/val.txt that the main split uses."""
    out = {}
    for spec in specs:
        label, sep, directory = spec.partition("=")
        if not sep or not label.isidentifier():
            raise SystemExit(f"--also-validate takes LABEL=DIR (LABEL a plain name), not {spec!r}")
        out[label] = head_blocks((Path(directory) / "val.txt").read_text(), val_bytes, window)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=TRAINED)
    ap.add_argument("--corpus", type=Path, default=ROOT / "data/corpus/en")
    ap.add_argument("--minutes", type=float, default=100.0, help="training budget (see --clock)")
    ap.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default=None,
        help="what the budget counts: 'cpu' = this process's CPU seconds divided by --threads (the wall-clock "
        "the run takes alone on the machine, unaffected by other jobs sharing the cores; the default on CPU), "
        "or plain 'wall' (the default on GPUs, whose work a CPU clock does not see)",
    )
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--window", type=int, default=1024, help="bytes per training window")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--val-bytes", type=int, default=65536, help="validation bytes scored at each evaluation")
    ap.add_argument("--eval-every", type=float, default=300.0, help="seconds between validations")
    ap.add_argument("--save-every", type=float, default=300.0, help="seconds between checkpoints")
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs")
    ap.add_argument("--out", type=Path, default=ROOT / "assets/models")
    ap.add_argument(
        "--mixed-precision",
        default="auto",
        choices=["auto", "no", "bf16", "fp16"],
        help="autocast; auto: bf16 where the hardware multiplies it natively, else fp32 (see native_bf16)",
    )
    ap.add_argument(
        "--config-overrides",
        type=json.loads,
        default=None,
        metavar="JSON",
        help="change settings of the model's config, to explore variants: '{\"encoder_layers\": 4}' "
        "(use a separate --workdir and --out so the shipped model stays)",
    )
    ap.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="start from an exported model directory (e.g. assets/models/hat-tiny) with a fresh optimizer "
        "and a new budget: how a later session continues training without the run's checkpoint",
    )
    ap.add_argument(
        "--name",
        default=None,
        help="directory name of the exported model under --out and of the run under --workdir (default: --model)",
    )
    ap.add_argument(
        "--also-validate",
        nargs="*",
        default=[],
        metavar="LABEL=DIR",
        help="more validation splits (DIR/val.txt), scored at each evaluation and logged as val_bpb_LABEL, "
        "e.g. en=data/corpus/en while adapting to German (forgetting)",
    )
    ap.add_argument(
        "--also-validate-bytes", type=int, default=65536, help="validation bytes scored of each --also-validate split"
    )
    args = ap.parse_args(argv)
    args.name = args.name or args.model
    extra_val = _extra_validation(args.also_validate, args.also_validate_bytes, args.window)

    heap = _HeapTrimmer()
    torch.set_num_threads(args.threads)
    args.mixed_precision = resolve_mixed_precision(args.mixed_precision)
    accelerator = Accelerator(mixed_precision=args.mixed_precision)
    accelerator.print(
        f"{accelerator.device.type}: autocast {args.mixed_precision}"
        + (
            ""
            if native_bf16(accelerator.device.type)
            else " (this device has no native bf16; --mixed-precision bf16 would emulate it)"
        )
    )
    if args.clock is None:
        args.clock = "cpu" if accelerator.device.type == "cpu" else "wall"
    run_dir = args.workdir / args.name
    run_dir.mkdir(parents=True, exist_ok=True)
    train_file = args.corpus / "train.txt"
    data = train_file.read_bytes()
    val_text = (args.corpus / "val.txt").read_text()
    val_blocks = head_blocks(val_text, args.val_bytes, args.window)  # a fixed prefix of the validation split

    bpe_tok = None
    if args.model == "bpe-tiny":
        from transformers import PreTrainedTokenizerFast

        tok_dir = run_dir / "tokenizer"
        if args.init_from is not None:  # keep the trained vocabulary
            tok_dir = args.init_from
        elif not (tok_dir / "tokenizer.json").exists():
            train_bpe_tokenizer(train_file).save_pretrained(tok_dir)
        bpe_tok = PreTrainedTokenizerFast.from_pretrained(tok_dir)
    earlier = earlier_phases(args.init_from)  # read now: exporting may overwrite init_from
    torch.manual_seed(args.seed)
    model, tokenizer = build(args.model, bpe_tok, args.config_overrides)
    if args.init_from is not None and not (run_dir / "checkpoint.pt").exists():
        from safetensors.torch import load_file

        weights = load_file(args.init_from / "model.safetensors")
        missing, unexpected = model.load_state_dict(weights, strict=False)
        if unexpected or any(not k.endswith("lm_head.weight") for k in missing):  # lm_head may be tied
            raise ValueError(f"{args.init_from} does not match {args.model}: {missing=} {unexpected=}")
        if hasattr(model, "tie_weights"):
            model.tie_weights()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    raw = accelerator.unwrap_model(model)
    params = sum(p.numel() for p in raw.parameters())

    state_path = run_dir / "checkpoint.pt"
    log_path = run_dir / "train_log.csv"
    step, elapsed, bytes_seen = 0, 0.0, 0
    if state_path.exists():
        state = torch.load(state_path, weights_only=False)
        raw.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed, bytes_seen = state["step"], state["elapsed"], state["bytes_seen"]
        accelerator.print(f"resumed {args.model} at step {step}, {elapsed / 60:.1f} min")
    elif accelerator.is_main_process:
        with log_path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(
                ["step", "seconds", "bytes_seen", "train_loss_bpb", "val_bpb", "lr"]
                + [f"val_bpb_{label}" for label in extra_val]
            )
            if args.init_from is not None:  # where a continued run starts from, before its first step
                writer.writerow(
                    [0, "0.0", 0, "", f"{validate(raw, tokenizer, val_blocks):.4f}", "0.000000"]
                    + [f"{validate(raw, tokenizer, blocks):.4f}" for blocks in extra_val.values()]
                )

    batches = windows(data, args.window, args.batch, args.seed, accelerator.process_index, accelerator.num_processes)
    for _ in range(step):  # replay the data order so a resumed run sees the same windows
        next(batches)
    budget = args.minutes * 60
    last_eval = last_save = elapsed
    bar = tqdm(
        total=int(budget), initial=int(elapsed), unit="s", desc=args.model, disable=not accelerator.is_main_process
    )
    model.train()

    def clock() -> float:
        return time.process_time() / args.threads if args.clock == "cpu" else time.perf_counter()

    while elapsed < budget:
        t0 = clock()
        texts = next(batches)
        lr = lr_at(elapsed / budget, args.lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with accelerator.autocast():
            loss = loss_on(
                raw if isinstance(raw, HATForCausalLM) else model,
                tokenizer,
                texts,
                REGISTERED[args.model][0],
                accelerator.device,
            )
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        heap.step(step)
        bytes_seen += sum(len(t.encode()) for t in texts) * accelerator.num_processes
        dt = clock() - t0
        elapsed += dt
        bar.update(int(elapsed) - bar.n)
        val, extra = "", [""] * len(extra_val)
        if elapsed - last_eval >= args.eval_every or elapsed >= budget:
            val = f"{validate(raw, tokenizer, val_blocks):.4f}"  # not counted in the budget
            extra = [f"{validate(raw, tokenizer, blocks):.4f}" for blocks in extra_val.values()]
            last_eval = elapsed
            bar.set_postfix(loss=f"{loss.item() / math.log(2):.3f}", val=val)
        if accelerator.is_main_process:
            with log_path.open("a", newline="") as f:
                csv.writer(f).writerow(
                    [step, f"{elapsed:.1f}", bytes_seen, f"{loss.item() / math.log(2):.4f}", val, f"{lr:.6f}"] + extra
                )
        if accelerator.is_main_process and (elapsed - last_save >= args.save_every or elapsed >= budget):
            tmp = state_path.with_suffix(".tmp")
            torch.save(
                {
                    "model": raw.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "step": step,
                    "elapsed": elapsed,
                    "bytes_seen": bytes_seen,
                },
                tmp,
            )
            tmp.replace(state_path)
            last_save = elapsed
    bar.close()
    if accelerator.is_main_process:
        meta = {
            "model": args.model,
            "parameters": params,
            "steps": step,
            "train_seconds": round(elapsed, 1),
            "bytes_seen": bytes_seen,
            "bytes_per_second": round(bytes_seen / max(elapsed, 1e-9), 1),
            "batch": args.batch,
            "window_bytes": args.window,
            "peak_lr": args.lr,
            "threads": args.threads,
            "clock": args.clock,
            "mixed_precision": args.mixed_precision,
            "seed": args.seed,
            "corpus": args.corpus.name,
            **({"init_from": args.init_from.name} if args.init_from is not None else {}),
            **({"also_validate": list(extra_val)} if extra_val else {}),
            **({"config_overrides": args.config_overrides} if args.config_overrides else {}),
            "corpus_files": _corpus_files(args.corpus),
            "corpus_sources": _corpus_sources(args.corpus),
        }
        if earlier:
            meta["earlier_phases"] = [m for m, _ in earlier]
        export(raw, tokenizer, args.out / args.name, log_path, meta, earlier)
        accelerator.print(json.dumps(meta))


if __name__ == "__main__":
    main()
