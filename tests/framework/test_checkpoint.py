"""Activation checkpointing (framework.utils.checkpoint): gradients equal to those without it (and to
PyTorch's), dropout replayed, intermediates not kept, parameters reached through the engine,
gradients of gradients, the reentrant variant, errors."""

import gc
import warnings
import weakref

import numpy as np
import pytest

import framework as fw
import framework.nn as nn
from framework.utils.checkpoint import checkpoint, checkpoint_sequential

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for gradients")


def _np(t):
    return t.detach().numpy() if isinstance(t, torch.Tensor) else t.detach().numpy()


def _from_torch(model, tmodel):
    model.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
    return model


def _grads(model, *xs):
    return [p.grad.numpy().copy() for p in model.parameters()] + [x.grad.numpy().copy() for x in xs]


def _mlp(dtype=fw.float64):
    torch.manual_seed(0)
    t = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 6), torch.nn.GELU(),
                            torch.nn.Linear(6, 3)).to(torch.float64 if dtype == fw.float64 else torch.float32)
    m = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 6), nn.GELU(), nn.Linear(6, 3)).to(dtype)
    return _from_torch(m, t), t


def _loss(y):
    return (y * y).sum() + y.sin().sum()


@pytest.mark.parametrize("dtype, tol", [(fw.float64, 1e-12), (fw.float32, 2e-5)])
@pytest.mark.parametrize("use_reentrant", [False, True])
def test_mlp_gradients_equal_plain_and_torch(dtype, tol, use_reentrant):
    m, t = _mlp(dtype)
    x_np = np.random.default_rng(0).standard_normal((5, 4)).astype(dtype.np)
    x = fw.tensor(x_np, requires_grad=True)
    _loss(m(x)).backward()
    plain = _grads(m, x)
    m.zero_grad()
    x.grad = None
    y = checkpoint(m, x, use_reentrant=use_reentrant)
    assert y.requires_grad
    _loss(y).backward()
    for a, b in zip(_grads(m, x), plain):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    tx = torch.tensor(x_np, requires_grad=True)
    _loss(torch.utils.checkpoint.checkpoint(t, tx, use_reentrant=use_reentrant)).backward()
    for a, b in zip(_grads(m, x), [p.grad.numpy() for p in t.parameters()] + [tx.grad.numpy()]):
        np.testing.assert_allclose(a, b, rtol=tol * 10, atol=tol * 10)


class _ConvNet(nn.Module):
    def __init__(self, p=0.3):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Dropout(p),
            nn.Conv2d(6, 6, 3, padding=1), nn.BatchNorm2d(6), nn.Tanh(), nn.Dropout2d(p),
            nn.Conv2d(6, 4, 3), nn.ReLU(), nn.Flatten(), nn.Dropout(p), nn.Linear(4 * 4 * 4, 3))


def _conv_net():
    fw.manual_seed(1)
    return _ConvNet().double().body


def _run(model, x, fn, seed=123):
    fw.manual_seed(seed)
    model.zero_grad()
    x.grad = None
    y = fn(model, x)
    after_forward = fw.rand(3).numpy()  # the stream goes on from where the forward left it
    _loss(y).backward()
    after_backward = fw.rand(3).numpy()
    return _grads(model, x), y.detach().numpy(), after_forward, after_backward


