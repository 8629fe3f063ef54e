"""The last PyTorch losses against PyTorch: soft margin, hinge embedding, multi-label margin, triplet margin
with a distance function, and connectionist temporal classification (CTC).

Each is checked for values and gradients (float64 and float32) on random inputs and named edge cases
(margins exactly hit, -1 padding, repeated CTC labels, empty targets, inputs too short for their
target), every reduction, finite-difference gradients, its module against the functional form, and its
errors."""

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

pytestmark = pytest.mark.filterwarnings("ignore:size_average and reduce args:UserWarning")

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


def raises(exc, match, call):
    with pytest.raises(exc, match=match):
        call()


# ============================================================================= soft margin loss


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_soft_margin_loss_matches_torch(reduction, dtype, rng):
    x = rng.standard_normal((4, 5)) * 3
    x[0, :2] = 0.0
    y = np.where(rng.random((4, 5)) > 0.5, 1.0, -1.0)
    y[1, :2] = [0.5, 0.0]  # other values are just scales of the margin, as PyTorch
    kw = dict(reduction=reduction)
    check(lambda a: F.soft_margin_loss(a, fw.tensor(y.astype(dtype)), **kw),
          lambda a: TF.soft_margin_loss(a, torch.tensor(y.astype(dtype)), **kw), [x], dtype=dtype)
    for t in (y[0], y[:1], np.array(-1.0)):  # the target broadcasts to the input
        check(lambda a, t=t: F.soft_margin_loss(a, fw.tensor(t.astype(dtype)), **kw),
              lambda a, t=t: TF.soft_margin_loss(a, torch.tensor(t.astype(dtype)), **kw), [x], dtype=dtype)
    check(lambda a: F.soft_margin_loss(a, fw.tensor(np.array([1, -1, 1, -1, 1])), **kw),
          lambda a: TF.soft_margin_loss(a, torch.tensor([1, -1, 1, -1, 1]), **kw), [x], dtype=dtype)  # ints
    check(nn.SoftMarginLoss(reduction=reduction), torch.nn.SoftMarginLoss(reduction=reduction),
          [x[1], Const(y[1])], dtype=dtype)


def test_soft_margin_loss_stays_finite_where_torch_overflows():
    # PyTorch computes log1p(exp(-y x)): inf (and a NaN gradient) once -y x passes ~709 in float64
    x = leaf([-1000.0, 1000.0, 2.0])
    y = fw.tensor(np.array([1.0, -1.0, 1.0]))
    loss = F.soft_margin_loss(x, y, reduction="none")
    np.testing.assert_allclose(loss.detach().numpy(), [1000.0, 1000.0, math.log1p(math.exp(-2.0))])
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [-1.0, 1.0, -1 / (1 + math.exp(2.0))])
    assert math.isinf(TF.soft_margin_loss(torch.tensor([-1000.0]), torch.tensor([1.0])).item())


def test_soft_margin_loss_grads_and_errors(rng):
    y = fw.tensor(np.where(rng.random((3, 4)) > 0.5, 1.0, -1.0))
    grads_ok(lambda a: F.soft_margin_loss(a, y), rng.standard_normal((3, 4)))
    grads_ok(lambda a: F.soft_margin_loss(a, y, reduction="none"), rng.standard_normal((3, 4)))
    z = fw.zeros(5)
    raises(RuntimeError, r"soft_margin_loss: the target of size \[2, 5\] must broadcast to the size of the "
           r"input \[5\]", lambda: F.soft_margin_loss(z, fw.zeros(2, 5)))
    raises(RuntimeError, r"soft_margin_loss.*input \[5\], target \[4\]",
           lambda: F.soft_margin_loss(z, fw.zeros(4)))
    raises(ValueError, "soft_margin_loss: 'avg' is not a valid value",
           lambda: F.soft_margin_loss(z, z, reduction="avg"))
    raises(ValueError, "avg is not a valid value", lambda: nn.SoftMarginLoss(reduction="avg"))
    assert math.isnan(F.soft_margin_loss(fw.zeros(0), fw.zeros(0)).item())  # mean of nothing, as PyTorch


