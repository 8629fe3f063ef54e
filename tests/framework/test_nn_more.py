"""The less common torch.nn pieces against PyTorch: pixel (un)shuffle, channel shuffle, softmin /
Softmax2d, CELU, Threshold, adaptive 1-D average pooling, local response norm, alpha dropout, pdist,
the margin / embedding / likelihood losses, BatchNorm3d and the fixed-mode upsampling layers.

Each is checked for values and gradients (float64 and float32) on random inputs and named edge cases,
every reduction, finite-difference gradients (and gradients of gradients), its module against the
functional form, and its errors."""

import math
import re

import numpy as np
import pytest
from functional_oracle import Const, check

import framework as fw
import framework.functional as F
from framework import nn
from framework.testing import gradcheck, gradgradcheck

torch = pytest.importorskip("torch")
TF = torch.nn.functional

# PyTorch's deprecation warnings for what the tests call on purpose (default softmin dim, legacy arguments)
pytestmark = pytest.mark.filterwarnings("ignore:Implicit dimension choice:UserWarning",
                                        "ignore:size_average and reduce args:UserWarning")

REDUCTIONS = ["none", "mean", "sum"]
DTYPES = [np.float64, np.float32]


def leaf(a):
    return fw.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


def grads_ok(fn, *arrays, second=True):
    """gradcheck (and gradgradcheck) of ``fn`` in float64 at the given arrays."""
    xs = tuple(leaf(a) for a in arrays)
    assert gradcheck(fn, xs)
    if second:
        assert gradgradcheck(fn, xs)


def away_from_zero(rng, shape, gap=0.05):
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < gap, gap * 2, x)


# ============================================================================= pixel and channel shuffle


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,r", [((1, 2, 4, 6), 2), ((2, 3, 6, 3), 3), ((3, 1, 5, 5), 1),
                                     ((1, 1, 3, 3), 3), ((2, 1, 3, 4, 4), 2), ((2, 4, 6), 2)])
def test_pixel_unshuffle_and_shuffle_match_torch(shape, r, dtype, rng):
    x = rng.standard_normal(shape)
    check(lambda a: F.pixel_unshuffle(a, r), lambda a: TF.pixel_unshuffle(a, r), [x], dtype=dtype)
    up = rng.standard_normal(shape[:-3] + (shape[-3] * r * r, shape[-2] // r or 1, shape[-1] // r or 1))
    check(lambda a: F.pixel_shuffle(a, r), lambda a: TF.pixel_shuffle(a, r), [up], dtype=dtype)
    y = F.pixel_unshuffle(fw.tensor(x), r)
    np.testing.assert_array_equal(F.pixel_shuffle(y, r).numpy(), x)  # inverses


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,groups", [((2, 6, 3), 2), ((1, 6, 2, 3), 3), ((2, 4, 1, 2, 3), 4),
                                          ((1, 5, 2), 1), ((3, 4, 2, 2), 2)])
def test_channel_shuffle_matches_torch(shape, groups, dtype, rng):
    x = rng.standard_normal(shape)
    check(lambda a: F.channel_shuffle(a, groups), lambda a: TF.channel_shuffle(a, groups), [x], dtype=dtype)
    t, f = torch.nn.ChannelShuffle(groups), nn.ChannelShuffle(groups)
    np.testing.assert_array_equal(f(fw.tensor(x)).numpy(), t(torch.tensor(x)).numpy())
    assert repr(f) == repr(t) and list(f.state_dict()) == []


def test_shuffles_of_an_empty_batch():
    # PyTorch's pixel_unshuffle returns an empty input with its own shape, (0, 2, 4, 4); ours has the shape
    # the operation gives any batch, which pixel_shuffle maps back (PyTorch's pixel_shuffle does too).
    y = F.pixel_unshuffle(fw.zeros(0, 2, 4, 4), 2)
    assert tuple(y.shape) == (0, 8, 2, 2)
    assert tuple(F.pixel_shuffle(y, 2).shape) == tuple(TF.pixel_shuffle(torch.zeros(0, 8, 2, 2), 2).shape)
    assert tuple(F.channel_shuffle(fw.zeros(0, 4, 2), 2).shape) == (0, 4, 2)


def test_shuffles_differentiable_twice(rng):
    grads_ok(lambda a: F.pixel_unshuffle(a, 2), rng.standard_normal((1, 2, 2, 4)))
    grads_ok(lambda a: F.pixel_shuffle(a, 2), rng.standard_normal((1, 4, 1, 2)))
    grads_ok(lambda a: F.channel_shuffle(a, 2), rng.standard_normal((1, 4, 3)))


@pytest.mark.parametrize("call,exc,match", [
    (lambda: F.pixel_unshuffle(fw.zeros(4, 4), 2), RuntimeError,
     r"pixel_unshuffle.*at least 3 dim.*\[4, 4\]"),
    (lambda: F.pixel_unshuffle(fw.zeros(1, 1, 3, 4), 2), RuntimeError,
     r"height.*size\(-2\)=3.*\[1, 1, 3, 4\]"),
    (lambda: F.pixel_unshuffle(fw.zeros(1, 1, 4, 3), 2), RuntimeError, r"width.*size\(-1\)=3"),
    (lambda: F.pixel_unshuffle(fw.zeros(1, 1, 4, 4), 0), RuntimeError, "pixel_unshuffle.*positive.*got 0"),
    (lambda: F.pixel_unshuffle(fw.zeros(1, 1, 4, 4), -1), RuntimeError, "positive downscale_factor"),
    (lambda: F.pixel_unshuffle(fw.zeros(1, 1, 4, 4), 2.0), TypeError, "downscale_factor.*int"),
    (lambda: F.pixel_shuffle(fw.zeros(4, 4), 2), RuntimeError, "pixel_shuffle.*at least 3 dim"),
    (lambda: F.pixel_shuffle(fw.zeros(1, 3, 4, 4), 2), RuntimeError, "size\\(-3\\)=3 is not divisible by 4"),
    (lambda: F.pixel_shuffle(fw.zeros(1, 4, 4, 4), 0), RuntimeError, "positive upscale_factor"),
    (lambda: F.channel_shuffle(fw.zeros(1, 6), 2), RuntimeError, r"channel_shuffle.*> 2 dims.*\[1, 6\]"),
    (lambda: F.channel_shuffle(fw.zeros(1, 5, 2), 2), RuntimeError, "5 channels and 2 groups"),
    (lambda: F.channel_shuffle(fw.zeros(1, 4, 2), 0), RuntimeError, "groups.*positive.*got 0"),
    (lambda: nn.PixelUnshuffle(3)(fw.zeros(1, 1, 4, 6)), RuntimeError, "pixel_unshuffle.*height"),
])
def test_shuffle_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ============================================================================= softmin, Softmax2d, CELU, ...


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dim", [((3, 5), 1), ((2, 3, 4), None), ((2, 3, 4), -1), ((5,), None),
                                       ((2, 3, 2, 2), None), ((1, 1), 0)])
def test_softmin_matches_torch(shape, dim, dtype, rng):
    x = rng.standard_normal(shape) * 3
    x.reshape(-1)[:2] = 1.5  # a tie
    check(lambda a: F.softmin(a, dim), lambda a: TF.softmin(a, dim), [x], dtype=dtype)
    t, f = torch.nn.Softmin(dim), nn.Softmin(dim)
    np.testing.assert_allclose(f(fw.tensor(x)).numpy(), t(torch.tensor(x)).numpy(), rtol=1e-12)
    assert repr(f) == repr(t)


