"""framework/ops/misc.py against PyTorch: dtype information and promotion, the products (values and
gradients), index writes, unique_consecutive, broadcast_tensors, element-wise odds and ends, and the random
draws (by their moments and their errors)."""

import numpy as np
import pytest

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for tensor functions")
RNG = np.random.default_rng(21)

PAIRS = [
    (fw.float16, torch.float16),
    (fw.float32, torch.float32),
    (fw.float64, torch.float64),
    (fw.int32, torch.int32),
    (fw.int64, torch.int64),
    (fw.uint8, torch.uint8),
    (fw.bool, torch.bool),
]


def test_dtype_information_and_promotion_match_torch():
    for f, t in PAIRS:
        if f.is_floating_point:
            a, b = fw.finfo(f), torch.finfo(t)
            assert (a.bits, a.eps, a.max, a.min, a.tiny, a.resolution) == (
                b.bits,
                b.eps,
                b.max,
                b.min,
                b.tiny,
                b.resolution,
            )
        elif f is not fw.bool:
            a, b = fw.iinfo(f), torch.iinfo(t)
            assert (a.bits, a.max, a.min) == (b.bits, b.max, b.min)
        for g, u in PAIRS:
            assert str(fw.promote_types(f, g)).split(".")[-1] == str(torch.promote_types(t, u)).split(".")[-1]
            assert fw.can_cast(f, g) == torch.can_cast(t, u), (f, g)
        for scalar in (2, 2.5, True):
            want = torch.result_type(torch.ones(2, dtype=t), scalar)
            assert str(fw.result_type(fw.ones(2, dtype=f), scalar)).split(".")[-1] == str(want).split(".")[-1]
    with pytest.raises(TypeError, match="requires a floating point input type"):
        fw.finfo(fw.int32)
    assert fw.numel(fw.ones(3, 4)) == 12


def _grads(fn_fw, fn_t, *arrays):
    fa = [fw.tensor(a, requires_grad=True) for a in arrays]
    ta = [torch.tensor(a, requires_grad=True) for a in arrays]
    fo, to = fn_fw(*fa), fn_t(*ta)
    np.testing.assert_allclose(fo.detach().numpy(), to.detach().numpy(), rtol=1e-12, atol=1e-12)
    w = RNG.standard_normal(tuple(to.shape))
    (fo * fw.tensor(w)).sum().backward()
    (to * torch.tensor(w)).sum().backward()
    for f, t in zip(fa, ta):
        np.testing.assert_allclose(f.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_products_match_torch_with_gradients():
    m, v, u = RNG.standard_normal((3, 4)), RNG.standard_normal(4), RNG.standard_normal(3)
    _grads(fw.mv, torch.mv, m, v)
    _grads(
        lambda i, a, b: fw.addmv(i, a, b, beta=0.5, alpha=2),
        lambda i, a, b: torch.addmv(i, a, b, beta=0.5, alpha=2),
        u,
        m,
        v,
    )
    _grads(lambda i, a, b: fw.addr(i, a, b, alpha=3), lambda i, a, b: torch.addr(i, a, b, alpha=3), m, u, v)
    _grads(fw.ger, torch.ger, u, v)
    b1, b2 = RNG.standard_normal((5, 3, 2)), RNG.standard_normal((5, 2, 4))
    _grads(
        lambda i, a, b: fw.addbmm(i, a, b, beta=2), lambda i, a, b: torch.addbmm(i, a, b, beta=2), m, b1, b2
    )
    _grads(
        fw.chain_matmul,
        lambda *x: torch.linalg.multi_dot(x),
        m,
        RNG.standard_normal((4, 2)),
        RNG.standard_normal((2, 5)),
    )
    _grads(lambda a: fw.diagflat(a, 1), lambda a: torch.diagflat(a, 1), RNG.standard_normal((2, 2)))
    a, b = fw.broadcast_tensors(fw.ones(3, 1), fw.ones(1, 4))
    assert tuple(a.shape) == tuple(b.shape) == (3, 4)


def test_index_writes_match_torch():
    x = RNG.standard_normal((4, 3))
    rows, cols = np.array([0, 2, 0]), np.array([1, 1, 1])
    vals = np.array([10.0, 20.0, 30.0])
    for acc in (False, True):
        got = fw.index_put(fw.tensor(x), (fw.tensor(rows), fw.tensor(cols)), fw.tensor(vals), accumulate=acc)
        want = torch.index_put(
            torch.tensor(x), (torch.tensor(rows), torch.tensor(cols)), torch.tensor(vals), accumulate=acc
        )
        if acc:
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)
        else:  # (duplicate indices without accumulate: PyTorch leaves which write wins undefined)
            np.testing.assert_allclose(got.numpy()[2, 1], 20.0)
    got = fw.index_put(fw.tensor(x), (fw.tensor(np.array([1, 1])),), fw.tensor(np.ones(3)), accumulate=True)
    np.testing.assert_allclose(got.numpy()[1], x[1] + 2)
    mask = RNG.random((4, 3)) > 0.5
    src = RNG.standard_normal(12)
    np.testing.assert_array_equal(
        fw.masked_scatter(fw.tensor(x), fw.tensor(mask), fw.tensor(src)).numpy(),
        torch.tensor(x).masked_scatter(torch.tensor(mask), torch.tensor(src)).numpy(),
    )
    idx = np.array([0, 5, -1, 5])
    for acc in (True,):
        np.testing.assert_allclose(
            fw.put(fw.tensor(x), fw.tensor(idx), fw.tensor(np.arange(4.0)), accumulate=acc).numpy(),
            torch.tensor(x).put(torch.tensor(idx), torch.tensor(np.arange(4.0)), accumulate=acc).numpy(),
        )
    with pytest.raises(RuntimeError, match="at least 12 elements"):
        fw.masked_scatter(fw.tensor(x), fw.ones(4, 3, dtype=fw.bool), fw.ones(5))