# ============================================================================= hinge embedding loss


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_hinge_embedding_loss_matches_torch(reduction, dtype, rng):
    x = np.abs(rng.standard_normal((4, 6))) * 1.5
    x[0, :3] = [1.0, 0.5, 0.0]  # margin - x exactly 0 for margins 1.0 and 0.5: the gradient passes
    y = np.where(rng.random((4, 6)) > 0.5, 1.0, -1.0)
    y[0, :3] = -1.0
    y[1, :3] = [0.0, 2.0, 0.5]  # neither 1 nor -1: both terms, as PyTorch
    kw = dict(reduction=reduction)
    for margin in (1.0, 0.5, -0.3):
        check(lambda a, m=margin: F.hinge_embedding_loss(a, fw.tensor(y.astype(dtype)), m, **kw),
              lambda a, m=margin: TF.hinge_embedding_loss(a, torch.tensor(y.astype(dtype)), m, **kw), [x],
              dtype=dtype)
    check(lambda a: F.hinge_embedding_loss(a, fw.tensor(y[0]), **kw),  # broadcasting either way
          lambda a: TF.hinge_embedding_loss(a, torch.tensor(y[0]), **kw), [x], dtype=dtype)
    check(lambda a: F.hinge_embedding_loss(a, fw.tensor(y), **kw),
          lambda a: TF.hinge_embedding_loss(a, torch.tensor(y), **kw), [x[:1]], dtype=dtype)
    check(lambda a: F.hinge_embedding_loss(a, fw.tensor(np.array([1, -1, -1, 1, -1, 1])), **kw),
          lambda a: TF.hinge_embedding_loss(a, torch.tensor([1, -1, -1, 1, -1, 1]), **kw), [x], dtype=dtype)
    check(nn.HingeEmbeddingLoss(0.7, reduction=reduction),
          torch.nn.HingeEmbeddingLoss(0.7, reduction=reduction), [x, Const(y)], dtype=dtype)


def test_hinge_embedding_loss_hinge_exactly_hit():
    x = leaf([1.0, 0.5, 2.0, 0.25])
    y = fw.tensor(np.array([-1.0, -1.0, 0.0, 1.0]))
    loss = F.hinge_embedding_loss(x, y, margin=1.0, reduction="none")
    np.testing.assert_array_equal(loss.detach().numpy(), [0.0, 0.5, 2.0, 0.25])
    loss.sum().backward()
    # at the hinge (x = margin, y = -1) the gradient is -1 (clamp_min); y = 0: 1 + 0 (x above margin)
    np.testing.assert_array_equal(x.grad.numpy(), [-1.0, -1.0, 1.0, 1.0])


def test_hinge_embedding_loss_grads_and_errors(rng):
    y = fw.tensor(np.array([[1.0, -1.0, -1.0], [-1.0, 1.0, 0.0]]))
    x = rng.standard_normal((2, 3))
    x[np.abs(1 - x) < 0.05] = 0.3
    grads_ok(lambda a: F.hinge_embedding_loss(a, y, reduction="sum"), x)
    raises(RuntimeError, r"hinge_embedding_loss.*input \[5\], target \[2\]",
           lambda: F.hinge_embedding_loss(fw.zeros(5), fw.zeros(2)))
    raises(ValueError, "hinge_embedding_loss: 'avg' is not a valid value",
           lambda: F.hinge_embedding_loss(fw.zeros(5), fw.zeros(5), reduction="avg"))


# ============================================================================= multi-label margin loss


def _multilabel_data(rng, n=5, c=6):
    x = rng.standard_normal((n, c))
    y = np.full((n, c), -1)
    y[0] = [3, 0, -1, 1, 5, 2]  # padding after two targets (the values after -1 are ignored)
    y[1] = [1, 1, 2, -1, -1, -1]  # a class listed twice counts twice
    y[2] = [-1, 4, 4, 4, 4, 4]  # no targets
    y[3] = [5, 4, 3, 2, 1, 0]  # every class a target: no non-target class
    y[4] = [2, -1, -1, -1, -1, -1]
    return x, y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multilabel_margin_loss_matches_torch(reduction, dtype, rng):
    x, y = _multilabel_data(rng)
    kw = dict(reduction=reduction)
    check(lambda a: F.multilabel_margin_loss(a, fw.tensor(y), **kw),
          lambda a: TF.multilabel_margin_loss(a, torch.tensor(y), **kw), [x], dtype=dtype)
    for i in range(5):  # unbatched (C,): 'none' gives a scalar
        check(lambda a, i=i: F.multilabel_margin_loss(a, fw.tensor(y[i]), **kw),
              lambda a, i=i: TF.multilabel_margin_loss(a, torch.tensor(y[i]), **kw), [x[i]], dtype=dtype)
    for t in (np.array(0), np.array([0]), np.array(-1)):  # a scalar input: one class
        check(lambda a, t=t: F.multilabel_margin_loss(a, fw.tensor(t), **kw),
              lambda a, t=t: TF.multilabel_margin_loss(a, torch.tensor(t), **kw), [np.array(0.3)],
              dtype=dtype)
    check(nn.MultiLabelMarginLoss(reduction=reduction), torch.nn.MultiLabelMarginLoss(reduction=reduction),
          [x[:2], y[:2]], dtype=dtype)