def test_softmin_dtype_and_grads(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    y = F.softmin(fw.tensor(x), 1, dtype=fw.float64)
    assert y.dtype == fw.float64
    ref = TF.softmin(torch.tensor(x), 1, dtype=torch.float64).numpy()
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12)
    grads_ok(lambda a: F.softmin(a, 0), rng.standard_normal((3, 2)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 2, 2), (1, 1, 1, 1)])
def test_softmax2d_matches_torch(shape, dtype, rng):
    x = rng.standard_normal(shape)
    check(nn.Softmax2d(), torch.nn.Softmax2d(), [x], dtype=dtype)
    assert repr(nn.Softmax2d()) == repr(torch.nn.Softmax2d())


@pytest.mark.parametrize("shape", [(3, 4), (5,), (1, 2, 3, 4, 5)])
def test_softmax2d_rejects_other_ranks(shape):
    with pytest.raises(ValueError, match=f"Softmax2d: expected input to be 3D or 4D, got {len(shape)}D"):
        nn.Softmax2d()(fw.zeros(*shape))


def _edge_values(rng):
    x = rng.standard_normal(20) * 2
    x[:6] = [0.0, -0.0, 0.5, -0.5, 30.0, -30.0]  # zeros, the threshold exactly, the tails
    return x.reshape(4, 5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.5])
def test_celu_matches_torch(alpha, dtype, rng):
    x = _edge_values(rng)
    # PyTorch's celu backward multiplies by a single-precision 1/alpha even in float64.
    rtol = 1e-7 if dtype == np.float64 and alpha != 1.0 else None
    check(lambda a: F.celu(a, alpha), lambda a: TF.celu(a, alpha), [x], dtype=dtype, rtol=rtol)
    check(nn.CELU(alpha), torch.nn.CELU(alpha), [x], dtype=dtype, rtol=rtol)
    assert repr(nn.CELU(alpha)) == repr(torch.nn.CELU(alpha))
    grads_ok(lambda a: F.celu(a, alpha), away_from_zero(rng, (2, 3)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("thr,value", [(0.5, -2.0), (0.0, 0.0), (-0.5, 7.0)])
def test_threshold_matches_torch(thr, value, dtype, rng):
    x = _edge_values(rng)
    check(lambda a: F.threshold(a, thr, value), lambda a: TF.threshold(a, thr, value), [x], dtype=dtype)
    check(nn.Threshold(thr, value), torch.nn.Threshold(thr, value), [x], dtype=dtype)
    assert repr(nn.Threshold(thr, value)) == repr(torch.nn.Threshold(thr, value))
    xs = away_from_zero(rng, (2, 3)) + thr
    grads_ok(lambda a: F.threshold(a, thr, value), xs)


def test_threshold_keeps_nan_and_celu_rejects_zero_alpha():
    x = np.array([np.nan, 1.0, -1.0])
    np.testing.assert_array_equal(F.threshold(fw.tensor(x), 0.0, 5.0).numpy(),
                                  TF.threshold(torch.tensor(x), 0.0, 5.0).numpy())
    with pytest.raises(RuntimeError, match="celu: alpha cannot be 0"):
        F.celu(fw.ones(3), 0.0)


@pytest.mark.parametrize("name,ours,theirs", [
    ("celu", lambda a: F.celu(a, 0.5, inplace=True), lambda a: TF.celu(a, 0.5, inplace=True)),
    ("threshold", lambda a: F.threshold(a, 0.1, 3.0, inplace=True),
     lambda a: TF.threshold(a, 0.1, 3.0, True)),
    ("CELU", nn.CELU(0.5, inplace=True), torch.nn.CELU(0.5, inplace=True)),
    ("Threshold", nn.Threshold(0.1, 3.0, inplace=True), torch.nn.Threshold(0.1, 3.0, inplace=True)),
])
def test_inplace_activation_writes_input_and_backpropagates(name, ours, theirs, rng):
    x = rng.standard_normal((3, 4))
    fx, tx = leaf(x), torch.tensor(x, requires_grad=True)
    fh, th = fx * 1.0, tx * 1.0  # in place on a non-leaf
    fy, ty = ours(fh), theirs(th)
    assert fy is fh
    np.testing.assert_allclose(fh.detach().numpy(), th.detach().numpy(), rtol=1e-7)
    g = rng.standard_normal((3, 4))
    (fy * fw.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-7)


# ============================================================================= adaptive_avg_pool1d


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,out", [((2, 3, 7), 3), ((2, 3, 8), 4), ((1, 2, 5), 5), ((1, 1, 3), 5),
                                       ((2, 2, 7), 1), ((1, 3, 1), 3), ((4, 9), 4), ((3, 6), (2,)),
                                       ((0, 2, 5), 2), ((2, 3, 100), 7)])
def test_adaptive_avg_pool1d_matches_torch(shape, out, dtype, rng):
    x = rng.standard_normal(shape)
    check(lambda a: F.adaptive_avg_pool1d(a, out), lambda a: TF.adaptive_avg_pool1d(a, out), [x], dtype=dtype)
    t, f = torch.nn.AdaptiveAvgPool1d(out), nn.AdaptiveAvgPool1d(out)
    np.testing.assert_allclose(f(fw.tensor(x)).numpy(), t(torch.tensor(x)).numpy(), rtol=1e-12, atol=1e-15)
    assert repr(f) == repr(t)


def test_adaptive_avg_pool1d_empty_output_and_grads(rng):
    y = F.adaptive_avg_pool1d(fw.ones(1, 3, 5), 0)
    assert tuple(y.shape) == tuple(TF.adaptive_avg_pool1d(torch.ones(1, 3, 5), 0).shape) == (1, 3, 0)
    for length, out in ((7, 3), (4, 2), (3, 5)):
        grads_ok(lambda a, out=out: F.adaptive_avg_pool1d(a, out), rng.standard_normal((1, 2, length)))


@pytest.mark.parametrize("call,exc,match", [
    (lambda: F.adaptive_avg_pool1d(fw.zeros(5), 2), RuntimeError, r"adaptive_avg_pool1d.*2-D.*3-D.*\[5\]"),
    (lambda: F.adaptive_avg_pool1d(fw.zeros(1, 2, 3, 4), 2), RuntimeError,
     r"adaptive_avg_pool1d.*\[1, 2, 3, 4\]"),
    (lambda: F.adaptive_avg_pool1d(fw.zeros(1, 2, 5), (2, 2)), RuntimeError, "one int \\(got 2\\)"),
    (lambda: F.adaptive_avg_pool1d(fw.zeros(1, 2, 5), None), TypeError, "output_size"),
    (lambda: F.adaptive_avg_pool1d(fw.zeros(1, 2, 5), -1), RuntimeError, ">= 0, got -1"),
    (lambda: F.adaptive_avg_pool1d(fw.zeros(1, 2, 0), 2), RuntimeError, r"non-zero size.*\[1, 2, 0\]"),
])
def test_adaptive_avg_pool1d_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ============================================================================= local_response_norm


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,size,kw", [
    ((2, 5, 3), 3, {}),
    ((2, 6, 3, 4), 2, {"alpha": 0.1, "beta": 0.6, "k": 2.0}),
    ((1, 4, 2, 3, 2), 5, {"alpha": 0.5}),
    ((1, 2, 4), 7, {"alpha": 1.0, "beta": 1.3}),  # window wider than the channels
    ((3, 3, 2, 2), 1, {"alpha": 0.2}),
])
def test_local_response_norm_matches_torch(shape, size, kw, dtype, rng):
    x = rng.standard_normal(shape) * 2
    x.reshape(-1)[:3] = 0.0
    check(lambda a: F.local_response_norm(a, size, **kw), lambda a: TF.local_response_norm(a, size, **kw),
          [x], dtype=dtype)
    t, f = torch.nn.LocalResponseNorm(size, **kw), nn.LocalResponseNorm(size, **kw)
    np.testing.assert_allclose(f(fw.tensor(x)).numpy(), t(torch.tensor(x)).numpy(), rtol=1e-12)
    assert repr(f) == repr(t) and list(f.state_dict()) == []


