"""Every tensor operation against PyTorch, forward and backward, in float64 and float32.

Each case is a function ``f(L, *xs)`` written once and run with ``L = framework`` and
``L = torch``; the loss ``sum(out * w)`` with a fixed random ``w`` is back-propagated and the
input gradients compared.
"""

import math

import numpy as np
import pytest

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for tensor operations")

TOL = {"float64": dict(rtol=1e-9, atol=1e-11), "float32": dict(rtol=2e-4, atol=2e-5)}


def _to_ours(a, rg):
    return fw.tensor(a, requires_grad=rg and a.dtype.kind == "f")


def _to_torch(a, rg):
    return torch.tensor(a, requires_grad=rg and a.dtype.kind == "f")


def _flat(out):
    if isinstance(out, (tuple, list)):
        return [o for x in out for o in _flat(x)]
    return [out]


def _np(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t.detach().numpy()


def check(f, *arrays, dtype="float64", grad=True, seed=0):
    """Run ``f`` on both libraries; compare outputs (values, dtypes, shapes) and input grads."""
    arrays = [a.astype(dtype) if a.dtype.kind == "f" else a for a in arrays]
    ours = [_to_ours(a, grad) for a in arrays]
    theirs = [_to_torch(a, grad) for a in arrays]
    out_o, out_t = _flat(f(fw, *ours)), _flat(f(torch, *theirs))
    assert len(out_o) == len(out_t)
    tol = TOL[dtype]
    rng = np.random.default_rng(seed)
    loss_o = loss_t = 0
    for o, t in zip(out_o, out_t):
        assert tuple(o.shape) == tuple(t.shape), (o.shape, t.shape)
        assert str(o.dtype).split(".")[-1] == str(t.dtype).split(".")[-1], (o.dtype, t.dtype)
        np.testing.assert_allclose(_np(o), _np(t), **tol)
        if grad and t.requires_grad:
            assert o.requires_grad
            w = rng.normal(size=tuple(t.shape)).astype(dtype)
            loss_o = loss_o + (o * fw.tensor(w)).sum()
            loss_t = loss_t + (t * torch.tensor(w)).sum()
    if grad and not isinstance(loss_t, int):
        loss_o.backward()
        loss_t.backward()
        for a, b in zip(ours, theirs):
            if b.requires_grad:
                if b.grad is None:
                    assert a.grad is None or np.all(_np(a.grad) == 0)
                else:
                    assert a.grad is not None, "missing gradient"
                    assert a.grad.shape == a.shape
                    np.testing.assert_allclose(_np(a.grad), _np(b.grad), **tol)
    return out_o


R = np.random.default_rng(1234)


def normal(*s):
    return R.normal(size=s)


def positive(*s):
    return np.abs(R.normal(size=s)) + 0.5


# --------------------------------------------------------------------------- element-wise

UNARY = {
    "neg": lambda L, x: -x,
    "exp": lambda L, x: L.exp(x),
    "sin": lambda L, x: L.sin(x),
    "cos": lambda L, x: x.cos(),
    "tanh": lambda L, x: L.tanh(x),
    "sigmoid": lambda L, x: L.sigmoid(x),
    "relu": lambda L, x: L.relu(x),
    "abs": lambda L, x: L.abs(x),
    "clamp": lambda L, x: L.clamp(x, -0.5, 0.7),
    "clamp_min": lambda L, x: x.clamp(min=0.1),
    "clamp_max": lambda L, x: x.clamp(max=0.1),
    "pow_scalar": lambda L, x: x**3,
    "pow_method": lambda L, x: L.pow(x, 2),
    "square_via_mul": lambda L, x: x * x,
    "rpow": lambda L, x: 2.0**x,
    "scalar_ops": lambda L, x: (1 - x) / 3 + 2 * x - x / 0.5 + 0.25,
    "rdiv": lambda L, x: 1.0 / (x * x + 1),
}
POSITIVE_UNARY = {
    "log": lambda L, x: L.log(x),
    "sqrt": lambda L, x: L.sqrt(x),
    "pow_frac": lambda L, x: x**0.7,
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(UNARY))
def test_unary(name, dtype):
    check(UNARY[name], normal(3, 4), dtype=dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(POSITIVE_UNARY))
def test_unary_positive_domain(name, dtype):
    check(POSITIVE_UNARY[name], positive(3, 4), dtype=dtype)


BINARY = {
    "add": lambda L, a, b: a + b,
    "sub": lambda L, a, b: a - b,
    "mul": lambda L, a, b: a * b,
    "div": lambda L, a, b: a / b,
    "maximum": lambda L, a, b: L.maximum(a, b),
    "minimum": lambda L, a, b: L.minimum(a, b),
    "where": lambda L, a, b: L.where(a > b, a, b * 2),
    "add_alpha": lambda L, a, b: L.add(a, b, alpha=0.5),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(BINARY))
def test_binary_same_shape(name, dtype):
    check(BINARY[name], normal(3, 4), normal(3, 4) + 3 * (name == "div"), dtype=dtype)


def test_pow_tensor_exponent():
    check(lambda L, a, b: a**b, positive(2, 3), normal(2, 3))
    check(lambda L, a, b: L.pow(a, b), positive(4, 1), normal(1, 3))


def test_comparisons_are_bool_and_not_differentiable():
    a, b = normal(3, 4), normal(3, 4)
    b[0, 0] = a[0, 0]
    for f in (lambda L, x, y: x < y, lambda L, x, y: x <= y, lambda L, x, y: x > y,
              lambda L, x, y: x >= y, lambda L, x, y: x == y, lambda L, x, y: x != y,
              lambda L, x, y: x > 0.1):
        (o,) = check(f, a, b, grad=False)
        assert o.dtype == fw.bool and not o.requires_grad


try:
    from hypothesis import given
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import mutually_broadcastable_shapes
except ImportError:  # pragma: no cover
    given = None


if given is not None:
    @given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3),
           name=st.sampled_from(sorted(BINARY)), dtype=st.sampled_from(["float64", "float32"]))
    def test_binary_broadcasting_reduces_gradients(shapes, name, dtype):
        a, b = shapes.input_shapes
        y = normal(*b)
        if name == "div":
            y = np.sign(y) * (np.abs(y) + 1)
        check(BINARY[name], normal(*a), y, dtype=dtype)

    @given(shapes=mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3))
    def test_where_broadcasts_three_ways(shapes):
        c, a, b = shapes.input_shapes
        cond = R.random(c) > 0.5
        check(lambda L, m, x, y: L.where(m, x, y), np.asarray(cond), normal(*a), normal(*b))


