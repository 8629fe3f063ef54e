"""nn.utils.parametrize and nn.utils.parametrizations (weight_norm, spectral_norm) against PyTorch's: state
dict keys, parametrized values, outputs and gradients, assignment through right_inverse, removal, chains,
buffers, caching, the classic weight_norm keys, and the errors."""

import numpy as np
import pytest

import framework as fw
from framework.nn.utils import parametrizations as fpz
from framework.nn.utils import parametrize as fp

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for parametrizations")
tp = torch.nn.utils.parametrize
tpz = torch.nn.utils.parametrizations


def _symmetric(nn, lib):
    class Symmetric(nn.Module):
        def forward(self, x):
            return x.triu() + x.triu(1).transpose(-1, -2)

        def right_inverse(self, a):
            return a.triu()

    return Symmetric()


def _scale(nn, factor):
    class Scale(nn.Module):
        def forward(self, x):
            return x * factor

        def right_inverse(self, a):
            return a / factor

    return Scale()


def _copy(dst, src):
    dst.load_state_dict({k: fw.tensor(v.detach().numpy()) for k, v in src.state_dict().items()})


def _close(a, b, **kw):
    a = a.detach().numpy() if hasattr(a, "detach") else a
    np.testing.assert_allclose(a, b.detach().numpy(), rtol=kw.get("rtol", 1e-5), atol=kw.get("atol", 1e-6))


def _pair(make):
    torch.manual_seed(0)
    t = make(torch.nn)
    f = make(fw.nn)
    _copy(f, t)
    return f, t


def _grads(f, t, x):
    fo, to = f(fw.tensor(x)), t(torch.tensor(x))
    _close(fo, to, rtol=1e-4, atol=1e-5)
    (fo * fo).sum().backward()
    (to * to).sum().backward()
    fg = {k: p.grad for k, p in f.named_parameters()}
    tg = {k: p.grad for k, p in t.named_parameters()}
    assert list(fg) == list(tg)
    for k in tg:
        _close(fg[k], tg[k], rtol=1e-4, atol=1e-5)


def test_custom_parametrization_matches_torch_and_assigns_through_right_inverse():
    def make(nn):
        m = nn.Linear(4, 4)
        (tp if nn is torch.nn else fp).register_parametrization(m, "weight", _symmetric(nn, None))
        return m

    f, t = _pair(make)
    assert type(f).__name__ == "ParametrizedLinear" == type(t).__name__
    assert list(f.state_dict()) == list(t.state_dict()) == ["bias", "parametrizations.weight.original"]
    assert fp.is_parametrized(f) and fp.is_parametrized(f, "weight") and not fp.is_parametrized(f, "bias")
    assert fp.type_before_parametrizations(f) is fw.nn.Linear
    w = f.weight.detach().numpy()
    np.testing.assert_array_equal(w, w.T)
    _close(f.weight, t.weight)
    _grads(f, t, np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32))
    # assignment stores right_inverse(value) in the original, which keeps its identity (optimizers)
    original = f.parametrizations.weight.original
    a = np.random.default_rng(1).standard_normal((4, 4)).astype(np.float32)
    s = a + a.T
    f.weight = fw.tensor(s)
    t.weight = torch.tensor(s)
    assert f.parametrizations.weight.original is original
    np.testing.assert_allclose(f.weight.detach().numpy(), s, rtol=1e-6)
    _close(f.parametrizations.weight.original, t.parametrizations.weight.original)


