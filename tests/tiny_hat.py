"""A tiny random HAT saved with `save_pretrained`, for tests that load it through `hf:<dir>`.

(Helper module rather than a conftest fixture so both `tests/` and `tests/browser/` can import it.)
"""

from __future__ import annotations

from pathlib import Path


def build_tiny_hat(directory: Path, seed: int = 0) -> Path:
    """Save a HAT with 1-layer byte stacks and a 2-layer backbone, weights far from uniform."""
    import torch

    from models.hat import HATConfig, HATForCausalLM

    torch.manual_seed(seed)
    config = HATConfig(
        max_word_bytes=8,
        encoder_hidden_size=32,
        encoder_layers=1,
        encoder_heads=2,
        encoder_intermediate_size=64,
        backbone_hidden_size=48,
        backbone_layers=2,
        backbone_heads=2,
        backbone_intermediate_size=96,
        decoder_hidden_size=32,
        decoder_layers=1,
        decoder_heads=2,
        decoder_intermediate_size=64,
    )
    model = HATForCausalLM(config).eval()
    with torch.no_grad():  # sharp, position-dependent attention instead of the near-uniform init
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.5)
    model.save_pretrained(directory)
    return directory