def test_unique_consecutive_and_element_wise_functions():
    x = np.array([[1, 1, 2], [1, 1, 2], [3, 3, 3], [1, 1, 2]])
    for dim in (None, 0, 1):
        got = fw.unique_consecutive(fw.tensor(x), return_inverse=True, return_counts=True, dim=dim)
        want = torch.unique_consecutive(torch.tensor(x), return_inverse=True, return_counts=True, dim=dim)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g.numpy(), w.numpy())
    v = np.array([-1.5, -0.0, 0.0, 2.0])
    np.testing.assert_array_equal(fw.signbit(fw.tensor(v)).numpy(), torch.signbit(torch.tensor(v)).numpy())
    i = np.array([7, -7, 9])
    np.testing.assert_array_equal(
        fw.floor_divide(fw.tensor(i), 2).numpy(), torch.floor_divide(torch.tensor(i), 2)
    )
    np.testing.assert_array_equal(
        fw.bitwise_not(fw.tensor(i)).numpy(), torch.bitwise_not(torch.tensor(i)).numpy()
    )
    f = fw.float_power(fw.tensor(np.array([2, 3], np.int64)), 0.5)
    assert f.dtype == fw.float64
    np.testing.assert_allclose(f.numpy(), np.sqrt([2.0, 3.0]), rtol=1e-15)
    np.testing.assert_allclose(fw.true_divide(fw.tensor(i), 2).numpy(), i / 2)
    assert tuple(fw.swapdims(fw.ones(2, 3, 4), 0, 2).shape) == (4, 3, 2)
    assert tuple(fw.adjoint(fw.ones(2, 3, 4)).shape) == (2, 4, 3)


def test_random_draws():
    fw.manual_seed(0)
    p = fw.tensor(np.array([0.1, 0.5, 0.9]))
    draws = np.stack([fw.bernoulli(p).numpy() for _ in range(4000)])
    np.testing.assert_allclose(draws.mean(0), [0.1, 0.5, 0.9], atol=0.03)
    rates = fw.tensor(np.full(20000, 3.0))
    pois = fw.poisson(rates).numpy()
    assert abs(pois.mean() - 3) < 0.05 and abs(pois.var() - 3) < 0.15
    w = fw.tensor(np.array([[0.0, 1.0, 3.0], [5.0, 0.0, 0.0]]))
    idx = fw.multinomial(w, 4000, replacement=True).numpy()
    assert idx.shape == (2, 4000) and idx.dtype == np.int64
    np.testing.assert_allclose(np.bincount(idx[0], minlength=3) / 4000, [0, 0.25, 0.75], atol=0.03)
    assert (idx[1] == 0).all()
    once = fw.multinomial(fw.tensor(np.array([1.0, 2.0, 3.0, 4.0])), 4).numpy()
    assert sorted(once.tolist()) == [0, 1, 2, 3]  # without replacement: each index once
    with pytest.raises(RuntimeError, match="without replacement"):
        fw.multinomial(w, 3)
    with pytest.raises(RuntimeError, match="element < 0"):
        fw.multinomial(fw.tensor(np.array([1.0, -1.0])), 1)
    r = fw.randint_like(fw.zeros(3, 4), 5)
    assert tuple(r.shape) == (3, 4) and 0 <= r.numpy().min() and r.numpy().max() < 5
    src = np.arange(3.0)
    t = fw.asarray(src)
    src[0] = 7.0  # shares the array's memory, as torch.asarray does with copy=None
    assert t.dtype == fw.float64 and t.numpy()[0] == 7.0
    assert fw.asarray([1.5, 2.0]).dtype == fw.float32  # Python floats: the default dtype
    assert fw.asarray(src, copy=True).numpy()[0] == 7.0 and not np.shares_memory(
        fw.asarray(src, copy=True).numpy(), src
    )


