"""framework.autograd.functional (vjp, jvp, jacobian, hessian, vhp, hvp) against
torch.autograd.functional: values, nesting of tuple inputs/outputs, create_graph, strict mode, errors."""

import numpy as np
import pytest

import framework as fw
from framework.autograd import functional as F

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for derivatives")
TF = torch.autograd.functional


def _same(a, b, tol=1e-10):
    """``a`` (framework) and ``b`` (torch) have the same nesting and values."""
    if isinstance(b, torch.Tensor):
        assert isinstance(a, fw.Tensor), f"expected a Tensor, got {type(a).__name__}"
        assert tuple(a.shape) == tuple(b.shape)
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=tol, atol=tol)
    else:
        assert isinstance(b, tuple) and isinstance(a, tuple), (type(a), type(b))
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y, tol)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _inputs(shapes, seed=0, dtype=np.float64):
    r = _rng(seed)
    arrays = [r.standard_normal(s).astype(dtype) * 0.7 for s in shapes]
    return tuple(fw.tensor(a) for a in arrays), tuple(torch.tensor(a) for a in arrays)


def _pack(xs, as_tuple):
    return xs if as_tuple else xs[0]


# Functions written once for both libraries: L is `fw` or `torch`.
def f_single(L, x):
    return L.exp(x) * L.sin(x) + x ** 3


def f_tuple_in(L, x, y):
    return (x * y).sum(1) + L.tanh(x @ y.T).sum(0)


def f_tuple_out(L, x):
    return x ** 2, (x * x.sin()).sum(), L.tanh(x).T


def f_both(L, x, y):
    return x @ y.T, L.sin(x) * 2, L.exp(y).sum()


CASES = [  # (function, input shapes, inputs as a tuple)
    (f_single, [(3,)], False),
    (f_single, [(2, 3)], False),
    (f_tuple_in, [(2, 3), (2, 3)], True),
    (f_tuple_out, [(2, 2)], False),
    (f_both, [(2, 3), (4, 3)], True),
]


def _fns(fn):
    return (lambda *a: fn(fw, *a)), (lambda *a: fn(torch, *a))


@pytest.mark.parametrize("fn, shapes, tup", CASES)
def test_vjp_and_jvp_match_torch(fn, shapes, tup):
    f, tf = _fns(fn)
    xs, txs = _inputs(shapes)
    touts = tf(*txs)
    touts_t = touts if isinstance(touts, tuple) else (touts,)
    vs = tuple(torch.tensor(_rng(1 + i).standard_normal(tuple(o.shape))) for i, o in enumerate(touts_t))
    v, tv = _pack(tuple(fw.tensor(a.numpy()) for a in vs), isinstance(touts, tuple)), _pack(vs, isinstance(
        touts, tuple))
    out, res = F.vjp(f, _pack(xs, tup), v)
    tout, tres = TF.vjp(tf, _pack(txs, tup), tv)
    _same(out, tout)
    _same(res, tres)
    assert not res_requires_grad(res)

    us = tuple(torch.tensor(_rng(7 + i).standard_normal(tuple(x.shape))) for i, x in enumerate(txs))
    out, res = F.jvp(f, _pack(xs, tup), _pack(tuple(fw.tensor(u.numpy()) for u in us), tup))
    tout, tres = TF.jvp(tf, _pack(txs, tup), _pack(us, tup))
    _same(out, tout)
    _same(res, tres)


def res_requires_grad(res):
    return res.requires_grad if isinstance(res, fw.Tensor) else any(res_requires_grad(r) for r in res)


@pytest.mark.parametrize("vectorize", [False, True])
@pytest.mark.parametrize("fn, shapes, tup", CASES)
def test_jacobian_matches_torch(fn, shapes, tup, vectorize):
    f, tf = _fns(fn)
    xs, txs = _inputs(shapes, seed=2)
    jac = F.jacobian(f, _pack(xs, tup), vectorize=vectorize)
    _same(jac, TF.jacobian(tf, _pack(txs, tup), vectorize=vectorize))
    assert not res_requires_grad(jac)


def s_single(L, x):
    return (x ** 3).sum() + (L.sin(x) * x).sum() * x.sum()


def s_tuple(L, x, y):
    return L.exp(x * y.sum()).sum() + (x ** 2).sum() * (y ** 3).mean() + (x.reshape(-1)[:2] ** 2 * 3).sum()


@pytest.mark.parametrize("fn, shapes, tup", [(s_single, [(4,)], False), (s_single, [(2, 2)], False),
                                             (s_tuple, [(3,), (2, 2)], True)])
