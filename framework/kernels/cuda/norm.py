"""Batch normalisation on CuPy arrays with the fused-statistics kernels of ``norm.cu``.

    batch_norm_forward(x, weight, bias, running_mean, running_var, training, momentum, eps,
                       activation=None) -> (y, save_mean, save_invstd)
    batch_norm_backward(gy, x, weight, save_mean, save_invstd, training)
        -> (gx, gweight, gbias)

``x`` is (N, C, *) (BatchNorm1d/2d/3d alike); ``weight``/``bias`` (C,) or None; running statistics
(C,) are updated in place in training mode as PyTorch does (``running_var`` with the unbiased
variance; ``momentum=None`` gives the cumulative average, which needs the caller's
``num_batches_tracked`` and is therefore not handled here: pass a float). Statistics, ``save_mean``
and ``save_invstd`` are float32 whatever the data type (float16 data keeps float32 statistics, as
autocast's policy requires). In eval mode ``save_*`` are the running statistics' mean and invstd.
"""

from __future__ import annotations

import math

import numpy as np

from ... import backend
from . import _loader as L

__all__ = ["batch_norm_forward", "batch_norm_backward"]

CU = "norm.cu"
_ACT = {None: 0, "none": 0, "relu": 1, "silu": 2}


def all_kernel_names() -> dict[str, list[str]]:
    """Every name expression this module can request (for warm-up and tests)."""
    return {CU: [f"{k}<{t}>" for t in ("float", "fw_half")
                 for k in ("fw_bn_partial", "fw_bn_finalize", "fw_bn_apply", "fw_bn_bwd_partial",
                           "fw_bn_bwd_apply")] + ["fw_bn_bwd_finalize"]}


def _splits(c: int, m: int) -> int:
    """Blocks per channel: enough for ~4 blocks per SM overall, each with >= 4096 elements."""
    want = max(1, (4 * L.sm_count()) // max(c, 1))
    return max(1, min(want, m // 4096 if m >= 4096 else 1, 128))


def _same(a, dtype, cp):
    return None if a is None else cp.ascontiguousarray(a.astype(dtype, copy=False))


def batch_norm_forward(x, weight, bias, running_mean, running_var, training, momentum, eps,
                       activation=None):
    cp = backend.cupy_module()
    if x.dtype not in (np.float16, np.float32):
        raise TypeError(f"batch_norm kernels take float16/float32, got {x.dtype}")
    x = cp.ascontiguousarray(x)
    n, c = x.shape[:2]
    hw = int(np.prod(x.shape[2:], dtype=np.int64)) if x.ndim > 2 else 1
    m = n * hw
    t = L.cxx_type(x.dtype)
    if training:
        if m <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                             f"{tuple(x.shape)}")
        splits = _splits(c, m)
        ws = cp.empty((c, splits, 2), dtype=cp.float32)
        L.launch(L.get_function(CU, f"fw_bn_partial<{t}>"), (c, splits), (256,),
                 (x, ws) + L.i32(n, c, hw, splits))
        mean = cp.empty(c, dtype=cp.float32)
        var = cp.empty(c, dtype=cp.float32)
        invstd = cp.empty(c, dtype=cp.float32)
        L.launch(L.get_function(CU, f"fw_bn_finalize<{t}>"), (math.ceil(c / 128),), (128,),
                 (x, ws, mean, var, invstd) + L.i32(n, c, hw, splits) + (np.float32(eps),))
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += (momentum * mean).astype(running_mean.dtype)
        if running_var is not None:
            running_var *= 1 - momentum
            running_var += (momentum * var * (m / (m - 1))).astype(running_var.dtype)
    else:
        mean = running_mean.astype(cp.float32)
        invstd = (1.0 / cp.sqrt(running_var.astype(cp.float32) + np.float32(eps))).astype(cp.float32)
    y = cp.empty_like(x)
    blocks, block = L.elementwise_grid(x.size)
    L.launch(L.get_function(CU, f"fw_bn_apply<{t}>"), (blocks,), (block,),
             (x, mean, invstd, L.ptr_or_null(_same(weight, x.dtype, cp)),
              L.ptr_or_null(_same(bias, x.dtype, cp)), y, np.int64(x.size)) + L.i32(c, hw, _ACT[activation]))
    return y, mean, invstd


def batch_norm_backward(gy, x, weight, save_mean, save_invstd, training):
    """(gx, gweight, gbias); gweight/gbias are None when ``weight`` is None (affine=False)."""
    cp = backend.cupy_module()
    x = cp.ascontiguousarray(x)
    gy = cp.ascontiguousarray(gy.astype(x.dtype, copy=False))
    n, c = x.shape[:2]
    hw = int(np.prod(x.shape[2:], dtype=np.int64)) if x.ndim > 2 else 1
    m = n * hw
    t = L.cxx_type(x.dtype)
    splits = _splits(c, m)
    ws = cp.empty((c, splits, 2), dtype=cp.float32)
    L.launch(L.get_function(CU, f"fw_bn_bwd_partial<{t}>"), (c, splits), (256,),
             (gy, x, save_mean, save_invstd, ws) + L.i32(n, c, hw, splits))
    sum_dy = cp.empty(c, dtype=cp.float32)
    sum_dy_xhat = cp.empty(c, dtype=cp.float32)
    L.launch(L.get_function(CU, "fw_bn_bwd_finalize"), (math.ceil(c / 128),), (128,),
             (ws, sum_dy, sum_dy_xhat) + L.i32(c, splits))
    gx = cp.empty_like(x)
    w = _same(weight, x.dtype, cp)
    blocks, block = L.elementwise_grid(x.size)
    L.launch(L.get_function(CU, f"fw_bn_bwd_apply<{t}>"), (blocks,), (block,),
             (gy, x, save_mean, save_invstd, L.ptr_or_null(w), sum_dy, sum_dy_xhat, gx,
              np.int64(x.size)) + L.i32(c, hw) + (np.float32(1.0 / m), np.int32(bool(training))))
    if weight is None:
        return gx, None, None
    return gx, sum_dy_xhat.astype(weight.dtype), sum_dy.astype(weight.dtype)
