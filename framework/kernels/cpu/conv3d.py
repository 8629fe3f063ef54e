"""3-D (volume) convolution and pooling kernels on arrays: vol2col lowering onto BLAS matrix products.

Written against an array module ``xp`` (NumPy here; the same code runs on CuPy through
``get_array_module``). The code is written for any number of spatial axes; the framework uses it for
volumes.

Shapes: ``x`` (N, C, D, H, W); ``w`` (K, C/groups, kd, kh, kw); ``y`` (N, K, Do, Ho, Wo) with
``Do = (D + 2*pd - dd*(kd - 1) - 1) // sd + 1``. ``stride``, ``padding`` and ``dilation`` are tuples
(padding symmetric; callers pad asymmetric cases first). No loop runs over voxels: the loops below run
over the kernel taps and over pieces of the batch.

Convolution: the padded input is cut into pieces (a few images, or a band of output depth slices of one
image when a single image's patch matrix would be large) so that each piece's patch matrix stays near
``PIECE_BYTES``. Each tap copies one strided view of the piece into the patch matrix (vol2col), and one
batched matrix product per piece and group does the arithmetic. The input gradient is the transposed
product followed by col2vol (each tap's view accumulated into the padded gradient); the weight gradient
is the product of the output gradient with the patch matrix, summed over pieces. A 1x1x1 stride-1
convolution is a plain product with no copy.

On NumPy the other layers go through the 2-D kernels of ``conv.py`` instead (``_slices_*``):
``out[:, :, d] = sum_i conv2d(x[:, :, d*sd + i*dd - pd], w[:, :, i])``, the kd input slices that each
output slice reads stacked as the channels of one 2-D image (zero slices for the depth padding), all
output slices of a piece forming the 2-D batch; the input gradient is the 2-D one added back per tap,
the weight gradient the 2-D one with its taps put back. The 2-D kernels' flat im2col and Winograd make
this 1.5-2x faster than vol2col for stride-1 layers and as fast for the others (one core, float32).
CuPy keeps vol2col; FRAMEWORK_CONV3D_SLICES=0 restores it on NumPy too.

Pooling: max pooling records the winning tap of each window (``argpos``, int16; first tap wins ties,
NaN wins, as PyTorch), scatters through it in the backward and gathers through it in the double
backward; average pooling sums the taps' views and divides by PyTorch's divisors.
"""

from __future__ import annotations

import itertools
import math
import os

import numpy as np

from ...backend import get_array_module
from . import conv as _conv2d
from .pool import max_over_taps, pool_out_size

__all__ = ["conv3d_forward", "conv3d_backward_input", "conv3d_backward_weight", "max_pool3d_forward",
           "max_pool3d_backward", "max_pool3d_gather", "max_pool3d_indices", "avg_pool3d_forward",
           "avg_pool3d_backward", "pool_out_size"]

# Target size of one piece's patch matrix: large enough for efficient products, small enough to stay
# near the cache (CPU) and to bound the extra memory of a large volume.
PIECE_BYTES = 8 << 20
_GPU_PIECE_BYTES = 256 << 20
# FRAMEWORK_CONV3D_SLICES=0: vol2col for every layer instead of the 2-D kernels (see _use_slices).
SLICES = os.environ.get("FRAMEWORK_CONV3D_SLICES", "1") != "0"


