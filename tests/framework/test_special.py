"""``fw.special``, ``fw.lgamma`` / ``digamma`` / ``polygamma`` / ``erfinv`` and ``fw.linalg.cholesky`` /
``solve_triangular``: values, first and second derivatives against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import framework as fw

torch = pytest.importorskip("torch")


def _both(x):
    return fw.tensor(x, dtype=fw.float64, requires_grad=True), torch.tensor(x, requires_grad=True)


def _compare(f_ours, f_torch, x, rtol=1e-9, second=True):
    xf, xt = _both(x)
    yf, yt = f_ours(xf), f_torch(xt)
    np.testing.assert_allclose(yf.detach().numpy(), yt.detach().numpy(), rtol=rtol, atol=1e-12)
    gf = fw.autograd.grad(yf.sum(), xf, create_graph=True)[0]
    gt = torch.autograd.grad(yt.sum(), xt, create_graph=True)[0]
    np.testing.assert_allclose(gf.detach().numpy(), gt.detach().numpy(), rtol=rtol, atol=1e-12)
    if second:
        np.testing.assert_allclose(fw.autograd.grad(gf.sum(), xf)[0].numpy(),
                                   torch.autograd.grad(gt.sum(), xt)[0].numpy(), rtol=1e-7, atol=1e-10)


POS = np.array([0.05, 0.3, 1.0, 1.7, 4.0, 12.5])
UNIT = np.array([-0.95, -0.4, 0.0, 0.3, 0.9])
PROB = np.array([0.01, 0.2, 0.5, 0.77, 0.999])
REAL = np.array([-3.0, -0.7, 0.0, 0.4, 2.5])


@pytest.mark.parametrize("name, ours, theirs, x", [
    ("lgamma", fw.lgamma, torch.lgamma, np.concatenate([POS, [-0.5, -2.5]])),
    ("digamma", fw.digamma, torch.digamma, np.concatenate([POS, [-0.5, -2.5]])),
    ("polygamma1", lambda t: fw.polygamma(1, t), lambda t: torch.polygamma(1, t), POS),
    ("polygamma3", lambda t: t.polygamma(3), lambda t: t.polygamma(3), POS),
    ("erfinv", fw.erfinv, torch.erfinv, UNIT),
    ("special.gammaln", fw.special.gammaln, torch.special.gammaln, POS),
    ("special.psi", fw.special.psi, torch.special.psi, POS),
    ("special.erfc", fw.special.erfc, torch.special.erfc, REAL),
    ("special.ndtr", fw.special.ndtr, torch.special.ndtr, REAL),
    ("special.ndtri", fw.special.ndtri, torch.special.ndtri, PROB),
    ("special.entr", fw.special.entr, torch.special.entr, POS),
    ("special.expit", fw.special.expit, torch.special.expit, REAL),
    ("special.logit", fw.special.logit, torch.special.logit, PROB),
    ("special.multigammaln", lambda t: fw.special.multigammaln(t, 3),
     lambda t: torch.special.multigammaln(t, 3), POS + 1.5),
    ("special.log1p", fw.special.log1p, torch.special.log1p, POS),
    ("special.sinc", fw.special.sinc, torch.special.sinc, REAL + 0.1),
])
def test_special_functions_match_torch(name, ours, theirs, x):
    _compare(ours, theirs, x)


def test_special_edge_values():
    np.testing.assert_array_equal(fw.special.entr(fw.tensor([0.0, -1.0])).numpy(), [0.0, -np.inf])
    assert np.isinf(fw.lgamma(fw.tensor([0.0, -1.0])).numpy()).all()
    with pytest.raises(ValueError, match="multigammaln.*greater than"):
        fw.special.multigammaln(fw.tensor([0.4]), 3)


def test_float32_and_integer_inputs():
    x = np.array([0.5, 2.0, 7.0], dtype=np.float32)
    want = torch.lgamma(torch.tensor(x)).numpy()
    np.testing.assert_allclose(fw.lgamma(fw.tensor(x)).numpy(), want, rtol=1e-6)
    assert fw.lgamma(fw.tensor(x)).dtype == fw.float32
    assert fw.digamma(fw.tensor([1, 2, 3])).dtype == fw.float32  # integers in, the default float out


def _spd(rng, n, batch=()):
    a = rng.standard_normal(batch + (n, n))
    return a @ np.swapaxes(a, -1, -2) + n * np.eye(n)


def test_cholesky_matches_torch_with_gradients_of_gradients():
    rng = np.random.default_rng(0)
    a = _spd(rng, 4, (2,))
    af, at = _both(a)
    lf, lt = fw.linalg.cholesky(af), torch.linalg.cholesky(at)
    np.testing.assert_allclose(lf.detach().numpy(), lt.detach().numpy(), rtol=1e-10)
    w = rng.standard_normal(lf.shape)
    gf = fw.autograd.grad((lf * fw.tensor(w)).sum(), af)[0]
    gt = torch.autograd.grad((lt * torch.tensor(w)).sum(), at)[0]
    np.testing.assert_allclose(gf.numpy(), gt.numpy(), rtol=1e-9, atol=1e-12)
    x = fw.tensor(_spd(rng, 3), requires_grad=True)
    assert fw.testing.gradgradcheck(lambda m: fw.linalg.cholesky(0.5 * (m + m.transpose(-1, -2))), (x,))
    with pytest.raises(ValueError, match="not positive-definite"):
        fw.linalg.cholesky(fw.tensor([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="square"):
        fw.linalg.cholesky(fw.ones(2, 3))


@pytest.mark.parametrize("upper", [False, True])
@pytest.mark.parametrize("left", [True, False])
def test_solve_triangular_matches_torch(upper, left):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2, 4, 4)) + 4 * np.eye(4)
    b = rng.standard_normal((2, 4, 3) if left else (2, 3, 4))
    (af, at), (bf, bt) = _both(a), _both(b)
    xf = fw.linalg.solve_triangular(af, bf, upper=upper, left=left)
    xt = torch.linalg.solve_triangular(at, bt, upper=upper, left=left)
    np.testing.assert_allclose(xf.detach().numpy(), xt.detach().numpy(), rtol=1e-10)
    w = rng.standard_normal(xf.shape)
    gf = fw.autograd.grad((xf * fw.tensor(w)).sum(), (af, bf))
    gt = torch.autograd.grad((xt * torch.tensor(w)).sum(), (at, bt))
    for g1, g2 in zip(gf, gt):
        np.testing.assert_allclose(g1.numpy(), g2.numpy(), rtol=1e-9, atol=1e-12)
