"""Autograd audit: engine semantics where the framework disagreed with PyTorch (hooks, gradient
dtypes, grad modes as decorators, argument checks, .grad arrays shared between tensors, memory the
graph keeps). Each test runs the same code with ``L = framework`` and ``L = torch`` and compares,
or checks the error PyTorch raises."""

import numpy as np
import pytest

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for the autograd audit")


def _np(t):
    return None if t is None else t.detach().numpy()


# ------------------------------------------------------------- grad(): only the needed part runs


@pytest.mark.parametrize("L", [fw, torch])
def test_grad_does_not_run_hooks_off_the_path_to_inputs(L):
    # A hook on a parameter (gradient clipping, logging) must not fire when autograd.grad asks
    # for another tensor's gradient (a gradient penalty, say), nor for backward(inputs=...).
    x = L.tensor([1.0, 2.0], requires_grad=True)
    w = L.tensor([3.0], requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append("x"))
    h = x * 2
    h.register_hook(lambda g: seen.append("h"))
    (gw,) = L.autograd.grad((h * w).sum(), [w])
    assert seen == [] and gw.tolist() == [6.0]
    (h * w).sum().backward(inputs=[w])
    assert seen == [] and x.grad is None and w.grad.tolist() == [6.0]
    (h * w).sum().backward()
    assert sorted(seen) == ["h", "x"]


def test_grad_of_intermediate_and_leaf_together_matches_torch():
    res = {}
    for L in (fw, torch):
        x = L.tensor([1.0, 2.0], requires_grad=True)
        w = L.tensor([0.5, -1.0], requires_grad=True)
        h = (x * x).exp()
        y = (h * w).sum() + (x * w).sum()
        gh, gx = L.autograd.grad(y, [h, x], retain_graph=True)
        (gw,) = L.autograd.grad(y, [w])
        res[L.__name__] = [_np(gh), _np(gx), _np(gw)]
    for a, b in zip(res["framework"], res["torch"]):
        np.testing.assert_allclose(a, b, rtol=1e-6)


# ------------------------------------------------------------- gradient dtypes


def _grad_dtype_cases(L):
    x = L.tensor([1.0, 2.0], requires_grad=True)
    (g1,) = L.autograd.grad(x * 2, x, grad_outputs=L.tensor([1.0, 1.0], dtype=L.float64))
    h = x * 2
    (g2,) = L.autograd.grad((h + L.tensor([1.0, 1.0], dtype=L.float64)).sum(), h)
    return [str(g1.dtype).split(".")[-1], str(g2.dtype).split(".")[-1]]


def test_gradients_take_the_dtype_of_their_tensor():
    # PyTorch casts each gradient to the dtype of the tensor it is for (a float64 grad_output, or a
    # float64 op downstream, must not turn a float32 tensor's gradient into float64).
    assert _grad_dtype_cases(fw) == _grad_dtype_cases(torch) == ["float32", "float32"]


# ------------------------------------------------------------- hooks


@pytest.mark.parametrize("leaf", [True, False])
def test_hook_changing_the_shape_raises(leaf):
    for L in (fw, torch):
        x = L.tensor([1.0, 2.0], requires_grad=True)
        t = x if leaf else x * 2
        t.register_hook(lambda g: g.sum())
        with pytest.raises(RuntimeError, match="hook .* has changed the size"):
            (t * 2).sum().backward()


# ------------------------------------------------------------- grad modes as decorators


@pytest.mark.parametrize("L", [fw, torch])
def test_grad_mode_classes_work_as_bare_decorators(L):
    x = L.tensor([1.0], requires_grad=True)

    @L.no_grad
    def f(t):
        return t * 2

    @L.inference_mode
    def g(t):
        return t * 2

    @L.enable_grad
    def h(t):
        return t * 2

    assert not f(x).requires_grad and not g(x).requires_grad
    with L.no_grad():
        assert h(x).requires_grad
    assert L.is_grad_enabled()


@pytest.mark.parametrize("L", [fw, torch])
def test_inference_mode_false_as_decorator_keeps_grad(L):
    @L.inference_mode(False)
    def f(t):
        return t * 2

    with L.no_grad():
        assert f(L.tensor([1.0], requires_grad=True)).requires_grad


