"""Idle results are dropped and memory is handed back; caches stay bounded."""

from __future__ import annotations

import time

import numpy as np

from models.family import TextScore
from playground import attention, memory, robustness


def fake_result(text: str) -> attention.AttentionResult:
    level = attention.AttentionLevel("tokens", [], [np.zeros((1, 4, 4), np.float32)], True, [], "")
    return attention.AttentionResult("m", "bpe", text, {"tokens": level}, [], 0.0)


def test_attention_cache_expires_idle_entries_only() -> None:
    cache = attention.AttentionCache(max_bytes=10**9)
    cache.get("m", "old", lambda: fake_result("old"))
    time.sleep(0.05)
    cache.get("m", "new", lambda: fake_result("new"))
    assert cache.expire(idle_seconds=0.03) == 1
    recomputed = []
    cache.get("m", "new", lambda: recomputed.append(1) or fake_result("new"))
    assert not recomputed  # the recent one stayed
    cache.get("m", "old", lambda: recomputed.append(1) or fake_result("old"))
    assert recomputed == [1]  # the idle one was dropped


def test_score_cache_expires_and_keeps_its_byte_count() -> None:
    cache = robustness.ScoreCache(max_bytes=1000)
    score = TextScore(n_bytes=10, total_bits=1.0, byte_bits=np.zeros(10))
    cache.put(cache.key("m", "a"), score)
    time.sleep(0.05)
    cache.put(cache.key("m", "b"), score)
    assert cache.expire(0.03) == 1 and len(cache) == 1 and cache._bytes == 10
    assert cache.get(cache.key("m", "b")) is score and cache.get(cache.key("m", "a")) is None
    assert cache.expire(0.0) == 1 and cache._bytes == 0


def test_release_idle_reports_what_it_dropped() -> None:
    attention._CACHE.get("m", "janitor test", lambda: fake_result("janitor test"))
    out = memory.release_idle(idle_seconds=0.0)
    assert out["attention"] >= 1 and set(out) == {"attention", "scores", "next_word", "entropy", "trimmed"}
    assert attention._CACHE.nbytes == 0


def test_the_janitor_runs_and_stops() -> None:
    attention._CACHE.get("m", "janitor thread", lambda: fake_result("janitor thread"))
    janitor = memory.Janitor(idle_seconds=0.0, period=0.05)
    janitor.start()
    deadline = time.monotonic() + 5
    while attention._CACHE.nbytes and time.monotonic() < deadline:
        time.sleep(0.05)
    janitor.stop()
    janitor.join(timeout=5)
    assert attention._CACHE.nbytes == 0 and not janitor.is_alive()


def test_the_allocator_is_tuned_where_it_is_glibc() -> None:
    """`tune_allocator` sets glibc's mmap threshold and arena count (False only without glibc)."""
    import platform

    from playground.memory import tune_allocator

    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert tune_allocator() is True
    else:
        assert tune_allocator() is False


def test_glibc_environment_variables_win_over_the_apps_allocator_defaults(monkeypatch) -> None:
    """A threshold or arena count set in the environment (how one compares settings with
    `bench/load.py`) is left to glibc; only the unset one is changed."""
    from playground import memory

    calls = []
    monkeypatch.setattr(memory, "_glibc", lambda function, *args: calls.append((function, *args)) or True)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert memory.tune_allocator() is True
    assert calls == [("mallopt", memory._M_ARENA_MAX, memory.ARENA_MAX)]
    calls.clear()
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    assert memory.tune_allocator() is True
    assert ("mallopt", memory._M_MMAP_THRESHOLD, memory.MMAP_THRESHOLD_BYTES) in calls and len(calls) == 2


def test_the_load_bench_tells_anonymous_growth_from_mapped_files() -> None:
    """`bench/load.py`'s memory breakdown sees 64 MB this process allocates and touches as
    anonymous memory, not as pages of mapped files."""
    import os

    from conftest import load_bench

    load = load_bench("load")
    before = load.memory_map(load.read_smaps(os.getpid()))
    block = np.ones(64 * 2**20, np.uint8)  # touched: resident
    growth = load.memory_growth(before, load.memory_map(load.read_smaps(os.getpid())))
    assert 60 <= growth["rollup:anon"] <= 80 and abs(growth["rollup:file"]) < 16
    assert int(block.sum()) == 64 * 2**20