def test_hessian_vhp_hvp_match_torch(fn, shapes, tup):
    f, tf = _fns(fn)
    xs, txs = _inputs(shapes, seed=3)
    _same(F.hessian(f, _pack(xs, tup)), TF.hessian(tf, _pack(txs, tup)))
    _same(F.hessian(f, _pack(xs, tup), vectorize=True), TF.hessian(tf, _pack(txs, tup)))
    vs = tuple(torch.tensor(_rng(5 + i).standard_normal(tuple(x.shape))) for i, x in enumerate(txs))
    v, tv = _pack(tuple(fw.tensor(a.numpy()) for a in vs), tup), _pack(vs, tup)
    for name in ("vhp", "hvp"):
        out, res = getattr(F, name)(f, _pack(xs, tup), v)
        tout, tres = getattr(TF, name)(tf, _pack(txs, tup), tv)
        _same(out, tout)
        _same(res, tres)


def test_float32():
    xs, txs = _inputs([(3, 2)], seed=4, dtype=np.float32)
    f, tf = _fns(f_single)
    jac = F.jacobian(f, xs[0])
    assert jac.dtype == fw.float32
    _same(jac, TF.jacobian(tf, txs[0]), tol=1e-5)
    _same(F.hessian(lambda x: f(x).sum(), xs[0]), TF.hessian(lambda x: tf(x).sum(), txs[0]), tol=1e-4)


def test_create_graph_results_are_differentiable_like_torch():
    a = _rng(6).standard_normal((2, 3))
    b = _rng(7).standard_normal((2, 3))
    x, tx = fw.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y, ty = fw.tensor(b, requires_grad=True), torch.tensor(b, requires_grad=True)
    f, tf = _fns(f_tuple_in)

    jac = F.jacobian(f, (x, y), create_graph=True)
    tjac = TF.jacobian(tf, (tx, ty), create_graph=True)
    _same(jac, tjac)
    assert all(j.requires_grad for j in jac)
    ((jac[0] ** 2).sum() + jac[1].sin().sum()).backward()
    ((tjac[0] ** 2).sum() + tjac[1].sin().sum()).backward()
    _same((x.grad, y.grad), (tx.grad, ty.grad))

    for name in ("vjp", "jvp", "vhp", "hvp"):
        x.grad = y.grad = tx.grad = ty.grad = None
        g = (lambda *v: f(*v).sum() ** 2) if name in ("vhp", "hvp") else f
        tg = (lambda *v: tf(*v).sum() ** 2) if name in ("vhp", "hvp") else tf
        ones = fw.ones(2, 3, dtype=fw.float64)
        vv = (ones, ones) if name != "vjp" else fw.ones(2, dtype=fw.float64)
        tvv = tuple(torch.tensor(t.numpy()) for t in vv) if isinstance(vv, tuple) else torch.tensor(
            vv.numpy())
        out, res = getattr(F, name)(g, (x, y), vv, create_graph=True)
        tout, tres = getattr(TF, name)(tg, (tx, ty), tvv, create_graph=True)
        _same(res, tres)
        assert out.requires_grad and res_requires_grad(res)
        total = sum((r ** 2).sum() for r in (res if isinstance(res, tuple) else (res,)))
        ttotal = sum((r ** 2).sum() for r in (tres if isinstance(tres, tuple) else (tres,)))
        total.backward()
        ttotal.backward()
        _same((x.grad, y.grad), (tx.grad, ty.grad), tol=1e-9)

    x.grad = tx.grad = None
    h = F.hessian(lambda v: (v ** 3).sum() * v.sin().sum(), x, create_graph=True)
    th = TF.hessian(lambda v: (v ** 3).sum() * v.sin().sum(), tx, create_graph=True)
    _same(h, th, tol=1e-9)
    h.sum().backward()
    th.sum().backward()
    _same(x.grad, tx.grad, tol=1e-9)


