"""scatter_reduce against PyTorch: every reduction, include_self both ways, index smaller than src, values
and gradients (ties of amax / amin share the gradient, as PyTorch's), the in-place form, and errors."""

import numpy as np
import pytest

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for scatter_reduce")
RNG = np.random.default_rng(61)


@pytest.mark.parametrize("reduce", ["sum", "mean", "amax", "amin", "prod"])
@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("dim", [0, 1])
def test_scatter_reduce_matches_torch(reduce, include_self, dim):
    x = RNG.standard_normal((4, 5))
    index = RNG.integers(0, x.shape[dim], (3, 4)) if dim == 0 else RNG.integers(0, 5, (4, 3))
    src = RNG.standard_normal(index.shape)
    fx, tx = fw.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fs, ts = fw.tensor(src, requires_grad=True), torch.tensor(src, requires_grad=True)
    fo = fx.scatter_reduce(dim, fw.tensor(index), fs, reduce, include_self=include_self)
    to = tx.scatter_reduce(dim, torch.tensor(index), ts, reduce, include_self=include_self)
    np.testing.assert_allclose(fo.detach().numpy(), to.detach().numpy(), rtol=1e-12, atol=1e-12)
    w = RNG.standard_normal(x.shape)
    (fo * fw.tensor(w)).sum().backward()
    (to * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fs.grad.numpy(), ts.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_a_src_larger_than_the_index_is_read_in_its_leading_part():
    # values only: PyTorch 2.13's own gradient for this case returns the wrong shape
    x, src = RNG.standard_normal((4, 5)), RNG.standard_normal((6, 7))
    index = RNG.integers(0, 4, (3, 4))
    for reduce in ("sum", "amax", "mean"):
        got = fw.tensor(x).scatter_reduce(0, fw.tensor(index), fw.tensor(src), reduce)
        want = torch.tensor(x).scatter_reduce(0, torch.tensor(index), torch.tensor(src), reduce)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)
    fs = fw.tensor(src, requires_grad=True)
    fw.tensor(x).scatter_reduce(0, fw.tensor(index), fs, "sum").sum().backward()
    assert tuple(fs.grad.shape) == (6, 7) and (fs.grad.numpy()[3:] == 0).all()


def test_ties_share_the_gradient_and_in_place_form():
    x = np.array([1.0, 5.0, 0.0])
    src = np.array([5.0, 5.0, 2.0])
    index = np.array([1, 1, 2])
    fx, tx = fw.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fs, ts = fw.tensor(src, requires_grad=True), torch.tensor(src, requires_grad=True)
    fx.scatter_reduce(0, fw.tensor(index), fs, "amax").sum().backward()
    tx.scatter_reduce(0, torch.tensor(index), ts, "amax").sum().backward()
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy())  # 1/3 each for the three fives
    np.testing.assert_allclose(fs.grad.numpy(), ts.grad.numpy())
    y = fw.tensor(x)
    y.scatter_reduce_(0, fw.tensor(index), fw.tensor(src), "sum")
    np.testing.assert_array_equal(y.numpy(), [1.0, 15.0, 2.0])


def test_scatter_reduce_errors():
    x = fw.zeros(3, 4)
    with pytest.raises(RuntimeError, match="reduce argument must be either"):
        x.scatter_reduce(0, fw.zeros(1, 1, dtype=fw.int64), fw.ones(1, 1), "median")
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        x.scatter_reduce(0, fw.zeros(2, dtype=fw.int64), fw.ones(2), "sum")
    with pytest.raises(IndexError, match="out of bounds for dimension 0 with size 3"):
        x.scatter_reduce(0, fw.tensor(np.array([[3]])), fw.ones(1, 1), "sum")


@pytest.mark.parametrize("reduce", ["mean", "amax", "amin", "prod"])
@pytest.mark.parametrize("include_self", [True, False])
def test_index_reduce_matches_torch(reduce, include_self):
    x = RNG.standard_normal((5, 3))
    src = RNG.standard_normal((4, 3))
    index = np.array([0, 4, 0, 2])
    fx, tx = fw.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fs, ts = fw.tensor(src, requires_grad=True), torch.tensor(src, requires_grad=True)
    fo = fx.index_reduce(0, fw.tensor(index), fs, reduce, include_self=include_self)
    to = tx.index_reduce(0, torch.tensor(index), ts, reduce, include_self=include_self)
    np.testing.assert_allclose(fo.detach().numpy(), to.detach().numpy(), rtol=1e-12)
    fo.sum().backward()
    to.sum().backward()
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(fs.grad.numpy(), ts.grad.numpy(), rtol=1e-12)
    with pytest.raises(RuntimeError, match="Expected reduce to be one of"):
        fx.index_reduce(0, fw.tensor(index), fs, "sum")


