"""Complex tensors (framework/ops/complexops.py) and fw.fft against PyTorch: values, dtypes, gradients
under PyTorch's convention (z.grad = dL/dx + i dL/dy), finite differences, and the errors.

Every transform runs in each normalisation, with signal sizes that crop and that pad, over one and
several dimensions; each gradient is that of a random real projection of the output, so that a
missing conjugate, a wrong scale or a wrong doubling of the one-sided bins shows."""

import numpy as np
import pytest

import framework as fw

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for complex tensors and transforms")

RNG = np.random.default_rng(11)


def _c(*shape):
    return RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)


def _np(t):
    return t.detach().resolve_conj().numpy() if hasattr(t, "resolve_conj") else t.detach().numpy()


def _projection(shape, complex_out):
    w = RNG.standard_normal(shape) + (1j * RNG.standard_normal(shape) if complex_out else 0)
    return w


def _loss(lib, out, w):
    """A real number from the output: Re(sum(w * out)) (every part of a complex output matters)."""
    prod = out * lib.tensor(w)
    return lib.real(prod).sum() if prod.is_complex() else prod.sum()


def _compare(fn_fw, fn_t, *arrays, tol=1e-11, gtol=1e-11):
    fa = [fw.tensor(a, requires_grad=True) for a in arrays]
    ta = [torch.tensor(a, requires_grad=True) for a in arrays]
    fo, to = fn_fw(*fa), fn_t(*ta)
    assert tuple(fo.shape) == tuple(to.shape)
    assert fo.dtype.np == _np(to).dtype, (fo.dtype, to.dtype)
    np.testing.assert_allclose(_np(fo), _np(to), rtol=tol, atol=tol)
    w = _projection(tuple(to.shape), to.is_complex())
    _loss(fw, fo, w).backward()
    _loss(torch, to, w).backward()
    for f, t in zip(fa, ta):
        if t.grad is None:  # (an operand the function does not use)
            assert f.grad is None
            continue
        assert f.grad.dtype.np == _np(t.grad).dtype
        np.testing.assert_allclose(f.grad.numpy(), _np(t.grad), rtol=gtol, atol=gtol)
    return fo


# ------------------------------------------------------------------------------------------ fft

X = RNG.standard_normal((3, 6, 5))
Z = _c(3, 6, 5)

CASES = [
    ("fft", Z, {}),
    ("fft", X, {"n": 8}),
    ("fft", Z, {"n": 3, "dim": 1}),
    ("ifft", Z, {}),
    ("ifft", X, {"n": 7, "dim": 0}),
    ("fft2", Z, {}),
    ("fft2", X, {"s": (4, 7)}),
    ("ifft2", Z, {"dim": (0, 2)}),
    ("fftn", Z, {}),
    ("fftn", X, {"s": (2, 8), "dim": (2, 0)}),
    ("ifftn", Z, {"s": (5, 3)}),
    ("rfft", X, {}),
    ("rfft", X, {"n": 7, "dim": 1}),
    ("rfft", X, {"n": 4}),
    ("rfft2", X, {}),
    ("rfftn", X, {"s": (5, 4)}),
    ("rfftn", X, {}),
    ("irfft", Z, {}),
    ("irfft", Z, {"n": 9}),
    ("irfft", Z, {"n": 7, "dim": 1}),
    ("irfft", Z, {"n": 3}),
    ("irfft2", Z, {}),
    ("irfftn", Z, {"s": (4, 6)}),
    ("irfftn", Z, {"s": (3, 5, 7)}),
    ("hfft", Z, {}),
    ("hfft", Z, {"n": 7}),
    ("ihfft", X, {}),
    ("ihfft", X, {"n": 4, "dim": 1}),
    ("hfft2", Z, {}),
    ("ihfft2", X, {}),
    ("hfftn", Z, {"s": (4, 5)}),
    ("ihfftn", X, {}),
]


