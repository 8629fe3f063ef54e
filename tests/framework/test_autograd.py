"""The autograd engine: backward/grad, higher derivatives, graph freeing, version counters,
hooks, grad modes, deep graphs, error messages."""

import numpy as np
import pytest

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for derivatives")


def _pair(a, rg=True):
    return fw.tensor(a, requires_grad=rg), torch.tensor(a, requires_grad=rg)


def _close(a, b, tol=1e-10):
    a = a.detach().numpy() if isinstance(a, fw.Tensor) else a
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else b
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_backward_accumulates_into_leaves():
    x, tx = _pair(np.array([1.0, -2.0, 3.0]))
    for L, v in ((fw, x), (torch, tx)):
        (v * v).sum().backward()
        (L.sin(v)).sum().backward()
    _close(x.grad, tx.grad)


def test_backward_with_gradient_argument_and_shape_check():
    x, tx = _pair(np.arange(6.0).reshape(2, 3))
    g = np.ones((2, 3)) * 0.5
    (x * x).backward(fw.tensor(g))
    (tx * tx).backward(torch.tensor(g))
    _close(x.grad, tx.grad)
    with pytest.raises(RuntimeError, match="implicitly created only for scalar outputs"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match=r"mismatch in shape.*\(3,\).*\(2, 3\)"):
        (x * 2).backward(fw.ones(3))


def test_autograd_grad_and_allow_unused():
    x, tx = _pair(np.array([0.3, 0.7]))
    y, ty = _pair(np.array([2.0, -1.0]))
    z, tz = _pair(np.array([5.0]))
    (gx, gy) = fw.autograd.grad((x * y).sum() + x.exp().sum(), [x, y])
    (tgx, tgy) = torch.autograd.grad((tx * ty).sum() + tx.exp().sum(), [tx, ty])
    _close(gx, tgx)
    _close(gy, tgy)
    assert x.grad is None  # grad() does not accumulate
    with pytest.raises(RuntimeError, match="allow_unused"):
        fw.autograd.grad((x * 2).sum(), [x, z])
    g = fw.autograd.grad((x * 2).sum(), [x, z], allow_unused=True)
    assert g[1] is None
    (go,) = fw.autograd.grad(x * 3, x, grad_outputs=fw.tensor([1.0, 2.0]))
    _close(go, np.array([3.0, 6.0]))
    with pytest.raises(RuntimeError, match="does not require grad"):
        fw.autograd.grad((x * 2).sum(), [fw.ones(2)])


SECOND = {
    "poly": lambda L, x: (x**3).sum() + (x * x).sum(),
    "tanh_sigmoid": lambda L, x: (L.tanh(x) * L.sigmoid(x)).sum(),
    "exp_log": lambda L, x: (L.exp(x) + L.log(x * x + 1)).sum(),
    "softmax": lambda L, x: (L.softmax(x.reshape(2, 3), dim=1) ** 2).sum(),
    "logsumexp": lambda L, x: L.logsumexp(x.reshape(2, 3), dim=0).sum(),
    "matmul": lambda L, x: (x.reshape(2, 3) @ x.reshape(3, 2)).sum() ** 2,
    "div_sqrt": lambda L, x: (L.sqrt(x * x + 1) / (x + 3)).sum(),
    "sin_cos_index": lambda L, x: (L.sin(x)[1:] * L.cos(x)[:-1]).sum(),
    "norm_var": lambda L, x: x.norm() + x.var(),
}


@pytest.mark.parametrize("name", list(SECOND))
def test_second_derivatives_match_torch(name):
    a = np.array([0.5, -1.2, 0.3, 2.0, -0.7, 1.1])
    x, tx = _pair(a)
    f = SECOND[name]
    (g,) = fw.autograd.grad(f(fw, x), x, create_graph=True)
    (tg,) = torch.autograd.grad(f(torch, tx), tx, create_graph=True)
    _close(g, tg)
    assert g.requires_grad
    v = np.array([1.0, 0.5, -1.0, 2.0, 0.1, -0.3])  # Hessian-vector product along v
    (hv,) = fw.autograd.grad((g * fw.tensor(v)).sum(), x)
    (thv,) = torch.autograd.grad((tg * torch.tensor(v)).sum(), tx)
    _close(hv, thv, 1e-9)


