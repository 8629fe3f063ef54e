"""``fw.linalg``: the part of ``torch.linalg`` a model usually needs, differentiable (gradients of
gradients too): norms, inverse, determinants, linear solves, cross products, chained products."""

from __future__ import annotations

import builtins

import numpy as np

from .autograd import Function
from .backend import get_array_module
from .ops.basic import _float_in
from .ops.compose import cross as _cross
from .ops.extra import det, inverse, tril
from .ops.reduce import amax, amin, sum
from .ops.reduce import norm as _norm
from .ops.shape import matmul, transpose
from .ops.specfun import broadcast_shapes
from .tensor import Tensor

__all__ = ["vector_norm", "matrix_norm", "norm", "inv", "det", "slogdet", "solve", "cross", "multi_dot",
           "cholesky", "solve_triangular"]

inv = inverse


def vector_norm(x, ord=2, dim=None, keepdim=False):
    """The vector ``ord``-norm over ``dim`` (all elements when None), as ``torch.linalg.vector_norm``."""
    return _norm(_float_in(x), ord, dim, keepdim)


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False):
    """Frobenius ('fro'), 1, -1, inf or -inf matrix norms over ``dim``, as ``torch.linalg.matrix_norm``
    (the nuclear and spectral norms need an SVD, which this framework does not have)."""
    A = _float_in(A)
    d0, d1 = (d % A.ndim for d in dim)
    if ord == "fro":
        return _norm(A, 2, (d0, d1), keepdim)
    if ord in (1, -1, float("inf"), -float("inf")):
        # 1: the largest column sum of |A| (over rows d0, then the max over columns d1); inf: rows
        over, pick = (d0, d1) if ord in (1, -1) else (d1, d0)
        s = sum(A.abs(), over, keepdim=True)
        r = (amax if ord in (1, float("inf")) else amin)(s, pick, keepdim=True)
        return r if keepdim else r.squeeze(builtins.max(d0, d1)).squeeze(builtins.min(d0, d1))
    raise ValueError(f"matrix_norm(): ord must be 'fro', 1, -1, inf or -inf, got {ord!r}")


def norm(A, ord=None, dim=None, keepdim=False):
    """``torch.linalg.norm``: without ord, the 2-norm of the flattened input (or over ``dim``); with ord, a
    vector norm for one dim or a 1-D input, a matrix norm for two dims or a 2-D input."""
    if ord is None:
        return vector_norm(A, 2, dim, keepdim)
    if (dim is not None and not isinstance(dim, int) and len(dim) == 2) or (dim is None and A.ndim == 2):
        return matrix_norm(A, ord, (-2, -1) if dim is None else dim, keepdim)
    return vector_norm(A, ord, dim, keepdim)


class _Slogdet(Function):
    """log |det A| (the sign is returned apart, without gradient); d/dA = A^-T."""

    saves_inputs = (0,)

    def forward(self, a):
        xp = get_array_module(a)
        sign, logabs = xp.linalg.slogdet(a)
        self.sign = sign
        return logabs

    def backward(self, g):
        (a,) = self.saved_tensors
        return g.reshape(tuple(g.shape) + (1, 1)) * transpose(inverse(a), -1, -2)


def slogdet(A):
    """(sign, log |det A|) of each square matrix, as ``torch.linalg.slogdet``."""
    from collections import namedtuple

    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"slogdet(): expected square matrices in the last two dimensions, got "
                         f"{tuple(A.shape)}")
    f = _Slogdet()
    logabs = f(_float_in(A))
    return namedtuple("slogdet", ["sign", "logabsdet"])(Tensor(f.sign), logabs)


class _Solve(Function):
    """X = A^-1 B; gB = A^-T g, gA = -gB X^T, both written with solve itself (differentiable again)."""

    saves_output = True

    def forward(self, a, b):
        xp = get_array_module(a)
        return xp.linalg.solve(a, b)

    def backward(self, g):
        a, b = self.inputs
        (x,) = self.saved_tensors
        gb = _Solve()(transpose(a, -1, -2), g)
        ga = -matmul(gb, transpose(x, -1, -2)) if self.needs_input_grad[0] else None
        return ga, (gb if self.needs_input_grad[1] else None)


def solve(A, B, *, left=True):
    """The X with A X = B (``left=False``: X A = B), as ``torch.linalg.solve``; B a matrix (or a batch of
    them) or a vector. A singular A is an error naming it."""
    A, B = _float_in(A), _float_in(B)
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"solve(): A must be square matrices, got shape {tuple(A.shape)}")
    if not left:
        return transpose(solve(transpose(A, -1, -2), transpose(B, -1, -2)), -1, -2)
    vector = B.ndim == A.ndim - 1
    b = B.unsqueeze(-1) if vector else B
    if b.shape[-2] != A.shape[-1]:
        raise ValueError(f"solve(): A of shape {tuple(A.shape)} cannot solve B of shape {tuple(B.shape)}")
    try:
        x = _Solve()(A, b)
    except np.linalg.LinAlgError as e:
        raise RuntimeError(f"solve(): A of shape {tuple(A.shape)} is singular ({e})") from None
    return x.squeeze(-1) if vector else x


def cross(input, other, *, dim=-1):
    """The cross product of 3-vectors along ``dim`` (default the last), as ``torch.linalg.cross``."""
    return _cross(input, other, dim=dim)


def multi_dot(tensors):
    """The product of a chain of matrices (a first 1-D tensor a row, a last one a column), as
    ``torch.linalg.multi_dot``; multiplied in the cheapest order."""
    ts = list(tensors)
    if len(ts) < 2:
        raise ValueError("multi_dot(): expected at least two tensors")
    first_vec, last_vec = ts[0].ndim == 1, ts[-1].ndim == 1
    if first_vec:
        ts[0] = ts[0].unsqueeze(0)
    if last_vec:
        ts[-1] = ts[-1].unsqueeze(-1)
    dims = [ts[0].shape[0]] + [t.shape[1] for t in ts]
    n = len(ts)
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(2, n + 1):  # the matrix-chain order (dynamic programming)
        for i in range(n - length + 1):
            j = i + length - 1
            cost[i][j] = None
            for k in range(i, j):
                c = cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1]
                if cost[i][j] is None or c < cost[i][j]:
                    cost[i][j], split[i][j] = c, k

    def product(i, j):
        return ts[i] if i == j else matmul(product(i, split[i][j]), product(split[i][j] + 1, j))

    out = product(0, n - 1)
    if first_vec:
        out = out.squeeze(0)
    if last_vec:
        out = out.squeeze(-1)
    return out


# ------------------------------------------------------------ Cholesky and triangular solves

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
    from .tensor import eye

    return M * eye(M.shape[-1], dtype=M.dtype, device=M.device)


def cholesky(A: Tensor) -> Tensor:
    """The lower Cholesky factor of symmetric positive-definite matrices, as ``torch.linalg.cholesky``."""
    A = _float_in(A)
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"cholesky(): expected square matrices, got shape {tuple(A.shape)}")
    return _Cholesky()(A)
