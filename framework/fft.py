"""Discrete Fourier transforms with PyTorch's ``torch.fft`` names, arguments and gradients.

    import framework as fw
    spectrum = fw.fft.rfft2(image)                       # real (..., H, W) -> complex (..., H, W//2+1)
    image2 = fw.fft.irfft2(spectrum * mask, s=image.shape[-2:])

The transforms run on NumPy's (or CuPy's) pocketfft/cuFFT; float32 stays float32 (complex64).
``n`` / ``s`` crop or zero-pad the input along each transformed dimension first; ``norm`` is
"backward" (the default: no scaling forward, 1/n inverse), "ortho" (1/sqrt(n) both ways) or
"forward" (1/n forward). Integer and bool inputs are promoted to the default float dtype, as in PyTorch.

Gradients (PyTorch's convention for complex tensors, see ``framework.ops.complexops``): every
transform is linear, and its backward is its adjoint. The adjoint of a complex transform is the
opposite transform with the opposite scaling; of ``rfft``, the inverse transform of the spectrum
zero-padded to full length, real part; of ``irfft``, ``rfft`` with the bins that stand for two
(all but the zero and Nyquist frequencies) doubled. The Hermitian transforms (``hfft``,
``ihfft``, ...) are conjugations of those two, and differentiable through them.
"""

from __future__ import annotations

import builtins

import numpy as np

from . import dtypes as _dt
from .autograd import Function
from .backend import get_array_module
from .ops.complexops import conj as _conj
from .tensor import Tensor

__all__ = ["fft", "ifft", "fft2", "ifft2", "fftn", "ifftn", "rfft", "irfft", "rfft2", "irfft2", "rfftn",
           "irfftn", "hfft", "ihfft", "hfft2", "ihfft2", "hfftn", "ihfftn", "fftshift", "ifftshift",
           "fftfreq", "rfftfreq"]

_NORMS = ("backward", "ortho", "forward")
_DUAL = {"backward": "forward", "forward": "backward", "ortho": "ortho"}


def _norm(norm, name):
    norm = "backward" if norm is None else norm
    if norm not in _NORMS:
        raise ValueError(f"{name}: invalid normalization mode {norm!r} (expected None, 'backward', 'ortho' "
                         f"or 'forward')")
    return norm


def _float_input(x: Tensor, name, complex_ok=True):
    """x with a dtype the transforms take: float32/64 (and complex64/128 where ``complex_ok``); ints and
    bools promoted to the default float, float16 refused (no half-precision transforms on the CPU)."""
    k = x.data.dtype.kind
    if k == "c":
        if not complex_ok:
            raise RuntimeError(f"{name} expects a real input tensor, but got {x.dtype}")
        return x
    if k in "biu":
        return x.to(_dt.get_default_dtype())
    if x.data.dtype == np.float16:
        raise RuntimeError(f"{name}: float16 transforms are not supported; convert to float32 first")
    return x


def _dims(x: Tensor, s, dim, name, default):
    """The transformed dimensions (normalised, distinct) and the signal size for each (None: as is).

    ``default`` is the dimensions when neither s nor dim is given (None: all of them); with s only,
    the last len(s) dimensions, as in PyTorch."""
    nd = x.ndim
    if dim is None:
        if s is not None:
            dims = list(range(nd - len(s), nd))
        elif default is None:
            dims = list(range(nd))
        else:
            dims = [d % nd if nd else d for d in default]
    else:
        dims = [dim] if isinstance(dim, int) else list(dim)
    out = []
    for d in dims:
        if not -nd <= d < nd:
            raise IndexError(f"{name}: dimension {d} out of range for a tensor of {nd} dimensions")
        out.append(d % nd)
    if len(set(out)) != len(out):
        raise RuntimeError(f"{name}: dims must be unique, got {dims}")
    if not out:
        raise RuntimeError(f"{name}: needs at least one dimension to transform")
    if s is None:
        sizes = [None] * len(out)
    else:
        sizes = [s] if isinstance(s, int) else list(s)
        if len(sizes) != len(out):
            raise RuntimeError(f"{name}: got {len(sizes)} signal sizes for {len(out)} dimensions")
        for n in sizes:
            if n is not None and n != -1 and n < 1:
                raise RuntimeError(f"{name}: invalid number of data points ({n}) specified")
        sizes = [None if n == -1 else n for n in sizes]
    return out, sizes


def _resize(x: Tensor, dim: int, n: int) -> Tensor:
    """Crop or zero-pad x to n along dim (differentiable: a slice or a concatenation)."""
    from .ops import cat, narrow
    from .tensor import zeros

    m = x.shape[dim]
    if n == m:
        return x
    if n < m:
        return narrow(x, dim, 0, n)
    shape = list(x.shape)
    shape[dim] = n - m
    return cat([x, zeros(*shape, dtype=x.dtype, device=x.device)], dim)