# --------------------------------------------------------------------------- reductions

REDUCE = {
    "sum": lambda L, x: x.sum(),
    "sum_dim": lambda L, x: x.sum(dim=1),
    "sum_dims_keep": lambda L, x: x.sum(dim=(0, -1), keepdim=True),
    "sum_neg_dim": lambda L, x: L.sum(x, -2),
    "mean": lambda L, x: x.mean(),
    "mean_dim_keep": lambda L, x: x.mean(dim=2, keepdim=True),
    "mean_dims": lambda L, x: L.mean(x, dim=(0, 2)),
    "amax": lambda L, x: x.amax(dim=1),
    "amin_keep": lambda L, x: L.amin(x, dim=(0, 2), keepdim=True),
    "max_all": lambda L, x: x.max(),
    "min_all": lambda L, x: L.min(x),
    "max_dim": lambda L, x: tuple(x.max(dim=1)),
    "min_dim_keep": lambda L, x: tuple(x.min(dim=-1, keepdim=True)),
    "var": lambda L, x: x.var(),
    "var_dim": lambda L, x: x.var(dim=1, keepdim=True),
    "var_biased": lambda L, x: x.var(dim=0, unbiased=False),
    "var_correction": lambda L, x: L.var(x, dim=(1, 2), correction=0),
    "std": lambda L, x: x.std(dim=2),
    "logsumexp": lambda L, x: L.logsumexp(x, dim=1),
    "logsumexp_keep": lambda L, x: x.logsumexp(dim=(0, 1), keepdim=True),
    "softmax": lambda L, x: L.softmax(x, dim=1),
    "softmax_last": lambda L, x: x.softmax(-1),
    "log_softmax": lambda L, x: L.log_softmax(x, dim=0),
    "cumsum": lambda L, x: L.cumsum(x, dim=1),
    "cumsum_last": lambda L, x: x.cumsum(-1),
    "norm": lambda L, x: x.norm(),
    "norm_dim": lambda L, x: L.norm(x, dim=1),
    "norm_p1": lambda L, x: x.norm(p=1, dim=2, keepdim=True),
    "norm_p3": lambda L, x: x.norm(p=3, dim=0),
    "topk": lambda L, x: tuple(x.topk(2, dim=1)),
    "topk_smallest": lambda L, x: tuple(L.topk(x, 3, dim=-1, largest=False)),
    "sort": lambda L, x: tuple(x.sort(dim=1)),
    "sort_desc": lambda L, x: tuple(L.sort(x, dim=0, descending=True)),
    "prod": lambda L, x: x.prod(),
    "prod_dim": lambda L, x: L.prod(x, 1),
    "prod_dim_keep": lambda L, x: x.prod(dim=-1, keepdim=True),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(REDUCE))
