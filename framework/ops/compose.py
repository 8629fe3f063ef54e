"""PyTorch conveniences composed of other operations: clamping and cleaning values, stacking and
splitting, rotations, differences, index writes (scatter, index_add / fill / copy), small products,
and the index and range builders. Differentiable where PyTorch's are, through the operations they are
made of (gradients of gradients included)."""

from __future__ import annotations

import builtins
import math

import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from ..tensor import Tensor
from .basic import _float_in, log, unbroadcast, where
from .extra import _tri_mask, log1p, movedim, tensordot
from .reduce import sum
from .shape import _norm_dim, cat, expand, getitem, narrow, reshape, transpose


def clamp_min(input, min):
    """max(input, min) element-wise, as ``torch.clamp_min``."""
    from .basic import clamp

    return clamp(input, min=min)


def clamp_max(input, max):
    """min(input, max) element-wise, as ``torch.clamp_max``."""
    from .basic import clamp

    return clamp(input, max=max)


def nan_to_num(input, nan=0.0, posinf=None, neginf=None):
    """NaN, +inf and -inf replaced (by default with 0 and the dtype's largest and smallest finite values),
    as ``torch.nan_to_num``; the gradient is 0 where a value was replaced."""
    xp = get_array_module(input.data)
    a = input.data
    if a.dtype.kind != "f":
        return input
    info = np.finfo(a.dtype)
    out = where(Tensor(xp.isnan(a)), float(nan), input)
    out = where(Tensor(xp.isposinf(a)), float(info.max if posinf is None else posinf), out)
    return where(Tensor(xp.isneginf(a)), float(info.min if neginf is None else neginf), out)


def addcmul(input, tensor1, tensor2, *, value=1):
    """input + value * tensor1 * tensor2, as ``torch.addcmul``."""
    return input + value * tensor1 * tensor2


def addcdiv(input, tensor1, tensor2, *, value=1):
    """input + value * tensor1 / tensor2, as ``torch.addcdiv``."""
    return input + value * tensor1 / tensor2


def select(input, dim, index):
    """The slice at ``index`` along ``dim`` (that dimension removed), as ``torch.select``."""
    d = _norm_dim(dim, input.ndim)
    return getitem(input, (slice(None),) * d + (int(index),))


def take(input, index):
    """Elements of the flattened input at ``index`` (the result has the index's shape), as ``torch.take``."""
    return getitem(reshape(input, (-1,)), index)


def dot(input, other):
    """The dot product of two 1-D tensors, as ``torch.dot``."""
    if input.ndim != 1 or other.ndim != 1 or input.shape != other.shape:
        raise ValueError(f"dot(): expected two 1-D tensors of the same size, got {tuple(input.shape)} and "
                         f"{tuple(other.shape)}")
    return sum(input * other)


def inner(input, other):
    """Sum over the last dimension of both, as ``torch.inner``."""
    if input.ndim == 0 or other.ndim == 0:
        return input * other
    return tensordot(input, other, dims=([input.ndim - 1], [other.ndim - 1]))


def cross(input, other, dim=None):
    """The cross product of 3-vectors along ``dim`` (default: the first dimension of size 3 for
    ``torch.cross``; -1 for ``torch.linalg.cross``), the two inputs broadcast."""
    from .shape import stack

    shape = np.broadcast_shapes(tuple(input.shape), tuple(other.shape))
    a = expand(input, shape) if tuple(input.shape) != shape else input
    b = expand(other, shape) if tuple(other.shape) != shape else other
    if dim is None:
        dim = next((k for k, n in enumerate(shape) if n == 3), None)
        if dim is None:
            raise ValueError(f"cross(): no dimension of size 3 in {shape}")
    d = _norm_dim(dim, len(shape))
    if shape[d] != 3:
        raise ValueError(f"cross(): dimension {dim} has size {shape[d]}, not 3")
    a0, a1, a2 = (select(a, d, k) for k in range(3))
    b0, b1, b2 = (select(b, d, k) for k in range(3))
    return stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], d)


