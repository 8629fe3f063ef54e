"""Special functions as differentiable element-wise operations: ``lgamma``, ``digamma``, ``polygamma``,
``erfinv`` (as ``torch.*``), and ``broadcast_shapes``.

Each forward runs SciPy's function (``cupyx.scipy`` on CUDA); each backward is written with differentiable
operations (d/dx psi^(n) = psi^(n+1)), so gradients of gradients work."""

from __future__ import annotations

import math

import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from ..tensor import Tensor
from .basic import _float_in, exp

__all__ = ["lgamma", "digamma", "polygamma", "erfinv", "broadcast_shapes"]


def _special(x):
    if get_array_module(x).__name__ == "cupy":
        import cupyx.scipy.special as sp
    else:
        import scipy.special as sp
    return sp


class _Polygamma(Function):
    """psi^(n)(x) for n >= 0 (n = -1: lgamma); d/dx psi^(n) = psi^(n+1)."""

    saves_inputs = (0,)

    def forward(self, x):
        sp = _special(x)
        # (the order as an array: CuPy's polygamma calls cupy.where(n == 0, ...), which needs one)
        n = get_array_module(x).asarray(self.n)
        out = sp.gammaln(x) if self.n < 0 else (sp.digamma(x) if self.n == 0 else sp.polygamma(n, x))
        return out.astype(x.dtype, copy=False)

    def backward(self, g):
        (x,) = self.saved_tensors
        return g * _Polygamma(n=self.n + 1)(x)


def lgamma(input: Tensor) -> Tensor:
    """log |Gamma(x)|, element-wise, as ``torch.lgamma``."""
    return _Polygamma(n=-1)(_float_in(input))


def digamma(input: Tensor) -> Tensor:
    """d/dx lgamma(x), element-wise, as ``torch.digamma``."""
    return _Polygamma(n=0)(_float_in(input))


def polygamma(n: int, input: Tensor) -> Tensor:
    """The n-th derivative of digamma, element-wise, as ``torch.polygamma``."""
    return _Polygamma(n=int(n))(_float_in(input))


class _Erfinv(Function):
    """The inverse error function; d/dx erfinv(x) = sqrt(pi)/2 exp(erfinv(x)^2)."""

    saves_output = True

    def forward(self, x):
        return _special(x).erfinv(x).astype(x.dtype, copy=False)

    def backward(self, g):
        (y,) = self.saved_tensors
        return g * (0.5 * math.sqrt(math.pi)) * exp(y * y)


def erfinv(input: Tensor) -> Tensor:
    """The inverse of erf on (-1, 1), element-wise, as ``torch.erfinv``."""
    return _Erfinv()(_float_in(input))


def broadcast_shapes(*shapes) -> tuple:
    """The shape that all ``shapes`` broadcast to, as ``torch.broadcast_shapes``."""
    return tuple(np.broadcast_shapes(*(tuple(s) for s in shapes)))