def test_reductions(name, dtype):
    check(REDUCE[name], normal(3, 4, 5), dtype=dtype)


def test_argmax_argmin():
    x = normal(3, 4, 5)
    for f in (lambda L, t: t.argmax(), lambda L, t: L.argmax(t, dim=1),
              lambda L, t: t.argmin(dim=-1, keepdim=True), lambda L, t: L.argmin(t)):
        (o,) = check(f, x, grad=False)
        assert o.dtype == fw.int64


def test_amax_ties_share_the_gradient_like_torch():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    check(lambda L, t: t.amax(dim=1), x)
    check(lambda L, t: t.max(), x)


@pytest.mark.parametrize("dim", [None, 0, 1])
def test_prod_gradient_is_exact_at_zeros(dim):
    """One zero in a row: only that element gets a gradient (the product of the others); two
    zeros: every gradient in the row is zero. Division by the input would give nan here."""
    x = np.array([[2.0, 0.0, 4.0, -1.5], [0.0, 3.0, 0.0, 2.0], [1.5, -2.0, 0.5, 3.0]])
    f = (lambda L, t: t.prod()) if dim is None else (lambda L, t: L.prod(t, dim))
    check(f, x)
    check(f, np.zeros((2, 3)))


def test_prod_gradcheck_and_dtypes():
    x = fw.tensor(np.random.default_rng(3).uniform(0.5, 1.5, (3, 4)), requires_grad=True)
    assert fw.testing.gradcheck(lambda t: t.prod(dim=0), (x,))
    assert fw.testing.gradcheck(lambda t: t.prod(), (x,))
    assert fw.arange(1, 5).prod().dtype == fw.int64 and fw.arange(1, 5).prod().item() == 24
    assert fw.ones(2, 3).prod(1, dtype=fw.float64).dtype == fw.float64


@pytest.mark.parametrize("zeros", [0, 1, 2, 3])
def test_prod_second_derivative_with_zeros(zeros):
    """The Hessian of prod() where a row holds 0-3 zeros (each case takes its own branch)."""
    x = np.array([[2.0, -1.5, 4.0, 0.5, 3.0], [1.5, 2.0, -0.5, 3.0, 1.0]])
    x[0, [1, 3, 4][:zeros]] = 0.0
    check_double(lambda L, t: L.prod(t, 1) ** 2, x)
    check_double(lambda L, t: t.prod() * 3.0, x[:, :3])