def test_unused_inputs_give_zeros_or_strict_errors():
    x, y = fw.tensor([1.0, 2.0], dtype=fw.float64), fw.tensor([3.0, 4.0], dtype=fw.float64)
    tx, ty = torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([3.0, 4.0], dtype=torch.float64)

    def f(a, b):
        return a ** 2

    out, res = F.vjp(f, (x, y), fw.ones(2, dtype=fw.float64))
    _same(res, TF.vjp(f, (tx, ty), torch.ones(2, dtype=torch.float64))[1])
    _same(F.jacobian(f, (x, y)), TF.jacobian(f, (tx, ty)))
    _same(F.jvp(lambda a: a * 0 + 1, x, fw.ones(2, dtype=fw.float64))[1],
          TF.jvp(lambda a: a * 0 + 1, tx, torch.ones(2, dtype=torch.float64))[1])
    _same(F.hessian(lambda a, b: (a ** 3).sum(), (x, y)), TF.hessian(lambda a, b: (a ** 3).sum(), (tx, ty)))

    strict_cases = [  # (call, message): PyTorch raises on each too
        (lambda L, M, a, b: M.vjp(f, (a, b), L.ones(2, dtype=a.dtype), strict=True),
         "independent of input 1"),
        (lambda L, M, a, b: M.jacobian(f, (a, b), strict=True), "independent of input 1"),
        (lambda L, M, a, b: M.vjp(lambda u: L.ones(2, dtype=a.dtype), a, L.ones(2, dtype=a.dtype),
                                  strict=True),
         "does not require gradients"),
        (lambda L, M, a, b: M.jvp(lambda u: u.detach() * 2, a, L.ones(2, dtype=a.dtype), strict=True),
         "does not require gradients"),
        (lambda L, M, a, b: M.hessian(lambda u: (u * 2).sum(), a, strict=True),
         "jacobian of the user-provided function with respect to input 0"),  # linear: no Hessian
        (lambda L, M, a, b: M.vhp(lambda u, w: (u ** 3).sum(), (a, b), (a, b), strict=True),
         "independent of input 1"),
        (lambda L, M, a, b: M.hvp(lambda u, w: (u ** 3).sum(), (a, b), (a, b), strict=True),
         "independent of input 1"),
        (lambda L, M, a, b: M.jacobian(lambda u: u * 2, a, create_graph=True, strict=True),
         "independent of input 0. This is not allowed in strict mode when create_graph=True"),
    ]
    for call, message in strict_cases:
        with pytest.raises(RuntimeError, match=message):
            call(fw, F, x, y)
        with pytest.raises(RuntimeError):
            call(torch, TF, tx, ty)
    with pytest.raises(RuntimeError, match="not supported together"):
        F.jacobian(f, (x, y), strict=True, vectorize=True)


def test_argument_errors():
    x = fw.tensor([1.0, 2.0], dtype=fw.float64)
    with pytest.raises(TypeError, match="must be either a Tensor or a tuple of Tensors"):
        F.vjp(lambda a: a, [x], x)
    with pytest.raises(TypeError, match="value at index 1"):
        F.jacobian(lambda a, b: a, (x, 3.0))
    with pytest.raises(TypeError, match="outputs of the user-provided function"):
        F.jacobian(lambda a: [a], x)
    with pytest.raises(RuntimeError, match="v can only be None"):
        F.vjp(lambda a: a * 2, x)
    with pytest.raises(RuntimeError, match="v can only be None"):
        F.jvp(lambda a: a * 2, x)
    with pytest.raises(RuntimeError, match=r"v has invalid size"):
        F.vjp(lambda a: a * 2, x, fw.ones(3, dtype=fw.float64))
    with pytest.raises(RuntimeError, match="invalid length"):
        F.jvp(lambda a, b: a * b, (x, x), (x,))
    with pytest.raises(RuntimeError, match="single element"):
        F.hessian(lambda a: a ** 2, x)
    with pytest.raises(RuntimeError, match="should return a single Tensor"):
        F.hvp(lambda a: (a.sum(), a.sum()), x, x)
    with pytest.raises(NotImplementedError, match="forward-mode"):
        F.jacobian(lambda a: a, x, strategy="forward-mode")
    with pytest.raises(ValueError, match="reverse-mode"):
        F.jacobian(lambda a: a, x, strategy="sideways")
    # v may be omitted for a one-element output / input, as in PyTorch
    s = fw.tensor([0.5], dtype=fw.float64)
    ts = torch.tensor([0.5], dtype=torch.float64)
    _same(F.vjp(lambda a: (a ** 3).sum(), x)[1], TF.vjp(lambda a: (a ** 3).sum(), torch.tensor([1.0, 2.0],
                                                                                             dtype=torch.float64))[1])
    _same(F.jvp(lambda a: a.exp() * 3, s)[1], TF.jvp(lambda a: a.exp() * 3, ts)[1])
    _same(F.hvp(lambda a: (a ** 4).sum(), s)[1], TF.hvp(lambda a: (a ** 4).sum(), ts)[1])


def test_inputs_are_not_modified_and_captured_tensors_are_constants():
    a = _rng(8).standard_normal(3)
    x = fw.tensor(a, requires_grad=True)
    c = fw.tensor(a * 2, requires_grad=True)
    jac = F.jacobian(lambda v: v * c + v * x, x)  # x captured too: only the argument is differentiated
    np.testing.assert_allclose(jac.numpy(), np.diag(a * 2 + a))
    assert x.grad is None and c.grad is None and x.is_leaf
    assert fw.autograd.functional is F
