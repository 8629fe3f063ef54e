"""More of PyTorch's tensor functions, composed of other operations (differentiable through them where
PyTorch's are): covariance and correlation, ``logcumsumexp``, trapezoid integration, block-diagonal
matrices, Cartesian products and combinations, ``renorm``, Vandermonde matrices, ``nanmedian``; and the
value functions without gradients: ``histc``, ``heaviside``, ``copysign``'s sign transfer, ``frexp``,
``ldexp``, ``gcd`` / ``lcm``."""

from __future__ import annotations

import builtins
import itertools
from collections import namedtuple

import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from ..tensor import Tensor
from .basic import _float_in, abs, exp, log, sqrt, where
from .reduce import cumsum, sum
from .shape import _norm_dim, cat, getitem, narrow, reshape, stack, transpose

__all__ = ["cov", "corrcoef", "logcumsumexp", "trapezoid", "trapz", "cumulative_trapezoid", "block_diag",
           "cartesian_prod", "combinations", "copysign", "heaviside", "renorm", "vander", "histc",
           "nanmedian", "frexp", "ldexp", "gcd", "lcm", "histogram", "mode", "logdet", "slogdet"]


def _const(like: Tensor, array) -> Tensor:
    xp = get_array_module(like.data)
    return Tensor(xp.asarray(array))


def cov(input: Tensor, *, correction: int = 1, fweights: Tensor | None = None,
        aweights: Tensor | None = None) -> Tensor:
    """The covariance matrix of the variables in the rows of ``input`` (observations in the columns; a
    1-D input is one variable: a 0-d result), as ``torch.cov``: ``correction`` 1 is Bessel's; integer
    frequency weights ``fweights`` and observation weights ``aweights`` as NumPy's ``cov``."""
    if input.ndim > 2:
        raise ValueError(f"cov(): expected input to have two or fewer dimensions but got an input with "
                         f"{input.ndim} dimensions")
    x = _float_in(input)
    x = reshape(x, (1, -1)) if x.ndim < 2 else x
    n = x.shape[1]
    w = None
    if fweights is not None:
        if fweights.ndim > 1 or fweights.shape[0] != n:
            raise ValueError(f"cov(): expected fweights to have one dimension of size {n}")
        if fweights.data.dtype.kind not in "iu":
            raise ValueError("cov(): expected fweights to have integral dtype")
        if bool((fweights.data < 0).any()):
            raise ValueError("cov(): fweights cannot be negative")
        w = fweights.to(x.dtype)
    if aweights is not None:
        if aweights.ndim > 1 or aweights.shape[0] != n:
            raise ValueError(f"cov(): expected aweights to have one dimension of size {n}")
        if bool((aweights.data < 0).any()):
            raise ValueError("cov(): aweights cannot be negative")
        w = aweights.to(x.dtype) if w is None else w * aweights.to(x.dtype)
    if w is None:
        avg = x.mean(1, keepdim=True)
        norm = float(n - correction)
    else:
        w_sum = w.sum()
        avg = (x * w).sum(1, keepdim=True) / w_sum
        if aweights is None:
            norm = w_sum - correction
        else:
            norm = w_sum - correction * (w * aweights.to(x.dtype)).sum() / w_sum
    xm = x - avg
    c = (xm * w if w is not None else xm) @ transpose(xm, 0, 1)
    if isinstance(norm, Tensor):
        c = c / norm.clamp(min=0.0)
    else:
        c = c / builtins.max(norm, 0.0)
    return reshape(c, ()) if input.ndim < 2 else c


def corrcoef(input: Tensor) -> Tensor:
    """Pearson correlation coefficients of the rows of ``input``, as ``torch.corrcoef`` (clipped to
    [-1, 1]; a variable of zero variance gives nan)."""
    c = cov(input)
    if c.ndim == 0:
        return c / c
    d = sqrt(c.diagonal())
    return (c / d.unsqueeze(1) / d.unsqueeze(0)).clamp(-1.0, 1.0)


