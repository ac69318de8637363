"""Faster decoding on CPU: linear layers whose weights are packed once for a fast kernel.

- :class:`OneDNNLinear`: float32 weights on oneDNN, the model's own arithmetic (the default for
  targets, plain and speculative decoding alike, and for self-distillation data);
- :class:`HalfWeightLinear`: float16 weights with float32 activations (fbgemm). A step reads half
  the bytes, and each row's output is bitwise independent of the other rows in the call, so a
  tree pass computes exactly what single-token steps compute. It rounds the weights, though:
  used for drafts (whose precision cannot change a lossless decoder's output) and, when asked
  for, as a target whose speedups are then measured against plain decoding of the same weights.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import weakref
from collections.abc import Callable, Iterator

import torch
from torch import nn
from transformers import PreTrainedModel

from models.errors import UserError

WEIGHT_FORMATS = ("float32", "float16")


class OneDNNLinear(nn.Module):
    """A float32 ``nn.Linear`` on CPU whose weight oneDNN reordered once into its own blocked
    layout, for calls of at least ``min_rows`` rows; calls with fewer rows are padded with zero
    rows up to it.

    Why reorder: the default path (MKL sgemm) repacks the weight on every call, which for the
    2-16 rows of a draft-tree pass costs about as much as the arithmetic (on SmolLM2-135M, one
    thread, `bench/decoding_kernels.py`, the earlier Intel host: body 60.3 ms before and 40.9 ms
    after for 8 tokens). Why pad: oneDNN's kernel for a weight packed for one row is slower
    than its kernel for four, even at one row, and a weight packed for one row is slow at 2-8
    (this AMD host, `decoding_kernels_epyc.json`: ``fp32-onednn-1row`` against
    ``fp32-onednn``). Packed for four and padded, one token costs what four do, so a plain step
    gets cheaper and a draft tree of up to a few nodes costs about one plain step. Each output
    row is bitwise the same whatever the other rows of the call are (tested), so a tree pass
    computes what single steps compute; against ``nn.Linear`` the summation order differs
    (outputs agree to ~1e-6).

    Calls of more than ``exact_rows`` rows, and every call of more than ``min_rows`` rows inside
    :func:`prefill_rows` (a prompt's prefill, not a draft tree), are padded up to a multiple of
    ``exact_rows``: oneDNN compiles and caches a kernel per row count, resident about 0.56 MB
    whatever the weight's shape (this host, oneDNN 3.12), and a server reading prompts of every
    length would otherwise fill its kernel cache with one-off prefill shapes, evicting the tree
    shapes every step needs and keeping the memory after a busy spell (`bench/memory_growth.py`).
    A tree's rows stay exact: an extra row there would slow every decoding step."""

    def __init__(self, linear: nn.Linear, min_rows: int = 4, exact_rows: int = 32) -> None:
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias  # shared, for code that reads them
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.min_rows, self.exact_rows = min_rows, max(exact_rows, min_rows)
        self._packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), min_rows)

    def padded(self, n: int) -> int:
        """How many rows a call of ``n`` rows is computed as."""
        if n <= self.min_rows or (n <= self.exact_rows and not _prefilling.on):
            return max(n, self.min_rows)
        return -(-n // self.exact_rows) * self.exact_rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        n = rows.shape[0]
        if (padded := self.padded(n)) > n:
            rows = torch.cat([rows, rows.new_zeros(padded - n, rows.shape[1])])
        bias = self.bias.detach() if self.bias is not None else None
        out = torch.ops.mkldnn._linear_pointwise(rows, self._packed, bias, "none", [], "")
        return out[:n].reshape(*x.shape[:-1], out.shape[-1])


class _Prefilling(threading.local):
    on = False  # per thread: each user's request runs in its own


_prefilling = _Prefilling()


@contextlib.contextmanager
def prefill_rows() -> Iterator[None]:
    """Within the block (this thread only), :class:`OneDNNLinear` computes any call of more than
    ``min_rows`` rows as a multiple of ``exact_rows`` rows: for a prompt's prefill, whose row
    count follows the user's text and whose cost is paid once, so that prompts of every length
    share a few kernel shapes. Rows come out bitwise the same."""
    before, _prefilling.on = _prefilling.on, True
    try:
        yield
    finally:
        _prefilling.on = before


def padded_rows(model: nn.Module) -> int:
    """How many rows a call of ``model``'s linear layers costs at least: the ``min_rows`` its
    ``OneDNNLinear`` layers pad to (a pass over up to that many tokens costs what one token
    does), 1 for other kernels."""
    return max((m.min_rows for m in model.modules() if isinstance(m, OneDNNLinear)), default=1)


class HalfWeightLinear(nn.Module):
    """A float32 ``nn.Linear`` on CPU whose weight is stored as float16 and packed once for
    fbgemm (``quantized::linear_dynamic_fp16``): inputs and outputs stay float32 and the weight
    is widened in registers, so a one-row call reads half the bytes (`bench/decoding_kernels.py`
    has the timings). Weights round to float16 (relative error up to 2^-11)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias  # shared, for code that reads them
        self.in_features, self.out_features = linear.in_features, linear.out_features
        bias = linear.bias.detach() if linear.bias is not None else None
        self._packed = torch.ops.quantized.linear_prepack_fp16(linear.weight.detach(), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.ops.quantized.linear_dynamic_fp16(x.reshape(-1, x.shape[-1]), self._packed)
        return out.reshape(*x.shape[:-1], out.shape[-1])


def _is_cpu_float32_linear(module: nn.Module) -> bool:
    return type(module) is nn.Linear and module.weight.device.type == "cpu" and module.weight.dtype == torch.float32


def onednn_linear(module: nn.Module) -> nn.Module:
    """``module`` as a :class:`OneDNNLinear` when it is a float32 ``nn.Linear`` on CPU and
    oneDNN is available; otherwise ``module`` itself."""
    return OneDNNLinear(module) if _is_cpu_float32_linear(module) and _onednn_available() else module


def half_weight_linear(module: nn.Module) -> nn.Module:
    """``module`` as a :class:`HalfWeightLinear` when it is a float32 ``nn.Linear`` on CPU and
    fbgemm is available; otherwise ``module`` itself."""
    return HalfWeightLinear(module) if _is_cpu_float32_linear(module) and _fbgemm_available() else module


def draft_linear(module: nn.Module) -> nn.Module:
    """The fastest CPU linear layer for drafting: float16 weights when fbgemm is there, else
    float32 on oneDNN; anything that is not a float32 ``nn.Linear`` on CPU comes back as is."""
    return half_weight_linear(module) if _fbgemm_available() else onednn_linear(module)


def swap_linears(module: nn.Module, convert: Callable[[nn.Module], nn.Module]) -> nn.Module:
    """Replace every submodule ``m`` of ``module`` by ``convert(m)``, in place (``convert`` returns
    what it does not convert as is); returns ``module``."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            setattr(parent, name, convert(child))
    return module


_DECODING_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {format: view}


def decoding_model(model: PreTrainedModel, weights: str = "float32") -> PreTrainedModel:
    """The model to decode with, plain and speculative alike. For a float32 model on CPU, a view
    sharing every parameter of ``model`` whose linear layers keep ``weights``: "float32" on
    oneDNN (:class:`OneDNNLinear`, the model's own arithmetic) or "float16"
    (:class:`HalfWeightLinear`). Built once per model and format, kept while the model lives.
    Otherwise (another device or dtype, no kernel, or no plain ``nn.Linear`` left to swap)
    ``model`` itself."""
    if weights not in WEIGHT_FORMATS:
        raise UserError(f"unknown weight format {weights!r}; choose one of: {', '.join(WEIGHT_FORMATS)}")
    if not _cpu_float32(model):
        if weights == "float16":
            raise UserError(
                f"float16 weights are a CPU option for float32 models; this model runs on {model.device.type} "
                f"in {str(model.dtype).removeprefix('torch.')}"
            )
        return model
    if weights == "float16" and not _fbgemm_available():
        raise UserError("float16 weights need PyTorch's fbgemm kernels (an x86-64 CPU with AVX2)")
    if weights == "float32" and not _onednn_available():
        return model
    if not any(type(m) is nn.Linear for m in model.modules()):
        return model
    views = _DECODING_VIEWS.setdefault(model, {})
    if weights not in views:
        shared = {id(t): t for t in [*model.parameters(), *model.buffers()]}
        view = copy.deepcopy(model, memo=shared)  # new modules, same tensors
        swap_linears(view, onednn_linear if weights == "float32" else half_weight_linear)
        views[weights] = view.eval()
    return views[weights]


def draft_decoding_model(model: PreTrainedModel) -> PreTrainedModel:
    """:func:`decoding_model` for a draft model: float16 weights where fbgemm runs them."""
    return decoding_model(model, "float16" if _cpu_float32(model) and _fbgemm_available() else "float32")


def _cpu_float32(model: PreTrainedModel) -> bool:
    return model.device.type == "cpu" and model.dtype == torch.float32


def _onednn_available() -> bool:
    ops = getattr(torch.ops, "mkldnn", None)
    try:
        return bool(torch.backends.mkldnn.is_available()) and hasattr(ops, "_linear_pointwise")
    except (AttributeError, RuntimeError):
        return False


def _fbgemm_available() -> bool:
    return "fbgemm" in torch.backends.quantized.supported_engines and hasattr(
        torch.ops.quantized, "linear_dynamic_fp16"
    )
