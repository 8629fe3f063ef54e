"""Mixed precision on the CPU: the autocast policy (through ``autocast("cpu")``) and GradScaler's
arithmetic against ``torch.amp.GradScaler`` run on CPU tensors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import framework as fw
from framework import amp


def _t(shape, dtype=fw.float32, requires_grad=False, seed=0):
    rng = np.random.default_rng(seed)
    return fw.tensor(rng.standard_normal(shape), dtype=dtype, requires_grad=requires_grad)


# ------------------------------------------------------------------------------ autocast policy

def test_outside_autocast_nothing_is_cast():
    a, b = _t((2, 3)), _t((3, 4))
    assert amp.cast_inputs("matmul", a, b) == (a, b)


def test_lower_precision_ops_run_in_half_and_gradients_come_back_in_float32():
    a = _t((4, 5), requires_grad=True)
    b = _t((5, 3), requires_grad=True, seed=1)
    with fw.autocast("cpu"):
        ca, cb = amp.cast_inputs("matmul", a, b)
        y = fw.matmul(ca, cb)
    assert ca.dtype == fw.float16 and cb.dtype == fw.float16 and y.dtype == fw.float16
    y.float().sum().backward()
    assert a.grad.dtype == fw.float32 and b.grad.dtype == fw.float32
    # d(sum(A @ B))/dA = 1 @ B^T, computed from the half-precision B.
    expect = np.ones((4, 3), np.float16) @ b.detach().numpy().astype(np.float16).T
    np.testing.assert_allclose(a.grad.numpy(), expect.astype(np.float32), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "cross_entropy", "sum", "layer_norm",
                                "batch_norm", "exp", "mse_loss"])
def test_fp32_ops_upcast_half_inputs(op):
    h = _t((2, 3), dtype=fw.float16)
    with fw.autocast("cpu"):
        (c,) = amp.cast_inputs(op, h)
    assert c.dtype == fw.float32


def test_promote_ops_take_the_widest_float():
    h, f = _t((2, 3), dtype=fw.float16), _t((2, 3))
    with fw.autocast("cpu"):
        ch, cf = amp.cast_inputs("cat", h, f)
        ch2, ch3 = amp.cast_inputs("stack", h, h)
    assert ch.dtype == cf.dtype == fw.float32
    assert ch2.dtype == ch3.dtype == fw.float16


@pytest.mark.parametrize("layer", ["LSTM", "GRU", "RNN", "MultiheadAttention", "GELU"])
def test_layers_fed_by_autocast_linears_run_and_train(layer):
    """A recurrent layer, attention or GELU after an autocast Linear (half activations, float32
    parameters): runs in half like PyTorch's cells, and the parameters get float32 gradients."""
    import framework.nn as nn

    fw.manual_seed(0)
    lin = nn.Linear(8, 8)
    mod = {"LSTM": lambda: nn.LSTM(8, 6, num_layers=2, bidirectional=True),
           "GRU": lambda: nn.GRU(8, 6), "RNN": lambda: nn.RNN(8, 6),
           "MultiheadAttention": lambda: nn.MultiheadAttention(8, 2),
           "GELU": nn.GELU}[layer]()
    x = _t((5, 3, 8))
    with fw.autocast("cpu"):
        h = lin(x)
        assert h.dtype == fw.float16
        out = mod(h, h, h)[0] if layer == "MultiheadAttention" else mod(h)
        out = out[0] if isinstance(out, tuple) else out
    assert out.dtype == fw.float16
    out.float().sum().backward()
    params = list(lin.parameters()) + list(mod.parameters())
    assert all(p.grad is not None and p.grad.dtype == fw.float32 for p in params)
    assert all(np.isfinite(p.grad.numpy()).all() for p in params)


def test_ineligible_inputs_are_left_alone():
    d = _t((2, 2), dtype=fw.float64)
    i = fw.tensor([[1, 2], [3, 4]])
    f = _t((2, 2))
    with fw.autocast("cpu"):
        cd, ci, cf, s, n = amp.cast_inputs("matmul", d, i, f, 2.0, None)
        (other,) = amp.cast_inputs("relu", f)  # not in any list: runs in its input's dtype
    assert cd is d and ci is i and s == 2.0 and n is None
    assert cf.dtype == fw.float16
    assert other is f


