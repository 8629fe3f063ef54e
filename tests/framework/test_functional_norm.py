"""Normalisation and dropout against PyTorch, running statistics, second derivatives."""

import numpy as np
import pytest
from functional_oracle import check

import framework as fw
import framework.functional as F
from framework.testing import gradcheck, gradgradcheck

torch = pytest.importorskip("torch")
TF = torch.nn.functional


@pytest.mark.parametrize("shape", [(4, 3), (3, 4, 5), (2, 3, 4, 5)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_training_and_running_stats(shape, dtype, affine, rng):
    c = shape[1]
    x = rng.standard_normal(shape) * 2 + 1
    w, b = rng.standard_normal(c), rng.standard_normal(c)
    rm, rv = rng.standard_normal(c), rng.random(c) + 0.5
    frm, frv = fw.tensor(rm.astype(dtype)), fw.tensor(rv.astype(dtype))
    trm, trv = torch.tensor(rm.astype(dtype)), torch.tensor(rv.astype(dtype))
    if affine:
        check(
            lambda x, w, b: F.batch_norm(x, frm, frv, w, b, True, 0.3, 1e-3),
            lambda x, w, b: TF.batch_norm(x, trm, trv, w, b, True, 0.3, 1e-3),
            [x, w, b],
            dtype=dtype,
        )
    else:
        check(
            lambda x: F.batch_norm(x, frm, frv, training=True),
            lambda x: TF.batch_norm(x, trm, trv, training=True),
            [x],
            dtype=dtype,
        )
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(frm.numpy(), trm.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(frv.numpy(), trv.numpy(), rtol=tol, atol=tol)  # unbiased variance


def test_batch_norm_eval_and_no_running_stats(rng):
    x = rng.standard_normal((3, 4, 2, 2))
    w, b, rm, rv = rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal(4), rng.random(4) + 0.5
    check(
        lambda x, w, b, rm, rv: F.batch_norm(x, rm.detach(), rv.detach(), w, b, False),
        lambda x, w, b, rm, rv: TF.batch_norm(x, rm.detach(), rv.detach(), w, b, False),
        [x, w, b, rm, rv],
    )
    check(
        lambda x: F.batch_norm(x, None, None, training=True),
        lambda x: TF.batch_norm(x, None, None, training=True),
        [x],
    )


def test_batch_norm_errors():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(fw.zeros(1, 3), None, None, training=True)
    with pytest.raises(RuntimeError, match="running_mean should contain 3 elements not 4"):
        F.batch_norm(fw.zeros(2, 3), fw.zeros(4), fw.ones(4))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layer_norm(dtype, rng):
    x = rng.standard_normal((2, 3, 4, 5))
    w, b = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    check(
        lambda x, w, b: F.layer_norm(x, (4, 5), w, b),
        lambda x, w, b: TF.layer_norm(x, (4, 5), w, b),
        [x, w, b],
        dtype=dtype,
    )
    check(
        lambda x: F.layer_norm(x, 5, eps=1e-2), lambda x: TF.layer_norm(x, (5,), eps=1e-2), [x], dtype=dtype
    )
    with pytest.raises(RuntimeError, match=r"layer_norm.*normalized_shape=\[4\].*\[2, 3, 4, 5\]"):
        F.layer_norm(fw.zeros(2, 3, 4, 5), [4])


@pytest.mark.parametrize("groups", [1, 2, 6])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_group_norm(groups, dtype, rng):
    x = rng.standard_normal((2, 6, 3, 4))
    w, b = rng.standard_normal(6), rng.standard_normal(6)
    check(
        lambda x, w, b: F.group_norm(x, groups, w, b),
        lambda x, w, b: TF.group_norm(x, groups, w, b),
        [x, w, b],
        dtype=dtype,
    )
    with pytest.raises(RuntimeError, match="divisible by num_groups"):
        F.group_norm(fw.zeros(2, 6, 3), 4)


def test_instance_norm(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    check(
        lambda x, w, b: F.instance_norm(x, weight=w, bias=b),
        lambda x, w, b: TF.instance_norm(x, weight=w, bias=b),
        [x, w, b],
    )


def test_norms_second_derivatives(rng):
    x = fw.tensor(rng.standard_normal((3, 2, 2)), dtype=fw.float64, requires_grad=True)
    w = fw.tensor(rng.standard_normal(2), dtype=fw.float64, requires_grad=True)
    b = fw.tensor(rng.standard_normal(2), dtype=fw.float64, requires_grad=True)
    for f in (
        lambda x, w, b: F.batch_norm(x, None, None, w, b, True) ** 2,
        lambda x, w, b: F.layer_norm(x, (2,), w, b) ** 2,
        lambda x, w, b: F.group_norm(x, 1, w, b) ** 2,
    ):
        assert gradcheck(f, (x, w, b))
        assert gradgradcheck(f, (x, w, b))


def test_batch_norm_double_backward_matches_torch(rng):
    x = rng.standard_normal((4, 3, 2, 2))

    def run(lib, bn):
        xs = lib.tensor(x, requires_grad=True)
        y = bn(xs, None, None, None, None, True)
        (g,) = lib.autograd.grad((y**3).sum(), [xs], create_graph=True)
        (g * g).sum().backward()
        return xs.grad.detach().numpy()

    np.testing.assert_allclose(run(fw, F.batch_norm), run(torch, TF.batch_norm), rtol=1e-8, atol=1e-9)


def test_dropout_statistics_scaling_and_seed():
    x = fw.ones(200, 100, requires_grad=True)
    fw.manual_seed(3)
    y = F.dropout(x, 0.3)
    kept = y.detach().numpy() != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y.detach().numpy()[kept], 1 / 0.7, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), kept / 0.7, rtol=1e-6)  # same mask in backward
    fw.manual_seed(3)
    np.testing.assert_array_equal(F.dropout(fw.ones(200, 100), 0.3).numpy(), y.detach().numpy())
    assert F.dropout(x, 0.3, training=False) is x
    assert not F.dropout(fw.ones(5), 1.0).numpy().any()
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(x, 1.5)


def test_dropout2d_zeroes_whole_channels():
    fw.manual_seed(0)
    y = F.dropout2d(fw.ones(8, 16, 3, 3), 0.5).numpy()
    per_channel = y.reshape(8, 16, 9)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2).all(-1))
    assert 0 < (per_channel == 0).all(-1).mean() < 1