class _LogCumSumExp(Function):
    """out_i = log sum_{j <= i} exp(x_j) along ``dim``. Backward: g_x_j = sum_{i >= j} g_i exp(x_j - out_i),
    taken in log space for the positive and the negative parts of g (logcumsumexp again, reversed), so
    nothing overflows and the result is differentiable once more."""

    saves_output = True

    def forward(self, x):
        xp = get_array_module(x)
        if xp is np:
            return np.logaddexp.accumulate(x, axis=self.dim)
        m = x.max(axis=self.dim, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)
        return xp.log(xp.cumsum(xp.exp(x - m), axis=self.dim)) + m

    def backward(self, g):
        from .shape import flip

        (out,) = self.saved_tensors
        (x,) = self.inputs
        d = self.dim
        neg_inf = float("-inf")
        grads = 0.0
        for part, sign in ((g.clamp(min=0.0), 1.0), ((-g).clamp(min=0.0), -1.0)):
            logs = where(part > 0, log(where(part > 0, part, 1.0)) - out, neg_inf)
            rev = flip(_LogCumSumExp(dim=d)(flip(logs, [d])), [d])  # log sum_{i >= j}
            grads = grads + sign * where(rev > neg_inf, exp(x + rev), 0.0)
        return grads


def logcumsumexp(input: Tensor, dim: int) -> Tensor:
    """log(cumsum(exp(input))) along ``dim`` without overflow or underflow, as ``torch.logcumsumexp``."""
    x = _float_in(input)
    if x.ndim == 0:
        return x
    return _LogCumSumExp(dim=_norm_dim(dim, x.ndim))(x)


def _spacing(y: Tensor, x, dx, d: int):
    if x is not None and dx is not None:
        raise ValueError("trapezoid(): x and dx cannot both be given")
    if x is None:
        return 1.0 if dx is None else dx
    x = _float_in(x) if isinstance(x, Tensor) else Tensor(np.asarray(x, np.float64))
    if x.ndim == 1:
        if x.shape[0] != y.shape[d]:
            raise ValueError(f"trapezoid(): x has {x.shape[0]} points, y has {y.shape[d]} along dim {d}")
        shape = [1] * y.ndim
        shape[d] = x.shape[0] - 1
        return reshape(narrow(x, 0, 1, x.shape[0] - 1) - narrow(x, 0, 0, x.shape[0] - 1), tuple(shape))
    xd = _norm_dim(d - y.ndim, x.ndim)
    return narrow(x, xd, 1, x.shape[xd] - 1) - narrow(x, xd, 0, x.shape[xd] - 1)


def _trapezoids(y: Tensor, x, dx, dim: int):
    y = _float_in(y)
    d = _norm_dim(dim, y.ndim)
    m = y.shape[d]
    if m == 0:
        return None, d
    mid = (narrow(y, d, 1, m - 1) + narrow(y, d, 0, m - 1)) * 0.5
    return mid * _spacing(y, x, dx, d), d


def trapezoid(y: Tensor, x=None, *, dx=None, dim: int = -1) -> Tensor:
    """The trapezoid rule along ``dim``: sample points ``x`` (1-D, or shaped as y) or a constant
    spacing ``dx`` (default 1), as ``torch.trapezoid``."""
    parts, d = _trapezoids(y, x, dx, dim)
    if parts is None:
        return sum(_float_in(y), d)
    return sum(parts, d)


trapz = trapezoid


def cumulative_trapezoid(y: Tensor, x=None, *, dx=None, dim: int = -1) -> Tensor:
    """The running trapezoid integral along ``dim`` (one value fewer than y), as
    ``torch.cumulative_trapezoid``."""
    parts, d = _trapezoids(y, x, dx, dim)
    if parts is None:
        return _float_in(y)
    return cumsum(parts, d)


