"""fw.linalg against torch.linalg: values, gradients, gradients of gradients, errors."""

import numpy as np
import pytest
from functional_oracle import both, check

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for fw.linalg")

R = np.random.default_rng(5)


def normal(*s):
    return R.normal(size=s)


def well_conditioned(*s):
    return normal(*s) + 3 * np.eye(s[-1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_norms(dtype):
    x = normal(3, 4)
    for ord_ in (2, 1, 3, float("inf"), -float("inf")):
        check(*both(lambda L, a, o=ord_: L.linalg.vector_norm(a, o)), [x], dtype=dtype)
        check(*both(lambda L, a, o=ord_: L.linalg.vector_norm(a, o, dim=1, keepdim=True)), [x], dtype=dtype)
    for ord_ in ("fro", 1, -1, float("inf"), -float("inf")):
        check(*both(lambda L, a, o=ord_: L.linalg.matrix_norm(a, o)), [normal(2, 3, 4)], dtype=dtype)
        check(*both(lambda L, a, o=ord_: L.linalg.matrix_norm(a, o, dim=(0, 2), keepdim=True)),
              [normal(3, 2, 4)], dtype=dtype)
    check(*both(lambda L, a: L.linalg.norm(a)), [normal(2, 3, 4)], dtype=dtype)
    check(*both(lambda L, a: L.linalg.norm(a, 1)), [normal(3, 4)], dtype=dtype)  # 2-D: a matrix norm
    check(*both(lambda L, a: L.linalg.norm(a, 3, dim=1)), [normal(3, 4)], dtype=dtype)
    with pytest.raises(ValueError, match="ord must be 'fro', 'nuc', 2, -2, 1, -1, inf or -inf, got 3"):
        fw.linalg.matrix_norm(fw.randn(3, 3), 3)  # ('nuc', 2 and -2: test_linalg_decomp.py)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_inverse_determinants_and_solves(dtype):
    tol = dict(rtol=1e-3) if dtype == np.float32 else {}
    a = well_conditioned(2, 3, 3)
    check(*both(lambda L, x: L.linalg.inv(x)), [a], dtype=dtype, **tol)
    check(*both(lambda L, x: L.linalg.det(x)), [a], dtype=dtype, **tol)
    neg = a.copy()
    neg[0, 0] *= -1  # a negative determinant: the sign comes apart
    check(*both(lambda L, x: tuple(L.linalg.slogdet(x))), [neg], dtype=dtype, **tol)
    check(*both(lambda L, x, b: L.linalg.solve(x, b)), [a, normal(2, 3, 2)], dtype=dtype, **tol)
    check(*both(lambda L, x, b: L.linalg.solve(x, b)), [a[0], normal(3)], dtype=dtype, **tol)  # a vector
    check(*both(lambda L, x, b: L.linalg.solve(x, b, left=False)), [a, normal(2, 4, 3)], dtype=dtype, **tol)
    check(*both(lambda L, x, b: L.linalg.cross(x, b)), [normal(4, 3), normal(4, 3)], dtype=dtype)
    check(*both(lambda L, a, b, c, d: L.linalg.multi_dot([a, b, c, d])),
          [normal(5), normal(5, 30), normal(30, 2), normal(2)], dtype=dtype, **tol)
    check(*both(lambda L, a, b, c: L.linalg.multi_dot([a, b, c])),
          [normal(10, 100), normal(100, 5), normal(5, 50)], dtype=dtype, **tol)


def test_gradients_of_gradients_and_errors():
    t = fw.tensor(well_conditioned(3, 3), requires_grad=True)
    b = fw.tensor(normal(3, 2), requires_grad=True)
    assert fw.testing.gradgradcheck(fw.linalg.solve, (t, b))
    assert fw.testing.gradgradcheck(lambda x: fw.linalg.slogdet(x).logabsdet, (t,))
    assert fw.testing.gradgradcheck(lambda x: fw.linalg.matrix_norm(x, 1), (fw.tensor(normal(3, 4),
                                                                                       requires_grad=True),))
    with pytest.raises(RuntimeError, match="singular"):
        fw.linalg.solve(fw.zeros(2, 2), fw.ones(2))
    with pytest.raises(ValueError, match="cannot solve"):
        fw.linalg.solve(fw.eye(2), fw.ones(3))
    with pytest.raises(ValueError, match="at least two"):
        fw.linalg.multi_dot([fw.eye(2)])