@pytest.mark.parametrize("segments", [1, 2, 3, 5, 13])
def test_checkpoint_sequential_conv_net_with_dropout_and_batch_norm(segments):
    model = _conv_net()
    x = fw.tensor(np.random.default_rng(1).standard_normal((4, 3, 6, 6)), requires_grad=True)
    ref = _run(model, x, lambda m, v: m(v))
    got = _run(model, x, lambda m, v: checkpoint_sequential(m, segments, v))
    np.testing.assert_array_equal(got[1], ref[1])  # the same dropout masks as without checkpointing
    for a, b in zip(got[0], ref[0]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    # the recomputation replays the generator without moving it: later draws are unchanged
    np.testing.assert_array_equal(got[2], ref[2])
    np.testing.assert_array_equal(got[3], ref[3])


def test_checkpoint_sequential_reentrant_and_list_of_functions():
    model = _conv_net()
    x = fw.tensor(np.random.default_rng(2).standard_normal((2, 3, 6, 6)), requires_grad=True)
    ref = _run(model, x, lambda m, v: m(v))
    got = _run(model, x, lambda m, v: checkpoint_sequential(list(m), 4, v, use_reentrant=True))
    for a, b in zip(got[0], ref[0]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="segments"):
        checkpoint_sequential(model, 0, x)
    with pytest.raises(ValueError, match="Unexpected keyword"):
        checkpoint_sequential(model, 2, x, foo=1)


def test_without_preserved_rng_state_dropout_masks_differ():
    # (shows that the replay matters: the test above would fail without it)
    model = _conv_net()
    x = fw.tensor(np.random.default_rng(3).standard_normal((4, 3, 6, 6)), requires_grad=True)
    ref = _run(model, x, lambda m, v: m(v))
    got = _run(model, x, lambda m, v: checkpoint(m, v, preserve_rng_state=False))
    assert not all(np.allclose(a, b) for a, b in zip(got[0], ref[0]))


def test_batch_norm_statistics_and_gradients_match_torch_checkpoint():
    # As in PyTorch, the recomputation updates the running statistics a second time.
    torch.manual_seed(0)
    t = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU()).double()
    m = _from_torch(nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).double(), t)
    x_np = np.random.default_rng(4).standard_normal((3, 2, 5, 5))
    x, tx = fw.tensor(x_np, requires_grad=True), torch.tensor(x_np, requires_grad=True)
    _loss(checkpoint(m, x)).backward()
    _loss(torch.utils.checkpoint.checkpoint(t, tx, use_reentrant=False)).backward()
    for (k, a), (tk, b) in zip(m.state_dict().items(), t.state_dict().items()):
        assert k == tk
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-12)
    for a, b in zip(_grads(m, x), [p.grad.numpy() for p in t.parameters()] + [tx.grad.numpy()]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_intermediate_activations_are_not_kept_alive():
    m, _ = _mlp()
    seen = []
    m[1].register_forward_hook(lambda mod, args, out: seen.append(weakref.ref(out)))
    x = fw.randn(5, 4, dtype=fw.float64, requires_grad=True)

    y_plain = m(x)
    gc.collect()
    assert seen[-1]() is not None  # the graph keeps the activation for the backward pass

    y = checkpoint(m, x)
    gc.collect()
    assert len(seen) == 2 and seen[-1]() is None  # not kept: only the inputs are
    _loss(y).backward()
    assert len(seen) == 3  # the recomputation ran the layer again
    gc.collect()
    assert seen[-1]() is None  # and the recomputed graph is freed after backward
    del y_plain


def test_several_inputs_and_outputs_non_tensor_args_and_kwargs():
    torch.manual_seed(0)
    w_np = np.random.default_rng(5).standard_normal((3, 3))
    a_np, b_np, c_np = (np.random.default_rng(i).standard_normal((4, 3)) for i in (6, 7, 8))

    def make(L, w):
        def f(a, b, c, scale, *, shift=0.0, mode="tanh"):
            h = (a @ w + b * scale) * c
            act = L.tanh(h) if mode == "tanh" else L.sigmoid(h)
            return {"main": act + shift, "aux": (h.sum(1), L.argmax(h, 1), "tag")}

        return f

    def run(L, ck):
        w = (fw if L is fw else torch).tensor(w_np, requires_grad=True)
        a, b = (L.tensor(v, requires_grad=True) for v in (a_np, b_np))
        c = L.tensor(c_np)  # needs no grad
        f = make(L, w)
        if L is fw:
            out = checkpoint(f, a, b, c, 0.5, shift=2.0, mode="sigmoid") if ck else f(a, b, c, 0.5, shift=2.0,
                                                                                     mode="sigmoid")
        else:
            out = f(a, b, c, 0.5, shift=2.0, mode="sigmoid")
        assert out["aux"][2] == "tag" and out["aux"][1].dtype in (fw.int64, torch.int64)
        assert not out["aux"][1].requires_grad
        loss = (out["main"] ** 2).sum() + (out["aux"][0] ** 3).sum()
        loss.backward()
        assert c.grad is None
        return [w.grad.numpy(), a.grad.numpy(), b.grad.numpy()]

    plain, ck, oracle = run(fw, False), run(fw, True), run(torch, False)
    for a, b, c in zip(ck, plain, oracle):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)


def test_only_parameters_need_grad_and_autograd_grad_reaches_them():
    m, t = _mlp()
    x_np = np.random.default_rng(9).standard_normal((5, 4))
    x = fw.tensor(x_np)  # no grad: the parameters still get theirs (use_reentrant=False)
    gs = fw.autograd.grad(_loss(checkpoint(m, x)), list(m.parameters()))
    tgs = torch.autograd.grad(_loss(t(torch.tensor(x_np))), list(t.parameters()))
    for g, tg in zip(gs, tgs):
        np.testing.assert_allclose(g.numpy(), tg.numpy(), rtol=1e-10, atol=1e-12)
    assert all(p.grad is None for p in m.parameters())  # grad() does not accumulate


def test_reentrant_needs_an_input_requiring_grad_and_rejects_kwargs():
    m, _ = _mlp()
    x = fw.randn(2, 4, dtype=fw.float64)
    with pytest.warns(UserWarning, match="None of the inputs have requires_grad=True"):
        y = checkpoint(m, x, use_reentrant=True)
    assert not y.requires_grad
    with pytest.raises(ValueError, match="Unexpected keyword arguments"):
        checkpoint(lambda v, k=1: v * k, x, use_reentrant=True, k=2)
    with pytest.raises(ValueError, match="determinism_check"):
        checkpoint(m, x, determinism_check="bogus")


