"""The CUDA kernels and device support on a real GPU (skipped without CuPy and a CUDA device).

Every kernel against a float64 CPU reference over the issue's shape grid (N=1, odd H/W, C and K not
multiples of the tile, stride 2, padding 0/1/3, dilation 2, groups, 1x1 and 7x7), outputs poisoned
with NaN first so that an unwritten cell fails, tolerances by precision (fp32 exact ~1e-5 relative,
TF32 ~1e-3, fp16 ~5e-3, relative to the reference's largest magnitude); every tile configuration;
determinism; autograd on GPU against the CPU path; a small-CNN training step GPU against CPU.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import framework as fw
import framework.nn  # noqa: F401  (fw.nn)
from framework import backend

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not backend.cuda_available(),
                                                  reason="needs CuPy and a CUDA GPU")]
torch = pytest.importorskip("torch")

if backend.cuda_available():  # pragma: no cover - exercised on GPU machines only
    import cupy as cp

    from framework.kernels.cuda import _loader as L
    from framework.kernels.cuda import conv as cconv
    from framework.kernels.cuda import norm as cnorm
    from framework.kernels.cuda import pool as cpool

    CC = L.device_key()[1]
else:
    cp = None
    CC = 0

TOL = {"fp32": 2e-5, "tf32": 3e-3, "fp16": 6e-3}
PRECISIONS = ["fp32", "tf32", "fp16"]

# (N, C, H, W, K, R, S, stride, padding, dilation, groups)
GRID = [
    (1, 3, 17, 15, 5, 3, 3, 1, 1, 1, 1),
    (2, 16, 12, 12, 24, 3, 3, 2, 1, 1, 1),
    (2, 8, 11, 9, 8, 3, 3, 1, 0, 2, 1),
    (1, 4, 23, 23, 70, 7, 7, 2, 3, 1, 1),
    (2, 64, 9, 7, 136, 1, 1, 1, 0, 1, 1),
    (2, 32, 10, 10, 48, 3, 3, 1, 1, 1, 2),
    (1, 24, 9, 8, 12, 3, 1, (2, 1), (1, 0), (1, 2), 3),
    (3, 130, 7, 7, 66, 3, 3, 1, 1, 1, 1),
    (4, 32, 15, 15, 32, 3, 3, 1, 1, 1, 32),  # depthwise
    (2, 16, 14, 14, 32, 5, 5, 2, 2, 1, 16),  # depthwise, multiplier 2
]


def _pair(v):
    return tuple(v) if isinstance(v, tuple) else (v, v)


class _Precision:
    def __init__(self, prec):
        self.prec = prec

    def __enter__(self):
        self.old = fw.backends.cudnn.allow_tf32
        fw.backends.cudnn.allow_tf32 = self.prec == "tf32"
        return np.float16 if self.prec == "fp16" else np.float32

    def __exit__(self, *exc):
        fw.backends.cudnn.allow_tf32 = self.old


def _poisoned(shape, dtype):
    return cp.full(shape, cp.nan, dtype=dtype)


def _rel_err(got, ref):
    got = np.asarray(got, dtype=np.float64)
    assert np.isfinite(got).all(), "NaN/inf in the output: a cell was not written (or overflowed)"
    return np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30)


def _case(case, dtype, seed=0):
    n, c, h, w, k, r, s, st, pad, dil, g = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = (rng.standard_normal((k, c // g, r, s)) / np.sqrt(c // g * r * s)).astype(dtype)
    geo = (_pair(st), _pair(pad), _pair(dil), g)
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    wtt = torch.tensor(wt.astype(np.float64), requires_grad=True)
    y = torch.nn.functional.conv2d(xt, wtt, None, *geo)
    gy = rng.standard_normal(tuple(y.shape)).astype(dtype)
    y.backward(torch.tensor(gy.astype(np.float64)))
    return x, wt, gy, geo, y.detach().numpy(), xt.grad.numpy(), wtt.grad.numpy()


@pytest.mark.parametrize("prec", PRECISIONS)
@pytest.mark.parametrize("case", GRID, ids=[str(i) for i in range(len(GRID))])
def test_conv_kernels_against_float64(case, prec):
    with _Precision(prec) as dtype:
        x, wt, gy, geo, y_ref, gx_ref, gw_ref = _case(case, dtype)
        xd, wd, gyd = cp.asarray(x), cp.asarray(wt), cp.asarray(gy)
        y = cconv.conv2d_forward(xd, wd, *geo, out=_poisoned(y_ref.shape, dtype))
        gx = cconv.conv2d_backward_input(gyd, wd, x.shape, *geo, out=_poisoned(x.shape, dtype))
        gw = cconv.conv2d_backward_weight(xd, gyd, wt.shape, *geo, out=_poisoned(wt.shape, dtype))
        tol = TOL[prec]
        assert _rel_err(y.get(), y_ref) < tol
        assert _rel_err(gx.get(), gx_ref) < tol
        # backward-filter reduces over N*P*Q terms: allow for the longer sum
        assert _rel_err(gw.get(), gw_ref) < 2 * tol


@pytest.mark.parametrize("math_kind", ["f16", "tf32", "ffma"])
@pytest.mark.parametrize("mode", [0, 1, 2])
def test_every_tile_configuration(math_kind, mode):
    if math_kind != "ffma" and CC < 80:
        pytest.skip("tensor-core paths need sm_80+")
    pool = {"f16": cconv.F16_CONFIGS, "tf32": cconv.TF32_CONFIGS, "ffma": cconv.FFMA_CONFIGS}[math_kind]
    dtype = np.float16 if math_kind == "f16" else np.float32
    for case in [(2, 24, 13, 11, 40, 3, 3, 1, 1, 1, 1), (1, 3, 9, 9, 10, 3, 3, 2, 1, 1, 1)]:
        x, wt, gy, geo, y_ref, gx_ref, gw_ref = _case(case, dtype, seed=1)
        full = cconv._geometry(x.shape, wt.shape, *geo, out_hw=y_ref.shape[2:])
        if mode == 0:
            a, b = cconv.gemm_operands(0, cp, cp.asarray(x), cp.asarray(wt), geo[3])
            ref, shape = y_ref, y_ref.shape
        elif mode == 1:
            a, b = cconv.gemm_operands(1, cp, cp.asarray(gy), cp.asarray(wt), geo[3])
            ref, shape = gx_ref, x.shape
        else:
            a, b = cconv.gemm_operands(2, cp, (cp.asarray(gy), cp.asarray(x)), None, geo[3])
            ref, shape = gw_ref, wt.shape
        for cfg in pool:
            out = _poisoned(shape, dtype)
            # backward-data runs one GEMM per stride phase; together they must write every cell
            for phase in cconv.bwd_data_phases(full) if mode == 1 else [None]:
                cconv._run_igemm(mode, a, b, out, full, cfg, phase=phase)
            tol = {"f16": 6e-3, "tf32": 3e-3, "ffma": 2e-5}[math_kind] * (2 if mode == 2 else 1)
            assert _rel_err(out.get(), ref) < tol, cfg


@pytest.mark.parametrize("act", [None, "relu", "silu"])
def test_fused_epilogue(act):
    x, wt, _, geo, y_ref, _, _ = _case((2, 16, 10, 10, 24, 3, 3, 1, 1, 1, 1), np.float32)
    rng = np.random.default_rng(3)
    bias = rng.standard_normal(24).astype(np.float32)
    res = rng.standard_normal(y_ref.shape).astype(np.float32)
    ref = torch.tensor(y_ref + bias.reshape(1, -1, 1, 1) + res)
    ref = {None: ref, "relu": torch.relu(ref), "silu": torch.nn.functional.silu(ref)}[act].numpy()
    with _Precision("fp32"):
        y = cconv.conv2d_bias_act(cp.asarray(x), cp.asarray(wt), cp.asarray(bias), *geo, activation=act,
                                  residual=cp.asarray(res))
    assert _rel_err(y.get(), ref) < 2e-5


@pytest.mark.parametrize("groups", [1, 16])
@pytest.mark.parametrize("act", [None, "relu", "silu"])
def test_conv2d_bias_act_on_cuda_matches_the_cpu(act, groups):
    """The functional API routes bias, residual and activation into the CUDA kernels' epilogue (the
    implicit-GEMM and the depthwise kernel) and gives what the CPU kernels give."""
    import framework.functional as F

    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 16, 11, 9)).astype(np.float32)
    wt = (rng.standard_normal((16, 16 // groups, 3, 3)) / 6).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    r = rng.standard_normal((2, 16, 11, 9)).astype(np.float32)
    with fw.no_grad():
        cpu = F.conv2d_bias_act(fw.tensor(x), fw.tensor(wt), fw.tensor(b), 1, 1, 1, groups, activation=act,
                                residual=fw.tensor(r)).numpy()
        with _Precision("fp32"):
            gpu = F.conv2d_bias_act(*(fw.tensor(a, device="cuda") for a in (x, wt, b)), 1, 1, 1, groups,
                                    activation=act, residual=fw.tensor(r, device="cuda"))
    assert gpu.device.type == "cuda"
    assert _rel_err(gpu.cpu().numpy(), cpu) < 2e-5


def test_backward_filter_is_deterministic():
    x, wt, gy, geo, *_ = _case((8, 32, 28, 28, 32, 3, 3, 1, 1, 1, 1), np.float32)
    xd, gyd = cp.asarray(x), cp.asarray(gy)
    with _Precision("tf32"):
        a = cconv.conv2d_backward_weight(xd, gyd, wt.shape, *geo).get()
        b = cconv.conv2d_backward_weight(xd, gyd, wt.shape, *geo).get()
    np.testing.assert_array_equal(a, b)


def test_autotuner_caches_one_choice_per_shape():
    old = fw.backends.cudnn.benchmark
    try:
        fw.backends.cudnn.benchmark = True
        L.tuner.clear()
        x, wt, _, geo, y_ref, _, _ = _case((4, 32, 20, 20, 64, 3, 3, 1, 1, 1, 1), np.float32)
        for _ in range(2):
            y = cconv.conv2d_forward(cp.asarray(x), cp.asarray(wt), *geo)
        assert len(L.tuner.cache) == 1
        assert _rel_err(y.get(), y_ref) < TOL["tf32"]
    finally:
        fw.backends.cudnn.benchmark = old


@pytest.mark.parametrize("case", [(2, 3, 9, 7, 3, 2, 1, 1, False), (1, 4, 10, 11, 3, 2, 1, 2, True),
                                  (2, 2, 8, 8, 2, 2, 0, 1, False)])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_pool_kernels(case, dtype):
    n, c, h, w, k, st, pad, dil, ceil = case
    x = np.random.default_rng(0).standard_normal((n, c, h, w)).astype(dtype)
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    y = torch.nn.functional.max_pool2d(xt, k, st, pad, dil, ceil_mode=ceil)
    gy = np.random.default_rng(1).standard_normal(tuple(y.shape)).astype(dtype)
    y.backward(torch.tensor(gy.astype(np.float64)))
    geom = ((k, k), (st, st), (pad, pad), (dil, dil), ceil)
    yd, argpos = cpool.max_pool2d_forward(cp.asarray(x), *geom)
    np.testing.assert_array_equal(yd.get().astype(np.float64), y.detach().numpy())
    gx = cpool.max_pool2d_backward(cp.asarray(gy), argpos, x.shape, *geom)
    np.testing.assert_allclose(gx.get(), xt.grad.numpy(), rtol=1e-3, atol=1e-3)
    for cip in (True, False):
        xt.grad = None
        ya = torch.nn.functional.avg_pool2d(xt, k, st, pad, ceil, cip)
        ya.backward(torch.ones_like(ya))
        ga = ((k, k), (st, st), (pad, pad), ceil, cip, None)
        yad = cpool.avg_pool2d_forward(cp.asarray(x), *ga)
        np.testing.assert_allclose(yad.get(), ya.detach().numpy(), rtol=2e-3, atol=2e-3)
        gxa = cpool.avg_pool2d_backward(cp.ones(yad.shape, dtype), x.shape, *ga)
        np.testing.assert_allclose(gxa.get(), xt.grad.numpy(), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("shape", [(4, 6, 5, 7), (32, 3, 1, 1), (2, 5)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_kernels(shape, training):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 3 + 10).astype(np.float32)  # |mean| >> std: shifted sums
    c = shape[1]
    w, b = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    rm, rv = rng.standard_normal(c).astype(np.float32), rng.random(c).astype(np.float32) + 0.5
    gy = rng.standard_normal(shape).astype(np.float32)
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    wt = torch.tensor(w.astype(np.float64), requires_grad=True)
    bt = torch.tensor(b.astype(np.float64), requires_grad=True)
    trm, trv = torch.tensor(rm.astype(np.float64)), torch.tensor(rv.astype(np.float64))
    y = torch.nn.functional.batch_norm(xt, trm, trv, wt, bt, training, 0.1, 1e-5)
    y.backward(torch.tensor(gy.astype(np.float64)))
    drm, drv = cp.asarray(rm), cp.asarray(rv)
    yd, mean, invstd = cnorm.batch_norm_forward(cp.asarray(x), cp.asarray(w), cp.asarray(b), drm, drv,
                                                training, 0.1, 1e-5)
    np.testing.assert_allclose(yd.get(), y.detach().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(drm.get(), trm.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(drv.get(), trv.numpy(), rtol=1e-4, atol=1e-5)
    gx, gw, gb = cnorm.batch_norm_backward(cp.asarray(gy), cp.asarray(x), cp.asarray(w), mean, invstd,
                                           training)
    np.testing.assert_allclose(gx.get(), xt.grad.numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(gw.get(), wt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gb.get(), bt.grad.numpy(), rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------- framework level

def test_tensors_move_and_mixing_devices_fails_clearly():
    a = fw.randn(3, 4)
    g = a.cuda()
    assert g.device == fw.device("cuda:0") and g.is_cuda
    np.testing.assert_array_equal(g.cpu().numpy(), a.numpy())
    with pytest.raises(RuntimeError, match="same device"):
        a + g


def test_memory_statistics():
    fw.cuda.synchronize()
    fw.cuda.reset_peak_memory_stats()
    before = fw.cuda.memory_allocated()
    t = fw.zeros(1024, 1024, device="cuda")
    assert fw.cuda.memory_allocated() >= before + 4 * 1024 * 1024
    peak = fw.cuda.max_memory_allocated()
    del t
    assert fw.cuda.max_memory_allocated() == peak >= fw.cuda.memory_allocated()
    fw.cuda.empty_cache()
    assert isinstance(fw.cuda.get_device_name(), str)


def test_conv_autograd_gpu_matches_cpu():
    F = pytest.importorskip("framework.nn.functional")
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((2, 8, 11, 11)).astype(np.float32)
    w0 = rng.standard_normal((12, 4, 3, 3)).astype(np.float32) * 0.2
    b0 = rng.standard_normal(12).astype(np.float32)
    grads = {}
    with _Precision("fp32"):
        for dev in ("cpu", "cuda"):
            x = fw.tensor(x0, device=dev, requires_grad=True)
            w = fw.tensor(w0, device=dev, requires_grad=True)
            b = fw.tensor(b0, device=dev, requires_grad=True)
            y = F.conv2d(x, w, b, stride=2, padding=1, groups=2)
            (y * y).sum().backward()
            grads[dev] = [t.detach().cpu().numpy() for t in (y, x.grad, w.grad, b.grad)]
    for a, b in zip(grads["cpu"], grads["cuda"]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype,kernels", [("float64", True), ("float32", False)])
@pytest.mark.parametrize("geom", [
    dict(stride=2, padding=1),  # flat-window im2col over 4 phases
    dict(stride=1, padding=2, dilation=2),  # flat windows over the padded image
    dict(stride=3, padding=1),  # no overlap: the direct strided taps
    dict(stride=2, padding=0, dilation=3),  # a phase whose only tap starts one column in
    dict(stride=1, padding=1, groups=5),  # depthwise: flat patches weighted by batched products
    dict(stride=1, padding=2, dilation=2, groups=5),  # depthwise, dilated
])
def test_generic_conv_on_cupy_matches_cpu(dtype, kernels, geom):
    """float64 (and everything with fw.backends.cudnn.enabled = False) runs the generic array code of
    kernels.cpu.conv on CuPy: forward and both gradients against the CPU, with inf in a pixel no
    window reads for the dilated case (it must not reach any result)."""
    F = pytest.importorskip("framework.nn.functional")
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((3, 5, 21, 101)).astype(dtype)
    groups = geom.get("groups", 1)
    w0 = (rng.standard_normal((5 if groups > 1 else 6, 5 // groups, 3, 3)) * 0.2).astype(dtype)
    if geom.get("dilation") == 3:
        x0[:, :, :, 1] = np.inf  # column 1: phase 1, whose only tap (3 // 2 = 1) starts one column in
    grads = {}
    old = fw.backends.cudnn.enabled
    try:
        fw.backends.cudnn.enabled = kernels
        for dev in ("cpu", "cuda"):
            x = fw.tensor(x0, device=dev, requires_grad=True)
            w = fw.tensor(w0, device=dev, requires_grad=True)
            y = F.conv2d(x, w, **geom)
            (y * y).sum().backward()
            grads[dev] = [t.detach().cpu().numpy() for t in (y, x.grad, w.grad)]
    finally:
        fw.backends.cudnn.enabled = old
    tol = 1e-10 if dtype == "float64" else 1e-4
    for name, a, b in zip(("y", "x.grad", "w.grad"), grads["cpu"], grads["cuda"]):
        assert np.isfinite(a).all() and np.isfinite(b).all(), name
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol, err_msg=name)


def test_small_cnn_training_step_gpu_matches_cpu():
    nn = pytest.importorskip("framework.nn")
    optim = pytest.importorskip("framework.optim")
    F = pytest.importorskip("framework.nn.functional")

    def make():
        fw.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, stride=2, padding=1),
                             nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(32, 5))

    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((8, 3, 16, 16)).astype(np.float32)
    t0 = rng.integers(0, 5, 8)
    out = {}
    with _Precision("fp32"):
        for dev in ("cpu", "cuda"):
            model = make().to(dev)
            opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            for _ in range(2):
                opt.zero_grad()
                loss = F.cross_entropy(model(fw.tensor(x0, device=dev)), fw.tensor(t0, device=dev))
                loss.backward()
                opt.step()
            out[dev] = (loss.item(), {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})
    assert out["cuda"][0] == pytest.approx(out["cpu"][0], rel=1e-4, abs=1e-5)
    for k, v in out["cpu"][1].items():
        np.testing.assert_allclose(out["cuda"][1][k], v, rtol=1e-3, atol=1e-4, err_msg=k)


def test_autocast_cuda_casts_matmul_inputs():
    a = fw.randn(4, 4, device="cuda")
    with fw.autocast("cuda"):
        ca, cb = fw.amp.cast_inputs("matmul", a, a)
        (s,) = fw.amp.cast_inputs("softmax", ca)
    assert ca.dtype == fw.float16 and s.dtype == fw.float32


def test_gradscaler_on_cuda():
    w = fw.tensor(np.ones(3, np.float32), device="cuda", requires_grad=True)

    class Opt:
        param_groups = [{"params": [w]}]
        stepped = 0

        def step(self):
            Opt.stepped += 1

    s = fw.amp.GradScaler()
    (w * float("inf")).sum().backward()
    s.scale(fw.tensor(1.0, device="cuda"))
    assert s.step(Opt()) is None and Opt.stepped == 0
    s.update()
    assert s.get_scale() == 2.0**15


# --------------------------------------------------------------- every op: GPU against CPU
# Each case builds its inputs with T (float leaves that require grad) and I (integer tensors) and
# returns one tensor or a tuple. Run on the CPU and on the GPU from the same seeded data: outputs and
# the gradients of every leaf (through a fixed random projection of the float outputs) must agree.
# The CPU path itself is checked against PyTorch elsewhere; this catches code that is right for
# NumPy arrays but not for CuPy ones.

def _nnf():
    import framework.nn.functional as F

    return F


# the operations of framework/ops/extra.py, compose.py and fw.linalg


def _extra_math(x):
    return (fw.log1p(x.abs()), fw.expm1(x), fw.atan2(x, x.abs() + 1), fw.sinh(x), fw.logaddexp(x, 2 * x),
            fw.erf(x), fw.trunc(3 * x), fw.hypot(x, x + 1), fw.xlogy(x.abs(), x.abs() + 1), fw.sinc(x))


def _einsum_products(T):
    return (fw.einsum("bij,bjk->bik", T(2, 3, 4), T(2, 4, 5)), fw.einsum("...ij->...j", T(3, 2, 4)),
            fw.tensordot(T(2, 3, 4), T(3, 4, 5)), fw.outer(T(3), T(4)), fw.addmm(T(3, 5), T(3, 4), T(4, 5)),
            fw.kron(T(2, 2), T(2, 3)), fw.cross(T(4, 3), T(4, 3), dim=1))


def _triangles_rolls(x):
    return (x.tril(), x.triu(1), x.roll(2, 1), fw.diag(x, 1), fw.diagonal(x), fw.movedim(x, 0, 1),
            fw.rot90(x), x.unfold(1, 3, 2), fw.diff(x, dim=1), fw.diag_embed(x[0]))


def _reductions_extra(x):
    return (fw.median(x, 1)[0], fw.quantile(x, 0.3, dim=1), fw.cumprod(x, 1), fw.cummax(x, 1)[0],
            fw.kthvalue(x, 2, 1)[0], fw.nansum(x), fw.nanmean(x, 0))


def _index_writes(T, I, x):
    dev = x.device
    return (fw.scatter(x, 1, I(6, 4, 2), T(4, 2)), fw.index_add(x, 0, fw.tensor([3, 0], device=dev), T(2, 6)),
            fw.index_fill(x, 1, fw.tensor([1, 4], device=dev), 0.5), fw.take_along_dim(x, I(6, 4, 2), 1),
            fw.repeat_interleave(x, 2, dim=0), fw.masked_select(x, x > 0))


def _linalg_fold(T, a):
    a = a + 3 * fw.eye(3, device=a.device)
    return (fw.linalg.inv(a), fw.linalg.det(a), fw.linalg.solve(a, T(3, 2)), fw.cdist(T(4, 3), T(5, 3)),
            _nnf().fold(T(2, 12, 12), (4, 5), 2), _nnf().rms_norm(T(3, 4), (4,), T(4)))


SWEEP = {
    "arith_broadcast": lambda T, I: (T(3, 1, 4) * T(5, 1) - T(4) / (T(3, 5, 4).abs() + 1)) ** 2,
    "unary": lambda T, I: (lambda x: (x.exp(), x.sin(), x.cos(), x.tanh(), x.sigmoid(), x.relu(),
                                      (x.abs() + 0.1).log(), (x.abs() + 0.1).sqrt(),
                                      x.clamp(-0.5, 0.5)))(T(4, 6)),
    "reductions": lambda T, I: (lambda x: (x.sum(1), x.mean((0, 2), keepdim=True), x.var(1), x.std(2),
                                           x.logsumexp(1), x.cumsum(2), x.norm(), x.amax(0), x.prod(2),
                                           x.max(1)[0], x.argmax(1), x.min(2)[1]))(T(3, 5, 4)),
    "topk_sort": lambda T, I: (lambda x: (*fw.topk(x, 3, dim=1), *fw.sort(x, dim=0)))(T(5, 7)),
    "matmul_batched": lambda T, I: T(2, 3, 4, 5) @ T(3, 5, 6),
    "shape_ops": lambda T, I: (lambda x: (x.permute(2, 0, 1).reshape(4, -1), x.transpose(0, 1).flatten(),
                                          x.unsqueeze(1).expand(3, 2, 5, 4), x.repeat(2, 1, 1),
                                          *x.chunk(2, dim=2), fw.cat([x, x * 2], 1),
                                          fw.stack([x, -x], 0)))(T(3, 5, 4)),
    "indexing": lambda T, I: (lambda x: (x[1:, ::2], x[None, ..., 1], x[x > 0], x[I(4, 6)],
                                         x.gather(1, I(5, 4, 3)),
                                         fw.zeros(4, 5, device=x.device).scatter_add(1, I(5, 4, 3), x[:, :3]),
                                         x.masked_fill(x < 0, 0.5), fw.where(x > 0, x, x * 3)))(T(4, 5)),
    "setitem": lambda T, I: (lambda b, v: (b.__setitem__((slice(1, 3), 2), v), b)[1])(T(4, 5) * 1, T(2)),
    "linear_embedding": lambda T, I: (_nnf().linear(T(6, 5), T(3, 5), T(3)),
                                      _nnf().embedding(I(7, 4, 3), T(7, 5))),
    "conv_variants": lambda T, I: (_nnf().conv2d(T(2, 4, 9, 8), T(6, 4, 3, 3), T(6), padding="same"),
                                   _nnf().conv2d(T(2, 6, 9, 9), T(6, 1, 3, 3), None, 2, 1, groups=6),
                                   _nnf().conv_transpose2d(T(2, 4, 5, 5), T(4, 3, 3, 3), T(3), stride=2,
                                                           padding=1, output_padding=1)),
    "pooling": lambda T, I: (lambda x: (_nnf().max_pool2d(x, 3, 2, 1), _nnf().avg_pool2d(x, 2),
                                        _nnf().adaptive_avg_pool2d(x, (3, 2)),
                                        _nnf().max_pool2d(x, 2, return_indices=True)[1]))(T(2, 3, 9, 7)),
    "interpolate": lambda T, I: (lambda x: (_nnf().interpolate(x, scale_factor=2, mode="nearest"),
                                            _nnf().interpolate(x, size=(7, 9), mode="bilinear"),
                                            _nnf().interpolate(x, size=(8, 3), mode="bilinear",
                                                               align_corners=True)))(T(2, 3, 5, 4)),
    "norms": lambda T, I: (lambda x: (_nnf().batch_norm(x, None, None, T(3), T(3), training=True),
                                      _nnf().layer_norm(x, (5, 4), T(5, 4), T(5, 4)),
                                      _nnf().group_norm(x, 3, T(3), T(3))))(T(4, 3, 5, 4)),
    "activations": lambda T, I: (lambda x: (_nnf().gelu(x), _nnf().silu(x), _nnf().leaky_relu(x, 0.1),
                                            _nnf().softmax(x, 1), _nnf().log_softmax(x, -1),
                                            _nnf().pad(x, (1, 2, 0, 1)),
                                            _nnf().one_hot(I(4, 5), 4)))(T(3, 4, 5)),
    "losses": lambda T, I: (_nnf().cross_entropy(T(6, 4), I(4, 6), weight=T(4, grad=False).abs(),
                                                 label_smoothing=0.1),
                            _nnf().cross_entropy(T(2, 4, 3, 3), I(4, 2, 3, 3), ignore_index=1),
                            _nnf().nll_loss(T(6, 4), I(4, 6), reduction="sum"),
                            _nnf().binary_cross_entropy_with_logits(T(5, 3), T(5, 3, grad=False).sigmoid(),
                                                                    pos_weight=T(3, grad=False).abs()),
                            _nnf().mse_loss(T(4, 3), T(4, 3)), _nnf().l1_loss(T(4, 3), T(4, 3)),
                            _nnf().smooth_l1_loss(T(4, 3), T(4, 3)),
                            _nnf().sigmoid_focal_loss(T(5, 3), (T(5, 3, grad=False) > 0).float(),
                                                      reduction="mean")),
    "extra_math": lambda T, I: _extra_math(T(4, 6)),
    "einsum_products": lambda T, I: _einsum_products(T),
    "triangles_rolls": lambda T, I: _triangles_rolls(T(5, 6)),
    "reductions_extra": lambda T, I: _reductions_extra(T(4, 6)),
    "index_writes": lambda T, I: _index_writes(T, I, T(4, 6)),
    "linalg_fold": lambda T, I: _linalg_fold(T, T(3, 3)),
    "nn_more": lambda T, I: _nn_more(T, I),
}


def _nn_more(T, I):
    F = _nnf()
    sign = (T(5, grad=False) > 0).float() * 2 - 1
    lp = T(7, 2, 5).log_softmax(2)
    return (F.pixel_unshuffle(T(2, 3, 4, 6), 2), F.softmin(T(3, 5), 1),
            F.local_response_norm(T(2, 6, 3, 3), 3), F.pdist(T(5, 4)), F.channel_shuffle(T(2, 6, 3, 3), 3),
            F.adaptive_avg_pool1d(T(2, 3, 10), 4),
            F.celu(T(4, 5), 0.7), F.triplet_margin_loss(T(5, 4), T(5, 4), T(5, 4)),
            F.margin_ranking_loss(T(5), T(5), sign), F.multi_margin_loss(T(5, 4), I(4, 5)),
            F.cosine_embedding_loss(T(5, 4), T(5, 4), sign),
            F.gaussian_nll_loss(T(5, 3), T(5, 3), T(5, 3).abs() + 0.1),
            F.poisson_nll_loss(T(5, 3), T(5, 3, grad=False).abs()), F.soft_margin_loss(T(5, 3), sign[:3]),
            F.hinge_embedding_loss(T(5, 3), sign[:3]),
            F.ctc_loss(lp, I(4, 2, 3) + 1, [7, 6], [3, 2], reduction="sum"))


def _sweep_run(case, dev):
    rng = np.random.default_rng(0)
    leaves = []

    def T(*shape, grad=True):
        t = fw.tensor(rng.standard_normal(shape).astype(np.float32), device=dev, requires_grad=grad)
        if grad:
            leaves.append(t)
        return t

    def ints(high, *shape):
        return fw.tensor(rng.integers(0, high, shape), device=dev)

    out = SWEEP[case](T, ints)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    proj = np.random.default_rng(1)
    loss = None
    for o in outs:
        if o.requires_grad:
            wgt = fw.tensor(proj.standard_normal(tuple(o.shape)).astype(np.float32), device=dev)
            term = (o * wgt).sum()
            loss = term if loss is None else loss + term
    if loss is not None:
        loss.backward()
    res = [o.detach().cpu().numpy() for o in outs]
    return res + [(t.grad.cpu().numpy() if t.grad is not None else None) for t in leaves]


@pytest.mark.parametrize("case", sorted(SWEEP))
def test_every_op_on_gpu_matches_cpu(case):
    with _Precision("fp32"):
        cpu, gpu = _sweep_run(case, "cpu"), _sweep_run(case, "cuda")
    assert len(cpu) == len(gpu)
    for i, (a, b) in enumerate(zip(cpu, gpu)):
        if a is None or b is None:
            assert a is None and b is None, f"{case}[{i}]: gradient present on one device only"
            continue
        assert (a.shape, a.dtype) == (b.shape, b.dtype), f"{case}[{i}]"
        np.testing.assert_allclose(b, a, rtol=2e-4, atol=2e-5, err_msg=f"{case}[{i}]")


# ------------------------------------------------------ modules, optimizers, checkpoints on GPU

def _same_run(build, step, n_steps=3):
    """Run ``step(model, opt, dev)`` n_steps times on the CPU and on the GPU from the same seed; the
    losses and every parameter afterwards must agree."""
    out = {}
    with _Precision("fp32"):
        for dev in ("cpu", "cuda"):
            fw.manual_seed(0)
            model, opt = build()
            model.to(dev)
            losses = [float(step(model, opt, dev)) for _ in range(n_steps)]
            out[dev] = losses, {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    np.testing.assert_allclose(out["cuda"][0], out["cpu"][0], rtol=2e-4, atol=1e-5)
    for k, v in out["cpu"][1].items():
        np.testing.assert_allclose(out["cuda"][1][k], v, rtol=2e-3, atol=2e-4, err_msg=k)


@pytest.mark.parametrize("opt_name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax",
                                      "NAdam", "RAdam", "Rprop", "ASGD", "Adafactor"])
def test_optimizers_and_scheduler_on_gpu_match_cpu(opt_name):
    nn, optim = fw.nn, fw.optim
    rng = np.random.default_rng(0)
    x0, t0 = rng.standard_normal((16, 8)).astype(np.float32), rng.integers(0, 3, 16)

    def build():
        model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 3))
        kw = {"SGD": dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4),
              "Adam": dict(lr=1e-2), "AdamW": dict(lr=1e-2, weight_decay=0.1),
              "RMSprop": dict(lr=1e-2, momentum=0.5, centered=True), "Adagrad": dict(lr=0.1, lr_decay=0.01),
              "Adadelta": dict(lr=1.0, weight_decay=1e-3), "Adamax": dict(lr=1e-2),
              "NAdam": dict(lr=1e-2, decoupled_weight_decay=True, weight_decay=0.01),
              "RAdam": dict(lr=1e-2, weight_decay=1e-3), "Rprop": dict(lr=1e-2),
              "ASGD": dict(lr=0.1, t0=1), "Adafactor": dict(lr=1e-2, weight_decay=0.01)}[opt_name]
        opt = getattr(optim, opt_name)(model.parameters(), **kw)
        opt.sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5)
        return model, opt

    def step(model, opt, dev):
        opt.zero_grad()
        loss = fw.nn.functional.cross_entropy(model(fw.tensor(x0, device=dev)), fw.tensor(t0, device=dev))
        loss.backward()
        fw.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.sched.step()
        return loss.item()

    _same_run(build, step)


def test_lbfgs_with_line_search_on_gpu_matches_cpu():
    rng = np.random.default_rng(0)
    a0, b0 = rng.standard_normal((6, 4)), rng.standard_normal(6)

    def run(dev):
        x = fw.zeros(4, dtype=fw.float64, device=dev, requires_grad=True)
        a, b = fw.tensor(a0, device=dev), fw.tensor(b0, device=dev)
        opt = fw.optim.LBFGS([x], lr=1, max_iter=10, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = ((a @ x - b) ** 2).sum() + 0.1 * (x ** 4).sum()
            loss.backward()
            return loss

        losses = [float(opt.step(closure)) for _ in range(3)]
        return losses, x.detach().cpu().numpy()

    (lc, xc), (lg, xg) = run("cpu"), run("cuda")
    np.testing.assert_allclose(lg, lc, rtol=1e-9)
    np.testing.assert_allclose(xg, xc, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_recurrent_layers_with_packed_sequences_on_gpu_match_cpu(cell):
    nn = fw.nn
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((5, 4, 6)).astype(np.float32)  # (T, B, F), time-major
    lengths = [5, 3, 2, 1]

    def build():
        model = getattr(nn, cell)(6, 8, num_layers=2, bidirectional=True)
        return model, fw.optim.SGD(model.parameters(), lr=0.1)

    def step(model, opt, dev):
        opt.zero_grad()
        packed = nn.utils.rnn.pack_padded_sequence(fw.tensor(x0, device=dev), lengths)
        out, _ = model(packed)
        padded, _ = nn.utils.rnn.pad_packed_sequence(out)
        loss = (padded ** 2).mean()
        loss.backward()
        opt.step()
        return loss.item()

    _same_run(build, step)


def test_attention_and_embedding_on_gpu_match_cpu():
    nn = fw.nn
    rng = np.random.default_rng(0)
    tok = rng.integers(0, 20, (3, 7))
    pad = np.zeros((3, 7), bool)
    pad[1, 5:] = pad[2, 3:] = True

    def build():
        model = nn.ModuleDict({"emb": nn.Embedding(20, 16),
                               "mha": nn.MultiheadAttention(16, 4, batch_first=True)})
        # SGD, not Adam: the key projection's bias has an exactly-zero gradient (softmax ignores a shift
        # shared by every key), so its computed gradient is rounding noise that Adam would scale up to
        # steps of size lr, in directions that differ between devices
        return model, fw.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)

    def step(model, opt, dev):
        opt.zero_grad()
        e = model["emb"](fw.tensor(tok, device=dev))
        y, w = model["mha"](e, e, e, key_padding_mask=fw.tensor(pad, device=dev))
        loss = (y ** 2).mean() + w.sum() * 0
        loss.backward()
        opt.step()
        return loss.item()

    _same_run(build, step)


def test_checkpoint_of_gpu_tensors_round_trips(tmp_path):
    model = fw.nn.Sequential(fw.nn.Conv2d(3, 4, 3), fw.nn.BatchNorm2d(4)).to("cuda")
    opt = fw.optim.Adam(model.parameters(), lr=1e-3)
    model(fw.randn(2, 3, 8, 8, device="cuda")).sum().backward()
    opt.step()
    path = tmp_path / "ckpt.safetensors"
    fw.save({"model": model.state_dict(), "opt": opt.state_dict()}, path)
    back = fw.load(path)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(back["model"][k].numpy(), v.cpu().numpy())
    fresh = fw.nn.Sequential(fw.nn.Conv2d(3, 4, 3), fw.nn.BatchNorm2d(4)).to("cuda")
    fresh.load_state_dict(back["model"])
    assert all(p.device == fw.device("cuda:0") for p in fresh.parameters())


def test_mixed_precision_training_steps_on_gpu():
    nn = fw.nn
    fw.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4)).to("cuda")
    opt = fw.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scaler = fw.amp.GradScaler()
    rng = np.random.default_rng(0)
    x = fw.tensor(rng.standard_normal((8, 3, 16, 16)).astype(np.float32), device="cuda")
    t = fw.tensor(rng.integers(0, 4, 8), device="cuda")
    losses = []
    for _ in range(8):
        opt.zero_grad()
        with fw.autocast("cuda", dtype=fw.float16):
            loss = fw.nn.functional.cross_entropy(model(x), t)
        assert loss.dtype == fw.float32  # losses run in float32 under autocast
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(loss.item())
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert all(p.dtype == fw.float32 for p in model.parameters())


def test_perception_detector_trains_and_detects_on_gpu():
    from apps.perception.model import CenterNet

    rng = np.random.default_rng(0)
    x0 = rng.random((2, 3, 64, 64)).astype(np.float32)

    def build():
        model = CenterNet(width=0.5)
        return model, fw.optim.AdamW(model.parameters(), lr=1e-3)

    def step(model, opt, dev):
        opt.zero_grad()
        heat, reg = model(fw.tensor(x0, device=dev))
        loss = heat.sigmoid().mean() + (reg ** 2).mean()
        loss.backward()
        opt.step()
        return loss.item()

    _same_run(build, step, n_steps=2)


def test_detector_on_cuda_folds_its_batch_norms_on_the_device():
    from apps.perception.detector import Detector
    from apps.perception.model import CenterNet

    fw.manual_seed(0)
    model = CenterNet(width=0.5).eval()
    x = np.random.default_rng(0).random((1, 3, 64, 64)).astype(np.float32)
    with _Precision("fp32"):
        cpu = Detector(model, size=64).forward(x)
        gpu = Detector(model, size=64, device="cuda").forward(x)
    for a, b in zip(cpu, gpu):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)


def test_cuda_graph_replays_what_it_captured_on_new_inputs():
    """Ops (convolutions, pooling, element-wise, reductions) captured once, replayed after the static
    input is overwritten: the same outputs as running them again eagerly, on every replay."""
    import framework.functional as F

    rng = np.random.default_rng(0)
    w = fw.tensor(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), device="cuda")
    w2 = fw.tensor(rng.standard_normal((5, 8, 1, 1)).astype(np.float32), device="cuda")

    def work(x):
        y = F.max_pool2d(F.conv2d(x, w, padding=1).relu(), 2)
        return F.conv2d(y, w2).mean((2, 3)) * 2 + 1, y.amax()

    static = fw.tensor(rng.random((2, 3, 16, 16)).astype(np.float32), device="cuda")
    with fw.no_grad(), _Precision("fp32"):
        work(static)  # eagerly first, as a capture needs
        fw.cuda.synchronize()
        g = fw.cuda.CUDAGraph()
        with fw.cuda.graph(g):
            out, top = work(static)
        assert not fw.cuda.is_current_stream_capturing()
        for seed in (1, 2, 3):
            x = rng.random((2, 3, 16, 16)).astype(np.float32) * seed
            static.copy_(fw.tensor(x, device="cuda"))
            g.replay()
            want, want_top = work(fw.tensor(x, device="cuda"))
            np.testing.assert_allclose(out.cpu().numpy(), want.cpu().numpy(), rtol=1e-5, atol=1e-5)
            assert float(top.cpu().numpy()) == pytest.approx(float(want_top.cpu().numpy()), rel=1e-6)
    g.reset()
    with pytest.raises(RuntimeError, match="nothing captured"):
        g.replay()


@pytest.mark.parametrize("bad", ["host_copy", "cublas"])
def test_cuda_graph_capture_of_uncapturable_work_fails_clearly_and_the_device_still_works(bad):
    x = fw.ones((4, 4), device="cuda")
    g = fw.cuda.CUDAGraph()
    # (CuPy's refusal is a NotImplementedError, which is a RuntimeError, naming cuBLAS and the capture)
    with pytest.raises(RuntimeError, match=None if bad == "host_copy" else "cuBLAS.*capture"):
        with fw.cuda.graph(g):
            if bad == "host_copy":
                (x * 2).cpu()  # waits for the GPU
            else:
                x @ x  # CuPy refuses cuBLAS calls during a capture
    assert not fw.cuda.is_current_stream_capturing()
    with pytest.raises(RuntimeError, match="nothing captured"):
        g.replay()
    np.testing.assert_array_equal((x * 3).cpu().numpy(), np.full((4, 4), 3.0, np.float32))
    np.testing.assert_array_equal((x @ x).cpu().numpy(), np.full((4, 4), 4.0, np.float32))


def test_detector_cuda_graphs_match_eager_across_frames_and_shapes():
    from apps.perception.detector import Detector
    from apps.perception.model import CenterNet

    fw.manual_seed(0)
    model = CenterNet(width=0.5).eval()
    rng = np.random.default_rng(1)
    with _Precision("fp32"):
        graphed = Detector(model, size=96, device="cuda")
        eager = Detector(model, size=96, device="cuda", cuda_graph=False)
        for shape in ((1, 3, 96, 96), (1, 3, 64, 96), (1, 3, 96, 96), (2, 3, 64, 96)):
            x = rng.random(shape).astype(np.float32)
            for a, b in zip(graphed.forward(x), eager.forward(x)):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert graphed.graph_error is None
    assert sorted(graphed._graphs) == [(1, 3, 64, 96), (1, 3, 96, 96), (2, 3, 64, 96)]
    assert not eager._graphs


@pytest.mark.parametrize("dtype", [fw.int64, fw.int32, fw.uint8, fw.bool, fw.float16])
def test_scatter_add_of_every_dtype_on_gpu(dtype):
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 4, (3, 6))
    src = rng.integers(0, 3, (3, 6))
    out = {}
    for dev in ("cpu", "cuda"):
        base = fw.zeros(3, 4, dtype=dtype, device=dev)
        out[dev] = base.scatter_add(1, fw.tensor(idx, device=dev), fw.tensor(src, device=dev).to(dtype))
    np.testing.assert_array_equal(out["cuda"].cpu().numpy(), out["cpu"].numpy())


@pytest.mark.parametrize("layer", ["LSTM", "MultiheadAttention", "GELU"])
def test_layers_under_cuda_autocast(layer):
    nn = fw.nn
    fw.manual_seed(0)
    lin = nn.Linear(8, 8).to("cuda")
    mod = {"LSTM": lambda: nn.LSTM(8, 6), "MultiheadAttention": lambda: nn.MultiheadAttention(8, 2),
           "GELU": nn.GELU}[layer]().to("cuda")
    x = fw.randn(5, 3, 8, device="cuda")
    with fw.autocast("cuda", dtype=fw.float16):
        h = lin(x)
        out = mod(h, h, h)[0] if layer == "MultiheadAttention" else mod(h)
        out = out[0] if isinstance(out, tuple) else out
    assert out.dtype == fw.float16
    out.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == fw.float32 for p in mod.parameters())


def test_dicom_classifier_trains_on_gpu_like_on_cpu():
    from apps.dicom_dx.model import ChestNet

    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((4, 1, 64, 64)).astype(np.float32)
    t0 = rng.integers(0, 2, (4, 1)).astype(np.float32)

    def build():
        model = ChestNet(widths=(8, 8, 16, 16), n_outputs=1)
        return model, fw.optim.AdamW(model.parameters(), lr=1e-3)

    def step(model, opt, dev):
        opt.zero_grad()
        logits = model(fw.tensor(x0, device=dev))
        loss = fw.nn.functional.binary_cross_entropy_with_logits(logits, fw.tensor(t0, device=dev))
        loss.backward()
        opt.step()
        return loss.item()

    _same_run(build, step, n_steps=2)


def test_detector_trains_on_gpu_like_on_cpu(tmp_path):
    """``apps.perception.train`` with ``device="cuda"``: the same losses and weights as on the CPU."""
    from apps.perception.data import build_cache
    from apps.perception.train import train

    data = str(tmp_path / "cache")
    build_cache(data, 6, seed=3, size=64, width=160, height=120)
    kw = dict(val=data, batch=3, size=64, width=0.5, eval_every=2, val_images=6, crop=None, progress=False,
              log_every=1, steps=2)
    runs = {}
    with _Precision("fp32"):
        for dev in ("cpu", "cuda"):
            out = str(tmp_path / dev)
            train(data, out, device=dev, **kw)
            logged = [json.loads(x) for x in open(os.path.join(out, "log.jsonl"))]
            losses = [x["loss"] for x in logged if "loss" in x]
            lrs = [x["lr"] for x in logged if "loss" in x]
            runs[dev] = losses, fw.load(os.path.join(out, "last.safetensors"))
    assert len(runs["cpu"][0]) == 2
    np.testing.assert_allclose(runs["cuda"][0], runs["cpu"][0], rtol=2e-4)
    # AdamW's first step moves every weight by lr * sign(gradient): a gradient within rounding of zero
    # can go either way on the two devices, and move its weight by up to 2 * lr more on one of them.
    # Such weights must be rare (at most 1 in 1000 of a tensor) and stay within that bound; every other
    # weight must agree to the usual float32 tolerance.
    flip = 2 * sum(lrs) * 1.01
    for part in ("model", "ema"):
        for k, v in runs["cpu"][1][part].items():
            got, want = runs["cuda"][1][part][k].numpy(), v.numpy()
            off = ~np.isclose(got, want, rtol=2e-3, atol=2e-4)
            assert off.sum() <= max(1, off.size // 1000), f"{part}.{k}: {off.sum()} of {off.size} differ"
            np.testing.assert_allclose(got, want, rtol=0, atol=flip, err_msg=f"{part}.{k}")


def _grads_on(dev, fn, arrays):
    """fn's value and the gradients of its sum with respect to ``arrays``, computed on ``dev``."""
    ts = [fw.tensor(a, device=dev, requires_grad=True) for a in arrays]
    out = fn(*ts)
    out.sum().backward()
    return [out.detach().cpu().numpy()] + [t.grad.cpu().numpy() for t in ts]


