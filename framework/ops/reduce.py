"""Reductions, softmax family, cumulative sums, sorting."""

from __future__ import annotations

import builtins
from collections import namedtuple

import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from ..tensor import Tensor
from .basic import BroadcastTo, exp, log, where

_F16 = np.dtype("float16")


def _axes(dim, ndim):
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):  # dim=() reduces all, as PyTorch
        return tuple(range(ndim))
    if isinstance(dim, int):
        dim = (dim,)
    out = []
    for d in dim:
        if not -builtins.max(ndim, 1) <= d < builtins.max(ndim, 1):
            raise IndexError(f"Dimension out of range (expected to be in range of "
                             f"[{-builtins.max(ndim, 1)}, {builtins.max(ndim, 1) - 1}], but got {d})")
        out.append(d % ndim if ndim else 0)
    return tuple(sorted(set(out)))


def _kept_shape(shape, axes):
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


class Sum(Function):
    complex_grad = True

    def forward(self, x):
        self.in_shape = x.shape
        self.ax = _axes(self.dim, x.ndim) if x.ndim else ()
        if x.dtype.kind in "bui":
            return x.sum(axis=self.ax, keepdims=self.keepdim, dtype="int64")
        if x.dtype == _F16:  # accumulate in float32, as PyTorch (float16 partial sums lose digits)
            return x.sum(axis=self.ax, keepdims=self.keepdim, dtype="float32").astype(_F16)
        return x.sum(axis=self.ax, keepdims=self.keepdim)

    def backward(self, g):
        if not self.keepdim:
            g = g.reshape(_kept_shape(self.in_shape, self.ax))
        return BroadcastTo(shape=self.in_shape)(g)


def sum(input, dim=None, keepdim=False, dtype=None):
    out = Sum(dim=dim, keepdim=keepdim)(input)
    return out if dtype is None else out.to(dtype)


def mean(input, dim=None, keepdim=False, dtype=None):
    if input.data.dtype.kind not in "fc" and dtype is None:
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be either a "
                           f"floating point or complex dtype. Got: {input.dtype}")
    if dtype is not None:
        input = input.to(dtype)
    if input.data.dtype == _F16:  # sum and divide in float32, round once (PyTorch's result)
        return mean(input.float(), dim, keepdim).half()
    ax = _axes(dim, input.ndim) if input.ndim else ()
    n = 1
    for a in ax:
        n *= input.shape[a]
    return sum(input, dim, keepdim) / builtins.max(n, 1) if n else sum(input, dim, keepdim) * float("nan")


class AMax(Function):
    """amax / amin: ties share the gradient evenly (PyTorch's rule for amax/amin and max())."""

    nan_pick = False

    def forward(self, x):
        self.in_shape = x.shape
        self.ax = _axes(self.dim, x.ndim) if x.ndim else ()
        if x.size == 0 and builtins.any(x.shape[a] == 0 for a in self.ax):
            raise RuntimeError(f"{self.name}(): expected a non-empty reduced dimension (no identity for "
                               f"{self.name}), got input shape {x.shape} reduced over dims {self.ax}")
        y = x.max(axis=self.ax, keepdims=True) if self.name == "amax" else x.min(axis=self.ax, keepdims=True)
        m = x == y
        if self.nan_pick:  # max()/min() of all elements: a NaN result sends the gradient to the NaNs
            m |= (x != x) & (y != y)  # (amax/amin give NaN gradients there, as PyTorch)
        m = m.astype(x.dtype)
        self.weights = m / m.sum(axis=self.ax, keepdims=True)
        return y if self.keepdim else y.reshape([s for i, s in enumerate(x.shape) if i not in self.ax])

    def backward(self, g):
        if not self.keepdim:
            g = g.reshape(_kept_shape(self.in_shape, self.ax))
        return BroadcastTo(shape=self.in_shape)(g) * Tensor(self.weights)


def amax(input, dim=(), keepdim=False):
    return AMax(dim=None if dim == () else dim, keepdim=keepdim, name="amax")(input)