def test_chained_parametrizations_and_removal_like_torch():
    def make(nn):
        m = nn.Linear(3, 3)
        reg = tp.register_parametrization if nn is torch.nn else fp.register_parametrization
        reg(m, "weight", _symmetric(nn, None))
        reg(m, "weight", _scale(nn, 3.0))
        return m

    f, t = _pair(make)
    assert len(f.parametrizations.weight) == 2
    _close(f.weight, t.weight)
    _grads(f, t, np.ones((2, 3), np.float32))
    value = f.weight.detach().numpy()
    fp.remove_parametrizations(f, "weight")  # leave_parametrized: the current value stays
    tp.remove_parametrizations(t, "weight")
    assert type(f) is fw.nn.Linear and not hasattr(f, "parametrizations")
    assert isinstance(f.weight, fw.nn.Parameter) and list(f.state_dict()) == list(t.state_dict())
    np.testing.assert_allclose(f.weight.detach().numpy(), value, rtol=1e-6)
    _close(f.weight, t.weight)

    g, u = _pair(make)
    original = g.parametrizations.weight.original.detach().numpy().copy()
    fp.remove_parametrizations(g, "weight", leave_parametrized=False)
    np.testing.assert_array_equal(g.weight.detach().numpy(), original)


def test_parametrized_buffer_and_cached():
    calls = []

    class Count(fw.nn.Module):
        def forward(self, x):
            calls.append(1)
            return x * 2

    m = fw.nn.BatchNorm1d(3)
    fp.register_parametrization(m, "running_var", Count())
    assert "parametrizations.running_var.original" in m.state_dict()
    assert not any("running_var" in n for n, _ in m.named_parameters())
    np.testing.assert_array_equal(m.running_var.numpy(), np.full(3, 2.0, np.float32))
    calls.clear()
    with fp.cached():
        values = [m.running_var for _ in range(3)]
    assert len(calls) == 1 and values[0] is values[2]
    values = [m.running_var for _ in range(2)]
    assert len(calls) == 3 and values[0] is not values[1]


def test_parametrization_errors():
    class Grow(fw.nn.Module):
        def forward(self, x):
            return fw.cat([x, x])

    m = fw.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="may not change the shape of the tensor"):
        fp.register_parametrization(m, "weight", Grow())
    assert type(m) is fw.nn.Linear and isinstance(m.weight, fw.nn.Parameter)  # left as it was
    fp.register_parametrization(m, "weight", Grow(), unsafe=True)
    assert tuple(m.weight.shape) == (4, 2)
    with pytest.raises(ValueError, match="does not have a parameter, a buffer, or a parametrized element"):
        fp.register_parametrization(m, "nope", Grow())
    with pytest.raises(ValueError, match="does not have a parametrization on bias"):
        fp.remove_parametrizations(m, "bias")
    with pytest.raises(TypeError, match="must be a Module"):
        fp.register_parametrization(m, "bias", lambda x: x)
    with pytest.raises(RuntimeError, match="Grow does not implement right_inverse"):
        m.weight = fw.ones(4, 2)


@pytest.mark.parametrize("dim", [0, 1, None])
def test_weight_norm_matches_torch(dim):
    def make(nn):
        m = nn.Conv2d(3, 5, 3)
        return (tpz if nn is torch.nn else fpz).weight_norm(m, dim=dim)

    f, t = _pair(make)
    assert list(f.state_dict()) == list(t.state_dict())
    assert "parametrizations.weight.original0" in f.state_dict()
    _close(f.weight, t.weight)
    _grads(f, t, np.random.default_rng(2).standard_normal((2, 3, 6, 6)).astype(np.float32))


def test_weight_norm_loads_the_classic_keys_without_changing_the_callers_dict():
    torch.manual_seed(3)
    classic = torch.nn.utils.weight_norm(torch.nn.Linear(4, 3))
    sd = {k: fw.tensor(v.detach().numpy()) for k, v in classic.state_dict().items()}
    assert set(sd) == {"bias", "weight_g", "weight_v"}
    f = fpz.weight_norm(fw.nn.Linear(4, 3))
    f.load_state_dict(sd)  # strict: the keys are converted, none unexpected or missing
    assert set(sd) == {"bias", "weight_g", "weight_v"}
    _close(f.weight, classic.weight)