@pytest.mark.parametrize("name", ["gammaln", "digamma", "polygamma1", "erfinv", "ndtri", "ndtr", "erf",
                                  "erfc", "entr", "multigammaln2", "xlogy"])
def test_special_functions_on_gpu_match_cpu(name):
    """fw.special on CuPy (float64): values and first derivatives equal the CPU's."""
    sp = fw.special
    rng = np.random.default_rng(3)
    pos = rng.uniform(0.6, 6.0, 50)
    unit = rng.uniform(-0.95, 0.95, 50)
    fn, args = {
        "gammaln": (sp.gammaln, [pos]), "digamma": (sp.digamma, [pos]),
        "polygamma1": (lambda x: sp.polygamma(1, x), [pos]), "erfinv": (sp.erfinv, [unit]),
        "ndtri": (sp.ndtri, [(unit + 1) / 2]), "ndtr": (sp.ndtr, [unit * 3]), "erf": (sp.erf, [unit * 2]),
        "erfc": (sp.erfc, [unit * 2]), "entr": (sp.entr, [pos]),
        "multigammaln2": (lambda x: sp.multigammaln(x, 2), [pos + 1]),
        "xlogy": (sp.xlogy, [unit, pos]),
    }[name]
    cpu, gpu = _grads_on("cpu", fn, args), _grads_on("cuda", fn, args)
    for a, b in zip(gpu, cpu):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_distributions_on_gpu_match_cpu():
    """log_prob, entropy, KL and rsample gradients of the distributions on CuPy (float64) equal the CPU's;
    samples drawn on the GPU stay on it and have the right moments."""
    D = fw.distributions
    rng = np.random.default_rng(5)
    loc, scale = rng.standard_normal(6), rng.uniform(0.5, 2.0, 6)
    value = rng.standard_normal(6)
    a = rng.standard_normal((3, 3))
    cov = a @ a.T + 3 * np.eye(3)

    def total(loc_t, scale_t):
        dev = loc_t.device
        n = D.Normal(loc_t, scale_t)
        lap = D.Laplace(loc_t, scale_t)
        mvn = D.MultivariateNormal(loc_t[:3], covariance_matrix=fw.tensor(cov, device=dev) * scale_t[0])
        mvn0 = D.MultivariateNormal(fw.zeros(3, dtype=fw.float64, device=dev),
                                    covariance_matrix=fw.tensor(cov, device=dev))
        v = fw.tensor(value, device=dev)
        parts = [n.log_prob(v).sum(), n.entropy().sum(), lap.log_prob(v).sum(), n.cdf(v).sum(),
                 D.kl_divergence(n, D.Normal(loc_t * 0, scale_t * 0 + 1)).sum(),
                 mvn.log_prob(v[:3]), D.kl_divergence(mvn, mvn0),
                 D.Beta(scale_t, scale_t + 1).log_prob(fw.tensor(np.full(6, 0.3), device=dev)).sum(),
                 D.Categorical(logits=loc_t).entropy()]
        return sum(parts[1:], parts[0]).reshape(1)

    cpu, gpu = _grads_on("cpu", total, [loc, scale]), _grads_on("cuda", total, [loc, scale])
    for x, y in zip(gpu, cpu):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-11)
    fw.manual_seed(0)
    s = D.Normal(fw.tensor(loc, device="cuda"), fw.tensor(scale, device="cuda")).rsample((20000,))
    assert s.device.type == "cuda"
    got = s.cpu().numpy()
    np.testing.assert_allclose(got.mean(0), loc, atol=5 * scale.max() / np.sqrt(20000))
    np.testing.assert_allclose(got.std(0), scale, rtol=0.05)


