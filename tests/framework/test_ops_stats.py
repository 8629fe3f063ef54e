"""framework/ops/stats.py against PyTorch: cov (weights, corrections), corrcoef, logcumsumexp (extreme values,
gradients of gradients), trapezoid / cumulative_trapezoid, block_diag, cartesian_prod, combinations,
copysign, heaviside, renorm, vander, histc, nanmedian, frexp, ldexp, gcd, lcm; values and gradients."""

import numpy as np
import pytest

import framework as fw
from framework.testing import gradcheck, gradgradcheck

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for tensor functions")

RNG = np.random.default_rng(5)


def _check(fn_fw, fn_t, *arrays, grad=True, tol=1e-10):
    """Same values, and the same gradients of a weighted sum of the output, for float64 inputs."""
    fa = [fw.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    ta = [torch.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    fo, to = fn_fw(*fa), fn_t(*ta)
    np.testing.assert_allclose(fo.detach().numpy(), to.detach().numpy(), rtol=tol, atol=tol, equal_nan=True)
    if grad:
        w = RNG.standard_normal(tuple(to.shape))
        (fo * fw.tensor(w)).sum().backward()
        (to * torch.tensor(w)).sum().backward()
        for f, t in zip(fa, ta):
            if t.requires_grad:
                np.testing.assert_allclose(f.grad.numpy(), t.grad.numpy(), rtol=1e-8, atol=1e-10)
    return fo


def test_cov_and_corrcoef():
    x = RNG.standard_normal((3, 7))
    _check(fw.cov, torch.cov, x)
    _check(lambda a: fw.cov(a, correction=0), lambda a: torch.cov(a, correction=0), x)
    _check(fw.cov, torch.cov, x[0])  # one variable: 0-d
    fwt = RNG.integers(1, 4, 7)
    awt = RNG.random(7)
    _check(lambda a: fw.cov(a, fweights=fw.tensor(fwt), aweights=fw.tensor(awt)),
           lambda a: torch.cov(a, fweights=torch.tensor(fwt), aweights=torch.tensor(awt)), x)
    _check(lambda a: fw.cov(a, aweights=fw.tensor(awt), correction=2),
           lambda a: torch.cov(a, aweights=torch.tensor(awt), correction=2), x)
    _check(fw.corrcoef, torch.corrcoef, x)
    c = fw.corrcoef(fw.tensor(np.stack([x[0], 2 * x[0] + 1]))).numpy()
    np.testing.assert_allclose(c, np.ones((2, 2)), rtol=1e-12)
    with pytest.raises(ValueError, match="fweights cannot be negative"):
        fw.cov(fw.tensor(x), fweights=fw.tensor(-fwt))
    with pytest.raises(ValueError, match="two or fewer dimensions"):
        fw.cov(fw.ones(2, 2, 2))


def test_logcumsumexp_is_exact_at_the_extremes_and_twice_differentiable():
    x = RNG.standard_normal((3, 6)) * 3
    _check(lambda a: fw.logcumsumexp(a, 1), lambda a: torch.logcumsumexp(a, 1), x)
    _check(lambda a: a.logcumsumexp(0), lambda a: a.logcumsumexp(0), x)
    far = np.array([-1000.0, 0.0, 1000.0, -np.inf, 5.0])  # a naive shift under- or overflows
    _check(lambda a: fw.logcumsumexp(a, 0), lambda a: torch.logcumsumexp(a, 0), far, grad=False)
    assert gradcheck(lambda a: fw.logcumsumexp(a, -1), (fw.tensor(x, requires_grad=True),))
    assert gradgradcheck(lambda a: fw.logcumsumexp(a, -1), (fw.tensor(x[:, :4], requires_grad=True),))


def test_trapezoid_rules():
    y = RNG.standard_normal((2, 5))
    xs = np.sort(RNG.random(5))
    _check(fw.trapezoid, torch.trapezoid, y)
    _check(lambda a: fw.trapezoid(a, dx=0.3, dim=0), lambda a: torch.trapezoid(a, dx=0.3, dim=0), y)
    _check(lambda a: fw.trapezoid(a, fw.tensor(xs)), lambda a: torch.trapezoid(a, torch.tensor(xs)), y)
    _check(lambda a: fw.cumulative_trapezoid(a, fw.tensor(xs)),
           lambda a: torch.cumulative_trapezoid(a, torch.tensor(xs)), y)
    grid = np.linspace(0, np.pi, 401)
    assert abs(fw.trapezoid(fw.tensor(np.sin(grid)), fw.tensor(grid)).item() - 2.0) < 1e-4


def test_block_diag_products_and_combinations():
    a, b, c = RNG.standard_normal((2, 3)), RNG.standard_normal(2), RNG.standard_normal(())
    _check(fw.block_diag, torch.block_diag, a, b, c)
    u, v = RNG.standard_normal(3), RNG.standard_normal(2)
    _check(fw.cartesian_prod, torch.cartesian_prod, u, v)
    for r, rep in ((2, False), (3, False), (2, True)):
        _check(lambda t, r=r, rep=rep: fw.combinations(t, r, rep),
               lambda t, r=r, rep=rep: torch.combinations(t, r, rep), RNG.standard_normal(4))


def test_renorm_vander_copysign_heaviside():
    x = RNG.standard_normal((4, 3)) * 2
    # values against PyTorch; gradients by finite differences (PyTorch's renorm backward refuses its
    # own saved tensors here)
    _check(lambda a: fw.renorm(a, 2, 0, 1.5), lambda a: torch.renorm(a, 2, 0, 1.5), x, grad=False)
    _check(lambda a: a.renorm(1, 1, 2.0), lambda a: a.renorm(1, 1, 2.0), x, grad=False)
    assert gradcheck(lambda a: fw.renorm(a, 2, 0, 1.5), (fw.tensor(x, requires_grad=True),))
    # (PyTorch's vander backward fails on an in-place cumprod of its own: finite differences instead)
    _check(lambda a: fw.vander(a, 4), lambda a: torch.vander(a, 4), RNG.standard_normal(3), grad=False)
    _check(lambda a: fw.vander(a, increasing=True), lambda a: torch.vander(a, increasing=True),
           RNG.standard_normal(3), grad=False)
    v = fw.tensor(RNG.standard_normal(3), requires_grad=True)
    assert gradcheck(lambda a: fw.vander(a, 4), (v,))
    signs = np.array([1.0, -0.0, -2.0, 0.0, 3.0])
    _check(lambda a: fw.copysign(a, fw.tensor(signs)), lambda a: torch.copysign(a, torch.tensor(signs)),
           np.array([-1.5, 2.0, 3.0, -4.0, 0.5]))
    z = np.array([-1.0, 0.0, 2.0, 0.0])
    _check(lambda a: fw.heaviside(a, fw.tensor(np.array([0.5]))),
           lambda a: torch.heaviside(a, torch.tensor([0.5], dtype=torch.float64)), z, grad=False)


def test_histc_nanmedian_and_number_functions():
    x = RNG.standard_normal(200)
    _check(lambda a: fw.histc(a, 10), lambda a: torch.histc(a, 10), x, grad=False)
    _check(lambda a: fw.histc(a, 7, min=-1, max=1), lambda a: torch.histc(a, 7, min=-1, max=1), x, grad=False)
    m = RNG.standard_normal((4, 6))
    m[0, 1] = m[2, :] = m[3, [0, 2, 4]] = np.nan
    _check(lambda a: fw.nanmedian(a), lambda a: torch.nanmedian(a), m)
    fv, fi = fw.nanmedian(fw.tensor(m), 1)
    tv, ti = torch.nanmedian(torch.tensor(m), 1)
    np.testing.assert_allclose(fv.numpy(), tv.numpy(), equal_nan=True)
    ok = ~np.isnan(tv.numpy())
    np.testing.assert_array_equal(fi.numpy()[ok], ti.numpy()[ok])  # (an all-NaN row's index is arbitrary)
    mant, ex = fw.frexp(fw.tensor(np.array([8.0, -0.3, 0.0])))
    tm, te = torch.frexp(torch.tensor([8.0, -0.3, 0.0], dtype=torch.float64))
    np.testing.assert_array_equal(mant.numpy(), tm.numpy())
    np.testing.assert_array_equal(ex.numpy(), te.numpy())
    _check(lambda a: fw.ldexp(a, fw.tensor(np.array([1, -2, 3]))),
           lambda a: torch.ldexp(a, torch.tensor([1, -2, 3])), np.array([1.5, 2.0, -0.25]), grad=False)
    # (PyTorch's gradient takes 2^-2 in integers, 0; the derivative is 2^other)
    a = fw.tensor(np.array([1.5, 2.0, -0.25]), requires_grad=True)
    fw.ldexp(a, fw.tensor(np.array([1, -2, 3]))).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 0.25, 8.0])
    i, j = np.array([12, 18, -7, 0]), np.array([8, 27, 21, 5])
    np.testing.assert_array_equal(fw.gcd(fw.tensor(i), fw.tensor(j)).numpy(),
                                  torch.gcd(torch.tensor(i), torch.tensor(j)).numpy())
    np.testing.assert_array_equal(fw.lcm(fw.tensor(i), fw.tensor(j)).numpy(),
                                  torch.lcm(torch.tensor(i), torch.tensor(j)).numpy())
