"""framework/ops/aliases.py against PyTorch: the NumPy-style aliases, tan and the inverse hyperbolic
functions (values, gradients, gradients of gradients), fmax / fmin (NaN ignored, the gradient to the chosen
side), isposinf / isneginf, dist for every p, nanquantile, msort, rsub, mvlgamma, the older linear-algebra
entry points (cholesky, qr, svd's V, pinverse), the top-level layer functions, and the Tensor methods."""

import math

import numpy as np
import pytest

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for tensor functions")
RNG = np.random.default_rng(44)


def _both(name, arrays, grad=True, **kw):
    fs = [fw.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    ts = [torch.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    fo, to = getattr(fw, name)(*fs, **kw), getattr(torch, name)(*ts, **kw)
    return fs, ts, fo, to


@pytest.mark.parametrize(
    "name, low, high",
    [
        ("tan", -1.2, 1.2),
        ("asinh", -5, 5),
        ("acosh", 1.1, 6),
        ("atanh", -0.9, 0.9),
        ("erfc", -3, 3),
        ("arcsinh", -2, 2),
        ("arccosh", 1.5, 3),
        ("arctanh", -0.5, 0.5),
        ("absolute", -2, 2),
        ("negative", -2, 2),
        ("fix", -3, 3),
    ],
)
def test_unary_functions_match_torch(name, low, high):
    x = RNG.uniform(low, high, 9)
    fs, ts, fo, to = _both(name, [x])
    np.testing.assert_allclose(fo.detach().numpy(), to.detach().numpy(), rtol=1e-12, atol=1e-14)
    w = RNG.standard_normal(9)
    (fo * fw.tensor(w)).sum().backward()
    (to * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(fs[0].grad.numpy(), ts[0].grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(getattr(fw.tensor(x), name)().numpy(), to.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", ["tan", "asinh", "acosh", "atanh"])
def test_new_unary_functions_have_gradients_of_gradients(name):
    x = {"acosh": RNG.uniform(1.5, 4, 5)}.get(name, RNG.uniform(-0.8, 0.8, 5))
    fn = getattr(fw, name)
    assert fw.testing.gradcheck(fn, (fw.tensor(x, requires_grad=True),))
    assert fw.testing.gradgradcheck(fn, (fw.tensor(x, requires_grad=True),))


@pytest.mark.parametrize(
    "name",
    [
        "fmax",
        "fmin",
        "multiply",
        "divide",
        "subtract",
        "greater",
        "greater_equal",
        "less",
        "less_equal",
        "not_equal",
        "rsub",
    ],
)
def test_binary_functions_match_torch_nan_and_ties_included(name):
    a = RNG.standard_normal((3, 4))
    b = RNG.standard_normal((3, 4))
    a[0, 0], b[0, 1], a[1, 1], b[1, 1] = np.nan, np.nan, np.nan, np.nan
    b[2, 0] = a[2, 0]  # a tie
    grad = name in ("fmax", "fmin", "multiply", "divide", "subtract", "rsub")
    fs, ts, fo, to = _both(name, [a, b], grad=grad)
    np.testing.assert_array_equal(np.isnan(fo.detach().numpy()), np.isnan(to.detach().numpy()))
    np.testing.assert_allclose(fo.detach().numpy(), to.detach().numpy(), rtol=1e-12, equal_nan=True)
    if grad:
        fo.sum().backward()
        to.sum().backward()
        for f, t in zip(fs, ts):
            np.testing.assert_allclose(f.grad.numpy(), t.grad.numpy(), rtol=1e-12, equal_nan=True)


def test_isposinf_isneginf_and_integers():
    z = np.array([1.0, np.inf, -np.inf, np.nan, -0.0])
    for name in ("isposinf", "isneginf"):
        np.testing.assert_array_equal(
            getattr(fw, name)(fw.tensor(z)).numpy(), getattr(torch, name)(torch.tensor(z))
        )
        assert not getattr(fw, name)(fw.tensor([1, 2])).numpy().any()


@pytest.mark.parametrize("p", [0, 1, 2, 3.5, math.inf, -math.inf])
def test_dist_matches_torch(p):
    a, b = RNG.standard_normal((3, 4)), RNG.standard_normal(4)
    fs, ts, fo, to = _both("dist", [a, b], p=p)
    np.testing.assert_allclose(fo.detach().numpy(), to.detach().numpy(), rtol=1e-12)
    if p not in (0,):
        fo.backward()
        to.backward()
        np.testing.assert_allclose(fs[0].grad.numpy(), ts[0].grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dim, keepdim", [(None, False), (0, False), (1, True), (-1, False)])
@pytest.mark.parametrize("interpolation", ["linear", "lower", "nearest", "midpoint"])
def test_nanquantile_matches_torch(dim, keepdim, interpolation):
    x = RNG.standard_normal((4, 6))
    x[0, 1], x[2, 3], x[2, 4] = np.nan, np.nan, np.nan
    x[3] = np.nan  # a slice with no values
    for q in (0.3, np.array([0.1, 0.5, 1.0])):
        fq = q if np.isscalar(q) else fw.tensor(q)
        tq = q if np.isscalar(q) else torch.tensor(q)
        fo = fw.nanquantile(fw.tensor(x), fq, dim=dim, keepdim=keepdim, interpolation=interpolation)
        to = torch.nanquantile(torch.tensor(x), tq, dim=dim, keepdim=keepdim, interpolation=interpolation)
        assert tuple(fo.shape) == tuple(to.shape)
        np.testing.assert_allclose(fo.numpy(), to.numpy(), rtol=1e-12, equal_nan=True)
    fx, tx = fw.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fo = fw.nanquantile(fx, 0.4, dim=1)
    to = torch.nanquantile(tx, 0.4, dim=1)
    fw.nansum(fo).backward()
    torch.nansum(to).backward()
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-12, equal_nan=True)


def test_msort_rsub_mvlgamma_match_torch():
    x = RNG.standard_normal((5, 3))
    np.testing.assert_array_equal(fw.msort(fw.tensor(x)).numpy(), torch.msort(torch.tensor(x)).numpy())
    np.testing.assert_allclose(
        fw.rsub(fw.tensor(x), 2.0, alpha=3).numpy(), torch.rsub(torch.tensor(x), 2.0, alpha=3).numpy()
    )
    y = RNG.uniform(2, 5, 6)
    fs, ts, fo, to = _both("mvlgamma", [y], p=3)
    np.testing.assert_allclose(fo.detach().numpy(), to.detach().numpy(), rtol=1e-12)


def test_older_linear_algebra_entry_points_match_torch():
    a = RNG.standard_normal((2, 5, 3))
    s = a.transpose(0, 2, 1) @ a + np.eye(3)
    for upper in (False, True):
        np.testing.assert_allclose(
            fw.cholesky(fw.tensor(s), upper=upper).numpy(),
            torch.linalg.cholesky(torch.tensor(s), upper=upper).numpy(),
            rtol=1e-10,
        )
    for some in (True, False):
        q, r = fw.qr(fw.tensor(a), some=some)
        tq, tr = torch.linalg.qr(torch.tensor(a), mode="reduced" if some else "complete")
        assert (tuple(q.shape), tuple(r.shape)) == (tuple(tq.shape), tuple(tr.shape))
        np.testing.assert_allclose((q @ r).numpy(), a, atol=1e-12)
        u, sv, v = fw.svd(fw.tensor(a), some=some)
        tu, ts_, tv = torch.svd(torch.tensor(a), some=some)
        assert [tuple(t.shape) for t in (u, sv, v)] == [tuple(t.shape) for t in (tu, ts_, tv)]
        k = sv.shape[-1]
        recon = (u[..., :k] * sv[..., None, :]) @ v[..., :k].transpose(-2, -1)  # (V, not Vh)
        np.testing.assert_allclose(recon.numpy(), a, atol=1e-12)
        np.testing.assert_allclose(sv.numpy(), ts_.numpy(), rtol=1e-12)
    with pytest.raises(RuntimeError, match="not differentiable"):
        fw.qr(fw.tensor(a, requires_grad=True), some=False)
    u, sv, v = fw.svd(fw.tensor(a), compute_uv=False)
    tu, ts_, tv = torch.svd(torch.tensor(a), compute_uv=False)
    assert [tuple(t.shape) for t in (u, v)] == [tuple(t.shape) for t in (tu, tv)] and not u.numpy().any()
    np.testing.assert_allclose(
        fw.pinverse(fw.tensor(a)).numpy(), torch.pinverse(torch.tensor(a)).numpy(), rtol=1e-9, atol=1e-12
    )


def test_top_level_layer_functions_and_vmap():
    x = RNG.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(
        fw.conv2d(fw.tensor(x), fw.tensor(w), padding=1).numpy(),
        torch.conv2d(torch.tensor(x), torch.tensor(w), padding=1).numpy(),
        rtol=1e-4,
        atol=1e-4,
    )
    for name in ("selu", "celu"):
        np.testing.assert_allclose(
            getattr(fw, name)(fw.tensor(x)).numpy(),
            getattr(torch, name)(torch.tensor(x)).numpy(),
            rtol=1e-5,
            atol=1e-6,
        )
    np.testing.assert_allclose(
        fw.pdist(fw.tensor(x[0, 0])).numpy(), torch.pdist(torch.tensor(x[0, 0])).numpy(), rtol=1e-5
    )
    np.testing.assert_allclose(
        fw.pixel_shuffle(fw.tensor(x[:, :2].repeat(2, 1)), 2).numpy(),
        torch.pixel_shuffle(torch.tensor(x[:, :2].repeat(2, 1)), 2).numpy(),
    )
    sq = fw.vmap(lambda t: (t * t).sum())(fw.tensor(x.reshape(2, -1)))
    np.testing.assert_allclose(sq.numpy(), (x.reshape(2, -1) ** 2).sum(1), rtol=1e-5)


INPLACE = [
    ("tan", ()),
    ("cosh", ()),
    ("erfc", ()),
    ("erfinv", ()),
    ("lgamma", ()),
    ("digamma", ()),
    ("exp2", ()),
    ("log2", ()),
    ("i0", ()),
    ("sinc", ()),
    ("deg2rad", ()),
    ("xlogy", ("b",)),
    ("copysign", ("b",)),
    ("multiply", ("b",)),
    ("true_divide", ("b",)),
    ("float_power", (2.0,)),
    ("cumprod", (1,)),
    ("clip", (-0.2, 0.3)),
    ("ge", ("b",)),
    ("lt", ("b",)),
]


@pytest.mark.parametrize("name, args", INPLACE, ids=[n for n, _ in INPLACE])
def test_in_place_variants_match_torch_with_gradients(name, args):
    x = RNG.uniform(0.1, 0.8, (3, 4))
    b = RNG.uniform(-1, 1, (3, 4))

    def run(lib, t):
        leaf = lib.tensor(x, requires_grad=True)
        y = leaf * 1.0  # (not a leaf: in place is allowed and recorded)
        a = [lib.tensor(b) if v == "b" else v for v in args]
        out = getattr(y, name + "_")(*a)
        assert out is y
        (y * lib.tensor(np.arange(12.0).reshape(3, 4))).sum().backward()
        return y.detach().numpy(), leaf.grad.numpy()

    f, t = run(fw, None), run(torch, None)
    # (asinh_ and atanh_ have no derivative in PyTorch 2.13; ours is checked out of place above)
    np.testing.assert_allclose(f[0], t[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(f[1], t[1], rtol=1e-8, atol=1e-12)  # (digamma's derivative: 4e-10 apart)


def test_more_tensor_methods_match_torch():
    i = np.array([5, 12, -7])
    for name in ("bitwise_left_shift", "bitwise_right_shift", "bitwise_and", "bitwise_or", "bitwise_xor"):
        np.testing.assert_array_equal(
            getattr(fw.tensor(i), name)(fw.tensor([1, 2, 3])).numpy(),
            getattr(torch.tensor(i), name)(torch.tensor([1, 2, 3])).numpy(),
            err_msg=name,
        )
    with pytest.raises(TypeError, match="integer tensors only"):
        fw.tensor([1.0]).bitwise_left_shift(1)
    x = RNG.standard_normal((2, 3))
    assert tuple(fw.tensor(x).broadcast_to((4, 2, 3)).shape) == (4, 2, 3)
    a = RNG.standard_normal((3, 3))
    np.testing.assert_allclose(
        fw.tensor(a).logdet().numpy(), torch.tensor(a).logdet().numpy(), equal_nan=True
    )
    for f, t in zip(fw.tensor(a).slogdet(), torch.tensor(a).slogdet()):
        np.testing.assert_allclose(f.numpy(), t.numpy(), rtol=1e-12)
    np.testing.assert_allclose(
        fw.tensor(a).matrix_power(3).numpy(), torch.tensor(a).matrix_power(3).numpy(), rtol=1e-12
    )
    np.testing.assert_allclose(
        fw.tensor(a).matrix_exp().numpy(), torch.tensor(a).matrix_exp().numpy(), rtol=1e-10
    )
    np.testing.assert_array_equal(
        fw.tensor(x).narrow_copy(1, 1, 2).numpy(), torch.tensor(x).narrow_copy(1, 1, 2).numpy()
    )
    t = fw.tensor(x)
    assert t.is_cpu and t.is_same_size(fw.zeros(2, 3)) and not t.is_same_size(fw.zeros(3, 2))
    assert not (t.is_inference() or t.is_conj() or t.is_neg())
    assert (t.char().dtype, t.short().dtype, t.cfloat().dtype, t.cdouble().dtype) == (
        fw.int8,
        fw.int16,
        fw.complex64,
        fw.complex128,
    )
    z = np.array([1 + 0j, 2 - 1j, 0 + 0j])
    np.testing.assert_array_equal(fw.isreal(fw.tensor(z)).numpy(), torch.isreal(torch.tensor(z)).numpy())
    assert fw.isreal(fw.tensor([np.nan, 1.0])).numpy().all()
    np.testing.assert_array_equal(fw.tensor(x).mode(1)[0].numpy(), torch.tensor(x).mode(1)[0].numpy())


@pytest.mark.parametrize(
    "shape, wrap", [((3, 3), False), ((5, 2), False), ((7, 3), True), ((2, 5), True), ((3, 3, 3), False)]
)
def test_fill_diagonal_matches_torch(shape, wrap):
    x = RNG.standard_normal(shape)
    f, t = fw.tensor(x), torch.tensor(x)
    assert f.fill_diagonal_(-2.5, wrap=wrap) is f
    t.fill_diagonal_(-2.5, wrap=wrap)
    np.testing.assert_array_equal(f.numpy(), t.numpy())


def test_fill_diagonal_gradient_and_errors():
    leaf = fw.tensor(RNG.standard_normal((3, 3)), requires_grad=True)
    y = leaf * 2
    y.fill_diagonal_(1.0)
    y.sum().backward()
    np.testing.assert_array_equal(leaf.grad.numpy(), 2 * (1 - np.eye(3)))
    with pytest.raises(RuntimeError, match="equal length"):
        fw.zeros(2, 3, 3).fill_diagonal_(1)
    with pytest.raises(RuntimeError, match="larger than 1"):
        fw.zeros(3).fill_diagonal_(1)


@pytest.mark.parametrize("upper", [False, True])
def test_cholesky_solve_and_inverse_match_torch_with_gradients(upper):
    a = RNG.standard_normal((2, 4, 4))
    spd = a @ a.transpose(0, 2, 1) + 4 * np.eye(4)
    b = RNG.standard_normal((2, 4, 3))
    tl = torch.linalg.cholesky(torch.tensor(spd), upper=upper).detach()
    fl = fw.tensor(tl.numpy(), requires_grad=True)
    fb = fw.tensor(b, requires_grad=True)
    tl.requires_grad_(True)
    tb = torch.tensor(b, requires_grad=True)
    fo, to = fw.cholesky_solve(fb, fl, upper=upper), torch.cholesky_solve(tb, tl, upper=upper)
    np.testing.assert_allclose(fo.detach().numpy(), to.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = RNG.standard_normal(fo.shape)
    (fo * fw.tensor(w)).sum().backward()
    (to * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(fb.grad.numpy(), tb.grad.numpy(), rtol=1e-9, atol=1e-12)
    # (PyTorch's gradient for L keeps only its triangle, as does ours through the triangular solves)
    tri = np.triu if upper else np.tril
    np.testing.assert_allclose(tri(fl.grad.numpy()), tri(tl.grad.numpy()), rtol=1e-8, atol=1e-10)
    inv = fw.cholesky_inverse(fw.tensor(tl.detach().numpy()), upper=upper).numpy()
    np.testing.assert_allclose(
        inv, torch.cholesky_inverse(tl.detach(), upper=upper).numpy(), rtol=1e-10, atol=1e-12
    )
    np.testing.assert_allclose(inv @ spd, np.broadcast_to(np.eye(4), (2, 4, 4)), atol=1e-10)


def test_post_accumulate_grad_hooks_match_torch():
    """Hooks run after the leaf's .grad holds this pass's sum (both uses of the leaf), once per backward;
    an in-backward optimizer step through them gives PyTorch's parameters; handles remove them."""
    w0 = RNG.standard_normal(4)
    x = RNG.standard_normal(4)
    out = {}
    for lib in (fw, torch):
        w = lib.tensor(w0.copy(), requires_grad=True)
        seen = []

        def step(p, lib=lib, seen=seen):
            seen.append(p.grad.detach().clone().numpy())
            with lib.no_grad():
                p -= 0.1 * p.grad
            p.grad = None

        handle = w.register_post_accumulate_grad_hook(step)
        for _ in range(3):
            ((w * lib.tensor(x)).sum() + (w * w).sum()).backward()
        handle.remove()
        ((w * w).sum()).backward()  # (removed: .grad stays)
        out[lib] = (w.detach().numpy().copy(), np.array(seen), w.grad.numpy().copy())
    for a, b in zip(out[fw], out[torch]):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert len(out[fw][1]) == 3
    with pytest.raises(RuntimeError, match="non-leaf"):
        (fw.ones(2, requires_grad=True) * 2).register_post_accumulate_grad_hook(print)
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        fw.ones(2).register_post_accumulate_grad_hook(print)


def test_shape_changes_in_place_match_torch_with_gradients():
    x = RNG.standard_normal((2, 1, 3))
    out = {}
    for lib in (fw, torch):
        leaf = lib.tensor(x, requires_grad=True)
        y = leaf * 2
        for name, args in (
            ("squeeze_", (1,)),
            ("unsqueeze_", (0,)),
            ("transpose_", (1, 2)),
            ("swapaxes_", (0, 2)),
            ("swapdims_", (1, 0)),
        ):
            assert getattr(y, name)(*args) is y
        z = y[..., 0] * 1
        z.t_()
        w = lib.tensor(np.arange(y.numel(), dtype=np.float64).reshape(tuple(y.shape)))
        ((y * w).sum() + (z * z).sum()).backward()
        out[lib] = (tuple(y.shape), tuple(z.shape), y.detach().numpy().copy(), leaf.grad.numpy().copy())
    assert out[fw][:2] == out[torch][:2]
    np.testing.assert_allclose(out[fw][2], out[torch][2])
    np.testing.assert_allclose(out[fw][3], out[torch][3], rtol=1e-12)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        fw.ones(2, requires_grad=True).unsqueeze_(0)
    plain = fw.ones(3, 1)
    plain.squeeze_()
    assert tuple(plain.shape) == (3,)
    view = (fw.ones(2, 3, requires_grad=True) * 1)[0]
    with pytest.raises(RuntimeError, match="view in place"):
        view.unsqueeze_(0)


@pytest.mark.parametrize(
    "name, args",
    [
        ("relu_", ()),
        ("elu_", (0.7,)),
        ("selu_", ()),
        ("celu_", (0.5,)),
        ("leaky_relu_", (0.2,)),
        ("hardtanh_", (-0.3, 0.4)),
        ("threshold_", (0.1, 9.0)),
    ],
)
def test_functional_in_place_activations_match_torch(name, args):
    x = RNG.standard_normal((3, 5))
    out = {}
    for lib, F in ((fw, fw.nn.functional), (torch, torch.nn.functional)):
        leaf = lib.tensor(x, requires_grad=True)
        y = leaf * 1.5
        assert getattr(F, name)(y, *args) is y
        (y * y).sum().backward()
        out[lib] = (y.detach().numpy().copy(), leaf.grad.numpy().copy())
    for a, b in zip(out[fw], out[torch]):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_with_indices_forms_and_old_upsample_names_match_torch():
    x = RNG.standard_normal((2, 3, 8, 10))
    for name, args in (
        ("max_pool2d_with_indices", (2,)),
        ("adaptive_max_pool2d_with_indices", ((3, 4),)),
        ("max_pool1d_with_indices", (3,)),
        ("adaptive_max_pool1d_with_indices", (4,)),
    ):
        xi = x[:, :, 0] if "1d" in name else x
        f = getattr(fw.nn.functional, name)(fw.tensor(xi), *args)
        t = getattr(torch.nn.functional, name)(torch.tensor(xi), *args)
        np.testing.assert_allclose(f[0].numpy(), t[0].numpy())
        np.testing.assert_array_equal(f[1].numpy(), t[1].numpy())
    for name in ("upsample_nearest", "upsample_bilinear"):
        np.testing.assert_allclose(
            getattr(fw.nn.functional, name)(fw.tensor(x), scale_factor=2).numpy(),
            getattr(torch.nn.functional, name)(torch.tensor(x), scale_factor=2).numpy(),
            rtol=1e-12,
        )


def test_clip_grads_with_norm_matches_torch():
    grads = [RNG.standard_normal((3, 4)), RNG.standard_normal(5)]
    out = {}
    for lib in (fw, torch):
        ps = [lib.tensor(np.zeros_like(g), requires_grad=True) for g in grads]
        for p, g in zip(ps, grads):
            p.grad = lib.tensor(g.copy())
        total = lib.nn.utils.get_total_norm([p.grad for p in ps], 2.0)
        lib.nn.utils.clip_grads_with_norm_(ps, 1.5, total)
        out[lib] = [p.grad.numpy().copy() for p in ps]
    for a, b in zip(out[fw], out[torch]):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("name", ["elu", "selu", "silu", "mish", "hardswish", "rrelu", "celu", "hardsigmoid"])
def test_inplace_true_writes_the_input_as_torch(name):
    """``inplace=True`` changes the input itself (elu, selu, silu, mish, hardswish and rrelu ignored it
    before): the same values and gradients as PyTorch's, the module form included."""
    x = RNG.standard_normal((3, 5))
    out = {}
    for lib, F in ((fw, fw.nn.functional), (torch, torch.nn.functional)):
        leaf = lib.tensor(x, requires_grad=True)
        y = leaf * 1.5
        r = getattr(F, name)(y, inplace=True)
        assert r is y
        (y * y).sum().backward()
        mod = {
            "elu": "ELU",
            "selu": "SELU",
            "silu": "SiLU",
            "mish": "Mish",
            "hardswish": "Hardswish",
            "rrelu": "RReLU",
            "celu": "CELU",
            "hardsigmoid": "Hardsigmoid",
        }[name]
        z = lib.tensor(x * 1.0)
        m = getattr(lib.nn, mod)(inplace=True).eval()
        assert m(z) is z
        out[lib] = (y.detach().numpy().copy(), leaf.grad.numpy().copy(), z.numpy().copy())
    # (PyTorch's hardsigmoid multiplies by a float32 1/6 even in float64: 3e-8 apart)
    rtol = 1e-7 if name == "hardsigmoid" else 1e-12
    for a, b in zip(out[fw], out[torch]):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-15)


def test_forward_hooks_with_always_call_run_when_the_forward_raises():
    class Boom(fw.nn.Module):
        def forward(self, x):
            raise ValueError("bad input")

    for lib, mod in ((fw, Boom()), (torch, type("TBoom", (torch.nn.Module,), {"forward": Boom.forward})())):
        seen = []
        mod.register_forward_hook(lambda m, a, out, seen=seen: seen.append(("always", out)), always_call=True)
        mod.register_forward_hook(lambda m, a, out, seen=seen: seen.append(("plain", out)))
        with pytest.raises(ValueError, match="bad input"):
            mod(lib.ones(2))
        assert seen == [("always", None)], lib
    ok = fw.nn.Identity()
    seen = []
    ok.register_forward_hook(lambda m, a, out: seen.append(out.shape), always_call=True)
    ok(fw.ones(3))
    assert seen == [(3,)]  # (once, after a forward that worked)


def test_data_parallel_wraps_one_module_as_pytorch_names_it():
    fw.manual_seed(0)
    lin = fw.nn.Linear(3, 2)
    dp = fw.nn.DataParallel(lin)
    assert list(dp.state_dict()) == list(torch.nn.DataParallel(torch.nn.Linear(3, 2)).state_dict())
    x = fw.randn(4, 3)
    np.testing.assert_array_equal(dp(x).detach().numpy(), lin(x).detach().numpy())
    with pytest.raises(ValueError, match="one device"):
        fw.nn.DataParallel(lin, device_ids=[0, 1])


def test_deterministic_mode_flags_and_cpu_operations_unaffected():
    """The flags as PyTorch's; on the CPU every operation is deterministic, so nothing raises and two runs
    (on the framework's threads too) give the same bits; the alert an operation without a deterministic
    implementation raises (CUDA's float scatter-adds) raises or warns as PyTorch's."""
    from framework.backend import alert_not_deterministic

    assert not fw.are_deterministic_algorithms_enabled()
    try:
        fw.use_deterministic_algorithms(True)
        assert (
            fw.are_deterministic_algorithms_enabled()
            and not fw.is_deterministic_algorithms_warn_only_enabled()
        )
        runs = []
        for _ in range(2):
            fw.manual_seed(0)
            x = fw.randn(64, 16, requires_grad=True)
            idx = fw.tensor(np.random.default_rng(0).integers(0, 8, 64))
            y = fw.zeros(8, 16).index_add(0, idx, x * 3).sum() + fw.bincount(idx, weights=x[:, 0]).sum()
            y = y + fw.zeros(8, 16).scatter_reduce(0, idx[:, None].expand(64, 16), x, "mean").sum()
            y.backward()
            runs.append(x.grad.numpy().copy())
        np.testing.assert_array_equal(runs[0], runs[1])
        with pytest.raises(RuntimeError, match="does not have a deterministic implementation"):
            alert_not_deterministic("scatter_add (CUDA)")
        fw.use_deterministic_algorithms(True, warn_only=True)
        assert fw.is_deterministic_algorithms_warn_only_enabled()
        with pytest.warns(UserWarning, match="deterministic"):
            alert_not_deterministic("scatter_add (CUDA)")
    finally:
        fw.use_deterministic_algorithms(False)
    alert_not_deterministic("anything")  # (mode off: nothing)
