"""Giving memory back when the server is idle.

The views keep results so that a user who toggles a display option gets an answer at once: the
attention weights of a text (`playground.attention`), each model's scores (`playground.robustness`),
byte entropies (`playground.segment`). Every cache is bounded in size; `release_idle` also drops
what nobody used for a while, and then asks glibc to return freed heap pages to the system (its
allocator keeps them otherwise, so a server's RSS would stay at its peak after a busy hour).
`Janitor` runs it every few seconds in a daemon thread (`app.py` starts one).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import threading
from typing import Any

from playground import attention, robustness, segment

logger = logging.getLogger(__name__)

IDLE_SECONDS = 60.0  # results unused this long are dropped (a class moves on; a reload recomputes)
PERIOD_SECONDS = 15.0


def _glibc(function: str, *args: int) -> bool:
    """Call glibc's ``function(*args)``; False where it is not there (macOS, musl: nothing to do)
    or it reports failure (returns 0)."""
    name = ctypes.util.find_library("c")
    try:
        return bool(getattr(ctypes.CDLL(name or "libc.so.6"), function)(*args))
    except (OSError, AttributeError):
        return False


def _malloc_trim() -> bool:
    """glibc's malloc_trim(0): hand freed heap pages back to the system; False where unavailable."""
    return _glibc("malloc_trim", 0)


# mallopt parameters (glibc's malloc.h).
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 1 << 20
ARENA_MAX = 2


def tune_allocator() -> bool:
    """Make glibc's allocator give memory back after a busy spell; False where it is not glibc.

    By default glibc raises its mmap threshold each time a large block is freed (up to 32 MB), so
    after a few requests a model's activations and attention maps come from the heap, where one
    long-lived small object pins the pages around it, and it gives every thread that allocates its
    own arena (up to 8 per core), each fragmenting on its own. A fixed 1 MB threshold keeps big
    tensors in their own mappings, returned whole when freed, and two arenas suit a server whose
    model runs share two cores. Measured with `bench/load.py` (docs/performance.md). glibc's own
    environment variables (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_ARENA_MAX``) win where set."""
    settings = {
        "MALLOC_MMAP_THRESHOLD_": (_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
        "MALLOC_ARENA_MAX": (_M_ARENA_MAX, ARENA_MAX),
    }
    return all(_glibc("mallopt", *setting) for name, setting in settings.items() if name not in os.environ)


def release_idle(idle_seconds: float = IDLE_SECONDS) -> dict[str, Any]:
    """Drop cached results unused for `idle_seconds`, collect garbage, trim the heap."""
    dropped = {
        "attention": attention.expire_cache(idle_seconds),
        "scores": robustness.CACHE.expire(idle_seconds),
        "next_word": robustness.expire_next_word_cache(idle_seconds),
        "entropy": segment.expire_entropy_cache(idle_seconds),
    }
    gc.collect()
    dropped["trimmed"] = _malloc_trim()
    return dropped


class Janitor(threading.Thread):
    """Calls `release_idle` every `period` seconds until `stop()`."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS, period: float = PERIOD_SECONDS) -> None:
        super().__init__(name="hat-playground-janitor", daemon=True)
        self.idle_seconds, self.period = idle_seconds, period
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.period):
            try:
                dropped = release_idle(self.idle_seconds)
            except Exception:  # never take the server down for housekeeping
                logger.exception("releasing idle memory failed")
                continue
            if any(v for k, v in dropped.items() if k != "trimmed"):
                logger.info("released idle results: %s", dropped)

    def stop(self) -> None:
        self._stop_event.set()