def test_nesting_disabling_and_restoring_state():
    assert not amp.is_autocast_enabled("cpu")
    with fw.autocast("cpu"):
        assert amp.is_autocast_enabled("cpu")
        with fw.autocast("cpu", enabled=False):
            assert not amp.is_autocast_enabled("cpu")
            a = _t((2, 2))
            assert amp.cast_inputs("matmul", a, a)[0] is a
        assert amp.is_autocast_enabled("cpu")
        with fw.autocast("cpu", dtype=fw.float32):
            assert amp.get_autocast_dtype("cpu") == fw.float32
        assert amp.get_autocast_dtype("cpu") == fw.float16
    assert not amp.is_autocast_enabled("cpu")
    with pytest.raises(ZeroDivisionError):
        with fw.autocast("cpu"):
            raise ZeroDivisionError
    assert not amp.is_autocast_enabled("cpu")  # restored after an exception


def test_bad_arguments():
    with pytest.raises(ValueError, match="device_type"):
        fw.autocast("tpu")
    with pytest.raises(ValueError, match="bfloat16"):
        fw.autocast("cpu", dtype=fw.int32)


def test_cuda_autocast_does_not_touch_cpu_tensors():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fw.autocast("cuda"):
            a = _t((2, 2))
            assert amp.cast_inputs("matmul", a, a)[0] is a


def test_parameter_casts_are_cached_within_a_region_and_invalidated_by_writes():
    w = _t((3, 3), requires_grad=True)
    x = _t((3, 3))
    with fw.autocast("cpu"):
        c1 = amp.cast_inputs("linear", x, w)[1]
        c2 = amp.cast_inputs("matmul", x, w)[1]
        assert c1 is c2  # one cast for a weight used twice
        xc1 = amp.cast_inputs("matmul", x, w)[0]
        xc2 = amp.cast_inputs("matmul", x, w)[0]
        assert xc1 is not xc2  # activations (non-leaves or no grad) are not cached
        with fw.no_grad():
            w.mul_(2.0)
        c3 = amp.cast_inputs("matmul", x, w)[1]
        assert c3 is not c1
        np.testing.assert_allclose(c3.detach().numpy(), (w.detach().numpy()).astype(np.float16))
    assert amp._state.cache == {}


def test_a_cast_cached_without_grad_never_serves_a_use_with_grad():
    # before: a weight cast under no_grad (an eval pass inside the region) was cached without a graph,
    # and the next use with gradients got it: the weight's gradient was silently lost
    w = _t((3, 3), requires_grad=True)
    x = _t((3, 3))
    with fw.autocast("cpu"):
        with fw.no_grad():
            fw.nn.functional.linear(x, w)
        fw.nn.functional.linear(x, w).float().sum().backward()
    assert w.grad is not None
    np.testing.assert_allclose(w.grad.numpy(), np.tile(x.numpy().sum(0), (3, 1)), rtol=1e-2)


def test_decorator_and_custom_fwd():
    @fw.autocast("cpu")
    def f(a):
        return amp.cast_inputs("matmul", a, a)[0].dtype

    assert f(_t((2, 2))) == fw.float16

    @amp.custom_fwd(device_type="cpu", cast_inputs=fw.float32)
    def g(a):
        return a.dtype, amp.is_autocast_enabled("cpu")

    with fw.autocast("cpu"):
        assert g(_t((2, 2), dtype=fw.float16)) == (fw.float32, False)
    assert g(_t((2, 2), dtype=fw.float16)) == (fw.float16, False)  # outside: untouched


def test_autocast_op_decorator_casts_positional_and_keyword_tensors():
    @amp.autocast_op("conv2d")
    def conv_like(x, w, bias=None, stride=1):
        return x.dtype, w.dtype, None if bias is None else bias.dtype, stride

    @amp.autocast_op("softmax")
    def softmax_like(x, dim=-1):
        return x.dtype

    x, w, b = _t((1, 2)), _t((2, 2)), _t((2,))
    assert conv_like(x, w, bias=b, stride=2) == (fw.float32,) * 3 + (2,)
    with fw.autocast("cpu"):
        assert conv_like(x, w, bias=b, stride=2) == (fw.float16,) * 3 + (2,)
        assert conv_like(x, w=w) == (fw.float16, fw.float16, None, 1)
        assert softmax_like(_t((2,), dtype=fw.float16)) == fw.float32
    assert amp.autocast_op("relu")(softmax_like) is softmax_like  # no policy: undecorated


# ------------------------------------------------------------------------------ GradScaler

torch = pytest.importorskip("torch")


