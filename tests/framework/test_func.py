"""fw.func against torch.func: grad (argnums, has_aux, nesting, through an outer graph), grad_and_value,
vjp, jacrev / jacfwd / hessian, vmap (in_dims / out_dims trees, nesting, per-sample gradients, the
randomness modes), functional_call, and the errors."""

import numpy as np
import pytest

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for function transforms")
tf = torch.func

RNG = np.random.default_rng(11)


def _both(a):
    return fw.tensor(a), torch.tensor(a)


def _close(a, b, tol=1e-10):
    np.testing.assert_allclose(np.asarray(a.detach().numpy()), b.detach().numpy(), rtol=tol, atol=tol)


def _f(lib):
    return lambda x, y: (lib.sin(x) * y).sum() + (x ** 2 * y.sum()).sum()


def test_grad_argnums_aux_and_value_match_torch():
    a, b = RNG.standard_normal(4), RNG.standard_normal(4)
    (fx, tx), (fy, ty) = _both(a), _both(b)
    _close(fw.func.grad(_f(fw))(fx, fy), tf.grad(_f(torch))(tx, ty))
    both = zip(fw.func.grad(_f(fw), argnums=(0, 1))(fx, fy), tf.grad(_f(torch), argnums=(0, 1))(tx, ty))
    for got, want in both:
        _close(got, want)
    _close(fw.func.grad(_f(fw), argnums=-1)(fx, fy), tf.grad(_f(torch), argnums=-1)(tx, ty))

    def with_aux(lib):
        return lambda x: ((x ** 3).sum(), x * 2)

    g, aux = fw.func.grad(with_aux(fw), has_aux=True)(fx)
    tg, taux = tf.grad(with_aux(torch), has_aux=True)(tx)
    _close(g, tg)
    _close(aux, taux)
    g, v = fw.func.grad_and_value(_f(fw))(fx, fy)
    tg, tv = tf.grad_and_value(_f(torch))(tx, ty)
    _close(g, tg)
    _close(v, tv)
    assert not g.requires_grad and not v.requires_grad  # nothing outside needed a graph


def test_grad_nests_and_composes_with_an_outer_graph():
    f = lambda x: fw.sin(x) * x ** 2  # noqa: E731
    t = lambda x: torch.sin(x) * x ** 2  # noqa: E731
    fx, tx = _both(np.array(0.7))
    _close(fw.func.grad(fw.func.grad(f))(fx), tf.grad(tf.grad(t))(tx))
    _close(fw.func.grad(fw.func.grad(fw.func.grad(f)))(fx), tf.grad(tf.grad(tf.grad(t)))(tx))
    # a gradient used inside a loss (a gradient penalty): trained through, as in PyTorch
    w = fw.tensor(np.array([0.3, -1.2]), requires_grad=True)
    pen = (fw.func.grad(lambda x: (w * x ** 2).sum())(fw.tensor(np.array([1.0, 2.0]))) ** 2).sum()
    pen.backward()
    # d/dw sum((2 w x)^2) = 8 w x^2
    np.testing.assert_allclose(w.grad.numpy(), 8 * np.array([0.3, -1.2]) * np.array([1.0, 4.0]), rtol=1e-12)


def test_vjp_jacobians_and_hessian_match_torch():
    a = RNG.standard_normal(3)
    fx, tx = _both(a)

    def two(lib):
        return lambda x: (lib.tanh(x) * 2, (x ** 2).sum().reshape(1))

    out, fn = fw.func.vjp(two(fw), fx)
    tout, tfn = tf.vjp(two(torch), tx)
    for o, t in zip(out, tout):
        _close(o, t)
    v1, v2 = RNG.standard_normal(3), RNG.standard_normal(1)
    (g,) = fn((fw.tensor(v1), fw.tensor(v2)))
    (tg,) = tfn((torch.tensor(v1), torch.tensor(v2)))
    _close(g, tg)

    def vec(lib):
        return lambda x, y: lib.sin(x)[:, None] * y[None, :] + x.sum()

    b = RNG.standard_normal(2)
    fy, ty = _both(b)
    for mine, theirs in ((fw.func.jacrev, tf.jacrev), (fw.func.jacfwd, tf.jacfwd)):
        js = mine(vec(fw), argnums=(0, 1))(fx, fy)
        tjs = theirs(vec(torch), argnums=(0, 1))(tx, ty)
        for j, tj in zip(js, tjs):
            assert tuple(j.shape) == tuple(tj.shape)
            _close(j, tj)
    scal = lambda lib: (lambda x: (lib.exp(x[0]) * x[1] ** 3 + x.prod()))  # noqa: E731
    _close(fw.func.hessian(scal(fw))(fx), tf.hessian(scal(torch))(tx))


@pytest.mark.parametrize("in_dims,out_dims,shapes", [
    (0, 0, ((4, 3), (4, 3))),
    ((1, None), 0, ((3, 4), (3,))),
    ((0, 0), 1, ((4, 3), (4, 3))),
    ((-1, None), -1, ((3, 4), (3,))),
])
def test_vmap_matches_torch(in_dims, out_dims, shapes):
    (fa, ta), (fb, tb) = _both(RNG.standard_normal(shapes[0])), _both(RNG.standard_normal(shapes[1]))

    def f(lib):
        return lambda x, y: lib.sin(x) * y + (x * y).sum()

    got = fw.func.vmap(f(fw), in_dims=in_dims, out_dims=out_dims)(fa, fb)
    want = tf.vmap(f(torch), in_dims=in_dims, out_dims=out_dims)(ta, tb)
    assert tuple(got.shape) == tuple(want.shape)
    _close(got, want)


