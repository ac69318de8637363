"""Shared fixtures: tiny random models in temp dirs, the running app, and a Playwright browser.

Tiny models are saved with `save_pretrained` and load through the registry as `hf:<dir>`:

- `tiny_bpe_dir`: a 2-layer `LlamaForCausalLM` with a byte-level BPE tokenizer trained here.
- `tiny_byte_dir`: a 2-layer `LlamaForCausalLM` with a `ByT5Tokenizer` (ids = byte + 3).

`app_url` starts `python app.py` on a free port with those models and yields its URL;
`pretrained_app_url` does the same with the available built-in models (for `pretrained` tests).
`page` is a fresh Playwright page (Debian chromium) on `app_url`; `page_at(url)` opens one on
any URL. Browser tests live in `tests/browser/` and save screenshots to `screenshot_dir`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Tests never use the network; fail fast instead of retrying hub requests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT_DIR = REPO_ROOT / "tests" / "browser" / "screenshots"
APP_START_TIMEOUT = 300.0  # about 10 s on an idle 2-core machine; much longer when it is busy

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Hierarchical models read bytes, build words, and predict the next word.",
    "Subword tokenizers cut rare words into several pieces.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "def add(a, b):\n    return a + b\n",
    "Numbers like 3.14159 and 2025 are split in many ways.",
]


def load_bench(name: str) -> Any:
    """A script of `bench/` as a module (bench/ is not a package: its scripts run as files)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).parent.parent / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "pretrained: needs the pretrained GGUF model packages")
    config.addinivalue_line("markers", "browser: drives the running app in headless chromium")


def _tiny_llama(vocab_size: int, bos: int | None, eos: int | None, pad: int | None) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    return LlamaForCausalLM(config)


def build_tiny_bpe(directory: Path) -> Path:
    """Save a tiny Llama with a byte-level BPE tokenizer trained on a few sentences."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(SENTENCES, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    model = _tiny_llama(len(tokenizer), bos=eot, eos=eot, pad=None)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def build_tiny_byte(directory: Path) -> Path:
    """Save a tiny Llama over bytes with a `ByT5Tokenizer` (ids 0-2 special, byte b -> b + 3)."""
    from transformers import ByT5Tokenizer

    tokenizer = ByT5Tokenizer(extra_ids=0)
    model = _tiny_llama(len(tokenizer), bos=tokenizer.eos_token_id, eos=tokenizer.eos_token_id, pad=0)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(autouse=True)
def restore_default_registry() -> Iterator[None]:
    """Put the process-wide registry back after every test: one that reconfigures it (app.build_config,
    e.g. with hosted mode's --models-dir) must not change what later tests can load."""
    from models import registry

    previous = registry._default
    yield
    registry._default = previous


@pytest.fixture(scope="session")
def tiny_bpe_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bpe(tmp_path_factory.mktemp("tiny-bpe"))


@pytest.fixture(scope="session")
def tiny_byte_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_byte(tmp_path_factory.mktemp("tiny-byte"))


@pytest.fixture(scope="session")
def tiny_hat_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random HAT saved with `save_pretrained` (load it as `hf:<dir>`)."""
    from tiny_hat import build_tiny_hat

    return build_tiny_hat(tmp_path_factory.mktemp("tiny-hat"))


@pytest.fixture(scope="session")
def tiny_model_names(tiny_bpe_dir: Path, tiny_byte_dir: Path) -> list[str]:
    """Registry names of the tiny models (`hf:<dir>`)."""
    return [f"hf:{tiny_bpe_dir}", f"hf:{tiny_byte_dir}"]


# ----------------------------------------------------------------------------------------------
# The running app
# ----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_served(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"app.py did not serve {url} within {timeout:.0f} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def app_models(tiny_model_names: list[str]) -> list[str]:
    """Models offered by the app under test: the tiny `hf:` models only (no downloads, fast)."""
    return tiny_model_names


@contextlib.contextmanager
def running_app(
    models: list[str], log: Path, extra_args: list[str] | None = None, env: dict[str, str] | None = None
) -> Iterator[str]:
    """Run `python app.py --models ...` on a free port until the block ends; yields its URL.
    `env` adds to (or overrides) this process's environment."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    cmd = [sys.executable, str(REPO_ROOT / "app.py"), "--port", str(port), "--models", *models, *(extra_args or [])]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_served(url, proc, log, APP_START_TIMEOUT)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def app_url(app_models: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of the app serving `app_models`, started once per test session."""
    with running_app(app_models, tmp_path_factory.mktemp("app") / "app.log") as url:
        yield url


@pytest.fixture(scope="session")
def hat_app_url(tiny_bpe_dir: Path, tiny_hat_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of an app serving a tiny random HAT and the tiny BPE model (`app_url` has no HAT)."""
    with running_app(
        [f"hf:{tiny_hat_dir}", f"hf:{tiny_bpe_dir}"], tmp_path_factory.mktemp("hat-app") / "app.log"
    ) as url:
        yield url


TRAINED_MODELS = ["hat-tiny", "bpe-tiny", "byte-tiny"]  # trained by this project, shipped in assets/models


@pytest.fixture(scope="session")
def trained_app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of an app serving the project's own tiny models (the ones the lessons are written for)."""
    with running_app(TRAINED_MODELS, tmp_path_factory.mktemp("trained-app") / "app.log") as url:
        yield url


@pytest.fixture(scope="session")
def hosted_app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of the app in hosted mode (as on a Space), with the project's tiny models."""
    log = tmp_path_factory.mktemp("hosted-app") / "app.log"
    with running_app(TRAINED_MODELS, log, ["--hosted"]) as url:
        yield url


@pytest.fixture(scope="session")
def pretrained_models() -> list[str]:
    """Built-in models available on this installation (pretrained packages, trained checkpoints)."""
    from models.registry import Registry

    registry = Registry(device="cpu")
    return [spec.name for spec in registry.list_models(available_only=True)]


@pytest.fixture(scope="session")
def pretrained_app_url(pretrained_models: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of an app serving the available built-in models (for `pretrained` browser tests).

    Uses the user's model cache, so only the first run ever converts the GGUF files.
    """
    if not pretrained_models:
        pytest.skip("no pretrained model package is installed")
    with running_app(pretrained_models, tmp_path_factory.mktemp("app-pretrained") / "app.log") as url:
        yield url


# ----------------------------------------------------------------------------------------------
# Playwright (sync API) with Debian chromium
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (make test installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def open_page(browser: Any, url: str) -> Iterator[Any]:
    """A fresh page (1400x1000) on `url`, with the Gradio UI loaded."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    # Generous: on a busy 2-core machine chromium and gradio render slowly.
    page.set_default_timeout(60_000)
    page.set_default_navigation_timeout(120_000)
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector(".gradio-container", state="visible", timeout=120_000)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture()
def page_at(browser: Any) -> Callable[[str], contextlib.AbstractContextManager[Any]]:
    """`with page_at(url) as page:` opens a fresh page on any URL (e.g. `pretrained_app_url`)."""
    return functools.partial(open_page, browser)


@pytest.fixture()
def page(browser: Any, app_url: str) -> Iterator[Any]:
    """A fresh page on the session's app (see `app_url`)."""
    with open_page(browser, app_url) as page:
        yield page


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENSHOT_DIR