def test_multilabel_margin_loss_by_hand_and_at_the_hinge():
    # target class 0 against classes 1 (x[0] - x[1] = 1 exactly: loss 0, and no gradient, as PyTorch's
    # kernel) and 2 (1 - 1 + 0.5 = 0.5)
    x = leaf([[1.0, 0.0, 0.5]])
    y = fw.tensor(np.array([[0, -1, 2]]))
    loss = F.multilabel_margin_loss(x, y, reduction="sum")
    assert loss.item() == pytest.approx(0.5 / 3)
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), [[-1 / 3, 0.0, 1 / 3]])
    check(lambda a: F.multilabel_margin_loss(a, fw.tensor(y.numpy())),
          lambda a: TF.multilabel_margin_loss(a, torch.tensor(y.numpy())), [x.detach().numpy()])


def test_multilabel_margin_loss_empty_batch_grads_and_integer_types(rng):
    x, y = fw.zeros(0, 3, requires_grad=True), fw.tensor(np.zeros((0, 3), np.int64))
    assert tuple(F.multilabel_margin_loss(x, y, reduction="none").shape) == (0,)
    assert F.multilabel_margin_loss(x, y, reduction="sum").item() == 0.0
    assert math.isnan(F.multilabel_margin_loss(x, y).item())  # PyTorch: an uninitialised value
    xs, ys = _multilabel_data(rng, c=6)
    xs = np.round(xs, 1) + 0.013  # keep away from the hinge for finite differences
    grads_ok(lambda a: F.multilabel_margin_loss(a, fw.tensor(ys)), xs, second=False)
    grads_ok(lambda a: F.multilabel_margin_loss(a, fw.tensor(ys[0]), reduction="sum"), xs[0])
    a = F.multilabel_margin_loss(fw.tensor(xs), fw.tensor(ys.astype(np.int32)), reduction="none")
    b = F.multilabel_margin_loss(fw.tensor(xs), fw.tensor(ys), reduction="none")
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("call,exc,match", [
    (lambda: F.multilabel_margin_loss(fw.zeros(2, 3, 4), fw.zeros(2, 3, 4).long()), RuntimeError,
     r"multilabel_margin_loss: expected non-empty vector or matrix.*\[2, 3, 4\]"),
    (lambda: F.multilabel_margin_loss(fw.zeros(2, 0), fw.zeros(2, 0).long()), RuntimeError, r"\[2, 0\]"),
    (lambda: F.multilabel_margin_loss(fw.zeros(0), fw.zeros(0).long()), RuntimeError, r"non-empty.*\[0\]"),
    (lambda: F.multilabel_margin_loss(fw.zeros(2, 4), fw.zeros(2, 3).long()), RuntimeError,
     r"inconsistent target size: \[2, 3\] for input of size: \[2, 4\]"),
    (lambda: F.multilabel_margin_loss(fw.zeros(2, 4), fw.zeros(4).long()), RuntimeError,
     r"inconsistent target size: \[4\]"),
    (lambda: F.multilabel_margin_loss(fw.zeros(4), fw.zeros(1, 4).long()), RuntimeError,
     r"inconsistent target size: \[1, 4\] for input of size: \[4\]"),
    (lambda: F.multilabel_margin_loss(fw.zeros(2, 3), fw.tensor([[0, 3, -1], [0, 1, 2]])), RuntimeError,
     r"target is out of range: values must be in \[-1, 3\), got min -1, max 3"),
    (lambda: F.multilabel_margin_loss(fw.zeros(2, 3), fw.tensor([[0, -1, -2], [0, 1, 2]])), RuntimeError,
     "out of range.*min -2"),  # checked after the padding too, as PyTorch
    (lambda: F.multilabel_margin_loss(fw.zeros(2, 3), fw.zeros(2, 3)), RuntimeError, "integer type"),
    (lambda: F.multilabel_margin_loss(fw.zeros(2, 3), fw.zeros(2, 3).long(), reduction="avg"), ValueError,
     "multilabel_margin_loss: 'avg' is not a valid value"),
])
def test_multilabel_margin_loss_errors(call, exc, match):
    raises(exc, match, call)


# ============================================================================= triplet margin with distance


