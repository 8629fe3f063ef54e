"""Volumes: conv3d, conv_transpose3d, conv_transpose1d and 3-D pooling against PyTorch (values and
gradients), second derivatives, the modules' state dicts and reprs, and errors."""

import numpy as np
import pytest
from functional_oracle import check

import framework as fw
import framework.functional as F
import framework.nn as nn
from framework.kernels.cpu import conv3d as k3
from framework.testing import gradcheck, gradgradcheck

torch = pytest.importorskip("torch")
TF = torch.nn.functional

# (N, C, D, H, W, K, kernel, stride, padding, dilation, groups)
CONV3D_CASES = [
    (2, 4, 5, 6, 7, 6, 3, 1, 1, 1, 1),
    (2, 4, 7, 6, 5, 6, 3, 2, 1, 1, 2),  # stride 2, odd sizes, groups
    (1, 3, 5, 7, 6, 3, (1, 3, 3), 1, (0, 1, 1), 1, 1),  # anisotropic kernel (slice-wise 2-D)
    (2, 4, 6, 5, 7, 4, 3, (2, 1, 2), (1, 0, 2), (2, 1, 1), 4),  # depthwise, dilated, uneven geometry
    (1, 3, 5, 6, 4, 6, 3, 1, 1, 1, 3),  # depthwise with multiplier 2
    (3, 4, 3, 4, 5, 5, 1, 1, 0, 1, 1),  # 1x1x1: a plain product
    (2, 4, 5, 5, 5, 4, 1, 2, 1, 1, 2),  # strided 1x1x1 with padding, grouped
    (2, 2, 6, 6, 6, 3, 2, 3, 0, 1, 1),  # stride larger than the kernel: some voxels unused
    (1, 2, 7, 5, 6, 3, (3, 2, 4), (1, 2, 3), (1, 1, 2), (2, 1, 1), 1),
]