@pytest.mark.parametrize("zeros", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("dim", [None, 1])
def test_prod_third_derivative_with_zeros_matches_torch(zeros, dim):
    """Derivatives of every order: the third one against PyTorch's, where a row holds 0-4 zeros."""
    rng = np.random.default_rng(zeros)
    x0 = rng.uniform(-2, 2, (3, 5))
    x0[0, [0, 2, 3, 4][:zeros]] = 0.0
    xf, xt = fw.tensor(x0, requires_grad=True), torch.tensor(x0, requires_grad=True)
    w0 = rng.standard_normal(() if dim is None else (3,))
    w1, w2 = rng.standard_normal((2, 3, 5))
    outs = []
    for lib, x in ((fw, xf), (torch, xt)):
        y = x.prod() if dim is None else x.prod(dim)
        (g,) = lib.autograd.grad((y * lib.tensor(w0)).sum(), x, create_graph=True)
        (h,) = lib.autograd.grad((g * lib.tensor(w1)).sum(), x, create_graph=True)
        (t,) = lib.autograd.grad((h * lib.tensor(w2)).sum(), x)
        outs.append([v.detach().numpy() for v in (g, h, t)])
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_prod_bad_dim_says_so():
    with pytest.raises(TypeError, match="one dimension"):
        fw.tensor([1.0, 2.0, 3.0]).prod(dim=(0,))


def test_mean_of_int_tensor_raises():
    with pytest.raises(RuntimeError, match="dtype"):
        fw.arange(4).mean()


# --------------------------------------------------------------------------- shapes

SHAPE = {
    "reshape": lambda L, x: x.reshape(4, 6),
    "reshape_infer": lambda L, x: x.reshape(-1, 3),
    "reshape_tuple": lambda L, x: L.reshape(x, (2, 12)),
    "view": lambda L, x: x.view(6, 4),
    "flatten": lambda L, x: x.flatten(),
    "flatten_range": lambda L, x: L.flatten(x, 1),
    "permute": lambda L, x: x.permute(2, 0, 1),
    "permute_tuple": lambda L, x: L.permute(x, (1, 2, 0)),
    "transpose": lambda L, x: x.transpose(0, 2),
    "transpose_neg": lambda L, x: L.transpose(x, -1, -2),
    "T_2d": lambda L, x: x[0].T,
    "squeeze_unsqueeze": lambda L, x: x.unsqueeze(1).unsqueeze(-1).squeeze(1),
    "squeeze_all": lambda L, x: x[:, :1].squeeze(),
    "squeeze_dim": lambda L, x: L.squeeze(x[:1], 0),
    "expand": lambda L, x: x[:, :1].expand(2, 3, 4),
    "expand_new_dims": lambda L, x: x[0, 0].expand(5, 4),
    "expand_minus1": lambda L, x: x[:, :, :1].expand(-1, -1, 6),
    "repeat": lambda L, x: x.repeat(2, 1, 3),
    "repeat_more_dims": lambda L, x: x[0].repeat(2, 2, 1),
    "contiguous": lambda L, x: x.transpose(0, 1).contiguous(),
    "chunk": lambda L, x: x.chunk(2, dim=2),
    "chunk_uneven": lambda L, x: L.chunk(x, 3, dim=1),
    "split_size": lambda L, x: x.split(3, dim=2),
    "split_sections": lambda L, x: L.split(x, [1, 2], dim=1),
    "cat": lambda L, x: L.cat([x, x * 2, x[:, :1]], dim=1),
    "cat_neg": lambda L, x: L.cat((x, x.exp()), dim=-1),
    "stack": lambda L, x: L.stack([x, -x], dim=1),
    "stack_last": lambda L, x: L.stack([x[0], x[1]], dim=-1),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(SHAPE))
def test_shape_ops(name, dtype):
    check(SHAPE[name], normal(2, 3, 4), dtype=dtype)


MATMUL_SHAPES = [((3, 4), (4, 5)), ((4,), (4,)), ((4,), (4, 2)), ((3, 4), (4,)), ((2, 3, 4), (4, 5)),
                 ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((2, 3, 4), (4,)), ((4,), (2, 4, 3))]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_batched_and_vectors(shapes, dtype):
    check(lambda L, a, b: a @ b, normal(*shapes[0]), normal(*shapes[1]), dtype=dtype)
    check(lambda L, a, b: L.matmul(a, b), normal(*shapes[0]), normal(*shapes[1]), dtype=dtype)


def test_matmul_shape_error_names_shapes():
    with pytest.raises(RuntimeError, match=r"3x4 and 5x2"):
        fw.randn(3, 4) @ fw.randn(5, 2)


def test_gather_and_scatter_add():
    x = normal(3, 5)
    idx = R.integers(0, 5, size=(3, 4))
    check(lambda L, t, i: L.gather(t, 1, i), x, idx)
    check(lambda L, t, i: t.gather(0, i[:2, :3] % 3), x, idx)
    src = normal(3, 4)
    check(lambda L, t, i, s: t.scatter_add(1, i, s), x, idx, src)
    check(lambda L, t, i, s: L.scatter_add(t, 0, i % 3, s), x, idx, src)


def test_masked_fill():
    x, m = normal(3, 4), R.random((3, 4)) > 0.5
    check(lambda L, t, mm: t.masked_fill(mm, -1.5), x, m)
    check(lambda L, t, mm: L.masked_fill(t, mm[:1], 0.0), x, m)


# --------------------------------------------------------------------------- indexing

INDEX_KEYS = {
    "int": lambda L: 1,
    "neg_int": lambda L: -1,
    "slice": lambda L: slice(1, None),
    "slice_step": lambda L: (slice(None), slice(0, 4, 2)),
    "int_slice": lambda L: (1, slice(None, 2)),
    "none": lambda L: (None, 0),
    "ellipsis": lambda L: (Ellipsis, 1),
    "ellipsis_none": lambda L: (0, Ellipsis, None),
    "bool_mask": lambda L: L.tensor(MASK),
    "bool_mask_rows": lambda L: L.tensor(MASK[:, 0, 0]),
    "int_tensor_repeats": lambda L: L.tensor([0, 2, 0, 0]),
    "int_tensor_2d": lambda L: L.tensor([[1, 0], [1, 1]]),
    "int_list": lambda L: [2, 0, 2],
    "adv_and_slice": lambda L: (L.tensor([1, 1, 0]), slice(None), 2),
    "two_advanced": lambda L: (L.tensor([0, 2, 2]), slice(None), L.tensor([1, 1, 3])),
    "adv_broadcast": lambda L: (L.tensor([[0], [2]]), L.tensor([0, 1, 1])),
    "slice_adv": lambda L: (slice(None), L.tensor([2, 2, 1])),
}
MASK = R.random((3, 4, 5)) > 0.5


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(INDEX_KEYS))
def test_getitem(name, dtype):
    check(lambda L, x: x[INDEX_KEYS[name](L)], normal(3, 4, 5), dtype=dtype)


