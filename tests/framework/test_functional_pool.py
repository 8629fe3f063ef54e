"""Pooling, resampling and padding against PyTorch; gradcheck / gradgradcheck on small inputs."""

import numpy as np
import pytest
from functional_oracle import Const, check

import framework as fw
import framework.functional as F
from framework.testing import gradcheck, gradgradcheck

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _distinct(rng, shape):
    """Values without ties (max pooling's gradient is only defined without them)."""
    n = int(np.prod(shape))
    return rng.permutation(n).reshape(shape) / n + 0.01 * rng.standard_normal(shape)


# kernel, stride, padding, dilation, ceil_mode
MAX_CASES = [
    (2, None, 0, 1, False),
    (3, 2, 1, 1, False),
    (3, 2, 1, 1, True),
    ((3, 2), (2, 1), (1, 0), 1, True),
    (3, 1, 1, 2, False),
    (2, 3, 0, 1, True),
    (3, 3, 1, (2, 1), True),
]


@pytest.mark.parametrize("k,s,p,d,ceil", MAX_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_max_pool2d(k, s, p, d, ceil, dtype, rng):
    x = _distinct(rng, (2, 3, 9, 8))
    check(
        lambda x: F.max_pool2d(x, k, s, p, d, ceil, return_indices=True),
        lambda x: TF.max_pool2d(x, k, s, p, d, ceil, return_indices=True),
        [x],
        dtype=dtype,
    )


def test_max_pool2d_ties_and_unbatched(rng):
    x = np.zeros((3, 4, 4))
    x[:, 1:3, 1:3] = 1.0  # ties inside windows: the first tap wins, as in PyTorch
    check(
        lambda x: F.max_pool2d(x, 3, 1, 1, return_indices=True),
        lambda x: TF.max_pool2d(x, 3, 1, 1, return_indices=True),
        [x],
    )


def test_max_pool1d_and_avg_pool1d(rng):
    x = _distinct(rng, (2, 3, 10))
    check(lambda x: F.max_pool1d(x, 3, 2, 1), lambda x: TF.max_pool1d(x, 3, 2, 1), [x])
    check(lambda x: F.avg_pool1d(x, 3, 2, 1), lambda x: TF.avg_pool1d(x, 3, 2, 1), [x])


# kernel, stride, padding, ceil_mode, count_include_pad, divisor_override
AVG_CASES = [
    (2, None, 0, False, True, None),
    (3, 2, 1, False, True, None),
    (3, 2, 1, True, True, None),
    (3, 2, 1, True, False, None),
    ((3, 2), (2, 1), (1, 1), False, False, None),
    (3, 2, 1, False, True, 5),
    (2, 3, 1, True, True, None),
    (4, 3, 2, True, False, None),
]


@pytest.mark.parametrize("k,s,p,ceil,cip,div", AVG_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_avg_pool2d(k, s, p, ceil, cip, div, dtype, rng):
    x = rng.standard_normal((2, 3, 9, 8))
    check(
        lambda x: F.avg_pool2d(x, k, s, p, ceil, cip, div),
        lambda x: TF.avg_pool2d(x, k, s, p, ceil, cip, div),
        [x],
        dtype=dtype,
    )


@pytest.mark.parametrize("out", [1, (3, 2), (4, 4), (5, 7), (None, 3), (9, 8)])
def test_adaptive_pools(out, rng):
    x = _distinct(rng, (2, 3, 9, 8))
    check(lambda x: F.adaptive_avg_pool2d(x, out), lambda x: TF.adaptive_avg_pool2d(x, out), [x])
    check(
        lambda x: F.adaptive_max_pool2d(x, out, return_indices=True),
        lambda x: TF.adaptive_max_pool2d(x, out, return_indices=True),
        [x],
    )
    check(
        lambda x: F.adaptive_avg_pool2d(x, out),
        lambda x: TF.adaptive_avg_pool2d(x, out),
        [x],
        dtype=np.float32,
    )


def test_pool_second_derivatives(rng):
    x = fw.tensor(_distinct(rng, (1, 2, 5, 5)), dtype=fw.float64, requires_grad=True)
    for f in (
        lambda x: F.max_pool2d(x, 3, 2, 1) ** 2,
        lambda x: F.avg_pool2d(x, 3, 2, 1, True, False) ** 2,
        lambda x: F.adaptive_avg_pool2d(x, (2, 3)) ** 2,
        lambda x: F.adaptive_max_pool2d(x, (2, 3)) ** 2,
    ):
        assert gradcheck(f, (x,))
        assert gradgradcheck(f, (x,))


def test_pool_errors():
    with pytest.raises(RuntimeError, match="max_pool2d.*pad should be at most half"):
        F.max_pool2d(fw.zeros(1, 1, 5, 5), 2, padding=2)
    with pytest.raises(RuntimeError, match="max_pool2d.*too small"):
        F.max_pool2d(fw.zeros(1, 1, 2, 2), 3)
    with pytest.raises(RuntimeError, match=r"avg_pool2d.*3-D or 4-D.*\[5, 5\]"):
        F.avg_pool2d(fw.zeros(5, 5), 2)


# size, scale_factor, mode, align_corners
INTERP_CASES = [
    ((12, 10), None, "nearest", None),
    (None, 2, "nearest", None),
    ((12, 15), None, "nearest", None),  # integer factors 2 and 3: the block-copy path
    (None, (3, 1), "nearest", None),
    (None, (1.5, 0.5), "nearest", None),
    ((5, 4), None, "nearest", None),
    ((7, 13), None, "nearest-exact", None),
    ((12, 10), None, "bilinear", False),
    ((12, 10), None, "bilinear", True),
    (None, 2, "bilinear", False),
    (None, (0.6, 1.7), "bilinear", False),
    ((3, 2), None, "bilinear", True),
    ((1, 1), None, "bilinear", True),
    ((4, 3), None, "area", None),
]


@pytest.mark.parametrize("size,sf,mode,ac", INTERP_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_interpolate_2d(size, sf, mode, ac, dtype, rng):
    x = rng.standard_normal((2, 3, 6, 5))
    check(
        lambda x: F.interpolate(x, size, sf, mode, ac),
        lambda x: TF.interpolate(x, size, sf, mode, ac),
        [x],
        dtype=dtype,
    )


@pytest.mark.parametrize("mode,ac", [("nearest", None), ("linear", False), ("linear", True)])
def test_interpolate_1d_and_3d(mode, ac, rng):
    x = rng.standard_normal((2, 3, 7))
    check(
        lambda x: F.interpolate(x, 11, None, mode, ac), lambda x: TF.interpolate(x, 11, None, mode, ac), [x]
    )
    x = rng.standard_normal((1, 2, 3, 4, 5))
    m3 = "trilinear" if mode == "linear" else mode
    check(
        lambda x: F.interpolate(x, (5, 3, 8), None, m3, ac),
        lambda x: TF.interpolate(x, (5, 3, 8), None, m3, ac),
        [x],
    )
    if mode == "nearest":  # integer upscales (the block-copy path), 1-D and 3-D
        for xs, size in ((rng.standard_normal((2, 3, 7)), 14), (x, (6, 8, 5))):
            check(lambda x, size=size: F.interpolate(x, size, None, mode),
                  lambda x, size=size: TF.interpolate(x, size, None, mode), [xs])


def test_interpolate_recompute_scale_factor(rng):
    x = rng.standard_normal((1, 2, 5, 7))
    check(
        lambda x: F.interpolate(x, scale_factor=1.7, mode="bilinear", recompute_scale_factor=True),
        lambda x: TF.interpolate(x, scale_factor=1.7, mode="bilinear", recompute_scale_factor=True),
        [x],
    )


def test_interpolate_second_derivatives(rng):
    x = fw.tensor(rng.standard_normal((1, 1, 3, 3)), dtype=fw.float64, requires_grad=True)
    f = lambda x: F.interpolate(x, (5, 4), mode="bilinear") ** 2
    assert gradgradcheck(f, (x,))
    f = lambda x: F.interpolate(x, (5, 4), mode="nearest") ** 2
    assert gradgradcheck(f, (x,))
    f = lambda x: F.interpolate(x, scale_factor=(2, 3), mode="nearest") ** 2
    assert gradgradcheck(f, (x,))


def test_interpolate_errors():
    x = fw.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="exactly one of size or scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="bilinear.*4-D"):
        F.interpolate(fw.zeros(1, 1, 4), 5, mode="bilinear")
    with pytest.raises(ValueError, match="align_corners"):
        F.interpolate(x, 5, mode="nearest", align_corners=True)


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("pads", [(1, 2), (2, 1, 0, 3), (1, 1, 2, 2)])
def test_pad(mode, pads, rng):
    x = rng.standard_normal((2, 3, 5, 4) if len(pads) == 4 or mode == "constant" else (2, 3, 5))
    check(lambda x: F.pad(x, pads, mode), lambda x: TF.pad(x, pads, mode), [x])


def test_pad_constant_value_and_negative(rng):
    x = rng.standard_normal((2, 3, 5, 4))
    check(lambda x: F.pad(x, (1, -1, -2, 3), value=2.5), lambda x: TF.pad(x, (1, -1, -2, 3), value=2.5), [x])
    check(lambda x: F.pad(x, (1, 1, 1, 1, 1, 0)), lambda x: TF.pad(x, (1, 1, 1, 1, 1, 0)), [x])
    xt = fw.tensor(rng.standard_normal((1, 2, 3)), dtype=fw.float64, requires_grad=True)
    assert gradgradcheck(lambda x: F.pad(x, (2, 1), "reflect") ** 2, (xt,))
    assert gradgradcheck(lambda x: F.pad(x, (2, -1), value=1.0) ** 2, (xt,))
    with pytest.raises(RuntimeError, match="padding size should be less"):
        F.pad(fw.zeros(1, 1, 3), (3, 0), "reflect")


def test_pixel_shuffle(rng):
    x = rng.standard_normal((2, 8, 3, 4))
    check(lambda x: F.pixel_shuffle(x, 2), lambda x: TF.pixel_shuffle(x, 2), [x])


@pytest.mark.parametrize("ac", [False, True])
def test_interpolate_bilinear_long_axes(ac, rng):
    """Long axes use a gather-and-blend path instead of a dense interpolation matrix."""
    x = rng.standard_normal((1, 2, 70, 9))
    check(
        lambda x: F.interpolate(x, (150, 100), mode="bilinear", align_corners=ac),
        lambda x: TF.interpolate(x, (150, 100), mode="bilinear", align_corners=ac),
        [x],
    )
    check(
        lambda x: F.interpolate(x, scale_factor=0.45, mode="bilinear", align_corners=ac),
        lambda x: TF.interpolate(x, scale_factor=0.45, mode="bilinear", align_corners=ac),
        [x],
        dtype=np.float32,
    )


def test_max_pool2d_propagates_nan():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 1, 0] = np.nan
    y, idx = F.max_pool2d(fw.tensor(x), 2, return_indices=True)
    ty, tidx = TF.max_pool2d(torch.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(np.isnan(y.numpy()), np.isnan(ty.numpy()))
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("ac", [False, True])
def test_grid_sample_and_affine_grid(mode, padding_mode, ac, rng):
    x = rng.standard_normal((2, 3, 5, 6))
    # (reflection: far outside too, where the coordinates fold back more than once)
    grid = rng.uniform(-2.7 if padding_mode == "reflection" else -1.2,
                       2.7 if padding_mode == "reflection" else 1.2, (2, 4, 7, 2))
    check(lambda x, g: F.grid_sample(x, g, mode, padding_mode, ac),
          lambda x, g: TF.grid_sample(x, g, mode, padding_mode, ac),
          [x, grid if mode == "bilinear" else Const(grid)])  # nearest: no gradient for the grid
    theta = rng.standard_normal((2, 2, 3)) * 0.5
    check(lambda t: F.affine_grid(t, (2, 3, 4, 5), ac), lambda t: TF.affine_grid(t, (2, 3, 4, 5), ac),
          [theta])