@pytest.mark.parametrize("case", [
    dict(x=(2, 3, 9, 10, 8), w=(5, 3, 3, 3, 3), stride=1, padding=1, groups=1),
    dict(x=(1, 4, 8, 9, 7), w=(6, 2, 3, 2, 3), stride=(2, 1, 2), padding=(1, 0, 1), groups=2),
    dict(x=(2, 4, 7, 7, 7), w=(4, 1, 3, 3, 3), stride=2, padding=1, groups=4),
])
def test_conv3d_and_3d_pools_on_gpu_match_cpu(case):
    """conv3d, conv_transpose3d and the 3-D pools on CuPy (the generic vol2col code) against the CPU,
    values and gradients, float64."""
    F = fw.nn.functional
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal(case["x"]), rng.standard_normal(case["w"])
    geo = dict(stride=case["stride"], padding=case["padding"], groups=case["groups"])

    def f(xt, wt):
        y = F.conv3d(xt, wt, **geo)
        z = F.conv_transpose3d(y, wt, **geo)
        pooled = 0.5 * (F.max_pool3d(z, 2, ceil_mode=True) ** 2).sum() + 0.3 * (
            F.avg_pool3d(z, 3, stride=1, padding=1) ** 2).sum()
        return ((y ** 2).sum() + pooled + (F.adaptive_avg_pool3d(z, (2, 3, 1)) ** 2).sum()).reshape(1)

    cpu, gpu = _grads_on("cpu", f, [x, w]), _grads_on("cuda", f, [x, w])
    for a, b in zip(gpu, cpu):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(b).max()))


