"""Differentiable special functions and triangular linear algebra the distributions need and the core
framework lacks: lgamma, digamma, polygamma, erfinv, cholesky and triangular solves.

Each is a Function whose forward runs on arrays (SciPy on the CPU, ``cupyx.scipy`` on CUDA) and whose
backward is written with differentiable operations, so gradients of gradients work."""

from __future__ import annotations

import math

from ..autograd import Function
from ..backend import get_array_module
from ..ops.basic import _float_in, exp
from ..ops.extra import tril
from ..ops.shape import matmul, transpose
from ..tensor import Tensor

__all__ = ["lgamma", "digamma", "polygamma", "erfinv", "cholesky", "solve_triangular", "broadcast_shapes"]


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
        out = sp.gammaln(x) if self.n < 0 else (sp.digamma(x) if self.n == 0 else sp.polygamma(self.n, x))
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


def _mT(x):
    return transpose(x, -1, -2)


class _SolveTriangular(Function):
    """X = A^-1 B for triangular A (lower, or upper) with equal batch shapes.

    Backward: gB = A^-T g (a triangular solve of the other kind), gA = -gB X^T restricted to A's
    triangle, since only that triangle is an input."""

    saves_output = True

    def forward(self, a, b):
        xp = get_array_module(a)
        # A general batched solve of the triangle: SciPy's and CuPy's triangular solvers do not batch.
        tri = xp.tril(a) if not self.upper else xp.triu(a)
        return xp.linalg.solve(tri, b)

    def backward(self, g):
        a, b = self.inputs
        (x,) = self.saved_tensors
        gb = _SolveTriangular(upper=not self.upper)(_mT(a), g)
        ga = None
        if self.needs_input_grad[0]:
            full = -matmul(gb, _mT(x))
            ga = tril(full) if not self.upper else _mT(tril(_mT(full)))
        return ga, (gb if self.needs_input_grad[1] else None)


def broadcast_shapes(*shapes) -> tuple:
    """The shape that all ``shapes`` broadcast to, as ``torch.broadcast_shapes``."""
    import numpy as np

    return tuple(np.broadcast_shapes(*(tuple(s) for s in shapes)))


def solve_triangular(A: Tensor, B: Tensor, *, upper: bool, left: bool = True) -> Tensor:
    """The X with A X = B for a triangular A (only its ``upper`` or lower triangle is read), as
    ``torch.linalg.solve_triangular``; batch dimensions broadcast."""
    A, B = _float_in(A), _float_in(B)
    if not left:
        return _mT(solve_triangular(_mT(A), _mT(B), upper=not upper))
    batch = broadcast_shapes(A.shape[:-2], B.shape[:-2])
    A = A.expand(*batch, *A.shape[-2:])
    B = B.expand(*batch, *B.shape[-2:])
    return _SolveTriangular(upper=upper)(A, B)


class _Cholesky(Function):
    """L with A = L L^T. Backward (Murray 2016, "Differentiation of the Cholesky decomposition"):
    P = Phi(L^T gL), with Phi the lower triangle and a halved diagonal; S = L^-T P L^-1;
    gA = (S + S^T) / 2."""

    saves_output = True

    def forward(self, a):
        xp = get_array_module(a)
        try:
            return xp.linalg.cholesky(a)
        except Exception as e:  # NumPy raises LinAlgError; CuPy may too
            raise ValueError(f"cholesky(): the input of shape {tuple(a.shape)} is not positive-definite "
                             f"({e})") from None

    def backward(self, g):
        (L,) = self.saved_tensors
        P = tril(matmul(_mT(L), g))
        P = P - 0.5 * _diag_part(P)
        Y = solve_triangular(_mT(L), P, upper=True)  # L^-T P
        S = _mT(solve_triangular(_mT(L), _mT(Y), upper=True))  # (L^-T Y^T)^T = Y L^-1
        return 0.5 * (S + _mT(S))


def _diag_part(M):
    """M with everything off the diagonal zeroed (differentiable)."""
    from ..tensor import eye

    return M * eye(M.shape[-1], dtype=M.dtype, device=M.device)


def cholesky(A: Tensor) -> Tensor:
    """The lower Cholesky factor of symmetric positive-definite matrices, as ``torch.linalg.cholesky``."""
    A = _float_in(A)
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"cholesky(): expected square matrices, got shape {tuple(A.shape)}")
    return _Cholesky()(A)