def test_batch_norm_output_modified_in_place_keeps_gradient(rng):
    """nn.ReLU(inplace=True) after a norm layer: the saved normalised values must not be overwritten."""
    x = rng.standard_normal((4, 3, 2, 2))
    check(
        lambda x: F.relu(F.batch_norm(x, None, None, training=True), inplace=True),
        lambda x: TF.relu(TF.batch_norm(x, None, None, training=True), inplace=True),
        [x],
    )
    check(
        lambda x: F.relu(F.group_norm(x, 3), inplace=True),
        lambda x: TF.relu(TF.group_norm(x, 3), inplace=True),
        [x],
    )


def test_autocast_policies_of_functional_ops():
    x = fw.randn(2, 3, 8, 8)
    w = fw.randn(4, 3, 3, 3, requires_grad=True)
    rm, rv = fw.zeros(4), fw.ones(4)
    with fw.autocast("cpu"):
        y = F.conv2d(x, w, padding=1)
        z = F.batch_norm(y, rm, rv, training=True)
        loss = F.cross_entropy(z.mean((2, 3)), fw.tensor([0, 1]))
    assert y.dtype == fw.float16 and z.dtype == fw.float32 and loss.dtype == fw.float32
    assert rm.dtype == fw.float32 and np.any(rm.numpy() != 0)  # updated in place, never cast
    loss.backward()
    assert w.grad.dtype == fw.float32


@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_eval_gradients_reach_running_statistics(affine, rng):
    """The fused inference-mode map y = x * w / sqrt(rv + eps) + (b - rm * w / sqrt(rv + eps)):
    first and second derivatives for every input, the running statistics included (float64)."""
    x = fw.tensor(rng.standard_normal((3, 4, 5, 2)), requires_grad=True)
    rm = fw.tensor(rng.standard_normal(4), requires_grad=True)
    rv = fw.tensor(rng.uniform(0.5, 2.0, 4), requires_grad=True)
    if affine:
        w = fw.tensor(rng.standard_normal(4), requires_grad=True)
        b = fw.tensor(rng.standard_normal(4), requires_grad=True)

        def f(x, rm, rv, w, b):
            return F.batch_norm(x, rm, rv, w, b, False, eps=1e-3)

        args = (x, rm, rv, w, b)
    else:

        def f(x, rm, rv):
            return F.batch_norm(x, rm, rv, training=False, eps=1e-3)

        args = (x, rm, rv)
    assert gradcheck(f, args)
    assert gradgradcheck(lambda *a: f(*a) ** 2, args)


def test_batch_norm_eval_float32_matches_torch_and_keeps_dtype(rng):
    x = rng.standard_normal((2, 6, 7, 7)).astype(np.float32)
    rm, rv = rng.standard_normal(6).astype(np.float32), rng.uniform(0.2, 3, 6).astype(np.float32)
    w, b = rng.standard_normal(6).astype(np.float32), rng.standard_normal(6).astype(np.float32)
    ours = F.batch_norm(fw.tensor(x), fw.tensor(rm), fw.tensor(rv), fw.tensor(w), fw.tensor(b), False)
    ref = TF.batch_norm(*(torch.tensor(a) for a in (x, rm, rv, w, b)), False)
    assert ours.dtype == fw.float32
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_training_in_chunks_with_a_large_mean(affine, rng):
    """The chunked NumPy batch norm (five images of 3 x 130 x 130, one per chunk)
    in float32, against PyTorch in float64: activations offset by 40 standard deviations must keep
    their precision (the centred values are formed before any square or product is summed)."""
    x = (rng.standard_normal((5, 3, 130, 130)) * 0.5 + 20).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    w, b = (rng.random(3) + 0.5).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    rm, rv = fw.zeros(3), fw.ones(3)
    fx = fw.tensor(x, requires_grad=True)
    fwb = [fw.tensor(w, requires_grad=True), fw.tensor(b, requires_grad=True)] if affine else [None, None]
    y = F.batch_norm(fx, rm, rv, *fwb, training=True, momentum=0.5)
    y.backward(fw.tensor(g))
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    twb = ([torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (w, b)] if affine
           else [None, None])
    trm, trv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    ty = TF.batch_norm(tx, trm, trv, *twb, training=True, momentum=0.5)
    ty.backward(torch.tensor(g, dtype=torch.float64))
    assert y.dtype == fw.float32 and fx.grad.dtype == fw.float32
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-4, atol=2e-4)
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-3, atol=2e-4)
    np.testing.assert_allclose(rm.numpy(), trm.numpy(), rtol=1e-5)
    np.testing.assert_allclose(rv.numpy(), trv.numpy(), rtol=1e-4)
    if affine:
        for f, t in zip(fwb, twb):
            np.testing.assert_allclose(f.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-2)