def test_session_f_additions_on_gpu_match_cpu():
    """linalg decompositions and matrix functions, logcumsumexp, cov, embedding_bag, the new
    distributions' log-densities and KLs, and the pruning / parametrization utilities on CuPy against
    the CPU (float64, values and gradients)."""
    F = fw.nn.functional
    D = fw.distributions
    rng = np.random.default_rng(17)
    a = rng.standard_normal((2, 4, 4))
    w = rng.standard_normal((12, 3))

    def total(at, wt):
        dev = at.device
        sym = (at + at.transpose(-1, -2)) / 2
        lam, vec = fw.linalg.eigh(sym)
        u, s, vh = fw.linalg.svd(at[..., :3], full_matrices=False)
        q, r = fw.linalg.qr(at)
        idx = fw.tensor(np.array([1, 2, 4, 4, 0, 7, 11]), device=dev)
        off = fw.tensor(np.array([0, 3, 3]), device=dev)
        parts = [lam.sum(), ((vec ** 2) * at.abs()).sum(), s.sum(), (u * u * at[..., :3]).sum(),
                 (r ** 2).sum(), fw.linalg.matrix_exp(at * 0.3).sum(),
                 fw.linalg.matrix_power(at, 3).sum() * 1e-3, fw.linalg.pinv(at).sum(),
                 fw.logcumsumexp(at, -1).sum(), fw.cov(at[0]).sum(),
                 F.embedding_bag(idx, wt, off, mode="max").sum(),
                 F.embedding_bag(idx, wt, off, mode="mean").sum(),
                 D.Gamma(at.abs() + 0.5, at.abs() + 1).log_prob(at.abs() + 0.1).sum(),
                 D.kl_divergence(D.Dirichlet(at.abs()[0] + 0.5), D.Dirichlet(at.abs()[1] + 0.5)).sum(),
                 D.StudentT(at.abs() + 1).log_prob(at).sum()]
        return sum(parts[1:], parts[0]).reshape(1)

    cpu, gpu = _grads_on("cpu", total, [a, w]), _grads_on("cuda", total, [a, w])
    for x, y in zip(gpu, cpu):
        np.testing.assert_allclose(x, y, rtol=1e-8, atol=1e-9 * max(1.0, np.abs(y).max()))
    # pruning and a parametrization of a layer on the GPU
    from framework.nn.utils import parametrizations, prune

    lin = fw.nn.Linear(6, 5).double().to("cuda")
    prune.l1_unstructured(lin, "weight", 0.4)
    assert lin.weight_mask.device.type == "cuda" and int((lin.weight_mask.cpu().numpy() == 0).sum()) == 12
    sn = parametrizations.spectral_norm(fw.nn.Linear(6, 5).double().to("cuda"))
    assert sn(fw.ones(2, 6, dtype=fw.float64, device="cuda")).device.type == "cuda"


