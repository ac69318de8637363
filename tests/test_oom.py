"""Out of memory while loading or running a model: caught, the models freed, the user told, and the
next request works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from models import registry
from playground.ui.common import user_errors

REPO = Path(__file__).resolve().parents[1]
ALLOCATOR_FAILURE = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 536870912 bytes."


def test_the_kinds_of_allocation_failure_are_recognised() -> None:
    assert registry.is_out_of_memory(MemoryError())
    assert registry.is_out_of_memory(RuntimeError(ALLOCATOR_FAILURE))
    assert registry.is_out_of_memory(OSError(12, "Cannot allocate memory"))
    assert not registry.is_out_of_memory(RuntimeError("shape mismatch"))
    assert not registry.is_out_of_memory(OSError(2, "No such file"))


def test_out_of_memory_while_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = registry.Registry(device="cpu", memory_budget=1)  # a tiny budget: one model at a time
    reg.load_model("bpe-tiny")
    real_load = registry.Registry._load
    calls = []

    def failing_load(self: registry.Registry, resolved: Any) -> Any:
        calls.append(resolved.spec.name)
        if len(calls) == 1:
            raise RuntimeError(ALLOCATOR_FAILURE)  # a forced allocation failure
        return real_load(self, resolved)

    monkeypatch.setattr(registry.Registry, "_load", failing_load)
    with pytest.raises(registry.OutOfMemoryError, match="did not fit in this server's memory"):
        reg.load_model("hat-tiny")
    assert reg.loaded_models() == []  # what it held was freed
    assert reg.load_model("hat-tiny").spec.name == "hat-tiny"  # the next request works
    assert [m.spec.name for m in reg.loaded_models()] == ["hat-tiny"]


@pytest.mark.usefixtures("restore_default_registry")
def test_out_of_memory_while_running_is_told_and_frees_the_models() -> None:
    reg = registry.configure(device="cpu")
    reg.load_model("bpe-tiny")

    @user_errors
    def event(size: int) -> str:
        if size > 100:
            raise RuntimeError(ALLOCATOR_FAILURE)
        return "ok"

    with pytest.raises(gr.Error, match="ran out of memory on this request") as err:
        event(1000)
    assert "Traceback" not in str(err.value)
    assert reg.loaded_models() == []
    assert event(1) == "ok"

    @user_errors
    def bug() -> None:
        raise RuntimeError("shape mismatch")  # not a user error: propagates (logged by gradio)

    with pytest.raises(RuntimeError, match="shape mismatch"):
        bug()


# A real allocation failure: the process's address space is capped just above what it uses, then
# a model far larger than that loads.
REAL_OOM = """
import json, resource, sys
from models import registry
reg = registry.configure(device="cpu", memory_budget=1)
reg.load_model("bpe-tiny")
with open("/proc/self/status") as f:
    vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + 256 * 2**20, resource.RLIM_INFINITY))
out = {}
try:
    reg.load_model("smollm2-135m")
    out["loaded"] = True
except registry.OutOfMemoryError as err:
    out["message"] = str(err)
out["held"] = [m.spec.name for m in reg.loaded_models()]
resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
from models.scoring import score_text
out["after"] = score_text(reg.load_model("bpe-tiny"), "Still up after that.").n_bytes
print(json.dumps(out))
"""


def test_a_real_allocation_failure_leaves_the_process_working() -> None:
    if not registry.get_spec("smollm2-135m").available:
        pytest.skip("smollm2-135m is not installed")
    cache = registry.default_registry().pretrained_cache_path("smollm2-135m")
    if not cache.exists():
        pytest.skip("smollm2-135m's safetensors copy is not built yet (python -m models.registry --warm)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", REAL_OOM], cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert "loaded" not in out and "did not fit" in out["message"], out
    assert out["held"] == [] and out["after"] == len(b"Still up after that.")
