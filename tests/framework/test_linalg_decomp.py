"""fw.linalg decompositions and matrix functions against torch.linalg: eigh / eigvalsh, svd / svdvals, qr,
matrix_power, matrix_exp, pinv, matrix_rank; values, gradients (of losses that do not depend on the sign
of eigen- or singular vectors), finite differences, and errors."""

import numpy as np
import pytest

import framework as fw
from framework.testing import gradcheck, gradgradcheck

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for linear algebra")

RNG = np.random.default_rng(7)


def _pair(a):
    return fw.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def _grad_both(loss_fw, loss_t, a):
    f, t = _pair(a)
    loss_fw(f).backward()
    loss_t(t).backward()
    np.testing.assert_allclose(f.grad.numpy(), t.grad.numpy(), rtol=1e-7, atol=1e-9)
    return f.grad.numpy()


def _sym(lib, x):
    return (x + x.transpose(-1, -2)) / 2


@pytest.mark.parametrize("shape", [(4, 4), (2, 3, 5, 5)])
def test_eigh_values_vectors_and_gradients(shape):
    a = RNG.standard_normal(shape)
    s = (a + np.swapaxes(a, -1, -2)) / 2
    lam, vec = fw.linalg.eigh(fw.tensor(s))
    np.testing.assert_allclose(lam.numpy(), torch.linalg.eigvalsh(torch.tensor(s)).numpy(), atol=1e-12)
    rebuilt = vec.numpy() @ (lam.numpy()[..., None] * np.swapaxes(vec.numpy(), -1, -2))
    np.testing.assert_allclose(rebuilt, s, atol=1e-12)
    n = shape[-1]
    b = RNG.standard_normal((n, n))
    b = b + b.T
    c = np.arange(1.0, n + 1)

    def loss(lib, x):  # eigenvalues and sign-free quadratic forms of the eigenvectors
        L, V = lib.linalg.eigh(_sym(lib, x))
        quad = (V * (lib.tensor(b) @ V)).sum(-2)
        return (L * lib.tensor(c)).sum() + (quad * lib.tensor(c[::-1].copy())).sum()

    _grad_both(lambda x: loss(fw, x), lambda x: loss(torch, x), a)
    assert gradcheck(lambda x: loss(fw, x), (fw.tensor(a[..., :, :] if len(shape) == 2 else a[0, 0],
                                                       requires_grad=True),))
    np.testing.assert_allclose(fw.linalg.eigvalsh(fw.tensor(s), UPLO="U").numpy(),
                               torch.linalg.eigvalsh(torch.tensor(s), UPLO="U").numpy(), atol=1e-12)


@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (4, 4), (2, 6, 4)])
def test_svd_values_and_gradients(shape):
    a = RNG.standard_normal(shape)
    u, s, vh = fw.linalg.svd(fw.tensor(a), full_matrices=False)
    np.testing.assert_allclose(s.numpy(), torch.linalg.svdvals(torch.tensor(a)).numpy(), atol=1e-12)
    np.testing.assert_allclose((u.numpy() * s.numpy()[..., None, :]) @ vh.numpy(), a, atol=1e-12)
    m, n = shape[-2:]
    bu = RNG.standard_normal((m, m))
    bv = RNG.standard_normal((n, n))
    k = min(m, n)
    c = np.linspace(1, 2, k)

    def loss(lib, x):
        U, S, Vh = lib.linalg.svd(x, full_matrices=False)
        V = Vh.transpose(-1, -2)
        qu = (U * (lib.tensor(bu) @ U)).sum(-2)
        qv = (V * (lib.tensor(bv) @ V)).sum(-2)
        return (S * lib.tensor(c)).sum() + (qu * lib.tensor(c)).sum() + 0.5 * qv.sum()

    _grad_both(lambda x: loss(fw, x), lambda x: loss(torch, x), a)
    small = fw.tensor(a if a.ndim == 2 else a[0], requires_grad=True)
    assert gradcheck(lambda x: loss(fw, x), (small,))
    np.testing.assert_allclose(fw.linalg.svd(fw.tensor(a)).U.numpy().shape,
                               torch.linalg.svd(torch.tensor(a)).U.shape)


def test_qr_matches_torch_with_gradients():
    for shape in [(5, 3), (4, 4), (2, 6, 2)]:
        a = RNG.standard_normal(shape)
        q, r = fw.linalg.qr(fw.tensor(a))
        tq, tr = torch.linalg.qr(torch.tensor(a))
        np.testing.assert_allclose(q.numpy(), tq.numpy(), atol=1e-12)
        np.testing.assert_allclose(r.numpy(), tr.numpy(), atol=1e-12)
        w1 = RNG.standard_normal(q.shape)
        w2 = RNG.standard_normal(r.shape)

        def loss(lib, x, w1=w1, w2=w2):
            Q, R = lib.linalg.qr(x)
            return (Q * lib.tensor(w1)).sum() + (R * lib.tensor(w2)).sum()

        _grad_both(lambda x: loss(fw, x), lambda x: loss(torch, x), a)
    assert fw.linalg.qr(fw.tensor(a), mode="r").R.shape == r.shape
    wide = fw.tensor(RNG.standard_normal((2, 4)), requires_grad=True)
    with pytest.raises(NotImplementedError, match="wide matrices"):
        fw.linalg.qr(wide).Q.sum().backward()