def test_fft_and_complex_ops_on_gpu_match_cpu():
    """fw.fft on cuFFT (through CuPy) and the complex operations: values and gradients equal the CPU's,
    single precision kept."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 8, 6))
    z = rng.standard_normal((3, 8, 6)) + 1j * rng.standard_normal((3, 8, 6))

    def total(xt, zt):
        spec = fw.fft.rfft2(xt, norm="ortho")
        parts = [fw.abs(spec).sum(), fw.real(fw.fft.fftn(zt, s=(4, 7), dim=(0, 2)) * 0.5j).sum(),
                 fw.fft.irfft(zt, n=9).sum(), fw.angle(zt * fw.conj(zt[:1])).sum(),
                 fw.view_as_real(fw.fft.fftshift(fw.exp(zt * 0.1), dim=1)).sum(),
                 fw.fft.hfft(zt[..., :4], n=6).pow(2).sum() * 1e-2]
        return sum(parts[1:], parts[0]).reshape(1)

    cpu, gpu = _grads_on("cpu", total, [x, z]), _grads_on("cuda", total, [x, z])
    for a, b in zip(gpu, cpu):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(b).max()))
    single = fw.fft.rfft(fw.tensor(x.astype(np.float32), device="cuda"))
    assert single.dtype == fw.complex64 and single.device.type == "cuda"


def _later_ops_total(xt, zt, mt):
    """One scalar through the operations added after the last GPU run (stats, misc, complex, spectral,
    lgamma), float64; each term is differentiable in the inputs it reads."""
    dev = xt.device
    x2 = xt[0]  # (5, 6)
    ints = fw.tensor(np.array([[0, 2, 1], [3, 3, 0]]), device=dev)
    mask = fw.tensor(np.arange(30).reshape(5, 6) % 3 == 0, device=dev)
    idx = fw.tensor(np.array([0, 2, 2, 4]), device=dev)
    sig = xt.reshape(-1)[:40]
    win = fw.hann_window(8, dtype=fw.float64, device=dev)
    spec = fw.stft(sig, 8, hop_length=2, window=win, return_complex=True)
    sign, logabs = fw.slogdet(mt)
    mant, expo = fw.frexp(x2)
    parts = [
        fw.corrcoef(x2).sum(), fw.trapezoid(x2, dim=1).sum(), fw.cumulative_trapezoid(x2, dx=0.5).sum(),
        (fw.block_diag(x2[:2, :3], x2[2:, 3:]) ** 2).sum(), fw.cartesian_prod(x2[0], x2[1, :2]).prod(1).sum(),
        fw.combinations(x2[0], 2).prod(1).sum(), fw.copysign(x2, -x2[0]).sum(),
        fw.renorm(xt, 2, 0, 1.5).pow(2).sum(), fw.vander(x2[0, :4], 3).sum(), fw.nanmedian(x2, 1)[0].sum(),
        (mant * expo).sum() + fw.ldexp(x2, fw.tensor(np.full((5, 6), 2), device=dev)).sum(),
        logabs.sum() + (sign * 0).sum() + fw.logdet(mt @ mt.transpose(-1, -2) + fw.eye(4, device=dev)).sum(),
        fw.mv(x2, x2[0]).sum(), fw.addmv(x2[:, 0], x2, x2[1], beta=0.5, alpha=2).sum(),
        fw.addr(x2, x2[:, 1], x2[2], alpha=0.3).sum(),
        fw.addbmm(x2[:, :5], xt[:, :, :4], xt[:, :4, :5]).sum(),
        fw.chain_matmul(x2, x2.T, x2).sum(), fw.diagflat(x2[0], 1).sum(),
        fw.index_put(x2, (ints[0], ints[1]), x2[0, :3] * 2, accumulate=True).pow(2).sum(),
        fw.masked_scatter(x2, mask, xt[1]).pow(2).sum(),
        fw.put(x2, idx, x2[4, :4], accumulate=True).pow(2).sum(),
        fw.float_power(x2.abs() + 0.5, 1.5).sum(), x2.floor_divide(0.7).sum() * 0 + x2.sum(),
        fw.scatter_reduce(x2, 1, fw.tensor(np.tile([0, 1, 1, 2, 5, 5], (5, 1)), device=dev), xt[1], "amax",
                          include_self=False).pow(2).sum(),
        fw.index_reduce(x2, 0, idx, xt[2, :4], "mean").pow(2).sum(), fw.lgamma(x2.abs() + 0.5).sum(),
        fw.index_reduce(x2, 0, idx, xt[2, :4] * (xt[2, :4].abs() > 0.3), "prod", include_self=False).sum(),
        fw.imag(zt * zt).sum(), fw.sgn(zt).real.sum(), fw.vdot(zt.reshape(-1), zt.reshape(-1) * 1j).real,
        fw.polar(x2.abs() + 0.1, x2).imag.sum(), fw.view_as_complex(xt[..., :2].contiguous()).abs().sum(),
        fw.abs(spec).sum(), fw.istft(spec, 8, hop_length=2, window=win, length=40).pow(2).sum(),
        fw.i0(x2).sum(), fw.logaddexp2(x2, x2.flip(0)).sum(),
        sum(p.pow(2).sum() for p in fw.hsplit(x2, [2, 5])),
    ]
    return sum(parts[1:], parts[0]).reshape(1)


def _later_ops_values(dev):
    """The later operations without gradients (integer, histogram, unique, random-free), on ``dev``."""
    rng = np.random.default_rng(5)
    x = fw.tensor(rng.standard_normal((7, 9)), device=dev)
    a = fw.tensor(rng.integers(1, 60, (4, 5)), device=dev)
    b = fw.tensor(rng.integers(1, 60, (4, 5)), device=dev)
    u = fw.tensor(np.array([1, 1, 2, 2, 2, 3, 1, 1]), device=dev)
    vals, inv, counts = fw.unique_consecutive(u, return_inverse=True, return_counts=True)
    hist, edges = fw.histogram(x.reshape(-1), bins=6)
    return [fw.histc(x, bins=7, min=-2, max=2), hist, edges, fw.gcd(a, b), fw.lcm(a, b), vals, inv, counts,
            fw.heaviside(x, fw.tensor(0.5, dtype=fw.float64, device=dev)), fw.signbit(x), fw.bitwise_not(a),
            fw.mode(a % 4, 1)[0], fw.floor_divide(a, 7), fw.combinations(u[:4], 3, with_replacement=True),
            fw.nextafter(x, fw.zeros_like(x))]


def test_later_operations_on_gpu_match_cpu():
    """The stats, misc, complex and spectral operations added since the last GPU run, on CuPy against
    the CPU: values and gradients (float64), and the operations without gradients value for value."""
    rng = np.random.default_rng(21)
    x = rng.standard_normal((3, 5, 6))
    z = rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4))
    m = rng.standard_normal((2, 4, 4)) + 3 * np.eye(4)
    cpu, gpu = _grads_on("cpu", _later_ops_total, [x, z, m]), _grads_on("cuda", _later_ops_total, [x, z, m])
    for a, b in zip(gpu, cpu):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-9 * max(1.0, np.abs(b).max()))
    for i, (c, g) in enumerate(zip(_later_ops_values("cpu"), _later_ops_values("cuda"))):
        assert g.device.type == "cuda", i
        g = g.cpu().numpy()
        c = c.numpy()
        assert (g.shape, g.dtype) == (c.shape, c.dtype), i
        if c.dtype.kind == "f":  # (histogram edges: linspace may differ in the last bit)
            np.testing.assert_allclose(g, c, rtol=1e-12, atol=1e-12, err_msg=str(i))
        else:
            np.testing.assert_array_equal(g, c, err_msg=str(i))


def _later_layers_total(xt, wt):
    """Functional layers added after the last GPU run, float64: fractional max pooling with fixed
    samples, max unpooling, instance norm, LP pooling, feature-wise and 1-D/3-D padding layers."""
    F = fw.nn.functional
    dev = xt.device
    samples = fw.tensor(np.linspace(0.1, 0.9, 2 * 3 * 2).reshape(2, 3, 2), dtype=fw.float64, device=dev)
    frac, where = F.fractional_max_pool2d(xt, 2, output_size=(4, 5), return_indices=True,
                                          _random_samples=samples)
    pooled, pidx = F.max_pool2d(xt, 2, return_indices=True)
    parts = [frac.pow(2).sum(), (where.double() * 1e-3).sum(),
             F.max_unpool2d(pooled, pidx, 2, output_size=xt.shape[-2:]).mul(wt).sum(),
             F.instance_norm(xt, weight=wt[0, 0, 0, :3], bias=wt[0, 0, 1, :3]).pow(3).sum(),
             F.lp_pool2d(xt.abs() + 0.1, 2.0, 3, stride=2).sum(),
             fw.nn.ReflectionPad1d(2)(xt[:, :, 0]).pow(2).sum(), fw.nn.ReplicationPad3d(1)(xt[None]).sum(),
             F.gumbel_softmax(xt, tau=0.5).sum() * 0]
    return sum(parts[1:], parts[0]).reshape(1)


def test_later_layers_on_gpu_match_cpu():
    """Layers added since the last GPU run on CuPy against the CPU: functional values and gradients;
    lazy layers materialised on the device; AdaptiveLogSoftmaxWithLoss, SyncBatchNorm and an SWA
    average with update_bn trained the same on both devices."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 9, 11))
    w = rng.standard_normal((2, 3, 9, 11))
    cpu, gpu = _grads_on("cpu", _later_layers_total, [x, w]), _grads_on("cuda", _later_layers_total, [x, w])
    for a, b in zip(gpu, cpu):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(b).max()))

    nn = fw.nn
    lazy = nn.Sequential(nn.LazyConv2d(4, 3), nn.LazyBatchNorm2d(), nn.Flatten(), nn.LazyLinear(2)).to("cuda")
    y = lazy(fw.randn(2, 3, 6, 6, device="cuda"))
    assert y.device.type == "cuda" and all(p.device.type == "cuda" for p in lazy.parameters())
    assert tuple(lazy[3].weight.shape) == (2, 64)

    x0, t0 = rng.standard_normal((12, 8)).astype(np.float32), rng.integers(0, 10, 12)

    def build():
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Sequential(nn.Linear(8, 16), nn.SyncBatchNorm(16), nn.ReLU())
                self.head = nn.AdaptiveLogSoftmaxWithLoss(16, 10, [4, 7])

            def forward(self, x, t):
                return self.head(self.body(x), t).loss

        model = Net()
        return model, fw.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(model, opt, dev):
        opt.zero_grad()
        loss = model(fw.tensor(x0, device=dev), fw.tensor(t0, device=dev))
        loss.backward()
        opt.step()
        if not hasattr(model, "swa"):
            model.swa = fw.optim.swa_utils.AveragedModel(model.body)
        model.swa.update_parameters(model.body)
        fw.optim.swa_utils.update_bn([fw.tensor(x0, device=dev)], model.swa)
        return loss.item() + float(model.swa.module[1].running_var.sum().item())

    _same_run(build, step)


def test_deterministic_mode_refuses_cuda_float_scatter_adds():
    """Under use_deterministic_algorithms(True) the float scatter-adds on CUDA (atomic additions) raise, as
    PyTorch's; integer ones (exact in any order) and the CPU's do not."""
    idx = fw.tensor(np.array([0, 1, 1, 3]), device="cuda")
    try:
        fw.use_deterministic_algorithms(True)
        with pytest.raises(RuntimeError, match="deterministic"):
            fw.zeros(4, device="cuda").index_add(0, idx, fw.ones(4, device="cuda"))
        with pytest.raises(RuntimeError, match="deterministic"):
            fw.bincount(idx, weights=fw.ones(4, device="cuda"))
        ones = fw.ones(4, dtype=fw.int64, device="cuda")
        counts = fw.zeros(4, dtype=fw.int64, device="cuda").index_add(0, idx, ones)
        assert counts.cpu().numpy().tolist() == [1, 2, 0, 1]
        fw.zeros(4).index_add(0, idx.cpu(), fw.ones(4))  # (the CPU's: fine)
    finally:
        fw.use_deterministic_algorithms(False)
