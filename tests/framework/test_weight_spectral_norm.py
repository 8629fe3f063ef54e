"""nn.utils.weight_norm / spectral_norm (PyTorch's classic hook-based forms) against PyTorch: parameter
and buffer names and shapes, loading PyTorch's state dicts, outputs and gradients, the power iteration
in train and eval mode, remove_*, errors."""

import warnings

import numpy as np
import pytest

import framework as fw
import framework.nn as nn
from framework.nn.utils import remove_spectral_norm, remove_weight_norm, spectral_norm, weight_norm

torch = pytest.importorskip("torch", reason="PyTorch is the oracle")

TOL = {fw.float64: 1e-10, fw.float32: 2e-5}


def _torch_dtype(dtype):
    return torch.float64 if dtype == fw.float64 else torch.float32


def _layers(kind, dtype):
    """A framework layer and its PyTorch twin (weights set later from PyTorch's state dict)."""
    if kind == "linear":
        return nn.Linear(5, 4), torch.nn.Linear(5, 4), (3, 5)
    if kind == "conv":
        return nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(3, 4, 3, padding=1), (2, 3, 5, 5)
    return (nn.ConvTranspose2d(3, 2, 3, stride=2), torch.nn.ConvTranspose2d(3, 2, 3, stride=2), (2, 3, 4, 4))


def _torch_weight_norm(module, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (PyTorch deprecates the hook form for parametrizations)
        return torch.nn.utils.weight_norm(module, **kwargs)


def _shapes(state):
    return [(k, tuple(v.shape)) for k, v in state.items()]


def _load_torch(m, t):
    m.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})


def _check_forward_backward(m, t, in_shape, dtype, seed=0):
    a = np.random.default_rng(seed).standard_normal(in_shape).astype(dtype.np)
    x, tx = fw.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y, ty = m(x), t(tx)
    tol = TOL[dtype]
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=tol, atol=tol)
    (y.sin() * y).sum().backward()
    (ty.sin() * ty).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=tol, atol=tol)
    tparams = dict(t.named_parameters())
    names = [n for n, _ in m.named_parameters()]
    assert names == list(tparams)
    for n, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[n].grad.numpy(), rtol=tol, atol=tol, err_msg=n)
        p.grad = None
        tparams[n].grad = None


@pytest.mark.parametrize("dtype", [fw.float64, fw.float32])
@pytest.mark.parametrize("kind, dim", [("linear", 0), ("linear", 1), ("linear", None), ("conv", 0),
                                       ("conv", 1), ("conv", None), ("conv", -1), ("conv", -2),
                                       ("convT", 0)])
def test_weight_norm_matches_torch(kind, dim, dtype):
    m, t, in_shape = _layers(kind, dtype)
    torch.manual_seed(0)
    t = _torch_weight_norm(t.to(_torch_dtype(dtype)), dim=dim)
    m = weight_norm(m.to(dtype), dim=dim)
    assert _shapes(m.state_dict()) == _shapes(t.state_dict())  # bias, weight_g, weight_v
    assert isinstance(m.weight_g, nn.Parameter) and isinstance(m.weight_v, nn.Parameter)
    assert "weight" not in dict(m.named_parameters())
    _load_torch(m, t)
    _check_forward_backward(m, t, in_shape, dtype)
    # the hook recomputes the weight from the current g and v before every forward
    with torch.no_grad():
        t.weight_g.mul_(1.5)
    _load_torch(m, t)
    _check_forward_backward(m, t, in_shape, dtype, seed=1)

    remove_weight_norm(m)
    torch.nn.utils.remove_weight_norm(t)
    assert _shapes(m.state_dict()) == _shapes(t.state_dict())
    assert isinstance(m.weight, nn.Parameter) and m.weight.requires_grad and m.weight.is_leaf
    np.testing.assert_allclose(m.weight.detach().numpy(), t.weight.detach().numpy(), rtol=TOL[dtype],
                               atol=TOL[dtype])
    assert not m._forward_pre_hooks
    _check_forward_backward(m, t, in_shape, dtype, seed=2)


