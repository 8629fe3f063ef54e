"""2-D convolution on CuPy arrays with the framework's own kernels (``conv_igemm.cu``,
``depthwise.cu``).

Array-level API, the same as ``framework.kernels.cpu.conv`` (``stride``, ``padding``, ``dilation``
are pairs of ints, padding symmetric):

    conv2d_forward(x, w, stride, padding, dilation, groups, *, bias=None, activation=None,
                   residual=None, out=None) -> y                        (N, K, P, Q)
    conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups, *, out=None)
        -> gx                                                           (N, C, H, W)
    conv2d_backward_weight(x, gy, w_shape, stride, padding, dilation, groups, *, out=None)
        -> gw                                                           (K, C/groups, R, S)
    conv2d_bias_act(x, w, bias, stride, padding, dilation, groups, activation=None, residual=None)

``out=`` takes a preallocated contiguous result (the GPU tests pass NaN-filled ones, so that a cell
the kernels forget to write shows). Backward-data runs one implicit GEMM per stride phase.

The fused epilogue computes ``y = act(conv(x, w) + bias[k] + residual)`` with act in
{None, "relu", "silu"} (the order of a ResNet block's ``relu(bn(conv(x)) + identity)`` once BN is
folded into the conv).

Precision: float16 runs on tensor cores (mma.sync m16n8k16) with float32 accumulation; float32
runs on TF32 tensor cores when ``fw.backends.cudnn.allow_tf32`` is True (PyTorch's default) and the
device is sm_80+, else on the exact FFMA kernel. float64, and every dtype when
``fw.backends.cudnn.enabled`` is False, use the generic CuPy code of ``kernels.cpu.conv``.
Depthwise convolutions (groups == C) use a dedicated direct kernel.

Everything is deterministic: backward-filter splits its reduction over blocks but reduces the
float32 partials in a fixed order (no atomics).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ... import backend
from ..cpu import conv as _generic
from . import _loader as L

__all__ = ["conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "conv2d_bias_act",
           "MmaConfig", "FfmaConfig", "candidate_configs", "gemm_operands", "vec_flags", "split_k",
           "kernel_name", "all_kernel_names", "padded_channels", "bwd_data_phases",
           "default_phase"]

CU = "conv_igemm.cu"
DW = "depthwise.cu"
_ACT = {None: 0, "none": 0, "relu": 1, "silu": 2}


@dataclass(frozen=True)
class MmaConfig:
    """Tensor-core tile: BM x BN block tile, BK reduction slice, warps, cp.async stages."""

    bm: int
    bn: int
    bk: int
    warps_m: int
    warps_n: int
    stages: int

    def threads(self) -> int:
        return self.warps_m * self.warps_n * 32

    def smem(self, itemsize: int) -> int:
        """Dynamic shared memory: the cp.async stages, then the loaders' row tables (FwIdxRow)."""
        pad = 16 // itemsize
        stages = self.stages * (self.bm + self.bn) * (self.bk + pad) * itemsize
        return stages + (self.bm + self.bn) * ROW_BYTES