class _SGD:
    """Plain SGD (p -= lr * grad), the arithmetic of torch.optim.SGD without momentum."""

    def __init__(self, params, lr):
        self.param_groups = [{"params": list(params), "lr": lr}]
        self.steps = 0

    def step(self):
        self.steps += 1
        for g in self.param_groups:
            for p in g["params"]:
                p.data -= np.float32(g["lr"]) * p.grad.data
        return "stepped"

    def zero_grad(self):
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None


def test_gradscaler_trajectory_matches_torch():
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(5).astype(np.float32)
    xs = [rng.standard_normal(5).astype(np.float32) for _ in range(14)]
    xs[2][1] = np.inf
    xs[7][0] = np.nan
    xs[8][3] = -np.inf
    kw = dict(init_scale=2.0**10, growth_factor=2.0, backoff_factor=0.5, growth_interval=3)

    w = fw.tensor(w0, requires_grad=True)
    opt = _SGD([w], lr=0.01)
    s = fw.amp.GradScaler("cpu", **kw)
    tw = torch.tensor(w0, requires_grad=True)
    topt = torch.optim.SGD([tw], lr=0.01)
    ts = torch.amp.GradScaler("cpu", **kw)
    for i, x in enumerate(xs):
        opt.zero_grad()
        topt.zero_grad()
        loss = (w * fw.tensor(x)).sum() * 0.5
        s.scale(loss).backward()
        tloss = (tw * torch.tensor(x)).sum() * 0.5
        ts.scale(tloss).backward()
        if i == 5:  # unscale_ explicitly (as for gradient clipping), then step
            s.unscale_(opt)
            ts.unscale_(topt)
            np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-6)
        ret = s.step(opt)
        ts.step(topt)
        assert (ret is None) == (not np.isfinite(x).all()), f"step {i}: wrong skip decision"
        s.update()
        ts.update()
        assert s.get_scale() == ts.get_scale(), f"step {i}"
        assert s._growth_tracker == ts._get_growth_tracker()
        np.testing.assert_allclose(w.detach().numpy(), tw.detach().numpy(), rtol=1e-6, atol=1e-7)
    assert opt.steps == 14 - 3
    assert s.state_dict() == pytest.approx(ts.state_dict())


def test_gradscaler_errors_and_state():
    w = fw.tensor(np.ones(3, np.float32), requires_grad=True)
    opt = _SGD([w], lr=0.1)
    s = fw.amp.GradScaler("cpu", init_scale=4.0)
    with pytest.raises(RuntimeError, match="before any scale"):
        s.unscale_(opt)
    s.scale(w.sum()).backward()
    s.unscale_(opt)
    with pytest.raises(RuntimeError, match="already been called"):
        s.unscale_(opt)
    s.step(opt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        s.step(opt)
    with pytest.raises(RuntimeError, match="after step"):
        s.unscale_(opt)
    s.update()
    np.testing.assert_allclose(w.detach().numpy(), 0.9)
    s.update(new_scale=8.0)
    assert s.get_scale() == 8.0

    h = fw.tensor(np.ones(2, np.float16), requires_grad=True)
    h.grad = fw.tensor(np.ones(2, np.float16))
    s2 = fw.amp.GradScaler("cpu")
    s2.scale(fw.tensor(1.0))
    with pytest.raises(ValueError, match="FP16 gradients"):
        s2.unscale_(_SGD([h], lr=0.1))

    sd = s.state_dict()
    s3 = fw.amp.GradScaler("cpu")
    s3.load_state_dict(sd)
    assert s3.get_scale() == 8.0 and s3.state_dict() == sd
    with pytest.raises(ValueError, match="growth factor"):
        fw.amp.GradScaler(growth_factor=1.0)


def test_disabled_gradscaler_is_transparent():
    w = fw.tensor(np.ones(2, np.float32), requires_grad=True)
    opt = _SGD([w], lr=1.0)
    s = fw.amp.GradScaler("cpu", enabled=False)
    loss = w.sum()
    assert s.scale(loss) is loss
    loss.backward()
    assert s.step(opt) == "stepped"
    s.update()
    assert s.get_scale() == 1.0 and s.state_dict() == {}


def test_scale_nested_outputs():
    s = fw.amp.GradScaler("cpu", init_scale=2.0)
    a, b = fw.tensor(1.0), fw.tensor(3.0)
    out = s.scale({"x": a, "y": [b, (a,)]})
    assert out["x"].item() == 2.0 and out["y"][0].item() == 6.0 and out["y"][1][0].item() == 2.0