def conv_out_size(n: int, k: int, s: int, p: int, d: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _pad(xp, x, padding, value=0, need=None):
    """x padded by ``padding`` before each spatial axis and by at least ``padding`` (up to ``need``) after."""
    sp = x.shape[2:]
    need = need or sp
    full = tuple(max(s + 2 * p, q) for s, p, q in zip(sp, padding, need))
    if full == tuple(sp):
        return x
    out = xp.full(x.shape[:2] + full, value, dtype=x.dtype)
    out[(slice(None), slice(None)) + tuple(slice(p, p + s) for p, s in zip(padding, sp))] = x
    return out


def _view(a, tap, stride, dilation, out, first=0, count=None):
    """The strided view of ``a`` (N, C, *spatial) that tap ``tap`` of the kernel reads for outputs
    ``first:first + count`` along the first spatial axis (all outputs along the others)."""
    count = out[0] - first if count is None else count
    sizes = (count,) + tuple(out[1:])
    starts = (first * stride[0],) + (0,) * (len(out) - 1)
    key = tuple(slice(b + t * d, b + t * d + s * (o - 1) + 1, s)
                for b, t, d, s, o in zip(starts, tap, dilation, stride, sizes))
    return a[(slice(None), slice(None)) + key]


def _pieces(xp, n, c_rows, out, itemsize):
    """(n0, n1, d0, d1) pieces of the batch and of the first output axis whose patch matrix of
    ``c_rows`` rows stays near the piece budget."""
    budget = _GPU_PIECE_BYTES if xp.__name__.startswith("cupy") else PIECE_BYTES
    slice_bytes = c_rows * math.prod(out[1:]) * itemsize
    image_bytes = slice_bytes * out[0]
    if image_bytes <= budget:
        nb = max(1, budget // max(image_bytes, 1))
        for n0 in range(0, n, nb):
            yield n0, min(n, n0 + nb), 0, out[0]
        return
    band = max(1, budget // max(slice_bytes, 1))
    for n0 in range(n):
        for d0 in range(0, out[0], band):
            yield n0, n0 + 1, d0, min(out[0], d0 + band)


def _pointwise(kernel, stride, padding):
    return all(k == 1 for k in kernel) and all(s == 1 for s in stride) and not any(padding)


def _cols(xp, xpad, n0, n1, d0, d1, kernel, stride, dilation, out, groups):
    """Patch matrix of a piece: (nb, groups, C/groups * prod(kernel), L)."""
    nb, c = n1 - n0, xpad.shape[1]
    sizes = (d1 - d0,) + tuple(out[1:])
    col = xp.empty((nb, c) + tuple(kernel) + sizes, dtype=xpad.dtype)
    src = xpad[n0:n1]
    for tap in itertools.product(*(range(k) for k in kernel)):
        col[(slice(None), slice(None)) + tap] = _view(src, tap, stride, dilation, out, d0, d1 - d0)
    return col.reshape(nb, groups, (c // groups) * math.prod(kernel), math.prod(sizes))


def conv3d_forward(x, w, stride, padding, dilation, groups, bias=None):
    """y = conv(x, w) (+ bias): x (N, C, *sp), w (K, C/groups, *k) -> (N, K, *out)."""
    if _use_slices(x, w.shape, stride, padding):
        return _slices_forward(x, w, stride, padding, dilation, groups, bias)
    return _vol2col_forward(x, w, stride, padding, dilation, groups, bias)


def _vol2col_forward(x, w, stride, padding, dilation, groups, bias=None):
    xp = get_array_module(x)
    n, c = x.shape[:2]
    k_out, kernel = w.shape[0], tuple(w.shape[2:])
    out = tuple(conv_out_size(s, k, st, p, d)
                for s, k, st, p, d in zip(x.shape[2:], kernel, stride, padding, dilation))
    w2 = w.reshape(groups, k_out // groups, -1)
    if _pointwise(kernel, stride, padding):
        y = xp.matmul(w2, x.reshape(n, groups, c // groups, -1))
    else:
        xpad = _pad(xp, x, padding)
        y = xp.empty((n, groups, k_out // groups, out[0], math.prod(out[1:])), dtype=x.dtype)
        for n0, n1, d0, d1 in _pieces(xp, n, c * math.prod(kernel), out, x.itemsize):
            col = _cols(xp, xpad, n0, n1, d0, d1, kernel, stride, dilation, out, groups)
            y[n0:n1, :, :, d0:d1] = xp.matmul(w2, col).reshape(n1 - n0, groups, -1, d1 - d0,
                                                                 math.prod(out[1:]))
    y = y.reshape((n, k_out) + out)
    if bias is not None:
        y += bias.reshape((1, k_out) + (1,) * len(out))
    return y


def conv3d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """gx = conv^T(gy, w): gy (N, K, *out), w (K, C/groups, *k) -> gx of shape ``x_shape``."""
    if _use_slices(gy, w.shape, stride, padding):
        return _slices_backward_input(gy, w, x_shape, stride, padding, dilation, groups)
    return _vol2col_backward_input(gy, w, x_shape, stride, padding, dilation, groups)


def _vol2col_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    xp = get_array_module(gy)
    n, k_out = gy.shape[:2]
    out, kernel = tuple(gy.shape[2:]), tuple(w.shape[2:])
    c = x_shape[1]
    w2t = w.reshape(groups, k_out // groups, -1).swapaxes(1, 2)  # (G, C/G * kvol, K/G)
    gy4 = gy.reshape(n, groups, k_out // groups, out[0], -1)
    if _pointwise(kernel, stride, padding) and tuple(out) == tuple(x_shape[2:]):
        return xp.matmul(w2t, gy4.reshape(n, groups, k_out // groups, -1)).reshape(x_shape)
    full = tuple(s + 2 * p for s, p in zip(x_shape[2:], padding))
    gxpad = xp.zeros(tuple(x_shape[:2]) + full, dtype=gy.dtype)
    for n0, n1, d0, d1 in _pieces(xp, n, c * math.prod(kernel), out, gy.itemsize):
        piece = gy4[n0:n1, :, :, d0:d1].reshape(n1 - n0, groups, k_out // groups, -1)
        gcol = xp.matmul(w2t, piece).reshape((n1 - n0, c) + kernel + (d1 - d0,) + out[1:])
        dst = gxpad[n0:n1]
        for tap in itertools.product(*(range(k) for k in kernel)):
            _view(dst, tap, stride, dilation, out, d0, d1 - d0)[...] += gcol[(slice(None), slice(None)) + tap]
    crop = tuple(slice(p, p + s) for p, s in zip(padding, x_shape[2:]))
    return xp.ascontiguousarray(gxpad[(slice(None), slice(None)) + crop])


def conv3d_backward_weight(x, gy, w_shape, stride, padding, dilation, groups):
    """gw = gy ⋆ x: x (N, C, *sp), gy (N, K, *out) -> gw of shape ``w_shape``."""
    if _use_slices(x, w_shape, stride, padding):
        return _slices_backward_weight(x, gy, w_shape, stride, padding, dilation, groups)
    return _vol2col_backward_weight(x, gy, w_shape, stride, padding, dilation, groups)


def _vol2col_backward_weight(x, gy, w_shape, stride, padding, dilation, groups):
    xp = get_array_module(x)
    n, c = x.shape[:2]
    k_out, kernel = w_shape[0], tuple(w_shape[2:])
    out = tuple(gy.shape[2:])
    gy4 = gy.reshape(n, groups, k_out // groups, out[0], -1)
    if _pointwise(kernel, stride, padding):
        cols = x.reshape(n, groups, c // groups, -1)
        gw = xp.matmul(gy4.reshape(n, groups, k_out // groups, -1), cols.swapaxes(-1, -2)).sum(0)
        return gw.reshape(w_shape)
    xpad = _pad(xp, x, padding)
    gw = xp.zeros((groups, k_out // groups, (c // groups) * math.prod(kernel)), dtype=x.dtype)
    for n0, n1, d0, d1 in _pieces(xp, n, c * math.prod(kernel), out, x.itemsize):
        col = _cols(xp, xpad, n0, n1, d0, d1, kernel, stride, dilation, out, groups)
        piece = gy4[n0:n1, :, :, d0:d1].reshape(n1 - n0, groups, k_out // groups, -1)
        gw += xp.matmul(piece, col.swapaxes(-1, -2)).sum(0)
    return gw.reshape(w_shape)


# ----------------------------------------------------------------------------- through 2-D convolutions

# Budget of one piece's depth-tap stack (kd input slices per output slice): large enough that the 2-D
# kernels see a batch worth their set-up, small enough to bound the extra memory of a large volume.
SLICES_PIECE_BYTES = 32 << 20


def _use_slices(a, w_shape, stride, padding):
    """Whether the layer goes through the 2-D kernels (NumPy only: CuPy keeps the generic vol2col).
    A 1x1x1 stride-1 layer is a plain product either way."""
    return (SLICES and isinstance(a, np.ndarray) and len(w_shape) == 5
            and not _pointwise(w_shape[2:], stride, padding))


def _depth_range(i, sd, pd, dd, depth, d0, d1):
    """Output slices ``lo:hi`` (within ``d0:d1``; empty when ``hi <= lo``) whose depth tap ``i`` reads
    inside the input, and the input slice the first of them reads."""
    off = i * dd - pd
    lo = max(d0, -(off // sd))
    hi = min(d1, (depth - 1 - off) // sd + 1)
    return lo, max(lo, hi), lo * sd + off


def _stack(x, n0, n1, d0, d1, kd, sd, pd, dd, groups):
    """The input slices that output slices ``d0:d1`` of images ``n0:n1`` read, one per depth tap, as a
    batch of 2-D images: (nb * nd, G * kd * C/G, H, W), channels ordered (group, tap, channel); zero
    slices stand for the depth padding."""
    nb, nd = n1 - n0, d1 - d0
    _, c, depth, h, w = x.shape
    cg = c // groups
    out = np.empty((nb, nd, groups, kd, cg, h, w), dtype=x.dtype)
    xv = x[n0:n1].reshape(nb, groups, cg, depth, h, w)
    for i in range(kd):
        lo, hi, s0 = _depth_range(i, sd, pd, dd, depth, d0, d1)
        out[:, :lo - d0, :, i] = 0
        out[:, hi - d0:, :, i] = 0
        if hi > lo:
            src = xv[:, :, :, s0:s0 + sd * (hi - lo - 1) + 1:sd]
            out[:, lo - d0:hi - d0, :, i] = src.transpose(0, 3, 1, 2, 4, 5)
    return out.reshape(nb * nd, groups * kd * cg, h, w)


def _unstack_add(gx, gs, n0, n1, d0, d1, kd, sd, pd, dd, groups):
    """The adjoint of :func:`_stack`: each tap's slices of ``gs`` added into ``gx`` (N, C, D, H, W)."""
    nb, nd = n1 - n0, d1 - d0
    _, c, depth, h, w = gx.shape
    cg = c // groups
    gs = gs.reshape(nb, nd, groups, kd, cg, h, w)
    gxv = gx[n0:n1].reshape(nb, groups, cg, depth, h, w)
    for i in range(kd):
        lo, hi, s0 = _depth_range(i, sd, pd, dd, depth, d0, d1)
        if hi > lo:
            gxv[:, :, :, s0:s0 + sd * (hi - lo - 1) + 1:sd] += gs[:, lo - d0:hi - d0, :, i].transpose(
                0, 2, 3, 1, 4, 5)


def _slice_pieces(n, kd, c, depth_out, hw, itemsize):
    """(n0, n1, d0, d1) pieces whose tap stack stays near ``SLICES_PIECE_BYTES``."""
    slice_bytes = kd * c * hw * itemsize
    image_bytes = slice_bytes * depth_out
    if image_bytes <= SLICES_PIECE_BYTES:
        nb = max(1, SLICES_PIECE_BYTES // max(image_bytes, 1))
        for n0 in range(0, n, nb):
            yield n0, min(n, n0 + nb), 0, depth_out
        return
    band = max(1, SLICES_PIECE_BYTES // max(slice_bytes, 1))
    for n0 in range(n):
        for d0 in range(0, depth_out, band):
            yield n0, n0 + 1, d0, min(depth_out, d0 + band)


def _stacked_weight(w, groups):
    """w (K, C/G, kd, kh, kw) as the 2-D weight of the tap stack: (K, kd * C/G, kh, kw)."""
    k, cg, kd, kh, kw = w.shape
    return np.ascontiguousarray(w.transpose(0, 2, 1, 3, 4)).reshape(k, kd * cg, kh, kw)


def _gy_slices(gy, n0, n1, d0, d1):
    """gy[n0:n1, :, d0:d1] as a batch of 2-D images (nb * nd, K, Ho, Wo)."""
    part = gy[n0:n1, :, d0:d1].transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(part).reshape((-1,) + part.shape[2:])


def _slices_forward(x, w, stride, padding, dilation, groups, bias=None):
    """out[:, :, d] = sum_i conv2d(x[:, :, d*sd + i*dd - pd], w[:, :, i]), all depth taps stacked as input
    channels so that one 2-D convolution (im2col, Winograd, ...) does each piece."""
    n, c = x.shape[:2]
    k_out, kd = w.shape[0], w.shape[2]
    (sd, *s2), (pd, *p2), (dd, *d2) = stride, padding, dilation
    out = tuple(conv_out_size(s, k, st, p, d)
                for s, k, st, p, d in zip(x.shape[2:], w.shape[2:], stride, padding, dilation))
    w2 = _stacked_weight(w, groups)
    y = np.empty((n, k_out) + out, dtype=x.dtype)
    for n0, n1, d0, d1 in _slice_pieces(n, kd, c, out[0], x.shape[3] * x.shape[4], x.itemsize):
        xs = _stack(x, n0, n1, d0, d1, kd, sd, pd, dd, groups)
        ys = _conv2d.conv2d_forward(xs, w2, tuple(s2), tuple(p2), tuple(d2), groups, bias=bias)
        y[n0:n1, :, d0:d1] = ys.reshape((n1 - n0, d1 - d0, k_out) + out[1:]).transpose(0, 2, 1, 3, 4)
    return y


def _slices_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """The adjoint of :func:`_slices_forward`: 2-D input gradients of the tap stack, added back per tap."""
    n, c = x_shape[:2]
    kd = w.shape[2]
    (sd, *s2), (pd, *p2), (dd, *d2) = stride, padding, dilation
    w2 = _stacked_weight(w, groups)
    gx = np.zeros(tuple(x_shape), dtype=gy.dtype)
    for n0, n1, d0, d1 in _slice_pieces(n, kd, c, gy.shape[2], x_shape[3] * x_shape[4], gy.itemsize):
        gys = _gy_slices(gy, n0, n1, d0, d1)
        gs = _conv2d.conv2d_backward_input(gys, w2, (gys.shape[0], w2.shape[1] * groups) + tuple(x_shape[3:]),
                                           tuple(s2), tuple(p2), tuple(d2), groups)
        _unstack_add(gx, gs, n0, n1, d0, d1, kd, sd, pd, dd, groups)
    return gx


def _slices_backward_weight(x, gy, w_shape, stride, padding, dilation, groups):
    """Weight gradient of :func:`_slices_forward`: the 2-D one of the tap stack, taps put back in place."""
    n, c = x.shape[:2]
    k_out, cg, kd, kh, kw = w_shape
    (sd, *s2), (pd, *p2), (dd, *d2) = stride, padding, dilation
    gw = None
    for n0, n1, d0, d1 in _slice_pieces(n, kd, c, gy.shape[2], x.shape[3] * x.shape[4], x.itemsize):
        xs = _stack(x, n0, n1, d0, d1, kd, sd, pd, dd, groups)
        part = _conv2d.conv2d_backward_weight(xs, _gy_slices(gy, n0, n1, d0, d1), (k_out, kd * cg, kh, kw),
                                              tuple(s2), tuple(p2), tuple(d2), groups)
        gw = part if gw is None else gw + part
    return np.ascontiguousarray(gw.reshape(k_out, kd, cg, kh, kw).transpose(0, 2, 1, 3, 4))


# ----------------------------------------------------------------------------- pooling


def _pool_geometry(x_shape, kernel, stride, padding, dilation, ceil_mode):
    out = tuple(pool_out_size(n, k, s, p, d, ceil_mode)
                for n, k, s, p, d in zip(x_shape[2:], kernel, stride, padding, dilation))
    need = tuple((o - 1) * s + d * (k - 1) + 1 for o, s, d, k in zip(out, stride, dilation, kernel))
    return out, need


def _taps(kernel):
    return enumerate(itertools.product(*(range(k) for k in kernel)))


def max_pool3d_forward(x, kernel, stride, padding, dilation, ceil_mode):
    """Returns (y, argpos): the window maxima and the winning tap (row-major index) of each."""
    xp = get_array_module(x)
    out, need = _pool_geometry(x.shape, kernel, stride, padding, dilation, ceil_mode)
    xpad = _pad(xp, x, padding, -xp.inf, need)
    taps = (_view(xpad, tap, stride, dilation, out) for _, tap in _taps(kernel))
    return max_over_taps(xp, taps, x.dtype.kind == "f" and bool(xp.isnan(x).any()))


def max_pool3d_backward(gy, argpos, x_shape, kernel, stride, padding, dilation, ceil_mode):
    """Scatter ``gy`` to the winning input positions (adding where windows overlap)."""
    xp = get_array_module(gy)
    out, need = _pool_geometry(x_shape, kernel, stride, padding, dilation, ceil_mode)
    full = tuple(max(s + 2 * p, q) for s, p, q in zip(x_shape[2:], padding, need))
    gxp = xp.zeros(tuple(x_shape[:2]) + full, dtype=gy.dtype)
    hit = xp.empty(argpos.shape, dtype=bool)
    for t, tap in _taps(kernel):
        xp.equal(argpos, t, out=hit)
        _view(gxp, tap, stride, dilation, out)[...] += gy * hit
    crop = tuple(slice(p, p + s) for p, s in zip(padding, x_shape[2:]))
    return xp.ascontiguousarray(gxp[(slice(None), slice(None)) + crop])


def max_pool3d_gather(gx, argpos, kernel, stride, padding, dilation, ceil_mode):
    """Read ``gx`` (input-shaped) at each window's winning position: the adjoint of the backward."""
    xp = get_array_module(gx)
    out, need = _pool_geometry(gx.shape, kernel, stride, padding, dilation, ceil_mode)
    gxp = _pad(xp, gx, padding, 0, need)
    res = xp.zeros(argpos.shape, dtype=gx.dtype)
    for t, tap in _taps(kernel):
        xp.copyto(res, _view(gxp, tap, stride, dilation, out), where=argpos == t)
    return res


def max_pool3d_indices(argpos, x_shape, kernel, stride, padding, dilation):
    """PyTorch's ``return_indices``: the flat index (d*H + h)*W + w of each maximum in its input volume."""
    xp = get_array_module(argpos)
    nd = len(kernel)
    flat = xp.zeros(argpos.shape, dtype=xp.int64)
    rest = argpos.astype(xp.int64)
    for axis in range(nd):
        inner = math.prod(kernel[axis + 1:])
        tap, rest = rest // inner, rest % inner
        o = argpos.shape[2 + axis]
        pos = xp.arange(o).reshape((o,) + (1,) * (nd - axis - 1)) * stride[axis] - padding[axis]
        flat = flat * x_shape[2 + axis] + pos + tap * dilation[axis]
    return flat


def _avg_divisor(xp, x_shape, kernel, stride, padding, ceil_mode, count_include_pad, dtype):
    """Divisors shaped like the output's spatial axes: pad cells count (if asked), ceil-mode overhang not."""
    out, _ = _pool_geometry(x_shape, kernel, stride, padding, (1,) * len(kernel), ceil_mode)
    div = xp.ones((1,) * len(out), dtype=dtype)
    for axis, (o, n, k, s, p) in enumerate(zip(out, x_shape[2:], kernel, stride, padding)):
        start = xp.arange(o) * s - p
        end = xp.minimum(start + k, n + p)
        cnt = end - start if count_include_pad else xp.minimum(end, n) - xp.maximum(start, 0)
        div = div * cnt.reshape((1,) * axis + (o,) + (1,) * (len(out) - axis - 1)).astype(dtype)
    return div


def avg_pool3d_forward(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    xp = get_array_module(x)
    one = (1,) * len(kernel)
    out, need = _pool_geometry(x.shape, kernel, stride, padding, one, ceil_mode)
    xpad = _pad(xp, x, padding, 0, need)
    y = xp.zeros(x.shape[:2] + out, dtype=x.dtype)
    for _, tap in _taps(kernel):
        y += _view(xpad, tap, stride, one, out)
    if divisor_override:
        y /= x.dtype.type(divisor_override)
    else:
        y /= _avg_divisor(xp, x.shape, kernel, stride, padding, ceil_mode, count_include_pad, x.dtype)
    return y


def avg_pool3d_backward(gy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    xp = get_array_module(gy)
    one = (1,) * len(kernel)
    out, need = _pool_geometry(x_shape, kernel, stride, padding, one, ceil_mode)
    if divisor_override:
        g = gy / gy.dtype.type(divisor_override)
    else:
        g = gy / _avg_divisor(xp, x_shape, kernel, stride, padding, ceil_mode, count_include_pad, gy.dtype)
    full = tuple(max(s + 2 * p, q) for s, p, q in zip(x_shape[2:], padding, need))
    gxp = xp.zeros(tuple(x_shape[:2]) + full, dtype=gy.dtype)
    for _, tap in _taps(kernel):
        _view(gxp, tap, stride, one, out)[...] += g
    crop = tuple(slice(p, p + s) for p, s in zip(padding, x_shape[2:]))
    return xp.ascontiguousarray(gxp[(slice(None), slice(None)) + crop])