@dataclass(frozen=True)
class FfmaConfig:
    """Exact float32 tile: BM x BN block tile, BK slice, TM x TN outputs per thread."""

    bm: int
    bn: int
    bk: int
    tm: int
    tn: int

    def threads(self) -> int:
        return (self.bm // self.tm) * (self.bn // self.tn)


# The last of each pool is a narrow tile for GEMMs with few columns (a layer with 3 input channels
# seen from backward-data, a head with few outputs): 16 columns instead of 32-64 mostly empty ones.
F16_CONFIGS = (MmaConfig(128, 128, 32, 2, 2, 3), MmaConfig(256, 128, 32, 4, 2, 3),
               MmaConfig(128, 64, 32, 2, 2, 4), MmaConfig(64, 128, 32, 2, 2, 3),
               MmaConfig(64, 64, 32, 2, 2, 4), MmaConfig(64, 32, 32, 2, 2, 4),
               MmaConfig(128, 16, 32, 2, 1, 4))
TF32_CONFIGS = (MmaConfig(128, 128, 16, 2, 2, 4), MmaConfig(128, 64, 16, 2, 2, 4),
                MmaConfig(64, 128, 16, 2, 2, 4), MmaConfig(64, 64, 16, 2, 2, 4),
                MmaConfig(64, 32, 16, 2, 2, 4), MmaConfig(128, 16, 16, 2, 1, 4))
FFMA_CONFIGS = (FfmaConfig(128, 64, 8, 8, 4), FfmaConfig(64, 64, 8, 4, 4), FfmaConfig(32, 64, 8, 4, 4),
                FfmaConfig(128, 16, 8, 8, 2))
ROW_BYTES = 24  # sizeof(FwIdxRow) in conv_igemm.cu: long long + 2 ints + bool, 8-byte aligned


def _cp():
    return backend.cupy_module()


def _math(dtype, cc: int) -> str:
    """'f16', 'tf32' or 'ffma' for an array dtype on a device of compute capability ``cc``."""
    from ... import backends

    if dtype == np.float16:
        return "f16" if cc >= 80 else "ffma"
    if dtype == np.float32:
        return "tf32" if (backends.cudnn.allow_tf32 and cc >= 80) else "ffma"
    raise TypeError(dtype)


def _use_generic(*arrays) -> bool:
    from ... import backends

    return (not backends.cudnn.enabled) or any(a.dtype not in (np.float16, np.float32) for a in arrays)


def _gemm_dims(mode, x_shape, w_shape, out_hw, groups, phase=None):
    """(M, Ng, Kr) of the GEMM of ``mode`` (for backward-data: of one stride ``phase``)."""
    n, c, h, w = x_shape
    k, cg, r, s = w_shape
    p, q = out_hw
    kg = k // groups
    if mode == 0:
        return n * p * q, kg, r * s * cg
    if mode == 1:
        if phase is None:
            return n * h * w, cg, r * s * kg
        _, _, _, _, rn, _, _, sn, hq, wq = phase
        return n * hq * wq, cg, rn * sn * kg
    return kg, cg * r * s, n * p * q


def default_phase(geo) -> tuple:
    """The phase arguments of a launch that is not split by stride phase (all pixels, all taps)."""
    h, w, r, s = geo[2], geo[3], geo[5], geo[6]
    return (0, 0, 0, 1, r, 0, 1, s, h, w)


def bwd_data_phases(geo) -> list[tuple]:
    """Backward-data split by stride phase: (oh, ow, r0, rst, rn, s0, sst, sn, Hq, Wq) per phase.

    Input rows h = oh + hq*sh receive gradient only from the taps r with (oh + ph - r*dh) divisible
    by sh, a residue class, hence an arithmetic progression r0, r0 + rst, ...; likewise for columns.
    With stride 1 this is one phase holding every pixel and tap.
    """
    n, c, h, w, k, r, s, p, q, sh, sw, ph, pw, dh, dw, g = geo

    def taps(o, count, st, pad, dil):
        valid = [t for t in range(count) if (o + pad - t * dil) % st == 0]
        if not valid:
            return 0, 1, 0
        step = valid[1] - valid[0] if len(valid) > 1 else 1
        assert valid == list(range(valid[0], valid[0] + step * len(valid), step))
        return valid[0], step, len(valid)

    out = []
    for oh in range(min(sh, h)):
        for ow in range(min(sw, w)):
            out.append((oh, ow, *taps(oh, r, sh, ph, dh), *taps(ow, s, sw, pw, dw),
                        -(-(h - oh) // sh), -(-(w - ow) // sw)))
    return out


def candidate_configs(math_kind: str, m: int, ng: int, groups: int, sms: int):
    """The configurations worth trying, the heuristic's pick first.

    The pick maximises (useful fraction of the padded tiles) x min(1, blocks / SMs), ties going
    to the larger tile: large tiles reuse each loaded element more, but tiles mostly outside the
    problem waste work and too few blocks leave SMs idle.
    """
    pool = {"f16": F16_CONFIGS, "tf32": TF32_CONFIGS, "ffma": FFMA_CONFIGS}[math_kind]

    def score(cfg):
        tm, tn = math.ceil(m / cfg.bm), math.ceil(ng / cfg.bn)
        eff = (m * ng) / (tm * cfg.bm * tn * cfg.bn)
        return eff * min(1.0, tm * tn * groups / sms)

    best = max(score(c) for c in pool)
    # Scores within 2% of the best count as ties, won by the larger tile.
    return sorted(pool, key=lambda c: (score(c) < 0.98 * best, -c.bm * c.bn, -score(c)))


def vec_flags(mode: int, geo, itemsize: int) -> tuple[bool, bool]:
    """Whether operands A and B can be fetched as 16-byte runs along the reduction (see the .cu)."""
    c, k, p, q, groups = geo[1], geo[4], geo[7], geo[8], geo[15]
    vec = 16 // itemsize
    if mode == 0:
        return ((c // groups) % vec == 0,) * 2
    if mode == 1:
        return ((k // groups) % vec == 0,) * 2
    return (p * q) % vec == 0, False


def gemm_operands(mode: int, xp, t, w, groups: int, nhwc=None, pad_c: int = 0):
    """The (A, B) arrays the implicit GEMM of ``mode`` reads, in the layouts conv_igemm.cu expects.

    ``t`` is x for the forward, gy for backward-data, and the pair (gy, x) for backward-filter.
    ``nhwc`` converts NCHW to NHWC (the GPU path passes its tiled-transpose kernel).
    ``pad_c`` (forward, groups == 1): zero-pad the input channels of x and w to ``pad_c``, so that
    a layer like the first one (C = 3) still gets the 16-byte loaders; the caller then passes
    ``C = pad_c`` in the geometry (see :func:`padded_channels`).
    """
    if nhwc is None:
        def nhwc(a):
            return xp.ascontiguousarray(a.transpose(0, 2, 3, 1))
    if mode == 0:
        c = t.shape[1]
        if pad_c > c:
            if groups != 1:
                raise ValueError("channel padding is for groups == 1 only")
            n, _, h, wd = t.shape
            xa = xp.zeros((n, h, wd, pad_c), dtype=t.dtype)
            xa[..., :c] = t.transpose(0, 2, 3, 1)
            wa = xp.zeros((w.shape[0], w.shape[2], w.shape[3], pad_c), dtype=w.dtype)
            wa[..., :c] = w.transpose(0, 2, 3, 1)
            return xa, wa
        return nhwc(t), xp.ascontiguousarray(w.transpose(0, 2, 3, 1))  # KRSC
    if mode == 1:
        k, cg, r, s = w.shape
        kg = k // groups
        # B rows are input channels: w (g, Kg, Cg, R, S) -> (g, Cg, R, S, Kg) -> (C, R*S*Kg).
        wt = w.reshape(groups, kg, cg, r, s).transpose(0, 2, 3, 4, 1).reshape(groups * cg, r * s * kg)
        return nhwc(t), xp.ascontiguousarray(wt)
    gy, x = t
    return xp.ascontiguousarray(gy), xp.ascontiguousarray(x)


def padded_channels(c: int, groups: int, itemsize: int) -> int:
    """Input channels after padding for the forward's 16-byte loaders (``c`` itself if not needed)."""
    vec = 16 // itemsize
    if groups != 1 or c % vec == 0:
        return c
    return -(-c // vec) * vec


def split_k(cfg, m, ng, kr, groups, sms) -> tuple[int, int]:
    """(splits, k_per_split) for backward-filter: enough blocks for ~2 waves, >= 8 slices each."""
    blocks = math.ceil(m / cfg.bm) * math.ceil(ng / cfg.bn) * groups
    want = max(1, (2 * sms) // max(blocks, 1))
    most = max(1, kr // (8 * cfg.bk))
    splits = max(1, min(want, most, 64))
    kps = math.ceil(math.ceil(kr / splits) / cfg.bk) * cfg.bk
    return math.ceil(kr / kps), kps


def _aligned(a, cp):
    a = cp.ascontiguousarray(a)
    if a.data.ptr % 16:
        a = a.copy()
    return a


def _nhwc(a, cp):
    """NCHW -> NHWC with the tiled transpose kernel (coalesced both ways)."""
    n, c, h, w = a.shape
    out = cp.empty((n, h, w, c), dtype=a.dtype)
    fn = L.get_function(CU, f"fw_nchw_to_nhwc<{L.cxx_type(a.dtype)}>")
    L.launch(fn, (math.ceil(h * w / 32), math.ceil(c / 32), n), (32, 8),
             (_aligned(a, cp), out) + L.i32(c, h * w))
    return out


def _geometry(x_shape, w_shape, stride, padding, dilation, groups, out_hw=None):
    n, c, h, w = x_shape
    k, cg, r, s = w_shape
    if cg * groups != c or k % groups:
        raise ValueError(f"conv2d: weight {tuple(w_shape)} does not fit input {tuple(x_shape)} with "
                         f"groups={groups}")
    if out_hw is None:
        out_hw = (_generic.conv_out_size(h, r, stride[0], padding[0], dilation[0]),
                  _generic.conv_out_size(w, s, stride[1], padding[1], dilation[1]))
    p, q = out_hw
    if p <= 0 or q <= 0:
        raise ValueError(f"conv2d: output size {p}x{q} is empty for input {tuple(x_shape)}")
    return (n, c, h, w, k, r, s, p, q, stride[0], stride[1], padding[0], padding[1],
            dilation[0], dilation[1], groups)


def kernel_name(mode: int, cfg, t: str, va: bool, vb: bool) -> str:
    """The CuPy name expression of the implicit-GEMM kernel for a mode, tile config and loader kind."""
    if isinstance(cfg, MmaConfig):
        return (f"fw_conv_mma<{t}, {mode}, {cfg.bm}, {cfg.bn}, {cfg.bk}, {cfg.warps_m}, "
                f"{cfg.warps_n}, {cfg.stages}, {str(va).lower()}, {str(vb).lower()}>")
    return f"fw_conv_ffma<{t}, {mode}, {cfg.bm}, {cfg.bn}, {cfg.bk}, {cfg.tm}, {cfg.tn}>"


def all_kernel_names() -> dict[str, list[str]]:
    """Every name expression this module can request, by .cu file (for warm-up and tests)."""
    igemm = []
    for t, pools in (("fw_half", (F16_CONFIGS, FFMA_CONFIGS)), ("float", (TF32_CONFIGS, FFMA_CONFIGS))):
        for pool in pools:
            for cfg in pool:
                for mode in (0, 1, 2):
                    for va, vb in ((True, True), (False, False)) if mode < 2 else ((True, False),
                                                                                  (False, False)):
                        igemm.append(kernel_name(mode, cfg, t, va, vb))
        igemm += [f"fw_splitk_reduce<{t}>", f"fw_nchw_to_nhwc<{t}>"]
    dw = [f"{k}<{t}>" for t in ("float", "fw_half")
          for k in ("fw_dw_forward", "fw_dw_backward_data", "fw_dw_backward_filter")]
    return {CU: sorted(set(igemm)), DW: dw}


class _Launch(NamedTuple):
    """One implicit-GEMM launch with everything that does not depend on the data (cached per plan)."""

    fn: object
    grid: tuple
    block: tuple
    smem: int
    ints: tuple  # the geometry, phase, act, splits, k_per_split as np.int32
    ws_shape: tuple | None  # split-K workspace (float32), or None
    reduce: tuple | None  # (fn, grid, block, trailing args) of fw_splitk_reduce, or None


def _prepare_igemm(mode, dtype, geo, cfg, phase=None, act=0) -> _Launch:
    """The launch of the implicit GEMM for ``mode`` with ``cfg`` (split-K for mode 2 included)."""
    n, c, h, w, k, r, s, p, q = geo[:9]
    groups = geo[15]
    phase = default_phase(geo) if phase is None else phase
    m, ng, kr = _gemm_dims(mode, (n, c, h, w), (k, c // groups, r, s), (p, q), groups, phase)
    t = L.cxx_type(dtype)
    itemsize = np.dtype(dtype).itemsize
    va, vb = vec_flags(mode, geo, itemsize)
    sms = L.sm_count()
    if mode == 2:
        splits, kps = split_k(cfg, m, ng, kr, groups, sms)
    else:
        splits, kps = 1, max(kr, 1)
    smem = cfg.smem(itemsize) if isinstance(cfg, MmaConfig) else 0
    fn = L.get_function(CU, kernel_name(mode, cfg, t, va, vb), max_shared=smem)
    grid = (math.ceil(m / cfg.bm), math.ceil(ng / cfg.bn), groups * splits)
    ints = L.i32(*geo, *phase, act, splits, kps)
    ws_shape = red = None
    if splits > 1:
        total = k * ng
        ws_shape = (splits, total)
        blocks, block = L.elementwise_grid(total)
        red = (L.get_function(CU, f"fw_splitk_reduce<{t}>"), (blocks,), (block,),
               (np.int64(total), np.int32(splits)))
    return _Launch(fn, grid, (cfg.threads(),), smem, ints, ws_shape, red)


def _exec(launch: _Launch, a, b, out, bias=None, residual=None) -> None:
    ws = _cp().empty(launch.ws_shape, dtype=np.float32) if launch.ws_shape else None
    launch.fn(launch.grid, launch.block,
              (a, b, out, L.ptr_or_null(ws), L.ptr_or_null(bias), L.ptr_or_null(residual)) + launch.ints,
              shared_mem=launch.smem)
    if launch.reduce is not None:
        fn, grid, block, tail = launch.reduce
        fn(grid, block, (ws, out) + tail)


def _run_igemm(mode, a, b, out, geo, cfg, *, phase=None, bias=None, residual=None, act=0):
    """Launch the implicit GEMM for ``mode`` with ``cfg`` (handles split-K for mode 2)."""
    _exec(_prepare_igemm(mode, a.dtype, geo, cfg, phase, act), a, b, out, bias, residual)


# (device, math kind) pairs whose kernels failed to build or launch on this device: later calls use
# the exact FFMA kernels instead (a warning says so once).
_broken: set = set()
# Chosen launches per problem (mode, geometry, dtype, precision flags, device, activation): a call
# that finds its plan here only launches. Cleared with the tuner (``clear_plans``).
_plans: dict = {}
_phases: dict = {}  # geometry -> its backward-data stride phases
_MAX_PLANS = 4096


def clear_plans() -> None:
    _plans.clear()
    L.tuner.clear()


def _choose(mode, a, b, out, geo, dtype, phases, act, kind):
    """The launches for every phase: the tuned (or heuristic) configuration of each."""
    from ... import backends

    cp = _cp()
    n, c, h, w, k, r, s, p, q = geo[:9]
    groups = geo[15]
    dev = L.device_key()[0]
    launches = []
    scratch = []
    for phase in phases:
        m, ng, _ = _gemm_dims(mode, (n, c, h, w), (k, c // groups, r, s), (p, q), groups, phase)
        cands = candidate_configs(kind, m, ng, groups, L.sm_count())
        if backends.cudnn.benchmark and len(cands) > 1:
            def trial(cf, phase=phase):  # tuning writes to scratch: a failed candidate leaves no garbage
                if not scratch:
                    scratch.append(cp.empty_like(out))
                _exec(_prepare_igemm(mode, dtype, geo, cf, phase, act), a, b, scratch[0])

            key = ("conv", mode, geo, phase, np.dtype(dtype).str, kind, dev, act)
            cfg = L.tuner.choose(key, cands, trial)
        else:
            cfg = cands[0]
        launches.append(_prepare_igemm(mode, dtype, geo, cfg, phase, act))
    return launches


def _tuned(mode, a, b, out, geo, dtype, phases=(None,), bias=None, residual=None, act=0):
    """Run the implicit GEMM(s) of one call with the planned (tuned or heuristic) configurations."""
    from ... import backends

    dev, cc = L.device_key()
    key = (mode, geo, np.dtype(dtype).char, backends.cudnn.allow_tf32, backends.cudnn.benchmark, dev, act)
    launches = _plans.get(key)
    if launches is not None:
        for launch in launches:
            _exec(launch, a, b, out, bias, residual)
        return
    kind = _math(dtype, cc)
    if (dev, kind) in _broken:
        kind = "ffma"
    try:
        launches = _choose(mode, a, b, out, geo, dtype, phases, act, kind)
        for launch in launches:
            _exec(launch, a, b, out, bias, residual)
    except Exception as e:  # a build or launch-configuration failure (not a wrong result)
        if kind == "ffma":
            raise
        import warnings

        warnings.warn(f"framework CUDA conv: the {kind} tensor-core kernels failed on device {dev} "
                      f"({type(e).__name__}: {str(e)[:300]}); using the FFMA kernels from now on",
                      RuntimeWarning, stacklevel=3)
        _broken.add((dev, kind))
        _tuned(mode, a, b, out, geo, dtype, phases, bias, residual, act)
        return
    if len(_plans) >= _MAX_PLANS:  # e.g. a stream of ever-new input sizes: start over, never grow unbounded
        _plans.clear()
    _plans[key] = launches


def _check_pair(x, w, what):
    if x.dtype != w.dtype:
        raise TypeError(f"{what}: input dtype {x.dtype} and weight dtype {w.dtype} differ (use autocast "
                        "or cast one of them)")
    dx, dw = backend.device_of(x), backend.device_of(w)
    if dx != dw:
        raise RuntimeError(f"{what}: input on {dx} but weight on {dw}")


def _epilogue_generic(y, bias, residual, act, cp):
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1).astype(y.dtype)
    if residual is not None:
        y += residual
    if act == 1:
        cp.maximum(y, 0, out=y)
    elif act == 2:
        y *= 1 / (1 + cp.exp(-y))
    return y


# ----------------------------------------------------------------------------------- public API

def _out(out, shape, dtype, cp):
    """A fresh output, or the caller's ``out`` (tests pass NaN-filled arrays to catch unwritten cells)."""
    if out is None:
        return cp.empty(shape, dtype=dtype)
    if tuple(out.shape) != tuple(shape) or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"out must be a contiguous {dtype} array of shape {tuple(shape)}")
    return out


def conv2d_forward(x, w, stride, padding, dilation, groups, *, bias=None, activation=None,
                   residual=None, out=None):
    """y = act(conv2d(x, w) + bias + residual): x (N, C, H, W), w (K, C/groups, R, S) -> (N, K, P, Q)."""
    cp = _cp()
    _check_pair(x, w, "conv2d")
    act = _ACT[activation]
    geo = _geometry(x.shape, w.shape, stride, padding, dilation, groups)
    if _use_generic(x, w):
        y = _generic.conv2d_forward(x, w, stride, padding, dilation, groups)
        return _epilogue_generic(y, bias, residual, act, cp)
    n, c, h, wd, k, r, s, p, q = geo[:9]
    if bias is not None:
        bias = _aligned(bias.astype(x.dtype, copy=False), cp)
    if residual is not None:
        if residual.shape != (n, k, p, q):
            raise ValueError(f"conv2d: residual {residual.shape} must have the output's shape {(n, k, p, q)}")
        residual = _aligned(residual.astype(x.dtype, copy=False), cp)
    y = _out(out, (n, k, p, q), x.dtype, cp)
    if groups == c and groups > 1 and w.shape[1] == 1:
        fn = L.get_function(DW, f"fw_dw_forward<{L.cxx_type(x.dtype)}>")
        blocks, block = L.elementwise_grid(y.size)
        L.launch(fn, (blocks,), (block,), (_aligned(x, cp), _aligned(w, cp), L.ptr_or_null(bias),
                                          L.ptr_or_null(residual), y) + L.i32(*geo[:15], act))
        return y
    dev, cc = L.device_key()
    pad_c = 0
    if _math(x.dtype, cc) != "ffma" and (dev, _math(x.dtype, cc)) not in _broken:
        # Tensor-core paths: pad C to the 16-byte vector (3 -> 8 halves / 4 floats) rather than fall
        # back to element loads; the FFMA path loads elements anyway, so it is not padded.
        pad_c = padded_channels(c, groups, x.dtype.itemsize)
        if pad_c != c:
            geo = (n, pad_c) + geo[2:]
    if pad_c and pad_c != c:
        xa, wa = gemm_operands(0, cp, _aligned(x, cp), w, groups, pad_c=pad_c)
        wa = _aligned(wa, cp)
    else:  # x to NHWC and w (K, Cg, R, S) to KRSC: the same transpose, one launch each
        xa, wa = _nhwc(x, cp), _nhwc(w, cp)
    _tuned(0, xa, wa, y, geo, x.dtype, bias=bias, residual=residual, act=act)
    return y


def conv2d_bias_act(x, w, bias, stride, padding, dilation, groups, activation=None, residual=None):
    """The fused forward: ``act(conv2d(x, w) + bias + residual)`` in one kernel."""
    return conv2d_forward(x, w, stride, padding, dilation, groups, bias=bias, activation=activation,
                          residual=residual)


def conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups, *, out=None):
    """dL/dx (N, C, H, W) from dL/dy (N, K, P, Q): the transposed convolution, as an implicit GEMM."""
    cp = _cp()
    _check_pair(gy, w, "conv2d backward (input)")
    if _use_generic(gy, w):
        return _generic.conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups)
    geo = _geometry(tuple(x_shape), w.shape, stride, padding, dilation, groups, out_hw=gy.shape[2:])
    n, c, h, wd, k, r, s = geo[:7]
    gx = _out(out, (n, c, h, wd), gy.dtype, cp)
    if groups == c and groups > 1 and w.shape[1] == 1:
        fn = L.get_function(DW, f"fw_dw_backward_data<{L.cxx_type(gy.dtype)}>")
        blocks, block = L.elementwise_grid(gx.size)
        L.launch(fn, (blocks,), (block,), (_aligned(gy, cp), _aligned(w, cp), gx) + L.i32(*geo[:15]))
        return gx
    # gy to NHWC; w (g, Kg, Cg*R*S) to "CRSK" (g, Cg*R*S, Kg): both the NCHW -> NHWC transpose
    kg, cg = k // groups, c // groups
    ga = _nhwc(gy, cp)
    wt = _nhwc(w.reshape(groups, kg, cg * r * s, 1), cp).reshape(groups * cg, r * s * kg)
    phases = _phases.get(geo)
    if phases is None:
        if len(_phases) >= _MAX_PLANS:
            _phases.clear()
        phases = _phases[geo] = tuple(bwd_data_phases(geo))
    _tuned(1, ga, wt, gx, geo, gy.dtype, phases)  # one GEMM per stride phase: no products with holes
    return gx


def conv2d_backward_weight(x, gy, w_shape, stride, padding, dilation, groups, *, out=None):
    """dL/dw (K, C/groups, R, S) from x and dL/dy; deterministic split-K over N*P*Q."""
    cp = _cp()
    _check_pair(x, gy, "conv2d backward (weight)")
    if _use_generic(x, gy):
        return _generic.conv2d_backward_weight(x, gy, w_shape, stride, padding, dilation, groups)
    geo = _geometry(x.shape, tuple(w_shape), stride, padding, dilation, groups, out_hw=gy.shape[2:])
    gw = _out(out, tuple(w_shape), x.dtype, cp)
    c = geo[1]
    if groups == c and groups > 1 and w_shape[1] == 1:
        k, r, s = geo[4:7]
        fn = L.get_function(DW, f"fw_dw_backward_filter<{L.cxx_type(x.dtype)}>")
        L.launch(fn, (k * r * s,), (256,), (_aligned(x, cp), _aligned(gy, cp), gw) + L.i32(*geo[:15]))
        return gw
    a, b = gemm_operands(2, cp, (gy, x), None, groups)
    _tuned(2, _aligned(a, cp), _aligned(b, cp), gw, geo, x.dtype)
    return gw