def test_local_response_norm_edges_and_grads(rng):
    z = fw.zeros(0, 3, 4)
    assert F.local_response_norm(z, 3) is z  # an empty input is returned as it is (as PyTorch)
    grads_ok(lambda a: F.local_response_norm(a, 3, alpha=0.5, beta=0.75, k=1.0),
             rng.standard_normal((1, 4, 3)))
    grads_ok(lambda a: F.local_response_norm(a, 2, alpha=0.3), rng.standard_normal((1, 3, 2, 2)))
    with pytest.raises(ValueError, match=r"local_response_norm.*3D or higher.*got 2 dimensions.*\[2, 3\]"):
        F.local_response_norm(fw.zeros(2, 3), 2)
    with pytest.raises(RuntimeError, match="local_response_norm: size must be a positive int, got 0"):
        F.local_response_norm(fw.zeros(2, 3, 4), 0)


# ============================================================================= alpha_dropout

SELU_NEG = 1.0507009873554804934193349852946 * 1.6732632423543772848170429916717


def _alpha_affine(p):
    a = 1.0 / math.sqrt((SELU_NEG ** 2 * p + 1) * (1 - p))
    return a, SELU_NEG * a * p  # scale, shift of the kept values


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_alpha_dropout_values_gradient_and_statistics(p):
    fw.manual_seed(0)
    x = leaf(np.zeros(20000))
    y = F.alpha_dropout(x, p, training=True)
    a, b = _alpha_affine(p)
    dropped_value = -SELU_NEG * a + b
    # the two values a zero input can take are PyTorch's
    torch.manual_seed(0)
    theirs = np.unique(TF.alpha_dropout(torch.zeros(20000, dtype=torch.float64), p, training=True).numpy())
    np.testing.assert_allclose(np.unique(y.detach().numpy()), theirs, rtol=1e-12)
    np.testing.assert_allclose(theirs, sorted([dropped_value, b]), rtol=1e-12)
    kept = y.detach().numpy() == b
    assert abs(kept.mean() - (1 - p)) < 0.02
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.where(kept, a, 0.0), rtol=1e-12)
    # self-normalising: a standard normal input keeps mean 0 and variance 1
    z = F.alpha_dropout(fw.tensor(np.random.default_rng(1).standard_normal(200000)), p, True).numpy()
    assert abs(z.mean()) < 0.02 and abs(z.var() - 1) < 0.02


def test_alpha_dropout_modes_and_errors(rng):
    x = fw.tensor(rng.standard_normal((3, 4)))
    assert F.alpha_dropout(x) is x  # training=False by default, as PyTorch
    assert F.alpha_dropout(x, 0.0, True) is x
    np.testing.assert_array_equal(F.alpha_dropout(x, 1.0, True).numpy(), np.zeros((3, 4)))
    fw.manual_seed(3)
    y = F.alpha_dropout(x, 0.4, True)
    fw.manual_seed(3)
    h = x * 1.0
    assert F.alpha_dropout(h, 0.4, True, inplace=True) is h
    np.testing.assert_array_equal(h.numpy(), y.numpy())
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match=f"dropout probability has to be between 0 and 1, but got {p}"):
            F.alpha_dropout(x, p, True)
        with pytest.raises(ValueError, match="between 0 and 1"):
            nn.AlphaDropout(p)

    def same_mask(a):  # the same draw on every call, so that finite differences see one function
        fw.manual_seed(5)
        return F.alpha_dropout(a, 0.3, True)

    grads_ok(same_mask, rng.standard_normal((2, 3)))


def test_alpha_dropout_module():
    m = nn.AlphaDropout(0.3)
    assert repr(m) == repr(torch.nn.AlphaDropout(0.3))
    x = fw.tensor(np.random.default_rng(0).standard_normal((50, 40)))
    fw.manual_seed(7)
    y = m(x)
    fw.manual_seed(7)
    np.testing.assert_array_equal(y.numpy(), F.alpha_dropout(x, 0.3, True).numpy())
    assert not np.array_equal(y.numpy(), x.numpy())
    m.eval()
    assert m(x) is x


# ============================================================================= pdist