@pytest.mark.parametrize("scale", [0.1, 1.0, 6.0])
def test_matrix_exp_matches_torch_to_second_order(scale):
    a = RNG.standard_normal((2, 4, 4)) * scale
    np.testing.assert_allclose(fw.linalg.matrix_exp(fw.tensor(a)).numpy(),
                               torch.linalg.matrix_exp(torch.tensor(a)).numpy(), rtol=1e-11, atol=1e-12)
    w = RNG.standard_normal((2, 4, 4))
    f, t = _pair(a)
    (fw.linalg.matrix_exp(f) * fw.tensor(w)).sum().backward()
    (torch.linalg.matrix_exp(t) * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(f.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-10)
    x = fw.tensor(a[0] / max(scale, 1.0), requires_grad=True)
    assert gradcheck(fw.linalg.matrix_exp, (x,))
    assert gradgradcheck(fw.linalg.matrix_exp, (x,))


@pytest.mark.parametrize("n", [-3, -1, 0, 1, 2, 5])
def test_matrix_power_matches_torch(n):
    a = RNG.standard_normal((3, 3)) + 3 * np.eye(3)
    f, t = _pair(a)
    fo, to = fw.linalg.matrix_power(f, n), torch.linalg.matrix_power(t, n)
    np.testing.assert_allclose(fo.detach().numpy(), to.detach().numpy(), rtol=1e-10, atol=1e-12)
    if n != 0:
        (fo ** 2).sum().backward()
        (to ** 2).sum().backward()
        np.testing.assert_allclose(f.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-10)


def test_pinv_and_matrix_rank_match_torch():
    low = RNG.standard_normal((6, 2)) @ RNG.standard_normal((2, 4))  # rank 2
    np.testing.assert_allclose(fw.linalg.pinv(fw.tensor(low)).numpy(),
                               torch.linalg.pinv(torch.tensor(low)).numpy(), atol=1e-10)
    assert int(fw.linalg.matrix_rank(fw.tensor(low)).item()) == 2
    batch = np.stack([low, RNG.standard_normal((6, 4))])
    np.testing.assert_array_equal(fw.linalg.matrix_rank(fw.tensor(batch)).numpy(),
                                  torch.linalg.matrix_rank(torch.tensor(batch)).numpy())
    assert int(fw.linalg.matrix_rank(fw.tensor(low), atol=1e9).item()) == 0
    full = RNG.standard_normal((5, 3))
    _grad_both(lambda x: (fw.linalg.pinv(x) ** 2).sum(), lambda x: (torch.linalg.pinv(x) ** 2).sum(), full)


def test_decomposition_errors():
    with pytest.raises(ValueError, match="eigh\\(\\): expected square matrices"):
        fw.linalg.eigh(fw.ones(2, 3))
    with pytest.raises(ValueError, match="UPLO must be 'L' or 'U'"):
        fw.linalg.eigh(fw.eye(2), UPLO="X")
    with pytest.raises(ValueError, match="matrix_exp\\(\\): expected square matrices"):
        fw.linalg.matrix_exp(fw.ones(3))
    with pytest.raises(TypeError, match="n must be an integer"):
        fw.linalg.matrix_power(fw.eye(2), 1.5)
    with pytest.raises(RuntimeError, match="use full_matrices=False"):
        fw.linalg.svd(fw.ones(3, 2, requires_grad=True))
    x = fw.tensor(RNG.standard_normal((3, 3)), requires_grad=True)
    (g,) = fw.autograd.grad(fw.linalg.eigvalsh(_sym(fw, x)).sum(), x)  # first order: fine
    np.testing.assert_allclose(g.numpy(), np.eye(3), atol=1e-12)  # d trace / dA
    with pytest.raises(NotImplementedError, match="eigh: gradients of gradients"):
        fw.autograd.grad(fw.linalg.eigvalsh(_sym(fw, x)).sum(), x, create_graph=True)


@pytest.mark.parametrize("ord", ["nuc", 2, -2])
@pytest.mark.parametrize("dim,keepdim", [((-2, -1), False), ((0, 2), True)])
def test_spectral_and_nuclear_matrix_norms_match_torch(ord, dim, keepdim):
    a = RNG.standard_normal((3, 4, 5))
    f, t = _pair(a)
    fo = fw.linalg.matrix_norm(f, ord, dim, keepdim)
    to = torch.linalg.matrix_norm(t, ord, dim, keepdim)
    assert tuple(fo.shape) == tuple(to.shape)
    np.testing.assert_allclose(fo.detach().numpy(), to.detach().numpy(), rtol=1e-12)
    (fo * fw.tensor(np.arange(1.0, fo.numel() + 1).reshape(fo.shape))).sum().backward()
    (to * torch.tensor(np.arange(1.0, to.numel() + 1).reshape(to.shape))).sum().backward()
    np.testing.assert_allclose(f.grad.numpy(), t.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fw.linalg.norm(fw.tensor(a[0]), ord).numpy(),
                               torch.linalg.norm(torch.tensor(a[0]), ord).numpy(), rtol=1e-12)