def block_diag(*tensors: Tensor) -> Tensor:
    """A block-diagonal matrix of the given 0-, 1- or 2-D tensors (a vector is a row), as
    ``torch.block_diag``."""
    from ..functional import pad

    blocks = []
    for t in tensors:
        if t.ndim > 2:
            raise ValueError(f"block_diag(): Input tensors must have 2 or fewer dimensions. Input has "
                             f"{t.ndim} dimensions")
        blocks.append(reshape(t, (1, 1)) if t.ndim == 0 else reshape(t, (1, -1)) if t.ndim == 1 else t)
    if not blocks:
        return Tensor(np.zeros((1, 0), np.float32))
    width = builtins.sum(b.shape[1] for b in blocks)
    dtype = blocks[0].dtype
    for b in blocks[1:]:
        if b.dtype != dtype and b.dtype.is_floating_point:
            dtype = b.dtype
    rows, at = [], 0
    for b in blocks:
        b = b.to(dtype) if b.dtype != dtype else b
        rows.append(pad(b, (at, width - at - b.shape[1])))
        at += b.shape[1]
    return cat(rows, 0)


def cartesian_prod(*tensors: Tensor) -> Tensor:
    """All tuples of one element from each 1-D tensor, as rows (a single tensor is returned as is), as
    ``torch.cartesian_prod``."""
    from .extra import meshgrid

    for t in tensors:
        if t.ndim != 1:
            raise ValueError(f"cartesian_prod(): expected 1D tensors, got shape {tuple(t.shape)}")
    if len(tensors) == 1:
        return tensors[0]
    grids = meshgrid(*tensors, indexing="ij")
    return stack([reshape(g, (-1,)) for g in grids], 1)


def combinations(input: Tensor, r: int = 2, with_replacement: bool = False) -> Tensor:
    """The length-``r`` combinations of the elements of a 1-D tensor, as rows (itertools' order), as
    ``torch.combinations``."""
    if input.ndim != 1:
        raise ValueError(f"combinations(): expect a 1D vector, but got shape {tuple(input.shape)}")
    if r < 0:
        raise ValueError(f"combinations(): Expect a non-negative number, but got {r}")
    if r == 0:
        return Tensor(get_array_module(input.data).zeros((0,), input.data.dtype))
    pick = itertools.combinations_with_replacement if with_replacement else itertools.combinations
    idx = np.array(list(pick(range(input.shape[0]), r)), np.int64).reshape(-1, r)
    return getitem(input, _const(input, idx))


def copysign(input: Tensor, other) -> Tensor:
    """|input| with the sign (bit) of ``other``, as ``torch.copysign`` (gradient to ``input`` only)."""
    x = _float_in(input)
    o = other.data if isinstance(other, Tensor) else other
    xp = get_array_module(x.data)
    sign = Tensor(xp.where(xp.signbit(xp.asarray(o)), -1.0, 1.0).astype(x.data.dtype))
    return abs(x) * sign


def heaviside(input: Tensor, values: Tensor) -> Tensor:
    """0 where input < 0, ``values`` where input == 0, 1 where input > 0, as ``torch.heaviside`` (no
    gradient, as PyTorch's)."""
    xp = get_array_module(input.data)
    v = values.data if isinstance(values, Tensor) else values
    return Tensor(xp.heaviside(input.data, xp.asarray(v, dtype=input.data.dtype)).astype(input.data.dtype))


def renorm(input: Tensor, p: float, dim: int, maxnorm: float) -> Tensor:
    """Each slice along ``dim`` whose ``p``-norm exceeds ``maxnorm`` scaled down to it, as
    ``torch.renorm``."""
    x = _float_in(input)
    d = _norm_dim(dim, x.ndim)
    others = tuple(k for k in range(x.ndim) if k != d)
    norms = (abs(x) ** p).sum(others, keepdim=True) ** (1.0 / p) if others else abs(x)
    factor = where(norms > maxnorm, maxnorm / (norms + 1e-7), 1.0)
    return x * factor