def amin(input, dim=(), keepdim=False):
    return AMax(dim=None if dim == () else dim, keepdim=keepdim, name="amin")(input)


_MinMax = namedtuple("_MinMax", ["values", "indices"])


def _select_along(input, dim, keepdim, argfn):
    from .shape import gather

    idx = argfn(input.data, axis=dim, keepdims=True)
    vals = gather(input, dim, Tensor(idx))
    if not keepdim:
        vals = vals.squeeze(dim)
        idx = idx.squeeze(dim)
    return _MinMax(vals, Tensor(idx.astype("int64")))


def max(input, dim=None, keepdim=False):
    """``max(x)`` (the largest value), ``max(x, dim)`` (values, indices), or ``max(x, other)``."""
    if isinstance(dim, Tensor):
        from .basic import maximum

        return maximum(input, dim)
    if dim is None:
        return AMax(dim=None, keepdim=False, name="amax", nan_pick=True)(input)
    xp = get_array_module(input.data)
    return _select_along(input, dim, keepdim, xp.argmax)


def min(input, dim=None, keepdim=False):
    if isinstance(dim, Tensor):
        from .basic import minimum

        return minimum(input, dim)
    if dim is None:
        return AMax(dim=None, keepdim=False, name="amin", nan_pick=True)(input)
    xp = get_array_module(input.data)
    return _select_along(input, dim, keepdim, xp.argmin)


def argmax(input, dim=None, keepdim=False):
    xp = get_array_module(input.data)
    if dim is None:
        return Tensor(xp.asarray(input.data.argmax()).astype("int64"))
    return Tensor(xp.argmax(input.data, axis=dim, keepdims=keepdim).astype("int64"))


def argmin(input, dim=None, keepdim=False):
    xp = get_array_module(input.data)
    if dim is None:
        return Tensor(xp.asarray(input.data.argmin()).astype("int64"))
    return Tensor(xp.argmin(input.data, axis=dim, keepdims=keepdim).astype("int64"))


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    ax = _axes(dim, input.ndim) if input.ndim else ()
    n = 1
    for a in ax:
        n *= input.shape[a]
    mu = mean(input, dim=ax, keepdim=True)
    d = input - mu
    # PyTorch divides by max(0, n - correction): inf where the squared deviations are > 0, else NaN.
    return sum(d * d, dim=ax, keepdim=keepdim) / (n - correction) if n - correction > 0 else (
        sum(d * d, dim=ax, keepdim=keepdim) * float("inf"))


class _StdSqrt(Function):
    """sqrt for std: PyTorch's std gradient is 0 where std is 0 (a constant slice), not 0 * inf = NaN."""

    saves_output = True

    def forward(self, v):
        return get_array_module(v).sqrt(v)

    def backward(self, g):
        (y,) = self.saved_tensors
        zero = y == 0
        return where(zero, 0.0, g / (2 * where(zero, 1.0, y)))


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return _StdSqrt()(var(input, dim, unbiased, keepdim, correction=correction))


def logsumexp(input, dim, keepdim=False):
    if input.data.size == 0:  # amax has no identity; log(sum(exp)) of an empty reduction is -inf
        return log(sum(exp(input), dim, keepdim))
    m = amax(input, dim, keepdim=True).detach()
    m = where(Tensor(get_array_module(m.data).isfinite(m.data)), m, 0.0)
    out = log(sum(exp(input - m), dim, keepdim=True)) + m
    return out if keepdim else out.squeeze(dim) if isinstance(dim, int) else out.reshape(
        [s for i, s in enumerate(out.shape) if i not in _axes(dim, input.ndim)])


class Softmax(Function):
    saves_output = True

    def forward(self, x):
        xp = get_array_module(x)
        if x.dtype == _F16:  # computed in float32 and rounded once, as PyTorch
            return self.forward(x.astype("float32")).astype(_F16)
        if x.size == 0:  # NumPy's max has no identity; an empty softmax is empty (PyTorch)
            return x.copy()
        e = xp.exp(x - x.max(axis=self.dim, keepdims=True))
        return e / e.sum(axis=self.dim, keepdims=True)

    def backward(self, g):
        (y,) = self.saved_tensors
        gy = g * y
        return gy - y * sum(gy, self.dim, keepdim=True)