@pytest.mark.parametrize(
    "name, arg, shape",
    [
        ("hsplit", 2, (3, 4)),
        ("hsplit", [1, 3], (2, 5, 2)),
        ("hsplit", 3, (6,)),
        ("vsplit", 3, (6, 2)),
        ("vsplit", [2], (5, 3)),
        ("dsplit", 2, (2, 3, 4)),
        ("dsplit", [1, 1, 3], (2, 2, 4)),
        ("split_with_sizes", [1, 3, 0, 2], (6, 2)),
    ],
)
def test_hsplit_vsplit_dsplit_split_with_sizes_match_torch(name, arg, shape):
    x = RNG.standard_normal(shape)
    fx, tx = fw.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fo, to = getattr(fw, name)(fx, arg), getattr(torch, name)(tx, arg)
    assert len(fo) == len(to)
    for i, (a, b) in enumerate(zip(fo, to)):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
        (a * (i + 1)).sum().backward()
        (b * (i + 1)).sum().backward()
    np.testing.assert_array_equal(fx.grad.numpy(), tx.grad.numpy())
    assert [tuple(p.shape) for p in getattr(fx, name)(arg)] == [tuple(p.shape) for p in to]  # (as methods)


def test_split_errors_name_the_problem():
    x = fw.zeros(5, 3)
    with pytest.raises(RuntimeError, match="not divisible by the split_size 2"):
        fw.vsplit(x, 2)
    with pytest.raises(RuntimeError, match="at least 3 dimension"):
        fw.dsplit(x, 1)
    with pytest.raises(RuntimeError, match="sum exactly to 5"):
        fw.split_with_sizes(x, [2, 2])
    with pytest.raises(TypeError, match="sequence of ints"):
        fw.split_with_sizes(x, 5)


def test_is_nonzero_nextafter_logaddexp2_match_torch():
    for v in (0, 3, 0.0, -0.5, False, True):
        assert fw.is_nonzero(fw.tensor([v])) == torch.is_nonzero(torch.tensor([v]))
    for bad, msg in ((fw.zeros(2), "more than one value"), (fw.zeros(0), "no values")):
        with pytest.raises(RuntimeError, match=msg):
            fw.is_nonzero(bad)
    for dt in (np.float32, np.float64):
        a = RNG.standard_normal(7).astype(dt)
        b = np.array([1, -1, 0, np.inf, -np.inf, 2, 0], dtype=dt)
        got = fw.nextafter(fw.tensor(a), fw.tensor(b)).numpy()
        np.testing.assert_array_equal(got, torch.nextafter(torch.tensor(a), torch.tensor(b)).numpy())
        assert got.dtype == dt and (got != a).all()
    a = np.array([1.0, -3.0, 1000.0, -1000.0, 0.5])
    b = np.array([3.0, -3.0, 999.0, 2.0, -40.0])
    fa, ta = fw.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    fo, to = fw.logaddexp2(fa, fw.tensor(b)), torch.logaddexp2(ta, torch.tensor(b))
    np.testing.assert_allclose(fo.detach().numpy(), to.detach().numpy(), rtol=1e-12)  # (no overflow at 1000)
    fo.sum().backward()
    to.sum().backward()
    np.testing.assert_allclose(fa.grad.numpy(), ta.grad.numpy(), rtol=1e-12, atol=1e-300)


def test_i0_values_gradients_and_gradients_of_gradients():
    x = np.array([0.0, 0.3, -1.2, 2.5, -7.0, 15.0])
    fx, tx = fw.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fo, to = fw.i0(fx), torch.i0(tx)
    np.testing.assert_allclose(fo.detach().numpy(), to.detach().numpy(), rtol=1e-12)
    fo.sum().backward()
    to.sum().backward()
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert fw.testing.gradcheck(fw.i0, (fw.tensor(x, requires_grad=True),))
    assert fw.testing.gradgradcheck(fw.i0, (fw.tensor(x[1:], requires_grad=True),))
    assert fw.i0(fw.tensor([1, 2])).dtype == fw.float32  # (integers to the default float, as PyTorch)


