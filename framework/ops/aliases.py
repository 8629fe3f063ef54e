"""The rest of ``torch``'s top-level names that PyTorch users reach for: NumPy-style aliases (``multiply``,
``greater``, ``arcsinh``...), the inverse hyperbolic functions and ``tan``, ``fmax`` / ``fmin``, ``isposinf``
/ ``isneginf``, ``dist``, ``nanquantile``, ``msort``, ``rsub``, ``mvlgamma``, the older linear-algebra
entry points (``cholesky``, ``qr``, ``svd`` with its V, ``pinverse``) and the layer functions PyTorch also
exposes at the top level (``conv2d``, ``selu``, ``pdist``...). Each is the framework's own operation, or
composed of them, so gradients follow."""

from __future__ import annotations

import math

import numpy as np

from ..tensor import Tensor
from .basic import abs, div, eq, ge, gt, isnan, le, lt, mul, ne, neg, sqrt, sub, where  # noqa: A004
from .extra import _unary, acos, asin, atan, atan2, trunc

__all__ = ["absolute", "multiply", "divide", "subtract", "negative", "greater", "greater_equal", "less",
           "less_equal", "not_equal", "arcsin", "arccos", "arctan", "arctan2", "fix", "tan", "asinh", "acosh",
           "atanh", "arcsinh", "arccosh", "arctanh", "erfc", "fmax", "fmin", "isposinf", "isneginf", "dist",
           "nanquantile", "msort", "rsub", "mvlgamma", "cholesky", "qr", "svd", "pinverse", "vmap",
           "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "selu",
           "celu", "prelu", "threshold", "hardshrink", "rrelu", "pdist", "bilinear", "cosine_similarity",
           "pairwise_distance", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "bitwise_left_shift",
           "bitwise_right_shift", "cholesky_solve", "cholesky_inverse", "matrix_exp", "matrix_power",
           "narrow_copy", "isreal"]

absolute, multiply, divide, subtract, negative = abs, mul, div, sub, neg
greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne
arcsin, arccos, arctan, arctan2, fix = asin, acos, atan, atan2, trunc

tan = _unary("tan", lambda xp, x: xp.tan(x), lambda x, y: 1 + y * y)
asinh = _unary("asinh", lambda xp, x: xp.arcsinh(x), lambda x, y: 1 / sqrt(x * x + 1))
acosh = _unary("acosh", lambda xp, x: xp.arccosh(x), lambda x, y: 1 / sqrt(x * x - 1))
atanh = _unary("atanh", lambda xp, x: xp.arctanh(x), lambda x, y: 1 / (1 - x * x))
arcsinh, arccosh, arctanh = asinh, acosh, atanh


def erfc(input):
    """1 - erf(input), accurate in the tail, as ``torch.erfc``."""
    from ..special import erfc as _erfc

    return _erfc(input)


def _as_tensor_like(other, ref: Tensor) -> Tensor:
    return other if isinstance(other, Tensor) else Tensor(np.asarray(other, dtype=ref.data.dtype))


def fmax(input: Tensor, other) -> Tensor:
    """Element-wise maximum that ignores NaN (NaN only where both are), as ``torch.fmax``; the gradient goes
    to ``input`` on ties, as PyTorch's."""
    other = _as_tensor_like(other, input)
    return where(ge(input, other) | isnan(other), input, other)


def fmin(input: Tensor, other) -> Tensor:
    """Element-wise minimum that ignores NaN, as ``torch.fmin``."""
    other = _as_tensor_like(other, input)
    return where(le(input, other) | isnan(other), input, other)


def isposinf(input: Tensor) -> Tensor:
    """Where ``input`` is +inf, as ``torch.isposinf``."""
    return eq(input, math.inf) if input.is_floating_point() else ne(input, input)


def isneginf(input: Tensor) -> Tensor:
    """Where ``input`` is -inf, as ``torch.isneginf``."""
    return eq(input, -math.inf) if input.is_floating_point() else ne(input, input)


def dist(input: Tensor, other, p: float = 2) -> Tensor:
    """The p-norm of ``input - other`` (broadcast), as ``torch.dist``."""
    from ..linalg import vector_norm

    return vector_norm(input - other, p)


