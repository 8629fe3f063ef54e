"""More of PyTorch's tensor functions (framework/ops/extra.py) against PyTorch: values and gradients in
float64 and float32, gradients of gradients by finite differences, and the errors."""

import math

import numpy as np
import pytest
from functional_oracle import Const, both, check

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for tensor operations")

R = np.random.default_rng(7)
DTYPES = [np.float64, np.float32]


def normal(*s):
    return R.normal(size=s)


def positive(*s):
    return np.abs(R.normal(size=s)) + 0.3


def unit(*s):
    return R.uniform(-0.9, 0.9, size=s)


UNARY = [
    ("log1p", positive), ("expm1", normal), ("log2", positive), ("log10", positive), ("exp2", normal),
    ("reciprocal", positive), ("asin", unit), ("acos", unit), ("atan", normal), ("sinh", normal),
    ("cosh", normal), ("erf", normal), ("frac", lambda *s: normal(*s) * 3),
    ("trunc", lambda *s: normal(*s) * 3),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, draw", UNARY, ids=[n for n, _ in UNARY])
def test_unary_functions_and_methods(name, draw, dtype):
    x = draw(3, 5)
    check(*both(lambda L, a: getattr(L, name)(a)), [x], dtype=dtype)
    check(*both(lambda L, a: getattr(a, name)()), [x], dtype=dtype)


def test_unary_functions_of_integers_compute_in_the_default_dtype():
    t = fw.tensor([1, 2, 3])
    assert fw.log1p(t).dtype == fw.float32 and fw.exp2(t).tolist() == [2.0, 4.0, 8.0]
    # accurate where log(1 + x) is not (that loses 8 significant digits here)
    tiny = fw.log1p(fw.tensor([1e-10], dtype=fw.float64)).item()
    np.testing.assert_allclose(tiny, math.log1p(1e-10), rtol=1e-15)


BINARY = [
    ("atan2", lambda L, a, b: L.atan2(a, b)),
    ("fmod", lambda L, a, b: L.fmod(a * 3, b)),
    ("remainder", lambda L, a, b: L.remainder(a * 3, b)),
    ("hypot", lambda L, a, b: L.hypot(a, b)),
    ("logaddexp", lambda L, a, b: L.logaddexp(a * 20, b)),
    ("lerp", lambda L, a, b: L.lerp(a, b, 0.3)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, f", BINARY, ids=[n for n, _ in BINARY])
def test_binary_functions_broadcast(name, f, dtype):
    a = normal(4, 1, 3)
    b = positive(5, 3) * np.where(R.random((5, 3)) < 0.5, -1, 1)  # away from 0 (a divisor)
    check(*both(f), [a, b], dtype=dtype)


def test_lerp_with_a_tensor_weight_and_logaddexp_at_ties():
    check(*both(lambda L, a, b, w: L.lerp(a, b, w)), [normal(3, 4), normal(3, 4), R.random((1, 4))])
    x = normal(6)
    check(*both(lambda L, a, b: L.logaddexp(a, b)), [x, x.copy()])  # ties: sigmoid(0) = 0.5 each


EINSUM = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("i,i->", [(6,), (6,)]),
    ("ij->ji", [(3, 4)]),
    ("ij->", [(3, 4)]),
    ("ij->i", [(3, 4)]),
    ("ij,jk", [(3, 4), (4, 2)]),  # implicit output: ik
    ("ijk->kji", [(2, 3, 4)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij,ij->ij", [(3, 4), (3, 4)]),
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),  # batch dims broadcast
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("bi,i->b", [(3, 1), (4,)]),  # a size-1 dimension broadcasts
    ("i,jk->ijk", [(2,), (3, 4)]),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eq, shapes", EINSUM, ids=[e for e, _ in EINSUM])
def test_einsum(eq, shapes, dtype):
    check(*both(lambda L, *xs: L.einsum(eq, *xs)), [normal(*s) for s in shapes], dtype=dtype)


def test_einsum_takes_a_list_of_operands_and_names_bad_equations():
    a, b = fw.randn(3, 4), fw.randn(4, 5)
    np.testing.assert_allclose(fw.einsum("ij,jk->ik", [a, b]).numpy(), (a @ b).numpy(), rtol=1e-6)
    for eq, ops, msg in [
        ("ii->i", [fw.randn(3, 3)], "repeated subscripts"),
        ("ij,jk->ik", [fw.randn(3, 4), fw.randn(5, 2)], "size 5 for one operand and 4"),
        ("ij,jk->ik", [fw.randn(3, 4)], "names 2 operands, 1 were given"),
        ("ijk->i", [fw.randn(3, 4)], "name 3 dimensions but the operand has shape"),
        ("ij->iz", [fw.randn(3, 4)], "appear in no operand"),
    ]:
        with pytest.raises(ValueError, match=msg):
            fw.einsum(eq, *ops)


@pytest.mark.parametrize("dtype", DTYPES)
def test_products(dtype):
    check(*both(lambda L, a, b: L.outer(a, b)), [normal(3), normal(4)], dtype=dtype)
    check(*both(lambda L, c, a, b: L.addmm(c, a, b, beta=0.5, alpha=2.0)),
          [normal(3, 5), normal(3, 4), normal(4, 5)], dtype=dtype)
    check(*both(lambda L, c, a, b: L.addmm(c, a, b)), [normal(1, 5), normal(3, 4), normal(4, 5)], dtype=dtype)
    check(*both(lambda L, c, a, b: L.baddbmm(c, a, b, beta=2.0, alpha=0.5)),
          [normal(2, 3, 5), normal(2, 3, 4), normal(2, 4, 5)], dtype=dtype)
    check(*both(lambda L, a, b: L.tensordot(a, b, dims=2)), [normal(2, 3, 4), normal(3, 4, 5)], dtype=dtype)
    check(*both(lambda L, a, b: L.tensordot(a, b, dims=([0, 2], [2, 0]))), [normal(2, 3, 4), normal(4, 5, 2)],
          dtype=dtype)
    check(*both(lambda L, a, b: L.tensordot(a, b, dims=0)), [normal(2, 3), normal(4)], dtype=dtype)


def test_addmm_with_beta_zero_ignores_nan_input():
    c = fw.full((2, 2), float("nan"))
    out = fw.addmm(c, fw.eye(2), fw.ones(2, 2), beta=0)
    assert out.tolist() == [[1.0, 1.0], [1.0, 1.0]]


@pytest.mark.parametrize("k", [-1, 0, 2])
def test_triangles(k):
    check(*both(lambda L, a: L.tril(a, k)), [normal(2, 4, 5)])
    check(*both(lambda L, a: L.triu(a, diagonal=k)), [normal(4, 3)])
    check(*both(lambda L, a: a.tril(k)), [normal(3, 3)])
    x = fw.full((3, 3), float("inf"))
    assert fw.tril(x).isinf().sum().item() == 6 and fw.triu(x, 1).isinf().sum().item() == 3  # exact zeros


def test_rolls_grids_and_reshapes():
    check(*both(lambda L, a: L.roll(a, 2, 1)), [normal(3, 5)])
    check(*both(lambda L, a: L.roll(a, (-1, 7), (0, 2))), [normal(3, 4, 5)])
    check(*both(lambda L, a: L.roll(a, 3)), [normal(2, 5)])  # flattened
    check(*both(lambda L, a: a.roll(-2, dims=0)), [normal(4)])
    for ix in ("ij", "xy"):
        three = [normal(2), normal(3), normal(4)]
        check(*both(lambda L, a, b, c, ix=ix: L.meshgrid(a, b, c, indexing=ix)), three)
        check(*both(lambda L, a, b, ix=ix: L.meshgrid(a, b, indexing=ix)), [normal(2), normal(3)])
    check(*both(lambda L, a: L.movedim(a, (0, 1), (2, 0))), [normal(2, 3, 4, 5)])
    check(*both(lambda L, a: L.movedim(a, -1, 0)), [normal(2, 3, 4)])
    check(*both(lambda L, a: L.moveaxis(a, (0, 2), (1, 0))), [normal(2, 3, 4)])
    check(*both(lambda L, a: L.swapaxes(a, 0, 2)), [normal(2, 3, 4)])
    check(*both(lambda L, a: L.tile(a, (2,))), [normal(2, 3)])
    check(*both(lambda L, a: L.tile(a, (2, 1, 3))), [normal(2, 3)])
    check(*both(lambda L, a: L.ravel(a.transpose(0, 1))), [normal(2, 3)])


@pytest.mark.parametrize("k", [-2, 0, 1])
def test_diagonals(k):
    check(*both(lambda L, a: L.diag(a, k)), [normal(4)])
    check(*both(lambda L, a: L.diag(a, k)), [normal(4, 5)])
    check(*both(lambda L, a: L.trace(a)), [normal(4, 3)])
    with pytest.raises(ValueError, match="1-D or 2-D"):
        fw.diag(fw.randn(2, 2, 2))


@pytest.mark.parametrize("n", [5, 6])
def test_median(n):
    x = R.permutation(np.arange(n * 4, dtype=np.float64)).reshape(4, n)  # distinct: one index each
    check(*both(lambda L, a: L.median(a)), [x])
    check(*both(lambda L, a: tuple(L.median(a, dim=1))), [x])
    check(*both(lambda L, a: tuple(L.median(a, 0, keepdim=True))), [x])
    assert fw.median(fw.tensor(x), 1).indices.dtype == fw.int64


def test_nanmean():
    x = normal(3, 4)
    x[0, 1] = x[2, 3] = np.nan
    x[1, :] = np.nan
    for f in (lambda L, a: L.nanmean(a), lambda L, a: L.nanmean(a, dim=1),
              lambda L, a: L.nanmean(a, 0, True)):
        ours, theirs = f(fw, fw.tensor(x)), f(torch, torch.tensor(x))
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12, equal_nan=True)
    xs = normal(3, 4)
    xs[0, 0] = np.nan
    a, b = fw.tensor(xs, requires_grad=True), torch.tensor(xs, requires_grad=True)
    fw.nanmean(a).backward()
    torch.nanmean(b).backward()
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12)


def test_selection_helpers():
    mask = R.random((1, 4)) < 0.5
    mask[0, 0] = True
    check(*both(lambda L, a, m: L.masked_select(a, m)), [normal(3, 4), Const(mask)])
    idx = R.integers(0, 4, size=(3, 2))
    check(*both(lambda L, a, i: L.take_along_dim(a, i, dim=1)), [normal(3, 4), Const(idx)])
    check(*both(lambda L, a, i: L.take_along_dim(a, i, dim=1)), [normal(3, 4), Const(idx[:1])])  # broadcast
    check(*both(lambda L, a, i: L.take_along_dim(a, i)), [normal(3, 4), Const(R.integers(0, 12, 5))])
    check(*both(lambda L, a: L.repeat_interleave(a, 2, dim=0)), [normal(3, 2)])
    check(*both(lambda L, a, r: L.repeat_interleave(a, r, dim=1)), [normal(2, 3), Const(np.array([1, 0, 3]))])
    check(*both(lambda L, a: L.repeat_interleave(a, 3)), [normal(2, 2)])
    with pytest.raises(TypeError, match="bool"):
        fw.masked_select(fw.randn(2), fw.tensor([1, 0]))
    with pytest.raises(ValueError, match="one non-negative count or 3"):
        fw.repeat_interleave(fw.randn(3), fw.tensor([1, 2]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_inverse_and_det(dtype):
    a = normal(2, 3, 3) + 3 * np.eye(3)  # well conditioned
    check(*both(lambda L, x: L.inverse(x)), [a], dtype=dtype, rtol=1e-3 if dtype == np.float32 else None)
    check(*both(lambda L, x: L.det(x)), [a], dtype=dtype, rtol=1e-3 if dtype == np.float32 else None)
    check(*both(lambda L, x: x.det()), [a[0]], dtype=dtype, rtol=1e-3 if dtype == np.float32 else None)
    with pytest.raises(RuntimeError, match="singular"):
        fw.inverse(fw.zeros(2, 2))
    with pytest.raises(ValueError, match="square"):
        fw.det(fw.randn(2, 3))


def test_gradients_of_gradients():
    def t(*s, lo=None):
        a = R.normal(size=s) if lo is None else R.uniform(lo, 0.9, size=s)
        return fw.tensor(a, dtype=fw.float64, requires_grad=True)

    cases = [
        (lambda x: fw.log1p(x * x), (t(3),)),
        (lambda x: fw.asin(x), (t(3, lo=-0.9),)),
        (lambda x: fw.cosh(x) * fw.sinh(x), (t(3),)),
        (lambda y, x: fw.atan2(y, x + 3), (t(3), t(3))),
        (lambda a, b: fw.einsum("ij,jk->ik", a, b), (t(2, 3), t(3, 2))),
        (lambda a: fw.einsum("ij->i", a * a), (t(2, 3),)),
        (lambda a: fw.inverse(a + 3 * fw.eye(3, dtype=fw.float64)), (t(3, 3),)),
        (lambda a: fw.det(a + 3 * fw.eye(3, dtype=fw.float64)), (t(3, 3),)),
        (lambda a, b: fw.logaddexp(a, b), (t(4), t(4))),
    ]
    for f, xs in cases:
        assert fw.testing.gradcheck(f, xs)
        assert fw.testing.gradgradcheck(f, xs)


def test_counting_and_searching():
    x = np.array([3, 1, 2, 3, 3, 1, 7])
    u, inv, cnt = fw.unique(fw.tensor(x), return_inverse=True, return_counts=True)
    tu, tinv, tcnt = torch.unique(torch.tensor(x), return_inverse=True, return_counts=True)
    assert u.tolist() == tu.tolist() and inv.tolist() == tinv.tolist() and cnt.tolist() == tcnt.tolist()
    rows = np.array([[1, 2], [0, 0], [1, 2]])
    assert fw.unique(fw.tensor(rows), dim=0).tolist() == torch.unique(torch.tensor(rows), dim=0).tolist()
    counts = torch.bincount(torch.tensor(x), minlength=9).tolist()
    assert fw.bincount(fw.tensor(x), minlength=9).tolist() == counts
    w = R.random(7)
    np.testing.assert_allclose(fw.bincount(fw.tensor(x), weights=fw.tensor(w)).numpy(),
                               torch.bincount(torch.tensor(x), weights=torch.tensor(w)).numpy())
    with pytest.raises(ValueError, match="negative"):
        fw.bincount(fw.tensor([1, -1]))
    seq = np.array([1.0, 3.0, 5.0, 7.0])
    v = np.array([[0.0, 3.0], [5.0, 9.0]])
    for right in (False, True):
        assert (fw.searchsorted(fw.tensor(seq), fw.tensor(v), right=right).tolist()
                == torch.searchsorted(torch.tensor(seq), torch.tensor(v), right=right).tolist())
        assert (fw.bucketize(fw.tensor(v), fw.tensor(seq), right=right).tolist()
                == torch.bucketize(torch.tensor(v), torch.tensor(seq), right=right).tolist())
    seq2 = np.sort(R.normal(size=(2, 5)), axis=1)
    v2 = R.normal(size=(2, 3))
    assert (fw.searchsorted(fw.tensor(seq2), fw.tensor(v2)).tolist()
            == torch.searchsorted(torch.tensor(seq2), torch.tensor(v2)).tolist())
    y = fw.tensor([1.0, float("inf"), -float("inf"), float("nan")])
    assert y.isinf().tolist() == [False, True, True, False] and fw.isinf(y).dtype == fw.bool


def test_diagonal_and_cdist():
    for off, d1, d2 in [(0, 0, 1), (1, 0, 2), (-1, 2, 1), (2, -1, 0)]:
        check(*both(lambda L, a, o=off, i=d1, j=d2: L.diagonal(a, o, i, j)), [normal(3, 4, 5)])
    check(*both(lambda L, a: a.diagonal()), [normal(4, 4)])
    x1, x2 = normal(2, 4, 3), normal(2, 5, 3)
    x2[0, 1] = x1[0, 2]  # two points coincide: PyTorch's gradient there is 0, not NaN
    for p in (2.0, 1.0, 3.0):
        check(*both(lambda L, a, b, p=p: L.cdist(a, b, p=p)), [x1, x2])
    check(*both(lambda L, a, b: L.cdist(a, b)), [normal(4, 2), normal(3, 2)])
    with pytest.raises(ValueError, match="same dimension"):
        fw.diagonal(fw.randn(3, 3), 0, 1, -1)
    with pytest.raises(ValueError, match=r"\(\.\.\., P, M\)"):
        fw.cdist(fw.randn(3, 2), fw.randn(3, 4))


FOLDS = [  # output_size, kernel, dilation, padding, stride
    ((4, 5), (2, 2), 1, 0, 1),
    ((6, 7), (3, 2), 1, 1, 2),  # the last blocks stop short of the edge: output_padding fills it
    ((7, 7), 3, 2, 2, 1),
    ((5, 6), (2, 3), (1, 2), (0, 1), (2, 1)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size, k, d, p, s", FOLDS)
def test_fold_is_unfolds_adjoint(size, k, d, p, s, dtype):
    tF = torch.nn.functional
    kh, kw = (k, k) if isinstance(k, int) else k
    blocks = tF.unfold(torch.zeros(1, 1, *size), k, d, p, s).shape[-1]
    cols = normal(2, 3 * kh * kw, blocks)
    check(lambda a: fw.nn.functional.fold(a, size, k, d, p, s), lambda a: tF.fold(a, size, k, d, p, s),
          [cols], dtype=dtype)
    check(lambda a: fw.nn.Fold(size, k, d, p, s)(a), lambda a: torch.nn.Fold(size, k, d, p, s)(a), [cols[0]],
          dtype=dtype)
    img = normal(2, 3, *size)
    check(lambda a: fw.nn.Unfold(k, d, p, s)(a), lambda a: torch.nn.Unfold(k, d, p, s)(a), [img], dtype=dtype)


def test_fold_names_a_block_count_that_does_not_fit():
    with pytest.raises(ValueError, match="has 3x4 blocks, but the input has 10"):
        fw.nn.functional.fold(fw.randn(1, 4, 10), (4, 5), 2)
    with pytest.raises(ValueError, match="not a multiple"):
        fw.nn.functional.fold(fw.randn(1, 5, 12), (4, 5), 2)


def test_kthvalue_and_quantile():
    x = R.permutation(np.arange(30, dtype=np.float64)).reshape(5, 6) / 7.0  # distinct values
    check(*both(lambda L, a: tuple(L.kthvalue(a, 2, dim=1))), [x])
    check(*both(lambda L, a: tuple(L.kthvalue(a, 5, 0, True))), [x])
    check(*both(lambda L, a: tuple(a.kthvalue(1))), [x])
    for mode in ("linear", "lower", "higher", "midpoint", "nearest"):
        check(*both(lambda L, a, m=mode: L.quantile(a, 0.3, dim=1, interpolation=m)), [x])
        check(*both(lambda L, a, m=mode: L.quantile(a, 0.5, interpolation=m)), [x])
    qs = np.array([0.0, 0.25, 0.9, 1.0])
    check(lambda a: fw.quantile(a, fw.tensor(qs), dim=0, keepdim=True),
          lambda a: torch.quantile(a, torch.tensor(qs), dim=0, keepdim=True), [x])
    check(lambda a: fw.quantile(a, fw.tensor(qs)), lambda a: torch.quantile(a, torch.tensor(qs)), [x])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        fw.quantile(fw.randn(4), 1.5)
    with pytest.raises(ValueError, match="out of range 1..4"):
        fw.kthvalue(fw.randn(4), 5)


def test_cumprod_gradient_is_exact_at_zeros():
    x = normal(3, 6)
    x[0, 2] = 0.0  # one zero
    x[1, 1] = x[1, 4] = 0.0  # two zeros in a row
    for dtype in DTYPES:
        check(*both(lambda L, a: L.cumprod(a, 1)), [x], dtype=dtype)
        check(*both(lambda L, a: a.cumprod(dim=0)), [x], dtype=dtype)
    t = fw.tensor(x, requires_grad=True)
    assert fw.testing.gradcheck(lambda a: fw.cumprod(a, 1), (t,))
    assert fw.testing.gradgradcheck(lambda a: fw.cumprod(a, 1), (t,))


def test_cummax_and_cummin():
    x = np.array([[1.0, 3.0, 2.0, 3.0, 5.0, 0.0], [4.0, 4.0, 1.0, 0.5, 6.0, 6.0]])  # ties move the index
    for name in ("cummax", "cummin"):
        check(*both(lambda L, a, n=name: tuple(getattr(L, n)(a, 1))), [x])
        check(*both(lambda L, a, n=name: tuple(getattr(a, n)(0))), [normal(5, 3)])


def test_running_extreme_without_accumulate_matches_numpy():
    """CuPy's maximum and minimum have no ``accumulate``: the log-step scan that cummax and cummin use
    there must give NumPy's running result, NaNs included, for every length."""
    from framework.ops.extra import _running

    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 5, 8, 17, 64, 100):
        a = rng.standard_normal((3, n))
        a[0, n // 2] = np.nan
        ints = rng.integers(0, 50, (4, n))
        for op in (np.maximum, np.minimum):
            scan = lambda *xs, op=op: op(*xs)  # noqa: E731 -- a callable without .accumulate
            np.testing.assert_array_equal(_running(scan, a), op.accumulate(a, axis=-1))
            np.testing.assert_array_equal(_running(scan, ints), op.accumulate(ints, axis=-1))