def _cos_distance(functional):
    return lambda a, b: 1.0 - functional.cosine_similarity(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("swap", [False, True])
def test_triplet_margin_with_distance_loss_matches_torch(swap, reduction, dtype, rng):
    a, p, n = (rng.standard_normal((5, 4)) for _ in range(3))
    p[0] = a[0]
    kw = dict(swap=swap, reduction=reduction)
    check(lambda x, y, z: F.triplet_margin_with_distance_loss(x, y, z, **kw),
          lambda x, y, z: TF.triplet_margin_with_distance_loss(x, y, z, **kw), [a, p, n], dtype=dtype)
    fcos, tcos = _cos_distance(F), _cos_distance(TF)
    check(lambda x, y, z: F.triplet_margin_with_distance_loss(x, y, z, distance_function=fcos, margin=0.4,
                                                              **kw),
          lambda x, y, z: TF.triplet_margin_with_distance_loss(x, y, z, distance_function=tcos, margin=0.4,
                                                               **kw), [a, p, n], dtype=dtype)
    l1 = (lambda x, y: (x - y).abs().sum(-1))
    kw.update(distance_function=l1, margin=2.0)
    check(lambda x, y, z: F.triplet_margin_with_distance_loss(x, y, z, **kw),
          lambda x, y, z: TF.triplet_margin_with_distance_loss(x, y, z, **kw),
          [rng.standard_normal((2, 3, 4)) for _ in range(3)], dtype=dtype)
    kw = dict(swap=swap, reduction=reduction)
    t_mod = torch.nn.TripletMarginWithDistanceLoss(margin=0.6, **kw)
    f_mod = nn.TripletMarginWithDistanceLoss(margin=0.6, **kw)
    assert repr(f_mod) == repr(t_mod) and isinstance(f_mod.distance_function, nn.PairwiseDistance)
    check(f_mod, t_mod, [a, p, n], dtype=dtype)
    t_mod = torch.nn.TripletMarginWithDistanceLoss(distance_function=torch.nn.PairwiseDistance(p=1), **kw)
    f_mod = nn.TripletMarginWithDistanceLoss(distance_function=nn.PairwiseDistance(p=1), **kw)
    check(f_mod, t_mod, [a, p, n], dtype=dtype)


def test_triplet_margin_with_distance_loss_hinge_and_default(rng):
    # d(a, p) = 5, d(a, n) = 10 exactly (squared distance components), margin 5: the gradient passes
    dist = (lambda x, y: ((x - y) ** 2).sum(-1).sqrt())
    a, p, n = np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]]), np.array([[6.0, 8.0]])
    kw = dict(distance_function=dist, margin=5.0)
    out = check(lambda x, y, z: F.triplet_margin_with_distance_loss(x, y, z, **kw),
                lambda x, y, z: TF.triplet_margin_with_distance_loss(x, y, z, **kw), [a, p, n])
    assert out[0].item() == 0.0
    xs = [fw.tensor(rng.standard_normal((4, 3))) for _ in range(3)]
    for swap in (False, True):  # the default distance is triplet_margin_loss's
        np.testing.assert_allclose(
            F.triplet_margin_with_distance_loss(*xs, margin=2.0, swap=swap, reduction="none").numpy(),
            F.triplet_margin_loss(*xs, margin=2.0, swap=swap, reduction="none").numpy(), rtol=1e-14)
    arrays = [rng.standard_normal((3, 4)) for _ in range(3)]
    grads_ok(lambda x, y, z: F.triplet_margin_with_distance_loss(x, y, z, margin=3.0, swap=True), *arrays)
    grads_ok(lambda x, y, z: F.triplet_margin_with_distance_loss(x, y, z, distance_function=_cos_distance(F),
                                                                 margin=1.5), *arrays)


def test_triplet_margin_with_distance_loss_errors():
    z = fw.zeros(2, 3)
    for m in (0.0, -1.0):
        raises(ValueError, f"triplet_margin_with_distance_loss: margin must be greater than 0, got {m}",
               lambda m=m: F.triplet_margin_with_distance_loss(z, z, z, margin=m))
        raises(ValueError, f"TripletMarginWithDistanceLoss: expected margin .* than 0, got {m}",
               lambda m=m: nn.TripletMarginWithDistanceLoss(margin=m))
    raises(RuntimeError, r"anchor 2D \[2, 3\], positive 1D \[3\], and negative 2D \[2, 3\]",
           lambda: F.triplet_margin_with_distance_loss(z, fw.zeros(3), z))
    raises(ValueError, "triplet_margin_with_distance_loss: 'avg' is not a valid",
           lambda: F.triplet_margin_with_distance_loss(z, z, z, reduction="avg"))
    raises(TypeError, "positional argument", lambda: F.triplet_margin_with_distance_loss(z, z, z, None))
    raises(TypeError, "positional argument", lambda: nn.TripletMarginWithDistanceLoss(None))  # keyword-only


# ============================================================================= CTC

# (T, N, C) = (7, 4, 5); labels 1..4 with blank 0. Sample 0 repeats a label (needs a blank between the
# twos), sample 1 has an empty target, sample 2 a shorter input, sample 3 the longest target its input
# allows (3 labels, one repeat: 4 frames).
CTC_IL = [7, 5, 3, 4]
CTC_TL = [3, 0, 2, 3]
CTC_PADDED = np.array([[1, 2, 2, 0], [0, 0, 0, 0], [3, 4, 0, 0], [4, 4, 1, 0]])
CTC_CONCAT = np.array([1, 2, 2, 3, 4, 4, 4, 1])


def _ctc_logits(rng, shape=(7, 4, 5)):
    return rng.standard_normal(shape) * 2