class _C2C(Function):
    """Complex-to-complex transform over ``axes`` (real input promoted); ``inverse`` picks the sign."""

    complex_grad = True

    def forward(self, x):
        xp = get_array_module(x)
        if x.dtype.kind != "c":
            x = x.astype(_dt._COMPLEX_OF[x.dtype])
        f = xp.fft.ifftn if self.inverse else xp.fft.fftn
        return f(x, axes=self.axes, norm=self.norm).astype(x.dtype, copy=False)

    def backward(self, g):
        return _C2C(axes=self.axes, norm=_DUAL[self.norm], inverse=not self.inverse)(g)


class _R2C(Function):
    """Real-to-complex transform (one-sided along the last of ``axes``)."""

    complex_grad = True

    def forward(self, x):
        self.n = x.shape[self.axes[-1]]
        xp = get_array_module(x)
        return xp.fft.rfftn(x, axes=self.axes, norm=self.norm).astype(_dt._COMPLEX_OF[x.dtype], copy=False)

    def backward(self, g):
        # rfftn(x) is fftn(x) cropped to the first n//2+1 bins of the last axis: its adjoint pads the
        # gradient back with zeros and applies fftn's adjoint (the engine keeps the real part)
        return _C2C(axes=self.axes, norm=_DUAL[self.norm], inverse=True)(_resize(g, self.axes[-1], self.n))


class _C2R(Function):
    """Complex (one-sided) to real, output length ``n`` along the last of ``axes``; the input already
    holds n//2+1 bins there."""

    complex_grad = True

    def forward(self, x):
        xp = get_array_module(x)
        s = [x.shape[a] for a in self.axes[:-1]] + [self.n]
        return xp.fft.irfftn(x, s=s, axes=self.axes, norm=self.norm).astype(_dt._REAL_OF[x.dtype], copy=False)

    def backward(self, g):
        # The input's bins 1 .. (n-1)//2 each stand for a pair of conjugate frequencies of the real
        # signal, so each feeds the output twice; the zero (and the Nyquist, n even) frequency once.
        gz = _R2C(axes=self.axes, norm=_DUAL[self.norm])(g)
        last = self.axes[-1]
        twice = (self.n - 1) // 2
        if twice > 0:
            from .ops import cat, narrow

            parts = [narrow(gz, last, 0, 1), narrow(gz, last, 1, twice) * 2.0]
            rest = gz.shape[last] - 1 - twice
            if rest:
                parts.append(narrow(gz, last, 1 + twice, rest))
            gz = cat(parts, last)
        return gz


# ------------------------------------------------------------------------------ the transforms


def _c2c(input, s, dim, norm, name, inverse, default):
    x = _float_input(input, name)
    dims, sizes = _dims(x, s, dim, name, default)
    for d, n in zip(dims, sizes):
        if n is not None:
            x = _resize(x, d, n)
    return _C2C(axes=tuple(dims), norm=_norm(norm, name), inverse=inverse)(x)


def _r2c(input, s, dim, norm, name, default):
    x = _float_input(input, name, complex_ok=False)
    dims, sizes = _dims(x, s, dim, name, default)
    for d, n in zip(dims, sizes):
        if n is not None:
            x = _resize(x, d, n)
    return _R2C(axes=tuple(dims), norm=_norm(norm, name))(x)


