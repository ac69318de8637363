"""Many users at once: simulated users drive a real app server through its API and the latency,
errors and memory of the server are measured.

    python bench/load.py [--users 20] [--seconds 120] [--models hat-tiny bpe-tiny byte-tiny]
                         [--think 2,8] [--seed 0] [--rounds 1] [--url URL]

Starts `python app.py` on 127.0.0.1 (a free port; or drives `--url`), sends every kind of
request the load will send once (the baseline: lazy data loaded), then runs `--users` threads
for `--seconds`. Each user is its own gradio_client session and, like a person, picks a view (token boundaries 40%, robustness 30%, attention 15%, speculative decoding
15%), sends a realistic request (an example text of the app, cut at a sentence end; its own seed),
waits for the answer, then reads it for a random think time (`--think`, seconds, uniform) before
the next one, and leaves (closes its session) at the deadline. It stops by itself: no new
request after the deadline, and every request has a timeout. Prints JSON: requests done and
errors per view, p50/p95/max latency per view (client side: queueing + computing + transfer), the server's RSS before the load (after warm-up), its peak
during the load, and after the load settles (90 s idle, in which the server drops results unused
for a minute and returns freed memory; then every kind of request once more). With `--rounds N`
the load and the settling repeat N times on the same server (seeds `--seed`, `--seed`+1, ...)
and the RSS after each round is listed: a server whose memory is bounded levels off, a leak
keeps growing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import psutil

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "assets" / "examples"
VIEW_WEIGHTS = {"segment": 0.40, "robustness": 0.30, "attention": 0.15, "speculative": 0.15}
REQUEST_TIMEOUT_S = 120.0
# The server drops results unused for a minute (playground.memory, checked every 15 s): the load
# has settled once that happened.
SETTLE_S = 90.0


def sentences() -> list[str]:
    """Texts a user might paste: runs of 1-3 consecutive lines or sentences of the app's examples,
    at most 400 characters each."""
    out = []
    for path in sorted(EXAMPLES.rglob("*.txt")):
        text = path.read_text(encoding="utf-8")
        parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+|\n+", text) if p.strip()]
        for n in (1, 2, 3):
            for i in range(len(parts) - n + 1):
                run = " ".join(parts[i : i + n])[:400]
                if len(run) > 20:
                    out.append(run)
    return list(dict.fromkeys(out))


ROBUSTNESS_KINDS = ("typo", "misspelling", "upper", "homoglyph", "mix")
ATTENTION_LEVELS = ("encoder", "backbone", "decoder")


def request_for(
    view: str, text: str, rng: random.Random, models: list[str], variant: int | None = None
) -> tuple[str, tuple[Any, ...]]:
    """(api_name, arguments) of one request to `view`, as the tab sends it; `variant` picks the
    option the load would draw at random (`variants(view)` of them)."""
    hat = next((m for m in models if m.startswith("hat")), models[0])
    bpe = next((m for m in models if m.startswith("bpe")), models[0])
    if view == "segment":
        units = ["bytes", "hat-words", *[m for m in models if not m.startswith("hat")][:2]]
        entropy = rng.random() < 0.3 if variant is None else bool(variant)
        return "/segment", (text, units, 16, 3.0, False, entropy, rng.randrange(100))
    if view == "robustness":
        kind = rng.choice(ROBUSTNESS_KINDS) if variant is None else ROBUSTNESS_KINDS[variant]
        return "/robustness", (text, models[:3], kind, rng.choice([0.1, 0.2, 0.3]), rng.randrange(100))
    if view == "attention":
        level = rng.choice(ATTENTION_LEVELS) if variant is None else ATTENTION_LEVELS[variant]
        return "/attention", (text[:200], hat, bpe, level, "units", "mean", 0, 0, "sqrt", -1)
    prompt = text[:300]
    return "/speculative", (prompt, bpe, "prompt-lookup", None, "chain", 8, 0.0, 32, True, "float32")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def app_server(
    models: list[str] | None, log: Path, env: dict[str, str] | None = None, launcher: list[str] | None = None
) -> Iterator[tuple[str, int]]:
    """`python app.py` on a free port (with `models`, or its default models) until the block ends;
    `launcher` replaces `python app.py` by a command that takes the app's arguments."""
    port = free_port()
    cmd = [*(launcher or [sys.executable, str(REPO / "app.py")]), "--port", str(port)]
    cmd += ["--models", *models] if models else []
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def read_smaps(pid: int) -> str:
    """/proc/<pid>/smaps ("" where there is none: not Linux)."""
    try:
        return Path(f"/proc/{pid}/smaps").read_text()
    except OSError:
        return ""


