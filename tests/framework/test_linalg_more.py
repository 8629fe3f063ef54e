"""fw.linalg's lstsq (every CPU driver's outputs, gradients of the solution), vecdot, cond, vander,
diagonal, the *_ex functions (info instead of errors), eig / eigvals, against PyTorch."""

import numpy as np
import pytest

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for linalg")
RNG = np.random.default_rng(91)


@pytest.mark.parametrize("driver", [None, "gels", "gelsy", "gelsd", "gelss"])
@pytest.mark.parametrize(
    "shape, bshape", [((5, 3), (5, 2)), ((2, 6, 4), (2, 6, 3)), ((3, 5), (3, 2)), ((4, 3), (4,))]
)
def test_lstsq_matches_torch(driver, shape, bshape):
    a, b = RNG.standard_normal(shape), RNG.standard_normal(bshape)
    if len(bshape) == 1:  # (PyTorch wants B with the matrix dimensions; ours also takes a vector)
        tb = torch.tensor(b)[:, None]
    else:
        tb = torch.tensor(b)
    fa, fb = fw.tensor(a, requires_grad=True), fw.tensor(b, requires_grad=True)
    ta = torch.tensor(a, requires_grad=True)
    tb.requires_grad_(True)
    f, t = fw.linalg.lstsq(fa, fb, driver=driver), torch.linalg.lstsq(ta, tb, driver=driver)
    tsol = t.solution[:, 0] if len(bshape) == 1 else t.solution
    np.testing.assert_allclose(f.solution.detach().numpy(), tsol.detach().numpy(), rtol=1e-9, atol=1e-12)
    tres = t.residuals[..., 0] if len(bshape) == 1 and t.residuals.numel() else t.residuals
    assert tuple(f.residuals.shape) == tuple(tres.shape)
    np.testing.assert_allclose(f.residuals.detach().numpy(), tres.detach().numpy(), rtol=1e-9)
    assert tuple(f.rank.shape) == tuple(t.rank.shape)
    np.testing.assert_array_equal(f.rank.numpy(), t.rank.numpy())
    np.testing.assert_allclose(f.singular_values.numpy(), t.singular_values.numpy(), rtol=1e-10)
    if shape[-2] >= shape[-1]:  # (full rank, tall or square: the solution is smooth in A and B)
        w = RNG.standard_normal(tuple(f.solution.shape))
        (f.solution * fw.tensor(w)).sum().backward()
        (tsol * torch.tensor(w)).sum().backward()
        np.testing.assert_allclose(fa.grad.numpy(), ta.grad.numpy(), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(fb.grad.numpy(), tb.grad.numpy().reshape(b.shape), rtol=1e-8, atol=1e-10)


def test_lstsq_errors():
    with pytest.raises(RuntimeError, match="driver"):
        fw.linalg.lstsq(fw.ones(3, 2), fw.ones(3, 1), driver="lapack")
    with pytest.raises(RuntimeError, match="should match"):
        fw.linalg.lstsq(fw.ones(3, 2), fw.ones(4, 1))


def test_vecdot_cond_vander_diagonal_match_torch():
    x, y = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4))
    np.testing.assert_allclose(
        fw.linalg.vecdot(fw.tensor(x), fw.tensor(y)).numpy(),
        torch.linalg.vecdot(torch.tensor(x), torch.tensor(y)).numpy(),
        rtol=1e-12,
    )
    z = x + 1j * y
    np.testing.assert_allclose(
        fw.linalg.vecdot(fw.tensor(z), fw.tensor(z[::-1].copy()), dim=0).numpy(),
        torch.linalg.vecdot(torch.tensor(z), torch.tensor(z[::-1].copy()), dim=0).numpy(),
        rtol=1e-12,
    )
    a = RNG.standard_normal((2, 4, 4))
    for p in (None, 2, -2, "fro", "nuc", 1, -1, np.inf, -np.inf):
        np.testing.assert_allclose(
            fw.linalg.cond(fw.tensor(a), p).numpy(),
            torch.linalg.cond(torch.tensor(a), p).numpy(),
            rtol=1e-9,
            err_msg=str(p),
        )
    v = RNG.standard_normal((2, 3))
    for n in (None, 2, 5):
        np.testing.assert_allclose(
            fw.linalg.vander(fw.tensor(v), N=n).numpy(),
            torch.linalg.vander(torch.tensor(v), N=n).numpy(),
            rtol=1e-12,
        )
    np.testing.assert_array_equal(
        fw.linalg.diagonal(fw.tensor(a), offset=1).numpy(),
        torch.linalg.diagonal(torch.tensor(a), offset=1).numpy(),
    )


def test_ex_functions_report_failures_in_info():
    good = np.array([[4.0, 1.0], [1.0, 3.0]])
    bad = np.array([[1.0, 2.0], [2.0, 4.0]])  # singular, not positive-definite
    for a in (good, bad):
        f, t = fw.linalg.inv_ex(fw.tensor(a)), torch.linalg.inv_ex(torch.tensor(a))
        assert bool(f.info.item()) == bool(t.info.item())
        if not t.info.item():
            np.testing.assert_allclose(f.inverse.numpy(), t.inverse.numpy(), rtol=1e-12)
        f, t = fw.linalg.cholesky_ex(fw.tensor(a)), torch.linalg.cholesky_ex(torch.tensor(a))
        assert bool(f.info.item()) == bool(t.info.item())
        if not t.info.item():
            np.testing.assert_allclose(f.L.numpy(), t.L.numpy(), rtol=1e-12)
        rhs = np.ones((2, 1))
        f, t = (
            fw.linalg.solve_ex(fw.tensor(a), fw.tensor(rhs)),
            torch.linalg.solve_ex(torch.tensor(a), torch.tensor(rhs)),
        )
        assert bool(f.info.item()) == bool(t.info.item()) and tuple(f.result.shape) == tuple(t.result.shape)
    assert np.isnan(fw.linalg.inv_ex(fw.tensor(bad)).inverse.numpy()).all()
    with pytest.raises(RuntimeError, match="cholesky_ex"):
        fw.linalg.cholesky_ex(fw.tensor(bad), check_errors=True)
    u = fw.linalg.cholesky_ex(fw.tensor(good), upper=True).L.numpy()
    np.testing.assert_allclose(
        u, torch.linalg.cholesky_ex(torch.tensor(good), upper=True).L.numpy(), rtol=1e-12
    )


def test_eig_and_eigvals_match_torch_up_to_order_and_phase():
    a = RNG.standard_normal((3, 4, 4))
    w, v = fw.linalg.eig(fw.tensor(a))
    tw = torch.linalg.eigvals(torch.tensor(a)).numpy()
    assert w.dtype == fw.complex128 and v.dtype == fw.complex128
    for i in range(3):
        np.testing.assert_allclose(np.sort_complex(w.numpy()[i]), np.sort_complex(tw[i]), rtol=1e-10)
        # A v = v diag(w), columns of unit norm
        np.testing.assert_allclose(a[i] @ v.numpy()[i], v.numpy()[i] * w.numpy()[i], atol=1e-10)
        np.testing.assert_allclose(np.linalg.norm(v.numpy()[i], axis=0), 1, rtol=1e-12)
    np.testing.assert_allclose(
        np.sort_complex(fw.linalg.eigvals(fw.tensor(a[0])).numpy()), np.sort_complex(tw[0]), rtol=1e-10
    )
    assert fw.linalg.eig(fw.tensor(a.astype(np.float32)))[0].dtype == fw.complex64
    with pytest.raises(RuntimeError, match="not supported"):
        fw.linalg.eig(fw.tensor(a, requires_grad=True))