def kron(input, other):
    """The Kronecker product, as ``torch.kron`` (the two padded to the same number of dimensions)."""
    n = builtins.max(input.ndim, other.ndim)
    a = reshape(input, (1,) * (n - input.ndim) + tuple(input.shape))
    b = reshape(other, (1,) * (n - other.ndim) + tuple(other.shape))
    # a[i0, j0, ...] * b[i1, j1, ...] at (i0 * B0 + i1, j0 * B1 + j1, ...): interleave the axes
    ae = reshape(a, tuple(v for s in a.shape for v in (s, 1)))
    be = reshape(b, tuple(v for s in b.shape for v in (1, s)))
    return reshape(ae * be, tuple(sa * sb for sa, sb in zip(a.shape, b.shape)))


def atleast_1d(*tensors):
    """Each tensor with at least one dimension, as ``torch.atleast_1d``."""
    out = [reshape(t, (1,)) if t.ndim == 0 else t for t in _tensors(tensors)]
    return out[0] if len(out) == 1 else tuple(out)


def atleast_2d(*tensors):
    """Each tensor with at least two dimensions (a vector becomes a row), as ``torch.atleast_2d``."""
    out = [reshape(t, (1,) * (2 - t.ndim) + tuple(t.shape)) if t.ndim < 2 else t for t in _tensors(tensors)]
    return out[0] if len(out) == 1 else tuple(out)


def atleast_3d(*tensors):
    """Each tensor with at least three dimensions, as ``torch.atleast_3d`` ((N,) -> (1, N, 1),
    (M, N) -> (M, N, 1))."""
    def up(t):
        if t.ndim == 0:
            return reshape(t, (1, 1, 1))
        if t.ndim == 1:
            return reshape(t, (1, t.shape[0], 1))
        if t.ndim == 2:
            return reshape(t, tuple(t.shape) + (1,))
        return t

    out = [up(t) for t in _tensors(tensors)]
    return out[0] if len(out) == 1 else tuple(out)


def _tensors(tensors):
    return list(tensors[0]) if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) else list(tensors)


def hstack(tensors):
    """Concatenate along the second dimension (the first for 1-D tensors), as ``torch.hstack``."""
    ts = [atleast_1d(t) for t in tensors]
    return cat(ts, 0 if ts[0].ndim == 1 else 1)


def vstack(tensors):
    """Concatenate rows (1-D tensors become rows), as ``torch.vstack``."""
    return cat([atleast_2d(t) for t in tensors], 0)


def dstack(tensors):
    """Concatenate along the third dimension, as ``torch.dstack``."""
    return cat([atleast_3d(t) for t in tensors], 2)


def column_stack(tensors):
    """Stack as columns (1-D tensors become columns), as ``torch.column_stack``."""
    ts = [reshape(t, (-1, 1)) if t.ndim <= 1 else t for t in tensors]
    return cat(ts, 1)


def diff(input, n=1, dim=-1, prepend=None, append=None):
    """The n-th forward difference along ``dim``, as ``torch.diff``."""
    d = _norm_dim(dim, input.ndim)
    x = input
    if prepend is not None or append is not None:
        x = cat([t for t in (prepend, x, append) if t is not None], d)
    for _ in range(int(n)):
        m = x.shape[d]
        if m == 0:
            break
        x = narrow(x, d, 1, m - 1) - narrow(x, d, 0, m - 1)
    return x


def logit(input, eps=None):
    """log(p / (1 - p)), with p clamped to [eps, 1 - eps] when eps is given, as ``torch.logit``."""
    from .basic import clamp

    p = _float_in(input)
    if eps is not None:
        p = clamp(p, eps, 1 - eps)
    return log(p) - log1p(-p)


