"""bench/compute_per_byte.py counts every matrix product of a forward pass, and counts it once."""

from __future__ import annotations

from conftest import load_bench

TEXT = "The quick brown fox jumps over the lazy dog, and the dog sleeps on.\n" * 3


def _linear_params(stack) -> int:
    """Weights of a Llama stack's projections and MLPs (norms and embeddings do no matrix product)."""
    return sum(p.numel() for n, p in stack.layers.named_parameters() if n.endswith("proj.weight"))


def test_flat_model_flops_are_its_projections_attention_and_head() -> None:
    bench = load_bench("compute_per_byte")
    from models.registry import load_model

    lm = load_model("bpe-tiny")
    r = bench.measure("bpe-tiny", [TEXT])
    n_bytes = len(TEXT.encode())
    positions = len(lm.tokenizer(TEXT, add_special_tokens=False)["input_ids"]) + 1  # + BOS
    c, config = lm.model.config, r["components"]
    assert r["backbone_positions_per_1000_bytes"] == round(1000 * positions / n_bytes, 1)
    # Projections: 2 FLOPs per weight per position; attention: scores and mix, 2 * 2 * T * T * width per layer.
    projections = 2 * _linear_params(lm.model.model) * positions
    attention = 4 * positions * positions * c.hidden_size * c.num_hidden_layers
    assert config["model"]["flops_per_byte"] == round((projections + attention) / n_bytes)
    assert config["lm_head"]["flops_per_byte"] == round(2 * c.hidden_size * c.vocab_size * positions / n_bytes)
    assert config["lm_head"]["parameters"] == 0  # tied to the embedding, already counted
    assert sum(x["parameters"] for x in config.values()) == r["parameters"]
    assert abs(sum(x["flops_per_byte"] for x in config.values()) - r["flops_per_byte"]) <= len(config)


def test_hat_backbone_runs_once_per_word() -> None:
    bench = load_bench("compute_per_byte")
    from models.registry import load_model

    lm = load_model("hat-tiny")
    r = bench.measure("hat-tiny", [TEXT])
    n_bytes = len(TEXT.encode())
    words = len(lm.model.split(TEXT))  # the start vector and every word but the last
    c = lm.model.config
    assert r["backbone_positions_per_1000_bytes"] == round(1000 * words / n_bytes, 1)
    backbone = (
        2 * _linear_params(lm.model.backbone) * words + 4 * words * words * c.backbone_hidden_size * c.backbone_layers
    )
    assert r["backbone_flops_per_byte"] == round(backbone / n_bytes)
    parts = r["components"]
    assert {"encoder", "backbone", "decoder", "lm_head"} <= set(parts)
    assert sum(x["parameters"] for x in parts.values()) == r["parameters"]
    assert abs(sum(x["share"] for x in parts.values()) - 1) < 1e-3  # nothing counted outside the modules