@pytest.mark.parametrize("norm", [None, "backward", "ortho", "forward"])
@pytest.mark.parametrize("name,data,kw", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_transform_values_and_gradients(name, data, kw, norm):
    _compare(
        lambda x: getattr(fw.fft, name)(x, norm=norm, **kw),
        lambda x: getattr(torch.fft, name)(x, norm=norm, **kw),
        data,
    )


@pytest.mark.parametrize(
    "name,data",
    [
        ("fft", X.astype(np.float32)),
        ("rfft2", X.astype(np.float32)),
        ("irfft", Z.astype(np.complex64)),
        ("ifftn", Z.astype(np.complex64)),
    ],
)
def test_single_precision_stays_single(name, data):
    _compare(
        lambda x: getattr(fw.fft, name)(x), lambda x: getattr(torch.fft, name)(x), data, tol=2e-5, gtol=2e-5
    )


def test_integer_input_is_promoted_to_the_default_float():
    out = fw.fft.fft(fw.arange(6))
    assert out.dtype == fw.complex64
    np.testing.assert_allclose(out.numpy(), torch.fft.fft(torch.arange(6)).numpy(), atol=1e-5)
    assert fw.fft.rfft(fw.tensor([1, 0, 0, 0])).dtype == fw.complex64


def test_round_trips_and_parseval():
    x = fw.tensor(X)
    np.testing.assert_allclose(fw.fft.irfftn(fw.fft.rfftn(x), s=X.shape).numpy(), X, atol=1e-12)
    np.testing.assert_allclose(fw.fft.ifft2(fw.fft.fft2(fw.tensor(Z))).numpy(), Z, atol=1e-12)
    # odd lengths need n: 2 * (bins - 1) is even
    x5 = fw.tensor(X[..., :5])
    np.testing.assert_allclose(fw.fft.irfft(fw.fft.rfft(x5), n=5).numpy(), X[..., :5], atol=1e-12)
    spec = fw.fft.fft(fw.tensor(Z), norm="ortho")
    np.testing.assert_allclose((fw.abs(spec) ** 2).sum().item(), (np.abs(Z) ** 2).sum(), rtol=1e-12)


def test_gradient_matches_finite_differences():
    """Independent of PyTorch: L(z + eps d) - L(z - eps d) = 2 eps Re(sum(conj(grad) d)) for a
    real loss, in PyTorch's convention grad = dL/dx + i dL/dy; through irfft's doubled bins."""
    z0 = _c(2, 5)
    w = RNG.standard_normal((2, 8))

    def loss(a):
        return (fw.fft.irfft(fw.tensor(a), n=8) * fw.tensor(w)).sum().pow(2)

    z = fw.tensor(z0, requires_grad=True)
    (fw.fft.irfft(z, n=8) * fw.tensor(w)).sum().pow(2).backward()
    g = z.grad.numpy()
    eps = 1e-6
    for _ in range(4):
        d = _c(2, 5)
        fd = (loss(z0 + eps * d).item() - loss(z0 - eps * d).item()) / (2 * eps)
        assert fd == pytest.approx(np.real(np.sum(np.conj(g) * d)), rel=1e-6, abs=1e-8)


def test_real_input_gets_a_real_gradient():
    x = fw.tensor(X, requires_grad=True)
    fw.abs(fw.fft.fft(x, dim=1)).sum().backward()
    t = torch.tensor(X, requires_grad=True)
    torch.abs(torch.fft.fft(t, dim=1)).sum().backward()
    assert x.grad.dtype == fw.float64
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), atol=1e-10)


@pytest.mark.parametrize("fn", ["fftshift", "ifftshift"])
@pytest.mark.parametrize("dim", [None, 1, -1, (0, 2)])
def test_shifts(fn, dim):
    _compare(lambda x: getattr(fw.fft, fn)(x, dim=dim), lambda x: getattr(torch.fft, fn)(x, dim=dim), Z)


def test_frequencies():
    for n, d in [(1, 1.0), (6, 0.5), (7, 2.0)]:
        np.testing.assert_allclose(fw.fft.fftfreq(n, d).numpy(), torch.fft.fftfreq(n, d).numpy())
        np.testing.assert_allclose(fw.fft.rfftfreq(n, d).numpy(), torch.fft.rfftfreq(n, d).numpy())
    assert fw.fft.fftfreq(4).dtype == fw.float32
    assert fw.fft.rfftfreq(4, dtype=fw.float64).dtype == fw.float64
    with pytest.raises(RuntimeError, match="non-negative integer"):
        fw.fft.fftfreq(-1)


