"""Complex tensors: parts, conjugation, polar form, and views as pairs of reals.

Gradients follow PyTorch's convention: for a real loss L of z = x + iy, ``z.grad`` is
dL/dx + i dL/dy (the conjugate Wirtinger derivative, times two). A holomorphic f then passes back
``g * conj(f'(z))``; a real tensor that receives a complex gradient keeps its real part (the
engine casts it, as PyTorch's does).

Operations whose backward is written for complex values say so with ``complex_grad = True``
(``framework.autograd.Function``); recording a graph through any other operation with a complex
operand raises, rather than returning a gradient that would be silently wrong.
"""

from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..autograd import Function
from ..backend import get_array_module
from ..tensor import Tensor
from .basic import Cast, _conj

__all__ = ["real", "imag", "conj", "conj_physical", "resolve_conj", "resolve_neg", "angle", "complex",
           "polar", "view_as_real", "view_as_complex", "is_complex", "sgn", "isreal", "vdot"]


def _is_c(a) -> bool:
    return getattr(a, "dtype", None) is not None and a.dtype.kind == "c"




class Real(Function):
    """The real part, a view of the complex tensor's memory (as PyTorch's ``.real``)."""

    complex_grad = True
    is_view = True

    def forward(self, x):
        return x.real

    def backward(self, g):  # dL/dx: the real part of z's gradient
        return Cast(dtype=_dt.from_numpy_dtype(g.data.dtype).to_complex().np)(g)


class Imag(Function):
    """The imaginary part, a view (PyTorch's ``.imag``)."""

    complex_grad = True
    is_view = True

    def forward(self, x):
        return x.imag

    def backward(self, g):  # z's gradient is i * dL/dy
        return MakeComplex()(g * 0.0, g)


class Conj(Function):
    complex_grad = True

    def forward(self, x):
        return get_array_module(x).conj(x)

    def backward(self, g):
        return Conj()(g)


class MakeComplex(Function):
    """real + i imag from two real tensors of one dtype (broadcast)."""

    complex_grad = True

    def forward(self, re, im):
        if re.dtype != im.dtype:
            raise TypeError(f"complex(): expected both inputs to be the same dtype, got {re.dtype} and "
                            f"{im.dtype}")
        if re.dtype.kind != "f" or re.dtype.itemsize < 4:
            raise TypeError(f"complex(): expected both inputs to be float32 or float64, got {re.dtype}")
        xp = get_array_module(re)
        out = xp.empty(np.broadcast_shapes(re.shape, im.shape), dtype=_dt._COMPLEX_OF[re.dtype])
        out.real[...] = re  # (views of the parts, in NumPy and CuPy alike)
        out.imag[...] = im
        return out

    def backward(self, g):
        from .basic import unbroadcast

        re, im = self.inputs
        return (unbroadcast(real(g), re.shape) if self.needs_input_grad[0] else None,
                unbroadcast(imag(g), im.shape) if self.needs_input_grad[1] else None)


class ViewAsReal(Function):
    """(..., ) complex -> (..., 2) real sharing its memory."""

    complex_grad = True
    is_view = True

    def forward(self, x):
        if x.dtype.kind != "c":
            raise RuntimeError(f"view_as_real is only supported for complex tensors, got {x.dtype}")
        return x.view(_dt._REAL_OF[x.dtype]).reshape(x.shape + (2,))

    def backward(self, g):
        return ViewAsComplex()(g.contiguous())


