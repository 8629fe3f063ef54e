"""Winograd F(4x4, 3x3): 3x3, stride-1, undilated, ungrouped convolutions, forward and both gradients.

Each 4x4 output tile is Y = A^T [(G g G^T) * (B^T d B)] A with d the 6x6 input tile at stride 4
(interpolation points 0, 1, -1, 2, -2 and infinity; Lavin & Gray, CVPR 2016). 36 element-wise products
replace 144 multiplications: the 36 batched matrix products (tiles, C) @ (C, K) carry 4x fewer
operations than im2col's and 1.8x fewer than F(2x2, 3x3)'s (``winograd``). The price is accuracy:
the transforms' larger coefficients (up to 8 in A, 5 in B) cost about one decimal digit in float32,
a relative error near 1e-5 of the output's scale instead of 1e-6 (measured against float64: 3e-6 to
9e-6 for the output and both gradients, 64 channels). cuDNN and oneDNN offer Winograd for
training too; ``FRAMEWORK_CONV_WINOGRAD43_TRAIN=0`` keeps it to inference here (``conv``).
The input gradient is the forward with the flipped, transposed kernel; the weight gradient is
dL/dg = G^T [sum over tiles (A dY A^T) * (B^T d B)] G, from the input transform that the forward keeps.

Everything but the products of the channels is done by small matrix products too: the tiles are
gathered once, channels last, into d (6, 6, tiles, C); B^T d B is B^T applied to the rows and then
to the columns, two products with six-long reductions over every tile and channel at once (no
element-wise passes); A^T M A likewise on the output side.

Arrays: x (N, C, H, W), w (K, C, 3, 3), y (N, K, H + 2p - 2, W + 2p - 2); padding p in {0, 1, 2}.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import gemm

_BT = np.array([[4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1]], dtype=np.float64)
_G = np.array([[1 / 4, 0, 0],
               [-1 / 6, -1 / 6, -1 / 6],
               [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6],
               [1 / 24, -1 / 12, 1 / 6],
               [0, 0, 1]], dtype=np.float64)
_AT = np.array([[1, 1, 1, 1, 1, 0],
                [0, 1, -1, 2, -2, 0],
                [0, 1, 1, 4, 4, 0],
                [0, 1, -1, 8, -8, 1]], dtype=np.float64)
# (G g G^T)[a, b] = sum_ij G[a, i] G[b, j] g[i, j]: the weight transform as one (36, 9) matrix.
_GG = np.kron(_G, _G)

# Tiles per chunk: the gathered tiles and their transforms (36 x tiles x channels) stay in L2 (measured
# on one core: 64 tiles 1.1-1.3x faster than 256 on 60x60 and 8x32x32 inputs).
_TARGET_TILES = 64
_MIN_CHANNELS = 32


def applicable(x_shape, w_shape, stride, padding, dilation, groups) -> bool:
    """Measured (one AVX-512 core, float32, batches of 1 and 8, 8x8 to 64x64 outputs): 1.3-2.8x faster
    than F(2x2, 3x3) or im2col with >= 32 channels in and out; with 8-24 channels im2col is faster."""
    k, cg, kh, kw = w_shape
    if not (kh == kw == 3 and stride == (1, 1) and dilation == (1, 1) and groups == 1
            and padding[0] == padding[1] and 0 <= padding[0] <= 2):
        return False
    ho, wo = x_shape[2] + 2 * padding[0] - 2, x_shape[3] + 2 * padding[1] - 2
    return min(cg, k) >= _MIN_CHANNELS and ho >= 8 and wo >= 8


def weight_transform(w):
    """U (36, C, K) = G g G^T."""
    k, c = w.shape[:2]
    u = _GG.astype(w.dtype) @ w.reshape(k * c, 9).T  # (36, K*C): one matrix product
    return np.ascontiguousarray(u.reshape(36, k, c).transpose(0, 2, 1))


def _chunks(n, th, tw, target=None):
    """(b0, b1, r0, r1): groups of whole images, or bands of tile rows of one image, of about
    ``target`` (default _TARGET_TILES) tiles each."""
    target = target or _TARGET_TILES
    per_image = th * tw
    if per_image > target:
        rows = max(1, target // tw)
        return [(b, b + 1, r0, min(r0 + rows, th)) for b in range(n) for r0 in range(0, th, rows)]
    nb = max(1, min(n, target // per_image))
    return [(b0, min(b0 + nb, n), 0, th) for b0 in range(0, n, nb)]


def _input_transform(x, b0, b1, r0, r1, p, tw, band, out=None):
    """V (6, 6, tiles*C) = B^T d B for the 6x6 input tiles of images b0:b1, tile rows r0:r1 (tile order:
    image, tile row, tile column), through the reusable padded ``band`` buffer; into ``out`` if given."""
    h, wd, c = x.shape[2], x.shape[3], x.shape[1]
    m, nr = b1 - b0, r1 - r0
    t = m * nr * tw
    pad = band[:m, :4 * nr + 2]
    top = 4 * r0 - p  # the image row in the band's first row
    i0, i1 = max(0, top), min(h, top + 4 * nr + 2)
    pad.fill(0)
    pad[:, i0 - top:i1 - top, p:p + wd] = x[b0:b1, :, i0:i1].transpose(0, 2, 3, 1)
    s = pad.strides
    tiles = as_strided(pad, shape=(6, 6, m, nr, tw, c),
                       strides=(s[1], s[2], s[0], 4 * s[1], 4 * s[2], s[3]), writeable=False)
    d = np.ascontiguousarray(tiles).reshape(6, 6 * t * c)
    bt = _BT.astype(x.dtype)
    return np.matmul(bt, np.matmul(bt, d).reshape(6, 6, t * c), out=out)  # B^T on rows, then on columns


def _band(x, p, chunks, tw):
    nb = max(b1 - b0 for b0, b1, _, _ in chunks)
    rows = max(r1 - r0 for _, _, r0, r1 in chunks)
    return np.empty((nb, 4 * rows + 2, 4 * tw + 2, x.shape[1]), dtype=x.dtype)


def _geometry(x_shape, p):
    ho, wo = x_shape[2] + 2 * p - 2, x_shape[3] + 2 * p - 2
    return ho, wo, -(-ho // 4), -(-wo // 4)


def transform_bytes(x_shape, p, itemsize):
    """Size of the input transform that the forward keeps for the weight gradient."""
    _, _, th, tw = _geometry(x_shape, p)
    return 36 * x_shape[0] * th * tw * x_shape[1] * itemsize


def conv3x3_forward(x, w, p, u=None, epilogue=None, keep=None):
    """y = conv2d(x, w, padding=p) for NumPy float32/float64 x; ``u``: weight_transform(w), if at hand.
    ``epilogue`` (``conv._Epilogue``): the output array and what to apply to each band of it as it is
    written (bias, residual, activation). ``keep``: a list that receives the input transform of the
    whole batch, V (36, tiles, C), for :func:`conv3x3_backward_weight`."""
    n, c, h, wd = x.shape
    k = w.shape[0]
    ho, wo, th, tw = _geometry(x.shape, p)
    dt = x.dtype
    if u is None:
        u = weight_transform(w)
    at = _AT.astype(dt)
    y = np.empty((n, k, ho, wo), dtype=dt) if epilogue is None else epilogue.y
    chunks = _chunks(n, th, tw)
    band = _band(x, p, chunks, tw)
    kept = None
    if keep is not None:
        kept = np.empty((36, n * th * tw, c), dtype=dt)
        keep.append(kept)
    t0 = 0
    for b0, b1, r0, r1 in chunks:
        m, nr = b1 - b0, r1 - r0
        t = m * nr * tw
        out = None if kept is None else kept[:, t0:t0 + t].reshape(6, 6, t * c)
        v = _input_transform(x, b0, b1, r0, r1, p, tw, band, out)
        t0 += t
        mm = gemm.matmul(v.reshape(36, t, c), u)  # (36, tiles, K)
        o = np.matmul(at, np.matmul(at, mm.reshape(6, 6 * t * k)).reshape(4, 6, t * k))  # (4, 4, tiles*K)
        o = o.reshape(4, 4, m, nr, tw, k).transpose(2, 5, 3, 0, 4, 1).reshape(m, k, 4 * nr, 4 * tw)
        y0, y1 = 4 * r0, min(4 * r1, ho)
        if epilogue is None:
            y[b0:b1, :, y0:y1] = o[:, :, :y1 - y0, :wo]
        else:
            epilogue(b0, b1, 0, k, y0, y1, src=o[:, :, :y1 - y0, :wo])
    return y


def conv3x3_backward_input(gy, w, x_shape, p):
    """The input gradient of a stride-1 3x3 convolution: a 3x3 convolution of gy with the flipped,
    transposed kernel and padding 2 - p."""
    wf = np.ascontiguousarray(w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
    return conv3x3_forward(gy, wf, 2 - p)


# Tiles per chunk of the weight gradient: its products reduce over the tiles, so they want more of them.
_WG_TILES = 256


def conv3x3_backward_weight(x, gy, p, kept=None):
    """dL/dg = G^T [sum over tiles (A dY A^T) * (B^T d B)] G, A = A^T's transpose, dY the 4x4 tiles of
    gy (zero past its edge). ``kept``: the input transform that conv3x3_forward(keep=...) saved for x."""
    n, c, h, wd = x.shape
    k = gy.shape[1]
    ho, wo, th, tw = _geometry(x.shape, p)
    dt = x.dtype
    a = np.ascontiguousarray(_AT.T.astype(dt))  # (6, 4)
    chunks = _chunks(n, th, tw, _WG_TILES)
    band = _band(x, p, chunks, tw) if kept is None else None
    nb = max(b1 - b0 for b0, b1, _, _ in chunks)
    rows = max(r1 - r0 for _, _, r0, r1 in chunks)
    gpad = np.zeros((nb, 4 * rows, 4 * tw, k), dtype=dt)
    du = np.zeros((36, k, c), dtype=dt)
    t0 = 0
    for b0, b1, r0, r1 in chunks:
        m, nr = b1 - b0, r1 - r0
        t = m * nr * tw
        if kept is None:
            v = _input_transform(x, b0, b1, r0, r1, p, tw, band).reshape(36, t, c)
        else:
            v = kept[:, t0:t0 + t]
        t0 += t
        y0, y1 = 4 * r0, min(4 * r1, ho)
        g = gpad[:m, :4 * nr]
        if y1 - y0 < 4 * nr or wo < 4 * tw:
            g.fill(0)
        g[:, :y1 - y0, :wo] = gy[b0:b1, :, y0:y1].transpose(0, 2, 3, 1)
        s = g.strides
        tiles = as_strided(g, shape=(4, 4, m, nr, tw, k),
                           strides=(s[1], s[2], s[0], 4 * s[1], 4 * s[2], s[3]), writeable=False)
        dy = np.ascontiguousarray(tiles).reshape(4, 4 * t * k)
        mg = np.matmul(a, np.matmul(a, dy).reshape(6, 4, t * k))  # (6, 6, tiles*K): A on rows, columns
        du += gemm.matmul(mg.reshape(36, t, k).transpose(0, 2, 1), v)  # (36, K, C)
    return (du.reshape(36, k * c).T @ _GG.astype(dt)).reshape(k, c, 3, 3)