def test_transform_errors():
    with pytest.raises(ValueError, match="normalization mode 'bogus'"):
        fw.fft.fft(fw.tensor(X), norm="bogus")
    with pytest.raises(RuntimeError, match="float16"):
        fw.fft.fft(fw.ones(4, dtype=fw.float16))
    with pytest.raises(RuntimeError, match="rfft expects a real input"):
        fw.fft.rfft(fw.tensor(Z))
    with pytest.raises(RuntimeError, match="dims must be unique"):
        fw.fft.fftn(fw.tensor(X), dim=(0, -3))
    with pytest.raises(IndexError, match="dimension 3 out of range"):
        fw.fft.fft(fw.tensor(X), dim=3)
    with pytest.raises(RuntimeError, match="invalid number of data points"):
        fw.fft.fft(fw.tensor(X), n=0)
    with pytest.raises(RuntimeError, match="2 signal sizes for 1 dimensions"):
        fw.fft.fftn(fw.tensor(X), s=(2, 3), dim=1)


# ------------------------------------------------------------------------------ complex tensors

A, B, M = _c(3, 4), _c(3, 4), _c(4, 2)


def _written(t, key, value):
    t[key] = value
    return t


@pytest.mark.parametrize(
    "fn",
    [
        lambda L, a, b, m: L.matmul(a, m),
        lambda L, a, b, m: a * b + a / (b + 3),
        lambda L, a, b, m: L.exp(a) * L.log(b),
        lambda L, a, b, m: L.sqrt(a) - L.tanh(b) * L.sin(a) + L.cos(b),
        lambda L, a, b, m: a**2.5 + a**3 + 2.0**b,
        lambda L, a, b, m: L.abs(a) * L.angle(b),
        lambda L, a, b, m: L.real(a) * L.imag(b) + L.conj(a),
        lambda L, a, b, m: L.view_as_real(a * b),
        lambda L, a, b, m: L.view_as_complex(L.stack([L.real(a), L.imag(b)], -1)) * a,
        lambda L, a, b, m: L.sgn(a) + L.vdot(a.reshape(-1), b.reshape(-1)),
        lambda L, a, b, m: (a.sum(0) * b.mean(1, keepdim=True)) @ m,
        lambda L, a, b, m: L.cat([a, b], 0)[1:4].transpose(0, 1).reshape(-1).flip(0),
        lambda L, a, b, m: a.mH @ b,
        lambda L, a, b, m: L.einsum("ij,kj,jl->ikl", a, b, m),
        lambda L, a, b, m: L.linalg.norm(a * b, dim=1) + L.norm(a, p=3) + L.linalg.vector_norm(b, ord=1),
        lambda L, a, b, m: _written(a.clone(), (0, slice(1, 3)), b[1, :2] * 2),
        lambda L, a, b, m: L.cumsum(L.nn.functional.pad(a, (1, 2)), 1) + L.roll(b, 1, 0).sum(),
    ],
    ids=[
        "matmul",
        "arith",
        "exp-log",
        "trig-sqrt",
        "pow",
        "abs-angle",
        "parts",
        "view-as-real",
        "view-as-complex",
        "sgn-vdot",
        "reductions",
        "shape-ops",
        "mH",
        "einsum",
        "norms",
        "setitem",
        "pad-cumsum-roll",
    ],
)
def test_complex_ops_values_and_gradients(fn):
    _compare(lambda a, b, m: fn(fw, a, b, m), lambda a, b, m: fn(torch, a, b, m), A, B, M)


def test_mixed_real_and_complex():
    """A real operand of a complex product gets a real gradient (the real part), as in PyTorch."""
    x = RNG.standard_normal((3, 4))
    _compare(lambda r, a: (r * a + r) @ fw.tensor(M), lambda r, a: (r * a + r) @ torch.tensor(M), x, A)
    _compare(
        lambda re, im: fw.complex(re, im) ** 2, lambda re, im: torch.complex(re, im) ** 2, x, x[::-1].copy()
    )
    _compare(lambda r, th: fw.polar(r, th), lambda r, th: torch.polar(r, th), np.abs(x), x)
    _compare(
        lambda r: fw.angle(r) + r.to(fw.complex128) * 1j,
        lambda r: torch.angle(r) + r.to(torch.complex128) * 1j,
        x,
    )