@pytest.mark.parametrize("make_layer", [
    lambda nn: nn.Linear(6, 4),
    lambda nn: nn.Conv2d(3, 4, 3),
    lambda nn: nn.ConvTranspose2d(3, 4, 3),  # dim 1 by default
], ids=["linear", "conv", "conv_transpose"])
def test_spectral_norm_matches_torch_in_training_and_eval(make_layer):
    def make(nn):
        return (tpz if nn is torch.nn else fpz).spectral_norm(make_layer(nn))

    f, t = _pair(make)  # the power-iteration vectors are copied with the state dict
    assert list(f.state_dict()) == list(t.state_dict())
    assert f.parametrizations.weight[0].dim == t.parametrizations.weight[0].dim
    shape = (2, 6) if isinstance(f, fw.nn.Linear) else (2, 3, 5, 5)
    x = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    for _ in range(3):  # each training forward runs one power iteration
        _close(f(fw.tensor(x)), t(torch.tensor(x)), rtol=1e-4, atol=1e-5)
    _close(f.parametrizations.weight[0]._u, t.parametrizations.weight[0]._u, rtol=1e-4, atol=1e-5)
    _grads(f, t, x)
    f.eval()
    t.eval()
    u = f.parametrizations.weight[0]._u.numpy().copy()
    _close(f(fw.tensor(x)), t(torch.tensor(x)), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(f.parametrizations.weight[0]._u.numpy(), u)  # no iteration in eval
    # the normalized weight's largest singular value is about 1 (15 iterations at registration + 4)
    d = f.parametrizations.weight[0].dim
    mat = f.weight.detach().numpy()
    mat = np.moveaxis(mat, d, 0).reshape(mat.shape[d], -1)
    assert abs(np.linalg.svd(mat, compute_uv=False)[0] - 1) < 0.05


def test_spectral_norm_errors():
    with pytest.raises(ValueError, match="has no parameter or buffer with name 'kernel'"):
        fpz.spectral_norm(fw.nn.Linear(2, 2), name="kernel")
    with pytest.raises(ValueError, match="Expected n_power_iterations to be positive"):
        fpz.spectral_norm(fw.nn.Linear(2, 2), n_power_iterations=0)
    with pytest.raises(IndexError, match="Dimension out of range"):
        fpz.spectral_norm(fw.nn.Linear(2, 2), dim=2)


def test_an_optimizer_trains_the_originals_like_torch():
    def make(nn):
        return (tpz if nn is torch.nn else fpz).weight_norm(nn.Linear(4, 2))

    f, t = _pair(make)
    fo = fw.optim.SGD(f.parameters(), lr=0.1, momentum=0.9)
    to = torch.optim.SGD(t.parameters(), lr=0.1, momentum=0.9)
    x = np.random.default_rng(6).standard_normal((5, 4)).astype(np.float32)
    for _ in range(10):
        for m, o, lib in ((f, fo, fw), (t, to, torch)):
            o.zero_grad()
            (m(lib.tensor(x)) ** 2).mean().backward()
            o.step()
    _close(f.weight, t.weight, rtol=1e-4, atol=1e-5)


def test_load_state_dict_pre_hook_renames_keys_before_loading():
    m = fw.nn.Sequential(fw.nn.Linear(2, 2))
    seen = []

    def rename(module, state_dict, prefix, *rest):
        seen.append(prefix)
        if prefix + "old_weight" in state_dict:
            state_dict[prefix + "weight"] = state_dict.pop(prefix + "old_weight")

    handle = m[0].register_load_state_dict_pre_hook(rename)
    sd = {"0.old_weight": fw.ones(2, 2), "0.bias": fw.zeros(2)}
    m.load_state_dict(sd)
    assert seen == ["0."] and set(sd) == {"0.old_weight", "0.bias"}  # the caller's dict is unchanged
    np.testing.assert_array_equal(m[0].weight.detach().numpy(), np.ones((2, 2), np.float32))
    handle.remove()
    with pytest.raises(RuntimeError, match='Unexpected key\\(s\\) in state_dict: "0.old_weight"'):
        m.load_state_dict(sd)