PDIST_P = [0, 0.5, 1, 1.5, 2, 3, float("inf")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", PDIST_P)
def test_pdist_matches_torch(p, dtype, rng):
    check(lambda a: F.pdist(a, p), lambda a: TF.pdist(a, p), [rng.standard_normal((5, 3))], dtype=dtype)
    # repeated rows (zero distances), repeated coordinates (zero differences), ties for p = inf
    ties = np.array([[1.0, 0.0, 2.0], [1.0, 2.0, 2.0], [1.0, 0.0, 2.0], [3.0, 1.0, 0.0]])
    check(lambda a: F.pdist(a, p), lambda a: TF.pdist(a, p), [ties], dtype=dtype)
    check(lambda a: F.pdist(a, p), lambda a: TF.pdist(a, p), [rng.standard_normal((2, 1))], dtype=dtype)


def test_pdist_sizes_and_grads(rng):
    for shape in ((1, 3), (0, 3), (3, 0)):
        y = F.pdist(fw.tensor(np.ones(shape)))
        ty = TF.pdist(torch.ones(shape, dtype=torch.float64))
        assert tuple(y.shape) == tuple(ty.shape)
        np.testing.assert_array_equal(y.numpy(), ty.numpy())
    for p in (0.5, 1, 1.5, 2, 3, float("inf")):
        assert gradcheck(lambda a, p=p: F.pdist(a, p), (leaf(rng.standard_normal((4, 3))),))
    # (PyTorch's pdist has no second derivative; ours is composed, and has one where it is smooth)
    assert gradgradcheck(lambda a: F.pdist(a, 2), (leaf(rng.standard_normal((3, 2))),))


@pytest.mark.parametrize("call,match", [
    (lambda: F.pdist(fw.zeros(3)), r"pdist only supports 2D tensors, got: 1D \(size \[3\]\)"),
    (lambda: F.pdist(fw.zeros(2, 3, 4)), "got: 3D"),
    (lambda: F.pdist(fw.tensor([[1, 2], [3, 4]])), "floating-point"),
    (lambda: F.pdist(fw.zeros(3, 2), -1.0), "non-negative p values, got -1.0"),
])
def test_pdist_errors(call, match):
    with pytest.raises(RuntimeError, match=match):
        call()


# ============================================================================= margin ranking loss


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_margin_ranking_loss_matches_torch(reduction, dtype, rng):
    y = np.where(rng.random(7) > 0.5, 1.0, -1.0)
    x1, x2 = rng.standard_normal(7), rng.standard_normal(7)
    x1[0], x2[0] = 0.25, 0.25  # a tie
    kw = dict(reduction=reduction)
    check(lambda a, b: F.margin_ranking_loss(a, b, fw.tensor(y.astype(dtype)), 0.3, **kw),
          lambda a, b: TF.margin_ranking_loss(a, b, torch.tensor(y.astype(dtype)), 0.3, **kw), [x1, x2],
          dtype=dtype)
    check(lambda a, b, t: F.margin_ranking_loss(a, b, t, **kw),
          lambda a, b, t: TF.margin_ranking_loss(a, b, t, **kw), [x1, x2, y], dtype=dtype)  # y's gradient too
    # broadcasting, integer targets, a scalar, a batch of one
    a, b = rng.standard_normal((3, 1)), rng.standard_normal((1, 4))
    t = np.where(rng.random((3, 4)) > 0.5, 1, -1)
    check(lambda a, b: F.margin_ranking_loss(a, b, fw.tensor(t), 0.1, **kw),
          lambda a, b: TF.margin_ranking_loss(a, b, torch.tensor(t), 0.1, **kw), [a, b], dtype=dtype)
    check(lambda a, b: F.margin_ranking_loss(a, b, fw.tensor(1.0), 0.5, **kw),
          lambda a, b: TF.margin_ranking_loss(a, b, torch.tensor(1.0), 0.5, **kw),
          [np.array(0.3), np.array(0.1)])
    check(nn.MarginRankingLoss(0.2, reduction=reduction),
          torch.nn.MarginRankingLoss(0.2, reduction=reduction), [x1[:1], x2[:1], Const(y[:1])], dtype=dtype)


def test_margin_ranking_loss_hinge_exactly_hit_passes_gradient():
    # -y (x1 - x2) + margin is exactly 0 in both rows: PyTorch's clamp_min passes the gradient there
    x1, x2, y = np.array([1.5, 0.25]), np.array([1.0, 0.75]), np.array([1.0, -1.0])
    out = check(lambda a, b: F.margin_ranking_loss(a, b, fw.tensor(y), 0.5, reduction="sum"),
                lambda a, b: TF.margin_ranking_loss(a, b, torch.tensor(y), 0.5, reduction="sum"), [x1, x2])
    assert float(out[0].item()) == 0.0


def test_margin_ranking_loss_grads_legacy_and_errors(rng):
    y = fw.tensor(np.array([1.0, -1.0, 1.0]))
    grads_ok(lambda a, b: F.margin_ranking_loss(a, b, y, 0.2, reduction="sum"),
             away_from_zero(rng, 3) + 1, away_from_zero(rng, 3))
    x1, x2 = rng.standard_normal(3), rng.standard_normal(3)
    for sa, rd in ((False, None), (None, False), (True, True)):
        ours = F.margin_ranking_loss(fw.tensor(x1), fw.tensor(x2), y, size_average=sa, reduce=rd)
        theirs = TF.margin_ranking_loss(torch.tensor(x1), torch.tensor(x2), torch.tensor(y.numpy()),
                                        size_average=sa, reduce=rd)
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)
    with pytest.raises(RuntimeError, match=r"margin_ranking_loss.*same number of dim.*\[3\].*\[3, 1\]"):
        F.margin_ranking_loss(fw.zeros(3), fw.zeros(3, 1), fw.zeros(3))
    with pytest.raises(RuntimeError, match=r"margin_ranking_loss.*broadcast.*input1 \[3\], input2 \[4\]"):
        F.margin_ranking_loss(fw.zeros(3), fw.zeros(4), fw.zeros(3))
    with pytest.raises(ValueError, match="margin_ranking_loss: 'avg' is not a valid value for reduction"):
        F.margin_ranking_loss(fw.zeros(3), fw.zeros(3), fw.zeros(3), reduction="avg")


# ============================================================================= cosine embedding loss


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cosine_embedding_loss_matches_torch(reduction, dtype, rng):
    a, b = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    y = np.array([1.0, -1.0, 1.0, -1.0, 0.0, -1.0])  # 0: neither case, loss 0
    b[1] = a[1]  # identical vectors
    a[2] = 0.0  # a zero vector (the 1e-12 of PyTorch keeps it finite)
    kw = dict(reduction=reduction)
    # (the zero vector's gradient is ~1e5 and ill-conditioned: 2e-9 apart from PyTorch's in float64)
    rtol = 1e-8 if dtype == np.float64 else None
    for margin in (0.0, 0.3, -0.5):
        check(lambda p, q, m=margin: F.cosine_embedding_loss(p, q, fw.tensor(y), m, **kw),
              lambda p, q, m=margin: TF.cosine_embedding_loss(p, q, torch.tensor(y), m, **kw), [a, b],
              dtype=dtype, rtol=rtol)
    check(lambda p, q: F.cosine_embedding_loss(p, q, fw.tensor(-1.0), 0.1, **kw),
          lambda p, q: TF.cosine_embedding_loss(p, q, torch.tensor(-1.0), 0.1, **kw), [a[3], b[3]],
          dtype=dtype)
    check(nn.CosineEmbeddingLoss(0.2, reduction=reduction),
          torch.nn.CosineEmbeddingLoss(0.2, reduction=reduction), [a[:1], b[:1], Const(y[1:2])], dtype=dtype)


def test_cosine_embedding_loss_hinge_exactly_hit_and_grads(rng):
    # orthogonal vectors: cos is exactly 0 = margin for y = -1; PyTorch's clamp_min passes the gradient
    a, b = np.array([[1.0, 0.0], [0.5, 2.0]]), np.array([[0.0, 3.0], [1.0, -0.25]])
    y = np.array([-1.0, -1.0])
    out = check(lambda p, q: F.cosine_embedding_loss(p, q, fw.tensor(y), 0.0, reduction="sum"),
                lambda p, q: TF.cosine_embedding_loss(p, q, torch.tensor(y), 0.0, reduction="sum"), [a, b])
    assert float(out[0].item()) == 0.0
    y = fw.tensor(np.array([1.0, -1.0, -1.0]))
    grads_ok(lambda p, q: F.cosine_embedding_loss(p, q, y, -0.9), rng.standard_normal((3, 4)),
             rng.standard_normal((3, 4)))


@pytest.mark.parametrize("call,match", [
    (lambda: F.cosine_embedding_loss(fw.zeros(2, 3, 4), fw.zeros(2, 3, 4), fw.ones(2)),
     r"1D target tensor expects 2D input tensors, but found inputs with sizes \[2, 3, 4\] and \[2, 3, 4\]"),
    (lambda: F.cosine_embedding_loss(fw.zeros(3), fw.zeros(3), fw.ones(3)), "1D target tensor expects 2D"),
    (lambda: F.cosine_embedding_loss(fw.zeros(2, 3), fw.zeros(2, 3), fw.tensor(1.0)),
     "0D target tensor expects 1D"),
    (lambda: F.cosine_embedding_loss(fw.zeros(2, 3), fw.zeros(2, 3), fw.ones(2, 1)),
     "multi-target not supported"),
    (lambda: F.cosine_embedding_loss(fw.zeros(2, 3), fw.zeros(2, 4), fw.ones(2)),
     r"cosine_embedding_loss.*broadcast.*input1 \[2, 3\], input2 \[2, 4\]"),
    (lambda: F.cosine_embedding_loss(fw.zeros(2, 3), fw.zeros(2, 3), fw.ones(3)), r"target of size \[3\]"),
])
def test_cosine_embedding_loss_errors(call, match):
    with pytest.raises(RuntimeError, match=match):
        call()