class _Xlogy(Function):
    """x * log(y), 0 where x is 0 (unless y is NaN); the gradients are PyTorch's: log(y) and x / y."""

    def forward(self, x, y):
        xp = get_array_module(x if hasattr(x, "dtype") else y)
        with np.errstate(divide="ignore", invalid="ignore"):
            v = x * xp.log(y)
        return xp.where((x == 0) & ~xp.isnan(y), xp.zeros((), dtype=v.dtype), v)

    def backward(self, g):
        x, y = self.inputs
        gx = unbroadcast(g * log(y), x.shape) if self.needs_input_grad[0] else None
        gy = unbroadcast(g * x / y, y.shape) if self.needs_input_grad[1] else None
        return gx, gy


def xlogy(input, other):
    """input * log(other), 0 where input is 0 (even where other is 0), as ``torch.xlogy``."""
    ref = _float_in(input if isinstance(input, Tensor) else other)
    x, y = (_float_in(v) if isinstance(v, Tensor) else Tensor(np.asarray(v, dtype=ref.data.dtype))
            for v in (input, other))
    return _Xlogy()(x, y)


def count_nonzero(input, dim=None):
    """The number of non-zero elements (over ``dim``), as ``torch.count_nonzero``."""
    from .. import dtypes as _dt

    return sum((input != 0).to(_dt.int64), dim=dim)


