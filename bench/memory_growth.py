"""What the server still holds after a busy spell, by owner: the load of `bench/load.py`, with
every allocation made after the warm-up tracked by memray (`pip install memray`); prints JSON.

    python bench/memory_growth.py [--users 20] [--seconds 120] [--settle 90] [--top 15]

Starts `python app.py` on the three tiny models on 127.0.0.1 under this script's `--serve-to` mode,
sends every kind of request once (the baseline of `bench/load.py`), then starts memray's
tracker in the server (native stacks), runs the simulated users, waits `--settle` seconds, sends
every kind of request once more and stops the tracker. What was allocated while it ran and is
still allocated at the end is what the load left behind: grouped by the library that asked for
it (from the innermost native frame: Python's object arenas, oneDNN's kernel cache, MKL's
buffers, torch tensors, numpy, Rust libraries) and by the first Python frame of this project or
a library. Tracking slows the server down (latencies are not this bench's business; see
`bench/load.py`). A Python object arena is counted whole, for the object that opened it: one
long-lived object keeps its 1 MB arena, which is how small leftovers hold memory. Mappings are
counted at their mapped size: oneDNN's JIT code (Xbyak) is mapped in blocks of which only a few
pages are touched, so that owner's figure overstates its resident share.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

MODELS = ["hat-tiny", "bpe-tiny", "byte-tiny"]
OWNERS = (  # (owner, substrings of the innermost native frames that name it), first match wins
    ("Python objects (pymalloc arenas)", ("_PyObject_ArenaMmap", "new_arena")),
    ("oneDNN kernel cache", ("dnnl::", "Xbyak::")),
    ("MKL buffers", ("mkl_",)),
    ("torch tensors", ("c10::alloc_cpu",)),
    ("numpy arrays", ("PyDataMem",)),
    ("Rust libraries (tokenizers, hat-splitter)", ("alloc7raw_vec", "hashbrown", "regex_automata", "tokenizers")),
    ("Python, other", ("obmalloc", "PyMem_", "_PyObject_")),
)


def serve(output: Path, app_args: list[str]) -> int:
    """The app (with `app_args`), memray's tracker started on SIGUSR1 and stopped on SIGUSR2."""
    import memray

    tracker: list[Any] = []

    def start(*_: object) -> None:
        tracker.append(memray.Tracker(output, native_traces=True))
        tracker[0].__enter__()

    def stop(*_: object) -> None:
        tracker[0].__exit__(None, None, None)
        output.with_suffix(".done").write_text("")

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    import app

    return app.main(app_args)


def owner_of(native_frames: list[str]) -> str:
    for owner, needles in OWNERS:
        if any(needle in frame for frame in native_frames[:4] for needle in needles):
            return owner
    return "other"


def first_python_frame(frames: list[tuple[str, str, int]]) -> str:
    for function, filename, line in frames:
        if filename.endswith(".py") and (str(REPO) in filename or "site-packages" in filename):
            where = filename.split("site-packages/")[-1].replace(str(REPO) + "/", "")
            return f"{where}:{line} ({function})"
    return "?"


def left_behind(path: Path, top: int) -> dict[str, Any]:
    """Allocations still live when tracking stopped, by owner and by first Python frame (MB)."""
    from memray import FileReader

    by_owner: collections.Counter[str] = collections.Counter()
    by_frame: collections.Counter[str] = collections.Counter()
    total = 0
    for record in FileReader(path).get_leaked_allocation_records(merge_threads=True):
        total += record.size
        native = [frame[0] for frame in record.native_stack_trace(max_stacks=8)]
        by_owner[owner_of(native)] += record.size
        try:
            frames = list(record.hybrid_stack_trace(max_stacks=60))
        except AssertionError:  # memray cannot always merge the two stacks; the Python one will do
            frames = list(record.stack_trace(max_stacks=60))
        by_frame[first_python_frame(frames)] += record.size
    mb = 2**20
    return {
        "left_behind_mb": round(total / mb, 1),
        "by_owner_mb": {k: round(v / mb, 1) for k, v in by_owner.most_common()},
        "by_python_frame_mb": {k: round(v / mb, 1) for k, v in by_frame.most_common(top)},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--settle", type=float, default=90.0)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--serve-to", type=Path, help=argparse.SUPPRESS)  # the server side; the rest is app.py's
    args, app_args = ap.parse_known_args()
    if args.serve_to:
        return serve(args.serve_to, app_args)
    try:
        import memray  # noqa: F401
    except ImportError:
        print("bench/memory_growth.py needs memray: pip install memray", file=sys.stderr)
        return 2
    import load
    import psutil
    from gradio_client import Client

    work = Path(tempfile.mkdtemp(prefix="memory-growth-"))
    output = work / "growth.bin"
    launcher = [sys.executable, __file__, "--serve-to", str(output)]
    with load.app_server(MODELS, work / "app.log", launcher=launcher) as (url, pid):
        texts = load.sentences()
        warm = Client(url, verbose=False)
        load.one_of_each(warm, texts, MODELS)
        process = psutil.Process(pid)
        rss_before = process.memory_info().rss
        os.kill(pid, signal.SIGUSR1)
        time.sleep(2)
        counts: collections.Counter[str] = collections.Counter()
        lock = threading.Lock()

        def record(view: str, seconds: float, error: str | None) -> None:
            with lock:
                counts["errors" if error else "requests"] += 1

        load.run_users(args.users, url, texts, MODELS, time.monotonic() + args.seconds, (2.0, 8.0), args.seed, record)
        time.sleep(args.settle)
        load.one_of_each(warm, texts, MODELS)
        rss_after = process.memory_info().rss
        os.kill(pid, signal.SIGUSR2)
        for _ in range(600):
            if output.with_suffix(".done").exists():
                break
            time.sleep(0.5)
    report = {
        "users": args.users,
        "seconds": args.seconds,
        "settle_s": args.settle,
        "requests": counts["requests"],
        "errors": counts["errors"],
        "rss_before_mb": round(rss_before / 2**20, 1),
        "rss_after_mb": round(rss_after / 2**20, 1),
        "rss_after_over_before": round(rss_after / rss_before, 3),
        **left_behind(output, args.top),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
