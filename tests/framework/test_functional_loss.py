"""Losses against PyTorch: reductions, class weights, ignore_index, label smoothing, K-dim inputs."""

import numpy as np
import pytest
from functional_oracle import Const, check, torchvision_focal_loss

import framework as fw
import framework.functional as F
from framework.testing import gradcheck, gradgradcheck

torch = pytest.importorskip("torch")
TF = torch.nn.functional

REDUCTIONS = ["mean", "sum", "none"]


def _targets(rng, shape, c, ignore=None):
    t = rng.integers(0, c, shape)
    if ignore is not None:
        t.reshape(-1)[::3] = ignore
    return t


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 4), (2, 5, 3, 2), (5,)])
def test_cross_entropy_class_indices(reduction, weighted, smoothing, shape, rng):
    c = 5
    x = rng.standard_normal(shape)
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    t = _targets(rng, tshape, c, ignore=-100 if len(shape) > 1 else None)
    w = rng.random(c) + 0.5
    for dtype in (np.float64, np.float32):
        fw_w = fw.tensor(w.astype(dtype)) if weighted else None
        th_w = torch.tensor(w.astype(dtype)) if weighted else None

        def ours(x, fw_w=fw_w):
            return F.cross_entropy(x, fw.tensor(t), fw_w, reduction=reduction, label_smoothing=smoothing)

        def theirs(x, th_w=th_w):
            return TF.cross_entropy(x, torch.tensor(t), th_w, reduction=reduction, label_smoothing=smoothing)

        check(ours, theirs, [x], dtype=dtype)