# (keys that select an element twice are left out: which write wins is unspecified in PyTorch)
@pytest.mark.parametrize("name", [k for k in INDEX_KEYS if k not in (
    "int_tensor_repeats", "int_tensor_2d", "two_advanced", "adv_and_slice", "adv_broadcast", "slice_adv")])
def test_setitem_gradients_to_both_sides(name):
    def f(L, x, v):
        y = x * 1.0
        key = INDEX_KEYS[name](L)
        target = y[key]
        y[key] = v.reshape(-1)[: target.numel()].reshape(target.shape) * 2
        return y

    check(f, normal(3, 4, 5), normal(100))


def test_setitem_scalar_and_broadcast_value():
    def f(L, x, v):
        y = x.clone()
        y[0] = 3.0
        y[1, :, 2] = v
        return y

    check(f, normal(3, 4, 5), normal(4))


def test_getitem_out_of_range_is_an_index_error():
    with pytest.raises(IndexError):
        fw.zeros(3)[5]


# --------------------------------------------------------------------------- dtypes

PROMOTIONS = [
    ("int64 + float32", lambda L: L.arange(3) + L.ones(3)),
    ("int64 + python float", lambda L: L.arange(3) + 1.5),
    ("int64 * python int", lambda L: L.arange(3) * 2),
    ("int32 + int64", lambda L: L.tensor([1], dtype=L.int32) + L.tensor([1])),
    ("float32 + float64", lambda L: L.ones(2) + L.ones(2, dtype=L.float64)),
    ("float32 * python float", lambda L: L.ones(2) * 2.5),
    ("float16 + python float", lambda L: L.ones(2, dtype=L.float16) + 1.0),
    ("bool + int", lambda L: L.tensor([True, False]) + L.tensor([1, 2])),
    ("bool + python int", lambda L: L.tensor([True]) + 1),
    ("uint8 + int64", lambda L: L.tensor([1], dtype=L.uint8) + L.tensor([1])),
    ("int / int", lambda L: L.arange(1, 4) / L.tensor([2, 2, 2])),
    ("int / python int", lambda L: L.arange(1, 4) / 2),
    ("float16 + float32", lambda L: L.ones(1, dtype=L.float16) + L.ones(1)),
    ("int32 + python float", lambda L: L.tensor([1], dtype=L.int32) * 0.5),
    ("int32 sum", lambda L: L.tensor([1, 2], dtype=L.int32).sum()),
    ("bool sum", lambda L: L.tensor([True, True]).sum()),
    ("default float", lambda L: L.tensor([1.0, 2.0])),
    ("default int", lambda L: L.tensor([1, 2])),
    ("zeros default", lambda L: L.zeros(2)),
    ("arange float", lambda L: L.arange(0, 1, 0.25)),
    ("where int float", lambda L: L.where(L.tensor([True, False]), L.tensor([1, 2]), L.ones(2))),
    ("cat mixed", lambda L: L.cat([L.ones(1), L.ones(1, dtype=L.float64)])),
]