def _ctc_pair(targets, il=CTC_IL, tl=CTC_TL, normalise=True, **kw):
    """(framework fn, torch fn) of the logits (normalise: through log_softmax) or of log_probs."""
    def f(a):
        return F.ctc_loss(F.log_softmax(a, -1) if normalise else a, fw.tensor(targets), il, tl, **kw)

    def t(a):
        return TF.ctc_loss(a.log_softmax(-1) if normalise else a, torch.tensor(targets), il, tl, **kw)
    return f, t


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("layout", ["padded", "concatenated"])
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_ctc_loss_matches_torch(zero_infinity, layout, reduction, dtype, rng):
    targets = CTC_PADDED if layout == "padded" else CTC_CONCAT
    kw = dict(reduction=reduction, zero_infinity=zero_infinity)
    x = _ctc_logits(rng)
    check(*_ctc_pair(targets, **kw), [x], dtype=dtype)
    # log_probs as the leaf: PyTorch's gradient, exp(log_probs) - posterior, normalised or not
    lp = torch.tensor(x).log_softmax(-1).numpy()
    check(*_ctc_pair(targets, normalise=False, **kw), [lp], dtype=dtype)
    check(*_ctc_pair(targets, normalise=False, **kw), [x], dtype=dtype)
    # an input too short for its target: sample 2 (two labels) in one frame, sample 0 ("1 2 2") in 3
    check(*_ctc_pair(targets, il=[3, 5, 1, 4], **kw), [x], dtype=dtype)
    # another blank, and lengths given as tensors
    il, tl = fw.tensor(np.array(CTC_IL, np.int32)), fw.tensor(np.array(CTC_TL))
    tgt = np.where(targets == 3, 0, targets)  # blank 3: label 0 may appear
    check(lambda a: F.ctc_loss(F.log_softmax(a, 2), fw.tensor(tgt), il, tl, blank=3, **kw),
          lambda a: TF.ctc_loss(a.log_softmax(2), torch.tensor(tgt), torch.tensor(CTC_IL, dtype=torch.int32),
                                torch.tensor(CTC_TL), blank=3, **kw), [x], dtype=dtype)
    t_mod = torch.nn.CTCLoss(blank=0, reduction=reduction, zero_infinity=zero_infinity)
    f_mod = nn.CTCLoss(blank=0, reduction=reduction, zero_infinity=zero_infinity)
    assert repr(f_mod) == repr(t_mod) and list(f_mod.state_dict()) == []
    check(lambda a: f_mod(a, fw.tensor(targets), CTC_IL, CTC_TL),
          lambda a: t_mod(a, torch.tensor(targets), CTC_IL, CTC_TL), [lp], dtype=dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ctc_loss_unbatched_matches_torch(reduction, rng):
    x = _ctc_logits(rng, (6, 4))
    for targets, il, tl in ((np.array([1, 2, 2]), [6], [3]), (np.array([[3, 1, 9]]), [5], [2]),
                            (np.array([2, 1]), torch.tensor(6), torch.tensor(2)),
                            (np.zeros(0, int), [4], [0])):
        fil, ftl = (fw.tensor(v.numpy()) if isinstance(v, torch.Tensor) else v for v in (il, tl))
        out = check(lambda a, t=targets, i=fil, n=ftl: F.ctc_loss(F.log_softmax(a, 1), fw.tensor(t), i, n,
                                                                  reduction=reduction),
                    lambda a, t=targets, i=il, n=tl: TF.ctc_loss(a.log_softmax(1), torch.tensor(t), i, n,
                                                                 reduction=reduction), [x])
        assert out[0].ndim == 0


def test_ctc_loss_layouts_and_length_types_agree(rng):
    lp = fw.tensor(_ctc_logits(rng)).log_softmax(2)
    ref = F.ctc_loss(lp, fw.tensor(CTC_PADDED), CTC_IL, CTC_TL, reduction="none").numpy()
    padded_junk = np.where(np.arange(4)[None, :] < np.array(CTC_TL)[:, None], CTC_PADDED, -1)  # -1 padding
    variants = [
        (CTC_CONCAT, CTC_IL, CTC_TL),
        (padded_junk, CTC_IL, CTC_TL),
        (np.pad(CTC_PADDED, ((0, 0), (0, 3)), constant_values=99), CTC_IL, CTC_TL),  # wider, junk padding
        (CTC_PADDED, tuple(CTC_IL), tuple(CTC_TL)),
        (CTC_PADDED, fw.tensor(np.array(CTC_IL)), fw.tensor(np.array(CTC_TL, np.int32))),
        (CTC_PADDED, fw.tensor(np.array([CTC_IL])), CTC_TL),  # the values of any shape, as PyTorch
        (CTC_PADDED.astype(np.float32), np.array(CTC_IL), CTC_TL),  # float labels: converted, as PyTorch
    ]
    for targets, il, tl in variants:
        out = F.ctc_loss(lp, fw.tensor(targets), il, tl, reduction="none")
        np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12)