@pytest.mark.parametrize("L", [fw, torch])
def test_grad_mode_decorator_on_a_generator_applies_to_each_step(L):
    # (a streaming predictor decorated with no_grad would otherwise record a graph per frame)
    @L.no_grad()
    def predict(xs):
        for x in xs:
            assert not L.is_grad_enabled()
            got = yield x * 2
            assert got is None

    x = L.tensor([1.0], requires_grad=True)
    outs = []
    for y in predict([x, x]):
        assert L.is_grad_enabled()
        outs.append(y.requires_grad)
    assert outs == [False, False]


# ------------------------------------------------------------- argument checks


@pytest.mark.parametrize("L", [fw, torch])
def test_grad_outputs_count_must_match_outputs(L):
    x = L.tensor([1.0, 2.0], requires_grad=True)
    a, b = (x * 2).sum(), (x * 3).sum()
    with pytest.raises(RuntimeError, match="got 2 tensors and 1 gradients"):
        L.autograd.backward([a, b], [L.tensor(1.0)])
    with pytest.raises(RuntimeError, match="got 2 tensors and 1 gradients"):
        L.autograd.grad([a, b], [x], grad_outputs=[L.tensor(1.0)])


@pytest.mark.parametrize("L", [fw, torch])
def test_gradient_that_is_not_a_tensor_is_a_type_error(L):
    x = L.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match="gradients can be either Tensors or None"):
        (x * 2).backward([1.0, 1.0])


@pytest.mark.parametrize("L", [fw, torch])
def test_retain_grad_on_tensor_without_grad_raises(L):
    with pytest.raises(RuntimeError, match="can't retain_grad on Tensor that has requires_grad=False"):
        L.tensor([1.0, 2.0]).retain_grad()


@pytest.mark.parametrize("L", [fw, torch])
def test_inplace_on_expanded_tensor_is_a_runtime_error(L):
    x = L.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 1).expand(3, 2)
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
        y.add_(1)
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
        L.tensor([1.0, 2.0]).expand(3, 2).mul_(2)
    (y * 1).sum().backward()  # the failed op left the graph as it was
    assert x.grad.tolist() == [3.0, 3.0]


# ------------------------------------------------------------- requires_grad and grad as attributes


@pytest.mark.parametrize("L", [fw, torch])
def test_requires_grad_attribute_is_checked_like_requires_grad_(L):
    x = L.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    # (setting it False on a computed tensor would silently cut the graph: detach() is the way)
    with pytest.raises(RuntimeError, match="only change requires_grad flags of leaf variables"):
        y.requires_grad = False
    with pytest.raises(RuntimeError, match="only change requires_grad flags of leaf variables"):
        y.requires_grad = True
    assert y.requires_grad_(True) is y and y.requires_grad and y.grad_fn is not None
    with pytest.raises(RuntimeError, match="only Tensors of floating point"):
        L.tensor([1, 2]).requires_grad = True
    x.requires_grad = False
    assert not x.requires_grad and not (x * 2).requires_grad