# ============================================================================= triplet margin loss


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p,swap", [(2, False), (2, True), (1, False), (3, True)])
def test_triplet_margin_loss_matches_torch(p, swap, reduction, dtype, rng):
    a, pos, neg = (rng.standard_normal((5, 4)) for _ in range(3))
    pos[0] = a[0]  # anchor == positive: d(a, n) and d(p, n) tie under swap
    kw = dict(p=p, swap=swap, reduction=reduction)
    check(lambda x, y, z: F.triplet_margin_loss(x, y, z, 0.7, **kw),
          lambda x, y, z: TF.triplet_margin_loss(x, y, z, 0.7, **kw), [a, pos, neg], dtype=dtype)
    check(lambda x, y, z: F.triplet_margin_loss(x, y, z, 2.0, eps=0.1, **kw),
          lambda x, y, z: TF.triplet_margin_loss(x, y, z, 2.0, eps=0.1, **kw), [a[1], pos[1], neg[1]],
          dtype=dtype)
    b3 = [rng.standard_normal((2, 3, 4)) for _ in range(3)]  # 3-D: distances over the last dimension
    check(lambda x, y, z: F.triplet_margin_loss(x, y, z, **kw),
          lambda x, y, z: TF.triplet_margin_loss(x, y, z, **kw), b3, dtype=dtype)
    check(lambda x, y, z: F.triplet_margin_loss(x, y, z, **kw),
          lambda x, y, z: TF.triplet_margin_loss(x, y, z, **kw), [a, pos[:1], neg], dtype=dtype)  # broadcast
    check(nn.TripletMarginLoss(0.5, **kw), torch.nn.TripletMarginLoss(0.5, **kw), [a[:1], pos[:1], neg[:1]],
          dtype=dtype)


def test_triplet_margin_loss_hinge_and_grads(rng):
    # d(a, p) = 5, d(a, n) = 10, margin 5, eps 0: exactly at the hinge, where PyTorch passes the gradient
    a, p, n = np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]]), np.array([[6.0, 8.0]])
    out = check(lambda x, y, z: F.triplet_margin_loss(x, y, z, 5.0, eps=0.0),
                lambda x, y, z: TF.triplet_margin_loss(x, y, z, 5.0, eps=0.0), [a, p, n])
    assert float(out[0].item()) == 0.0
    xs = [rng.standard_normal((3, 4)) for _ in range(3)]
    grads_ok(lambda x, y, z: F.triplet_margin_loss(x, y, z, 3.0), *xs)
    grads_ok(lambda x, y, z: F.triplet_margin_loss(x, y, z, 3.0, swap=True, p=3), *xs)


def test_triplet_margin_loss_errors():
    z = fw.zeros(2, 3)
    for m in (0.0, -1.0):
        with pytest.raises(ValueError, match=f"triplet_margin_loss: margin must be greater than 0, got {m}"):
            F.triplet_margin_loss(z, z, z, m)
        with pytest.raises(ValueError, match=f"TripletMarginLoss: expected margin .* than 0, got {m}"):
            nn.TripletMarginLoss(m)
    with pytest.raises(RuntimeError, match="anchor 2D, positive 1D, and negative 2D"):
        F.triplet_margin_loss(z, fw.zeros(3), z)
    with pytest.raises(RuntimeError, match=r"triplet_margin_loss.*broadcast.*positive \[2, 4\]"):
        F.triplet_margin_loss(z, fw.zeros(2, 4), z)
    with pytest.raises(ValueError, match="triplet_margin_loss: 'avg' is not a valid"):
        F.triplet_margin_loss(z, z, z, reduction="avg")


# ============================================================================= multilabel soft margin loss


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multilabel_soft_margin_loss_matches_torch(reduction, dtype, rng):
    x = rng.standard_normal((4, 5)) * 3
    x[0, :2] = [0.0, 40.0]
    t = (rng.random((4, 5)) > 0.5).astype(float)
    w = rng.random(5) + 0.5
    kw = dict(reduction=reduction)
    check(lambda a: F.multilabel_soft_margin_loss(a, fw.tensor(t.astype(dtype)), **kw),
          lambda a: TF.multilabel_soft_margin_loss(a, torch.tensor(t.astype(dtype)), **kw), [x], dtype=dtype)
    check(lambda a, t, w: F.multilabel_soft_margin_loss(a, t, w, **kw),
          lambda a, t, w: TF.multilabel_soft_margin_loss(a, t, w, **kw), [x, rng.random((4, 5)), w],
          dtype=dtype)
    check(lambda a: F.multilabel_soft_margin_loss(a, fw.tensor(t[0]), **kw),
          lambda a: TF.multilabel_soft_margin_loss(a, torch.tensor(t[0]), **kw), [x[0]], dtype=dtype)
    t3 = (rng.random((2, 3, 4)) > 0.5).astype(float)
    check(lambda a: F.multilabel_soft_margin_loss(a, fw.tensor(t3), **kw),
          lambda a: TF.multilabel_soft_margin_loss(a, torch.tensor(t3), **kw),
          [rng.standard_normal((2, 3, 4))])
    tkw = dict(weight=torch.tensor(w.astype(dtype)), reduction=reduction)
    t_mod, f_mod = torch.nn.MultiLabelSoftMarginLoss(**tkw), nn.MultiLabelSoftMarginLoss(
        weight=fw.tensor(w.astype(dtype)), reduction=reduction)
    assert list(f_mod.state_dict()) == list(t_mod.state_dict()) == ["weight"]
    check(f_mod, t_mod, [x, Const(t)], dtype=dtype)


def test_multilabel_soft_margin_loss_grads_and_errors(rng):
    t = fw.tensor((rng.random((3, 4)) > 0.5).astype(float))
    w = fw.tensor(rng.random(4))
    grads_ok(lambda a: F.multilabel_soft_margin_loss(a, t, w), rng.standard_normal((3, 4)))
    with pytest.raises(RuntimeError, match=r"multilabel_soft_margin_loss.*input \[2, 3\], target \[2, 4\]"):
        F.multilabel_soft_margin_loss(fw.zeros(2, 3), fw.zeros(2, 4))
    with pytest.raises(RuntimeError, match=r"multilabel_soft_margin_loss.*weight \[4\]"):
        F.multilabel_soft_margin_loss(fw.zeros(2, 3), fw.zeros(2, 3), fw.ones(4))
    with pytest.raises(ValueError, match="'avg' is not a valid value"):
        F.multilabel_soft_margin_loss(fw.zeros(2, 3), fw.zeros(2, 3), reduction="avg")