def vander(x: Tensor, N: int | None = None, increasing: bool = False) -> Tensor:
    """The Vandermonde matrix of a 1-D ``x``: columns x^(N-1), ..., x^0 (``increasing``: x^0 first), as
    ``torch.vander``."""
    if x.ndim != 1:
        raise ValueError(f"vander(): x must be a one-dimensional tensor, got shape {tuple(x.shape)}")
    n = x.shape[0] if N is None else N
    if n < 0:
        raise ValueError("vander(): N must be non-negative")
    powers = range(n) if increasing else range(n - 1, -1, -1)
    cols = [x ** k if k else x * 0 + 1 for k in powers]
    if not cols:
        return Tensor(get_array_module(x.data).zeros((x.shape[0], 0), x.data.dtype))
    return stack(cols, 1)


def histc(input: Tensor, bins: int = 100, min: float = 0, max: float = 0) -> Tensor:
    """Counts in ``bins`` equal bins over [min, max] (both 0: the data's range); values outside are not
    counted, as ``torch.histc`` (no gradient)."""
    xp = get_array_module(input.data)
    a = input.data.astype(np.float64 if input.data.dtype == np.float64 else np.float32).reshape(-1)
    lo, hi = float(min), float(max)
    if lo == hi and a.size:
        lo, hi = float(a.min()), float(a.max())
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    if bins <= 0:
        raise ValueError(f"histc(): bins must be > 0, but got {bins}")
    if lo > hi:
        raise ValueError(f"histc(): max must be larger than min, got min {lo} and max {hi}")
    counts, _ = xp.histogram(a, bins=bins, range=(lo, hi))
    dtype = input.data.dtype if input.data.dtype.kind == "f" else np.float32
    return Tensor(counts.astype(dtype))