@pytest.mark.parametrize("L", [fw, torch])
def test_assigned_grad_must_match_shape_and_dtype(L):
    x = L.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="size"):
        x.grad = L.tensor([1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match="type"):
        x.grad = L.tensor([1.0, 2.0], dtype=L.float64)
    with pytest.raises(TypeError):
        x.grad = [1.0, 2.0]
    assert x.grad is None
    x.grad = L.tensor([5.0, 6.0])
    (x * 1).sum().backward()
    assert x.grad.tolist() == [6.0, 7.0]
    x.grad = None
    assert x.grad is None


# ------------------------------------------------------------- freeing the graph


@pytest.mark.parametrize("L", [fw, torch])
def test_backward_frees_the_intermediate_activations(L):
    # A loss kept after backward (the previous step's, or a list of losses) must not keep every
    # activation of its forward alive: PyTorch frees what the graph saved; so must we.
    import gc
    import weakref

    w = L.ones(4, 4, requires_grad=True)
    h = (L.ones(2, 4) @ w).tanh()
    ref = weakref.ref(h)
    loss = (h * h).sum()
    del h
    loss.backward()
    gc.collect()
    assert ref() is None
    h = (L.ones(2, 4) @ w).tanh()
    ref = weakref.ref(h)
    loss = (h * h).sum()
    del h
    loss.backward(retain_graph=True)
    gc.collect()
    assert ref() is not None
    loss.backward()
    assert w.grad.shape == (4, 4)


@pytest.mark.parametrize("L", [fw, torch])
def test_grad_output_is_not_aliased_by_grad(L):
    # (the gradient given to backward reaches .grad unchanged through an add: a later accumulation,
    # or zero_grad(set_to_none=False), must not write into the caller's tensor)
    x = L.tensor([1.0, 2.0], requires_grad=True)
    b = L.tensor([1.0, 2.0], requires_grad=True)
    gout = L.ones(2)
    (x + 1).backward(gout)
    b.backward(gout)
    (x * 2 + b).sum().backward()
    assert gout.tolist() == [1.0, 1.0] and x.grad.tolist() == [3.0, 3.0] and b.grad.tolist() == [2.0, 2.0]
    x.grad.zero_()
    b.grad.zero_()
    assert gout.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("L", [fw, torch])
def test_reshape_that_copies_has_its_own_version_counter(L):
    # (flatten of a transpose copies: changing the base in place afterwards must not invalidate
    # the copy that a later op saved)
    x = L.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = x * 1
    f = y.t().flatten()
    z = f * f
    y.add_(1)
    z.sum().backward()
    assert x.grad.tolist() == [[2.0, 4.0], [6.0, 8.0]]
    v = y.flatten()  # (a real view still shares it)
    w = v * v
    y.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        w.sum().backward()


@pytest.mark.parametrize("L", [fw, torch])
def test_hook_on_an_intermediate_the_caller_dropped_still_fires(L):
    # (a model registering a hook on an activation inside forward keeps no reference to it)
    x = L.tensor([1.0, 2.0], requires_grad=True)
    c = L.tensor([3.0, 4.0])
    seen = []

    def forward():
        h = x * 2
        h.register_hook(lambda g: seen.append(g.tolist()))
        for _ in range(3):
            h = h * c + 1
        return h.sum()

    import gc

    loss = forward()
    gc.collect()
    loss.backward()
    assert seen == [[27.0, 64.0]]


def test_filling_a_preallocated_buffer_step_by_step_keeps_memory_linear():
    # out[t] = h in a recurrent loop: a step must not keep a copy of the whole buffer (the forward
    # kept two per step, the backward one gradient of the whole buffer per step, so memory and
    # time grew with T²: some GB for a few thousand steps)
    import tracemalloc

    T, H = 200, 256
    buffer = T * H * 4
    w0 = np.random.default_rng(0).standard_normal((H, H)) * 0.5 / H**0.5
    grads = []
    for L in (fw, torch):
        w = L.tensor(w0, dtype=L.float32, requires_grad=True)
        tracemalloc.start()
        out, h = L.zeros(T, H), L.ones(1, H)
        for t in range(T):
            h = (h @ w).tanh()
            out[t] = h[0]
        forward_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        (out * out).sum().backward()
        backward_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        grads.append(w.grad.numpy())
        if L is fw:
            assert forward_peak < 30 * buffer and backward_peak < 30 * buffer, (forward_peak, backward_peak)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op", ["iadd", "mul_", "copy_", "nested"])
def test_inplace_on_an_indexed_part_in_a_loop_keeps_memory_linear_and_matches_torch(op):
    import tracemalloc

    T, H = 200, 256
    buffer = T * H * 4
    rng = np.random.default_rng(1)
    w0, b0 = rng.standard_normal((H, H)) * 0.5 / H**0.5, rng.standard_normal((T, H))
    grads = []
    for L in (fw, torch):
        w = L.tensor(w0, dtype=L.float32, requires_grad=True)
        tracemalloc.start()
        out, h = L.tensor(b0, dtype=L.float32), L.ones(1, H)
        out = out * (w[0, 0] * 0 + 1)  # (in the graph)
        for t in range(T):
            h = (h @ w).tanh()
            if op == "iadd":
                out[t] += h[0]
            elif op == "mul_":
                out[t].mul_(h[0])  # (saves the old part and h)
            elif op == "copy_":
                out[t].copy_(h[0])
            else:
                out[t][1:].add_(h[0, 1:])
        peak = tracemalloc.get_traced_memory()[1]
        (out * out).sum().backward()
        tracemalloc.stop()
        grads.append(w.grad.numpy())
        if L is fw:
            assert peak < 30 * buffer, peak
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("L", [fw, torch])
def test_leaves_given_the_same_gradient_do_not_share_it(L):
    # (an add hands its incoming gradient to both operands: the two .grad must not be one array,
    # or the next accumulation into one silently changes the other)
    a = L.tensor([1.0, 2.0], requires_grad=True)
    b = L.tensor([1.0, 2.0], requires_grad=True)
    h = a * 1
    h.retain_grad()
    ((a + b) * 2).sum().backward()
    ((h + 0) * 2).sum().backward()
    (a * 3).sum().backward()
    assert a.grad.tolist() == [7.0, 7.0] and b.grad.tolist() == [2.0, 2.0] and h.grad.tolist() == [2.0, 2.0]
    x = L.tensor([1.0, 2.0], requires_grad=True)
    y = L.tensor([1.0, 2.0], requires_grad=True)
    ((x + y) * 2).sum().backward(inputs=[x, y])
    x.grad.mul_(10)
    assert y.grad.tolist() == [2.0, 2.0]


@pytest.mark.parametrize("L", [fw, torch])
def test_grads_from_create_graph_are_not_shared_and_later_accumulation_is_seen(L):
    a = L.tensor([1.0, 2.0], requires_grad=True)
    b = L.tensor([1.0, 2.0], requires_grad=True)
    gout = L.ones(2)
    s = a + b
    (s * s).backward(gout, create_graph=True)  # (the add hands one gradient to a and b)
    assert a.grad.requires_grad and a.grad.tolist() == [4.0, 8.0]
    gp = (b.grad * b.grad).sum()  # (saves b.grad)
    (a * 3).sum().backward()
    assert a.grad.tolist() == [7.0, 11.0] and b.grad.tolist() == [4.0, 8.0] and gout.tolist() == [1.0, 1.0]
    (b * 3).sum().backward()  # b.grad changes in place: what gp saved is stale
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        gp.backward()


@pytest.mark.parametrize("op", ["zero_", "add_", "uniform_", "copy_", "setitem"])
@pytest.mark.parametrize("L", [fw, torch])
def test_inplace_on_a_no_grad_view_of_a_tensor_requiring_grad_raises(L, op):
    # (it silently changed the parameter outside the graph; PyTorch refuses it as ambiguous)
    x = L.tensor([1.0, 2.0], requires_grad=True)
    with L.no_grad():
        v = x[0:1]
    run = {"zero_": lambda: v.zero_(), "add_": lambda: v.add_(1), "uniform_": lambda: v.uniform_(),
           "copy_": lambda: v.copy_(L.ones(1)), "setitem": lambda: v.__setitem__(0, 5.0)}[op]
    with pytest.raises(RuntimeError, match="(?i)view"):
        run()
    assert x.tolist() == [1.0, 2.0]
    with L.no_grad():
        run()  # (both inside no_grad: fine)
    assert x.tolist()[1] == 2.0


@pytest.mark.parametrize("L", [fw, torch])
def test_random_fill_in_grad_mode_refuses_leaves_and_cuts_the_gradient(L):
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        L.zeros(3, requires_grad=True).uniform_()
    x = L.ones(3, requires_grad=True)
    y = x * 2
    y.normal_()  # (the values y had no longer matter: x gets no gradient through them)
    (y * x).sum().backward()
    assert x.grad.tolist() == y.tolist()


@pytest.mark.parametrize("L", [fw, torch])
def test_a_failed_inplace_op_leaves_the_tensor_and_its_hooks_as_they_were(L):
    x = L.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    seen = []
    y.register_hook(lambda g: seen.append(g.tolist()))
    with pytest.raises((RuntimeError, ValueError)):
        y.add_(L.ones(3))
    (y * y).sum().backward()
    assert seen == [[4.0, 8.0]] and x.grad.tolist() == [8.0, 16.0]