@pytest.mark.parametrize("case", CONV3D_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv3d_matches_torch(case, dtype, rng):
    n, c, d, h, w, k, ks, s, p, dil, g = case
    ks = (ks,) * 3 if isinstance(ks, int) else ks
    x = rng.standard_normal((n, c, d, h, w))
    wt = rng.standard_normal((k, c // g) + ks)
    b = rng.standard_normal(k)
    check(lambda x, w, b: F.conv3d(x, w, b, s, p, dil, g),
          lambda x, w, b: TF.conv3d(x, w, b, s, p, dil, g), [x, wt, b], dtype=dtype)


@pytest.mark.parametrize("ks,dil", [(3, 1), ((2, 3, 4), 1), (2, 3), ((3, 1, 2), (1, 2, 2))])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_conv3d_string_padding(ks, dil, padding, rng):
    ks = (ks,) * 3 if isinstance(ks, int) else ks
    x = rng.standard_normal((2, 2, 6, 7, 5))
    wt = rng.standard_normal((3, 2) + ks)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about even kernels with 'same'
            y = check(lambda x, w: F.conv3d(x, w, None, 1, padding, dil),
                      lambda x, w: TF.conv3d(x, w, None, 1, padding, dil), [x, wt])
    if padding == "same":
        assert tuple(y[0].shape[2:]) == (6, 7, 5)


def test_conv3d_unbatched_and_no_bias(rng):
    x = rng.standard_normal((3, 4, 5, 6))
    wt = rng.standard_normal((2, 3, 3, 3, 3))
    y = check(lambda x, w: F.conv3d(x, w, padding=1), lambda x, w: TF.conv3d(x, w, padding=1), [x, wt])
    assert tuple(y[0].shape) == (2, 4, 5, 6)


def test_conv3d_in_pieces_matches_torch(rng, monkeypatch):
    """A tiny piece budget forces bands of output slices (one image) and single-image pieces."""
    monkeypatch.setattr(k3, "PIECE_BYTES", 3000)
    monkeypatch.setattr(k3, "SLICES_PIECE_BYTES", 3000)
    x = rng.standard_normal((3, 3, 7, 6, 5))
    wt = rng.standard_normal((4, 3, 3, 3, 3))
    b = rng.standard_normal(4)
    check(lambda x, w, b: F.conv3d(x, w, b, (2, 1, 1), 1), lambda x, w, b: TF.conv3d(x, w, b, (2, 1, 1), 1),
          [x, wt, b])
    check(lambda x, w, b: F.conv_transpose3d(x, w, b, 2, 1, 1),
          lambda x, w, b: TF.conv_transpose3d(x, w, b, 2, 1, 1), [x, wt.transpose(1, 0, 2, 3, 4).copy(), b])


# (N, C, D, H, W, K, kernel, stride, padding, dilation, groups): odd depth geometry for the 2-D route
SLICE_CASES = [
    (2, 3, 4, 5, 6, 4, 3, 1, (4, 1, 0), 1, 1),  # depth padding beyond the kernel's reach: empty taps
    (1, 4, 9, 5, 5, 6, 3, (2, 1, 1), (1, 1, 1), (3, 1, 2), 2),  # stride and dilation in depth, groups
    (2, 2, 7, 4, 5, 3, (4, 2, 3), (3, 2, 1), (2, 0, 1), (1, 2, 1), 1),  # stride > 1 and even kernel
    (1, 4, 5, 6, 6, 4, (3, 1, 1), 1, (1, 0, 0), 1, 4),  # depth-only kernel (1x1 in-plane), depthwise
    (2, 3, 5, 5, 6, 3, (3, 3, 3), 1, 0, 2, 3),  # dilation spanning the whole depth: one output slice
]


@pytest.mark.parametrize("case", SLICE_CASES)
@pytest.mark.parametrize("budget", [None, 2000])
def test_conv3d_2d_route_matches_vol2col_and_torch(case, budget, rng, monkeypatch):
    """The 2-D route (depth taps stacked as channels of 2-D convolutions) against vol2col and PyTorch,
    whole and in pieces of a few output slices."""
    if budget:
        monkeypatch.setattr(k3, "SLICES_PIECE_BYTES", budget)
    n, c, d, h, w, k, ks, s, p, dil, g = case
    ks = (ks,) * 3 if isinstance(ks, int) else ks
    s, p, dil = ((v,) * 3 if isinstance(v, int) else v for v in (s, p, dil))
    x = rng.standard_normal((n, c, d, h, w))
    wt = rng.standard_normal((k, c // g) + ks)
    b = rng.standard_normal(k)
    assert k3._use_slices(x, wt.shape, s, p)
    y = k3.conv3d_forward(x, wt, s, p, dil, g, bias=b)
    ref = TF.conv3d(torch.tensor(x), torch.tensor(wt), torch.tensor(b), s, p, dil, g).numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(y, k3._vol2col_forward(x, wt, s, p, dil, g, bias=b), rtol=1e-10, atol=1e-10)
    gy = rng.standard_normal(y.shape)
    tol = dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(k3.conv3d_backward_input(gy, wt, x.shape, s, p, dil, g),
                               k3._vol2col_backward_input(gy, wt, x.shape, s, p, dil, g), **tol)
    np.testing.assert_allclose(k3.conv3d_backward_weight(x, gy, wt.shape, s, p, dil, g),
                               k3._vol2col_backward_weight(x, gy, wt.shape, s, p, dil, g), **tol)
    check(lambda x, w, b: F.conv3d(x, w, b, s, p, dil, g), lambda x, w, b: TF.conv3d(x, w, b, s, p, dil, g),
          [x, wt, b])


def test_conv3d_2d_route_float32_winograd_layer(rng):
    """A layer whose stacked 2-D convolution takes Winograd (3x3, >= 32 channels, 16x16): float32 rounding."""
    x = rng.standard_normal((1, 16, 4, 16, 16)).astype(np.float32)
    wt = (rng.standard_normal((8, 16, 3, 3, 3)) / 12).astype(np.float32)
    y = k3.conv3d_forward(x, wt, (1, 1, 1), (1, 1, 1), (1, 1, 1), 1)
    ref = TF.conv3d(torch.tensor(x), torch.tensor(wt), None, 1, 1).numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(wt, requires_grad=True)
    TF.conv3d(tx, tw, None, 1, 1).backward(torch.tensor(gy))
    np.testing.assert_allclose(k3.conv3d_backward_input(gy, wt, x.shape, (1,) * 3, (1,) * 3, (1,) * 3, 1),
                               tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(k3.conv3d_backward_weight(x, gy, wt.shape, (1,) * 3, (1,) * 3, (1,) * 3, 1),
                               tw.grad.numpy(), rtol=1e-4, atol=2e-3)


# (N, Cin, D, H, W, Cout, kernel, stride, padding, output_padding, groups, dilation)
TRANSPOSE3D_CASES = [
    (2, 4, 3, 4, 5, 6, 3, 2, 1, 1, 1, 1),
    (1, 4, 3, 3, 4, 4, (1, 3, 3), (1, 2, 2), (0, 1, 1), (0, 1, 0), 2, 1),
    (2, 3, 3, 4, 3, 2, 3, 1, 0, 0, 1, 2),
    (1, 6, 2, 3, 3, 6, 2, 3, 1, 2, 3, 1),
    (2, 2, 3, 3, 2, 3, 2, 1, 0, (1, 0, 1), 1, 2),  # output_padding < dilation with stride 1
    (2, 3, 2, 3, 4, 3, 1, 1, 0, 0, 3, 1),  # depthwise 1x1x1
]


@pytest.mark.parametrize("case", TRANSPOSE3D_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv_transpose3d_matches_torch(case, dtype, rng):
    n, ci, d, h, w, co, ks, s, p, op, g, dil = case
    ks = (ks,) * 3 if isinstance(ks, int) else ks
    x = rng.standard_normal((n, ci, d, h, w))
    wt = rng.standard_normal((ci, co // g) + ks)
    b = rng.standard_normal(co)
    check(lambda x, w, b: F.conv_transpose3d(x, w, b, s, p, op, g, dil),
          lambda x, w, b: TF.conv_transpose3d(x, w, b, s, p, op, g, dil), [x, wt, b], dtype=dtype)


@pytest.mark.parametrize("case", [(2, 4, 7, 6, 3, 2, 1, 1, 2, 1), (1, 3, 5, 2, 4, 1, 0, 0, 1, 2),
                                  (2, 2, 6, 4, 2, 3, 1, 2, 2, 1)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv_transpose1d_matches_torch(case, dtype, rng):
    n, ci, length, co, k, s, p, op, g, dil = case
    x = rng.standard_normal((n, ci, length))
    wt = rng.standard_normal((ci, co // g, k))
    b = rng.standard_normal(co)
    check(lambda x, w, b: F.conv_transpose1d(x, w, b, s, p, op, g, dil),
          lambda x, w, b: TF.conv_transpose1d(x, w, b, s, p, op, g, dil), [x, wt, b], dtype=dtype)


def test_unbatched_transposed(rng):
    x = rng.standard_normal((2, 3, 4, 3))
    wt = rng.standard_normal((2, 3, 2, 2, 2))
    y = check(lambda x, w: F.conv_transpose3d(x, w, None, 2), lambda x, w: TF.conv_transpose3d(x, w, None, 2),
              [x, wt])
    assert tuple(y[0].shape) == (3, 6, 8, 6)
    x1 = rng.standard_normal((2, 5))
    check(lambda x, w: F.conv_transpose1d(x, w, None, 2), lambda x, w: TF.conv_transpose1d(x, w, None, 2),
          [x1, rng.standard_normal((2, 3, 3))])


# ----------------------------------------------------------------------------- pooling

# (shape, kernel, stride, padding, dilation, ceil_mode)
MAXPOOL_CASES = [
    ((2, 3, 6, 6, 6), 2, None, 0, 1, False),
    ((2, 2, 7, 5, 6), 3, 2, 1, 1, False),
    ((1, 2, 7, 5, 6), 3, 2, 1, 1, True),
    ((1, 2, 5, 7, 8), (1, 3, 3), (1, 2, 2), (0, 1, 1), 1, False),
    ((2, 2, 7, 7, 7), 2, (2, 1, 3), (1, 0, 1), (2, 3, 1), True),
    ((3, 5, 6, 4), 2, 1, 0, 1, False),  # unbatched
]


@pytest.mark.parametrize("case", MAXPOOL_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_max_pool3d_matches_torch(case, dtype, rng):
    shape, k, s, p, d, ceil = case
    x = rng.standard_normal(shape)
    ys = check(lambda x: F.max_pool3d(x, k, s, p, d, ceil, return_indices=True),
               lambda x: TF.max_pool3d(x, k, s, p, d, ceil, return_indices=True), [x], dtype=dtype)
    assert ys[1].dtype == fw.int64
    check(lambda x: F.max_pool3d(x, k, s, p, d, ceil), lambda x: TF.max_pool3d(x, k, s, p, d, ceil), [x],
          dtype=dtype)


def test_max_pool3d_ties_and_nan_follow_torch(rng):
    x = rng.integers(0, 2, (1, 2, 4, 4, 4)).astype(np.float64)  # many ties: the first tap wins
    check(lambda x: F.max_pool3d(x, 2, 1, return_indices=True),
          lambda x: TF.max_pool3d(x, 2, 1, return_indices=True), [x])
    x[0, 0, 1, 1, 1] = np.nan
    y = F.max_pool3d(fw.tensor(x), 2)
    assert np.isnan(y.numpy()[0, 0, 0, 0, 0]) and not np.isnan(y.numpy()[0, 1]).any()


# (shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVGPOOL_CASES = [
    ((2, 3, 6, 6, 6), 2, None, 0, False, True, None),
    ((2, 2, 7, 5, 6), 3, 2, 1, False, True, None),
    ((2, 2, 7, 5, 6), 3, 2, 1, False, False, None),
    ((1, 2, 7, 5, 6), 3, 2, 1, True, False, None),
    ((1, 2, 7, 5, 6), 3, 2, 1, True, True, None),
    ((1, 2, 5, 7, 8), (1, 3, 2), (1, 2, 2), (0, 1, 1), True, True, 5),
    ((3, 5, 6, 4), 2, 1, 0, False, True, None),  # unbatched
]


@pytest.mark.parametrize("case", AVGPOOL_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_avg_pool3d_matches_torch(case, dtype, rng):
    shape, k, s, p, ceil, cip, div = case
    x = rng.standard_normal(shape)
    check(lambda x: F.avg_pool3d(x, k, s, p, ceil, cip, div),
          lambda x: TF.avg_pool3d(x, k, s, p, ceil, cip, div), [x], dtype=dtype)


@pytest.mark.parametrize("shape,out", [((2, 3, 6, 6, 6), 2), ((2, 3, 5, 7, 6), (2, 3, 4)),
                                       ((1, 2, 5, 7, 6), (None, 3, 1)), ((2, 4, 5, 6), 1),
                                       ((1, 2, 4, 6, 8), (4, 3, 2)), ((1, 2, 3, 4, 5), (5, 6, 7))])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adaptive_pool3d_matches_torch(shape, out, dtype, rng):
    x = rng.standard_normal(shape)
    check(lambda x: F.adaptive_avg_pool3d(x, out), lambda x: TF.adaptive_avg_pool3d(x, out), [x], dtype=dtype)
    check(lambda x: F.adaptive_max_pool3d(x, out, True), lambda x: TF.adaptive_max_pool3d(x, out, True), [x],
          dtype=dtype)


# ----------------------------------------------------------------------------- second derivatives


def _t(a):
    return fw.tensor(a, dtype=fw.float64, requires_grad=True)


@pytest.mark.parametrize("s,p,d,g", [(1, 1, 1, 1), (2, 0, 1, 2), (1, (1, 0, 1), (2, 1, 1), 1), (1, 0, 1, 2)])
def test_conv3d_gradcheck_and_gradgradcheck(s, p, d, g, rng):
    x = _t(rng.standard_normal((1, 2, 4, 3, 4)))
    w = _t(rng.standard_normal((2, 2 // g, 2, 2, 2)))
    b = _t(rng.standard_normal(2))
    f = lambda x, w, b: F.conv3d(x, w, b, s, p, d, g)
    assert gradcheck(f, (x, w, b))
    assert gradgradcheck(f, (x, w, b))


@pytest.mark.parametrize("s,op,d", [(2, 1, 1), (1, 1, 2)])
def test_conv_transpose3d_and_1d_gradgradcheck(s, op, d, rng):
    x = _t(rng.standard_normal((1, 2, 2, 3, 2)))
    w = _t(rng.standard_normal((2, 1, 2, 2, 2)))
    b = _t(rng.standard_normal(1))
    f = lambda x, w, b: F.conv_transpose3d(x, w, b, s, 0, op, 1, d)
    assert gradcheck(f, (x, w, b))
    assert gradgradcheck(f, (x, w, b))
    x1, w1 = _t(rng.standard_normal((2, 2, 4))), _t(rng.standard_normal((2, 2, 3)))
    f1 = lambda x, w: F.conv_transpose1d(x, w, None, s, 1, op, 1, d)
    assert gradcheck(f1, (x1, w1))
    assert gradgradcheck(f1, (x1, w1))


def test_pool3d_gradcheck_and_gradgradcheck(rng):
    x = _t(rng.permutation(96).reshape(1, 2, 4, 3, 4) / 10.0)  # distinct values: max is differentiable
    for f in (lambda x: F.max_pool3d(x, 2, 1, 1, ceil_mode=True),
              lambda x: F.avg_pool3d(x, 2, 1, 1, True, False),
              lambda x: F.adaptive_avg_pool3d(x, (3, 2, 3)), lambda x: F.adaptive_max_pool3d(x, (3, 2, 3))):
        assert gradcheck(f, (x,))
        assert gradgradcheck(f, (x,))


# ----------------------------------------------------------------------------- modules


def _load_torch_state(m, tm):
    m.load_state_dict({k: fw.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})


MODULES = [
    (lambda M: M.Conv3d(2, 4, 3, padding=1), (2, 2, 5, 6, 4)),
    (lambda M: M.Conv3d(4, 4, (1, 3, 3), stride=2, groups=2, bias=False), (1, 4, 5, 6, 7)),
    (lambda M: M.Conv3d(2, 3, (2, 3, 3), padding="same", dilation=(1, 2, 1)), (1, 2, 5, 6, 7)),
    (lambda M: M.Conv3d(2, 3, 3, padding=(1, 2, 0), padding_mode="reflect"), (1, 2, 5, 6, 7)),
    (lambda M: M.Conv3d(2, 3, 3, padding="same", padding_mode="replicate"), (2, 5, 6, 7)),
    (lambda M: M.Conv3d(2, 3, 3, padding=1, padding_mode="circular"), (1, 2, 4, 5, 6)),
    (lambda M: M.ConvTranspose3d(4, 2, 3, stride=2, padding=1, output_padding=1, groups=2), (1, 4, 3, 4, 2)),
    (lambda M: M.ConvTranspose1d(3, 4, 3, stride=2, bias=False), (2, 3, 5)),
    (lambda M: M.MaxPool3d(2, ceil_mode=True), (1, 2, 5, 6, 7)),
    (lambda M: M.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1), return_indices=True), (1, 2, 3, 6, 7)),
    (lambda M: M.AvgPool3d(3, 2, 1, count_include_pad=False), (1, 2, 5, 6, 7)),
    (lambda M: M.AvgPool3d(2, divisor_override=3), (1, 2, 4, 6, 6)),
    (lambda M: M.AdaptiveAvgPool3d((2, None, 3)), (1, 2, 5, 6, 7)),
    (lambda M: M.AdaptiveMaxPool3d(2, return_indices=True), (1, 2, 5, 6, 7)),
]


@pytest.mark.parametrize("make,shape", MODULES)
def test_modules_match_torch(make, shape, rng):
    m, tm = make(nn).double(), make(torch.nn).double()
    assert repr(m) == repr(tm)
    ours = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert ours == {k: tuple(v.shape) for k, v in tm.state_dict().items()}
    _load_torch_state(m, tm)
    x = rng.standard_normal(shape)
    check(lambda x: m(x), lambda x: tm(x), [x])


@pytest.mark.parametrize("make", [lambda M: M.Conv3d(3, 8, (2, 3, 4), groups=1),
                                  lambda M: M.ConvTranspose3d(4, 6, 3, groups=2),
                                  lambda M: M.ConvTranspose1d(4, 6, 5)])
def test_default_initialisation_is_torch_bound(make):
    """kaiming_uniform(a=sqrt(5)): weights and bias uniform within 1/sqrt(fan_in), fan_in = dim 1 x taps."""
    m, tm = make(nn), make(torch.nn)
    assert tuple(m.weight.shape) == tuple(tm.weight.shape)
    w = m.weight.detach().numpy()
    bound = 1 / np.sqrt(np.prod(w.shape[1:]))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert np.abs(m.bias.detach().numpy()).max() <= bound


def test_conv3d_module_trains(rng):
    m = nn.Conv3d(2, 3, 3, padding=1)
    x = fw.tensor(rng.standard_normal((2, 2, 4, 4, 4)).astype(np.float32))
    m(x).square().mean().backward()
    assert m.weight.grad.shape == m.weight.shape and m.bias.grad.shape == m.bias.shape


def test_autocast_runs_conv3d_in_half(rng):
    x = fw.tensor(rng.standard_normal((1, 2, 3, 4, 4)).astype(np.float32))
    w = fw.tensor(rng.standard_normal((3, 2, 3, 3, 3)).astype(np.float32))
    wt = fw.tensor(rng.standard_normal((2, 3, 2)).astype(np.float32))
    with fw.autocast("cpu"):
        assert F.conv3d(x, w, padding=1).dtype == fw.float16
        assert F.conv_transpose3d(x, w.transpose(0, 1)).dtype == fw.float16
        assert F.conv_transpose1d(x[0, :, 0, 0], wt).dtype == fw.float16


# ----------------------------------------------------------------------------- errors


def _z(*shape):
    return fw.zeros(*shape)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: F.conv3d(_z(1, 2, 4, 4, 4), _z(3, 2, 3, 3)), RuntimeError,
     r"conv3d: expected a 5-D weight.*\[3, 2, 3, 3\]"),
    (lambda: F.conv3d(_z(2, 4, 4), _z(3, 2, 3, 3, 3)), RuntimeError, r"conv3d: expected 4-D .*\[2, 4, 4\]"),
    (lambda: F.conv3d(_z(1, 3, 4, 4, 4), _z(3, 2, 3, 3, 3)), RuntimeError, r"conv3d: .*to have 2 channels"),
    (lambda: F.conv3d(_z(1, 4, 4, 4, 4), _z(3, 2, 3, 3, 3), groups=2), RuntimeError, r"conv3d: .*divisible"),
    (lambda: F.conv3d(_z(1, 2, 2, 4, 4), _z(3, 2, 3, 3, 3)), RuntimeError, r"conv3d: calculated output size"),
    (lambda: F.conv3d(_z(1, 2, 4, 4, 4), _z(3, 2, 3, 3, 3), _z(2)), RuntimeError, r"conv3d: expected bias"),
    (lambda: F.conv3d(_z(1, 2, 4, 4, 4), _z(3, 2, 3, 3, 3), stride=2, padding="same"), ValueError, "strided"),
    (lambda: F.conv3d(_z(1, 2, 4, 4, 4), _z(3, 2, 3, 3, 3), padding="full"), ValueError, "invalid padding"),
    (lambda: F.conv3d(_z(1, 2, 4, 4, 4), _z(3, 2, 3, 3, 3), stride=(1, 2)), ValueError, "stride"),
    (lambda: F.conv_transpose3d(_z(1, 2, 3, 3, 3), _z(2, 2, 3, 3, 3), stride=2, output_padding=2),
     RuntimeError, "conv_transpose3d: output padding"),
    (lambda: F.conv_transpose3d(_z(1, 3, 3, 3, 3), _z(2, 2, 3, 3, 3)), RuntimeError,
     "conv_transpose3d: .*channels"),
    (lambda: F.conv_transpose1d(_z(1, 2, 3, 3), _z(2, 2, 3)), RuntimeError,
     r"conv_transpose1d: .*\[1, 2, 3, 3\]"),
    (lambda: F.conv_transpose1d(_z(1, 3, 5), _z(2, 2, 3)), RuntimeError, "conv_transpose1d: .*3 channels"),
    (lambda: F.max_pool3d(_z(2, 4, 4), 2), RuntimeError, r"max_pool3d: expected 4-D .*\[2, 4, 4\]"),
    (lambda: F.max_pool3d(_z(1, 1, 4, 4, 4), 2, padding=2), RuntimeError, "max_pool3d: pad should be"),
    (lambda: F.max_pool3d(_z(1, 1, 1, 4, 4), 2), RuntimeError, "max_pool3d: .*too small"),
    (lambda: F.avg_pool3d(_z(1, 1, 4, 4, 4), 2, divisor_override=0), RuntimeError, "divisor must be"),
    (lambda: F.avg_pool3d(_z(1, 1, 4, 4, 4), 0), RuntimeError, "avg_pool3d: kernel_size"),
    (lambda: F.adaptive_avg_pool3d(_z(1, 1, 4, 4, 4), (2, 2)), ValueError, "adaptive_avg_pool3d"),
    (lambda: F.adaptive_max_pool3d(_z(1, 4, 4), 2), RuntimeError, "adaptive_max_pool3d"),
    (lambda: nn.ConvTranspose3d(2, 2, 3, padding_mode="reflect"), ValueError, "ConvTranspose3d"),
    (lambda: nn.Conv3d(3, 2, 3, groups=2), ValueError, "in_channels must be divisible"),
    (lambda: nn.Conv3d(2, 2, 3, stride=2, padding="same"), ValueError, "strided"),
])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