def memory_map(smaps: str) -> dict[str, int]:
    """Resident bytes by kind and by mapping, from a `read_smaps` text: ``rollup:anon`` (heap,
    arenas, anonymous mmaps: what the allocators hold), ``rollup:file`` (pages of mapped files:
    shared libraries' code, mmapped weights; clean, the kernel can drop them at no cost) and one
    entry per mapped file or ``[anon]``/``[heap]``."""
    out: dict[str, int] = {}
    name = "[anon]"
    for line in smaps.splitlines():
        head, _, rest = line.partition(" ")
        if "-" in head and not head.endswith(":"):  # a mapping's header: range perms offset dev inode [path]
            fields = rest.split(maxsplit=4)
            name = fields[4].strip() if len(fields) == 5 else "[anon]"
        elif head in ("Rss:", "Anonymous:"):
            kilobytes = int(rest.split()[0]) * 1024
            if head == "Rss:":
                out[name] = out.get(name, 0) + kilobytes
            else:
                out["rollup:anon"] = out.get("rollup:anon", 0) + kilobytes
    out["rollup:file"] = sum(v for k, v in out.items() if not k.startswith(("[", "rollup:")))
    return out


def memory_growth(before: dict[str, int], after: dict[str, int], top: int = 8) -> dict[str, float]:
    """MB each kind and the `top` mappings grew by between two `memory_map` readings."""
    grew = {k: (after.get(k, 0) - before.get(k, 0)) / 2**20 for k in set(before) | set(after)}
    kinds = {k: round(v, 1) for k, v in grew.items() if k.startswith("rollup:")}
    mappings = sorted(((k, v) for k, v in grew.items() if not k.startswith("rollup:")), key=lambda kv: -abs(kv[1]))
    return kinds | {k: round(v, 1) for k, v in mappings[:top]}


def server_pid(url: str) -> int:
    """The pid listening on the port of `url` (for `--url`: a server this bench did not start)."""
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            return conn.pid
    raise RuntimeError(f"no process listens on port {port}")


class MemoryWatch:
    """Samples the server's RSS every 0.25 s in a thread; `peak` is the largest seen."""

    def __init__(self, pid: int):
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        return self.process.memory_info().rss

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> Self:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def variants(view: str) -> int:
    """How many options of `view` the load draws from."""
    return {"segment": 2, "robustness": len(ROBUSTNESS_KINDS), "attention": len(ATTENTION_LEVELS)}.get(view, 1)


def one_of_each(client: Any, texts: list[str], models: list[str]) -> None:
    """Every kind of request the load sends, once: first uses load lazy data (misspelling lists,
    homoglyph tables, a level's code), which belongs in the baseline, not in the load's growth."""
    rng = random.Random(1)
    for view in VIEW_WEIGHTS:
        for variant in range(variants(view)):
            api, args = request_for(view, texts[0], rng, models, variant)
            client.predict(*args, api_name=api)


def user(
    index: int,
    url: str,
    texts: list[str],
    models: list[str],
    deadline: float,
    think: tuple[float, float],
    seed: int,
    record: Callable[[str, float, str | None], None],
    weights: dict[str, float] = VIEW_WEIGHTS,
) -> None:
    from gradio_client import Client

    rng = random.Random(seed * 1000 + index)
    client = Client(url, verbose=False)
    time.sleep(rng.uniform(0, think[1]))  # users arrive over the first think time, not all at once
    views, shares = list(weights), list(weights.values())
    try:
        while time.monotonic() < deadline:
            view = rng.choices(views, shares)[0]
            api, args = request_for(view, rng.choice(texts), rng, models)
            start = time.perf_counter()
            error = None
            try:
                job = client.submit(*args, api_name=api)
                job.result(timeout=REQUEST_TIMEOUT_S)
            except Exception as err:  # noqa: BLE001  (every failure is counted and reported)
                error = f"{type(err).__name__}: {err}"[:300]
            record(view, time.perf_counter() - start, error)
            time.sleep(rng.uniform(*think))
    finally:
        client.close()  # the user leaves (closes the page): the server may forget the session