@pytest.mark.parametrize("name,f", PROMOTIONS, ids=[p[0] for p in PROMOTIONS])
def test_dtype_promotion_matches_torch(name, f):
    o, t = f(fw), f(torch)
    assert str(o.dtype).split(".")[-1] == str(t.dtype).split(".")[-1]
    np.testing.assert_allclose(np.asarray(o.tolist(), dtype=float), np.asarray(t.tolist(), dtype=float))


def test_float64_and_float32_gradients_keep_dtype():
    for dt in (fw.float32, fw.float64):
        x = fw.ones(3, dtype=dt, requires_grad=True)
        (x * 2.0 + x.exp()).sum().backward()
        assert x.grad.dtype == dt


# --------------------------------------------------------------------------- in place


def test_inplace_ops_on_intermediates_match_torch():
    def f(L, x, y):
        a = x * 1.0
        a.add_(y)
        a.mul_(y)
        a.add_(y, alpha=0.5) if L is torch else a.add_(y * 0.5)
        a += 1
        a *= x
        b = x * 2
        b[0].zero_()
        b[1, 1:].mul_(y[2, 1:])  # in place on a view: the base's graph must see it
        c = x * 3
        c.copy_(y * y)
        d = y * 1.0
        d.fill_(2.0)
        return a, b, c, d

    check(f, normal(3, 4), normal(3, 4))


def test_inplace_on_reshape_and_permute_views_reaches_the_base():
    def f(L, x, y):
        a = x * 2
        a.view(-1).mul_(y.reshape(-1))  # a view: ``a`` changes, and so must its gradient
        b = x * 3
        b.t()[1:].add_(y.t()[1:] * y.t()[1:])
        c = (x * 4).t()
        c.reshape(-1).mul_(2.0)  # reshape of a transposed array copies: ``c`` is unchanged
        d = x * 5
        d.permute(1, 0)[0].zero_()
        return a, b, c, d

    check(f, normal(2, 3), normal(2, 3))
    check(f, normal(2, 3), normal(2, 3), dtype="float32")


def test_inplace_into_a_view_of_a_tensor_outside_the_graph_puts_the_base_in_it():
    """A buffer that needs no grad, filled through views with values that do (PyTorch's
    CopySlices): the buffer joins the graph and gradients reach the values."""
    def f(L, y, z):
        buf = L.zeros(3, 4, dtype=y.dtype)
        buf[1:].copy_(y * 2)  # a slice
        buf.view(4, 3)[0].add_(z)  # a slice of a reshape of the buffer
        buf.t()[3].mul_(z[:3])  # a row of a transpose
        return buf

    check(f, normal(2, 4), normal(3))
    check(f, normal(2, 4), normal(3), dtype="float32")


def test_inplace_into_a_view_without_grad_values_stays_outside_the_graph():
    buf = fw.zeros(2, 3)
    buf[0].add_(1.0)
    buf.view(3, 2)[1:].mul_(fw.full((2, 2), 3.0))
    assert not buf.requires_grad and buf.grad_fn is None
    assert buf.tolist() == [[1.0, 1.0, 3.0], [0.0, 0.0, 0.0]]


def test_inplace_ops_bump_version_and_share_with_views():
    x = fw.zeros(2, 3)
    v = x[0]
    before = x._version
    x.add_(1.0)
    assert x._version > before and v._version == x._version
    assert v.tolist() == [1.0, 1.0, 1.0]
    v.mul_(3.0)
    assert x.tolist()[0] == [3.0, 3.0, 3.0]
    x.zero_()
    assert x.sum().item() == 0
    x.fill_(2)
    assert x.sum().item() == 12
    x.copy_(fw.arange(3).float())
    assert x.tolist() == [[0, 1, 2], [0, 1, 2]]


def test_inplace_result_type_errors():
    with pytest.raises(RuntimeError, match="can't be cast"):
        torch.arange(3).add_(torch.ones(3) * 0.5)
    with pytest.raises(RuntimeError, match="can't be cast"):
        fw.arange(3).add_(fw.ones(3) * 0.5)
    with pytest.raises(RuntimeError, match="shape"):
        fw.zeros(3).add_(fw.ones(2, 3))


# --------------------------------------------------------------------------- factories


