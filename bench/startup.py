"""Startup: time from `python app.py` to a served page, and to the first answer of each view.

    python bench/startup.py [--models NAME ...] [--warm]

Starts the app on 127.0.0.1 with a cold model cache (an empty HAT_PLAYGROUND_CACHE, so the
pretrained GGUF files are converted on first use, as on a new Space; `--warm` keeps the user's
cache), then, through gradio_client, sends each view its first request one after the other and
times it (queueing, model loading and computing). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from models import registry  # the repository's, imported before bench/ joins the path

# Appended, so bench/models.py cannot shadow the models package.
sys.path.append(str(REPO / "bench"))
from load import app_server  # bench/load.py: the same server launcher

SENTENCE = "The qiuck brown fox jumps over the lazy dog while the children watch from the garden."


def first_requests(models: list[str]) -> list[tuple[str, str, tuple]]:
    """(view, api name, arguments) of each view's first request, on the app's own models."""
    hat = next((m for m in models if m.startswith("hat")), models[0])
    bpe_models = [m for m in models if m.startswith(("smollm2", "bpe", "gemma"))] or models
    target = "smollm2-135m" if "smollm2-135m" in models else bpe_models[0]
    tokenizers = [m for m in models if not m.startswith("hat")][:3]
    return [
        ("segment", "/segment", (SENTENCE, ["bytes", "hat-words", *tokenizers], 16, 3.0, False, False, 0)),
        ("learn", "/learn_units", (SENTENCE,)),
        ("robustness", "/robustness", (SENTENCE, models[:3], "typo", 0.2, 0)),
        ("attention", "/attention", (SENTENCE, hat, bpe_models[0], "backbone", "units", "mean", 0, 0, "sqrt", -1)),
        (
            "speculative",
            "/speculative",
            (SENTENCE, target, "prompt-lookup", None, "chain", 8, 0.0, 32, True, "float32"),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", help="models to offer (default: the app's, every available built-in)")
    ap.add_argument("--warm", action="store_true", help="keep the user's model cache (default: an empty one)")
    ap.add_argument("--log", type=Path, default=Path("/tmp/bench-startup-app.log"))
    args = ap.parse_args(argv)
    from gradio_client import Client

    models = args.models or [s.name for s in registry.list_models(available_only=True) if s.adapted_from is None]
    with tempfile.TemporaryDirectory(prefix="hat-cold-cache-") as cold:
        env = dict(os.environ)
        if not args.warm:
            env["HAT_PLAYGROUND_CACHE"] = cold
        start = time.perf_counter()
        with app_server(args.models, args.log, env) as (url, _pid):
            served = time.perf_counter() - start
            client = Client(url, verbose=False)
            views = {}
            for view, api, arguments in first_requests(models):
                t = time.perf_counter()
                try:
                    client.predict(*arguments, api_name=api)
                    views[view] = {"first_response_s": round(time.perf_counter() - t, 2)}
                except Exception as err:  # noqa: BLE001  (reported, not hidden)
                    views[view] = {"error": f"{type(err).__name__}: {err}"[:300]}
            total = time.perf_counter() - start
    report = {
        "cache": "warm" if args.warm else "cold (empty HAT_PLAYGROUND_CACHE)",
        "models": models,
        "served_page_s": round(served, 2),
        "views": views,
        "all_views_answered_s": round(total, 2),
        "host": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
    }
    print(json.dumps(report, indent=2))
    return 0 if all("error" not in v for v in views.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