def test_ctc_loss_by_hand():
    # empty target: the only path is all blanks, loss -sum_t log p(blank)
    lp = np.log(np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.7, 0.2, 0.1]]))  # (T, C) = (3, 3)
    empty = F.ctc_loss(fw.tensor(lp), fw.tensor(np.zeros(0, np.int64)), [3], [0], reduction="sum")
    assert empty.item() == pytest.approx(-math.log(0.5 * 0.1 * 0.7))
    # "1 1" in exactly 3 frames has one alignment, 1 blank 1
    rep = F.ctc_loss(fw.tensor(lp), fw.tensor(np.array([1, 1])), [3], [2], reduction="sum")
    assert rep.item() == pytest.approx(-math.log(0.3 * 0.1 * 0.2))
    # ... and none in 2 frames (the repeat needs a blank between): inf, or 0 with zero_infinity
    assert F.ctc_loss(fw.tensor(lp[:2]), fw.tensor(np.array([1, 1])), [2], [2]).item() == math.inf
    short = F.ctc_loss(fw.tensor(lp[:2]), fw.tensor(np.array([1, 1])), [2], [2], zero_infinity=True)
    assert short.item() == 0
    # "1 2" in 2 frames also has one alignment; the frames after input_length do not count
    two = F.ctc_loss(fw.tensor(lp), fw.tensor(np.array([1, 2])), [2], [2], reduction="sum")
    assert two.item() == pytest.approx(-math.log(0.3 * 0.3))
    # an input of length 0: 0 for an empty target, inf otherwise (as PyTorch)
    lp3 = fw.tensor(np.stack([lp, lp], 1))
    out = F.ctc_loss(lp3, fw.tensor(np.array([[1], [1]])), [0, 0], [0, 1], reduction="none")
    np.testing.assert_array_equal(out.numpy(), [0.0, math.inf])


def test_ctc_loss_mean_divides_by_clamped_target_lengths(rng):
    lp = fw.tensor(_ctc_logits(rng)).log_softmax(2)
    per = F.ctc_loss(lp, fw.tensor(CTC_PADDED), CTC_IL, CTC_TL, reduction="none").numpy()
    mean = F.ctc_loss(lp, fw.tensor(CTC_PADDED), CTC_IL, CTC_TL).item()
    assert mean == pytest.approx(np.mean(per / np.maximum(CTC_TL, 1)))
    assert F.ctc_loss(lp, fw.tensor(CTC_PADDED), CTC_IL, CTC_TL, reduction="sum").item() == pytest.approx(
        per.sum())


def test_ctc_loss_infinite_gradients_as_torch(rng):
    # sample 0 cannot be aligned ("1 2 2" in 3 frames): PyTorch's gradient is NaN for t < 3 and 0 after;
    # zero_infinity zeroes the loss and the gradient of that sample only
    x = _ctc_logits(rng)
    il = [3, 5, 3, 4]
    for zi in (False, True):
        out = check(*_ctc_pair(CTC_PADDED, il=il, normalise=False, reduction="none", zero_infinity=zi), [x])
        assert out[0][0].item() == (0.0 if zi else math.inf)
        a = leaf(x)
        F.ctc_loss(a, fw.tensor(CTC_PADDED), il, CTC_TL, reduction="sum", zero_infinity=zi).backward()
        g = a.grad.numpy()
        assert (np.all(g[:3, 0] == 0) if zi else np.all(np.isnan(g[:3, 0]))) and np.all(g[3:, 0] == 0)
        assert np.all(np.isfinite(g[:, 1:]))


def test_ctc_loss_gradient_is_torchs_not_the_partial_derivative(rng):
    # For log_probs as a leaf, PyTorch's gradient is exp(log_probs) - posterior for t < input_length: the
    # finite-difference gradient (-posterior) plus exp(log_probs). Through log_softmax they agree.
    x = _ctc_logits(rng, (4, 2, 3)) * 0.5
    il, tl, tg = [4, 3], [2, 1], np.array([[1, 1], [2, 0]])
    a = leaf(x)
    F.ctc_loss(a, fw.tensor(tg), il, tl, reduction="sum").backward()
    eps, fd = 1e-6, np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        fd[i] = (F.ctc_loss(fw.tensor(xp), fw.tensor(tg), il, tl, reduction="sum").item()
                 - F.ctc_loss(fw.tensor(xm), fw.tensor(tg), il, tl, reduction="sum").item()) / (2 * eps)
    in_time = np.arange(4)[:, None, None] < np.array(il)[None, :, None]
    np.testing.assert_allclose(a.grad.numpy(), fd + np.where(in_time, np.exp(x), 0), atol=1e-8)
    t = torch.tensor(x, requires_grad=True)
    TF.ctc_loss(t, torch.tensor(tg), il, tl, reduction="sum").backward()
    np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), atol=1e-10)