def test_initial_seed_reports_the_seed_the_generator_started_from():
    fw.manual_seed(1234)
    assert fw.initial_seed() == 1234
    s = fw.seed()
    assert fw.initial_seed() == s and 0 <= s < 2**63
    a = fw.rand(3).numpy()
    fw.manual_seed(fw.initial_seed())
    np.testing.assert_array_equal(fw.rand(3).numpy(), a)  # (the same stream again)


def test_inference_mode_is_reported_and_its_false_form_turns_grad_on():
    assert not fw.is_inference_mode_enabled()
    with fw.inference_mode():
        assert fw.is_inference_mode_enabled() and not fw.is_grad_enabled()
        with fw.inference_mode(False):
            assert not fw.is_inference_mode_enabled() and fw.is_grad_enabled()
            assert torch.is_grad_enabled()  # (PyTorch's guard does the same: checked below)
        assert fw.is_inference_mode_enabled() and not fw.is_grad_enabled()
    assert not fw.is_inference_mode_enabled() and fw.is_grad_enabled()
    with torch.inference_mode():
        with torch.inference_mode(False):
            assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()

    @fw.inference_mode()
    def f():
        return fw.is_inference_mode_enabled(), fw.is_grad_enabled()

    @fw.inference_mode
    def g():
        yield fw.is_inference_mode_enabled()
        yield fw.is_inference_mode_enabled()

    assert f() == (True, False) and list(g()) == [True, True]
    assert not fw.is_inference_mode_enabled() and fw.is_grad_enabled()


@pytest.mark.parametrize("edge_order", [1, 2])
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"spacing": 2.0},
        {"spacing": [0.5, 3.0]},
        {"dim": 1},
        {"dim": -1, "spacing": [0.25]},
        {"dim": 0, "spacing": "coords"},
        {"spacing": "coords"},
    ],
)
def test_gradient_matches_torch_with_its_gradient(kw, edge_order):
    x = RNG.standard_normal((5, 6))
    fk, tk = dict(kw, edge_order=edge_order), dict(kw, edge_order=edge_order)
    if kw.get("spacing") == "coords":  # uneven sample coordinates
        dims = [0] if kw.get("dim") == 0 else [0, 1]
        coords = [np.cumsum(RNG.uniform(0.2, 2.0, x.shape[d])) for d in dims]
        fk["spacing"] = [fw.tensor(c) for c in coords]
        tk["spacing"] = [torch.tensor(c) for c in coords]
    fx, tx = fw.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fo, to = fw.gradient(fx, **fk), torch.gradient(tx, **tk)
    assert len(fo) == len(to)
    w = [RNG.standard_normal(x.shape) for _ in fo]
    for a, b in zip(fo, to):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-12, atol=1e-12)
    sum((a * fw.tensor(wi)).sum() for a, wi in zip(fo, w)).backward()
    sum((b * torch.tensor(wi)).sum() for b, wi in zip(to, w)).backward()
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_gradient_errors_and_integer_input():
    ints = fw.tensor(np.array([1, 4, 9, 16]))
    (g,) = fw.gradient(ints)
    np.testing.assert_allclose(g.numpy(), torch.gradient(torch.tensor([1, 4, 9, 16]))[0].numpy())
    assert g.dtype == fw.float32
    with pytest.raises(RuntimeError, match="at least edge_order\\+1"):
        fw.gradient(fw.zeros(2, 3), edge_order=2)
    with pytest.raises(RuntimeError, match="list of length 2"):
        fw.gradient(fw.zeros(3, 3), spacing=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="edge_order=1 and edge_order=2"):
        fw.gradient(fw.zeros(3), edge_order=3)


def test_is_floating_point_and_from_dlpack():
    assert fw.is_floating_point(fw.zeros(2)) and not fw.is_floating_point(fw.zeros(2, dtype=fw.int64))
    a = np.arange(6.0).reshape(2, 3)
    t = fw.from_dlpack(a)
    a[0, 0] = 42.0  # (shares memory, as PyTorch's)
    assert t.shape == (2, 3) and t[0, 0].item() == 42.0
    tt = torch.arange(4, dtype=torch.float32)
    np.testing.assert_array_equal(fw.from_dlpack(tt).numpy(), [0, 1, 2, 3])
    with pytest.raises(TypeError, match="DLPack"):
        fw.from_dlpack([1, 2, 3])