def _c2r(input, s, dim, norm, name, default):
    x = _float_input(input, name)
    if x.data.dtype.kind != "c":
        x = x.to(_dt.from_numpy_dtype(x.data.dtype).to_complex())
    dims, sizes = _dims(x, s, dim, name, default)
    for d, n in zip(dims[:-1], sizes[:-1]):
        if n is not None:
            x = _resize(x, d, n)
    last = dims[-1]
    n = sizes[-1] if sizes[-1] is not None else 2 * (x.shape[last] - 1)
    if n < 1:
        raise RuntimeError(f"{name}: invalid number of data points ({n}) specified")
    x = _resize(x, last, n // 2 + 1)
    return _C2R(axes=tuple(dims), norm=_norm(norm, name), n=n)(x)


def fft(input, n=None, dim=-1, norm=None):
    """One-dimensional discrete Fourier transform (complex output)."""
    return _c2c(input, None if n is None else [n], dim, norm, "fft", False, None)


def ifft(input, n=None, dim=-1, norm=None):
    """One-dimensional inverse discrete Fourier transform."""
    return _c2c(input, None if n is None else [n], dim, norm, "ifft", True, None)


def fft2(input, s=None, dim=(-2, -1), norm=None):
    return _c2c(input, s, dim, norm, "fft2", False, None)


def ifft2(input, s=None, dim=(-2, -1), norm=None):
    return _c2c(input, s, dim, norm, "ifft2", True, None)


def fftn(input, s=None, dim=None, norm=None):
    """N-dimensional transform over ``dim`` (default: all dimensions, or the last len(s))."""
    return _c2c(input, s, dim, norm, "fftn", False, None)


def ifftn(input, s=None, dim=None, norm=None):
    return _c2c(input, s, dim, norm, "ifftn", True, None)


def rfft(input, n=None, dim=-1, norm=None):
    """Transform of a real signal: the n//2+1 non-negative frequencies (the rest are their conjugates)."""
    return _r2c(input, None if n is None else [n], dim, norm, "rfft", None)


def irfft(input, n=None, dim=-1, norm=None):
    """Inverse of rfft: a real signal of length n (default 2*(bins-1)) from its one-sided spectrum. As
    NumPy and PyTorch, the imaginary parts of the zero (and Nyquist) bins are ignored."""
    return _c2r(input, None if n is None else [n], dim, norm, "irfft", None)


def rfft2(input, s=None, dim=(-2, -1), norm=None):
    return _r2c(input, s, dim, norm, "rfft2", None)


def irfft2(input, s=None, dim=(-2, -1), norm=None):
    return _c2r(input, s, dim, norm, "irfft2", None)


def rfftn(input, s=None, dim=None, norm=None):
    return _r2c(input, s, dim, norm, "rfftn", None)


def irfftn(input, s=None, dim=None, norm=None):
    return _c2r(input, s, dim, norm, "irfftn", None)


def hfft(input, n=None, dim=-1, norm=None):
    """Transform of a signal with Hermitian symmetry given by its first half: a real spectrum of
    length n (default 2*(len-1)). ``irfft`` of the conjugate with the opposite scaling."""
    x = _float_input(input, "hfft")
    return irfft(_conj(x), n, dim, _DUAL[_norm(norm, "hfft")])


def ihfft(input, n=None, dim=-1, norm=None):
    """Inverse of hfft: the one-sided (Hermitian) signal of a real spectrum."""
    x = _float_input(input, "ihfft", complex_ok=False)
    return _conj(rfft(x, n, dim, _DUAL[_norm(norm, "ihfft")]))


def hfft2(input, s=None, dim=(-2, -1), norm=None):
    return hfftn(input, s, dim, norm)


def ihfft2(input, s=None, dim=(-2, -1), norm=None):
    return ihfftn(input, s, dim, norm)


def hfftn(input, s=None, dim=None, norm=None):
    x = _float_input(input, "hfftn")
    return irfftn(_conj(x), s, dim, _DUAL[_norm(norm, "hfftn")])


def ihfftn(input, s=None, dim=None, norm=None):
    x = _float_input(input, "ihfftn", complex_ok=False)
    return _conj(rfftn(x, s, dim, _DUAL[_norm(norm, "ihfftn")]))


# ------------------------------------------------------------------------------ helpers


def _shift(input, dim, sign):
    from .ops import roll

    dims = list(range(input.ndim)) if dim is None else ([dim] if isinstance(dim, int) else list(dim))
    if not dims:
        return input
    shifts = [sign * (input.shape[d] // 2) for d in dims]
    return roll(input, shifts, dims)


def fftshift(input, dim=None):
    """Move the zero frequency to the centre (along ``dim``, default all dimensions)."""
    return _shift(input, dim, 1)


def ifftshift(input, dim=None):
    """The inverse of fftshift (they differ for odd lengths)."""
    return _shift(input, dim, -1)


def _freq_tensor(values, dtype, device, requires_grad):
    from .tensor import tensor

    dt = dtype if dtype is not None else _dt.get_default_dtype()
    return tensor(values, dtype=dt, device=device, requires_grad=requires_grad)


def fftfreq(n, d=1.0, *, dtype=None, device=None, requires_grad=False):
    """The sample frequencies of an n-point transform with sample spacing d: [0, 1, ..., -1] / (d n)."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, (bool, np.bool_)) or n < 0:
        raise RuntimeError(f"fftfreq: n must be a non-negative integer, got {n!r}")
    return _freq_tensor(np.fft.fftfreq(builtins.int(n), d), dtype, device, requires_grad)


def rfftfreq(n, d=1.0, *, dtype=None, device=None, requires_grad=False):
    """The non-negative sample frequencies of rfft: [0, 1, ..., n//2] / (d n)."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, (bool, np.bool_)) or n < 0:
        raise RuntimeError(f"rfftfreq: n must be a non-negative integer, got {n!r}")
    return _freq_tensor(np.fft.rfftfreq(builtins.int(n), d), dtype, device, requires_grad)
