"""2-D convolution kernels on arrays: im2col lowering onto BLAS matrix products.

Written against an array module ``xp`` (NumPy here; the same code runs on CuPy, where dedicated
kernels in ``framework.kernels.cuda.conv`` take precedence when present).

Shapes: ``x`` (N, C, H, W); ``w`` (K, C/groups, kh, kw); ``y`` (N, K, Ho, Wo) with
``Ho = (H + 2*ph - dh*(kh - 1) - 1) // sh + 1``. ``stride``, ``padding`` and ``dilation`` are pairs of
ints (padding symmetric; callers pad asymmetric cases first). No loop runs over pixels: the loops
below run over the kh*kw kernel taps and over chunks of images.

Strategy: images are processed a few at a time (enough columns for an efficient BLAS product, few
enough that the patch matrix stays in cache); a 1x1 stride-1 convolution is a plain product with
no copy; depthwise convolutions are sums of shifted images; 3x3 stride-1 convolutions with >= 32
channels in and out on >= 8x8 outputs use Winograd F(4x4, 3x3) (``winograd43.py``) for the forward and
both gradients: 1.0-2.1x faster than im2col in training, 1.3-2.8x in inference, at about ten times the
rounding error of F(2x2, 3x3) (``winograd.py``), which takes the layers under autograd instead when
FRAMEWORK_CONV_WINOGRAD43_TRAIN=0 (its rule, ``winograd.applicable``, was measured against im2col).
im2col copies each tap as one flat window per image and
channel over phase images of the padded input (``_cols_flat``, computing output rows as wide as the
phases and dropping the extra columns), and col2im, its adjoint, adds each tap the same way
(``_col2im_flat``); the copies run on two threads when large (NumPy releases the GIL while copying).
In training, the forward keeps its patch matrices (up to ``KEEP_MAX_BYTES``) for the weight
gradient, which then skips rebuilding them; otherwise an image whose patch matrix is large is lowered in
bands of output rows (``_cols_bands``), each band's patches still in cache for its product. The forward's
epilogue (bias, residual, activation: ``_Epilogue``) is applied to each piece of the output as it is
written.
Environment: FRAMEWORK_CONV_WINOGRAD=0 disables Winograd, FRAMEWORK_CONV_WINOGRAD43_TRAIN=0 keeps
F(4x4, 3x3) to inference, FRAMEWORK_CONV_FLAT=0 the flat windows
of im2col (row-by-row strided taps instead); FRAMEWORK_CONV_THREADS=1 disables the copy thread, and
FRAMEWORK_CONV_THREADS=N >= 2 with OPENBLAS_NUM_THREADS=1 (or ``framework.set_num_threads(N)`` at run time)
runs each layer over N groups of a batch's images in parallel, the forward (``_forward_batch_parallel``)
and in training both gradients, a large layer over one image in bands of output rows (``_forward_row_bands``;
in training too, each band keeping its own work and both gradients split the same way), and large products
in row blocks (``gemm.matmul``).
"""

from __future__ import annotations

import os
import threading

import numpy as np

from ...backend import get_array_module
from . import gemm, winograd, winograd43

_WINOGRAD = os.environ.get("FRAMEWORK_CONV_WINOGRAD", "1") != "0"
# F(4x4, 3x3) with autograd too (forward and both gradients); 0: F(2x2, 3x3) there, F(4x4) only for inference.
_WINOGRAD43_TRAIN = os.environ.get("FRAMEWORK_CONV_WINOGRAD43_TRAIN", "1") != "0"
_FLAT = os.environ.get("FRAMEWORK_CONV_FLAT", "1") != "0"