def test_vmap_trees_nesting_and_per_sample_gradients():
    x = RNG.standard_normal((5, 3))
    w = RNG.standard_normal(3)
    (fx, tx), (fw_, tw) = _both(x), _both(w)
    # a dict input with its own in_dims, a tuple output with per-output out_dims
    f = lambda d, s: (d["a"] * s, (d["a"] ** 2).sum())  # noqa: E731
    got = fw.func.vmap(f, in_dims=({"a": 0}, None), out_dims=(1, 0))({"a": fx}, fw.tensor(2.0))
    want = tf.vmap(f, in_dims=({"a": 0}, None), out_dims=(1, 0))({"a": tx}, torch.tensor(2.0))
    for g, t in zip(got, want):
        assert tuple(g.shape) == tuple(t.shape)
        _close(g, t)
    # nested: an outer product table
    outer = fw.func.vmap(fw.func.vmap(lambda a, b: a * b, in_dims=(None, 0)), in_dims=(0, None))
    np.testing.assert_allclose(outer(fw.tensor(w), fw.tensor(w)).numpy(), np.outer(w, w), rtol=1e-12)
    # per-sample gradients, the classic use
    loss = lambda lib: (lambda p, xi: (lib.tanh(xi @ p) - 1.0) ** 2)  # noqa: E731
    per = fw.func.vmap(fw.func.grad(loss(fw)), in_dims=(None, 0))(fw_, fx)
    tper = tf.vmap(tf.grad(loss(torch)), in_dims=(None, 0))(tw, tx)
    assert tuple(per.shape) == (5, 3)
    _close(per, tper)


def test_vmap_randomness_modes():
    x = fw.zeros(4, 3)
    with pytest.raises(RuntimeError, match="randomness error mode"):
        fw.func.vmap(lambda r: r + fw.rand(3))(x)
    fw.manual_seed(0)
    diff = fw.func.vmap(lambda r: r + fw.rand(3), randomness="different")(x).numpy()
    assert len({tuple(row) for row in diff}) == 4
    same = fw.func.vmap(lambda r: r + fw.rand(3), randomness="same")(x).numpy()
    assert (same == same[0]).all()
    with pytest.raises(ValueError, match="Only allowed values for randomness"):
        fw.func.vmap(lambda r: r, randomness="sometimes")


def test_functional_call_matches_torch_and_restores_the_module():
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2)).double()
    fm = fw.nn.Sequential(fw.nn.Linear(3, 4), fw.nn.BatchNorm1d(4), fw.nn.Linear(4, 2)).double()
    fm.load_state_dict({k: fw.tensor(v.numpy()) for k, v in tm.state_dict().items()})
    new = {"0.weight": RNG.standard_normal((4, 3)), "2.bias": RNG.standard_normal(2)}
    fnew = {k: fw.tensor(v, requires_grad=True) for k, v in new.items()}
    tnew = {k: torch.tensor(v, requires_grad=True) for k, v in new.items()}
    x = RNG.standard_normal((6, 3))
    before = fm[0].weight.detach().numpy().copy()
    out = fw.func.functional_call(fm, fnew, (fw.tensor(x),))
    tout = tf.functional_call(tm, tnew, (torch.tensor(x),))
    _close(out, tout)
    out.sum().backward()
    tout.sum().backward()
    for k in new:
        _close(fnew[k].grad, tnew[k].grad)
    np.testing.assert_array_equal(fm[0].weight.detach().numpy(), before)
    assert fm[0].weight.grad is None and isinstance(fm[0].weight, fw.nn.Parameter)
    with pytest.raises(RuntimeError, match="unexpected keys \\['nope'\\]"):
        fw.func.functional_call(fm, {"nope": fw.ones(1)}, (fw.tensor(x),), strict=True)
    with pytest.raises(RuntimeError, match="has no parameter or buffer \\['nope'\\]"):
        fw.func.functional_call(fm, {"nope": fw.ones(1)}, (fw.tensor(x),))
    with pytest.raises(ValueError, match="appeared in multiple dictionaries"):
        fw.func.functional_call(fm, ({"2.bias": fw.ones(2)}, {"2.bias": fw.ones(2)}), (fw.tensor(x),))
    np.testing.assert_array_equal(fm[0].weight.detach().numpy(), before)  # also after the errors


def test_func_errors():
    with pytest.raises(RuntimeError, match="Expected f\\(\\*args\\) to return a scalar Tensor"):
        fw.func.grad(lambda x: x * 2)(fw.ones(3))
    with pytest.raises(ValueError, match="only 1 positional inputs"):
        fw.func.grad(lambda x: x.sum(), argnums=1)(fw.ones(3))
    with pytest.raises(RuntimeError, match="output of function f should be a tuple"):
        fw.func.grad(lambda x: x.sum(), has_aux=True)(fw.ones(3))
    with pytest.raises(ValueError, match="same size in the mapped dimension"):
        fw.func.vmap(lambda a, b: a + b)(fw.ones(3), fw.ones(4))
    with pytest.raises(ValueError, match="at least one input must be mapped"):
        fw.func.vmap(lambda a: a, in_dims=None)(fw.ones(3))
    with pytest.raises(ValueError, match="in_dim=2 for an input of shape \\(3,\\)"):
        fw.func.vmap(lambda a: a, in_dims=2)(fw.ones(3))
