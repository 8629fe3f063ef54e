"""nn.init distributions and nn.utils (gradient clipping, parameter vectors) against PyTorch."""

import numpy as np
import pytest

import framework as fw
from framework import nn

torch = pytest.importorskip("torch")


def test_calculate_gain_matches_torch():
    for nl, p in [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                  ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)]:
        assert nn.init.calculate_gain(nl, p) == pytest.approx(torch.nn.init.calculate_gain(nl, p))
    with pytest.raises(ValueError):
        nn.init.calculate_gain("nope")


@pytest.mark.parametrize("fn,kwargs,shape", [
    ("kaiming_uniform_", {}, (64, 32, 3, 3)),
    ("kaiming_uniform_", {"a": 0.1, "mode": "fan_out", "nonlinearity": "leaky_relu"}, (64, 32, 3, 3)),
    ("kaiming_normal_", {"mode": "fan_out", "nonlinearity": "relu"}, (64, 32, 3, 3)),
    ("kaiming_normal_", {}, (200, 100)),
    ("xavier_uniform_", {"gain": 2.0}, (100, 300)),
    ("xavier_normal_", {}, (64, 16, 3, 3)),
    ("normal_", {"mean": 1.0, "std": 0.5}, (100, 100)),
    ("uniform_", {"a": -2.0, "b": 3.0}, (100, 100)),
    ("trunc_normal_", {"mean": 0.5, "std": 1.0, "a": -1.0, "b": 1.5}, (100, 100)),
])
def test_random_initialisers_match_torch_distribution(fn, kwargs, shape):
    stats = pytest.importorskip("scipy.stats")
    torch.manual_seed(0)
    fw.manual_seed(0)
    p = nn.Parameter(fw.empty(*shape))
    out = getattr(nn.init, fn)(p, **kwargs)
    assert out is p and p.grad_fn is None and p.requires_grad  # filled in place, outside autograd
    t = getattr(torch.nn.init, fn)(torch.empty(*shape), **kwargs)
    a, b = p.detach().numpy().ravel(), t.numpy().ravel()
    assert stats.ks_2samp(a, b).pvalue > 1e-3
    assert a.min() >= b.min() - 0.2 * b.std() and a.max() <= b.max() + 0.2 * b.std()


def test_constant_initialisers_and_orthogonal():
    p = nn.Parameter(fw.empty(3, 4))
    nn.init.constant_(p, 2.5)
    np.testing.assert_array_equal(p.detach().numpy(), np.full((3, 4), 2.5, np.float32))
    nn.init.zeros_(p)
    assert float(p.abs().sum()) == 0
    nn.init.ones_(p)
    assert float(p.sum()) == 12
    nn.init.eye_(p)
    np.testing.assert_array_equal(p.detach().numpy(), np.eye(3, 4))
    for shape in [(6, 4), (4, 6), (8, 2, 3)]:
        w = fw.empty(*shape)
        nn.init.orthogonal_(w, gain=2.0)
        m = w.numpy().reshape(shape[0], -1) / 2.0
        gram = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
        np.testing.assert_allclose(gram, np.eye(gram.shape[0]), atol=1e-5)
    w = fw.empty(4, 2, 3, 3)
    nn.init.dirac_(w)
    tw = torch.empty(4, 2, 3, 3)
    torch.nn.init.dirac_(tw)
    np.testing.assert_array_equal(w.numpy(), tw.numpy())
    with pytest.raises(ValueError):
        nn.init.kaiming_uniform_(fw.empty(3))


def _pair(seed=0):
    torch.manual_seed(seed)
    t = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    f = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    f.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    x = np.random.default_rng(seed).standard_normal((5, 4)).astype(np.float32)
    (t(torch.tensor(x)) ** 2).sum().mul(10).backward()
    (f(fw.tensor(x)) ** 2).sum().mul(10).backward()
    return t, f


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    t, f = _pair()
    tn = torch.nn.utils.clip_grad_norm_(t.parameters(), max_norm, norm_type=norm_type)
    fn = nn.utils.clip_grad_norm_(f.parameters(), max_norm, norm_type=norm_type)
    assert float(fn) == pytest.approx(float(tn), rel=1e-5)
    for tp, fp in zip(t.parameters(), f.parameters()):
        np.testing.assert_allclose(fp.grad.numpy(), tp.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_clip_grad_value_and_nonfinite_error():
    t, f = _pair(1)
    torch.nn.utils.clip_grad_value_(t.parameters(), 0.1)
    nn.utils.clip_grad_value_(f.parameters(), 0.1)
    for tp, fp in zip(t.parameters(), f.parameters()):
        np.testing.assert_allclose(fp.grad.numpy(), tp.grad.numpy(), rtol=1e-6)
    p = nn.Parameter(fw.ones(2))
    p.grad = fw.tensor([float("nan"), 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)


def test_parameters_to_vector_roundtrip():
    t, f = _pair(2)
    tv = torch.nn.utils.parameters_to_vector(t.parameters())
    fv = nn.utils.parameters_to_vector(f.parameters())
    np.testing.assert_allclose(fv.detach().numpy(), tv.detach().numpy())
    nn.utils.vector_to_parameters(fw.arange(fv.numel(), dtype=fw.float32), f.parameters())
    np.testing.assert_array_equal(nn.utils.parameters_to_vector(f.parameters()).detach().numpy(),
                                  np.arange(fv.numel(), dtype=np.float32))