def nansum(input, dim=None, keepdim=False):
    """The sum with NaN taken as 0, as ``torch.nansum``."""
    xp = get_array_module(input.data)
    zero = Tensor(xp.zeros((), dtype=input.data.dtype))
    return sum(where(Tensor(xp.isnan(input.data)), zero, input), dim=dim, keepdim=keepdim)


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|input - other| <= atol + rtol * |other| element-wise, as ``torch.isclose``."""
    xp = get_array_module(input.data)
    b = getattr(other, "data", other)
    return Tensor(xp.isclose(input.data, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


def fliplr(input):
    """Flip the second dimension (columns), as ``torch.fliplr``."""
    if input.ndim < 2:
        raise ValueError(f"fliplr(): expected at least 2 dimensions, got shape {tuple(input.shape)}")
    return input.flip(1)


def flipud(input):
    """Flip the first dimension (rows), as ``torch.flipud``."""
    if input.ndim < 1:
        raise ValueError("flipud(): expected at least 1 dimension")
    return input.flip(0)


def rot90(input, k=1, dims=(0, 1)):
    """Rotate by 90 degrees k times in the plane of ``dims`` (from the first towards the second), as
    ``torch.rot90``."""
    if len(dims) != 2:
        raise ValueError(f"rot90(): dims must name two dimensions, got {dims}")
    d0, d1 = (_norm_dim(d, input.ndim) for d in dims)
    if d0 == d1:
        raise ValueError(f"rot90(): the two dims are the same ({dims})")
    k = int(k) % 4
    if k == 0:
        return input
    if k == 2:
        return input.flip(d0, d1)
    if k == 1:
        return transpose(input.flip(d1), d0, d1)
    return transpose(input, d0, d1).flip(d1)


def tensor_split(input, indices_or_sections, dim=0):
    """Split into ``n`` nearly equal parts (the first ones one longer) or at the given indices, as
    ``torch.tensor_split``."""
    d = _norm_dim(dim, input.ndim)
    n = input.shape[d]
    if isinstance(indices_or_sections, int):
        k = indices_or_sections
        if k < 1:
            raise ValueError(f"tensor_split(): the number of sections must be >= 1, got {k}")
        sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
        bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    else:
        idx = [builtins.min(builtins.max(int(i), 0), n) for i in indices_or_sections]
        bounds = [0] + idx + [n]
    spans = zip(bounds[:-1], bounds[1:])
    return tuple(narrow(input, d, int(a), builtins.max(int(b) - int(a), 0)) for a, b in spans)


def std_mean(input, dim=None, *, correction=1, keepdim=False):
    """(std, mean), as ``torch.std_mean``."""
    from .reduce import mean, std

    return std(input, dim, keepdim=keepdim, correction=correction), mean(input, dim, keepdim=keepdim)


def var_mean(input, dim=None, *, correction=1, keepdim=False):
    """(var, mean), as ``torch.var_mean``."""
    from .reduce import mean, var

    return var(input, dim, keepdim=keepdim, correction=correction), mean(input, dim, keepdim=keepdim)


def aminmax(input, *, dim=None, keepdim=False):
    """(min, max) over ``dim`` (all elements when None), as ``torch.aminmax``."""
    from collections import namedtuple

    from .reduce import amax, amin

    d = () if dim is None else dim
    return namedtuple("aminmax", ["min", "max"])(amin(input, d, keepdim), amax(input, d, keepdim))


def isin(elements, test_elements, *, invert=False):
    """Whether each element occurs in ``test_elements``, as ``torch.isin``."""
    xp = get_array_module(getattr(elements, "data", np.asarray(elements)))
    e = getattr(elements, "data", xp.asarray(elements))
    t = getattr(test_elements, "data", xp.asarray(test_elements))
    return Tensor(xp.isin(e, t, invert=invert))


def _tri_indices(row, col, offset, lower):
    r, c = np.nonzero(_tri_mask(np, row, col, int(offset), lower))
    return Tensor(np.stack([r, c]).astype(np.int64))


def tril_indices(row, col, offset=0):
    """The (2, N) row and column indices of the lower triangle, as ``torch.tril_indices``."""
    return _tri_indices(row, col, offset, True)


def triu_indices(row, col, offset=0):
    """The (2, N) row and column indices of the upper triangle, as ``torch.triu_indices``."""
    return _tri_indices(row, col, offset, False)


def diag_embed(input, offset=0, dim1=-2, dim2=-1):
    """Matrices with the last dimension of ``input`` on their ``offset`` diagonal (in the last two
    dimensions), as ``torch.diag_embed`` with its default dims."""
    if (_norm_dim(dim1, input.ndim + 1), _norm_dim(dim2, input.ndim + 1)) != (input.ndim - 1, input.ndim):
        raise ValueError("diag_embed(): only the default dim1=-2, dim2=-1 is supported")
    from ..functional import pad

    n = input.shape[-1]
    k = int(offset)
    m = n + builtins.abs(k)
    xp = get_array_module(input.data)
    eye = Tensor(xp.eye(n, dtype=input.data.dtype))
    d = input.unsqueeze(-1) * eye  # (..., n, n), input on the main diagonal
    if m == n:
        return d
    # to the offset diagonal: above it, columns padded on the left and rows below; under it, the reverse
    return pad(d, (builtins.max(k, 0), builtins.max(-k, 0), builtins.max(-k, 0), builtins.max(k, 0)))


def logspace(start, end, steps, base=10.0, dtype=None, device=None, requires_grad=False):
    """``steps`` values from base**start to base**end, evenly spaced in the exponent (``torch.logspace``)."""
    from .. import dtypes as _dt
    from ..tensor import tensor

    a = np.logspace(start, end, int(steps), base=base)
    return tensor(a, dtype=dtype or _dt.get_default_dtype(), device=device, requires_grad=requires_grad)


def deg2rad(input):
    """Degrees to radians, as ``torch.deg2rad``."""
    return _float_in(input) * (math.pi / 180.0)


def rad2deg(input):
    """Radians to degrees, as ``torch.rad2deg``."""
    return _float_in(input) * (180.0 / math.pi)


def sinc(input):
    """sin(pi x) / (pi x), 1 at 0 (with a 0 gradient there), as ``torch.sinc``."""
    from .basic import sin

    x = _float_in(input)
    z = Tensor(x.data == 0)
    xs = where(z, 1.0, x)  # keeps the unused branch finite at 0, in value and gradient
    return where(z, 1.0, sin(math.pi * xs) / (math.pi * xs))


def unfold_windows(input, dimension, size, step):
    """Tensor.unfold: every slice of ``size`` elements along ``dimension``, ``step`` apart, as a new last
    dimension (differentiable; overlapping windows add their gradients)."""
    d = _norm_dim(dimension, input.ndim)
    n = input.shape[d]
    if size < 1 or step < 1 or size > n:
        raise ValueError(f"unfold(): size {size} and step {step} for a dimension of {n} (size in 1..{n}, "
                         "step >= 1)")
    xp = get_array_module(input.data)
    count = (n - size) // step + 1
    idx = (xp.arange(count)[:, None] * step + xp.arange(size)[None, :]).astype(np.int64)
    out = getitem(input, (slice(None),) * d + (Tensor(idx),))  # (..., count, size, ...)
    return movedim(out, d + 1, -1)


def scatter(input, dim, index, src=None, *, value=None):
    """``input`` with ``src`` (or ``value``) written at ``index`` along ``dim``, as ``torch.scatter``
    (out of place). Where ``index`` repeats a position PyTorch leaves the result undefined; here the
    values written there add up."""
    from .shape import scatter_add

    if (src is None) == (value is None):
        raise ValueError("scatter(): give exactly one of src and value")
    d = _norm_dim(dim, input.ndim)
    xp = get_array_module(input.data)
    idx = index.data if isinstance(index, Tensor) else xp.asarray(index)
    if value is not None:
        src = Tensor(xp.full(idx.shape, value, dtype=input.data.dtype))
    elif tuple(src.shape) != tuple(idx.shape):  # PyTorch uses the leading part of a larger src
        src = getitem(src, tuple(slice(0, n) for n in idx.shape))
    written = xp.zeros(input.shape, dtype=bool)
    xp.put_along_axis(written, idx, True, axis=d)
    zero = Tensor(xp.zeros((), dtype=input.data.dtype))
    base = where(Tensor(written), zero, input)
    return scatter_add(base, d, Tensor(idx), src)


def index_add(input, dim, index, source, *, alpha=1):
    """``input`` with ``alpha * source`` added at the positions ``index`` along ``dim`` (repeats add up),
    as ``torch.index_add``."""
    from .shape import scatter_add

    d = _norm_dim(dim, input.ndim)
    xp = get_array_module(input.data)
    idx = index.data if isinstance(index, Tensor) else xp.asarray(index)
    shape = list(source.shape)
    view = [1] * source.ndim
    view[d] = -1
    full = xp.broadcast_to(idx.reshape(view), shape).astype(np.int64)
    return scatter_add(input, d, Tensor(xp.ascontiguousarray(full)), source if alpha == 1 else source * alpha)


def index_fill(input, dim, index, value):
    """``input`` with the slices at ``index`` along ``dim`` set to ``value``, as ``torch.index_fill``."""
    d = _norm_dim(dim, input.ndim)
    xp = get_array_module(input.data)
    idx = index.data if isinstance(index, Tensor) else xp.asarray(index)
    m = xp.zeros(input.shape[d], dtype=bool)
    m[idx] = True
    shape = [1] * input.ndim
    shape[d] = -1
    v = value if isinstance(value, Tensor) else float(value)
    return where(Tensor(m.reshape(shape)), v, input)


def index_copy(input, dim, index, source):
    """``input`` with the slices at ``index`` along ``dim`` replaced by those of ``source``, as
    ``torch.index_copy``."""
    d = _norm_dim(dim, input.ndim)
    zeroed = index_fill(input, d, index, 0.0)
    return index_add(zeroed, d, index, source)


__all__ = [
    "clamp_min", "clamp_max", "nan_to_num", "addcmul", "addcdiv", "select", "take", "dot", "inner", "cross",
    "kron", "atleast_1d", "atleast_2d", "atleast_3d", "hstack", "vstack", "dstack", "column_stack", "diff",
    "logit", "xlogy", "count_nonzero", "nansum", "isclose", "fliplr", "flipud", "rot90", "tensor_split",
    "std_mean", "var_mean", "aminmax", "isin", "tril_indices", "triu_indices", "diag_embed", "logspace",
    "deg2rad", "rad2deg", "sinc", "scatter", "index_add", "index_fill", "index_copy",
]