@pytest.mark.parametrize("include_self", [True, False])
def test_prod_gradient_with_zeros_matches_torch(include_self):
    """The product's gradient where a position holds no zero, one zero (in self or in src) or two."""
    x = np.array([2.0, 0.0, 3.0, 0.0, 1.5, -1.0])
    src = np.array([0.5, 4.0, 0.0, 2.0, 0.0, 0.0, -3.0, 0.0])
    index = np.array([0, 1, 2, 2, 3, 4, 5, 4])
    fx, tx = fw.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fs, ts = fw.tensor(src, requires_grad=True), torch.tensor(src, requires_grad=True)
    fo = fx.scatter_reduce(0, fw.tensor(index), fs, "prod", include_self=include_self)
    to = tx.scatter_reduce(0, torch.tensor(index), ts, "prod", include_self=include_self)
    w = np.arange(1.0, 7.0)
    (fo * fw.tensor(w)).sum().backward()
    (to * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(fo.detach().numpy(), to.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(fs.grad.numpy(), ts.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("reduce", ["amax", "amin"])
def test_exact_extreme_scatter_used_on_cupy_equals_numpys(dtype, reduce):
    """The max / min scatter that CuPy arrays take (CuPy's own rounds float64 through float32), run here
    with NumPy standing in: bit-exact against NumPy's maximum.at / minimum.at, signed zeros, tiny values
    of both signs and NaN (which wins, as in NumPy) included."""
    from framework.ops.misc import _scatter_extreme_exact

    rng = np.random.default_rng(7)
    vals = rng.standard_normal(300).astype(dtype)
    vals[::13] *= dtype(1e-4)
    vals[::29] = -vals[::29]
    vals[5], vals[6] = 0.0, -0.0
    flat = rng.integers(0, 25, 300)
    base = rng.standard_normal(25).astype(dtype)
    base[3] = -np.inf if reduce == "amax" else np.inf
    ufunc = np.maximum if reduce == "amax" else np.minimum
    want, got = base.copy(), base.copy()
    ufunc.at(want, flat, vals)
    _scatter_extreme_exact(np, got, flat, vals, reduce)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == want.dtype
    vals[10] = np.nan
    want, got = base.copy(), base.copy()
    with np.errstate(invalid="ignore"):
        ufunc.at(want, flat, vals)
    _scatter_extreme_exact(np, got, flat, vals, reduce)
    np.testing.assert_array_equal(got, want)  # (NaN where NumPy has NaN)


def test_scatter_product_used_on_cupy_equals_numpys():
    """The product scatter that CuPy arrays take (counts and a sum of logarithms), run here on NumPy under
    another name: equal to NumPy's multiply.at to rounding, with zeros, signs, infinities and 0 * inf."""
    from framework.ops.misc import _scatter_prod

    class NotNumPy:  # (NumPy's functions, but not NumPy itself: the CuPy branch runs)
        def __getattr__(self, name):
            return getattr(np, name)

    rng = np.random.default_rng(3)
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 1e-6)):
        vals = (rng.standard_normal(400) * 2).astype(dtype)
        vals[::37] = 0
        vals[5], vals[9] = np.inf, -np.inf
        flat = rng.integers(0, 60, 400)
        base = rng.standard_normal(60).astype(dtype)
        want, got = base.copy(), base.copy()
        with np.errstate(invalid="ignore"):
            np.multiply.at(want, flat, vals)
        _scatter_prod(NotNumPy(), got, flat, vals)
        assert np.isnan(want).any() and np.isinf(want).any() and (want == 0).any()
        np.testing.assert_allclose(got, want, rtol=rtol)
        assert got.dtype == want.dtype
    ints = rng.integers(-3, 4, 200)
    flat = rng.integers(0, 40, 200)
    want, got = np.ones(40, np.int64), np.ones(40, np.int64)
    np.multiply.at(want, flat, ints)
    _scatter_prod(NotNumPy(), got, flat, ints)
    np.testing.assert_array_equal(got, want)  # (integers exactly: the product is rounded, not truncated)