def _default_threads() -> int:
    """FRAMEWORK_CONV_THREADS, else the BLAS/OpenMP thread setting, else the number of CPUs."""
    for var in ("FRAMEWORK_CONV_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        v = os.environ.get(var, "")
        if v.isdigit() and int(v) > 0:
            return int(v)
    return os.cpu_count() or 1


_THREADS = _default_threads()

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


# Below this much copying, handing half to the other thread costs more than it saves (a thread
# wake-up can take milliseconds on a loaded machine).
_SPLIT_MIN_BYTES = 2 << 20
# Nor with fewer channels than this: the 3-channel stem (3 -> 16 at 320x320, stride 2) trained 2.1 ms a
# step with its copies whole against 2.8 ms split 1 + 2 channels (2 cores); the 64 -> 128 stride-2 layer
# at 80x80 gains from the split (6.3 against 6.7 ms).
_SPLIT_MIN_CHANNELS = 8


def _use_winograd(a, x_shape, w_shape, stride, padding, dilation, groups, kind=winograd):
    """Whether ``kind`` (``winograd``: F(2x2, 3x3); ``winograd43``: F(4x4, 3x3), about ten times the
    rounding error) takes this layer. float16 would lose too much in the transforms; CuPy arrays have
    their own kernels."""
    return (_WINOGRAD and a.dtype in (np.float32, np.float64) and isinstance(a, np.ndarray)
            and kind.applicable(x_shape, w_shape, stride, padding, dilation, groups))


def _winograd_kind(a, x_shape, w_shape, stride, padding, dilation, groups):
    """The Winograd module that computes this layer and both its gradients (the forward, the input
    gradient and the weight gradient must agree on one), or None for im2col."""
    geometry = (x_shape, w_shape, stride, padding, dilation, groups)
    if _WINOGRAD43_TRAIN and _use_winograd(a, *geometry, winograd43):
        return winograd43
    if _use_winograd(a, *geometry):
        return winograd
    return None


def _split_channels(xp, fn, c, work_bytes):
    """Run ``fn(c0, c1)`` over channel ranges, two halves in parallel when the work is large.

    The strided copies of im2col / col2im are single-threaded NumPy loops (they release the GIL)
    while the matrix products already use every core; splitting the copies keeps both cores busy.
    Inline inside a batch-parallel forward (:func:`_forward_batch_parallel`), whose parts already
    keep the cores busy.
    """
    if (xp is not np or c < _SPLIT_MIN_CHANNELS or work_bytes < _SPLIT_MIN_BYTES or _THREADS < 2
            or getattr(_TLS, "batch_part", False)):
        fn(0, c)
        return
    from ...utils.parallel import parallel_map

    half = c // 2
    parallel_map(lambda r: fn(*r), [(0, half), (half, c)], threads=2)


# Batch-parallel forwards (inference, and forwards that keep nothing for a backward): a layer of at least
# this many multiply-adds over >= 2 images is split into per-thread groups of images. Below it, handing
# work to a thread costs more than it saves (measured on the detector's flip-test pair at 640x480, 2 cores:
# 24.5 ms at 2M, 27.6 ms at 16M, 29.4 ms at 64M, 34.5 ms serial).
_PAR_MIN_MACS = 2_000_000


def _batch_parallel_default() -> bool:
    """On when FRAMEWORK_CONV_THREADS >= 2 is set and BLAS is held to one thread (OPENBLAS_NUM_THREADS or
    OMP_NUM_THREADS = 1): the configuration where it pays. With BLAS's own threads spinning on the same
    cores it gains nothing on 2 cores and would oversubscribe larger machines."""
    conv = os.environ.get("FRAMEWORK_CONV_THREADS", "")
    blas = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or ""
    return conv.isdigit() and int(conv) >= 2 and blas == "1"


_BATCH_PARALLEL = _batch_parallel_default()
_TLS = threading.local()  # batch_part: this thread runs one of several parallel calls (no fan-out)


def _fan_out_threads() -> int:
    """The threads a call here may split its work over: the framework's own when they are on
    (``_BATCH_PARALLEL``) and this call is not already one of several parallel calls, else 1."""
    if not _BATCH_PARALLEL or _THREADS < 2 or getattr(_TLS, "batch_part", False):
        return 1
    return _THREADS


def _image_parts(xp, n, macs):
    """The image ranges a call over ``n`` images is split into, one per framework thread, or None to
    run it whole: NumPy arrays, the framework's threads free to fan out (``_fan_out_threads``), at
    least two images and at least ``_PAR_MIN_MACS`` multiply-adds."""
    threads = _fan_out_threads()
    if threads < 2 or xp is not np or n < 2 or macs < _PAR_MIN_MACS:
        return None
    parts = min(threads, n)
    return [(i * n // parts, (i + 1) * n // parts) for i in range(parts)]


def _run_parts(fn, parts):
    """fn(part) for each part on the framework's threads (this one included), results in order."""
    from ...utils.parallel import parallel_map  # (the framework's thread pool; no fan-out inside)

    return parallel_map(fn, parts, threads=len(parts))


def _forward_batch_parallel(x, w, args, kwargs, y, residual, parts, keep):
    """conv2d_forward over groups of images (``parts``) on the framework's threads, each group written
    into its slice of ``y``. NumPy's copies and ufuncs and BLAS release the GIL, so the groups run in
    parallel; they share no scratch buffers (each call allocates its own). In training (``keep``, a
    dict) each group keeps its own patches or transforms, listed in keep["parts"] for
    conv2d_backward_weight, which splits the same way.

    The gain needs BLAS to stay out of the way: measured on 2 cores for the detector's flip-test pair
    at 640x480, 32.7 ms serially, 23.7 ms in two groups with ``OPENBLAS_NUM_THREADS=1``, and 32.9 ms
    in two groups with two BLAS threads each (their threads spin on the cores the groups need;
    limiting them at run time for each layer measured worse still, 37 ms)."""
    subs = None if keep is None else [{} for _ in parts]
    if keep is not None:
        keep["parts"] = [(b0, b1, sub) for (b0, b1), sub in zip(parts, subs)]

    def part(i):
        b0, b1 = parts[i]
        conv2d_forward(x[b0:b1], w, *args, **kwargs, keep=None if subs is None else subs[i],
                       residual=None if residual is None else residual[b0:b1], _out=y[b0:b1])

    _run_parts(part, range(len(parts)))
    return y


# A single image's layer of at least this many multiply-adds is split into bands of output rows, one per
# framework thread (_forward_row_bands), each of at least _BAND_MIN_ROWS rows. Measured on 2 cores with the
# detector on one frame (median ms, framework threads): at 640x480, 37.6 with 32-row bands against 42.1
# unsplit (34.8 with 16-row bands); at 320x240, 12.3 against 12.5 (13.9 with 16-row bands, where the
# thread hand-overs cost more than the halves save).
_ROWS_PAR_MIN_MACS = 8_000_000
_BAND_MIN_ROWS = 32
# In training (forward with kept work, both gradients) the bands pay from more work: measured on 2 cores,
# forward + both gradients of one image, 64 -> 64 channels at 80x80 (236M multiply-adds): 7.0-7.3 ms in
# bands against 8.8-9.0 whole (PyTorch 7.4-7.9); the 3 -> 16 stem at 320x320, stride 2 (11M): 3.0-3.9
# against 2.8-4.4, no gain. 16-row bands of a 40-row stride-2 layer (118M) gained nothing either.
_ROWS_TRAIN_MIN_MACS = 32_000_000


def _row_bands(xp, n, ho, macs, training=False):
    """Output-row ranges [r0, r1) splitting a one-image convolution over the framework's threads, or
    None. ``training``: the forward that keeps work for a backward, or a backward."""
    threads = _fan_out_threads()
    if (threads < 2 or xp is not np or n != 1
            or macs < (_ROWS_TRAIN_MIN_MACS if training else _ROWS_PAR_MIN_MACS)):
        return None
    parts = min(threads, ho // _BAND_MIN_ROWS)
    if parts < 2:
        return None
    return [(i * ho // parts, (i + 1) * ho // parts) for i in range(parts)]


def _band_rows(bands, h, kh, sh, ph, dh):
    """For bands of output rows [(r0, r1)], the input rows each band's convolution reads: [(r0, r1, lo, hi,
    t0)], the band being rows t0 : t0 + r1 - r0 of the ordinary convolution (the layer's own symmetric
    padding) of input rows lo:hi. Where a band starts or ends inside the image, that convolution's padding
    stands for real rows: it also reads the rows above (lo a multiple of the stride, enough that the outputs
    touching that padding lie above r0) and computes a few extra output rows, which are not the layer's."""
    skip = -(-ph // sh)  # band output rows that touch the band's top padding
    out = []
    for r0, r1 in bands:
        lo = max(0, (r0 - skip) * sh)  # (a multiple of the stride: the band's outputs align with y's)
        hi = min(h, (r1 - 1) * sh - ph + dh * (kh - 1) + 1)
        out.append((r0, r1, lo, hi, r0 - lo // sh))
    return out


def _forward_row_bands(x, w, args, kwargs, y, bands, keep=None):
    """conv2d_forward of one image in bands of output rows on the framework's threads.

    Each band is an ordinary convolution of the input rows its outputs read (:func:`_band_rows`), so every
    kernel path (Winograd included) applies unchanged; its own rows are copied into y and the extra ones
    dropped. In training (``keep``, a dict) each band keeps its own work, listed in keep["bands"] for
    conv2d_backward_weight, which splits the same way."""
    stride, padding, dilation, _ = args
    rows = _band_rows(bands, x.shape[2], w.shape[2], stride[0], padding[0], dilation[0])
    subs = [None if keep is None else {} for _ in rows]
    if keep is not None:
        keep["bands"] = [band + (sub,) for band, sub in zip(rows, subs)]

    def band(i):
        r0, r1, lo, hi, t0 = rows[i]
        out = conv2d_forward(np.ascontiguousarray(x[:, :, lo:hi]), w, *args, **kwargs, keep=subs[i])
        y[:, :, r0:r1] = out[:, :, t0:t0 + r1 - r0]

    _run_parts(band, range(len(rows)))
    return y


def _band_gradient(xp, gy, band, kh, sh, ph, dh):
    """The output gradient of a band's own convolution (:func:`_band_rows`): the layer's rows r0:r1 at
    t0, zero on the extra rows (which are not the layer's outputs)."""
    r0, r1, lo, hi, t0 = band[:5]
    n, k, _, wo = gy.shape
    gys = xp.zeros((n, k, conv_out_size(hi - lo, kh, sh, ph, dh), wo), dtype=gy.dtype)
    gys[:, :, t0:t0 + r1 - r0] = gy[:, :, r0:r1]
    return gys


def _taps(xp, col, src, kh, kw, stride, dilation, ho, wo):
    """Fill ``col`` (C, kh, kw, B, Ho, Wo) from padded images ``src`` (C, B, Hp, Wp)."""
    sh, sw = stride
    dh, dw = dilation

    def run(c0, c1):
        for i in range(kh):
            for j in range(kw):
                col[c0:c1, i, j] = src[c0:c1, :, i * dh:i * dh + sh * (ho - 1) + 1:sh,
                                       j * dw:j * dw + sw * (wo - 1) + 1:sw]

    _split_channels(xp, run, col.shape[0], col.nbytes)


# Columns per matrix product: enough for BLAS to run at full speed, small enough to stay in cache.
_TARGET_COLS = 4096
# Largest patch matrix a forward keeps for the weight gradient (larger ones are rebuilt there).
# Under glibc's largest mmap threshold (32 MiB): bigger blocks are mapped fresh on every call and the
# kernel zeroes their pages, which cost more than rebuilding the patches (measured 30 ms against 25 ms
# for a training step of the 8 x 32 -> 64, 64x64 benchmark layer with a 38 MB patch matrix).
KEEP_MAX_BYTES = 30 << 20
# Patch matrices with fewer rows than this (a 3-channel stem: 27) are "few-row": cheaper to rebuild in
# cache than to keep and read back from memory (measured on one core: no gain at 27 rows, 1.4-1.5x at
# 144-576), and their thin products run faster in pieces (_few_rows_forward / _few_rows_product).
_FEW_ROWS = 64
# ... in the forward only while the product's output rows (channels) are few too: from 24 output channels
# one product is faster (measured on one core: 48 rows x 19200 columns, 0.26 ms against 0.29 split into
# pieces at 24 output channels, 0.36 against 0.38 at 48; 0.09 against 0.2 at 10).
_FEW_OUT = 16
_MAX_CHUNK_BYTES = 32 << 20


def _chunk(n, c_rows, cols_per_image, itemsize, pointwise=False):
    if pointwise and cols_per_image >= 256:
        return 1  # each image is already a matrix: no transposing copies (measured faster)
    nb = max(1, -(-_TARGET_COLS // max(cols_per_image, 1)))
    nb = min(nb, max(1, _MAX_CHUNK_BYTES // max(c_rows * cols_per_image * itemsize, 1)))
    return min(nb, n)


def _is_pointwise(kh, kw, stride, padding):
    return kh == kw == 1 and stride == (1, 1) and padding == (0, 0)


def _flat_layout(kh, kw, stride, padding, dilation, ho, wo):
    """(flat, cols): whether _cols builds its patches by flat windows (_cols_flat), and the columns
    per output row of its patch matrices: Wo, or with flat windows the width of the input's phases,
    Wo + (kw - 1) * dw // sw, the extra columns being garbage.

    Flat windows pay when the taps overlap (the kernel reaches past the stride) and the extra columns
    are at most 1/16 of a row. Measured on one core, forward plus weight gradient from kept patches:
    1.2x faster for the stride-2 3x3 layer on 32 output columns, 1.06x on 16, 1.15x SLOWER on 8; a
    non-overlapping 4x4 stride-4 patchify is slower too (the phases add a copy where the direct taps
    need no padded copy). Also required: Ho >= dh and Wo >= dw, so that the windows of a phase's
    taps touch and the garbage columns (which run on into the next row) read only pixels that real
    outputs read; a dilation wider than the output leaves unread rows between the windows.
    """
    if _is_pointwise(kh, kw, stride, padding) or not _FLAT:
        return False, wo
    extra = (kw - 1) * dilation[1] // stride[1]
    overlap = (kh - 1) * dilation[0] >= stride[0] or (kw - 1) * dilation[1] >= stride[1]
    if overlap and 16 * extra <= wo and ho >= dilation[0] and wo >= dilation[1]:
        return True, wo + extra
    return False, wo


def _cols(xp, x, kh, kw, stride, padding, dilation, ho, wo, fresh=False):
    """Yield (b0, b1, col) over chunks of images, col (C*kh*kw, (b1-b0)*Ho*cols) in a reused buffer,
    cols = _flat_layout(...)[1] columns per output row.

    Working on a few images at a time keeps the patch matrix in cache for the product that follows
    and avoids allocating (and page-faulting) a batch-sized patch matrix. ``fresh``: every chunk gets
    its own slice of one batch-sized buffer instead, so the caller may keep them all.
    """
    n, c, h, w = x.shape
    ph, pw = padding
    L = ho * wo
    flat, cols = _flat_layout(kh, kw, stride, padding, dilation, ho, wo)
    nb = _chunk(n, c * kh * kw, ho * cols, x.dtype.itemsize, _is_pointwise(kh, kw, stride, padding))
    if _is_pointwise(kh, kw, stride, padding):
        for b0 in range(0, n, nb):
            b1 = min(b0 + nb, n)
            if b1 - b0 == 1:
                yield b0, b1, x[b0].reshape(c, L)
            else:
                yield b0, b1, xp.ascontiguousarray(x[b0:b1].transpose(1, 0, 2, 3)).reshape(c, -1)
        return
    if flat:
        yield from _cols_flat(xp, x, kh, kw, stride, padding, dilation, ho, wo, cols, nb, fresh)
        return
    xpad = xp.zeros((c, nb, h + 2 * ph, w + 2 * pw), dtype=x.dtype) if (ph or pw) else None
    buffer = _col_buffers(xp, x, kh, kw, nb, ho, wo, fresh)
    for b0 in range(0, n, nb):
        b1 = min(b0 + nb, n)
        m = b1 - b0
        col = buffer(b0).reshape(c, kh, kw, nb, ho, wo)
        if xpad is not None:
            xpad[:, :m, ph:ph + h, pw:pw + w] = x[b0:b1].transpose(1, 0, 2, 3)
            src = xpad[:, :m]
        else:
            src = x[b0:b1].transpose(1, 0, 2, 3)
        cm = col[:, :, :, :m] if m < nb else col
        _taps(xp, cm, src, kh, kw, stride, dilation, ho, wo)
        yield b0, b1, cm.reshape(c * kh * kw, m * L)


def _col_buffers(xp, x, kh, kw, nb, ho, cols, fresh):
    """b0 -> the (C, kh, kw, nb, Ho*cols) patch buffer of the chunk starting at image b0: one buffer
    reused by every chunk, or (``fresh``) a slice of one batch-sized buffer per chunk, to be kept."""
    shape = (x.shape[1], kh, kw, nb, ho * cols)
    if fresh:
        full = xp.empty((-(-x.shape[0] // nb),) + shape, dtype=x.dtype)
        return lambda b0: full[b0 // nb]
    col = xp.empty(shape, dtype=x.dtype)
    return lambda b0: col


def _cols_flat(xp, x, kh, kw, stride, padding, dilation, ho, wo, cols, nb, fresh):
    """_cols by flat windows over phase images: the adjoint of _col2im_flat.

    Tap (i, j) reads padded input row sh*r + i*dh, column sw*q + j*dw: phase (i*dh % sh, j*dw % sw)
    of the padded image, shifted by (i*dh // sh, j*dw // sw). Each chunk of images is split once into
    its phases (for stride 1: the padded image itself), written straight from x, which also does the
    padding. With output rows computed ``cols`` wide (the phases' width), every tap is then ONE
    unit-stride copy of a flat window of Ho*cols values per image and channel, instead of Ho short
    row copies (strided ones at stride 2). The cols - Wo extra columns of each row read neighbouring
    values: garbage outputs that the callers drop (forward) or multiply by zero (weight gradient).
    Measured on one core: 1.1-1.3x faster forwards of stride-2 3x3 layers, 1.2x of stride-1 layers
    that Winograd does not take.
    """
    n, c, h, w = x.shape
    sh, sw = stride
    dh, dw = dilation
    rows = ho + (kh - 1) * dh // sh
    extra = (kw - 1) * dw // sw  # the last window of an image runs this far past rows*cols
    plan, _ = _phase_plan((kh, kw), stride, padding, dilation, (h, w), (ho, wo))
    slot = {pq: t for t, (pq, *_) in enumerate(plan)}
    # rows/columns outside the image stay zero (the padding); stale images past a partial last chunk
    # are never read
    phases = xp.zeros((len(plan), c, nb, rows * cols + extra), dtype=x.dtype)
    buffer = _col_buffers(xp, x, kh, kw, nb, ho, cols, fresh)
    for b0 in range(0, n, nb):
        b1 = min(b0 + nb, n)
        m = b1 - b0
        _fill_phases(x, b0, b1, plan, phases, rows, cols, stride)
        cm = buffer(b0)
        cm = cm[:, :, :, :m] if m < nb else cm

        def run(c0, c1, cm=cm, m=m):
            for i in range(kh):
                for j in range(kw):
                    off = (i * dh // sh) * cols + j * dw // sw
                    cm[c0:c1, i, j] = phases[slot[i * dh % sh, j * dw % sw], c0:c1, :m, off:off + ho * cols]

        _split_channels(xp, run, c, cm.nbytes)
        yield b0, b1, cm.reshape(c * kh * kw, m * ho * cols)


def _fill_phases(x, b0, b1, plan, phases, rows, cols, stride):
    """Write images b0..b1 of x into their phase images phases[:, :, :b1-b0] (padding left as is)."""
    c = x.shape[1]
    m = b1 - b0
    sh, sw = stride
    src = x[b0:b1].transpose(1, 0, 2, 3)
    for t, (_, r0, y0, nr, q0, x0, nc) in enumerate(plan):
        if nr > 0 and nc > 0:
            grid = phases[t, :, :m, :rows * cols].reshape(c, m, rows, cols)
            grid[:, :, r0:r0 + nr, q0:q0 + nc] = src[:, :, y0:y0 + sh * (nr - 1) + 1:sh,
                                                     x0:x0 + sw * (nc - 1) + 1:sw]


# Forward without kept patches: an image whose patch matrix is larger than this is lowered in bands of
# output rows of about _BAND_COLS columns, so that the band's patches stay in cache for the product
# (measured on one core: 1.15x faster on 24 -> 36 channels at 120x160, 1.8x at 240x320).
_BAND_MIN_BYTES = 2 << 20
_BAND_COLS = 2048


def _cols_bands(xp, x, kh, kw, stride, padding, dilation, ho, wo, cols, band):
    """Yield (b, r0, r1, col): the flat-window patches (_cols_flat) of output rows r0..r1 of image b,
    col (C*kh*kw, (r1-r0)*cols) in a reused buffer. The image is split into its phases once; each
    band's taps are windows of them, offset by r0*cols."""
    n, c, h, w = x.shape
    sh, sw = stride
    dh, dw = dilation
    rows = ho + (kh - 1) * dh // sh
    extra = (kw - 1) * dw // sw
    plan, _ = _phase_plan((kh, kw), stride, padding, dilation, (h, w), (ho, wo))
    slot = {pq: t for t, (pq, *_) in enumerate(plan)}
    phases = xp.zeros((len(plan), c, 1, rows * cols + extra), dtype=x.dtype)
    buf = xp.empty((c, kh, kw, band * cols), dtype=x.dtype)
    for b in range(n):
        _fill_phases(x, b, b + 1, plan, phases, rows, cols, stride)
        for r0 in range(0, ho, band):
            r1 = min(ho, r0 + band)
            span = (r1 - r0) * cols
            cm = buf[..., :span]
            for i in range(kh):
                for j in range(kw):
                    off = (i * dh // sh) * cols + j * dw // sw + r0 * cols
                    cm[:, i, j] = phases[slot[i * dh % sh, j * dw % sw], :, 0, off:off + span]
            yield b, r0, r1, cm.reshape(c * kh * kw, span)


_ACTIVATIONS = (None, "relu", "silu")
_EPI_CHUNK_FLOATS = 64 * 1024  # values per epilogue step (256 KB in float32: in L2 between its passes;
# measured on one core, 1.4-1.7x faster than 32 K values, where per-call overheads dominate)
_epi_zeros: dict = {}


class _Epilogue:
    """``dst = act(src + bias + residual)`` over regions of the output as the kernels write them, so
    the bias, the residual and the activation are applied while the region is still in cache, in
    one pass per chunk of channels, instead of as separate passes over the whole output afterwards.

    bias (K,), residual (N, K, Ho, Wo), activation None / "relu" / "silu": the arithmetic, and its
    order, of ``act(conv2d(x, w, bias) + residual)`` done op by op, so results match bit for bit.
    """

    def __init__(self, xp, y, bias, activation, residual):
        if activation not in _ACTIVATIONS:
            raise ValueError(f"conv2d: unknown activation {activation!r} (expected one of {_ACTIVATIONS})")
        if bias is not None and tuple(bias.shape) != (y.shape[1],):
            raise ValueError(f"conv2d: bias of shape {tuple(bias.shape)} for {y.shape[1]} output channels")
        if residual is not None and tuple(residual.shape) != tuple(y.shape):
            raise ValueError(f"conv2d: residual of shape {tuple(residual.shape)}, the output's is "
                             f"{tuple(y.shape)}")
        self.xp, self.y, self.act = xp, y, activation
        self.bias = None if bias is None else bias.astype(y.dtype, copy=False).reshape(-1, 1, 1)
        self.residual = residual
        self.active = bias is not None or activation is not None or residual is not None

    def __call__(self, b0, b1, k0, k1, r0, r1, src=None):
        """Finish y[b0:b1, k0:k1, r0:r1] (rows r0..r1, every column), from ``src`` of that region's
        shape when given (else in place)."""
        y = self.y
        if not self.active:
            if src is not None:
                y[b0:b1, k0:k1, r0:r1] = src
            return
        per_k = (b1 - b0) * (r1 - r0) * y.shape[3]
        step = max(1, _EPI_CHUNK_FLOATS // max(per_k, 1))
        for c0 in range(k0, k1, step):
            c1 = min(k1, c0 + step)
            d = y[b0:b1, c0:c1, r0:r1]
            s = d if src is None else src[:, c0 - k0:c1 - k0]
            if self.bias is not None:
                self.xp.add(s, self.bias[c0:c1], out=d)
            elif s is not d:
                d[...] = s
            if self.residual is not None:
                d += self.residual[b0:b1, c0:c1, r0:r1]
            if self.act == "relu":
                self._relu(d)
            elif self.act == "silu":
                self._silu(d)

    def all(self):
        """Finish the whole output (paths that write it in pieces without regard to cache)."""
        if self.active:
            self(0, self.y.shape[0], 0, self.y.shape[1], 0, self.y.shape[2])
        return self.y

    def _relu(self, d):
        xp = self.xp
        if xp is not np:
            xp.maximum(d, 0, out=d)
            return
        # NumPy's maximum against a scalar runs a slow loop: compare with an array of zeros instead
        zb = _epi_zeros.get(d.dtype)
        if zb is None or zb.size < d.size:
            zb = _epi_zeros[d.dtype] = np.zeros(max(d.size, _EPI_CHUNK_FLOATS), dtype=d.dtype)
        np.maximum(d, zb[:d.size].reshape(d.shape), out=d)

    def _silu(self, d):
        xp = self.xp
        t = xp.negative(d)
        with np.errstate(over="ignore"):  # exp(-x) = inf for very negative x: x / inf = -0, as SiLU's
            xp.exp(t, out=t)
        t += 1
        xp.divide(d, t, out=d)


def conv2d_forward(x, w, stride, padding, dilation, groups, keep=None, cache_weight=False, *, bias=None,
                   activation=None, residual=None, _out=None):
    """y[n, k] = act(sum_c,i,j w[k, c, i, j] * x[n, g(k)*Cg + c, ho*sh + i*dh - ph, wo*sw + j*dw - pw]
    + bias[k] + residual[n, k]).

    cache_weight: the weight is expected to be used again unchanged (inference), so a transformed
    copy of it may be kept for the next call (``winograd.cached_weight_transform``).
    bias (K,), residual (N, K, Ho, Wo), activation (None, "relu", "silu"): the epilogue, applied to
    each piece of the output as it is written (see :class:`_Epilogue`).
    A large layer over several images runs groups of them on the framework's threads when they are on
    (:func:`_image_parts`, :func:`_forward_batch_parallel`); with ``keep``, each group keeps its own work
    for the weight gradient. A large layer over one image runs in bands of output rows instead
    (:func:`_row_bands`, without ``keep`` or ``residual``). ``_out``: the output array to write."""
    xp = get_array_module(x)
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    ho = conv_out_size(h, kh, stride[0], padding[0], dilation[0])
    wo = conv_out_size(wd, kw, stride[1], padding[1], dilation[1])
    g = groups
    kg = k // g
    y = xp.empty((n, k, ho, wo), dtype=x.dtype) if _out is None else _out
    macs = n * k * ho * wo * cg * kh * kw
    parts = _image_parts(xp, n, macs)
    if parts:
        return _forward_batch_parallel(x, w, (stride, padding, dilation, groups),
                                       dict(cache_weight=cache_weight, bias=bias, activation=activation), y,
                                       residual, parts, keep)
    bands = _row_bands(xp, n, ho, macs, training=keep is not None) if residual is None else None
    if bands:
        return _forward_row_bands(x, w, (stride, padding, dilation, groups),
                                  dict(cache_weight=cache_weight, bias=bias, activation=activation), y, bands,
                                  keep)
    epi = _Epilogue(xp, y, bias, activation, residual)
    if g > 1 and cg == 1 and kg == 1:
        return _depthwise_forward(xp, x, w, stride, padding, dilation, epi)
    if cache_weight and _use_winograd(x, x.shape, w.shape, stride, padding, dilation, groups, winograd43):
        return winograd43.conv3x3_forward(x, w, padding[0], winograd.cached_weight_transform(w, "f43"), epi)
    kind = _winograd_kind(x, x.shape, w.shape, stride, padding, dilation, groups)
    # ``keep`` (a dict, CPU only): holds the input transform for conv2d_backward_weight(kept=...).
    if kind is winograd43:
        kp = None
        if keep is not None and winograd43.transform_bytes(x.shape, padding[0], x.dtype.itemsize) <= (
                winograd.KEEP_MAX_BYTES):
            kp = keep["winograd43"] = []
        return winograd43.conv3x3_forward(x, w, padding[0], epilogue=epi, keep=kp)
    if kind is winograd:
        if keep is not None and winograd.transform_bytes(x.shape, padding[0], x.dtype.itemsize) <= (
                winograd.KEEP_MAX_BYTES):
            keep["winograd"] = []
            return winograd.conv3x3_forward(x, w, padding[0], keep["winograd"], epilogue=epi)
        return winograd.conv3x3_forward(x, w, padding[0], cache_weight=cache_weight, epilogue=epi)
    flat, cols = _flat_layout(kh, kw, stride, padding, dilation, ho, wo)
    lc = ho * cols  # patch columns per image
    w3 = w.reshape(g, kg, cg * kh * kw)
    few = g == 1 and xp is np and cg * kh * kw < _FEW_ROWS and k <= _FEW_OUT
    if flat and keep is None and xp is np and c * kh * kw * lc * x.dtype.itemsize > _BAND_MIN_BYTES:
        band = max(1, _BAND_COLS // cols)
        for b, r0, r1, col in _cols_bands(xp, x, kh, kw, stride, padding, dilation, ho, wo, cols, band):
            span = (r1 - r0) * cols
            if few:
                yt = np.empty((k, span), dtype=x.dtype)
                _few_rows_forward(w3[0], col, yt)
            else:
                yt = gemm.xp_matmul(xp, w3, col.reshape(g, cg * kh * kw, span))
            epi(b, b + 1, 0, k, r0, r1, src=yt.reshape(1, k, r1 - r0, cols)[:, :, :, :wo])
        return y
    # ``keep`` (a dict, CPU only): holds the patch matrices for conv2d_backward_weight(kept=...), which
    # then skips its own im2col pass (the same copies again) at the cost of the memory they hold.
    kept = None
    if (keep is not None and xp is np and cg * kh * kw >= _FEW_ROWS
            and c * kh * kw * n * lc * x.dtype.itemsize <= KEEP_MAX_BYTES):
        kept = keep["im2col"] = []
    for b0, b1, col in _cols(xp, x, kh, kw, stride, padding, dilation, ho, wo, fresh=kept is not None):
        m = b1 - b0
        if kept is not None:
            kept.append((b0, b1, col))
        colg = col.reshape(g, cg * kh * kw, m * lc)
        if m == 1 and cols == wo:  # straight into y
            if few:
                _few_rows_forward(w3[0], colg[0], y[b0].reshape(k, lc))
            else:
                gemm.xp_matmul(xp, w3, colg, out=y[b0].reshape(g, kg, lc))
            epi(b0, b1, 0, k, 0, ho)
            continue
        if few:
            yt = np.empty((k, m * lc), dtype=x.dtype)
            _few_rows_forward(w3[0], colg[0], yt)
        else:
            yt = gemm.xp_matmul(xp, w3, colg)  # (G, Kg, m*Ho*cols)
        epi(b0, b1, 0, k, 0, ho, src=yt.reshape(k, m, ho, cols)[:, :, :, :wo].transpose(1, 0, 2, 3))
    return y


def _depthwise_forward(xp, x, w, stride, padding, dilation, epi):
    # One input and one output channel per group: a sum of kh*kw scaled shifted images.
    n, c = x.shape[:2]
    kh, kw = w.shape[2:]
    sh, sw = stride
    dh, dw = dilation
    ho, wo = epi.y.shape[2:]
    if stride == (1, 1):
        return _depthwise_forward_flat(xp, x, w, padding, dilation, epi)
    xpad = _pad(xp, x, *padding)
    y = epi.y
    y.fill(0)
    for i in range(kh):
        for j in range(kw):
            sl = xpad[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]
            y += sl * w[:, 0, i, j].reshape(1, c, 1, 1)
    return epi.all()


_DW_CHUNK_FLOATS = 64 * 1024  # output values per chunk: its (planes, taps, Ho*Wp) patches stay near L2


def _dw_patches(xp, x, kh, kw, padding, dilation, ho):
    """Stride-1 depthwise patches: yield (p0, p1, col) over chunks of the (image, channel) planes,
    col (planes, kh*kw, Ho*Wp) in a reused buffer, row t = i*kw + j the plane's tap (i, j).

    Output pixel (r, q) sits at flat position r*Wp + q of the padded width Wp (the last Wp - Wo
    columns of each row are garbage: dropped from outputs, met by zeros of the output gradient), so
    the tap (i, j) is the contiguous slice xflat[i*dh*Wp + j*dw:][:Ho*Wp] of the flattened padded
    plane: one long unit-stride copy per plane and tap. When Ho >= dh and Wo >= dw the windows of
    neighbouring taps touch, so every padded pixel is read by some real output and the garbage
    columns read nothing the real ones do not.
    """
    n, c, h, wd = x.shape
    ph, pw = padding
    dh, dw = dilation
    hp, wp = h + 2 * ph, wd + 2 * pw
    nc = n * c
    flat = xp.zeros((nc, hp * wp + (kw - 1) * dw), dtype=x.dtype)
    flat[:, :hp * wp].reshape(nc, hp, wp)[:, ph:ph + h, pw:pw + wd] = x.reshape(nc, h, wd)
    L = ho * wp
    step = max(1, _DW_CHUNK_FLOATS // L) if xp is np else nc  # (one pass over everything on a GPU)
    col = xp.empty((min(step, nc), kh * kw, L), dtype=x.dtype)
    for p0 in range(0, nc, step):
        p1 = min(nc, p0 + step)
        for t in range(kh * kw):
            i, j = divmod(t, kw)
            off = i * dh * wp + j * dw
            col[:p1 - p0, t] = flat[p0:p1, off:off + L]
        yield p0, p1, col[:p1 - p0]


def _depthwise_forward_flat(xp, x, w, padding, dilation, epi):
    """Stride 1, by _dw_patches: a few planes at a time, the kh*kw shifted copies are weighted in one
    batched matrix product, (planes, 1, kh*kw) @ (planes, kh*kw, Ho*Wp): plain copies plus one BLAS
    pass instead of a multiply and an add per tap (measured 1.35-1.4x faster on one core at
    48x120x120 and 8x32x64x64). Each chunk of planes gets its epilogue as it is written."""
    n, c = x.shape[:2]
    kh, kw = w.shape[2:]
    ho, wo = epi.y.shape[2:]
    wp = x.shape[3] + 2 * padding[1]
    wc = w.reshape(c, 1, kh * kw)
    if n > 1:
        wc = xp.tile(wc, (n, 1, 1))
    out = None
    for p0, p1, col in _dw_patches(xp, x, kh, kw, padding, dilation, ho):
        m = p1 - p0
        if out is None:
            out = xp.empty((m, 1, ho * wp), dtype=x.dtype)
        xp.matmul(wc[p0:p1], col, out=out[:m])
        planes = out[:m].reshape(m, ho, wp)[:, :, :wo]
        for b in range(p0 // c, (p1 - 1) // c + 1):  # the chunk's planes, image by image
            q0, q1 = max(p0, b * c), min(p1, (b + 1) * c)
            epi(b, b + 1, q0 - b * c, q1 - b * c, 0, ho, src=planes[None, q0 - p0:q1 - p0])
    return epi.y


def _col2im_flat(xp, gxm, gcol, kernel, stride, padding, dilation, rows, cols):
    """Adjoint of im2col, into gxm (m, C, H, W): gcol (C, kh, kw, m, Ho*cols) holds each output row
    padded to ``cols`` >= Wo columns, the extra ones zero.

    Tap (i, j) reads padded input row sh*r + i*dh, column sw*q + j*dw: it lands in the phase
    (i*dh % sh, j*dw % sw) of the padded image at offset (i*dh // sh, j*dw // sw). Each phase is a
    dense (rows, cols) buffer, and with output rows padded to the phase's width, every tap is ONE
    unit-stride add over a flat window of Ho*cols values per image (the zero columns spill into
    harmless places), instead of Ho short row-by-row adds. Each phase is then written once into gxm,
    strided and cropped to the unpadded image (measured 1.2-1.5x faster backward-data than
    row-by-row adds on one core, most on small images).
    """
    c, kh, kw, m = gcol.shape[:4]
    (sh, sw), (dh, dw) = stride, dilation
    ho = gcol.shape[4] // cols
    extra = (kw - 1) * dw // sw  # the last window of an image runs this far past rows*cols
    plan, _ = _phase_plan(kernel, stride, padding, dilation, gxm.shape[2:], (ho, cols - extra))
    slot = {pq: t for t, (pq, *_) in enumerate(plan)}

    def run(c0, c1):
        buf = xp.zeros((len(plan), c1 - c0, m, rows * cols + extra), dtype=gcol.dtype)
        for i in range(kh):
            for j in range(kw):
                off = (i * dh // sh) * cols + j * dw // sw
                buf[slot[i * dh % sh, j * dw % sw], :, :, off:off + ho * cols] += gcol[c0:c1, i, j]
        for t, (_, r0, y0, nr, q0, x0, nc) in enumerate(plan):
            if nr <= 0 or nc <= 0:
                continue
            src = buf[t, :, :, :rows * cols].reshape(c1 - c0, m, rows, cols)[:, :, r0:r0 + nr, q0:q0 + nc]
            dst = gxm[:, c0:c1, y0:y0 + sh * (nr - 1) + 1:sh, x0:x0 + sw * (nc - 1) + 1:sw]
            dst[...] = src.transpose(1, 0, 2, 3)

    _split_channels(xp, run, c, gcol.nbytes)


def _phase_plan(kernel, stride, padding, dilation, hw, out_hw):
    """Where the taps read the input, phase by phase: [((pi, pj), r0, y0, nr, q0, x0, nc)], phase
    (pi, pj) holding padded pixel (sh*a + pi, sw*q + pj) at (a, q); its rows r0:r0+nr are image rows
    y0::sh (the same for columns). Exactly the image pixels that some tap of some output reads, so
    that pixels no output reads stay zero in the phases (and cannot reach a gradient through the
    garbage columns of _cols_flat); plus whether they cover every pixel of the image (else col2im
    leaves the rest of the input gradient zero)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation

    def span(k, d, s, p, n_out, n_in, phase):
        shifts = [i * d // s for i in range(k) if i * d % s == phase]
        lo = max(min(shifts), -(-(p - phase) // s))  # the first phase index read and inside the image
        hi = min(max(shifts) + n_out - 1, (n_in - 1 + p - phase) // s)
        return lo, s * lo + phase - p, max(0, hi - lo + 1)

    phases = sorted({(i * dh % sh, j * dw % sw) for i in range(kh) for j in range(kw)})
    (ho, wo), (h, w) = out_hw, hw
    plan = [((pi, pj),) + span(kh, dh, sh, ph, ho, h, pi) + span(kw, dw, sw, pw, wo, w, pj)
            for pi, pj in phases]
    return plan, sum(nr * nc for _, _, _, nr, _, _, nc in plan) == h * w


def _gy_rows(xp, gy, cols):
    """(b0, b1) -> gy[b0:b1] as a (K, m*Ho*cols) matrix, each output row padded with zero columns to
    ``cols`` >= Wo (the layout of _cols' patch matrices and _col2im_flat's input). A view for one
    unpadded image; otherwise a copy into one buffer, zeroed once and reused by every chunk (the
    first chunk is the largest), so the returned matrix is only valid until the next call."""
    k, ho, wo = gy.shape[1:]
    buf = []

    def chunk(b0, b1):
        m = b1 - b0
        if m == 1 and cols == wo:
            return gy[b0].reshape(k, -1)
        if not buf:
            buf.append(xp.zeros((k, m, ho, cols), dtype=gy.dtype))
        dst = buf[0][:, :m]
        dst[:, :, :, :wo] = gy[b0:b1].transpose(1, 0, 2, 3)
        return dst.reshape(k, -1)

    return chunk


def conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """Gradient of conv2d_forward with respect to x (the adjoint: a transposed convolution)."""
    xp = get_array_module(gy)
    n, k, ho, wo = gy.shape
    _, cg, kh, kw = w.shape
    c, h, wd = x_shape[1:]
    parts = _image_parts(xp, n, n * k * ho * wo * cg * kh * kw)
    if parts:  # groups of images on the framework's threads, each writing its slice
        gx = xp.empty(tuple(x_shape), dtype=gy.dtype)

        def part(bounds):
            b0, b1 = bounds
            gx[b0:b1] = conv2d_backward_input(gy[b0:b1], w, (b1 - b0, c, h, wd), stride, padding, dilation,
                                              groups)

        _run_parts(part, parts)
        return gx
    bands = _row_bands(xp, n, ho, n * k * ho * wo * cg * kh * kw, training=True)
    if bands:  # one image in bands of output rows (as its forward), the overlapping input rows summed
        rows = _band_rows(bands, h, kh, stride[0], padding[0], dilation[0])
        pieces = _run_parts(lambda b: conv2d_backward_input(
            _band_gradient(xp, gy, b, kh, stride[0], padding[0], dilation[0]), w, (n, c, b[3] - b[2], wd),
            stride, padding, dilation, groups), rows)
        gx = xp.zeros(tuple(x_shape), dtype=gy.dtype)
        for (_, _, lo, hi, _), piece in zip(rows, pieces):
            gx[:, :, lo:hi] += piece
        return gx
    g = groups
    kg = k // g
    ph, pw = padding
    if g > 1 and cg == 1 and kg == 1:
        return _depthwise_backward_input(xp, gy, w, x_shape, stride, padding, dilation)
    kind = _winograd_kind(gy, x_shape, w.shape, stride, padding, dilation, groups)
    if kind is not None:
        return kind.conv3x3_backward_input(gy, w, x_shape, padding[0])
    pointwise = _is_pointwise(kh, kw, stride, padding)
    wt = w.reshape(g, kg, cg * kh * kw).transpose(0, 2, 1)  # (G, Cg*kk, Kg)
    if pointwise:
        L = ho * wo
        gx = xp.empty(x_shape, dtype=gy.dtype)
        nb = _chunk(n, c, L, gy.dtype.itemsize, True)
        gy_rows = _gy_rows(xp, gy, wo)
        for b0 in range(0, n, nb):
            b1 = min(b0 + nb, n)
            m = b1 - b0
            gyt = gy_rows(b0, b1).reshape(g, kg, m * L)
            if m == 1:
                gemm.xp_matmul(xp, wt, gyt, out=gx[b0].reshape(g, cg, L))
            else:
                gx[b0:b1] = gemm.xp_matmul(xp, wt, gyt).reshape(c, m, h, wd).transpose(1, 0, 2, 3)
        return gx
    # gcol = W^T gy, then col2im. The output rows of gy go in padded to the width of the input's
    # phases (zero columns), so that col2im adds whole flat windows (see _col2im_flat).
    (sh, sw), (dh, dw) = stride, dilation
    rows, cols = ho + (kh - 1) * dh // sh, wo + (kw - 1) * dw // sw
    _, covered = _phase_plan((kh, kw), stride, padding, dilation, (h, wd), (ho, wo))
    gx = (xp.empty if covered else xp.zeros)(x_shape, dtype=gy.dtype)  # pixels no tap reaches: 0
    nb = _chunk(n, c * kh * kw, ho * cols, gy.dtype.itemsize)
    gy_rows = _gy_rows(xp, gy, cols)
    for b0 in range(0, n, nb):
        b1 = min(b0 + nb, n)
        m = b1 - b0
        gyp = gy_rows(b0, b1)
        if g == 1 and xp is np and cg * kh * kw < _FEW_ROWS:
            gcol = np.empty((cg * kh * kw, m * ho * cols), dtype=gy.dtype)
            _few_rows_forward(wt[0], gyp, gcol)
        else:
            gcol = gemm.xp_matmul(xp, wt, gyp.reshape(g, kg, m * ho * cols))
        _col2im_flat(xp, gx[b0:b1], gcol.reshape(c, kh, kw, m, ho * cols), (kh, kw), stride, padding,
                     dilation, rows, cols)
    return gx


def _depthwise_backward_input(xp, gy, w, x_shape, stride, padding, dilation):
    n, c, h, wd = x_shape
    kh, kw = w.shape[2:]
    ho, wo = gy.shape[2:]
    ph, pw = padding
    sh, sw = stride
    dh, dw = dilation
    m = gy.shape[1] // c  # output channels per input channel
    full = ((kh - 1) * dh - ph, (kw - 1) * dw - pw)  # the adjoint's padding: "full" minus the forward's
    if stride == (1, 1) and m == 1 and min(full) >= 0:
        # the adjoint of a stride-1 correlation is the correlation of gy with the flipped kernel
        wf = xp.ascontiguousarray(w[:, :, ::-1, ::-1])
        gx = xp.empty((n, c, h, wd), dtype=gy.dtype)
        return _depthwise_forward_flat(xp, gy, wf, full, dilation, _Epilogue(xp, gx, None, None, None))
    gxp = xp.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=gy.dtype)
    g5 = gy.reshape(n, c, m, ho, wo)
    w5 = w.reshape(c, m, kh, kw)
    for i in range(kh):
        for j in range(kw):
            contrib = g5[:, :, 0] * w5[:, 0, i, j].reshape(1, c, 1, 1)
            for r in range(1, m):
                contrib += g5[:, :, r] * w5[:, r, i, j].reshape(1, c, 1, 1)
            gxp[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw] += contrib
    return xp.ascontiguousarray(gxp[:, :, ph:ph + h, pw:pw + wd])


def conv2d_backward_weight(x, gy, w_shape, stride, padding, dilation, groups, kept=None):
    """Gradient of conv2d_forward with respect to w: sum over images of gy_n (K, L) @ col_n^T."""
    xp = get_array_module(x)
    n, k, ho, wo = gy.shape
    _, cg, kh, kw = w_shape
    g = groups
    kg = k // g
    # groups of images on the framework's threads, each summing its own images' products: the groups
    # of a split forward (with the patches each kept), else new ones when the call is large
    split = (kept or {}).get("parts")
    if split is None and not kept:
        split = [(b0, b1, None) for b0, b1 in _image_parts(xp, n, n * k * ho * wo * cg * kh * kw) or ()]
    bands = (kept or {}).get("bands")
    if bands is None and not kept and not split:
        bands = [r + (None,) for r in _band_rows(_row_bands(xp, n, ho, n * k * ho * wo * cg * kh * kw,
                                                            training=True) or (),
                                                 x.shape[2], kh, stride[0], padding[0], dilation[0])]
    if bands:  # one image in bands of output rows (as its forward), each with the work it kept
        def band(b):
            gys = _band_gradient(xp, gy, b, kh, stride[0], padding[0], dilation[0])
            return conv2d_backward_weight(np.ascontiguousarray(x[:, :, b[2]:b[3]]), gys, w_shape, stride,
                                          padding, dilation, groups, kept=b[5])
        split, run = bands, band
    else:
        def run(p):
            return conv2d_backward_weight(x[p[0]:p[1]], gy[p[0]:p[1]], w_shape, stride, padding, dilation,
                                          groups, kept=p[2])
    if split:
        pieces = _run_parts(run, split)
        total = pieces[0]
        for piece in pieces[1:]:
            total += piece
        return total
    if g > 1 and cg == 1:
        return _depthwise_backward_weight(xp, x, gy, w_shape, stride, padding, dilation)
    kept = kept or {}
    if "winograd43" in kept:  # the forward's kind, whatever the rules say now
        return winograd43.conv3x3_backward_weight(x, gy, padding[0], kept["winograd43"][0])
    if "winograd" in kept:
        return winograd.conv3x3_backward_weight(x, gy, padding[0], kept["winograd"])
    kind = _winograd_kind(x, x.shape, w_shape, stride, padding, dilation, groups)
    if kind is winograd43:
        return winograd43.conv3x3_backward_weight(x, gy, padding[0])
    if kind is winograd:
        return winograd.conv3x3_backward_weight(x, gy, padding[0])
    # Accumulated transposed, gw^T (G, Cg*kh*kw, Kg) = col @ gy^T: OpenBLAS runs this orientation
    # (many rows, few columns) 1.2-1.8x faster than gy @ col^T when the layer has few output channels.
    gwt = None
    chunks = (kept or {}).get("im2col") or _cols(xp, x, kh, kw, stride, padding, dilation, ho, wo)
    gy_rows = _gy_rows(xp, gy, _flat_layout(kh, kw, stride, padding, dilation, ho, wo)[1])  # garbage x 0
    for b0, b1, col in chunks:
        if g == 1 and xp is np and cg * kh * kw < _FEW_ROWS:
            part = _few_rows_product(col, gy_rows(b0, b1))[None]
            gwt = part if gwt is None else gwt + part
            continue
        gyt = gy_rows(b0, b1).reshape(g, kg, -1).transpose(0, 2, 1)
        part = gemm.xp_matmul(xp, col.reshape(g, cg * kh * kw, -1), gyt)
        if gwt is None:
            gwt = part
        else:
            gwt += part
    return xp.ascontiguousarray(gwt.transpose(0, 2, 1)).reshape(w_shape)


_SPLIT_COLS = 1024


def _few_rows_product(col, gyk):
    """col (R, P) @ gyk (K, P)^T for few rows R (a 3-channel stem: 27) and long P: as a batch of
    products over pieces of _SPLIT_COLS columns, summed. OpenBLAS runs such thin products with one
    long reduction at half speed (measured 1.4-2x faster in pieces on one core)."""
    r, p = col.shape
    b = p // _SPLIT_COLS
    if b <= 1:
        return col @ gyk.T
    p0 = b * _SPLIT_COLS
    out = np.matmul(col[:, :p0].reshape(r, b, _SPLIT_COLS).transpose(1, 0, 2),
                    gyk[:, :p0].reshape(gyk.shape[0], b, _SPLIT_COLS).transpose(1, 2, 0)).sum(0)
    if p0 < p:
        out += col[:, p0:] @ gyk[:, p0:].T
    return out


def _few_rows_forward(w2, col, out):
    """out (K, P) = w2 (K, R) @ col (R, P) for thin products (a 3-channel stem: R = 27 patch rows
    forward, K = 27 output rows for its input gradient), in pieces of _SPLIT_COLS columns (measured
    1.3-1.7x faster than one product on one core; no gain from 144 rows)."""
    k, (r, p) = w2.shape[0], col.shape
    b = p // _SPLIT_COLS
    if b <= 1:
        np.matmul(w2, col, out=out)
        return
    p0 = b * _SPLIT_COLS
    np.matmul(w2[None], col[:, :p0].reshape(r, b, _SPLIT_COLS).transpose(1, 0, 2),
              out=out[:, :p0].reshape(k, b, _SPLIT_COLS).transpose(1, 0, 2))
    if p0 < p:
        np.matmul(w2, col[:, p0:], out=out[:, p0:])


def _depthwise_backward_weight(xp, x, gy, w_shape, stride, padding, dilation):
    n, c = x.shape[:2]
    kh, kw = w_shape[2:]
    ho, wo = gy.shape[2:]
    sh, sw = stride
    dh, dw = dilation
    m = gy.shape[1] // c
    if stride == (1, 1) and m == 1 and ho >= dh and wo >= dw:
        # per plane, the patches (kh*kw, Ho*Wp) times gy's rows padded to Wp with zeros (which meet
        # the garbage columns: these read only pixels real outputs read, see _dw_patches)
        wp = x.shape[3] + 2 * padding[1]
        gyp = xp.zeros((n * c, ho, wp), dtype=gy.dtype)
        gyp[:, :, :wo] = gy.reshape(n * c, ho, wo)
        gyp = gyp.reshape(n * c, ho * wp, 1)
        gwp = xp.empty((n * c, kh * kw, 1), dtype=gy.dtype)
        for p0, p1, col in _dw_patches(xp, x, kh, kw, padding, dilation, ho):
            xp.matmul(col, gyp[p0:p1], out=gwp[p0:p1])
        return gwp.reshape(n, c, kh * kw).sum(0).reshape(w_shape)
    xpad = _pad(xp, x, *padding)
    g5 = gy.reshape(n, c, m, ho, wo)
    gw = xp.empty((c, m, kh, kw), dtype=gy.dtype)
    for i in range(kh):
        for j in range(kw):
            sl = xpad[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]
            gw[:, :, i, j] = xp.einsum("nchw,nmchw->cm", sl, g5.transpose(0, 2, 1, 3, 4))
    return gw.reshape(w_shape)
