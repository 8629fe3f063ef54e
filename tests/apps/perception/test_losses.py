"""The detector's box loss against an independent NumPy GIoU and finite differences."""

import numpy as np
import pytest

import framework as fw
from apps.perception.losses import giou_loss
from framework.testing import gradcheck


def _giou_np(a, b):
    """GIoU of corner boxes (M, 4) pairwise by row, written from the definition."""
    area = lambda t: (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])  # noqa: E731
    lt, rb = np.maximum(a[:, :2], b[:, :2]), np.minimum(a[:, 2:], b[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    union = area(a) + area(b) - inter
    hull = np.prod(np.maximum(a[:, 2:], b[:, 2:]) - np.minimum(a[:, :2], b[:, :2]), axis=1)
    return inter / union - (hull - union) / hull


def _corners(reg):  # (M, 4) [dx, dy, log w, log h] -> xyxy
    w, h = np.exp(reg[:, 2]), np.exp(reg[:, 3])
    return np.stack([reg[:, 0] - w / 2, reg[:, 1] - h / 2, reg[:, 0] + w / 2, reg[:, 1] + h / 2], 1)


def _case(rng, n=2, g=6):
    pred = rng.normal(0, 0.6, (n, 4, g, g))
    target = rng.normal(0, 0.6, (n, 4, g, g))
    weight = np.where(rng.random((n, 1, g, g)) < 0.3, rng.random((n, 1, g, g)), 0.0)
    weight[0, 0, 0, 0] = 0.7  # at least one cell
    return pred, target, weight


def test_giou_loss_matches_the_definition(rng):
    pred, target, weight = _case(rng)
    sel = weight.reshape(-1) > 0
    rows = lambda a: a.transpose(0, 2, 3, 1).reshape(-1, 4)[sel]  # noqa: E731
    g = _giou_np(_corners(rows(pred)), _corners(rows(target)))
    w = weight.reshape(-1)[sel]
    want = float(((1 - g) * w).sum() / w.sum())
    got = giou_loss(fw.tensor(pred.astype(np.float32)), target, weight).item()
    assert got == pytest.approx(want, rel=1e-5)
    # disjoint boxes make GIoU negative: the loss exceeds 1 there, which plain IoU cannot tell apart
    far = target.copy()
    far[:, 0] += 50.0
    assert giou_loss(fw.tensor(pred.astype(np.float32)), far, weight).item() > 1.0


def test_giou_loss_is_zero_for_a_perfect_box_and_ignores_unweighted_cells(rng):
    pred, target, weight = _case(rng)
    exact = np.where(weight > 0, target, pred + 3.0)  # unweighted cells are wildly wrong
    assert giou_loss(fw.tensor(exact), target, weight).item() == pytest.approx(0.0, abs=1e-12)
    t = fw.tensor(pred, requires_grad=True)
    giou_loss(t, target, weight).backward()
    assert np.all(t.grad.numpy()[np.broadcast_to(weight == 0, pred.shape)] == 0)
    none = giou_loss(fw.tensor(pred, requires_grad=True), target, np.zeros_like(weight))
    assert none.item() == 0.0


def test_giou_loss_gradient_by_finite_differences(rng):
    pred, target, weight = _case(rng, n=1, g=4)
    t = fw.tensor(pred, requires_grad=True)
    assert gradcheck(lambda p: giou_loss(p, target, weight), (t,), eps=1e-6, atol=1e-5)