# ============================================================================= multi margin loss


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", [1, 2])
def test_multi_margin_loss_matches_torch(p, reduction, dtype, rng):
    x = rng.standard_normal((6, 5))
    x[0] = [0.0, 1.0, 0.0, 1.0, -2.0]  # target 1: margins exactly hit, and a tie with class 3
    y = np.array([1, 4, 0, 2, 2, 3])
    w = rng.random(5) + 0.5
    kw = dict(p=p, reduction=reduction)
    for margin in (1.0, 0.4, 0.0):
        check(lambda a, m=margin: F.multi_margin_loss(a, fw.tensor(y), margin=m, **kw),
              lambda a, m=margin: TF.multi_margin_loss(a, torch.tensor(y), margin=m, **kw), [x], dtype=dtype)
    check(lambda a, w: F.multi_margin_loss(a, fw.tensor(y), weight=w, **kw),
          lambda a, w: TF.multi_margin_loss(a, torch.tensor(y), weight=w, **kw), [x, Const(w)], dtype=dtype)
    # one sample: (C,) with a scalar or a 1-element target, (1, C), and a single class
    for xs, ys in ((x[1], np.array(4)), (x[1], np.array([4])), (x[1:2], np.array([4])),
                   (x[:, :1], np.zeros(6, int)), (np.array(0.5), np.array(0))):
        check(lambda a, ys=ys: F.multi_margin_loss(a, fw.tensor(ys), **kw),
              lambda a, ys=ys: TF.multi_margin_loss(a, torch.tensor(ys), **kw), [xs], dtype=dtype)
    t_mod = torch.nn.MultiMarginLoss(p, 0.6, torch.tensor(w.astype(dtype)), reduction=reduction)
    f_mod = nn.MultiMarginLoss(p, 0.6, fw.tensor(w.astype(dtype)), reduction=reduction)
    assert list(f_mod.state_dict()) == list(t_mod.state_dict()) == ["weight"] and repr(f_mod) == repr(t_mod)
    check(f_mod, t_mod, [x, Const(y)], dtype=dtype)


def test_multi_margin_loss_empty_batch():
    x, y = fw.zeros(0, 3, requires_grad=True), fw.tensor(np.zeros(0, np.int64))
    assert tuple(F.multi_margin_loss(x, y, reduction="none").shape) == (0,)
    assert float(F.multi_margin_loss(x, y, reduction="sum").item()) == 0.0
    loss = F.multi_margin_loss(x, y)  # a mean over no samples (PyTorch returns an uninitialised value)
    assert math.isnan(float(loss.item()))
    F.multi_margin_loss(x, y, reduction="sum").backward()
    assert tuple(x.grad.shape) == (0, 3)


def test_multi_margin_loss_grads(rng):
    y = fw.tensor(np.array([0, 2, 1]))
    w = fw.tensor(rng.random(4) + 0.5)
    for p in (1, 2):
        grads_ok(lambda a, p=p: F.multi_margin_loss(a, y, p=p, margin=0.8, weight=w),
                 rng.standard_normal((3, 4)))


@pytest.mark.parametrize("call,exc,match", [
    (lambda: F.multi_margin_loss(fw.zeros(2, 3), fw.tensor([0, 1]), p=3), ValueError,
     "only p == 1 and p == 2"),
    (lambda: F.multi_margin_loss(fw.zeros(2, 3), fw.tensor([0, 1]), weight=fw.ones(1, 3)), ValueError,
     "weight must be one-dimensional"),
    (lambda: F.multi_margin_loss(fw.zeros(2, 3), fw.tensor([0, 1]), weight=fw.ones(4)), RuntimeError,
     r"inconsistent weight size, expected 3 but got \[4\]"),
    (lambda: F.multi_margin_loss(fw.zeros(2, 3, 4), fw.tensor([0, 1])), RuntimeError,
     r"non-empty vector or matrix.*\[2, 3, 4\]"),
    (lambda: F.multi_margin_loss(fw.zeros(2, 0), fw.tensor([0, 1])), RuntimeError, r"non-empty.*\[2, 0\]"),
    (lambda: F.multi_margin_loss(fw.zeros(2, 3), fw.tensor([0, 1, 2])), RuntimeError,
     r"Expected target size \[2\], but got \[3\]\. Input has shape \[2, 3\]"),
    (lambda: F.multi_margin_loss(fw.zeros(2, 3), fw.tensor([[0], [1]])), RuntimeError, r"but got \[2, 1\]"),
    (lambda: F.multi_margin_loss(fw.zeros(2, 3), fw.tensor([0, 3])), RuntimeError, "target out of range"),
    (lambda: F.multi_margin_loss(fw.zeros(2, 3), fw.tensor([-1, 0])), RuntimeError, "target out of range"),
    (lambda: F.multi_margin_loss(fw.zeros(2, 3), fw.tensor([0.0, 1.0])), RuntimeError, "integer type"),
    (lambda: F.multi_margin_loss(fw.zeros(2, 3), fw.tensor([0, 1]), reduction="avg"), ValueError, "'avg'"),
    (lambda: nn.MultiMarginLoss(p=3), ValueError, "only p == 1 and p == 2"),
    (lambda: nn.MultiMarginLoss(weight=fw.ones(1, 3)), ValueError,
     "expected weight to be None or 1D tensor, got 2D"),
])
def test_multi_margin_loss_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ============================================================================= Poisson and Gaussian NLL


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("log_input,full", [(True, False), (True, True), (False, False), (False, True)])
def test_poisson_nll_loss_matches_torch(log_input, full, reduction, dtype, rng):
    y = rng.poisson(2.0, (4, 3)).astype(float)
    y[0, :3] = [0.0, 1.0, 2.0]  # Stirling's term starts above 1
    x = rng.standard_normal((4, 3)) if log_input else np.abs(rng.standard_normal((4, 3))) + 0.1
    x[1, 0] = 0.0 if log_input else x[1, 0]
    kw = dict(log_input=log_input, full=full, reduction=reduction)
    check(lambda a: F.poisson_nll_loss(a, fw.tensor(y.astype(dtype)), **kw),
          lambda a: TF.poisson_nll_loss(a, torch.tensor(y.astype(dtype)), **kw), [x], dtype=dtype)
    yt = rng.random((4, 3)) * 3 + 1.2  # above 1: the target's gradient too (PyTorch's is NaN at 0)
    check(lambda a, t: F.poisson_nll_loss(a, t, eps=1e-3, **kw),
          lambda a, t: TF.poisson_nll_loss(a, t, eps=1e-3, **kw), [x, yt], dtype=dtype)
    check(lambda a: F.poisson_nll_loss(a, fw.tensor(y[0]), **kw),
          lambda a: TF.poisson_nll_loss(a, torch.tensor(y[0]), **kw), [x[:, :1]], dtype=dtype)  # broadcast
    t_mod, f_mod = torch.nn.PoissonNLLLoss(log_input, full, eps=1e-4, reduction=reduction), nn.PoissonNLLLoss(
        log_input, full, eps=1e-4, reduction=reduction)
    check(f_mod, t_mod, [x, Const(y)], dtype=dtype)


def test_poisson_nll_loss_grads_and_errors(rng):
    y = fw.tensor(rng.poisson(2.0, (3, 2)).astype(float))
    for log_input in (True, False):
        grads_ok(lambda a, li=log_input: F.poisson_nll_loss(a, y, log_input=li, full=True),
                 np.abs(rng.standard_normal((3, 2))) + 0.2)
    grads_ok(lambda a, t: F.poisson_nll_loss(a, t, full=True), rng.standard_normal(4),
             rng.random(4) * 3 + 1.5)
    with pytest.raises(RuntimeError, match=r"poisson_nll_loss.*input \[3\].*target \[4\]"):
        F.poisson_nll_loss(fw.zeros(3), fw.zeros(4))
    with pytest.raises(ValueError, match="poisson_nll_loss: 'avg' is not a valid value"):
        F.poisson_nll_loss(fw.zeros(3), fw.zeros(3), reduction="avg")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("full", [False, True])
