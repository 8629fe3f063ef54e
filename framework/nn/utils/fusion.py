"""Folding an inference-mode batch norm into the convolution or linear layer before it, as
``torch.nn.utils.fusion``: ``bn(conv(x)) == fused_conv(x)`` once the statistics are frozen.

With ``s = bn.weight / sqrt(running_var + eps)``: ``W' = W * s`` (per output channel) and
``b' = (b - running_mean) * s + bn.bias``. The fused layer saves one pass over the activations per
layer at inference; it is only valid in eval mode (training normalises with batch statistics).
"""

from __future__ import annotations

import copy

import numpy as np

from ...autograd import no_grad
from ...backend import CPU, device_of, get_array_module, to_device
from ...tensor import Tensor
from ..parameter import Parameter

__all__ = ["fuse_conv_bn_eval", "fuse_conv_bn_weights", "fuse_linear_bn_eval", "fuse_linear_bn_weights"]


def _arr(t):
    """A host NumPy copy of a Tensor or array on any device (the folding runs in float64 on the CPU)."""
    if t is None:
        return None
    a = t.data if isinstance(t, Tensor) else t
    return np.asarray(to_device(a, CPU)) if get_array_module(a) is not np else np.asarray(a)


def _folded(w, b, rm, rv, eps, bn_w, bn_b, axis):
    """Arrays (W', b') in float64 arithmetic, cast back to W's dtype."""
    w64 = np.asarray(w, np.float64)
    scale = 1.0 / np.sqrt(np.asarray(rv, np.float64) + eps)
    if bn_w is not None:
        scale = scale * np.asarray(bn_w, np.float64)
    shift = -np.asarray(rm, np.float64) * scale
    if b is not None:
        shift = shift + np.asarray(b, np.float64) * scale
    if bn_b is not None:
        shift = shift + np.asarray(bn_b, np.float64)
    shape = [1] * w64.ndim
    shape[axis] = -1
    return (w64 * scale.reshape(shape)).astype(w.dtype), shift.astype(w.dtype)


def _check_bn(bn, n_out, what):
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"{what}: the batch norm has no running statistics (track_running_stats=False); "
                         "there is nothing fixed to fold")
    if bn.running_mean.numel() != n_out:
        raise ValueError(f"{what}: the batch norm has {bn.running_mean.numel()} channels, the layer before "
                         f"it produces {n_out}")


def fuse_conv_bn_weights(conv_w, conv_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b, transpose: bool = False):
    """(weight, bias) Parameters of a convolution equal to ``conv`` followed by the frozen batch norm.
    ``transpose``: the weight is laid out (C_in, C_out/groups, kH, kW) as in ConvTranspose2d."""
    w = _arr(conv_w)
    fw_, fb = _folded(w, _arr(conv_b), _arr(bn_rm), _arr(bn_rv), float(bn_eps), _arr(bn_w), _arr(bn_b),
                      1 if transpose else 0)
    dev = device_of(conv_w.data if isinstance(conv_w, Tensor) else conv_w)  # back where the layer lives
    return (Parameter(Tensor(to_device(fw_, dev)), requires_grad=getattr(conv_w, "requires_grad", True)),
            Parameter(Tensor(to_device(fb, dev))))


def fuse_conv_bn_eval(conv, bn, transpose: bool = False):
    """A copy of ``conv`` (Conv2d / ConvTranspose2d, eval mode) with ``bn`` folded into its weight and
    bias. Both modules must be in eval mode; the originals are left unchanged."""
    if conv.training or bn.training:
        raise ValueError("fuse_conv_bn_eval: fusion is only for evaluation (call .eval() first)")
    if transpose and conv.groups != 1:
        raise ValueError("fuse_conv_bn_eval: transposed convolutions with groups > 1 are not supported")
    n_out = conv.weight.shape[1] * conv.groups if transpose else conv.weight.shape[0]
    _check_bn(bn, n_out, "fuse_conv_bn_eval")
    fused = copy.deepcopy(conv)
    with no_grad():
        fused.weight, fused.bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean,
                                                        bn.running_var, bn.eps, bn.weight, bn.bias, transpose)
    return fused


def fuse_linear_bn_weights(linear_w, linear_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b):
    """(weight, bias) Parameters of a Linear equal to ``linear`` followed by a frozen BatchNorm1d."""
    return fuse_conv_bn_weights(linear_w, linear_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b)


def fuse_linear_bn_eval(linear, bn):
    """A copy of ``linear`` (eval mode) with the BatchNorm1d after it folded in."""
    if linear.training or bn.training:
        raise ValueError("fuse_linear_bn_eval: fusion is only for evaluation (call .eval() first)")
    _check_bn(bn, linear.weight.shape[0], "fuse_linear_bn_eval")
    fused = copy.deepcopy(linear)
    with no_grad():
        fused.weight, fused.bias = fuse_linear_bn_weights(linear.weight, linear.bias, bn.running_mean,
                                                          bn.running_var, bn.eps, bn.weight, bn.bias)
    return fused