class ViewAsComplex(Function):
    """(..., 2) real -> (..., ) complex sharing its memory."""

    complex_grad = True
    is_view = True

    def forward(self, x):
        if x.dtype not in _dt._COMPLEX_OF:
            raise RuntimeError(f"view_as_complex is only supported for float32 and float64 tensors, got "
                               f"{x.dtype}")
        if x.ndim == 0 or x.shape[-1] != 2:
            raise RuntimeError(f"view_as_complex: the last dimension must have size 2, got shape "
                               f"{tuple(x.shape)}")
        if x.strides[-1] != x.itemsize or any(s % (2 * x.itemsize) for s in x.strides[:-1]):
            raise RuntimeError("view_as_complex: the last dimension must have stride 1 and the others "
                               "even strides (make the tensor contiguous first)")
        return x.view(_dt._COMPLEX_OF[x.dtype])[..., 0]

    def backward(self, g):
        return ViewAsReal()(g.contiguous())


class Angle(Function):
    """The argument atan2(imag, real); for real tensors 0 or pi (NaN kept), with a zero gradient."""

    complex_grad = True
    saves_inputs = (0,)

    def forward(self, x):
        xp = get_array_module(x)
        if x.dtype.kind == "c":
            return xp.angle(x)
        if x.dtype.kind != "f":
            x = x.astype(_dt.get_default_dtype().np)
        return xp.where(x < 0, x.dtype.type(np.pi), x * 0)  # (x * 0: NaN stays NaN)

    def backward(self, g):
        (x,) = self.saved_tensors
        if x.data.dtype.kind != "c":
            return g * 0.0
        from .basic import where

        # d angle / dx = -y / |z|^2, d angle / dy = x / |z|^2: the gradient g * i z / |z|^2, 0 at z = 0
        r2 = real(x * _conj(x))
        zero = r2 == 0
        return where(zero, 0.0, g * x * 1j / where(zero, 1.0, r2))


# ------------------------------------------------------------------------------------------ public


def real(input):
    """The real part: a view for complex tensors, the tensor itself for real ones (``torch.real``)."""
    return Real()(input) if input.data.dtype.kind == "c" else input


def imag(input):
    """The imaginary part of a complex tensor, a view (``torch.imag``)."""
    if input.data.dtype.kind != "c":
        raise RuntimeError("imag is not implemented for tensors with non-complex dtypes.")
    return Imag()(input)


def conj(input):
    """The complex conjugate (a copy here; PyTorch's lazy conjugate bit has no counterpart)."""
    return _conj(input)


conj_physical = conj


def resolve_conj(input):
    return input


def resolve_neg(input):
    return input


def angle(input):
    return Angle()(input)


def complex(real, imag):  # noqa: A001 - PyTorch's name
    """real + i imag (``torch.complex``): float32 parts give complex64, float64 complex128."""
    return MakeComplex()(real, imag)


def polar(abs, angle):  # noqa: A002 - PyTorch's names
    """abs * (cos(angle) + i sin(angle)) (``torch.polar``)."""
    from .basic import cos, sin

    return MakeComplex()(abs * cos(angle), abs * sin(angle))


def view_as_real(input):
    return ViewAsReal()(input)


def view_as_complex(input):
    return ViewAsComplex()(input)


def is_complex(input) -> bool:
    return input.data.dtype.kind == "c"


def isreal(input):
    """Elementwise: the imaginary part is zero (always true for real tensors)."""
    if input.data.dtype.kind != "c":
        return Tensor(get_array_module(input.data).ones(input.shape, dtype=bool))
    return Tensor(input.data.imag == 0)


def sgn(input):
    """z / |z| (0 at 0) for complex tensors, the sign for real ones (``torch.sgn``)."""
    if input.data.dtype.kind != "c":
        from .basic import sign

        return sign(input)
    from .basic import abs as _abs
    from .basic import where

    a = _abs(input)
    zero = a == 0
    return where(zero, 0.0, input / where(zero, 1.0, a))


def vdot(input, other):
    """sum(conj(input) * other) over two 1-D tensors (``torch.vdot``)."""
    if input.ndim != 1 or other.ndim != 1:
        raise RuntimeError(f"vdot: expected 1-D tensors, got shapes {tuple(input.shape)} and "
                           f"{tuple(other.shape)}")
    return (_conj(input) * other).sum()