def nanmedian(input: Tensor, dim: int | None = None, keepdim: bool = False):
    """The median ignoring NaN (the lower of the two middle values for an even count; NaN where a slice
    is all NaN), as ``torch.nanmedian``: a 0-d tensor without ``dim``, else (values, indices)."""
    from .shape import gather

    xp = get_array_module(input.data)
    flat = dim is None
    x = reshape(input, (-1,)) if flat else input
    d = 0 if flat else _norm_dim(dim, x.ndim)
    a = x.data
    order = xp.argsort(xp.where(xp.isnan(a), xp.inf, a), axis=d, kind="stable")
    k = (~xp.isnan(a)).sum(axis=d, keepdims=True)
    pos = xp.maximum((k - 1) // 2, 0)
    idx = xp.take_along_axis(order, pos, axis=d)
    values = gather(x, d, Tensor(idx))
    values = where(Tensor(k == 0), float("nan"), values)
    if flat:
        return reshape(values, ())
    if not keepdim:
        values = values.squeeze(d)
        idx = idx.squeeze(d)
    return namedtuple("nanmedian", ["values", "indices"])(values, Tensor(idx.astype(np.int64)))


def frexp(input: Tensor):
    """(mantissa, exponent) with input = mantissa * 2^exponent, |mantissa| in [0.5, 1), as
    ``torch.frexp``."""
    xp = get_array_module(input.data)
    m, e = xp.frexp(input.data)
    return namedtuple("frexp", ["mantissa", "exponent"])(Tensor(m), Tensor(e.astype(np.int32)))


def ldexp(input: Tensor, other) -> Tensor:
    """input * 2^other, as ``torch.ldexp``."""
    o = other if isinstance(other, Tensor) else Tensor(np.asarray(other))
    return _float_in(input) * (2.0 ** o.to(_float_in(input).dtype))


def gcd(input: Tensor, other: Tensor) -> Tensor:
    """Element-wise greatest common divisor of integers, as ``torch.gcd``."""
    xp = get_array_module(input.data)
    return Tensor(xp.gcd(input.data, other.data if isinstance(other, Tensor) else other))


def lcm(input: Tensor, other: Tensor) -> Tensor:
    """Element-wise least common multiple of integers, as ``torch.lcm``."""
    xp = get_array_module(input.data)
    return Tensor(xp.lcm(input.data, other.data if isinstance(other, Tensor) else other))


def histogram(input: Tensor, bins=100, *, range=None, weight=None, density=False):  # noqa: A002
    """(hist, bin_edges) as ``torch.histogram``: ``bins`` equal bins over ``range`` (default the data's
    min..max) or the given increasing edges; the last bin includes its right edge; ``weight`` weights
    each value; ``density`` divides by the total weight times the bin width. Float input only."""
    xp = get_array_module(input.data)
    if input.data.dtype.kind != "f":
        raise RuntimeError(f"histogram: expected a floating point input, got {input.dtype}")
    a = input.data.reshape(-1)
    if isinstance(bins, Tensor):
        if bins.ndim != 1 or bins.shape[0] < 1:
            raise RuntimeError(f"histogram: bins must be a 1-D tensor of edges, got shape "
                               f"{tuple(bins.shape)}")
        edges = bins.data.astype(a.dtype)
        if bool((edges[1:] < edges[:-1]).any()):
            raise RuntimeError("histogram: bin edges must be increasing")
        spec, rng = edges, None
    else:
        if int(bins) < 1:
            raise RuntimeError(f"histogram: bins must be > 0, got {bins}")
        spec, rng = int(bins), range
        if rng is not None and float(rng[0]) > float(rng[1]):
            raise RuntimeError(f"histogram: min must be at most max, got range {tuple(rng)}")
    w = None
    if weight is not None:
        if tuple(weight.shape) != tuple(input.shape):
            raise RuntimeError(f"histogram: weight of shape {tuple(weight.shape)} for an input of shape "
                               f"{tuple(input.shape)}")
        w = weight.data.reshape(-1)
    hist, edges = xp.histogram(a, bins=spec, range=rng, weights=w, density=density)
    return namedtuple("histogram", ["hist", "bin_edges"])(Tensor(hist.astype(a.dtype)),
                                                          Tensor(edges.astype(a.dtype)))


def mode(input: Tensor, dim: int = -1, keepdim: bool = False):
    """(values, indices): the most frequent value along ``dim`` (the smallest of equally frequent ones)
    and the index of its last occurrence, as ``torch.mode``; values carry the gradient to that index."""
    from .shape import gather

    xp = get_array_module(input.data)
    if input.ndim == 0:
        return namedtuple("mode", ["values", "indices"])(input * 1, Tensor(xp.zeros((), dtype=np.int64)))
    d = _norm_dim(dim, input.ndim)
    x = xp.moveaxis(input.data, d, -1)
    lead, n = x.shape[:-1], x.shape[-1]
    if n == 0:
        raise IndexError(f"mode(): cannot compute the mode of an empty dimension {dim}")
    rows = x.reshape(-1, n)
    r = rows.shape[0]
    srt = xp.sort(rows, axis=1)
    new_run = xp.concatenate([xp.ones((r, 1), dtype=bool), srt[:, 1:] != srt[:, :-1]], axis=1)
    run_id = xp.cumsum(new_run, axis=1) - 1
    counts = xp.bincount((run_id + xp.arange(r)[:, None] * n).reshape(-1), minlength=r * n).reshape(r, n)
    best = xp.argmax(counts, axis=1)  # the first of the most frequent runs: the smallest value
    first = xp.argmax(run_id == best[:, None], axis=1)
    value = srt[xp.arange(r), first]
    last = n - 1 - xp.argmax((rows == value[:, None])[:, ::-1], axis=1)
    idx = xp.moveaxis(last.reshape(lead + (1,)).astype(np.int64), -1, d)
    values = gather(input, d, Tensor(idx))
    if not keepdim:
        values = values.squeeze(d)
        idx = idx.squeeze(d)
    return namedtuple("mode", ["values", "indices"])(values, Tensor(idx))


def slogdet(input: Tensor):
    """(sign, logabsdet) of square matrices, as ``torch.slogdet`` (``fw.linalg.slogdet``)."""
    from .. import linalg

    return linalg.slogdet(input)


def logdet(input: Tensor) -> Tensor:
    """log det of square matrices: NaN where the determinant is negative, -inf where it is 0
    (``torch.logdet``)."""
    sign, logabs = slogdet(input)
    return where(sign < 0, float("nan"), logabs)
