"""Device selection and optional bitsandbytes quantization."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Literal

import torch

from models.errors import UserError

if TYPE_CHECKING:
    from transformers import BitsAndBytesConfig

DeviceChoice = Literal["auto", "cpu", "cuda", "mps"]
Quantize = Literal["none", "8bit", "4bit"]

DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
QUANTIZE_CHOICES: tuple[str, ...] = ("none", "8bit", "4bit")


class DeviceError(UserError):
    """The requested device or quantization cannot be used on this machine."""


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def resolve_device(requested: str = "auto") -> str:
    """Return the torch device to use: `"auto"` picks CUDA, then MPS, then CPU."""
    if requested not in DEVICE_CHOICES:
        raise DeviceError(f"Unknown device {requested!r}; choose one of: {', '.join(DEVICE_CHOICES)}.")
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if _mps_available():
            return "mps"
        return "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            "--device cuda was requested but torch sees no CUDA GPU "
            f"(torch {torch.__version__}, built for CUDA: {torch.version.cuda or 'no'}). "
            "Install a CUDA build of torch or use --device cpu."
        )
    if requested == "mps" and not _mps_available():
        raise DeviceError("--device mps was requested but the MPS backend is not available on this machine.")
    return requested


def check_quantize(quantize: str, device: str) -> None:
    """Raise `DeviceError` with a clear message if `quantize` cannot be used on `device`."""
    if quantize not in QUANTIZE_CHOICES:
        raise DeviceError(f"Unknown quantization {quantize!r}; choose one of: {', '.join(QUANTIZE_CHOICES)}.")
    if quantize == "none":
        return
    if device != "cuda":
        raise DeviceError(
            f"--quantize {quantize} needs a CUDA GPU (bitsandbytes), but the device is {device!r}. "
            "Run without --quantize (models are small enough for the CPU), or on a machine with CUDA."
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise DeviceError(f"--quantize {quantize} needs bitsandbytes: pip install bitsandbytes")


def quantization_config(quantize: str, device: str) -> BitsAndBytesConfig | None:
    """A `BitsAndBytesConfig` for `quantize` (`None` for `"none"`), checked against `device`."""
    check_quantize(quantize, device)
    if quantize == "none":
        return None
    from transformers import BitsAndBytesConfig

    if quantize == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
