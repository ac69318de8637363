"""The tiny random HAT the tests share: built in memory, or saved for `hf:<dir>` loading.

(Helper module rather than a conftest fixture so both `tests/` and `tests/browser/` can import it.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TINY_HAT_SIZES: dict[str, int] = {
    "max_word_bytes": 8,
    "encoder_hidden_size": 32,
    "encoder_layers": 1,
    "encoder_heads": 2,
    "encoder_intermediate_size": 64,
    "backbone_hidden_size": 48,
    "backbone_layers": 2,
    "backbone_heads": 2,
    "backbone_intermediate_size": 96,
    "decoder_hidden_size": 32,
    "decoder_layers": 1,
    "decoder_heads": 2,
    "decoder_intermediate_size": 64,
}


def tiny_hat(seed: int = 0, **overrides: Any):
    """A HAT with 1-layer byte stacks and a 2-layer backbone, freshly initialised, in eval mode."""
    import torch

    from models.hat import HATConfig, HATForCausalLM

    torch.manual_seed(seed)
    return HATForCausalLM(HATConfig(**{**TINY_HAT_SIZES, **overrides})).eval()


def randomize(model, std: float = 0.5):
    """Weights far from the near-uniform init, so tests see sharp, position-dependent outputs."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, std)
    return model


def build_tiny_hat(directory: Path, seed: int = 0, **overrides: Any) -> Path:
    """Save a randomized tiny HAT to `directory` (for tests that load it through `hf:<dir>`)."""
    randomize(tiny_hat(seed, **overrides)).save_pretrained(directory)
    return directory