def run_users(
    users: int,
    url: str,
    texts: list[str],
    models: list[str],
    deadline: float,
    think: tuple[float, float],
    seed: int,
    record: Callable[[str, float, str | None], None],
    weights: dict[str, float] = VIEW_WEIGHTS,
) -> None:
    """`users` simulated users (`user`), each in its own thread, until `deadline` (and their last
    answers) has passed."""
    threads = [
        threading.Thread(
            target=user, args=(i, url, texts, models, deadline, think, seed, record, weights), daemon=True
        )
        for i in range(users)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()) + REQUEST_TIMEOUT_S + 60)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--models", nargs="+", default=["hat-tiny", "bpe-tiny", "byte-tiny"])
    ap.add_argument("--think", default="2,8", help="think time between a user's requests: MIN,MAX seconds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--views", default=",".join(VIEW_WEIGHTS), help="only these views (comma-separated)")
    ap.add_argument(
        "--rounds", type=int, default=1, help="loads in a row on the same server, each followed by --settle"
    )
    ap.add_argument("--settle", type=float, default=SETTLE_S, help="idle seconds before the last RSS reading")
    ap.add_argument("--url", help="drive this running app instead of starting one")
    ap.add_argument("--log", type=Path, default=Path("/tmp/bench-load-app.log"))
    ap.add_argument(
        "--smaps", type=Path, help="write the server's /proc/<pid>/smaps before and after to this directory"
    )
    args = ap.parse_args(argv)
    if not 1 <= args.users <= 200 or not 1 <= args.seconds <= 3600 or not 1 <= args.rounds <= 10:
        ap.error("--users must be 1..200, --seconds 1..3600 and --rounds 1..10")
    think = tuple(float(x) for x in args.think.split(","))
    weights = {v: VIEW_WEIGHTS[v] for v in args.views.split(",") if v in VIEW_WEIGHTS}
    if not weights:
        ap.error(f"--views: choose from {', '.join(VIEW_WEIGHTS)}")
    texts = sentences()

    with contextlib.ExitStack() as stack:
        if args.url:
            url, pid = args.url, server_pid(args.url)
        else:
            url, pid = stack.enter_context(app_server(args.models, args.log))
        from gradio_client import Client

        warm = Client(url, verbose=False)
        one_of_each(warm, texts, args.models)  # models loaded and caches warm: the baseline
        rss_before = psutil.Process(pid).memory_info().rss
        smaps_before = read_smaps(pid)
        if args.smaps:
            args.smaps.mkdir(parents=True, exist_ok=True)
            (args.smaps / "before.smaps").write_text(smaps_before)
        threads_before = psutil.Process(pid).num_threads()

        lock = threading.Lock()
        latencies: dict[str, list[float]] = {v: [] for v in VIEW_WEIGHTS}
        errors: dict[str, list[str]] = {v: [] for v in VIEW_WEIGHTS}

        def record(view: str, seconds: float, error: str | None) -> None:
            with lock:
                (errors[view].append(error) if error else latencies[view].append(seconds))

        started = time.monotonic()
        peak, rss_rounds = 0, []
        for round_index in range(args.rounds):
            deadline = time.monotonic() + args.seconds
            with MemoryWatch(pid) as memory:
                run_users(
                    args.users, url, texts, args.models, deadline, think, args.seed + round_index, record, weights
                )
            peak = max(peak, memory.peak)
            time.sleep(args.settle)
            one_of_each(warm, texts, args.models)  # the server still answers every view
            rss_rounds.append(psutil.Process(pid).memory_info().rss)
        elapsed = time.monotonic() - started
        rss_after = rss_rounds[-1]
        smaps_after = read_smaps(pid)
        if args.smaps:
            (args.smaps / "after.smaps").write_text(smaps_after)
        threads_after = psutil.Process(pid).num_threads()

    views = {}
    for view in weights:
        lat = latencies[view]
        views[view] = {
            "requests": len(lat) + len(errors[view]),
            "errors": len(errors[view]),
            "p50_s": round(statistics.median(lat), 3) if lat else None,
            "p95_s": round(percentile(lat, 0.95), 3) if lat else None,
            "max_s": round(max(lat), 3) if lat else None,
            "first_errors": errors[view][:3],
        }
    report = {
        "users": args.users,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "elapsed_s": round(elapsed, 1),
        "think_s": list(think),
        "mix": weights,
        "settle_s": args.settle,
        "models": args.models,
        "requests": sum(v["requests"] for v in views.values()),
        "errors": sum(v["errors"] for v in views.values()),
        "views": views,
        "rss_before_mb": round(rss_before / 2**20, 1),
        "rss_peak_mb": round(peak / 2**20, 1),
        "rss_after_mb": round(rss_after / 2**20, 1),
        "rss_after_over_before": round(rss_after / rss_before, 3),
        # With --rounds > 1: RSS after each round settled; flat = memory bounded, not leaking.
        "rss_after_each_round_mb": [round(r / 2**20, 1) for r in rss_rounds],
        # What the growth is: anonymous memory (the allocators) or resident pages of mapped files.
        "rss_growth_mb": memory_growth(memory_map(smaps_before), memory_map(smaps_after)),
        "server_threads_before": threads_before,
        "server_threads_after": threads_after,
        "host": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
        "model_slots": os.environ.get("HAT_PLAYGROUND_MODEL_SLOTS", "default"),
    }
    print(json.dumps(report, indent=2))
    return 0 if report["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
