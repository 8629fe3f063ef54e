"""Winograd F(4x4, 3x3) for inference: 3x3, stride-1, undilated, ungrouped convolutions without autograd.

Each 4x4 output tile is Y = A^T [(G g G^T) * (B^T d B)] A with d the 6x6 input tile at stride 4
(interpolation points 0, 1, -1, 2, -2 and infinity; Lavin & Gray, CVPR 2016). 36 element-wise products
replace 144 multiplications: the 36 batched matrix products (tiles, C) @ (C, K) carry 4x fewer
operations than im2col's and 1.8x fewer than F(2x2, 3x3)'s (``winograd``). The price is accuracy:
the transforms' larger coefficients (up to 8 in A, 5 in B) cost about one decimal digit in float32,
a relative error near 3e-5 of the output's scale instead of 2e-6. That suits inference; training
keeps F(2x2, 3x3), whose forward also hands its input transform to the weight gradient.

Everything but the products of the channels is done by small matrix products too: the tiles are
gathered once, channels last, into d (6, 6, tiles, C); B^T d B is B^T applied to the rows and then
to the columns, two products with six-long reductions over every tile and channel at once (no
element-wise passes); A^T M A likewise on the output side.

Arrays: x (N, C, H, W), w (K, C, 3, 3), y (N, K, H + 2p - 2, W + 2p - 2); padding p in {0, 1, 2}.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

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


def _chunks(n, th, tw):
    """(b0, b1, r0, r1): groups of whole images, or bands of tile rows of one image, of about
    _TARGET_TILES tiles each."""
    per_image = th * tw
    if per_image > _TARGET_TILES:
        rows = max(1, _TARGET_TILES // tw)
        return [(b, b + 1, r0, min(r0 + rows, th)) for b in range(n) for r0 in range(0, th, rows)]
    nb = max(1, min(n, _TARGET_TILES // per_image))
    return [(b0, min(b0 + nb, n), 0, th) for b0 in range(0, n, nb)]


def conv3x3_forward(x, w, p, u=None, epilogue=None):
    """y = conv2d(x, w, padding=p) for NumPy float32/float64 x; ``u``: weight_transform(w), if at hand.
    ``epilogue`` (``conv._Epilogue``): the output array and what to apply to each band of it as it is
    written (bias, residual, activation)."""
    n, c, h, wd = x.shape
    k = w.shape[0]
    ho, wo = h + 2 * p - 2, wd + 2 * p - 2
    th, tw = -(-ho // 4), -(-wo // 4)
    dt = x.dtype
    if u is None:
        u = weight_transform(w)
    bt, at = _BT.astype(dt), _AT.astype(dt)
    y = np.empty((n, k, ho, wo), dtype=dt) if epilogue is None else epilogue.y
    chunks = _chunks(n, th, tw)
    nb = max(b1 - b0 for b0, b1, _, _ in chunks)
    rows = max(r1 - r0 for _, _, r0, r1 in chunks)
    # The padded band of the chunk, channels last: tile (r, q) reads rows 4r..4r+5, columns 4q..4q+5.
    band = np.empty((nb, 4 * rows + 2, 4 * tw + 2, c), dtype=dt)
    for b0, b1, r0, r1 in chunks:
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
        v = np.matmul(bt, np.matmul(bt, d).reshape(6, 6, t * c))  # B^T on rows, then on columns
        mm = np.matmul(v.reshape(36, t, c), u)  # (36, tiles, K)
        o = np.matmul(at, np.matmul(at, mm.reshape(6, 6 * t * k)).reshape(4, 6, t * k))  # (4, 4, tiles*K)
        o = o.reshape(4, 4, m, nr, tw, k).transpose(2, 5, 3, 0, 4, 1).reshape(m, k, 4 * nr, 4 * tw)
        y0, y1 = 4 * r0, min(4 * r1, ho)
        if epilogue is None:
            y[b0:b1, :, y0:y1] = o[:, :, :y1 - y0, :wo]
        else:
            epilogue(b0, b1, 0, k, y0, y1, src=o[:, :, :y1 - y0, :wo])
    return y
