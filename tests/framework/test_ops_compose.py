"""PyTorch conveniences made of other operations (framework/ops/compose.py) against PyTorch: values and
gradients, float64 and float32, and the errors."""

import numpy as np
import pytest
from functional_oracle import Const, both, check

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for tensor operations")

R = np.random.default_rng(11)


def normal(*s):
    return R.normal(size=s)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_values_and_gradients(dtype):
    x, y, z = normal(3, 4), normal(3, 4), np.abs(normal(3, 4)) + 0.5
    cases = [
        (lambda L, a: L.clamp_min(a, 0.1), [x]),
        (lambda L, a: L.clamp_max(a, -0.1), [x]),
        (lambda L, a, b, c: L.addcmul(a, b, c, value=0.5), [x, y, z]),
        (lambda L, a, b, c: L.addcdiv(a, b, c, value=-2.0), [x, y, z]),
        (lambda L, a: L.select(a, 1, -1), [x]),
        (lambda L, a: L.take(a, L.tensor([[0, 5], [11, 3]])), [x]),
        (lambda L, a, b: L.dot(a, b), [normal(5), normal(5)]),
        (lambda L, a, b: L.inner(a, b), [normal(2, 3), normal(4, 3)]),
        (lambda L, a, b: L.cross(a, b, dim=1), [normal(4, 3), normal(1, 3)]),
        (lambda L, a, b: L.cross(a, b, dim=-1), [normal(2, 3), normal(2, 3)]),
        (lambda L, a, b: L.kron(a, b), [normal(2, 3), normal(3, 2)]),
        (lambda L, a, b: L.kron(a, b), [normal(2), normal(2, 2)]),
        (lambda L, a, b: L.hstack([a, b]), [normal(2, 3), normal(2, 1)]),
        (lambda L, a, b: L.vstack([a, b]), [normal(3), normal(2, 3)]),
        (lambda L, a, b: L.dstack([a, b]), [normal(2, 3), normal(2, 3)]),
        (lambda L, a, b: L.column_stack([a, b]), [normal(3), normal(3, 2)]),
        (lambda L, a: L.atleast_3d(a), [normal(4)]),
        (lambda L, a: L.diff(a, dim=1), [x]),
        (lambda L, a, p: L.diff(a, n=2, dim=0, prepend=p), [normal(4, 2), normal(1, 2)]),
        (lambda L, a: L.logit(a), [R.uniform(0.05, 0.95, (3, 4))]),
        (lambda L, a: L.logit(a, eps=0.1), [R.uniform(0.0, 1.0, (3, 4))]),
        (lambda L, a, b: L.xlogy(a, b), [np.where(R.random((3, 4)) < 0.3, 0.0, x), z]),
        (lambda L, a: L.nansum(a, dim=0), [np.where(R.random((3, 4)) < 0.3, np.nan, x)]),
        (lambda L, a: L.fliplr(a), [x]),
        (lambda L, a: L.flipud(a), [x]),
        (lambda L, a: L.tensor_split(a, 3, dim=1), [normal(2, 7)]),
        (lambda L, a: L.tensor_split(a, [1, 4, 9]), [normal(6)]),
        (lambda L, a: L.std_mean(a, 1), [x]),
        (lambda L, a: L.var_mean(a, dim=0, correction=0, keepdim=True), [x]),
        (lambda L, a: tuple(L.aminmax(a, dim=1)), [x]),
        (lambda L, a: L.diag_embed(a), [normal(2, 3)]),
        (lambda L, a: L.diag_embed(a, offset=2), [normal(2, 3)]),
        (lambda L, a: L.diag_embed(a, -1), [normal(3)]),
        (lambda L, a: L.deg2rad(a) + L.rad2deg(a), [x]),
        (lambda L, a: L.sinc(a), [np.where(R.random((3, 4)) < 0.3, 0.0, x)]),
        (lambda L, a: a.unfold(1, 2, 1), [x]),
        (lambda L, a: a.unfold(0, 2, 2).sum(-1), [normal(5, 2)]),
    ]
    for k in range(-1, 4):
        cases.append((lambda L, a, k=k: L.rot90(a, k, (0, 2)), [normal(2, 3, 4)]))
    for f, args in cases:
        check(*both(f), args, dtype=dtype)