def test_gradients_of_gradients_match_torch():
    m, t = _mlp()
    x_np = np.random.default_rng(10).standard_normal((5, 4))
    x, tx = fw.tensor(x_np, requires_grad=True), torch.tensor(x_np, requires_grad=True)
    for ck in (False, True):
        m.zero_grad()
        x.grad = None
        y = checkpoint(m, x) if ck else m(x)
        (g,) = fw.autograd.grad(_loss(y), x, create_graph=True)
        assert g.requires_grad
        (g ** 2).sum().backward()
        if not ck:
            plain = _grads(m, x)
    for a, b in zip(_grads(m, x), plain):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)
    ty = torch.utils.checkpoint.checkpoint(t, tx, use_reentrant=False)
    (tg,) = torch.autograd.grad(_loss(ty), tx, create_graph=True)
    (tg ** 2).sum().backward()
    for a, b in zip(_grads(m, x), [p.grad.numpy() for p in t.parameters()] + [tx.grad.numpy()]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # the reentrant variant says it cannot
    y = checkpoint(m, x, use_reentrant=True)
    with pytest.raises(RuntimeError, match="use_reentrant=False"):
        fw.autograd.grad(_loss(y), x, create_graph=True)


def test_inputs_from_the_graph_and_captured_tensors_are_counted_once():
    # The segment's input and a tensor it captures both come from the same parameter through the
    # outer graph: each path must be followed once, and hooks must fire once.
    rng = np.random.default_rng(11)
    p_np, q_np = rng.standard_normal(3), rng.standard_normal(3)

    def run(L, ck):
        p = L.tensor(p_np, requires_grad=True)
        q = L.tensor(q_np, requires_grad=True)
        x = p * 2 + q  # an input of the segment, with a graph behind it
        c = (p * q).exp()  # captured by the closure, from the same leaves
        calls = []
        c.register_hook(lambda g: calls.append(1))
        f = lambda v: (v * c).sin() * p + v.cos()  # noqa: E731
        out = checkpoint(f, x) if ck else f(x)
        (out.sum() + (c * x).sum()).backward()
        return p.grad.numpy(), q.grad.numpy(), len(calls)

    plain, ck, oracle = run(fw, False), run(fw, True), run(torch, False)
    for a, b, c in zip(ck[:2], plain[:2], oracle[:2]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)
    assert ck[2] == plain[2] == 1


def test_nested_checkpoints_and_identity_outputs():
    m, _ = _mlp()
    x = fw.randn(3, 4, dtype=fw.float64, requires_grad=True)
    _loss(m(x)).backward()
    plain = _grads(m, x)
    m.zero_grad()
    x.grad = None

    def outer(v):
        h = checkpoint(lambda u: m[1](m[0](u)), v)
        return checkpoint(lambda u: m[4](m[3](m[2](u))), h), v  # returns its input too

    y, same = checkpoint(outer, x)
    assert same is not x and not np.shares_memory(same.detach().numpy(), x.detach().numpy())
    (_loss(y) + same.sum() * 0).backward()
    for a, b in zip(_grads(m, x), plain):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_input_modified_in_place_after_forward_is_caught():
    m, _ = _mlp()
    x = fw.randn(3, 4, dtype=fw.float64, requires_grad=True)
    h = x * 1.0
    y = checkpoint(m, h)
    with fw.no_grad():
        h.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        _loss(y).backward()


def test_determinism_check():
    calls = []

    def f(v):
        calls.append(1)
        return v[: 4 - len(calls)] * 2  # a different shape on the recomputation

    x = fw.randn(4, dtype=fw.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="recomputation"):
        checkpoint(f, x).sum().backward()
    calls.clear()
    x.grad = None

    def g(v):
        calls.append(1)
        return v * float(len(calls))  # v * 1 in the forward, v * 2 in the recomputation

    checkpoint(g, x, determinism_check="none").sum().backward()  # (only metadata is ever checked)
    np.testing.assert_allclose(x.grad.numpy(), np.full(4, 2.0))


def test_under_no_grad_it_is_a_plain_call_and_utils_namespace():
    m, _ = _mlp()
    x = fw.randn(2, 4, dtype=fw.float64, requires_grad=True)
    with fw.no_grad():
        y = checkpoint(m, x)
    assert not y.requires_grad
    np.testing.assert_allclose(y.numpy(), m(x).detach().numpy())
    import framework.utils.data as ud

    assert fw.utils.data is fw.data and ud is fw.data
    assert fw.utils.checkpoint.checkpoint is checkpoint
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checkpoint(m, x)  # no warning with the default use_reentrant=False


def test_autocast_region_recomputes_alike_and_keeps_later_uses_differentiable():
    m, _ = _mlp(fw.float32)
    x = fw.randn(3, 4, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fw.autocast("cpu"):
            plain = m(x)
        plain.float().sum().backward()
        ref = _grads(m, x)
        m.zero_grad()
        x.grad = None
        with fw.autocast("cpu"):
            y = checkpoint(m, x)
            assert y.dtype == plain.dtype == fw.float16
            z = m(x)  # a later use in the region: the no-grad forward's casts must not be reused
        y.float().sum().backward()  # (recomputed under the same autocast state, outside the region)
    for a, b in zip(_grads(m, x), ref):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
    assert z.requires_grad
