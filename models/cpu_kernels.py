"""Faster float32 decoding on CPU with the same arithmetic: linear layers on oneDNN with
their weights reordered once (used for plain and speculative decoding alike, and to generate
self-distillation data for draft heads)."""

from __future__ import annotations

import copy
import weakref

import torch
from torch import nn
from transformers import PreTrainedModel


class OneDNNLinear(nn.Module):
    """A float32 ``nn.Linear`` on CPU whose weight oneDNN reordered once into its own blocked
    layout. The default path (MKL sgemm) repacks the weight on every call, which for the 2-16
    rows of a draft-tree pass costs about as much as the arithmetic: on SmolLM2-135M (one
    thread, `bench/decoding_kernels.py`) the body took 60.3 ms before and 40.9 ms after for 8
    tokens, 34.0 and 28.5 ms for one, and the LM head on 8 rows 14.9 and 7.7 ms. Same float32
    arithmetic, other summation order (outputs agree to ~1e-6)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias  # shared, for code that reads them
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self._packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        bias = self.bias.detach() if self.bias is not None else None
        out = torch.ops.mkldnn._linear_pointwise(rows, self._packed, bias, "none", [], "")
        return out.reshape(*x.shape[:-1], out.shape[-1])


_DECODING_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def decoding_model(model: PreTrainedModel) -> PreTrainedModel:
    """The model to decode with, plain and speculative alike: for a float32 model on CPU, a
    view sharing every weight of ``model`` whose linear layers use :class:`OneDNNLinear`
    (built once per model, kept while the model lives); otherwise, or when no plain
    ``nn.Linear`` is left to swap (a model already made ready to decode), ``model`` itself."""
    if model.device.type != "cpu" or model.dtype != torch.float32 or not _onednn_available():
        return model
    if not any(type(m) is nn.Linear for m in model.modules()):
        return model
    view = _DECODING_VIEWS.get(model)
    if view is None:
        shared = {id(t): t for t in [*model.parameters(), *model.buffers()]}
        view = copy.deepcopy(model, memo=shared)  # new modules, same tensors
        use_onednn_linears(view)
        view.eval()
        _DECODING_VIEWS[model] = view
    return view


def use_onednn_linears(module: nn.Module) -> nn.Module:
    """Swap every float32 ``nn.Linear`` inside ``module`` for a :class:`OneDNNLinear` sharing its
    weights, in place (for modules only ever used to decode on CPU); returns ``module``."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            setattr(parent, name, onednn_linear(child))
    return module


def onednn_linear(module: nn.Module) -> nn.Module:
    """``module`` as a :class:`OneDNNLinear` when it is a float32 ``nn.Linear`` on CPU and
    oneDNN is available; otherwise ``module`` itself."""
    if (
        type(module) is nn.Linear
        and module.weight.device.type == "cpu"
        and module.weight.dtype == torch.float32
        and _onednn_available()
    ):
        return OneDNNLinear(module)
    return module


def _onednn_available() -> bool:
    ops = getattr(torch.ops, "mkldnn", None)
    try:
        return bool(torch.backends.mkldnn.is_available()) and hasattr(ops, "_linear_pointwise")
    except (AttributeError, RuntimeError):
        return False