def test_weight_norm_new_g_is_the_norm_and_errors():
    torch.manual_seed(1)
    t = torch.nn.Linear(4, 3).double()
    m = nn.Linear(4, 3).double()
    _load_torch(m, t)
    w = m.weight.detach().numpy().copy()
    weight_norm(m)
    _torch_weight_norm(t)
    # without loading anything: g is the row norms of the old weight, v the old weight, the weight unchanged
    np.testing.assert_allclose(m.weight_g.detach().numpy(), t.weight_g.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(m.weight_v.detach().numpy(), w)
    np.testing.assert_allclose(m(fw.ones(1, 4, dtype=fw.float64)).detach().numpy(),
                               t(torch.ones(1, 4, dtype=torch.float64)).detach().numpy(), rtol=1e-12)
    with pytest.raises(RuntimeError, match="Cannot register two weight_norm hooks"):
        weight_norm(m)
    weight_norm(m, name="bias", dim=None)  # another parameter may have its own
    assert _shapes(m.state_dict()) == [("weight_g", (3, 1)), ("weight_v", (3, 4)), ("bias_g", ()),
                                       ("bias_v", (3,))]
    remove_weight_norm(m, "bias")
    with pytest.raises(ValueError, match="weight_norm of 'bias' not found"):
        remove_weight_norm(m, "bias")


@pytest.mark.parametrize("dtype", [fw.float64, fw.float32])
@pytest.mark.parametrize("kind, n_iter", [("linear", 1), ("conv", 1), ("conv", 3), ("convT", 2)])
def test_spectral_norm_matches_torch_in_train_and_eval(kind, n_iter, dtype):
    m, t, in_shape = _layers(kind, dtype)
    torch.manual_seed(2)
    t = torch.nn.utils.spectral_norm(t.to(_torch_dtype(dtype)), n_power_iterations=n_iter)
    m = spectral_norm(m.to(dtype), n_power_iterations=n_iter)
    # bias, weight_orig, weight_u (rows), weight_v (the rest); dim=1 for transposed convolutions
    assert _shapes(m.state_dict()) == _shapes(t.state_dict())
    assert [n for n, _ in m.named_buffers()] == ["weight_u", "weight_v"]
    _load_torch(m, t)  # PyTorch's u and v seed the power iteration
    tol = TOL[dtype]
    for step in range(3):  # training: each forward runs the power iteration and updates u, v in place
        u_before = m.weight_u
        _check_forward_backward(m, t, in_shape, dtype, seed=step)
        assert m.weight_u is u_before
        np.testing.assert_allclose(m.weight_u.numpy(), t.weight_u.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(m.weight_v.numpy(), t.weight_v.numpy(), rtol=tol, atol=tol)
        with torch.no_grad():  # a training step changes the weight
            t.weight_orig.add_(0.05 * torch.randn_like(t.weight_orig))
        _load_torch(m, t)
    m.eval()
    t.eval()
    u = m.weight_u.numpy().copy()
    _check_forward_backward(m, t, in_shape, dtype, seed=5)
    np.testing.assert_array_equal(m.weight_u.numpy(), u)  # no power iteration in eval mode

    remove_spectral_norm(m)
    torch.nn.utils.remove_spectral_norm(t)
    assert _shapes(m.state_dict()) == _shapes(t.state_dict())
    assert isinstance(m.weight, nn.Parameter) and m.weight.requires_grad
    np.testing.assert_allclose(m.weight.detach().numpy(), t.weight.detach().numpy(), rtol=tol, atol=tol)
    assert not m._forward_pre_hooks and not list(m.buffers())


def test_spectral_norm_normalizes_and_errors():
    fw.manual_seed(0)
    m = spectral_norm(nn.Linear(6, 5).double(), n_power_iterations=1)
    for _ in range(30):  # the power iteration converges to the top singular vectors
        m(fw.ones(1, 6, dtype=fw.float64))
    sigma = np.linalg.svd(m.weight.detach().numpy(), compute_uv=False)[0]
    np.testing.assert_allclose(sigma, 1.0, rtol=1e-6)
    with pytest.raises(RuntimeError, match="Cannot register two spectral_norm hooks"):
        spectral_norm(m)
    with pytest.raises(ValueError, match="n_power_iterations"):
        spectral_norm(nn.Linear(2, 2), n_power_iterations=0)
    with pytest.raises(ValueError, match="spectral_norm of 'weight' not found"):
        remove_spectral_norm(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="weight_norm of 'weight' not found"):
        remove_weight_norm(m)  # a spectral norm is not a weight norm