class LogSoftmax(Function):
    saves_output = True

    def forward(self, x):
        xp = get_array_module(x)
        if x.dtype == _F16:
            return self.forward(x.astype("float32")).astype(_F16)
        if x.size == 0:
            return x.copy()
        s = x - x.max(axis=self.dim, keepdims=True)
        return s - xp.log(xp.exp(s).sum(axis=self.dim, keepdims=True))

    def backward(self, g):
        (y,) = self.saved_tensors
        return g - exp(y) * sum(g, self.dim, keepdim=True)


def _float_input(input, dtype):
    if dtype is not None:
        input = input.to(dtype)
    if input.data.dtype.kind != "f":
        input = input.float()
    return input


def softmax(input, dim, dtype=None):
    return Softmax(dim=dim)(_float_input(input, dtype))


def log_softmax(input, dim, dtype=None):
    return LogSoftmax(dim=dim)(_float_input(input, dtype))


class Cumsum(Function):
    complex_grad = True

    def forward(self, x):
        # Integer and bool sums accumulate in int64 (NumPy would use uint64 for unsigned input);
        # float16 in float32 (a float16 running sum stops growing at 2048 when adding values < 1).
        if x.dtype == _F16:
            return x.cumsum(axis=self.dim, dtype="float32").astype(_F16)
        return x.cumsum(axis=self.dim, dtype="int64" if x.dtype.kind in "biu" else None)

    def backward(self, g):
        return Cumsum(dim=self.dim)(g.flip(self.dim)).flip(self.dim)


