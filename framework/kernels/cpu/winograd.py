"""Winograd F(2x2, 3x3) convolution for 3x3, stride-1, undilated, ungrouped convolutions.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016). Each 2x2 output tile
is Y = A^T [(G g G^T) * (B^T d B)] A, with d the 4x4 input tile: 16 element-wise products replace
36 multiplications, so the 16 batched matrix products (tiles, C) @ (C, K) carry 2.25x fewer
operations than im2col's (K, 9C) @ (9C, pixels). The transforms are element-wise sums over strided
views (no per-pixel Python loop) of channels-last copies, so every NumPy pass runs over long
contiguous runs (a band of tile columns times the channels).
The weight gradient uses the same transforms:
dL/dg = G^T [sum over tiles (A dY A^T) * (B^T d B)] G.

Arrays: x (N, C, H, W), w (K, C, 3, 3), y (N, K, H + 2p - 2, W + 2p - 2); padding p in {0, 1, 2}.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict

import numpy as np

from ...backend import get_array_module
from . import gemm

_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
# (G g G^T)[a, b] = sum_ij G[a, i] G[b, j] g[i, j]: the weight transform as one (16, 9) matrix.
_GG = np.kron(_G, _G)

# Tiles per matrix product: enough columns for BLAS, small enough to keep the transforms in cache.
_TARGET_TILES = 512
_MIN_CHANNELS = 32
_MIN_PIXELS = 16 * 16


def applicable(x_shape, w_shape, stride, padding, dilation, groups) -> bool:
    k, cg, kh, kw = w_shape
    if not (kh == kw == 3 and stride == (1, 1) and dilation == (1, 1) and groups == 1
            and padding[0] == padding[1] and 0 <= padding[0] <= 2):
        return False
    # Measured (one AVX-512 core, float32, fwd + both gradients): 1.1-2x faster than im2col from 32
    # channels in and out on 16x16 images up, and on 8x8 images with >= 128 channels; smaller images
    # lose to im2col's one large product, and so do layers widening 32 channels to >= 64
    # (0.8-0.9x: their transformed gradients are the larger side).
    ho, wo = x_shape[2] + 2 * padding[0] - 2, x_shape[3] + 2 * padding[1] - 2
    if cg < _MIN_CHANNELS or k < _MIN_CHANNELS or (cg <= 32 and k >= 2 * cg):
        return False
    return ho * wo >= _MIN_PIXELS or (ho * wo >= 64 and min(cg, k) >= 128)


def _split(xp, fn, n, work):
    from .conv import _split_channels

    _split_channels(xp, fn, n, work)


def _pad_buffers(xp, c, nb, th, tw, dtype):
    """Zeroed padded image buffers, even and odd columns apart, channels last: (nb, 2*th + 2, tw + 1, C).

    With the columns de-interleaved, every column of a tile is a unit-stride slice (tile t spans
    padded columns 2t..2t+3 = even[t], odd[t], even[t+1], odd[t+1]); with the channels innermost, a
    band of tile columns is one contiguous run of tw*C values, so each NumPy pass of the transforms
    runs long inner loops instead of one short loop per image row.
    """
    shape = (nb, 2 * th + 2, tw + 1, c)
    return xp.zeros(shape, dtype=dtype), xp.zeros(shape, dtype=dtype)


def _input_transform(xp, x, b0, b1, r0, r1, p, tw, v, bufs):
    """V (16, m*(r1-r0)*tw, C) = B^T d B for the 4x4 input tiles of images b0:b1, tile rows r0:r1."""
    m = b1 - b0
    c, h, w = x.shape[1:]
    xe, xo = bufs
    if r0 == 0:  # a new group of images: fill the padded buffers (one transposing copy)
        src = x[b0:b1].transpose(0, 2, 3, 1)
        e0, o0 = p % 2, 1 - p % 2  # first x column landing on an even / odd padded column (p + col)
        ne, no = len(range(e0, w, 2)), len(range(o0, w, 2))
        xe[:m, p:p + h, (p + e0) // 2:(p + e0) // 2 + ne] = src[:, :, e0::2]
        xo[:m, p:p + h, (p + o0) // 2:(p + o0) // 2 + no] = src[:, :, o0::2]
    nr = r1 - r0
    v5 = v.reshape(16, m, nr, tw, c)

    def run(i0, i1):  # tile rows r0+i0 .. r0+i1
        t = []
        for buf in (xe, xo):
            s = buf[:m, 2 * (r0 + i0):]
            r = [s[:, i:i + 2 * (i1 - i0) - 1:2] for i in range(4)]  # (m, rows, tw + 1, C)
            t.append((r[0] - r[2], r[1] + r[2], r[2] - r[1], r[1] - r[3]))
        for a in range(4):
            ev, od = t[0][a], t[1][a]
            q0, q1, q2, q3 = ev[:, :, :tw], od[:, :, :tw], ev[:, :, 1:], od[:, :, 1:]
            xp.subtract(q0, q2, out=v5[4 * a + 0, :, i0:i1])
            xp.add(q1, q2, out=v5[4 * a + 1, :, i0:i1])
            xp.subtract(q2, q1, out=v5[4 * a + 2, :, i0:i1])
            xp.subtract(q1, q3, out=v5[4 * a + 3, :, i0:i1])

    _split(xp, run, nr, v.nbytes)


def _weight_transform(xp, w):
    """U (16, C, K) = G g G^T."""
    k, c = w.shape[:2]
    gg = xp.asarray(_GG.astype(w.dtype))
    u = gg @ w.reshape(k * c, 9).T  # (16, K*C): one matrix product
    return xp.ascontiguousarray(u.reshape(16, k, c).transpose(0, 2, 1))


# Inference reuses a layer's transformed weight while its weight stays unchanged. An entry is found by
# the weight array's identity and trusted only after a bitwise comparison with a private copy of the
# weight (a tenth of the transform's cost), so however the array was modified (an optimizer, a write
# through ``.data``, finite differences) a stale transform is never used.
_U_CACHE: OrderedDict = OrderedDict()  # id(w) -> (weakref to w, copy of w, U, kind), least recent first
_U_CACHE_MAX_BYTES = 64 << 20
_U_LOCK = threading.Lock()
# Entries of weights that died while the lock was held (a garbage collection can run inside the locked
# code, in the very thread holding the lock): dropped by the lock's next holder.
_U_DEAD: list = []


def _same_bits(a, b) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    as_int = np.dtype(f"i{a.dtype.itemsize}")
    return bool(np.array_equal(a.view(as_int), b.view(as_int)))


def _drop_dead() -> None:  # (lock held)
    while _U_DEAD:
        key, ref = _U_DEAD.pop()
        if key in _U_CACHE and _U_CACHE[key][0] is ref:
            del _U_CACHE[key]


def _forget(ref, key) -> None:
    """Weakref callback: the weight array died, its entry goes (now, or with the lock's next holder)."""
    _U_DEAD.append((key, ref))
    if _U_LOCK.acquire(blocking=False):
        try:
            _drop_dead()
        finally:
            _U_LOCK.release()


def cached_weight_transform(w, kind: str = "f23"):
    """U = G g G^T of a NumPy weight, from the cache when ``w`` holds the same bits as last time.
    ``kind``: "f23" (this module's F(2x2, 3x3)) or "f43" (``winograd43``'s F(4x4, 3x3) for inference).
    At most _U_CACHE_MAX_BYTES of copies and transforms are held, least recently used out first."""
    key = id(w)
    with _U_LOCK:
        _drop_dead()
        hit = _U_CACHE.get(key)
        if hit is not None and hit[0]() is w and hit[3] == kind and _same_bits(hit[1], w):
            _U_CACHE.move_to_end(key)
            return hit[2]
    if kind == "f43":
        from . import winograd43

        u = winograd43.weight_transform(w)
    else:
        u = _weight_transform(np, w)
    entry = (weakref.ref(w, lambda ref, key=key: _forget(ref, key)), w.copy(), u, kind)
    with _U_LOCK:
        _drop_dead()
        _U_CACHE[key] = entry
        _U_CACHE.move_to_end(key)
        total = sum(e[1].nbytes + e[2].nbytes for e in _U_CACHE.values())
        while total > _U_CACHE_MAX_BYTES and len(_U_CACHE) > 1:
            _, (_, c, old, _) = _U_CACHE.popitem(last=False)
            total -= c.nbytes + old.nbytes
    return u


def _output_transform(xp, mm, y, b0, b1, r0, r1, tw, ho, wo):
    """Y tiles (2x2) = A^T M A from M (16, m*(r1-r0)*tw, K), written into y[b0:b1] (cropped)."""
    m = b1 - b0
    k = mm.shape[2]
    nr = r1 - r0
    m6 = mm.reshape(4, 4, m, nr, tw, k)

    def run(i0, i1):  # tile rows r0+i0 .. r0+i1
        M = m6[:, :, :, i0:i1]
        s0 = M[0] + M[1] + M[2]  # (4, m, rows, tw, K): rows of A^T M
        s1 = M[1] - M[2] - M[3]
        top = min(2 * (r0 + i1), ho)
        for r, sr in enumerate((s0, s1)):
            nrow = len(range(2 * (r0 + i0) + r, top, 2))
            for c, val in enumerate((sr[0] + sr[1] + sr[2], sr[1] - sr[2] - sr[3])):
                nc = (wo - c + 1) // 2
                y[b0:b1, :, 2 * (r0 + i0) + r:top:2, c::2] = val[:, :nrow, :nc].transpose(0, 3, 1, 2)

    _split(xp, run, nr, mm.nbytes)


def _grad_output_transform(xp, gy, b0, b1, r0, r1, tw, mg):
    """Mg (16, m*th*tw, K) = A dY A^T for every 2x2 tile of gy[b0:b1] (zero past the edge).

    The four (row, column) parities of gy are copied apart first, channels last, so that every
    step is a long unit-stride run.
    """
    m = b1 - b0
    k, ho, wo = gy.shape[1:]
    nr = r1 - r0
    top = min(2 * r1, ho)
    par = {}
    for r in (0, 1):
        nrow = len(range(2 * r0 + r, top, 2))
        for c in (0, 1):
            a = xp.zeros((m, nr, tw, k), dtype=gy.dtype)
            a[:, :nrow, :(wo - c + 1) // 2] = gy[b0:b1, :, 2 * r0 + r:top:2, c::2].transpose(0, 2, 3, 1)
            par[r, c] = a
    m5 = mg.reshape(16, m, nr, tw, k)

    def run(i0, i1):
        p00, p01, p10, p11 = (par[rc][:, i0:i1] for rc in ((0, 0), (0, 1), (1, 0), (1, 1)))
        # Rows of A dY: (even column, odd column) pairs.
        q = ((p00, p01), (p00 + p10, p01 + p11), (p00 - p10, p01 - p11), (-p10, -p11))
        for a, (c0, c1) in enumerate(q):
            m5[4 * a + 0, :, i0:i1] = c0
            xp.add(c0, c1, out=m5[4 * a + 1, :, i0:i1])
            xp.subtract(c0, c1, out=m5[4 * a + 2, :, i0:i1])
            xp.negative(c1, out=m5[4 * a + 3, :, i0:i1])

    _split(xp, run, nr, mg.nbytes)


def _tiles(h, w, p):
    ho, wo = h + 2 * p - 2, w + 2 * p - 2
    th, tw = (ho + 1) // 2, (wo + 1) // 2
    return ho, wo, th, tw


def _chunks(n, th, tw):
    """(b0, b1, r0, r1): groups of whole images, or bands of tile rows of one large image, of about
    _TARGET_TILES tiles each (so that the transforms stay in cache)."""
    per_image = th * tw
    if per_image > 2 * _TARGET_TILES:
        rows = max(1, _TARGET_TILES // tw)
        return [(b, b + 1, r0, min(r0 + rows, th)) for b in range(n) for r0 in range(0, th, rows)]
    nb = max(1, min(n, -(-_TARGET_TILES // per_image)))
    return [(b0, min(b0 + nb, n), 0, th) for b0 in range(0, n, nb)]


# Largest input transform kept from the forward pass for the weight gradient.
KEEP_MAX_BYTES = 256 << 20


def transform_bytes(x_shape, p, itemsize):
    _, _, th, tw = _tiles(x_shape[2], x_shape[3], p)
    return 16 * x_shape[0] * x_shape[1] * th * tw * itemsize


def conv3x3_forward(x, w, p, keep=None, cache_weight=False, epilogue=None):
    """keep: a list that receives the input transform of every chunk (reused by the weight gradient).
    cache_weight: reuse the weight transform of an earlier call on the same, unchanged weight array
    (NumPy; for inference, where the weights stay fixed). epilogue (``conv._Epilogue``): the output
    array to write, and what to apply to each band of tile rows once written."""
    xp = get_array_module(x)
    n, c, h, wd = x.shape
    k = w.shape[0]
    ho, wo, th, tw = _tiles(h, wd, p)
    u = cached_weight_transform(w) if cache_weight and xp is np else _weight_transform(xp, w)
    y = xp.empty((n, k, ho, wo), dtype=x.dtype) if epilogue is None else epilogue.y
    chunks = _chunks(n, th, tw)
    nb = max(b1 - b0 for b0, b1, _, _ in chunks)
    bufs = _pad_buffers(xp, c, nb, th, tw, x.dtype)
    size = max((b1 - b0) * (r1 - r0) for b0, b1, r0, r1 in chunks) * tw
    v = xp.empty((16, size, c), dtype=x.dtype)
    for b0, b1, r0, r1 in chunks:
        t = (b1 - b0) * (r1 - r0) * tw
        if keep is not None:
            vm = xp.empty((16, t, c), dtype=x.dtype)
            keep.append(vm)
        else:
            vm = v if t == size else xp.empty((16, t, c), dtype=x.dtype)
        _input_transform(xp, x, b0, b1, r0, r1, p, tw, vm, bufs)
        mm = gemm.xp_matmul(xp, vm, u)  # (16, tiles, K)
        _output_transform(xp, mm, y, b0, b1, r0, r1, tw, ho, wo)
        if epilogue is not None:
            epilogue(b0, b1, 0, k, min(2 * r0, ho), min(2 * r1, ho))
    return y


def conv3x3_backward_input(gy, w, x_shape, p):
    """The input gradient of a stride-1 3x3 convolution is a 3x3 convolution of gy with the flipped,
    transposed kernel and padding 2 - p."""
    wf = w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
    xp = get_array_module(gy)
    return conv3x3_forward(gy, xp.ascontiguousarray(wf), 2 - p)


def conv3x3_backward_weight(x, gy, p, kept=None):
    """kept: the input transforms saved by conv3x3_forward(keep=...) for this x (skips recomputing)."""
    xp = get_array_module(x)
    n, c, h, wd = x.shape
    k = gy.shape[1]
    ho, wo, th, tw = _tiles(h, wd, p)
    chunks = _chunks(n, th, tw)
    nb = max(b1 - b0 for b0, b1, _, _ in chunks)
    size = max((b1 - b0) * (r1 - r0) for b0, b1, r0, r1 in chunks) * tw
    bufs = _pad_buffers(xp, c, nb, th, tw, x.dtype) if kept is None else None
    v = xp.empty((16, size, c), dtype=x.dtype) if kept is None else None
    mg = xp.empty((16, size, k), dtype=x.dtype)
    du = None
    for i, (b0, b1, r0, r1) in enumerate(chunks):
        t = (b1 - b0) * (r1 - r0) * tw
        mgm = mg if t == size else xp.empty((16, t, k), dtype=x.dtype)
        if kept is not None:
            vm = kept[i]
        else:
            vm = v if t == size else xp.empty((16, t, c), dtype=x.dtype)
            _input_transform(xp, x, b0, b1, r0, r1, p, tw, vm, bufs)
        _grad_output_transform(xp, gy, b0, b1, r0, r1, tw, mgm)
        part = gemm.xp_matmul(xp, mgm.transpose(0, 2, 1), vm)  # (16, K, C)
        if du is None:
            du = part
        else:
            du += part
    gg = xp.asarray(_GG.astype(x.dtype))
    return (du.reshape(16, k * c).T @ gg).reshape(k, c, 3, 3)
