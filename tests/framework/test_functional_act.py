"""Activations, softmax, linear, embedding, one_hot, similarity and attention against PyTorch."""

import numpy as np
import pytest
from functional_oracle import check

import framework as fw
import framework.functional as F
from framework.testing import gradcheck, gradgradcheck

torch = pytest.importorskip("torch")
TF = torch.nn.functional

ACTS = {
    "relu": (F.relu, TF.relu),
    "relu6": (F.relu6, TF.relu6),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
    "elu": (lambda x: F.elu(x, 0.7), lambda x: TF.elu(x, 0.7)),
    "selu": (F.selu, TF.selu),
    "gelu": (F.gelu, TF.gelu),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), lambda x: TF.gelu(x, approximate="tanh")),
    "silu": (F.silu, TF.silu),
    "mish": (F.mish, TF.mish),
    "sigmoid": (F.sigmoid, torch.sigmoid),
    "tanh": (F.tanh, torch.tanh),
    "hardtanh": (lambda x: F.hardtanh(x, -0.5, 2.0), lambda x: TF.hardtanh(x, -0.5, 2.0)),
    "hardsigmoid": (F.hardsigmoid, TF.hardsigmoid),
    "hardswish": (F.hardswish, TF.hardswish),
    "softplus": (lambda x: F.softplus(x, 2.0, 5.0), lambda x: TF.softplus(x, 2.0, 5.0)),
    "logsigmoid": (F.logsigmoid, TF.logsigmoid),
    "softsign": (F.softsign, TF.softsign),
    "softmax": (lambda x: F.softmax(x, -1), lambda x: TF.softmax(x, -1)),
    "log_softmax": (lambda x: F.log_softmax(x, 1), lambda x: TF.log_softmax(x, 1)),
    "glu": (lambda x: F.glu(x, 0), lambda x: TF.glu(x, 0)),
    "erf": (F.erf, torch.erf),
}


def _away_from_kinks(rng, shape):
    x = rng.standard_normal(shape) * 3
    return np.where(np.abs(x) < 1e-3, 0.5, x)