def test_ctc_loss_gradcheck(rng):
    x = _ctc_logits(rng, (5, 3, 4)) * 0.5
    tg, il, tl = fw.tensor(np.array([[1, 1, 0], [2, 3, 0], [0, 0, 0]])), [5, 4, 3], [2, 2, 0]
    for reduction in REDUCTIONS:
        grads_ok(lambda a, r=reduction: F.ctc_loss(F.log_softmax(a, 2), tg, il, tl, reduction=r), x,
                 second=reduction == "mean")
    grads_ok(lambda a: F.ctc_loss(F.log_softmax(a, 1), fw.tensor(np.array([2, 2])), [5], [2]), x[:, 0])


def test_ctc_loss_without_grad_and_float32(rng):
    x = _ctc_logits(rng)
    lp = fw.tensor(x, requires_grad=True).log_softmax(2)
    ref = F.ctc_loss(lp, fw.tensor(CTC_PADDED), CTC_IL, CTC_TL, reduction="none")
    with fw.no_grad():
        out = F.ctc_loss(lp, fw.tensor(CTC_PADDED), CTC_IL, CTC_TL, reduction="none")
    assert not out.requires_grad
    np.testing.assert_array_equal(out.numpy(), ref.detach().numpy())
    y = F.ctc_loss(fw.tensor(x.astype(np.float32)).log_softmax(2), fw.tensor(CTC_PADDED), CTC_IL, CTC_TL)
    assert y.dtype == fw.float32


def _lp(*shape):
    return fw.zeros(*shape)


@pytest.mark.parametrize("call,match", [
    (lambda: F.ctc_loss(_lp(5), fw.tensor([1]), [5], [1]), r"ctc_loss: expected log_probs of size \(T, N, C\)"
     r" or \(T, C\), got \[5\]"),
    (lambda: F.ctc_loss(_lp(5, 2, 3, 1), fw.tensor([1]), [5], [1]), r"got \[5, 2, 3, 1\]"),
    (lambda: F.ctc_loss(_lp(5, 0, 3), fw.tensor([1]), [], []), r"must not be empty, got \[5, 0, 3\]"),
    (lambda: F.ctc_loss(fw.zeros(5, 2, 3).long(), fw.tensor([1, 1]), [5, 5], [1, 1]), "floating-point"),
    (lambda: F.ctc_loss(_lp(5, 2, 3), fw.tensor([1, 1]), [5, 5], [1, 1], blank=3),
     r"blank must be in label range \[0, 3\), got 3"),
    (lambda: F.ctc_loss(_lp(5, 2, 3), fw.tensor([1, 1]), [5, 5], [1, 1], blank=-1), "blank must be in label"),
    (lambda: F.ctc_loss(_lp(5, 2, 3), fw.tensor([1, 1]), [5], [1, 1]),
     r"input_lengths must be of size batch_size \(2\), got 1"),
    (lambda: F.ctc_loss(_lp(5, 2, 3), fw.tensor([1, 1]), [5, 5], fw.tensor([1, 1, 0])),
     r"target_lengths must be of size batch_size \(2\), got 3"),
    (lambda: F.ctc_loss(_lp(5, 2, 3), fw.tensor([1, 1]), fw.tensor([5.0, 5.0]), [1, 1]),
     "input_lengths must be integral"),
    (lambda: F.ctc_loss(_lp(5, 2, 3), fw.tensor([1, 1]), [5, 5], [1.0, 1.0]),
     "target_lengths must be integral"),
    (lambda: F.ctc_loss(_lp(5, 2, 3), fw.tensor([1]), [5, 5], [2, -1]),
     r"at least 0, got \[5, 5\] and \[2, -1\]"),
    (lambda: F.ctc_loss(_lp(5, 2, 3), fw.tensor([1, 1]), [-1, 5], [1, 1]), "at least 0"),
    (lambda: F.ctc_loss(_lp(5, 2, 3), fw.tensor([1, 1]), [6, 5], [1, 1]),
     r"input_lengths to have value at most 5 \(log_probs \[5, 2, 3\]\), got \[6, 5\]"),
    (lambda: F.ctc_loss(_lp(5, 2, 3), fw.tensor([1, 1, 1]), [5, 5], [1, 1]),
     r"concatenated targets of size \[3\] must hold sum\(target_lengths\) = 2 labels"),
    (lambda: F.ctc_loss(_lp(5, 2, 3), fw.tensor([[1, 1]]), [5, 5], [1, 1]),
     r"padded targets of size \[1, 2\] must have size batch_size \(2\)"),
    (lambda: F.ctc_loss(_lp(5, 2, 3), fw.tensor([[1, 1], [2, 2]]), [5, 5], [3, 1]),
     r"at least max\(target_lengths\) \(3\) at dimension 1"),
    (lambda: F.ctc_loss(_lp(5, 2, 3), fw.zeros(2, 1, 1).long(), [5, 5], [1, 1]),
     r"targets of size \(N, S\) or \(sum\(target_lengths\),\), got \[2, 1, 1\]"),
    (lambda: F.ctc_loss(_lp(5, 2, 3), fw.tensor([[1, 3], [2, 2]]), [5, 5], [2, 1]),
     r"target labels must be in \[0, 3\), got min 1, max 3"),
    (lambda: F.ctc_loss(_lp(5, 2, 3), fw.tensor([-1, 2]), [5, 5], [1, 1]), "labels must be in .* min -1"),
    (lambda: F.ctc_loss(_lp(5, 3), fw.tensor([[1, 1], [2, 2]]), [5], [2]),
     r"padded targets of size \[2, 2\] must have size batch_size \(1\)"),
])
def test_ctc_loss_errors(call, match):
    raises(RuntimeError, match, call)


