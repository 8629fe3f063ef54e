"""Gradient clipping (``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_``)."""

from __future__ import annotations

import math

import numpy as np

from ...backend import get_array_module
from ...tensor import Tensor


def _grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def get_total_norm(tensors, norm_type: float = 2.0, error_if_nonfinite: bool = False, foreach=None) -> Tensor:
    """The ``norm_type``-norm of all ``tensors`` seen as one vector, as a 0-d tensor."""
    if isinstance(tensors, Tensor):
        tensors = [tensors]
    tensors = list(tensors)
    norm_type = float(norm_type)
    if not tensors:
        return Tensor(np.array(0.0, dtype=np.float32))
    xp = get_array_module(tensors[0].data)
    dt = tensors[0].data.dtype
    # One reduction per tensor on its device, then a single copy to the host (one GPU wait, not one
    # per parameter).
    if math.isinf(norm_type):
        parts = [xp.abs(t.data).max().astype(xp.float64) for t in tensors if t.data.size]
        total = float(xp.stack(parts).max()) if parts else 0.0
    else:
        parts = [(xp.abs(t.data.astype(xp.float64)) ** norm_type).sum() for t in tensors]
        total = float(xp.stack(parts).sum()) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is "
                           "non-finite, so it cannot be clipped. To disable this error and scale the "
                           "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`")
    return Tensor(xp.asarray(total, dtype=dt))


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach=None) -> Tensor:
    """Scale all gradients in place so that their joint norm is at most ``max_norm``.

    The scale is ``min(1, max_norm / (total_norm + 1e-6))`` as in PyTorch; returns the total norm
    before clipping.
    """
    grads = _grads(parameters)
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    if not grads:
        return total
    _scale(grads, max_norm, total)
    return total


def clip_grads_with_norm_(parameters, max_norm: float, total_norm, foreach=None) -> None:
    """Scale the gradients in place by ``min(1, max_norm / (total_norm + 1e-6))``, the norm given (from
    ``get_total_norm``, perhaps over more tensors than these), as PyTorch's ``clip_grads_with_norm_``."""
    _scale(_grads(parameters), max_norm, total_norm)


def _scale(grads, max_norm, total_norm) -> None:
    total = float(total_norm.item() if isinstance(total_norm, Tensor) else total_norm)
    coef = float(max_norm) / (total + 1e-6)
    if coef > 1.0:  # (not min(1, coef): a NaN norm must reach the gradients, as PyTorch's clamp lets it)
        coef = 1.0
    for g in grads:
        g.data *= g.data.dtype.type(coef)
        g._vc[0] += 1


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamp every gradient element to ``[-clip_value, clip_value]`` in place."""
    clip_value = float(clip_value)
    for g in _grads(parameters):
        xp = get_array_module(g.data)
        xp.clip(g.data, -clip_value, clip_value, out=g.data)
        g._vc[0] += 1
