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

Pooling: max pooling records the winning tap of each window (``argpos``, int16; first tap wins ties,
NaN wins, as PyTorch), scatters through it in the backward and gathers through it in the double
backward; average pooling sums the taps' views and divides by PyTorch's divisors.
"""

from __future__ import annotations

import itertools
import math

from ...backend import get_array_module

__all__ = ["conv3d_forward", "conv3d_backward_input", "conv3d_backward_weight", "max_pool3d_forward",
           "max_pool3d_backward", "max_pool3d_gather", "max_pool3d_indices", "avg_pool3d_forward",
           "avg_pool3d_backward", "pool_out_size"]

# Target size of one piece's patch matrix: large enough for efficient products, small enough to stay
# near the cache (CPU) and to bound the extra memory of a large volume.
PIECE_BYTES = 8 << 20
_GPU_PIECE_BYTES = 256 << 20


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


# ----------------------------------------------------------------------------- pooling


def pool_out_size(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """Output length as in PyTorch (a ceil-mode window must start inside the input or left padding)."""
    span = n + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


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
    y = _view(xpad, (0,) * len(kernel), stride, dilation, out).copy()
    argpos = xp.zeros(y.shape, dtype=xp.int16)
    has_nan = x.dtype.kind == "f" and bool(xp.isnan(x).any())  # NaN must win, as in PyTorch
    better = xp.empty(y.shape, dtype=bool)
    for t, tap in _taps(kernel):
        if t == 0:
            continue
        v = _view(xpad, tap, stride, dilation, out)
        xp.greater(v, y, out=better)
        if has_nan:
            better |= xp.isnan(v) & ~xp.isnan(y)
            xp.copyto(y, v, where=better)
        else:
            xp.maximum(y, v, out=y)
        xp.copyto(argpos, t, where=better)
    return y, argpos


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