def cumsum(input, dim, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    if input.ndim == 0:  # NumPy's cumsum makes a 0-d array 1-d; PyTorch keeps it 0-d
        return Cumsum(dim=0)(input.reshape(1)).reshape(())
    return Cumsum(dim=dim)(input)


class PNorm(Function):
    """``(sum |x|^p) ** (1/p)`` over ``dim`` for p > 1, with PyTorch's zero gradient where the norm is 0
    (composing sqrt(sum(x * x)) gives 0 * inf = NaN there)."""

    saves_inputs = (0,)
    saves_output = True

    def forward(self, x):
        xp = get_array_module(x)
        self.ax = _axes(self.dim, x.ndim) if x.ndim else ()
        self.in_shape = x.shape
        if self.p == 2:
            return xp.sqrt((x * x).sum(axis=self.ax, keepdims=self.keepdim))
        return (xp.abs(x) ** self.p).sum(axis=self.ax, keepdims=self.keepdim) ** (1.0 / self.p)

    def backward(self, g):
        from .basic import sign

        x, y = self.saved_tensors
        if not self.keepdim:
            kept = _kept_shape(self.in_shape, self.ax)
            g, y = g.reshape(kept), y.reshape(kept)
        y_safe = where(y == 0, 1.0, y)
        if self.p == 2:
            return g * x / y_safe
        return g * sign(x) * x.abs() ** (self.p - 1) / y_safe ** (self.p - 1)


def norm(input, p="fro", dim=None, keepdim=False):
    """Vector p-norm over ``dim`` (all elements when None): p = 'fro', any p > 0, inf, -inf or 0. A complex
    tensor's norm is that of its magnitudes (the gradient comes through ``abs``)."""
    if input.data.dtype.kind == "c":
        input = input.abs()
    if p == "fro":
        p = 2
    if p in (float("inf"), "inf"):
        return amax(input.abs(), dim if dim is not None else (), keepdim)
    if p in (float("-inf"), "-inf"):
        return amin(input.abs(), dim if dim is not None else (), keepdim)
    if p == 0:  # the number of non-zero elements (not differentiable)
        return sum((input != 0).to(input.dtype), dim, keepdim)
    if p == 1:
        return sum(input.abs(), dim, keepdim)
    if p > 1:
        return PNorm(p=p, dim=dim, keepdim=keepdim)(input)
    return sum(input.abs() ** p, dim, keepdim) ** (1.0 / p)


_Sorted = namedtuple("_Sorted", ["values", "indices"])


def _argsort(a, dim, descending):
    """Stable argsort along ``dim``; NaN counts as the largest value (last ascending, first descending).

    Descending order sorts the reversed array ascending and maps the indices back, which keeps ties in
    their original order without negating (negation wraps unsigned ints and cannot move NaN first).
    """
    xp = get_array_module(a)
    if not descending:
        return xp.argsort(a, axis=dim, kind="stable")
    idx = xp.argsort(xp.flip(a, axis=dim), axis=dim, kind="stable")
    return (a.shape[dim] - 1) - xp.flip(idx, axis=dim)


def sort(input, dim=-1, descending=False, stable=False):
    from .shape import gather

    idx = _argsort(input.data, dim, descending)
    idx_t = Tensor(idx.astype("int64"))
    return _Sorted(gather(input, dim, idx_t), idx_t)


def argsort(input, dim=-1, descending=False, stable=False):
    return sort(input, dim, descending, stable).indices


def topk(input, k, dim=-1, largest=True, sorted=True):
    from .shape import gather

    xp = get_array_module(input.data)
    n = input.shape[dim]
    if not 0 <= k <= n:
        raise RuntimeError(f"topk: k ({k}) is out of range for dimension {dim} of size {n}")
    idx = _argsort(input.data, dim, largest)
    idx = xp.take(idx, xp.arange(k), axis=dim)
    idx_t = Tensor(idx.astype("int64"))
    return _Sorted(gather(input, dim, idx_t), idx_t)


def all(input, dim=None, keepdim=False):
    d = input.data.astype(bool)
    return Tensor(d.all() if dim is None else d.all(axis=dim, keepdims=keepdim))


def any(input, dim=None, keepdim=False):
    d = input.data.astype(bool)
    return Tensor(d.any() if dim is None else d.any(axis=dim, keepdims=keepdim))


def _prod_except(x, axis):
    """E_i = prod_{j != i} x_j along ``axis`` (the whole tensor when None): d prod(x) / dx, exact with zeros.

    left_i * right_i, the products of the elements before and after i (two cumulative products), instead of
    prod / x, which divides by zero. Built from differentiable operations (cumprod's gradients are exact at
    zeros too), so prod() has derivatives of every order."""
    from .extra import cumprod
    from .shape import cat, flip, narrow

    if axis is None:
        return _prod_except(x.reshape(-1), 0).reshape(x.shape)
    n = x.shape[axis]
    one_shape = list(x.shape)
    one_shape[axis] = 1
    one = Tensor(get_array_module(x.data).ones(one_shape, dtype=x.data.dtype))
    if n == 1:
        return one
    left = cat([one, cumprod(narrow(x, axis, 0, n - 1), axis)], axis)
    xr = flip(x, axis)
    right = flip(cat([one, cumprod(narrow(xr, axis, 0, n - 1), axis)], axis), axis)
    return left * right


class Prod(Function):
    def forward(self, x):
        xp = get_array_module(x)
        self.in_shape = x.shape
        dt = "int64" if x.dtype.kind in "bui" else None
        return xp.prod(x, axis=self.axis, keepdims=self.keepdim, dtype=dt)

    def backward(self, g):
        x = self.inputs[0]
        if self.axis is None:
            g = g.reshape((1,) * len(self.in_shape))
        elif not self.keepdim:
            g = g.unsqueeze(self.axis)
        return g * _prod_except(x, self.axis)


def prod(input, dim=None, keepdim=False, dtype=None):
    """Product of all elements, or along ``dim`` (one int, as in PyTorch). Differentiable, exactly
    at zeros too (the gradient of each element is the product of the others)."""
    if dtype is not None:
        input = input.to(dtype)
    if dim is not None and not isinstance(dim, int):
        raise TypeError(f"prod(): dim must be an int (one dimension), got {dim!r}")
    if dim is None or input.ndim == 0:
        return Prod(axis=None, keepdim=False)(input)
    (ax,) = _axes(dim, input.ndim)
    return Prod(axis=ax, keepdim=keepdim)(input)