def test_third_derivative_and_backward_create_graph():
    x, tx = _pair(np.array([0.7]))
    for L, v in ((fw, x), (torch, tx)):
        y = (L.sin(v) * v**2).sum()
        (g1,) = L.autograd.grad(y, v, create_graph=True)
        (g2,) = L.autograd.grad(g1.sum(), v, create_graph=True)
        g2.sum().backward()
    _close(x.grad, tx.grad)
    x, tx = _pair(np.array([1.5, -0.5]))
    for v in (x, tx):
        (v**3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    (gg,) = fw.autograd.grad(x.grad.sum(), x)
    (tgg,) = torch.autograd.grad(tx.grad.sum(), tx)
    _close(gg, tgg)


def test_graph_is_freed_unless_retained():
    x = fw.tensor([1.0, 2.0], dtype=fw.float64, requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    _close(x.grad, 2 * (np.exp([1.0, 2.0]) * (1 + np.array([1.0, 2.0]))))
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()
    z = (x * x).sum()
    fw.autograd.grad(z, x)
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        fw.autograd.grad(z, x)


def test_inplace_on_saved_tensor_raises_naming_the_op():
    x = fw.tensor([1.0, 2.0], requires_grad=True)
    a = x * 1.0
    y = a.exp()  # Exp saves its output
    y.mul_(2.0)
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation.*Exp.*\(2,\)"):
        y.sum().backward()
    b = x * 1.0
    z = (b * b).sum()  # Mul saves its inputs
    b.add_(1.0)
    with pytest.raises(RuntimeError, match=r"Mul.*version 1; expected version 0"):
        z.backward()


def test_inplace_on_unsaved_tensor_is_fine_and_matches_torch():
    a = np.array([0.5, 1.5, -2.0])
    x, tx = _pair(a)
    for v in (x, tx):
        b = v + 1.0  # Add saves nothing
        b.mul_(3.0)
        (b * v).sum().backward()
    _close(x.grad, tx.grad)


def test_leaf_inplace_error_and_no_grad_update():
    x = fw.ones(3, requires_grad=True)
    for op in (lambda: x.add_(1.0), lambda: x.mul_(2.0), lambda: x.zero_(), lambda: x.fill_(3.0),
               lambda: x.__setitem__(0, 5.0)):
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            op()
    with fw.no_grad():
        x.add_(1.0)
        x[0] = 7.0
    assert x.tolist() == [7.0, 2.0, 2.0] and x.is_leaf and x.grad_fn is None


def test_hooks_on_leaves_and_intermediates():
    x, tx = _pair(np.array([1.0, 2.0, 3.0]))
    seen = []
    for L, v in ((fw, x), (torch, tx)):
        v.register_hook(lambda g: g * 2)
        h = v * v
        h.register_hook(lambda g, L=L: seen.append(g.detach().clone()) or g + 1)
        h.sum().backward()
    _close(x.grad, tx.grad)
    _close(seen[0], seen[1])
    handle = x.register_hook(lambda g: g * 0)
    handle.remove()
    x.grad = None
    (x * 1.0).sum().backward()
    _close(x.grad, 2 * np.ones(3))  # the first hook (×2) still applies, the removed one not
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        fw.ones(2).register_hook(lambda g: g)


def test_retain_grad_on_intermediate():
    x = fw.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    (h * h).sum().backward()
    _close(h.grad, 2 * np.array([3.0, 6.0]))


def test_grad_modes():
    x = fw.ones(2, requires_grad=True)
    assert fw.is_grad_enabled()
    with fw.no_grad():
        assert not fw.is_grad_enabled()
        y = x * 2
        with fw.enable_grad():
            assert fw.is_grad_enabled()
            z = x * 2
        assert not fw.is_grad_enabled()
    assert fw.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and z.requires_grad
    with fw.inference_mode():
        assert not (x * 2).requires_grad
    with fw.inference_mode(False):
        assert (x * 2).requires_grad
    with fw.set_grad_enabled(False):
        assert not fw.is_grad_enabled()

    @fw.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad and fw.is_grad_enabled()


def test_grad_mode_is_per_thread():
    import threading

    seen = []
    with fw.no_grad():
        t = threading.Thread(target=lambda: seen.append(fw.is_grad_enabled()))
        t.start()
        t.join()
    assert seen == [True]


def test_detach_and_requires_grad_propagation():
    x = fw.ones(2, requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.is_leaf
    assert (d * 2 + x).requires_grad and not (d * 2).requires_grad
    y = (x * 2).detach() * x
    y.sum().backward()
    _close(x.grad, 2 * np.ones(2))


def test_long_recurrent_chain_backpropagates():
    """10,000 sequential steps: the engine must not recurse."""
    w = fw.tensor(0.9999, dtype=fw.float64, requires_grad=True)
    h = fw.tensor(1.0, dtype=fw.float64)
    for _ in range(10_000):
        h = h * w + 0.0001
    h.backward()
    tw = torch.tensor(0.9999, dtype=torch.float64, requires_grad=True)
    th = torch.tensor(1.0, dtype=torch.float64)
    for _ in range(10_000):
        th = th * tw + 0.0001
    th.backward()
    _close(h, th, 1e-9)
    _close(w.grad, tw.grad, 1e-8)


def test_shared_subgraph_diamond():
    x, tx = _pair(np.array([0.5, 1.5]))
    for L, v in ((fw, x), (torch, tx)):
        a = L.exp(v)
        b = a * a
        c = a + b
        (b * c).sum().backward()
    _close(x.grad, tx.grad)


def test_multiple_outputs_with_partial_gradients():
    x, tx = _pair(np.arange(12.0).reshape(3, 4) / 7)
    for v in (x, tx):
        parts = v.split([1, 3], dim=1)
        vals, idx = v.max(dim=0)
        (parts[1].sum() * 2 + vals.sum()).backward()
    _close(x.grad, tx.grad)


def test_error_messages_name_op_and_shapes():
    with pytest.raises(ValueError, match=r"Mul.*\(2, 3\).*\(3, 2\)"):
        fw.ones(2, 3) * fw.ones(3, 2)
    with pytest.raises(RuntimeError, match=r"3x4 and 3x4"):
        fw.ones(3, 4) @ fw.ones(3, 4)
    with pytest.raises(RuntimeError, match="does not require grad"):
        fw.ones(2).sum().backward()


def test_non_float_tensor_cannot_require_grad_and_int_ops_have_no_graph():
    with pytest.raises(RuntimeError, match="floating point"):
        fw.tensor([1, 2], requires_grad=True)
    x = fw.ones(3, requires_grad=True)
    idx = x.argmax()
    assert not idx.requires_grad
    assert not (x > 0).requires_grad


def test_gradient_flows_through_casts_and_dtype_is_preserved():
    x = fw.ones(3, dtype=fw.float64, requires_grad=True)
    (x.float() * 2).sum().backward()
    assert x.grad.dtype == fw.float64
    _close(x.grad, 2 * np.ones(3))