def test_nan_to_num():
    x = np.array([1.0, np.nan, np.inf, -np.inf, -2.0])
    check(*both(lambda L, a: L.nan_to_num(a)), [x])
    check(*both(lambda L, a: L.nan_to_num(a, nan=3.0, posinf=9.0, neginf=-9.0)), [x])
    check(*both(lambda L, a: a.nan_to_num()), [x.astype(np.float32)], dtype=np.float32)


def test_index_writes():
    x = normal(4, 3)
    idx = np.array([[0, 2, 1], [3, 0, 2]])
    check(*both(lambda L, a, s, i: L.scatter(a, 0, i, s)), [x, normal(2, 3), Const(idx)])
    check(*both(lambda L, a, i: L.scatter(a, 1, i, value=7.0)), [x, Const(np.array([[2], [0], [1], [1]]))])
    check(*both(lambda L, a, s: L.index_add(a, 0, L.tensor([3, 0, 3]), s, alpha=2.0)), [x, normal(3, 3)])
    check(*both(lambda L, a, s: a.index_add(1, L.tensor([2, 0]), s)), [x, normal(4, 2)])
    check(*both(lambda L, a: L.index_fill(a, 1, L.tensor([0, 2]), -1.5)), [x])
    check(*both(lambda L, a, s: L.index_copy(a, 0, L.tensor([1, 3]), s)), [x, normal(2, 3)])


def test_counting_comparing_and_builders():
    x = np.array([[0.0, 1.0, 2.0], [0.0, 0.0, 3.0]])
    assert fw.count_nonzero(fw.tensor(x)).item() == 3
    assert fw.count_nonzero(fw.tensor(x), dim=0).tolist() == [0, 1, 2]
    a, b = fw.tensor([1.0, 2.0, np.nan]), fw.tensor([1.0 + 1e-9, 2.1, np.nan])
    assert fw.isclose(a, b).tolist() == [True, False, False]
    assert fw.isclose(a, b, equal_nan=True).tolist() == [True, False, True]
    assert fw.isin(fw.tensor([1, 5, 3]), fw.tensor([3, 1])).tolist() == [True, False, True]
    assert fw.isin(fw.tensor([1, 5]), fw.tensor([5]), invert=True).tolist() == [True, False]
    for off in (-1, 0, 2):
        assert fw.tril_indices(3, 4, off).tolist() == torch.tril_indices(3, 4, off).tolist()
        assert fw.triu_indices(4, 3, off).tolist() == torch.triu_indices(4, 3, off).tolist()
    np.testing.assert_allclose(fw.logspace(0, 2, 5).numpy(), torch.logspace(0, 2, 5).numpy(), rtol=1e-6)
    assert fw.logspace(0, 1, 3, base=2.0, dtype=fw.float64).tolist() == torch.logspace(
        0, 1, 3, base=2.0, dtype=torch.float64).tolist()
    t = fw.tensor(x)
    assert t.logical_and(t > 1).tolist() == [[False, False, True], [False, False, True]]
    assert t.equal(fw.tensor(x)) and t.allclose(fw.tensor(x) + 1e-12)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="same size"):
        fw.dot(fw.randn(3), fw.randn(4))
    with pytest.raises(ValueError, match="size 2, not 3"):
        fw.cross(fw.randn(2, 2), fw.randn(2, 2), dim=1)
    with pytest.raises(ValueError, match="same"):
        fw.rot90(fw.randn(2, 2), 1, (0, 0))
    with pytest.raises(ValueError, match="exactly one of src and value"):
        fw.scatter(fw.randn(2), 0, fw.tensor([0]))
    with pytest.raises(ValueError, match="size 5 and step 1"):
        fw.randn(3).unfold(0, 5, 1)
    with pytest.raises(ValueError, match=">= 1"):
        fw.tensor_split(fw.randn(3), 0)


def test_xlogy_gradients_of_gradients_and_scalars():
    x = fw.tensor(normal(4), requires_grad=True)
    y = fw.tensor(np.abs(normal(4)) + 0.5, requires_grad=True)
    assert fw.testing.gradcheck(fw.xlogy, (x, y)) and fw.testing.gradgradcheck(fw.xlogy, (x, y))
    f32 = fw.tensor([0.0, 2.0], dtype=fw.float32)
    assert fw.xlogy(f32, 3.0).dtype == fw.float32 and fw.xlogy(f32, 0.0).tolist()[0] == 0.0