def test_factories_match_torch_shapes_and_dtypes():
    cases = [
        lambda L: L.zeros(2, 3), lambda L: L.ones((2,)), lambda L: L.full((2, 2), 3.0),
        lambda L: L.full((2,), 7), lambda L: L.arange(5), lambda L: L.arange(1, 2, 0.5),
        lambda L: L.linspace(0, 1, 5), lambda L: L.eye(3), lambda L: L.eye(2, 3),
        lambda L: L.zeros_like(L.ones(2, dtype=L.float64)), lambda L: L.ones_like(L.arange(3)),
        lambda L: L.empty(2, 2).shape, lambda L: L.tensor([[1, 2], [3, 4]], dtype=L.float64),
    ]
    for f in cases:
        o, t = f(fw), f(torch)
        if isinstance(t, torch.Size):
            assert tuple(o) == tuple(t)
            continue
        assert tuple(o.shape) == tuple(t.shape) and str(o.dtype).split(".")[-1] == str(t.dtype).split(".")[-1]
        np.testing.assert_allclose(np.asarray(o.tolist(), float), np.asarray(t.tolist(), float), rtol=1e-6)


def test_random_factories_seeded_and_shaped():
    fw.manual_seed(3)
    a = fw.randn(4, 5), fw.rand(3), fw.randint(0, 10, (6,)), fw.randn_like(fw.ones(2, dtype=fw.float64))
    fw.manual_seed(3)
    b = fw.randn(4, 5), fw.rand(3), fw.randint(0, 10, (6,)), fw.randn_like(fw.ones(2, dtype=fw.float64))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    assert a[0].dtype == fw.float32 and a[2].dtype == fw.int64 and a[3].dtype == fw.float64
    assert 0 <= a[1].min().item() and a[1].max().item() < 1
    assert 0 <= a[2].min().item() and a[2].max().item() < 10


def test_tensor_attributes_and_conversions():
    x = fw.tensor([[1.5, 2.0], [3.0, 4.0]], requires_grad=True)
    assert x.shape == (2, 2) and x.ndim == 2 and x.dim() == 2 and x.numel() == 4 and x.size(1) == 2
    assert x.size() == (2, 2) and x.is_leaf and x.grad is None and x.device.type == "cpu"
    assert x.T.tolist() == [[1.5, 3.0], [2.0, 4.0]]
    d = x.detach()
    assert not d.requires_grad and d.numpy() is not None
    assert x[0, 0].item() == 1.5 and isinstance(x.sum().item(), float)
    assert x.long().dtype == fw.int64 and x.long().tolist() == [[1, 2], [3, 4]]
    assert x.half().dtype == fw.float16 and x.double().dtype == fw.float64 and x.float().dtype == fw.float32
    assert x.to(fw.float64).dtype == fw.float64 and x.cpu() is x and x.to("cpu") is x
    c = x.clone()
    assert c.grad_fn is not None and not c.is_leaf
    y = fw.zeros(2).requires_grad_()
    assert y.requires_grad
    a = np.arange(3.0)
    t = fw.from_numpy(a)
    a[0] = 9
    assert t.tolist()[0] == 9
    with pytest.raises(RuntimeError, match="only Tensors of floating point"):
        fw.arange(3).requires_grad_()
    with pytest.raises(RuntimeError, match="cannot be converted to Scalar"):
        x.item()


def test_casts_are_differentiable():
    check(lambda L, x: (x.float() * 2).double() if L is fw else (x.float() * 2).double(), normal(3))


def test_errors_name_the_operation_and_shapes():
    with pytest.raises(ValueError, match=r"Add.*\(2, 3\).*\(4,\)"):
        fw.ones(2, 3) + fw.ones(4)
    with pytest.raises(RuntimeError, match=r"cat.*\[2, 3\].*\[2, 4\]"):
        fw.cat([fw.ones(2, 3), fw.ones(2, 4)], dim=0)
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        fw.stack([fw.ones(2), fw.ones(3)])


def test_large_and_special_values():
    check(lambda L, x: L.sigmoid(x), np.array([-800.0, -30.0, 0.0, 30.0, 800.0]))
    check(lambda L, x: L.logsumexp(x, dim=0), np.array([1000.0, 1000.0, -5.0]))
    check(lambda L, x: L.log_softmax(x, dim=0), np.array([1000.0, 0.0, -1000.0]))
    with np.errstate(divide="ignore"):
        assert fw.tensor(0.0).log().item() == -math.inf == torch.tensor(0.0).log().item()


# --------------------------------------------------------------------------- gradients of gradients


