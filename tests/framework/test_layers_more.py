"""The 1-D / 3-D padding layers, InstanceNorm1d / 3d, Dropout1d / 3d, Hardshrink / Softshrink / Tanhshrink /
RReLU, LPPool, MaxUnpool and AdaptiveMaxPool1d against PyTorch's modules: outputs and input gradients;
the random layers by what they must do."""

import numpy as np
import pytest

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for layers")
RNG = np.random.default_rng(31)


def _same(name, args, shape, kwargs=None, call=None):
    kwargs = kwargs or {}
    f = getattr(fw.nn, name)(*args, **kwargs).double()
    t = getattr(torch.nn, name)(*args, **kwargs).double()
    if any(True for _ in t.parameters()):
        f.load_state_dict({k: fw.tensor(v.detach().numpy()) for k, v in t.state_dict().items()})
    x = RNG.standard_normal(shape)
    fx, tx = fw.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fo, to = (call(f, fx), call(t, tx)) if call else (f(fx), t(tx))
    np.testing.assert_allclose(fo.detach().numpy(), to.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = RNG.standard_normal(tuple(to.shape))
    (fo * fw.tensor(w)).sum().backward()
    (to * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "name,args,shape",
    [
        ("ZeroPad1d", ((2, 1),), (2, 3, 5)),
        ("ConstantPad1d", (3, 1.5), (3, 5)),
        ("ReflectionPad1d", ((2, 3),), (2, 3, 5)),
        ("ReplicationPad1d", (2,), (2, 3, 5)),
        ("CircularPad1d", ((1, 2),), (2, 3, 5)),
        ("ZeroPad3d", ((1, 0, 2, 1, 0, 1),), (1, 2, 3, 4, 5)),
        ("ConstantPad3d", (1, -2.0), (1, 2, 3, 4, 5)),
        ("ReflectionPad3d", (1,), (1, 2, 3, 4, 5)),
        ("ReplicationPad3d", ((2, 1, 0, 1, 1, 0),), (1, 2, 3, 4, 5)),
        ("CircularPad3d", (1,), (1, 2, 3, 4, 5)),
    ],
)
def test_padding_layers_match_torch(name, args, shape):
    _same(name, args, shape)


@pytest.mark.parametrize(
    "name,shape",
    [("InstanceNorm1d", (2, 3, 7)), ("InstanceNorm1d", (3, 7)), ("InstanceNorm3d", (2, 3, 3, 4, 5))],
)
def test_instance_norms_match_torch(name, shape):
    _same(name, (3,), shape)
    _same(name, (3,), shape, {"affine": True})
    with pytest.raises(ValueError, match="expected"):
        getattr(fw.nn, name)(3)(fw.ones(*([1] * (len(shape) + 3))))


@pytest.mark.parametrize(
    "name,args", [("Hardshrink", ()), ("Hardshrink", (1.2,)), ("Softshrink", (0.3,)), ("Tanhshrink", ())]
)
def test_shrink_activations_match_torch(name, args):
    _same(name, args, (4, 6))


def test_rrelu_eval_matches_torch_and_training_draws_slopes_in_range():
    _same("RReLU", (0.1, 0.4), (4, 6), call=lambda m, x: m.eval()(x))
    fw.manual_seed(0)
    x = -fw.ones(10000)
    y = fw.nn.RReLU(0.1, 0.4)(x).numpy()
    assert (y <= -0.1).all() and (y >= -0.4).all() and abs(y.mean() + 0.25) < 0.01
    np.testing.assert_array_equal(fw.nn.RReLU()(fw.ones(5)).numpy(), np.ones(5))


@pytest.mark.parametrize("name,shape", [("Dropout1d", (8, 50, 20)), ("Dropout3d", (4, 50, 2, 3, 4))])
def test_channel_dropouts_zero_whole_channels(name, shape):
    fw.manual_seed(1)
    y = getattr(fw.nn, name)(0.4)(fw.ones(*shape)).numpy()
    flat = y.reshape(shape[0], shape[1], -1)
    assert ((flat == 0).all(-1) | (flat == 1 / 0.6).all(-1)).all()  # each channel all dropped or all kept
    assert abs((flat[..., 0] == 0).mean() - 0.4) < 0.06
    assert (getattr(fw.nn, name)(0.4).eval()(fw.ones(*shape)).numpy() == 1).all()
    with pytest.raises(RuntimeError, match="Expected"):
        getattr(fw.nn, name)(0.4)(fw.ones(2))


@pytest.mark.parametrize(
    "name,args,shape",
    [
        ("LPPool1d", (2, 3), (2, 3, 10)),
        ("LPPool2d", (2, 3, 2), (2, 3, 7, 8)),
        ("LPPool2d", (1.5, (2, 3)), (1, 2, 6, 6)),
        ("LPPool3d", (2, 2), (1, 2, 4, 4, 4)),
    ],
)
def test_lp_pools_match_torch(name, args, shape):
    x = np.abs(RNG.standard_normal(shape)) + 0.1  # (fractional powers need positive inputs in both)
    f, t = getattr(fw.nn, name)(*args), getattr(torch.nn, name)(*args)
    fx, tx = fw.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fo, to = f(fx), t(tx)
    np.testing.assert_allclose(fo.detach().numpy(), to.detach().numpy(), rtol=1e-10)
    fo.sum().backward()
    to.sum().backward()
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "dims,shape,kw",
    [
        (1, (2, 3, 9), {"kernel_size": 2}),
        (2, (2, 3, 6, 7), {"kernel_size": 2, "stride": 2}),
        (2, (1, 2, 7, 7), {"kernel_size": 3, "stride": 2, "padding": 1}),
        (3, (1, 2, 4, 4, 6), {"kernel_size": 2}),
    ],
)
def test_max_unpool_inverts_max_pool_like_torch(dims, shape, kw):
    x = RNG.standard_normal(shape)
    pool_f, pool_t = (
        getattr(fw.nn.functional, f"max_pool{dims}d"),
        getattr(torch.nn.functional, f"max_pool{dims}d"),
    )
    fv, fi = pool_f(fw.tensor(x), return_indices=True, **kw)
    tv, ti = pool_t(torch.tensor(x), return_indices=True, **kw)
    np.testing.assert_array_equal(fi.numpy(), ti.numpy())
    fv = fw.tensor(fv.numpy(), requires_grad=True)
    tv = torch.tensor(tv.numpy(), requires_grad=True)
    f = getattr(fw.nn, f"MaxUnpool{dims}d")(**kw)
    t = getattr(torch.nn, f"MaxUnpool{dims}d")(**kw)
    fo, to = f(fv, fi, output_size=x.shape), t(tv, ti, output_size=x.shape)
    np.testing.assert_array_equal(fo.detach().numpy(), to.detach().numpy())
    w = RNG.standard_normal(x.shape)
    (fo * fw.tensor(w)).sum().backward()
    (to * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(fv.grad.numpy(), tv.grad.numpy())
    with pytest.raises(ValueError, match="invalid max index"):
        f(fv, fw.tensor(fi.numpy() + 10**6))


def test_adaptive_max_pool1d_matches_torch():
    _same("AdaptiveMaxPool1d", (4,), (2, 3, 11))
    x = RNG.standard_normal((2, 3, 11))
    fv, fi = fw.nn.AdaptiveMaxPool1d(5, return_indices=True)(fw.tensor(x))
    tv, ti = torch.nn.AdaptiveMaxPool1d(5, return_indices=True)(torch.tensor(x))
    np.testing.assert_array_equal(fi.numpy(), ti.numpy())