def test_cross_entropy_custom_ignore_index(rng):
    x = rng.standard_normal((6, 4))
    t = np.array([0, 3, 1, 3, 2, 3])
    for red in REDUCTIONS:
        check(
            lambda x, red=red: F.cross_entropy(x, fw.tensor(t), ignore_index=3, reduction=red,
                                               label_smoothing=0.1),
            lambda x, red=red: TF.cross_entropy(x, torch.tensor(t), ignore_index=3, reduction=red,
                                                label_smoothing=0.1),
            [x],
        )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_probabilities(reduction, weighted, smoothing, rng):
    x = rng.standard_normal((3, 4, 2))
    p = rng.random((3, 4, 2))
    p /= p.sum(1, keepdims=True)
    w = rng.random(4) + 0.5
    args = [x, p, w] if weighted else [x, p]
    check(
        lambda x, p, w=None: F.cross_entropy(x, p, w, reduction=reduction, label_smoothing=smoothing),
        lambda x, p, w=None: TF.cross_entropy(x, p, w, reduction=reduction, label_smoothing=smoothing),
        args,
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss(reduction, rng):
    x = rng.standard_normal((4, 3, 5))
    t = _targets(rng, (4, 5), 3, ignore=-1)
    w = rng.random(3) + 0.1
    check(
        lambda x: F.nll_loss(x, fw.tensor(t), fw.tensor(w), ignore_index=-1, reduction=reduction),
        lambda x: TF.nll_loss(x, torch.tensor(t), torch.tensor(w), ignore_index=-1, reduction=reduction),
        [x],
    )


def test_nll_loss_errors():
    with pytest.raises(IndexError, match="Target 7 is out of bounds"):
        F.nll_loss(fw.zeros(2, 3), fw.tensor([0, 7]))
    with pytest.raises(ValueError, match=r"nll_loss: expected target of size \[2\]"):
        F.nll_loss(fw.zeros(2, 3), fw.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"class probabilities.*\[2, 3\], got \[2\].*integer"):
        F.cross_entropy(fw.zeros(2, 3), fw.tensor([0.5, 1.0]))
    with pytest.raises(RuntimeError, match="integer type"):
        F.nll_loss(fw.zeros(2, 3), fw.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        F.mse_loss(fw.zeros(2), fw.zeros(2), reduction="avg")


def test_cross_entropy_second_derivatives(rng):
    x = fw.tensor(rng.standard_normal((3, 4)), dtype=fw.float64, requires_grad=True)
    w = fw.tensor(rng.random(4) + 0.5, dtype=fw.float64)
    t = fw.tensor([1, 3, 0])
    f = lambda x: F.cross_entropy(x, t, w, label_smoothing=0.1)
    assert gradcheck(f, (x,))
    assert gradgradcheck(f, (x,))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_cross_entropy(reduction, dtype, rng):
    p = rng.random((4, 3)) * 0.98 + 0.01
    t = rng.random((4, 3))
    w = rng.random((4, 3))
    check(
        lambda p, t, w: F.binary_cross_entropy(p, t, w, reduction=reduction),
        lambda p, t, w: TF.binary_cross_entropy(p, t, w, reduction=reduction),
        [p, t, Const(w)],
        dtype=dtype,
    )
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        F.binary_cross_entropy(fw.tensor([1.5]), fw.tensor([1.0]))


def test_binary_cross_entropy_clamps_log():
    p, t = np.array([0.0, 1.0, 0.5]), np.array([1.0, 0.0, 1.0])
    check(
        lambda p: F.binary_cross_entropy(p, fw.tensor(t, dtype=fw.float64)),
        lambda p: TF.binary_cross_entropy(p, torch.tensor(t)),
        [p],
        grad=False,
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("extras", ["none", "weight", "pos_weight", "both"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bce_with_logits(reduction, extras, dtype, rng):
    x = rng.standard_normal((4, 3)) * 4
    x[0, 0], x[0, 1], x[0, 2] = 60.0, -60.0, 0.0  # tails and the kink of |x|
    t = rng.random((4, 3))
    w, pw = rng.random((4, 3)), rng.random(3) * 3
    use_w, use_pw = extras in ("weight", "both"), extras in ("pos_weight", "both")
    check(
        lambda x, t, w, pw: F.binary_cross_entropy_with_logits(
            x, t, w if use_w else None, reduction=reduction, pos_weight=pw if use_pw else None
        ),
        lambda x, t, w, pw: TF.binary_cross_entropy_with_logits(
            x, t, w if use_w else None, reduction=reduction, pos_weight=pw if use_pw else None
        ),
        [x, t, Const(w), Const(pw)],
        dtype=dtype,
    )


@pytest.mark.parametrize(
    "alpha,gamma,reduction", [(0.25, 2, "none"), (-1, 2, "mean"), (0.5, 0, "sum"), (0.25, 1.5, "mean")]
)
def test_sigmoid_focal_loss(alpha, gamma, reduction, rng):
    x = rng.standard_normal((5, 4)) * 3
    t = (rng.random((5, 4)) > 0.7).astype(float)
    check(
        lambda x, t: F.sigmoid_focal_loss(x, t, alpha, gamma, reduction),
        lambda x, t: torchvision_focal_loss(x, t, alpha, gamma, reduction),
        [x, t],
    )
    out = F.sigmoid_focal_loss(fw.tensor(x), fw.tensor(t))
    assert out.shape == (5, 4)  # torchvision's default reduction is 'none'


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("beta", [1.0, 0.5, 0.0])
def test_regression_losses(reduction, beta, rng):
    x, y = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    x[0, 0] = y[0, 0] + 0.3
    check(
        lambda x, y: F.mse_loss(x, y, reduction=reduction),
        lambda x, y: TF.mse_loss(x, y, reduction=reduction),
        [x, y],
    )
    check(
        lambda x, y: F.l1_loss(x, y, reduction=reduction),
        lambda x, y: TF.l1_loss(x, y, reduction=reduction),
        [x, y],
    )
    check(
        lambda x, y: F.smooth_l1_loss(x, y, reduction=reduction, beta=beta),
        lambda x, y: TF.smooth_l1_loss(x, y, reduction=reduction, beta=beta),
        [x, y],
    )
    if beta > 0:
        check(
            lambda x, y: F.huber_loss(x, y, reduction, beta),
            lambda x, y: TF.huber_loss(x, y, reduction, beta),
            [x, y],
            dtype=np.float32,
        )


@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(log_target, rng):
    x = np.log(rng.random((3, 4)) + 0.1)
    t = rng.random((3, 4))
    t[0, 0] = 0.0
    if log_target:
        t = np.log(t + 0.2)
    for red in ("batchmean", "sum", "none"):
        check(
            lambda x, t, red=red: F.kl_div(x, t, reduction=red, log_target=log_target),
            lambda x, t, red=red: TF.kl_div(x, t, reduction=red, log_target=log_target),
            [x, Const(t)],
        )
    t = np.abs(t) + 0.1  # gradient with respect to the target where it is defined
    check(
        lambda x, t: F.kl_div(x, t, reduction="sum", log_target=log_target),
        lambda x, t: TF.kl_div(x, t, reduction="sum", log_target=log_target),
        [x, t],
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_margin_and_embedding_losses(reduction, rng):
    a, b = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    c = rng.standard_normal((6, 5))
    y = np.where(rng.random(6) > 0.5, 1.0, -1.0)
    x1, x2 = rng.standard_normal(6), rng.standard_normal(6)
    r = dict(reduction=reduction)
    check(lambda p, q: F.margin_ranking_loss(p, q, fw.tensor(y), 0.3, **r),
          lambda p, q: TF.margin_ranking_loss(p, q, torch.tensor(y), 0.3, **r), [x1, x2])
    check(lambda p: F.hinge_embedding_loss(p, fw.tensor(y), 0.7, **r),
          lambda p: TF.hinge_embedding_loss(p, torch.tensor(y), 0.7, **r), [x1])
    check(lambda p: F.soft_margin_loss(p, fw.tensor(y), **r),
          lambda p: TF.soft_margin_loss(p, torch.tensor(y), **r), [x1])
    t = (rng.random((6, 5)) > 0.5).astype(float)
    check(lambda p: F.multilabel_soft_margin_loss(p, fw.tensor(t), **r),
          lambda p: TF.multilabel_soft_margin_loss(p, torch.tensor(t), **r), [a])
    check(lambda p, q: F.cosine_embedding_loss(p, q, fw.tensor(y), 0.1, **r),
          lambda p, q: TF.cosine_embedding_loss(p, q, torch.tensor(y), 0.1, **r), [a, b])
    for swap in (False, True):
        check(lambda p, q, s, swap=swap: F.triplet_margin_loss(p, q, s, 0.5, swap=swap, **r),
              lambda p, q, s, swap=swap: TF.triplet_margin_loss(p, q, s, 0.5, swap=swap, **r), [a, b, c])


@pytest.mark.parametrize("full", [False, True])
def test_likelihood_losses(full, rng):
    x = rng.standard_normal((4, 3))
    y = rng.poisson(2.0, (4, 3)).astype(float)
    check(lambda p: F.poisson_nll_loss(p, fw.tensor(y), full=full),
          lambda p: TF.poisson_nll_loss(p, torch.tensor(y), full=full), [x])
    check(lambda p: F.poisson_nll_loss(p, fw.tensor(y), log_input=False, full=full),
          lambda p: TF.poisson_nll_loss(p, torch.tensor(y), log_input=False, full=full), [np.abs(x) + 0.1])
    v = rng.random((4, 3)) + 0.1
    check(lambda p, t, v: F.gaussian_nll_loss(p, t, v, full=full),
          lambda p, t, v: TF.gaussian_nll_loss(p, t, v, full=full), [x, y, v])
    check(lambda p, t, v: F.gaussian_nll_loss(p, t, v, full=full, reduction="none"),
          lambda p, t, v: TF.gaussian_nll_loss(p, t, v, full=full, reduction="none"), [x, y, v[:, :1]])
