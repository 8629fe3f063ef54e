"""2-D max/avg pooling on CuPy arrays with the kernels of ``pool.cu``.

Same array-level API and conventions as ``framework.kernels.cpu.pool`` (pairs of ints; max pooling
returns ``(y, argpos)`` with ``argpos`` the winning tap ``i*kw + j`` as int16), so forward and
backward may even come from different back ends. Functions this module does not define
(``max_pool2d_gather``, ``max_pool2d_indices``) fall back to the generic CuPy code through the
dispatcher in ``framework.kernels``. float64 inputs also take the generic code.
"""

from __future__ import annotations

import numpy as np

from ... import backend
from ..cpu import pool as _generic
from . import _loader as L

__all__ = ["max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward"]

CU = "pool.cu"


def all_kernel_names() -> dict[str, list[str]]:
    """Every name expression this module can request (for warm-up and tests)."""
    return {CU: [f"{k}<{t}>" for t in ("float", "fw_half")
                 for k in ("fw_maxpool2d_forward", "fw_maxpool2d_backward", "fw_avgpool2d_forward",
                           "fw_avgpool2d_backward")]}


def _out_hw(x_shape, kernel_size, stride, padding, dilation, ceil_mode):
    h, w = x_shape[2:]
    return (_generic.pool_out_size(h, kernel_size[0], stride[0], padding[0], dilation[0], ceil_mode),
            _generic.pool_out_size(w, kernel_size[1], stride[1], padding[1], dilation[1], ceil_mode))


def _generic_dtype(a) -> bool:
    return a.dtype not in (np.float16, np.float32)


def max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode):
    """(y (N, C, Ho, Wo), argpos int16 (N, C, Ho, Wo))."""
    if _generic_dtype(x):
        return _generic.max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode)
    cp = backend.cupy_module()
    n, c, h, w = x.shape
    ho, wo = _out_hw(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    y = cp.empty((n, c, ho, wo), dtype=x.dtype)
    argpos = cp.empty((n, c, ho, wo), dtype=cp.int16)
    fn = L.get_function(CU, f"fw_maxpool2d_forward<{L.cxx_type(x.dtype)}>")
    blocks, block = L.elementwise_grid(y.size)
    L.launch(fn, (blocks,), (block,), (cp.ascontiguousarray(x), y, argpos) + L.i32(
        n * c, h, w, ho, wo, *kernel_size, *stride, *padding, *dilation))
    return y, argpos


def max_pool2d_backward(gy, argpos, x_shape, kernel_size, stride, padding, dilation, ceil_mode):
    """gx (N, C, H, W): each input gathers the gradients of the windows it won (no atomics)."""
    if _generic_dtype(gy):
        return _generic.max_pool2d_backward(gy, argpos, x_shape, kernel_size, stride, padding, dilation,
                                            ceil_mode)
    cp = backend.cupy_module()
    n, c, h, w = x_shape
    ho, wo = gy.shape[2:]
    gx = cp.empty((n, c, h, w), dtype=gy.dtype)
    fn = L.get_function(CU, f"fw_maxpool2d_backward<{L.cxx_type(gy.dtype)}>")
    blocks, block = L.elementwise_grid(gx.size)
    L.launch(fn, (blocks,), (block,), (cp.ascontiguousarray(gy), cp.ascontiguousarray(argpos, cp.int16),
                                      gx) + L.i32(n * c, h, w, ho, wo, *kernel_size, *stride, *padding,
                                                  *dilation))
    return gx


def avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    if _generic_dtype(x):
        return _generic.avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                           divisor_override)
    cp = backend.cupy_module()
    n, c, h, w = x.shape
    ho, wo = _out_hw(x.shape, kernel_size, stride, padding, (1, 1), ceil_mode)
    y = cp.empty((n, c, ho, wo), dtype=x.dtype)
    fn = L.get_function(CU, f"fw_avgpool2d_forward<{L.cxx_type(x.dtype)}>")
    blocks, block = L.elementwise_grid(y.size)
    L.launch(fn, (blocks,), (block,), (cp.ascontiguousarray(x), y) + L.i32(
        n * c, h, w, ho, wo, *kernel_size, *stride, *padding, int(bool(count_include_pad)),
        int(divisor_override or 0)))
    return y


def avg_pool2d_backward(gy, x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                        divisor_override):
    if _generic_dtype(gy):
        return _generic.avg_pool2d_backward(gy, x_shape, kernel_size, stride, padding, ceil_mode,
                                            count_include_pad, divisor_override)
    cp = backend.cupy_module()
    n, c, h, w = x_shape
    ho, wo = gy.shape[2:]
    gx = cp.empty((n, c, h, w), dtype=gy.dtype)
    fn = L.get_function(CU, f"fw_avgpool2d_backward<{L.cxx_type(gy.dtype)}>")
    blocks, block = L.elementwise_grid(gx.size)
    L.launch(fn, (blocks,), (block,), (cp.ascontiguousarray(gy), gx) + L.i32(
        n * c, h, w, ho, wo, *kernel_size, *stride, *padding, int(bool(count_include_pad)),
        int(divisor_override or 0)))
    return gx
