"""The CUDA kernels' index arithmetic, run on the CPU and compared with PyTorch.

``cuda_host_harness.cu`` (built here with nvcc as a host program) calls the kernels' host+device
functions: the implicit-GEMM operand gathers for forward, backward-data and backward-filter (with
the 16-byte-run loader variant and split-K), the fused epilogue, and the per-element bodies of the
pooling and depthwise kernels. The operands are prepared by ``kernels.cuda.conv.gemm_operands``,
the function the GPU path uses. Not covered without a GPU: tensor-core fragment layouts, cp.async
pipelining, shared-memory tiling and block reductions (see test_cuda_gpu.py).
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from framework.kernels.cpu.pool import pool_out_size  # noqa: E402
from framework.kernels.cuda import _loader  # noqa: E402
from framework.kernels.cuda import conv as cconv  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on the PATH")

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    exe = tmp_path_factory.mktemp("harness") / "harness"
    cmd = ["nvcc", "-std=c++17", "-arch=sm_80", f"-I{_loader.KERNEL_DIR}",
           str(HERE / "cuda_host_harness.cu"), "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        pytest.fail(f"building the host harness failed:\n{r.stderr}")
    return exe


def _run(harness, tmp_path, op, ints, inputs, n_out):
    files = []
    for i, a in enumerate(inputs):
        if a is None:
            files.append("-")
            continue
        f = tmp_path / f"in{i}.bin"
        np.ascontiguousarray(a).tofile(f)
        files.append(str(f))
    outs = [tmp_path / f"out{i}.bin" for i in range(n_out)]
    cmd = [str(harness), op, *map(str, ints), "--", *files, *map(str, outs)]
    subprocess.run(cmd, check=True)
    return outs


# (N, C, H, W, K, R, S, stride, padding, dilation, groups): the grid, small.
CONV_GRID = [
    (1, 3, 9, 7, 5, 3, 3, 1, 1, 1, 1),      # N=1, odd H/W, C and K not multiples of anything
    (2, 8, 8, 8, 12, 3, 3, 2, 1, 1, 1),     # stride 2, vector-loadable (C % 4 == 0)
    (2, 8, 11, 9, 8, 3, 3, 1, 0, 2, 1),     # dilation 2, padding 0
    (1, 4, 13, 13, 6, 7, 7, 2, 3, 1, 1),    # 7x7, padding 3, stride 2
    (2, 16, 5, 6, 20, 1, 1, 1, 0, 1, 1),    # 1x1
    (2, 8, 9, 8, 12, 1, 1, 2, 0, 1, 1),     # 1x1 stride 2 (ResNet shortcut): phases without taps
    (2, 8, 7, 7, 12, 3, 3, 1, 1, 1, 2),     # groups 2 (Cg=4, Kg=6)
    (1, 12, 9, 8, 6, 3, 1, (2, 1), (1, 0), (1, 2), 3),  # groups 3, per-axis stride/pad/dilation
    (2, 8, 10, 7, 8, 2, 3, (1, 2), (0, 2), (2, 1), 1),  # even kernel height, per-axis geometry
]


def _ref(x, w, bias, residual, act, stride, padding, dilation, groups):
    xt, wt = torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64)
    y = torch.nn.functional.conv2d(xt, wt, None if bias is None else torch.tensor(bias, dtype=torch.float64),
                                   stride, padding, dilation, groups)
    if residual is not None:
        y = y + torch.tensor(residual, dtype=torch.float64)
    if act == 1:
        y = torch.relu(y)
    elif act == 2:
        y = torch.nn.functional.silu(y)
    return y


def _pair(v):
    return tuple(v) if isinstance(v, tuple) else (v, v)


def _geo(x_shape, w_shape, out_hw, stride, padding, dilation, groups):
    n, c, h, w = x_shape
    k, _, r, s = w_shape
    return (n, c, h, w, k, r, s, out_hw[0], out_hw[1], *_pair(stride), *_pair(padding),
            *_pair(dilation), groups)


@pytest.mark.parametrize("case", CONV_GRID)
@pytest.mark.parametrize("mode", [0, 1, 2])
def test_implicit_gemm_indexing_matches_torch(harness, tmp_path, case, mode):
    n, c, h, w, k, r, s, st, pad, dil, groups = case
    rng = np.random.default_rng(abs(hash(str(case))) % 2**32)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, c // groups, r, s)).astype(np.float32)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wtt = torch.tensor(wt, dtype=torch.float64, requires_grad=True)
    y = torch.nn.functional.conv2d(xt, wtt, None, st, pad, dil, groups)
    gy = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    y.backward(torch.tensor(gy, dtype=torch.float64))
    geo = _geo(x.shape, wt.shape, y.shape[2:], st, pad, dil, groups)
    m, ng, kr = cconv._gemm_dims(mode, x.shape, wt.shape, y.shape[2:], groups)
    if mode == 0:
        a, b = cconv.gemm_operands(0, np, x, wt, groups)
        expect, out_shape = y.detach().numpy(), y.shape
    elif mode == 1:
        a, b = cconv.gemm_operands(1, np, gy, wt, groups)
        expect, out_shape = xt.grad.numpy(), x.shape
    else:
        a, b = cconv.gemm_operands(2, np, (gy, x), None, groups)
        expect, out_shape = wtt.grad.numpy(), wt.shape
    va, vb = cconv.vec_flags(mode, geo, 4)
    # Every loader variant the kernels have, whatever this shape allows, plus split-K on mode 2
    # and the forward's channel padding (C not a multiple of the vector).
    variants = [(False, False, 1, kr, a, b, geo)]
    if va or vb:
        variants.append((va, vb, 1, kr, a, b, geo))
    if mode == 2:
        kps = 8
        variants.append((va, vb, math.ceil(kr / kps), kps, a, b, geo))
    pad = cconv.padded_channels(c, groups, 4)
    if mode == 0 and pad != c:
        ap, bp = cconv.gemm_operands(0, np, x, wt, groups, pad_c=pad)
        gp = (n, pad) + geo[2:]
        assert cconv.vec_flags(0, gp, 4) == (True, True)
        variants.append((True, True, 1, r * s * pad, ap, bp, gp))
    for v_a, v_b, splits, kps, a, b, geo in variants:
        phases = cconv.bwd_data_phases(geo) if mode == 1 else [cconv.default_phase(geo)]
        if mode == 1:
            kps = 0  # each phase's own Kr
        ints = [int(v_a), int(v_b), splits, kps, 0, *geo, len(phases), *[v for ph in phases for v in ph]]
        (out,) = _run(harness, tmp_path, f"conv{mode}", ints, [a, b, None, None], 1)
        got = np.fromfile(out, dtype=np.float32).reshape(out_shape)
        assert np.isfinite(got).all(), "an output cell was never written"
        np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-4,
                                   err_msg=f"mode {mode} vec=({v_a},{v_b}) splits={splits}")


@pytest.mark.parametrize("act", [0, 1, 2])
def test_fused_epilogue_bias_residual_activation(harness, tmp_path, act):
    n, c, h, w, k, r, s, st, pad, dil, groups = 2, 8, 7, 6, 12, 3, 3, 1, 1, 1, 2
    rng = np.random.default_rng(act)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, c // groups, r, s)).astype(np.float32)
    bias = rng.standard_normal(k).astype(np.float32)
    expect = _ref(x, wt, bias, None, 0, st, pad, dil, groups)
    res = rng.standard_normal(tuple(expect.shape)).astype(np.float32)
    expect = _ref(x, wt, bias, res, act, st, pad, dil, groups).numpy()
    geo = _geo(x.shape, wt.shape, expect.shape[2:], st, pad, dil, groups)
    a, b = cconv.gemm_operands(0, np, x, wt, groups)
    ints = [1, 1, 1, 10**6, act, *geo, 1, *cconv.default_phase(geo)]
    (out,) = _run(harness, tmp_path, "conv0", ints, [a, b, bias, res], 1)
    got = np.fromfile(out, dtype=np.float32).reshape(expect.shape)
    np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-4)


DW_GRID = [  # (N, C, mult, H, W, R, S, stride, padding, dilation)
    (1, 5, 1, 9, 7, 3, 3, 1, 1, 1),
    (2, 4, 2, 10, 10, 3, 3, 2, 1, 1),
    (1, 3, 1, 11, 11, 5, 5, 1, 4, 2),
    (2, 6, 1, 13, 12, 7, 7, 2, 3, 1),
]


@pytest.mark.parametrize("case", DW_GRID)
def test_depthwise_bodies_match_torch(harness, tmp_path, case):
    n, c, mult, h, w, r, s, st, pad, dil = case
    k = c * mult
    rng = np.random.default_rng(sum(case))
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, 1, r, s)).astype(np.float32)
    bias = rng.standard_normal(k).astype(np.float32)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wtt = torch.tensor(wt, dtype=torch.float64, requires_grad=True)
    y = torch.nn.functional.conv2d(xt, wtt, None, st, pad, dil, c)
    gy = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    y.backward(torch.tensor(gy, dtype=torch.float64))
    p, q = y.shape[2:]
    ints = [n, c, h, w, k, r, s, p, q, st, st, pad, pad, dil, dil]
    res = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    (out,) = _run(harness, tmp_path, "dw_fwd", ints + [1], [x, wt, bias, res], 1)
    expect = torch.relu(y.detach() + torch.tensor(bias, dtype=torch.float64).reshape(1, -1, 1, 1)
                        + torch.tensor(res, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(np.fromfile(out, np.float32).reshape(y.shape), expect, rtol=1e-4, atol=1e-4)
    (out,) = _run(harness, tmp_path, "dw_bwd_data", ints, [gy, wt], 1)
    np.testing.assert_allclose(np.fromfile(out, np.float32).reshape(x.shape), xt.grad.numpy(),
                               rtol=1e-4, atol=1e-4)
    (out,) = _run(harness, tmp_path, "dw_bwd_filter", ints, [x, gy], 1)
    np.testing.assert_allclose(np.fromfile(out, np.float32).reshape(wt.shape), wtt.grad.numpy(),
                               rtol=1e-4, atol=1e-4)


POOL_GRID = [  # (N, C, H, W, kernel, stride, padding, dilation, ceil_mode)
    (1, 2, 9, 7, 3, 2, 1, 1, False),
    (2, 3, 8, 8, 2, 2, 0, 1, False),
    (1, 2, 10, 11, 3, 2, 1, 2, True),
    (1, 1, 7, 7, 3, 3, 1, 1, True),
    (2, 2, 6, 5, 3, 1, 1, 1, False),
]


@pytest.mark.parametrize("case", POOL_GRID)
def test_max_pool_bodies_match_torch(harness, tmp_path, case):
    n, c, h, w, kk, st, pad, dil, ceil = case
    rng = np.random.default_rng(sum(map(int, case)))
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    x[0, 0, 1, 1] = np.nan  # NaN propagates
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = torch.nn.functional.max_pool2d(xt, kk, st, pad, dil, ceil_mode=ceil)
    gy = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    y.backward(torch.tensor(gy, dtype=torch.float64))
    p = pool_out_size(h, kk, st, pad, dil, ceil)
    q = pool_out_size(w, kk, st, pad, dil, ceil)
    assert (p, q) == tuple(y.shape[2:])
    ints = [n * c, h, w, p, q, kk, kk, st, st, pad, pad, dil, dil, 0, 0]
    yo, ao = _run(harness, tmp_path, "maxpool_fwd", ints, [x], 2)
    got = np.fromfile(yo, np.float32).reshape(y.shape)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(y.detach().numpy()))
    np.testing.assert_allclose(got, y.detach().numpy(), rtol=0, atol=0)
    argpos = np.fromfile(ao, np.int16).reshape(y.shape)
    (gxo,) = _run(harness, tmp_path, "maxpool_bwd", ints, [gy, argpos], 1)
    gx = np.fromfile(gxo, np.float32).reshape(x.shape)
    if not np.isnan(x).any() or True:
        # Where a NaN won, PyTorch routes the gradient to that NaN, as we do.
        np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", POOL_GRID)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("divisor", [None, 5])
def test_avg_pool_bodies_match_torch(harness, tmp_path, case, count_include_pad, divisor):
    n, c, h, w, kk, st, pad, _, ceil = case
    rng = np.random.default_rng(sum(map(int, case)))
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = torch.nn.functional.avg_pool2d(xt, kk, st, pad, ceil, count_include_pad, divisor)
    gy = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    y.backward(torch.tensor(gy, dtype=torch.float64))
    p, q = y.shape[2:]
    ints = [n * c, h, w, p, q, kk, kk, st, st, pad, pad, 1, 1, int(count_include_pad), divisor or 0]
    (yo,) = _run(harness, tmp_path, "avgpool_fwd", ints, [x], 1)
    np.testing.assert_allclose(np.fromfile(yo, np.float32).reshape(y.shape), y.detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    (gxo,) = _run(harness, tmp_path, "avgpool_bwd", ints, [gy], 1)
    np.testing.assert_allclose(np.fromfile(gxo, np.float32).reshape(x.shape), xt.grad.numpy(),
                               rtol=1e-5, atol=1e-6)