def test_ctc_loss_reduction_errors():
    raises(ValueError, "ctc_loss: 'avg' is not a valid value",
           lambda: F.ctc_loss(_lp(5, 2, 3), fw.tensor([1, 1]), [5, 5], [1, 1], reduction="avg"))
    raises(ValueError, "avg is not a valid value", lambda: nn.CTCLoss(reduction="avg"))


# ============================================================================= modules


@pytest.mark.parametrize("name,args,inputs", [
    ("SoftMarginLoss", (), "pm1"),
    ("HingeEmbeddingLoss", (0.4,), "pm1"),
    ("MultiLabelMarginLoss", (), "labels"),
])
@pytest.mark.parametrize("legacy", [dict(size_average=False), dict(reduce=False), dict(size_average=True)])
def test_loss_modules_legacy_reduction_arguments(name, args, inputs, legacy, rng):
    t_mod, f_mod = getattr(torch.nn, name)(*args, **legacy), getattr(nn, name)(*args, **legacy)
    assert f_mod.reduction == t_mod.reduction and repr(f_mod) == repr(t_mod)
    x = rng.standard_normal((4, 3))
    y = {"pm1": Const(np.where(rng.random((4, 3)) > 0.5, 1.0, -1.0)),
         "labels": np.array([[0, 2, -1], [1, -1, 0], [2, 1, 0], [-1, 0, 0]])}[inputs]
    check(f_mod, t_mod, [x, y])


def test_loss_modules_equal_functionals(rng):
    x = fw.tensor(rng.standard_normal((4, 3)))
    a, p, n = (fw.tensor(rng.standard_normal((4, 3))) for _ in range(3))
    y = fw.tensor(np.array([[1.0, -1.0, 1.0]]))
    labels = fw.tensor(np.array([[0, 2, -1], [1, -1, 0], [2, 1, 0], [-1, 0, 0]]))
    lp = fw.tensor(_ctc_logits(rng)).log_softmax(2)
    tg = fw.tensor(CTC_PADDED)
    dist = (lambda u, v: (u - v).abs().sum(-1))
    pairs = [
        (nn.SoftMarginLoss(reduction="sum")(x, y), F.soft_margin_loss(x, y, reduction="sum")),
        (nn.HingeEmbeddingLoss(0.3, reduction="none")(x, y),
         F.hinge_embedding_loss(x, y, 0.3, reduction="none")),
        (nn.MultiLabelMarginLoss()(x, labels), F.multilabel_margin_loss(x, labels)),
        (nn.TripletMarginWithDistanceLoss(distance_function=dist, margin=0.5, swap=True)(a, p, n),
         F.triplet_margin_with_distance_loss(a, p, n, distance_function=dist, margin=0.5, swap=True)),
        (nn.TripletMarginWithDistanceLoss()(a, p, n), F.triplet_margin_with_distance_loss(a, p, n)),
        (nn.CTCLoss(blank=0, reduction="sum", zero_infinity=True)(lp, tg, [2, 5, 3, 4], CTC_TL),
         F.ctc_loss(lp, tg, [2, 5, 3, 4], CTC_TL, 0, "sum", True)),
    ]
    for mod_out, fn_out in pairs:
        np.testing.assert_array_equal(mod_out.numpy(), fn_out.numpy())
    m = nn.CTCLoss(blank=2, zero_infinity=True)
    assert (m.blank, m.reduction, m.zero_infinity) == (2, "mean", True)


def test_new_names_are_exported():
    for name in ("SoftMarginLoss", "MultiLabelMarginLoss", "HingeEmbeddingLoss",
                 "TripletMarginWithDistanceLoss", "CTCLoss"):
        assert name in nn.__all__ and issubclass(getattr(nn, name), nn.Module)
        assert re.fullmatch(r"\w+Loss", name) and hasattr(torch.nn, name)
    for name in ("soft_margin_loss", "multilabel_margin_loss", "hinge_embedding_loss",
                 "triplet_margin_with_distance_loss", "ctc_loss"):
        assert name in F.__all__ and getattr(nn.functional, name) is getattr(F, name)
