"""The in-place Tensor methods built on their out-of-place operations, the in-place random fills, and the
small Tensor conveniences, against PyTorch: values, and gradients through in-place changes of non-leaves."""

import numpy as np
import pytest

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for tensor methods")
RNG = np.random.default_rng(51)

UNARY = [
    "sqrt",
    "abs",
    "sin",
    "cos",
    "floor",
    "round",
    "ceil",
    "trunc",
    "sign",
    "reciprocal",
    "tanh",
    "log",
    "log1p",
    "expm1",
    "square",
    "rsqrt",
    "frac",
    "erf",
]


@pytest.mark.parametrize("name", UNARY)
def test_unary_in_place_methods_match_torch(name):
    x = np.abs(RNG.standard_normal(6)) + 0.2
    fx, tx = fw.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fy, ty = fx * 1.0, tx * 1.0
    assert getattr(fy, name + "_")() is fy
    getattr(ty, name + "_")()
    np.testing.assert_allclose(fy.detach().numpy(), ty.detach().numpy(), rtol=1e-12)
    (fy * fw.tensor(np.arange(6.0))).sum().backward()
    (ty * torch.tensor(np.arange(6.0))).sum().backward()
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_in_place_methods_with_arguments_match_torch():
    a, b, c = (RNG.standard_normal((3, 4)) for _ in range(3))
    idx = np.array([2, 0])
    cases = [
        ("lerp_", lambda L, t: (L.tensor(b), 0.3)),
        ("addcmul_", lambda L, t: (L.tensor(b), L.tensor(c))),
        ("addcdiv_", lambda L, t: (L.tensor(b), L.tensor(np.abs(c) + 1))),
        ("clamp_min_", lambda L, t: (0.1,)),
        ("clamp_max_", lambda L, t: (0.1,)),
        ("cumsum_", lambda L, t: (1,)),
        ("tril_", lambda L, t: (0,)),
        ("triu_", lambda L, t: (1,)),
        ("index_add_", lambda L, t: (0, L.tensor(idx), L.tensor(b[:2]))),
        ("index_fill_", lambda L, t: (1, L.tensor(idx), -2.0)),
        ("index_copy_", lambda L, t: (0, L.tensor(idx), L.tensor(b[:2]))),
        ("scatter_", lambda L, t: (1, L.tensor(np.array([[0, 1], [2, 3], [1, 0]])), L.tensor(b[:, :2]))),
        ("masked_scatter_", lambda L, t: (L.tensor(a > 0), L.tensor(b))),
    ]
    for name, args in cases:
        fa, ta = fw.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        fy, ty = fa * 1.0, ta * 1.0
        getattr(fy, name)(*args(fw, fy))
        getattr(ty, name)(*args(torch, ty))
        np.testing.assert_allclose(fy.detach().numpy(), ty.detach().numpy(), rtol=1e-12, err_msg=name)
        w = RNG.standard_normal((3, 4))
        (fy * fw.tensor(w)).sum().backward()
        (ty * torch.tensor(w)).sum().backward()
        np.testing.assert_allclose(fa.grad.numpy(), ta.grad.numpy(), rtol=1e-12, atol=1e-12, err_msg=name)


def test_random_fills_have_their_distributions():
    fw.manual_seed(0)
    n = 40000
    e = fw.empty(n, dtype=fw.float64).exponential_(2.0).numpy()
    assert abs(e.mean() - 0.5) < 0.01 and e.min() >= 0
    b = fw.empty(n).bernoulli_(0.3).numpy()
    assert set(np.unique(b)) <= {0.0, 1.0} and abs(b.mean() - 0.3) < 0.01
    g = fw.empty(n, dtype=fw.float64).geometric_(0.25).numpy()
    assert g.min() >= 1 and abs(g.mean() - 4.0) < 0.1  # trials to the first success, as PyTorch
    c = fw.empty(n, dtype=fw.float64).cauchy_(1.0, 2.0).numpy()
    np.testing.assert_allclose(np.quantile(c, [0.25, 0.5, 0.75]), [-1.0, 1.0, 3.0], atol=0.1)
    ln = fw.empty(n, dtype=fw.float64).log_normal_(0.0, 0.5).numpy()
    assert abs(np.log(ln).mean()) < 0.01 and abs(np.log(ln).std() - 0.5) < 0.01
    r = fw.empty(n, dtype=fw.int64).random_(3, 7).numpy()
    assert set(np.unique(r)) == {3, 4, 5, 6}
    r = fw.empty(n, dtype=fw.int64).random_(5).numpy()
    assert set(np.unique(r)) == {0, 1, 2, 3, 4}
    leaf = fw.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError):
        leaf.exponential_()  # a leaf that requires grad is not overwritten in place, as in PyTorch


def test_tensor_conveniences_match_torch():
    a, b = RNG.standard_normal((2, 3)), RNG.standard_normal((3, 4))
    fa, ta = fw.tensor(a), torch.tensor(a)
    np.testing.assert_allclose(fa.mm(fw.tensor(b)).numpy(), ta.mm(torch.tensor(b)).numpy(), rtol=1e-12)
    x = np.array([1.0, np.nan, 3.0, np.nan])
    y = np.array([2.0, 0.5, np.nan, np.nan])
    for m in ("fmax", "fmin"):
        np.testing.assert_array_equal(
            getattr(fw.tensor(x), m)(fw.tensor(y)).numpy(),
            getattr(torch.tensor(x), m)(torch.tensor(y)).numpy(),
        )
    v = np.array([np.inf, -np.inf, 1.0])
    np.testing.assert_array_equal(fw.tensor(v).isposinf().numpy(), torch.tensor(v).isposinf().numpy())
    np.testing.assert_array_equal(fw.tensor(v).isneginf().numpy(), torch.tensor(v).isneginf().numpy())
    np.testing.assert_allclose(
        fa.dist(fw.tensor(a[::-1].copy()), 3).numpy(),
        ta.dist(torch.tensor(a[::-1].copy()), 3).numpy(),
        rtol=1e-12,
    )
    np.testing.assert_array_equal(fa.msort().numpy(), ta.msort().numpy())
    np.testing.assert_allclose(fa.sum_to_size(1, 3).numpy(), ta.sum_to_size(1, 3).numpy(), rtol=1e-12)
    np.testing.assert_allclose(
        fw.tensor(a.ravel()).vdot(fw.tensor(a.ravel())).numpy(),
        torch.tensor(a.ravel()).vdot(torch.tensor(a.ravel())).numpy(),
        rtol=1e-12,
    )
    assert tuple(fa.mH.shape) == (3, 2) and tuple(fa.new_empty(4, 5).shape) == (4, 5)
    assert not fa.is_complex() and fa.is_signed() and not fw.tensor([1], dtype=fw.uint8).is_signed()
    assert fa.get_device() == -1 and fa.conj() is fa
