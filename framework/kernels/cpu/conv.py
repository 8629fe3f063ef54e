"""2-D convolution kernels on arrays: im2col lowering onto BLAS matrix products.

Written against an array module ``xp`` (NumPy here; the same code runs on CuPy, where dedicated
kernels in ``framework.kernels.cuda.conv`` take precedence when present).

Shapes: ``x`` (N, C, H, W); ``w`` (K, C/groups, kh, kw); ``y`` (N, K, Ho, Wo) with
``Ho = (H + 2*ph - dh*(kh - 1) - 1) // sh + 1``. ``stride``, ``padding`` and ``dilation`` are pairs of
ints (padding symmetric; callers pad asymmetric cases first). No loop runs over pixels: the loops
below run over the kh*kw kernel taps at most.
"""

from __future__ import annotations

from ...backend import get_array_module

__all__ = ["conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "conv_out_size"]


def conv_out_size(n: int, k: int, s: int, p: int, d: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _pad(xp, x, ph, pw):
    if not (ph or pw):
        return x
    n, c, h, w = x.shape
    out = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def _im2col(xp, x, kh, kw, stride, padding, dilation, ho, wo, cmajor):
    """Patches of ``x``.

    cmajor=False: (N, C*kh*kw, Ho*Wo), rows ordered (c, i, j) as the weight's flattening.
    cmajor=True:  (C*kh*kw, N*Ho*Wo), for one long matrix product over the batch.
    """
    n, c = x.shape[:2]
    sh, sw = stride
    dh, dw = dilation
    xpad = _pad(xp, x, *padding)
    if kh == kw == 1:
        v = xpad[:, :, :sh * (ho - 1) + 1:sh, :sw * (wo - 1) + 1:sw]
        if cmajor:
            return xp.ascontiguousarray(v.transpose(1, 0, 2, 3)).reshape(c, n * ho * wo)
        return xp.ascontiguousarray(v).reshape(n, c, ho * wo)
    # Copy tap by tap: kh*kw strided slab copies, each a long vectorised move.
    if cmajor:
        col = xp.empty((c, kh, kw, n, ho, wo), dtype=x.dtype)
        src = xpad.transpose(1, 0, 2, 3)
    else:
        col = xp.empty((n, c, kh, kw, ho, wo), dtype=x.dtype)
        src = xpad
    for i in range(kh):
        r0 = i * dh
        for j in range(kw):
            c0 = j * dw
            sl = src[:, :, r0:r0 + sh * (ho - 1) + 1:sh, c0:c0 + sw * (wo - 1) + 1:sw]
            if cmajor:
                col[:, i, j] = sl
            else:
                col[:, :, i, j] = sl
    if cmajor:
        return col.reshape(c * kh * kw, n * ho * wo)
    return col.reshape(n, c * kh * kw, ho * wo)


def _taps(xp, col, xpad, kh, kw, stride, dilation, ho, wo):
    """Fill ``col`` (C, kh, kw, Ho, Wo) from one padded image ``xpad`` (C, Hp, Wp)."""
    sh, sw = stride
    dh, dw = dilation
    for i in range(kh):
        for j in range(kw):
            col[:, i, j] = xpad[:, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]


def _per_sample_cols(xp, x, kh, kw, stride, padding, dilation, ho, wo):
    """Yield (n, col_n) with col_n (C*kh*kw, Ho*Wo), one image at a time in a reused buffer.

    Working image by image keeps the patch matrix in cache for the product that follows and avoids
    allocating (and page-faulting) a batch-sized patch matrix.
    """
    n, c, h, w = x.shape
    ph, pw = padding
    if kh == kw == 1 and stride == (1, 1) and padding == (0, 0):
        for b in range(n):
            yield b, x[b].reshape(c, h * w)
        return
    xpad = xp.zeros((c, h + 2 * ph, w + 2 * pw), dtype=x.dtype) if (ph or pw) else None
    col = xp.empty((c, kh, kw, ho, wo), dtype=x.dtype)
    for b in range(n):
        if xpad is not None:
            xpad[:, ph:ph + h, pw:pw + w] = x[b]
            src = xpad
        else:
            src = x[b]
        _taps(xp, col, src, kh, kw, stride, dilation, ho, wo)
        yield b, col.reshape(c * kh * kw, ho * wo)


def conv2d_forward(x, w, stride, padding, dilation, groups):
    """y[n, k] = sum_c,i,j w[k, c, i, j] * x[n, g(k)*Cg + c, ho*sh + i*dh - ph, wo*sw + j*dw - pw]."""
    xp = get_array_module(x)
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    ho = conv_out_size(h, kh, stride[0], padding[0], dilation[0])
    wo = conv_out_size(wd, kw, stride[1], padding[1], dilation[1])
    g = groups
    kg = k // g
    if g > 1 and cg == 1 and kg == 1:
        return _depthwise_forward(xp, x, w, stride, padding, dilation, ho, wo)
    if x.dtype != w.dtype:
        raise TypeError(f"conv2d: input dtype {x.dtype} and weight dtype {w.dtype} differ")
    y = xp.empty((n, k, ho, wo), dtype=x.dtype)
    w3 = w.reshape(g, kg, cg * kh * kw)
    for b, col in _per_sample_cols(xp, x, kh, kw, stride, padding, dilation, ho, wo):
        if g == 1:
            xp.matmul(w3[0], col, out=y[b].reshape(k, ho * wo))
        else:
            xp.matmul(w3, col.reshape(g, cg * kh * kw, ho * wo), out=y[b].reshape(g, kg, ho * wo))
    return y


def _depthwise_forward(xp, x, w, stride, padding, dilation, ho, wo):
    # One input and one output channel per group: a sum of kh*kw scaled shifted images.
    n, c = x.shape[:2]
    kh, kw = w.shape[2:]
    sh, sw = stride
    dh, dw = dilation
    xpad = _pad(xp, x, *padding)
    y = xp.zeros((n, c, ho, wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            sl = xpad[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]
            y += sl * w[:, 0, i, j].reshape(1, c, 1, 1)
    return y


def _col2im(xp, gcol, x_shape, kh, kw, stride, padding, dilation, ho, wo):
    """Adjoint of _im2col (cmajor=False layout (N, C, kh, kw, Ho, Wo)): scatter-add the taps."""
    n, c, h, wd = x_shape
    ph, pw = padding
    sh, sw = stride
    dh, dw = dilation
    gxp = xp.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=gcol.dtype)
    for i in range(kh):
        for j in range(kw):
            gxp[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw] += (
                gcol[:, :, i, j])
    if ph or pw:
        return xp.ascontiguousarray(gxp[:, :, ph:ph + h, pw:pw + wd])
    return gxp


def conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """Gradient of conv2d_forward with respect to x (the adjoint: a transposed convolution)."""
    xp = get_array_module(gy)
    n, k, ho, wo = gy.shape
    _, cg, kh, kw = w.shape
    c = x_shape[1]
    g = groups
    kg = k // g
    if g > 1 and cg == 1 and kg == 1:
        gcol = gy[:, :, None, None] * w.reshape(1, c, kh, kw, 1, 1)
    elif g == 1:
        w2 = w.reshape(k, cg * kh * kw)
        if n == 1:
            gcol = xp.matmul(w2.T, gy.reshape(n, k, ho * wo))
        else:
            # One long product: (C*kh*kw, K) @ (K, N*L).
            gyt = xp.ascontiguousarray(gy.transpose(1, 0, 2, 3)).reshape(k, n * ho * wo)
            gcol = (w2.T @ gyt).reshape(c * kh * kw, n, ho * wo).transpose(1, 0, 2)
    else:
        w3 = w.reshape(g, kg, cg * kh * kw).transpose(0, 2, 1)
        gcol = xp.matmul(w3, gy.reshape(n, g, kg, ho * wo))
    if kh == kw == 1 and stride == (1, 1) and padding == (0, 0):
        return xp.ascontiguousarray(gcol).reshape(x_shape)
    gcol = gcol.reshape(n, c, kh, kw, ho, wo)
    return _col2im(xp, gcol, x_shape, kh, kw, stride, padding, dilation, ho, wo)


def conv2d_backward_weight(x, gy, w_shape, stride, padding, dilation, groups):
    """Gradient of conv2d_forward with respect to w: gy (K, N*L) times patches (N*L, C*kh*kw)."""
    xp = get_array_module(x)
    n, k, ho, wo = gy.shape
    _, cg, kh, kw = w_shape
    g = groups
    kg = k // g
    if g > 1 and cg == 1 and kg == 1:
        c = x.shape[1]
        xpad = _pad(xp, x, *padding)
        sh, sw = stride
        dh, dw = dilation
        gw = xp.empty((c, 1, kh, kw), dtype=gy.dtype)
        for i in range(kh):
            for j in range(kw):
                sl = xpad[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]
                gw[:, 0, i, j] = xp.einsum("nchw,nchw->c", sl, gy)
        return gw
    col = _im2col(xp, x, kh, kw, stride, padding, dilation, ho, wo, cmajor=True)  # (C*kk, N*L)
    gyt = gy.transpose(1, 0, 2, 3).reshape(k, n * ho * wo) if n > 1 else gy.reshape(k, ho * wo)
    if g == 1:
        return (gyt @ col.T).reshape(w_shape)
    col = col.reshape(g, cg * kh * kw, n * ho * wo)
    gw = xp.matmul(gyt.reshape(g, kg, n * ho * wo), col.transpose(0, 2, 1))
    return gw.reshape(w_shape)
