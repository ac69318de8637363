"""HAT Playground: compare a hierarchical byte/word language model (HAT) with subword models.

    python app.py [--host 127.0.0.1] [--port 7860] [--share] [--device auto|cpu|cuda|mps]
                  [--models NAME ...] [--max-text-chars N] [--quantize none|8bit|4bit]
                  [--trust-remote-code] [--memory-budget-gb GB]
                  [--hosted] [--models-dir DIR] [--allow-hub]

Models load lazily, on first use, so the page is served within seconds.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# oneDNN keeps a compiled kernel per matrix shape (1,024 by default, ~0.4 MB each here); a server
# sees a new shape for every text length, so the cache filled with one-off kernels and held
# ~100 MB after a busy spell (bench/load.py: 256 entries kept as much). 64 still holds the shapes
# a decoding loop reuses (one per layer kind and row count); a miss costs a recompile, not memory.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")

import argparse
import importlib
import logging
import sys
import time
from collections.abc import Sequence

import gradio as gr

import models  # noqa: F401  (sets OMP_WAIT_POLICY before torch is imported)
from models import registry
from models.device import DEVICE_CHOICES, QUANTIZE_CHOICES
from playground.config import DEFAULT_MAX_TEXT_CHARS, AppConfig
from playground.memory import Janitor, tune_allocator
from playground.ui.common import forget_sessions_on_leave, limits_markdown
from playground.ui.links import share_row
from playground.ui.links import wire as wire_links

logger = logging.getLogger("hat_playground")

TITLE = "HAT Playground"
MAX_QUEUE = 64

# One entry per view: (tab label, module with `KEY` (its name in links) and
# `build_tab(config: AppConfig) -> playground.ui.links.TabState`).
# Add your view's line here; every listed module must import.
TABS: list[tuple[str, str]] = [
    ("Learn", "playground.ui.learn"),
    ("Token boundaries", "playground.ui.segment"),
    ("Attention maps", "playground.ui.attention"),
    ("Speculative decoding", "playground.ui.speculative"),
    ("Robustness", "playground.ui.robustness"),
    ("Adaptation", "playground.ui.adaptation"),
]

INTRO = """\
# HAT Playground
Compare how a **hierarchical autoregressive transformer** (HAT: bytes → words → bytes,
[Neitemeier et al., ICLR 2025](https://arxiv.org/abs/2501.10322)) and **subword (BPE)** models
read the same text. Models load on first use, so the first run of a view can take a while.
"""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="app.py",
        description="HAT Playground: compare HAT with subword language models in the browser.",
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="address to serve on (default 127.0.0.1; use 0.0.0.0 to serve other machines)",
    )
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")), help="port (default 7860)"
    )
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument(
        "--device", choices=DEVICE_CHOICES, default="auto", help="auto = CUDA, then MPS, then CPU (default auto)"
    )
    parser.add_argument(
        "--models",
        nargs="+",
        action="extend",
        metavar="NAME",
        help="models to offer, space- or comma-separated: registry names or hf:<hub id or local dir> "
        "(default: every available built-in model)",
    )
    parser.add_argument(
        "--max-text-chars",
        type=int,
        default=DEFAULT_MAX_TEXT_CHARS,
        help=f"longest input text accepted (default {DEFAULT_MAX_TEXT_CHARS})",
    )
    parser.add_argument(
        "--quantize",
        choices=QUANTIZE_CHOICES,
        default="none",
        help="load models in 8-bit or 4-bit with bitsandbytes (CUDA only; default none)",
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow hf: models that ship their own Python code (only for code you trust)",
    )
    parser.add_argument(
        "--hosted",
        action="store_true",
        default=os.environ.get("HAT_PLAYGROUND_HOSTED") == "1" or bool(os.environ.get("SPACE_ID")),
        help="serve strangers safely (set by the Dockerfile, and on a Hugging Face Space, which sets "
        "SPACE_ID): hf: models only from --models-dir (default assets/models), no --trust-remote-code",
    )
    parser.add_argument(
        "--models-dir",
        default=None,
        help="hf: local directories must lie inside this directory (symlinks resolved)",
    )
    parser.add_argument(
        "--allow-hub", action="store_true", help="let hf:<hub id> models download from the Hugging Face hub"
    )
    parser.add_argument(
        "--memory-budget-gb",
        type=float,
        default=None,
        help="keep at most this many GB of model weights loaded (default: 40%% of RAM)",
    )
    return parser.parse_args(argv)


def model_names(args_models: Sequence[str] | None) -> list[str]:
    """Flatten `--models` values (space- or comma-separated); default to every available built-in
    (but the language-adapted ones, which the Adaptation view loads itself)."""
    if not args_models:
        return [spec.name for spec in registry.list_models(available_only=True) if spec.adapted_from is None]
    names: list[str] = []
    for value in args_models:
        for name in value.split(","):
            name = name.strip()
            if name and name not in names:
                names.append(name)
    return names


def build_config(args: argparse.Namespace) -> AppConfig:
    """Set up the model registry from the flags and return the app config.

    Raises `ValueError` (with a message for people) for a bad device, quantization or model name.
    """
    if args.max_text_chars < 1:
        raise ValueError("--max-text-chars must be at least 1.")
    if args.hosted and args.trust_remote_code:
        raise ValueError("--trust-remote-code is refused in hosted mode: a model's own code would run on the server.")
    models_dir = args.models_dir
    if args.hosted and models_dir is None:
        models_dir = str(registry.TRAINED_MODELS_DIR)
    budget = int(args.memory_budget_gb * 2**30) if args.memory_budget_gb else None
    reg = registry.configure(
        device=args.device,
        quantize=args.quantize,
        trust_remote_code=args.trust_remote_code,
        memory_budget=budget,
        models_dir=models_dir,
        allow_hub=args.allow_hub,
        # Built-in hub ids only (no name a user types): a Space installs requirements.txt alone.
        hub_fallback=args.allow_hub or registry.hub_fallback_default(),
    )
    names = model_names(args.models)
    for name in names:
        spec = reg.get_spec(name)  # raises UnknownModelError for a bad name
        if not spec.available:
            raise registry.ModelUnavailableError(spec.unavailable_reason)
    return AppConfig(
        models=names,
        max_text_chars=args.max_text_chars,
        device=reg.device,
        quantize=args.quantize,
        trust_remote_code=args.trust_remote_code,
        memory_budget=reg.memory_budget,
        hosted=args.hosted,
    )


def build_app(config: AppConfig, tabs: Sequence[tuple[str, str]] = TABS) -> gr.Blocks:
    """The gr.Blocks with one tab per view, each with a copy-link button; a shared link reopens its view."""
    states = []
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(INTRO)
        with gr.Tabs() as tab_bar:
            for label, module_name in tabs:
                start = time.perf_counter()
                module = importlib.import_module(module_name)
                with gr.Tab(label, id=module.KEY):
                    state = module.build_tab(config)
                    share_row(state, config)
                states.append(state)
                logger.info("Tab %r (%s) built in %.1f s", label, module_name, time.perf_counter() - start)
        specs = [registry.get_spec(name) for name in config.models]
        with gr.Accordion("Limits of this app (per request)", open=False, elem_id="app-limits"):
            gr.Markdown(limits_markdown(config))
        gr.Markdown(
            f"<small>Device: {config.device} · quantize: {config.quantize} · models: "
            + ", ".join(f"{s.name} ({s.family})" for s in specs)
            + (" · hosted mode" if config.hosted else "")
            + "</small>"
        )
        wire_links(tab_bar, states, config, demo)
        forget_sessions_on_leave(demo)
    return demo


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tune_allocator()  # before models load: big tensors then come back to the system when freed
    start = time.perf_counter()
    args = parse_args(argv)
    try:
        config = build_config(args)
    except ValueError as err:
        print(f"app.py: error: {err}", file=sys.stderr)
        return 2
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    demo = build_app(config)
    # Results nobody used for a minute are dropped and freed memory goes back to the system.
    Janitor().start()
    # Events without a pool of their own (small UI updates) run up to 4 at once; at most
    # MAX_QUEUE requests wait, past that a user is told the app is busy instead of waiting forever.
    demo.queue(default_concurrency_limit=4, max_size=MAX_QUEUE)
    logger.info("Built the app in %.1f s; models: %s", time.perf_counter() - start, ", ".join(config.models))
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        max_file_size=config.limits.upload_bytes,
        # At most this many sessions are remembered (the least recently used dropped first; a
        # departed user's at once, `forget_sessions_on_leave`): gradio's default, 10,000, would let
        # memory grow with every visitor of a shared app.
        state_session_capacity=config.limits.sessions,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