@pytest.mark.parametrize("name", sorted(ACTS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_activation_matches_torch(name, dtype, rng):
    ours, theirs = ACTS[name]
    x = _away_from_kinks(rng, (4, 6))
    x[0, :3] = [40.0, -40.0, 7.0]  # tails (softplus threshold, stable sigmoid, logsigmoid)
    # PyTorch's hardsigmoid backward multiplies by a float32 1/6 even in float64.
    loose = name in ("hardsigmoid", "hardswish") and dtype == np.float64
    check(ours, theirs, [x], dtype=dtype, rtol=1e-7 if loose else None)


@pytest.mark.parametrize(
    "name",
    [
        "gelu",
        "gelu_tanh",
        "silu",
        "elu",
        "softplus",
        "logsigmoid",
        "mish",
        "erf",
        "leaky_relu",
        "softmax",
        "log_softmax",
    ],
)
def test_activation_second_derivatives(name, rng):
    x = fw.tensor(_away_from_kinks(rng, (2, 3)), dtype=fw.float64, requires_grad=True)
    assert gradcheck(ACTS[name][0], (x,))
    assert gradgradcheck(ACTS[name][0], (x,))


@pytest.mark.parametrize("channels", [1, 4])
def test_prelu_threshold_celu(channels, rng):
    x = _away_from_kinks(rng, (2, 4, 3))
    w = rng.random(channels)
    check(F.prelu, TF.prelu, [x, w])
    check(lambda x: F.threshold(x, 0.5, -2.0), lambda x: TF.threshold(x, 0.5, -2.0), [x])
    # (PyTorch's celu backward uses a float32 1/alpha even in float64)
    check(lambda x: F.celu(x, 0.7), lambda x: TF.celu(x, 0.7), [x], rtol=1e-7)


def test_gelu_exact_erf_accuracy():
    x = np.linspace(-6, 6, 1001)
    y = F.gelu(fw.tensor(x, dtype=fw.float64)).numpy()
    np.testing.assert_allclose(y, TF.gelu(torch.tensor(x)).numpy(), rtol=1e-14, atol=1e-15)


def test_inplace_activations(rng):
    x = fw.tensor(rng.standard_normal(10))
    ref = np.maximum(x.numpy(), 0)
    assert F.relu(x, inplace=True) is x
    np.testing.assert_array_equal(x.numpy(), ref)


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_linear(shape, dtype, rng):
    x, w, b = rng.standard_normal(shape), rng.standard_normal((3, 4)), rng.standard_normal(3)
    check(F.linear, TF.linear, [x, w, b], dtype=dtype)
    check(F.linear, TF.linear, [x, w], dtype=dtype)
    with pytest.raises(RuntimeError, match=r"linear.*\[5, 2\].*\[3, 4\]"):
        F.linear(fw.zeros(5, 2), fw.zeros(3, 4))


def test_bilinear(rng):
    x1, x2 = rng.standard_normal((5, 3)), rng.standard_normal((5, 4))
    w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal(2)
    check(F.bilinear, TF.bilinear, [x1, x2, w, b])


def test_embedding_and_padding_idx(rng):
    idx = np.array([[0, 2, 4, 2], [1, 4, 4, 0]])
    w = rng.standard_normal((5, 3))
    check(lambda w, i: F.embedding(i, w), lambda w, i: TF.embedding(i, w), [w, idx])
    check(
        lambda w, i: F.embedding(i, w, padding_idx=4),
        lambda w, i: TF.embedding(i, w, padding_idx=4),
        [w, idx],
    )
    check(
        lambda w, i: F.embedding(i, w, padding_idx=-1),
        lambda w, i: TF.embedding(i, w, padding_idx=-1),
        [w, idx],
        dtype=np.float32,
    )
    wt = fw.tensor(w, dtype=fw.float64, requires_grad=True)
    assert gradgradcheck(lambda w: F.embedding(fw.tensor(idx), w, padding_idx=2) ** 2, (wt,))
    with pytest.raises(IndexError, match="embedding.*out of range"):
        F.embedding(fw.tensor([5]), fw.zeros(5, 3))
    with pytest.raises(IndexError, match="embedding.*out of range"):
        F.embedding(fw.tensor([-1]), fw.zeros(5, 3))


def test_embedding_max_norm(rng):
    w = rng.standard_normal((6, 4)) * 3
    idx = np.array([1, 3, 3])
    fw_w, th_w = fw.tensor(w), torch.tensor(w)
    a = F.embedding(fw.tensor(idx), fw_w, max_norm=1.0).numpy()
    b = TF.embedding(torch.tensor(idx), th_w, max_norm=1.0).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(fw_w.numpy(), th_w.numpy(), rtol=1e-6)


def test_one_hot():
    t = fw.tensor([[0, 2], [3, 1]])
    np.testing.assert_array_equal(F.one_hot(t).numpy(), TF.one_hot(torch.tensor([[0, 2], [3, 1]])).numpy())
    assert F.one_hot(t, 6).shape == (2, 2, 6) and F.one_hot(t, 6).dtype == fw.int64
    with pytest.raises(RuntimeError, match="smaller than num_classes"):
        F.one_hot(t, 3)


def test_normalize_and_cosine_similarity(rng):
    x, y = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    check(F.normalize, TF.normalize, [x])
    check(lambda x: F.normalize(x, 1.0, 0), lambda x: TF.normalize(x, 1.0, 0), [x])
    check(F.cosine_similarity, TF.cosine_similarity, [x, y])
    check(
        lambda a, b: F.cosine_similarity(a, b, -1),
        lambda a, b: TF.cosine_similarity(a, b, -1),
        [x, y[:1]],
        dtype=np.float32,
    )
    z = np.zeros((2, 3))
    check(F.normalize, TF.normalize, [z])  # zero vector: finite, zero gradient
    check(F.pairwise_distance, TF.pairwise_distance, [x, y])


@pytest.mark.parametrize("mask", [None, "bool", "float", "causal"])
def test_scaled_dot_product_attention(mask, rng):
    q, k, v = (
        rng.standard_normal((2, 3, 4, 8)),
        rng.standard_normal((2, 3, 6, 8)),
        rng.standard_normal((2, 3, 6, 5)),
    )
    if mask == "causal":
        check(
            lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
            lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True),
            [q, k, v],
        )
        return
    m = None
    if mask == "bool":
        m = rng.random((4, 6)) > 0.3
        m[:, 0] = True
    elif mask == "float":
        m = rng.standard_normal((2, 1, 4, 6))
    fm = None if m is None else fw.tensor(m)
    tm = None if m is None else torch.tensor(m)
    check(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, fm, scale=0.3),
        lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, tm, scale=0.3),
        [q, k, v],
    )
