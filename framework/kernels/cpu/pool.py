"""2-D pooling kernels on arrays (NumPy, or CuPy through ``xp``).

Shapes: ``x`` (N, C, H, W) -> ``y`` (N, C, Ho, Wo). ``kernel_size``, ``stride``, ``padding`` and
``dilation`` are pairs of ints. Loops run over the kh*kw kernel taps, never over pixels.

Max pooling records, for every output, which tap won (``argpos``, an int16 array shaped like ``y``);
the backward scatters through it and the double backward gathers through it. Ties go to the first
tap in row-major order, as in PyTorch. NaN propagates (a NaN tap wins).
"""

from __future__ import annotations

from ...backend import get_array_module

__all__ = ["pool_out_size", "max_pool2d_forward", "max_pool2d_backward", "max_pool2d_gather",
           "max_pool2d_indices", "avg_pool2d_forward", "avg_pool2d_backward"]


def pool_out_size(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """Output length as in PyTorch (a ceil-mode window must start inside the input or left padding)."""
    span = n + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _padded(xp, x, padding, need, value):
    """x padded by ``padding`` on the left/top and enough on the right/bottom to cover ``need``."""
    n, c, h, w = x.shape
    ph, pw = padding
    hp, wp = max(h + 2 * ph, need[0]), max(w + 2 * pw, need[1])
    if (hp, wp) == (h, w):
        return x
    out = xp.full((n, c, hp, wp), value, dtype=x.dtype)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def _tap(a, i, j, stride, dilation, out_hw):
    sh, sw = stride
    dh, dw = dilation
    ho, wo = out_hw
    return a[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]


def _geometry(x_shape, kernel_size, stride, padding, dilation, ceil_mode):
    h, w = x_shape[2:]
    kh, kw = kernel_size
    ho = pool_out_size(h, kh, stride[0], padding[0], dilation[0], ceil_mode)
    wo = pool_out_size(w, kw, stride[1], padding[1], dilation[1], ceil_mode)
    need = ((ho - 1) * stride[0] + dilation[0] * (kh - 1) + 1,
            (wo - 1) * stride[1] + dilation[1] * (kw - 1) + 1)
    return ho, wo, need


def max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode):
    """Returns (y, argpos): the window maxima and the winning tap index i*kw + j of each."""
    xp = get_array_module(x)
    ho, wo, need = _geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    kh, kw = kernel_size
    xpad = _padded(xp, x, padding, need, -xp.inf)
    taps = (_tap(xpad, t // kw, t % kw, stride, dilation, (ho, wo)) for t in range(kh * kw))
    return max_over_taps(xp, taps, x.dtype.kind == "f" and bool(xp.isnan(x).any()))


def max_over_taps(xp, taps, has_nan: bool):
    """(the element-wise maximum of the ``taps`` views, the index of the tap that gave it), with ties to the
    first tap and NaN winning, as PyTorch's max pooling; ``has_nan``: whether the input holds a NaN at all
    (checked once by the caller, so the common case is one compare per tap)."""
    taps = iter(taps)
    y = next(taps).copy()
    argpos = xp.zeros(y.shape, dtype=xp.int16)
    better = xp.empty(y.shape, dtype=bool)
    for t, v in enumerate(taps, 1):
        xp.greater(v, y, out=better)
        if has_nan:
            better |= xp.isnan(v) & ~xp.isnan(y)
            xp.copyto(y, v, where=better)
        else:
            xp.maximum(y, v, out=y)
        xp.copyto(argpos, t, where=better)
    return y, argpos


def max_pool2d_backward(gy, argpos, x_shape, kernel_size, stride, padding, dilation, ceil_mode):
    """Scatter ``gy`` to the winning input positions (adding where windows overlap)."""
    xp = get_array_module(gy)
    ho, wo, need = _geometry(x_shape, kernel_size, stride, padding, dilation, ceil_mode)
    n, c, h, w = x_shape
    ph, pw = padding
    kh, kw = kernel_size
    gxp = xp.zeros((n, c, max(h + 2 * ph, need[0]), max(w + 2 * pw, need[1])), dtype=gy.dtype)
    overlap = any(s < d * (k - 1) + 1 for s, d, k in zip(stride, dilation, kernel_size))
    hit = xp.empty(argpos.shape, dtype=bool)
    for t in range(kh * kw):
        dst = _tap(gxp, t // kw, t % kw, stride, dilation, (ho, wo))
        xp.equal(argpos, t, out=hit)
        if overlap:
            dst += gy * hit
        else:  # each input cell is in at most one window: write, no accumulation
            xp.multiply(gy, hit, out=dst)
    return xp.ascontiguousarray(gxp[:, :, ph:ph + h, pw:pw + w])


def max_pool2d_gather(gx, argpos, kernel_size, stride, padding, dilation, ceil_mode):
    """Read ``gx`` (input-shaped) at each window's winning position: the adjoint of the backward."""
    xp = get_array_module(gx)
    ho, wo, need = _geometry(gx.shape, kernel_size, stride, padding, dilation, ceil_mode)
    kh, kw = kernel_size
    gxp = _padded(xp, gx, padding, need, 0)
    out = xp.zeros(argpos.shape, dtype=gx.dtype)
    for t in range(kh * kw):
        xp.copyto(out, _tap(gxp, t // kw, t % kw, stride, dilation, (ho, wo)), where=argpos == t)
    return out


def max_pool2d_indices(argpos, x_shape, kernel_size, stride, padding, dilation):
    """PyTorch's ``return_indices``: the flat index h*W + w of each maximum in its input plane."""
    xp = get_array_module(argpos)
    kw = kernel_size[1]
    ho, wo = argpos.shape[2:]
    i, j = argpos // kw, argpos % kw
    rows = xp.arange(ho).reshape(ho, 1) * stride[0] - padding[0] + i * dilation[0]
    cols = xp.arange(wo).reshape(1, wo) * stride[1] - padding[1] + j * dilation[1]
    return (rows.astype(xp.int64) * x_shape[3] + cols).astype(xp.int64)


def _avg_divisor(xp, x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
                 dtype):
    """(Ho, Wo) divisors following PyTorch's rule: pad cells count, ceil-mode overhang does not."""
    if divisor_override:
        return None
    h, w = x_shape[2:]
    ho, wo, _ = _geometry(x_shape, kernel_size, stride, padding, (1, 1), ceil_mode)

    def counts(n_out, n_in, k, s, p):
        start = xp.arange(n_out) * s - p
        end = xp.minimum(start + k, n_in + p)
        if count_include_pad:
            return end - start
        return xp.minimum(end, n_in) - xp.maximum(start, 0)

    fh = counts(ho, h, kernel_size[0], stride[0], padding[0])
    fw = counts(wo, w, kernel_size[1], stride[1], padding[1])
    return (fh.reshape(ho, 1) * fw.reshape(1, wo)).astype(dtype)


def avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    xp = get_array_module(x)
    ho, wo, need = _geometry(x.shape, kernel_size, stride, padding, (1, 1), ceil_mode)
    kh, kw = kernel_size
    xpad = _padded(xp, x, padding, need, 0)
    y = _tap(xpad, 0, 0, stride, (1, 1), (ho, wo)).copy()
    for t in range(1, kh * kw):
        y += _tap(xpad, t // kw, t % kw, stride, (1, 1), (ho, wo))
    div = _avg_divisor(xp, x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                       divisor_override, x.dtype)
    if div is None:
        y /= x.dtype.type(divisor_override)
    else:
        y /= div
    return y


def avg_pool2d_backward(gy, x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                        divisor_override):
    xp = get_array_module(gy)
    ho, wo, need = _geometry(x_shape, kernel_size, stride, padding, (1, 1), ceil_mode)
    n, c, h, w = x_shape
    ph, pw = padding
    kh, kw = kernel_size
    div = _avg_divisor(xp, x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                       divisor_override, gy.dtype)
    g = gy / (gy.dtype.type(divisor_override) if div is None else div)
    gxp = xp.zeros((n, c, max(h + 2 * ph, need[0]), max(w + 2 * pw, need[1])), dtype=gy.dtype)
    for t in range(kh * kw):
        _tap(gxp, t // kw, t % kw, stride, (1, 1), (ho, wo))[...] += g
    return xp.ascontiguousarray(gxp[:, :, ph:ph + h, pw:pw + w])