def test_gaussian_nll_loss_matches_torch(full, reduction, dtype, rng):
    x, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    v = rng.random((4, 3)) + 0.1
    v[0, :2] = [0.0, 1e-7]  # below eps: clamped, the gradient passes through as at eps
    kw = dict(full=full, reduction=reduction)
    for var in (v, v[:, 0], v[:, :1] + 0.05, v[:1] + 0.05):  # full size, last dim dropped, one dim of 1
        check(lambda a, b, s: F.gaussian_nll_loss(a, b, s, **kw),
              lambda a, b, s: TF.gaussian_nll_loss(a, b, s, **kw), [x, t, var], dtype=dtype, rtol=1e-3
              if dtype == np.float32 else None)
    check(lambda a, b: F.gaussian_nll_loss(a, b, 0.7, eps=1e-3, **kw),
          lambda a, b: TF.gaussian_nll_loss(a, b, 0.7, eps=1e-3, **kw), [x, t], dtype=dtype)
    check(nn.GaussianNLLLoss(full=full, eps=0.2, reduction=reduction),
          torch.nn.GaussianNLLLoss(full=full, eps=0.2, reduction=reduction), [x[:1], t[:1], v[:1]],
          dtype=dtype)


def test_gaussian_nll_loss_grads_and_errors(rng):
    x, t, v = rng.standard_normal((3, 2)), rng.standard_normal((3, 2)), rng.random((3, 2)) + 0.2
    grads_ok(lambda a, b, s: F.gaussian_nll_loss(a, b, s, full=True), x, t, v)
    grads_ok(lambda a, s: F.gaussian_nll_loss(a, fw.tensor(t), s, reduction="sum"), x, v[:, 0])
    z = fw.zeros(3, 2)
    with pytest.raises(ValueError, match="gaussian_nll_loss: var has negative entry"):
        F.gaussian_nll_loss(z, z, fw.tensor(-np.ones((3, 2))))
    with pytest.raises(ValueError, match="var has negative entry"):
        F.gaussian_nll_loss(z, z, -0.5)
    for bad in ((2,), (1, 1), (3, 3), (3, 2, 1)):
        msg = re.escape(f"var is of incorrect size: {list(bad)}") + r".*\[3, 2\]"
        with pytest.raises(ValueError, match=msg):
            F.gaussian_nll_loss(z, z, fw.ones(*bad))
    with pytest.raises(ValueError, match="gaussian_nll_loss: 'avg' is not a valid"):
        F.gaussian_nll_loss(z, z, fw.ones(3, 2), reduction="avg")
    with pytest.raises(TypeError):
        nn.GaussianNLLLoss(True)  # keyword-only arguments, as PyTorch


# ============================================================================= loss modules: legacy arguments


@pytest.mark.parametrize("name,args,inputs", [
    ("MarginRankingLoss", (0.1,), "pair_y"),
    ("CosineEmbeddingLoss", (0.1,), "pair_y"),
    ("TripletMarginLoss", (0.5,), "triple"),
    ("MultiLabelSoftMarginLoss", (), "multilabel"),
    ("MultiMarginLoss", (), "classes"),
    ("PoissonNLLLoss", (), "poisson"),
])
@pytest.mark.parametrize("legacy", [dict(size_average=False), dict(reduce=False), dict(size_average=True)])
def test_loss_modules_legacy_reduction_arguments(name, args, inputs, legacy, rng):
    t_mod, f_mod = getattr(torch.nn, name)(*args, **legacy), getattr(nn, name)(*args, **legacy)
    assert f_mod.reduction == t_mod.reduction
    x = rng.standard_normal((4, 3))
    data = {
        "pair_y": [x, rng.standard_normal((4, 3)), Const(np.array([1.0, -1.0, 1.0, -1.0]))],
        "triple": [x, rng.standard_normal((4, 3)), rng.standard_normal((4, 3))],
        "multilabel": [x, Const((rng.random((4, 3)) > 0.5).astype(float))],
        "classes": [x, np.array([0, 2, 1, 1])],
        "poisson": [x, Const(rng.poisson(1.0, (4, 3)).astype(float))],
    }[inputs]
    if name == "MarginRankingLoss":
        data = [x[:, 0], data[1][:, 0], data[2]]
    check(f_mod, t_mod, data)


# ============================================================================= BatchNorm3d

BN_DTYPES = [(torch.float64, fw.float64, 1e-9), (torch.float32, fw.float32, 1e-4)]


def _close(a, b, tol):
    np.testing.assert_allclose(np.asarray(a.detach().numpy(), np.float64),
                               b.detach().numpy().astype(np.float64), rtol=tol, atol=tol)


def _bn_step(t, f, x, tdt, fdt, tol, seed):
    tx = torch.tensor(x, dtype=tdt, requires_grad=True)
    fx = fw.tensor(x, dtype=fdt, requires_grad=True)
    to, fo = t(tx), f(fx)
    _close(fo, to, tol)
    g = np.random.default_rng(seed).standard_normal(x.shape)
    (to * torch.tensor(g, dtype=tdt)).sum().backward()
    (fo * fw.tensor(g, dtype=fdt)).sum().backward()
    _close(fx.grad, tx.grad, tol * 10)
    for tp, fp in zip(t.parameters(), f.parameters()):
        _close(fp.grad, tp.grad, tol * 10)
    for (tk, tb), (fk, fb) in zip(t.named_buffers(), f.named_buffers()):
        assert tk == fk
        _close(fb, tb, tol)


@pytest.mark.parametrize("dt", BN_DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("kwargs", [{}, {"momentum": None}, {"affine": False, "momentum": 0.3},
                                    {"track_running_stats": False}, {"bias": False}], ids=str)
def test_batchnorm3d_matches_torch_after_loading_its_state(kwargs, dt):
    tdt, fdt, tol = dt
    torch.manual_seed(0)
    t = torch.nn.BatchNorm3d(3, **kwargs).to(tdt)
    f = nn.BatchNorm3d(3, **kwargs).to(fdt)
    assert list(f.state_dict()) == list(t.state_dict())
    assert repr(f) == repr(t)
    with torch.no_grad():  # a converted state that is not the initial one
        for p in t.parameters():
            p.copy_(torch.rand_like(p) + 0.5)
        if t.running_mean is not None:
            t.running_mean.copy_(torch.randn(3))
            t.running_var.copy_(torch.rand(3) + 0.5)
            t.num_batches_tracked.fill_(4)
    f.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    rng = np.random.default_rng(1)
    for seed in range(3):  # training: batch statistics, running statistics and the batch count follow
        _bn_step(t, f, rng.standard_normal((2, 3, 3, 2, 4)) * 2 + 1, tdt, fdt, tol, seed)
    if f.num_batches_tracked is not None:
        assert int(f.num_batches_tracked.item()) == int(t.num_batches_tracked.item()) == 7
    t.eval()
    f.eval()
    _bn_step(t, f, rng.standard_normal((1, 3, 2, 3, 1)), tdt, fdt, tol, 9)  # batch of one, odd sizes
    # and back: PyTorch accepts our state strictly
    t.load_state_dict({k: torch.tensor(np.array(v.numpy())) for k, v in f.state_dict().items()}, strict=True)


def test_batchnorm3d_rejects_other_ranks():
    m = nn.BatchNorm3d(2)
    for shape in ((2, 2, 3, 3), (2, 2)):
        with pytest.raises(ValueError, match=f"expected 5D input \\(got {len(shape)}D input\\)"):
            m(fw.zeros(*shape))
    with pytest.raises(RuntimeError, match="batch_norm: running_mean should contain 3 elements not 2"):
        m(fw.zeros(2, 3, 1, 2, 2))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        m(fw.zeros(1, 2, 1, 1, 1))


# ============================================================================= Upsampling*2d


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kwargs,shape", [
    ("UpsamplingNearest2d", {"scale_factor": 2}, (1, 2, 3, 4)),
    ("UpsamplingNearest2d", {"size": (5, 7)}, (2, 1, 3, 4)),
    ("UpsamplingNearest2d", {"scale_factor": (1.5, 3)}, (1, 1, 4, 3)),
    ("UpsamplingBilinear2d", {"scale_factor": 2}, (1, 2, 3, 4)),
    ("UpsamplingBilinear2d", {"size": (5, 7)}, (2, 1, 3, 4)),
    ("UpsamplingBilinear2d", {"size": 4}, (1, 1, 1, 3)),
])
def test_fixed_mode_upsampling_matches_torch(name, kwargs, shape, dtype, rng):
    t, f = getattr(torch.nn, name)(**kwargs), getattr(nn, name)(**kwargs)
    assert repr(f) == repr(t) and list(f.state_dict()) == []
    assert (f.mode, f.align_corners) == (t.mode, t.align_corners)
    x = rng.standard_normal(shape)
    check(f, t, [x], dtype=dtype)
    ref = nn.Upsample(mode=t.mode, align_corners=t.align_corners, **kwargs)
    np.testing.assert_array_equal(f(fw.tensor(x)).numpy(), ref(fw.tensor(x)).numpy())