def check_double(f, *arrays, seed=1):
    """Hessian-vector products (create_graph=True, then backward) against PyTorch, float64."""
    rng = np.random.default_rng(seed)
    res = []
    for L in (fw, torch):
        xs = [L.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
        outs = [o for o in _flat(f(L, *xs)) if o.requires_grad]
        r = np.random.default_rng(seed)
        loss = sum((o * L.tensor(r.normal(size=tuple(o.shape)))).sum() for o in outs)
        diff = [x for x in xs if x.requires_grad]
        gs = L.autograd.grad(loss, diff, create_graph=True)
        r2 = np.random.default_rng(seed + 1)
        # A non-linear function of the gradient, so that second derivatives of all kinds show up.
        total = sum(((g * L.tensor(r2.normal(size=tuple(g.shape)))) ** 2).sum() + g.sum() for g in gs
                    if g.requires_grad)
        if isinstance(total, int):  # gradient does not depend on the inputs (linear op)
            res.append(None)
            continue
        hv = L.autograd.grad(total, diff, allow_unused=True)
        res.append([None if h is None else _np(h) for h in hv])
    del rng
    if res[1] is None:
        return
    assert res[0] is not None
    for a, b in zip(*res):
        if b is None:
            assert a is None or np.all(a == 0)
        else:
            assert a is not None
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("table,name", [(t, n) for t, tab in (("UNARY", UNARY), ("POSITIVE", POSITIVE_UNARY),
                                                              ("REDUCE", REDUCE), ("SHAPE", SHAPE))
                                        for n in tab])
def test_second_order(table, name):
    f = {"UNARY": UNARY, "POSITIVE": POSITIVE_UNARY, "REDUCE": REDUCE, "SHAPE": SHAPE}[table][name]
    x = positive(3, 4) if table == "POSITIVE" else normal(3, 4, 5) if table in ("REDUCE", "SHAPE") else \
        normal(3, 4)
    if table == "SHAPE":
        x = normal(2, 3, 4)
    # Square first, so that even linear ops have a non-zero second derivative.
    check_double(lambda L, t: f(L, t * t), x)


@pytest.mark.parametrize("name", list(BINARY))
def test_second_order_binary_broadcast(name):
    y = normal(1, 4)
    if name == "div":
        y = np.sign(y) * (np.abs(y) + 1)
    check_double(lambda L, a, b: BINARY[name](L, a * a, b * b * b), normal(3, 4), y)


@pytest.mark.parametrize("name", ["slice_step", "bool_mask", "int_tensor_repeats", "two_advanced", "none"])
def test_second_order_indexing(name):
    check_double(lambda L, x: x[INDEX_KEYS[name](L)] ** 3, normal(3, 4, 5))


def test_second_order_matmul_gather_scatter_pow():
    check_double(lambda L, a, b: (a @ b) ** 2, normal(2, 3, 4), normal(4, 5))
    check_double(lambda L, a, b: (a @ b) ** 2, normal(4), normal(4))
    idx = R.integers(0, 5, size=(3, 4))
    check_double(lambda L, t, i: L.gather(t * t, 1, i) ** 2, normal(3, 5), idx)
    check_double(lambda L, t, i, s: t.scatter_add(1, i, s * s) ** 2, normal(3, 5), idx, normal(3, 4))
    check_double(lambda L, a, b: a**b, positive(2, 3), normal(2, 3))
    check_double(lambda L, x, m: x.masked_fill(m, 2.0) ** 3, normal(3, 4), R.random((3, 4)) > 0.5)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_relu_kernel_against_numpy_across_chunks(dtype):
    """The chunked zero-buffer relu: chunk boundaries, NaN kept, infinities, in place, non-contiguous."""
    from framework.ops.basic import _RELU_CHUNK, _relu_array

    rng = np.random.default_rng(0)
    x = rng.standard_normal(2 * _RELU_CHUNK + 6).astype(dtype).reshape(-1, 2)
    x.flat[[3, _RELU_CHUNK - 1, _RELU_CHUNK]] = [np.nan, -np.inf, np.inf]
    ref = np.maximum(x, dtype(0))
    np.testing.assert_array_equal(_relu_array(x), ref)
    y = x.copy()
    assert _relu_array(y, out=y) is y
    np.testing.assert_array_equal(y, ref)
    np.testing.assert_array_equal(_relu_array(x.T), ref.T)  # non-contiguous: the plain path