def nanquantile(input: Tensor, q, dim=None, keepdim: bool = False, *, interpolation: str = "linear"):
    """quantile over the values that are not NaN (NaN where a slice has none), as ``torch.nanquantile``.
    Differentiable in the same way as ``quantile``."""
    from .extra import quantile
    from .shape import reshape

    x = reshape(input, (-1,)) if dim is None else input
    if dim is None:
        keep = ~np.isnan(x.detach().cpu().numpy())
        if keep.all() or not keep.any():
            return quantile(x, q, None, keepdim, interpolation=interpolation)
        from .shape import index_select

        idx = Tensor(np.nonzero(keep)[0])
        return quantile(index_select(x, 0, idx.to(x.device)), q, None, keepdim, interpolation=interpolation)
    from .shape import stack, unbind

    d = dim % x.ndim
    if x.shape[d] == 0:
        raise ValueError("nanquantile(): the input is empty")
    # slice by slice along every other dimension: each slice has its own count of non-NaN values
    moved = x.movedim(d, -1)
    rows = unbind(reshape(moved, (-1, moved.shape[-1])), 0)
    outs = [nanquantile(r, q, None, False, interpolation=interpolation) for r in rows]
    out = stack(outs, -1)  # (q..., rows)
    qshape = tuple(out.shape[:-1])
    out = reshape(out, qshape + tuple(moved.shape[:-1]))
    if keepdim:
        out = out.unsqueeze(len(qshape) + d)
    return out


def msort(input: Tensor) -> Tensor:
    """``input`` sorted along its first dimension, as ``torch.msort``."""
    from .reduce import sort

    return sort(input, 0)[0]


def rsub(input: Tensor, other, alpha=1) -> Tensor:
    """other - alpha * input, as ``torch.rsub``."""
    return sub(_as_tensor_like(other, input), input, alpha=alpha)


def mvlgamma(input: Tensor, p: int) -> Tensor:
    """The log of the multivariate gamma function of dimension p, as ``torch.mvlgamma``."""
    from ..special import multigammaln

    return multigammaln(input, p)


def cholesky(input: Tensor, upper: bool = False) -> Tensor:
    """The Cholesky factor (lower, or ``upper`` = its transpose), as ``torch.cholesky``."""
    from ..linalg import cholesky as _chol

    low = _chol(input)
    return low.transpose(-2, -1) if upper else low


def qr(input: Tensor, some: bool = True):
    """(Q, R), reduced unless ``some=False`` (Q square), as ``torch.qr``. The complete factorisation of a
    tall matrix is not differentiable (as PyTorch's): asked for with a gradient, it raises."""
    from ..autograd import is_grad_enabled
    from ..backend import get_array_module
    from ..linalg import qr as _qr

    m, n = input.shape[-2:]
    if some or m <= n:
        return _qr(input, mode="reduced")
    if input.requires_grad and is_grad_enabled():
        raise RuntimeError("qr(some=False): the complete QR decomposition of a matrix with more rows than "
                           "columns is not differentiable (as PyTorch's); use some=True, or detach the input")
    q, r = get_array_module(input.data).linalg.qr(input.data, mode="complete")
    return Tensor(q), Tensor(r)


def svd(input: Tensor, some: bool = True, compute_uv: bool = True):
    """(U, S, V) with input = U diag(S) V^T (V, not linalg.svd's Vh), reduced unless ``some=False``, as
    ``torch.svd``; ``compute_uv=False``: S, with zero U (m, m) and V (n, n)."""
    from ..linalg import svd as _svd
    from ..linalg import svdvals
    from ..tensor import zeros

    if not compute_uv:  # (U and V zero, (m, m) and (n, n) whatever ``some`` says, as PyTorch's)
        s = svdvals(input)
        m, n = input.shape[-2:]
        lead = tuple(input.shape[:-2])
        return (zeros(*lead, m, m, dtype=input.dtype, device=input.device), s,
                zeros(*lead, n, n, dtype=input.dtype, device=input.device))
    u, s, vh = _svd(input, full_matrices=not some)
    return u, s, vh.transpose(-2, -1)


def pinverse(input: Tensor, rcond: float = 1e-15) -> Tensor:
    """The pseudo-inverse, singular values under ``rcond`` times the largest taken as zero, as
    ``torch.pinverse``."""
    from ..linalg import pinv

    return pinv(input, rtol=rcond)


def vmap(func, in_dims=0, out_dims=0, randomness="error", *, chunk_size=None):
    """``framework.func.vmap``, as ``torch.vmap``."""
    from ..func import vmap as _vmap

    return _vmap(func, in_dims, out_dims, randomness, chunk_size=chunk_size)


def _functional(name):
    def f(*args, **kwargs):
        from .. import functional as F

        return getattr(F, name)(*args, **kwargs)

    f.__name__ = name
    f.__doc__ = f"``framework.nn.functional.{name}``, as ``torch.{name}``."
    return f


(conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d, selu, celu, prelu, threshold,
 hardshrink, rrelu, pdist, bilinear, cosine_similarity, pairwise_distance, pixel_shuffle, pixel_unshuffle,
 channel_shuffle) = [_functional(n) for n in (
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "selu", "celu",
    "prelu", "threshold", "hardshrink", "rrelu", "pdist", "bilinear", "cosine_similarity",
    "pairwise_distance", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle")]


def _shift(name, op):
    def f(input, other) -> Tensor:
        from ..backend import get_array_module

        a = input.data if isinstance(input, Tensor) else np.asarray(input)
        b = other.data if isinstance(other, Tensor) else other
        if a.dtype.kind not in "iub":
            raise TypeError(f"{name}: integer tensors only, got {a.dtype}")
        xp = get_array_module(a)
        return Tensor(getattr(xp, op)(a, xp.asarray(b, dtype=a.dtype)).astype(a.dtype, copy=False))

    f.__name__ = name
    f.__doc__ = f"Element-wise {op.replace('_', ' ')} of integers, as ``torch.{name}``."
    return f


bitwise_left_shift = _shift("bitwise_left_shift", "left_shift")
bitwise_right_shift = _shift("bitwise_right_shift", "right_shift")


def cholesky_solve(B: Tensor, L: Tensor, upper: bool = False) -> Tensor:
    """X with A X = B, from A's Cholesky factor L (A = L L^T; ``upper``: L is the upper factor U, A =
    U^T U), as ``torch.cholesky_solve``: two triangular solves, differentiable in B and L."""
    from ..linalg import solve_triangular

    if upper:
        y = solve_triangular(L.transpose(-2, -1), B, upper=False)
        return solve_triangular(L, y, upper=True)
    y = solve_triangular(L, B, upper=False)
    return solve_triangular(L.transpose(-2, -1), y, upper=True)


def cholesky_inverse(L: Tensor, upper: bool = False) -> Tensor:
    """The inverse of A from its Cholesky factor, as ``torch.cholesky_inverse``."""
    from ..tensor import eye

    n = L.shape[-1]
    return cholesky_solve(eye(n, dtype=L.dtype, device=L.device).expand(*L.shape), L, upper)


def matrix_exp(input: Tensor) -> Tensor:
    """``framework.linalg.matrix_exp``, as ``torch.matrix_exp``."""
    from ..linalg import matrix_exp as _me

    return _me(input)


def matrix_power(input: Tensor, n: int) -> Tensor:
    """``framework.linalg.matrix_power``, as ``torch.matrix_power``."""
    from ..linalg import matrix_power as _mp

    return _mp(input, n)


def narrow_copy(input: Tensor, dim: int, start: int, length: int) -> Tensor:
    """A copy (not a view) of ``input.narrow(dim, start, length)``, as ``torch.narrow_copy``."""
    from .shape import narrow

    return narrow(input, dim, start, length).clone()


def isreal(input: Tensor) -> Tensor:
    """Where the value is real (every element of a real tensor; imaginary part 0 of a complex one), as
    ``torch.isreal``."""
    if input.data.dtype.kind == "c":
        from .complexops import imag

        return eq(imag(input), 0)
    return eq(input, input) | isnan(input) if input.is_floating_point() else ne(input, input).logical_not()


def _fill_diagonal(input: Tensor, fill_value, wrap: bool = False) -> Tensor:
    """input with its main diagonal set to ``fill_value`` (``fill_diagonal_``'s out-of-place form): a 2-D
    tensor (``wrap``: for a tall matrix, the diagonal starts again after N + 1 rows, as NumPy's), or one
    whose dimensions are all equal."""
    shape = tuple(input.shape)
    if input.ndim < 2:
        raise RuntimeError("fill_diagonal_: dimensions must larger than 1")
    if input.ndim > 2 and len(set(shape)) != 1:
        raise RuntimeError("fill_diagonal_: all dimensions of input must be of equal length")
    mask = np.zeros(shape, bool)
    if input.ndim == 2:
        rows, cols = shape
        r = np.arange(rows)
        if wrap and rows > cols:
            keep = (r % (cols + 1)) < cols
            r = r[keep]
            c = r % (cols + 1)
        else:
            r = r[:min(rows, cols)]
            c = r
        mask[r, c] = True
    else:
        i = np.arange(shape[0])
        mask[(i,) * input.ndim] = True
    m = Tensor(mask).to(input.device) if input.device.type != "cpu" else Tensor(mask)
    value = Tensor(np.asarray(fill_value, dtype=input.data.dtype))
    return where(m, value.to(input.device) if input.device.type != "cpu" else value, input)