def test_upsampling_bilinear_aligns_corners_and_needs_4d():
    m = nn.UpsamplingBilinear2d(scale_factor=3)
    y = m(fw.tensor(np.arange(4.0).reshape(1, 1, 2, 2))).numpy()
    assert y[0, 0, 0, 0] == 0.0 and y[0, 0, -1, -1] == 3.0 and y[0, 0, 0, -1] == 1.0
    with pytest.raises(ValueError, match=r"mode 'bilinear' expects 4-D input, got 3-D.*\[1, 2, 2\]"):
        m(fw.zeros(1, 2, 2))


# ============================================================================= modules are the functionals


@pytest.mark.parametrize("module,fn,shape", [
    (nn.PixelUnshuffle(2), lambda x: F.pixel_unshuffle(x, 2), (2, 3, 4, 6)),
    (nn.ChannelShuffle(3), lambda x: F.channel_shuffle(x, 3), (2, 6, 2)),
    (nn.Softmin(1), lambda x: F.softmin(x, 1), (2, 5)),
    (nn.Softmin(), lambda x: F.softmin(x), (2, 3, 4)),
    (nn.Softmax2d(), lambda x: F.softmax(x, -3), (2, 3, 2, 2)),
    (nn.CELU(0.3), lambda x: F.celu(x, 0.3), (3, 4)),
    (nn.Threshold(0.2, -1.0), lambda x: F.threshold(x, 0.2, -1.0), (3, 4)),
    (nn.AdaptiveAvgPool1d(3), lambda x: F.adaptive_avg_pool1d(x, 3), (2, 3, 7)),
    (nn.LocalResponseNorm(3, 0.1), lambda x: F.local_response_norm(x, 3, 0.1), (2, 4, 3, 3)),
    (nn.AlphaDropout(0.3).eval(), lambda x: x, (3, 4)),
    (nn.UpsamplingNearest2d(scale_factor=2), lambda x: F.interpolate(x, scale_factor=2), (1, 2, 2, 3)),
    (nn.UpsamplingBilinear2d(size=(3, 5)),
     lambda x: F.interpolate(x, (3, 5), mode="bilinear", align_corners=True), (1, 2, 2, 3)),
], ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else None)
def test_module_equals_functional(module, fn, shape, rng):
    x = rng.standard_normal(shape)
    a, b = leaf(x), leaf(x)
    ya, yb = module(a), fn(b)
    np.testing.assert_array_equal(ya.detach().numpy(), yb.detach().numpy())
    g = fw.tensor(rng.standard_normal(tuple(ya.shape)))
    (ya * g).sum().backward()
    (yb * g).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())


def test_loss_modules_equal_functionals(rng):
    x1, x2, x3 = (fw.tensor(rng.standard_normal((4, 3))) for _ in range(3))
    y = fw.tensor(np.array([1.0, -1.0, -1.0, 1.0]))
    w = fw.tensor(rng.random(3) + 0.5)
    cls = fw.tensor(np.array([0, 2, 1, 2]))
    pairs = [
        (nn.MarginRankingLoss(0.3, reduction="sum")(x1[:, 0], x2[:, 0], y),
         F.margin_ranking_loss(x1[:, 0], x2[:, 0], y, 0.3, reduction="sum")),
        (nn.CosineEmbeddingLoss(0.1)(x1, x2, y), F.cosine_embedding_loss(x1, x2, y, 0.1)),
        (nn.TripletMarginLoss(0.5, p=1, swap=True, reduction="none")(x1, x2, x3),
         F.triplet_margin_loss(x1, x2, x3, 0.5, p=1, swap=True, reduction="none")),
        (nn.MultiLabelSoftMarginLoss(w)(x1, x2.abs() / 3),
         F.multilabel_soft_margin_loss(x1, x2.abs() / 3, w)),
        (nn.MultiMarginLoss(2, 0.5, w)(x1, cls), F.multi_margin_loss(x1, cls, 2, 0.5, w)),
        (nn.PoissonNLLLoss(False, True, eps=0.1)(x1.abs(), x2.abs()),
         F.poisson_nll_loss(x1.abs(), x2.abs(), False, True, eps=0.1)),
        (nn.GaussianNLLLoss(full=True, eps=0.3)(x1, x2, x3.abs()),
         F.gaussian_nll_loss(x1, x2, x3.abs(), True, 0.3)),
    ]
    for mod_out, fn_out in pairs:
        np.testing.assert_array_equal(mod_out.numpy(), fn_out.numpy())


def test_new_names_are_exported():
    names = ["PixelUnshuffle", "Softmin", "CELU", "Threshold", "AdaptiveAvgPool1d", "AlphaDropout",
             "Softmax2d", "LocalResponseNorm", "ChannelShuffle", "UpsamplingNearest2d",
             "UpsamplingBilinear2d", "TripletMarginLoss", "MarginRankingLoss", "CosineEmbeddingLoss",
             "MultiLabelSoftMarginLoss", "MultiMarginLoss", "PoissonNLLLoss", "GaussianNLLLoss",
             "BatchNorm3d"]
    for name in names:
        assert name in nn.__all__ and issubclass(getattr(nn, name), nn.Module)
    fns = ["pixel_unshuffle", "channel_shuffle", "softmin", "multi_margin_loss", "adaptive_avg_pool1d",
           "local_response_norm", "alpha_dropout", "pdist", "triplet_margin_loss", "margin_ranking_loss",
           "cosine_embedding_loss", "multilabel_soft_margin_loss", "poisson_nll_loss", "gaussian_nll_loss",
           "celu", "threshold"]
    for name in fns:
        assert name in F.__all__ and getattr(nn.functional, name) is getattr(F, name)