def test_gradients_of_gradients_through_complex_ops():
    for lib in (fw, torch):
        z = lib.tensor(A, requires_grad=True)
        loss = lib.abs(lib.exp(z) * z).sum()
        (g,) = lib.autograd.grad(loss, z, create_graph=True)
        lib.real(g * lib.conj(g)).sum().backward()
        if lib is fw:
            ours = z.grad.numpy()
        else:
            np.testing.assert_allclose(ours, _np(z.grad), rtol=1e-10, atol=1e-10)


def test_dtypes_and_promotion():
    assert fw.tensor([1 + 2j]).dtype == fw.complex64 == fw.cfloat
    assert fw.tensor(np.array([1j])).dtype == fw.complex128 == fw.cdouble
    assert (fw.ones(2) * 1j).dtype == fw.complex64
    assert (fw.ones(2, dtype=fw.float64) * 1j).dtype == fw.complex128
    assert (fw.arange(3) * 1j).dtype == fw.complex64
    assert (fw.ones(2, dtype=fw.float64) + fw.tensor([1j])).dtype == fw.complex128
    assert (fw.tensor([1j]) + 2.5).dtype == fw.complex64
    assert (fw.tensor([1j]) * fw.arange(1)).dtype == fw.complex64
    z = fw.tensor([3 + 4j])
    assert z.is_complex() and not z.is_floating_point() and z.abs().dtype == fw.float32
    assert z.abs().item() == 5.0 and z.item() == 3 + 4j
    assert fw.complex64.to_real() == fw.float32 and fw.float64.to_complex() == fw.complex128
    assert repr(fw.tensor([1 + 2j])) == "tensor([1.+2.j])"
    assert fw.isreal(fw.tensor([1 + 0j, 1j])).tolist() == [True, False]


def test_parts_are_views():
    z = fw.tensor(A.copy())
    z.real.mul_(0)  # as PyTorch: .real and .imag share the complex tensor's memory
    assert np.all(z.numpy().real == 0)
    r = fw.view_as_real(z)
    r[0, 0, 1] = 5.0
    assert z[0, 0].item().imag == 5.0


def test_unaudited_operation_refuses_complex_input():
    """An operation not written for complex values refuses them, with or without a graph, rather
    than give wrong values (a real-only formula) or a gradient missing its conjugate."""
    for grad in (True, False):
        z = fw.tensor(A, requires_grad=grad)
        with pytest.raises(TypeError, match="Sigmoid: complex tensors are not supported"):
            fw.sigmoid(z)
    with pytest.raises(TypeError, match="Relu: complex tensors"):
        fw.relu(fw.tensor(A))


def test_complex_errors():
    with pytest.raises(RuntimeError, match="implicitly created only for real scalar outputs"):
        fw.tensor(A, requires_grad=True).sum().backward()
    with pytest.raises(RuntimeError, match="imag is not implemented for tensors with non-complex"):
        fw.imag(fw.ones(2))
    with pytest.raises(RuntimeError, match="last dimension must have size 2"):
        fw.view_as_complex(fw.ones(3, 3))
    with pytest.raises(RuntimeError, match="only supported for complex tensors"):
        fw.view_as_real(fw.ones(3))
    with pytest.raises(TypeError, match="same dtype"):
        fw.complex(fw.ones(2), fw.ones(2, dtype=fw.float64))
    with pytest.raises(TypeError, match="view_as_real"):
        fw.save({"z": fw.tensor([1j])}, "unused.safetensors")


def test_complex_creation():
    assert fw.full((2,), 1 + 1j).dtype == fw.complex64 and torch.full((2,), 1 + 1j).dtype == torch.complex64
    assert fw.zeros(3, dtype=fw.cfloat).dtype == fw.complex64
    fw.manual_seed(0)
    z = fw.randn(100_000, dtype=fw.complex64)
    assert z.dtype == fw.complex64
    # PyTorch's complex normal: E|z|^2 = 1, the parts independent with variance 1/2 each
    assert (fw.abs(z) ** 2).mean().item() == pytest.approx(1.0, abs=0.02)
    assert z.real.std().item() == pytest.approx(np.sqrt(0.5), abs=0.01)
    assert abs(np.corrcoef(z.real.numpy(), z.imag.numpy())[0, 1]) < 0.02
    u = fw.rand(50_000, dtype=fw.complex128)
    assert u.real.min().item() >= 0 and u.imag.max().item() < 1
    assert u.imag.mean().item() == pytest.approx(0.5, abs=0.01)
    assert fw.randn_like(z[:4]).dtype == fw.complex64
