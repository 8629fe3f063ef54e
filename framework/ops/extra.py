"""More of PyTorch's tensor functions: element-wise math, einsum and friends, triangles, rolls,
medians, indexing helpers, small linear algebra, and counting.

Differentiable ones are Functions whose backward is written with Tensor operations, or compositions
of differentiable operations, so gradients of gradients work as for the core operations. Counting
and searching functions (``unique``, ``bincount``, ``searchsorted``, ``bucketize``, ``isinf``) give
integer or bool results, without gradient, as in PyTorch.
"""

from __future__ import annotations

import builtins
import math
import string

import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from ..tensor import Tensor
from .basic import _conj, _float_in, exp, maximum, sqrt, unbroadcast, where
from .reduce import cumsum, sort, sum
from .shape import _norm_dim, cat, expand, gather, getitem, matmul, narrow, permute, reshape, transpose

__all__ = [
    "log1p", "expm1", "log2", "log10", "exp2", "reciprocal", "asin", "acos", "atan", "atan2", "sinh", "cosh",
    "trunc", "frac", "fmod", "remainder", "hypot", "logaddexp", "lerp", "erf",
    "einsum", "outer", "addmm", "baddbmm", "tensordot",
    "tril", "triu", "roll", "meshgrid", "movedim", "moveaxis", "swapaxes", "tile", "ravel", "diag",
    "diagonal", "trace",
    "cdist",
    "median", "kthvalue", "quantile", "nanmean", "cumprod", "cummax", "cummin", "masked_select",
    "take_along_dim", "repeat_interleave",
    "inverse", "det",
    "isinf", "unique", "bincount", "searchsorted", "bucketize",
]


# ----------------------------------------------------------------------------- element-wise


class _Unary(Function):
    """y = f(x) with f' given as a Tensor expression of x (and y): differentiable to any order."""

    saves_inputs = (0,)
    saves_output = True

    def forward(self, x):
        return self.fn(get_array_module(x), x)

    def backward(self, g):
        x, y = self.saved_tensors
        return g * self.grad(x, y)


def _unary(name, fn, grad):
    """A differentiable element-wise function: ``fn(xp, array)``, ``grad(x, y)`` the derivative."""

    def f(input):
        return _Unary(fn=fn, grad=grad)(_float_in(input))

    f.__name__ = name
    f.__doc__ = f"Element-wise {name}, as ``torch.{name}``."
    return f


log1p = _unary("log1p", lambda xp, x: xp.log1p(x), lambda x, y: 1 / (1 + x))
expm1 = _unary("expm1", lambda xp, x: xp.expm1(x), lambda x, y: y + 1)
log2 = _unary("log2", lambda xp, x: xp.log2(x), lambda x, y: 1 / (x * math.log(2.0)))
log10 = _unary("log10", lambda xp, x: xp.log10(x), lambda x, y: 1 / (x * math.log(10.0)))
exp2 = _unary("exp2", lambda xp, x: xp.exp2(x), lambda x, y: y * math.log(2.0))
asin = _unary("asin", lambda xp, x: xp.arcsin(x), lambda x, y: 1 / sqrt(1 - x * x))
acos = _unary("acos", lambda xp, x: xp.arccos(x), lambda x, y: -1 / sqrt(1 - x * x))
atan = _unary("atan", lambda xp, x: xp.arctan(x), lambda x, y: 1 / (1 + x * x))
sinh = _unary("sinh", lambda xp, x: xp.sinh(x), lambda x, y: cosh(x))
cosh = _unary("cosh", lambda xp, x: xp.cosh(x), lambda x, y: sinh(x))


def reciprocal(input):
    """1 / input, as ``torch.reciprocal``."""
    return 1 / _float_in(input)


def erf(input):
    """The error function, as ``torch.erf`` (``framework.nn.functional.erf``)."""
    from ..functional import erf as _erf

    return _erf(_float_in(input))


class _Atan2(Function):
    def forward(self, y, x):
        xp = get_array_module(y if hasattr(y, "dtype") else x)
        return xp.arctan2(y, x)

    def backward(self, g):
        y, x = self.inputs
        r2 = x * x + y * y
        gy = unbroadcast(g * x / r2, y.shape) if self.needs_input_grad[0] else None
        gx = unbroadcast(-g * y / r2, x.shape) if self.needs_input_grad[1] else None
        return gy, gx


def atan2(input, other):
    """The angle of (other, input): ``torch.atan2(y, x)``."""
    return _Atan2()(_float_in(input), _float_in(other))


class _Trunc(Function):
    """Rounding toward zero: a step function, so a zero gradient (PyTorch's result still requires grad)."""

    def forward(self, x):
        return get_array_module(x).trunc(x)

    def backward(self, g):
        return g * 0


def trunc(input):
    """Round toward zero, as ``torch.trunc``."""
    return _Trunc()(input)


def frac(input):
    """input - trunc(input); its gradient is 1."""
    return input - trunc(input).detach()


def fmod(input, other):
    """C's remainder: the sign of the dividend (``torch.fmod``). Gradient 1 for input, -trunc(a/b) for
    other."""
    q = trunc(input / other).detach()
    return input - q * other


def remainder(input, other):
    """Python's modulo: the sign of the divisor (``torch.remainder``)."""
    q = Tensor(get_array_module(input.data).floor_divide(input.data, getattr(other, "data", other)))
    return input - q.to(input.dtype) * other


def hypot(input, other):
    """sqrt(input² + other²), as ``torch.hypot`` (gradient input / hypot)."""
    return sqrt(input * input + other * other)


def logaddexp(input, other):
    """log(exp(input) + exp(other)) without overflow: max + log1p(exp(-|input - other|))."""
    d = input - other
    return maximum(input, other) + log1p(exp(-(d * _sign(d))))


def _sign(t):
    return Tensor(get_array_module(t.data).sign(t.data))


def lerp(input, end, weight):
    """input + weight * (end - input), as ``torch.lerp``."""
    return input + weight * (end - input)


# ----------------------------------------------------------------------------- einsum and products


def _einsum_parse(equation, shapes):
    """Explicit subscripts: (input subscripts per operand, output subscripts), '...' expanded into
    letters no operand uses. Implicit output (no '->'): the letters used once, sorted, after '...'."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"einsum(): the equation {equation!r} names {len(ins)} operands, "
                         f"{len(shapes)} were given")
    used = set(eq) - set(".,->")
    spare = [c for c in string.ascii_letters if c not in used]
    n_ell = builtins.max([len(s) - (len(sub) - 3) for sub, s in zip(ins, shapes) if "..." in sub], default=0)
    ell = "".join(spare[:n_ell])
    out_ins = []
    for sub, s in zip(ins, shapes):
        if not builtins.all(c.isalpha() for c in sub.replace("...", "")):
            raise ValueError(f"einsum(): invalid subscripts {sub!r} in {equation!r} (letters and '...' only)")
        if "..." in sub:
            k = len(s) - (len(sub) - 3)
            if k < 0:
                raise ValueError(f"einsum(): operand {sub!r} has {len(s)} dimensions, too few for "
                                 f"{equation!r}")
            sub = sub.replace("...", ell[n_ell - k:])
        if len(sub) != len(s):
            raise ValueError(
                f"einsum(): subscripts {sub!r} name {len(sub)} dimensions but the operand has shape "
                f"{tuple(s)}"
            )
        if len(set(sub)) != len(sub):
            raise ValueError(f"einsum(): repeated subscripts within one operand ({sub!r}, a diagonal) "
                             "are not supported")
        out_ins.append(sub)
    if arrow:
        out = rhs.replace("...", ell)
        if not builtins.all(c.isalpha() for c in out) or len(set(out)) != len(out):
            raise ValueError(f"einsum(): invalid output subscripts {rhs!r}")
        missing = set(out) - set("".join(out_ins))
        if missing:
            raise ValueError(f"einsum(): output subscripts {sorted(missing)} appear in no operand")
    else:
        counts = {c: "".join(out_ins).count(c) for c in set("".join(out_ins))}
        out = ell + "".join(sorted(c for c, k in counts.items() if k == 1 and c not in ell))
    return out_ins, out


class _Einsum(Function):
    """einsum over explicit subscripts (no repeated letter within an operand). Each operand's gradient
    is the einsum of the output's gradient with the other operands, broadcast over the letters only
    that operand has; size-1 broadcast dimensions are summed back."""

    complex_grad = True  # (the backward conjugates the other operands)

    def forward(self, *arrays):
        xp = get_array_module(arrays[0])
        return xp.einsum(",".join(self.ins) + "->" + self.out, *arrays, optimize=True)

    def backward(self, g):
        ops = self.inputs
        grads = []
        for k, sub in enumerate(self.ins):
            if not self.needs_input_grad[k]:
                grads.append(None)
                continue
            others = [(s, t) for j, (s, t) in enumerate(zip(self.ins, ops)) if j != k]
            avail = "".join(c for c in sub if c in self.out or builtins.any(c in s for s, _ in others))
            r = _Einsum(ins=[self.out] + [s for s, _ in others], out=avail)(g, *[_conj(t) for _, t in others])
            if avail != sub:  # letters summed within this operand only: its gradient is constant along them
                # (avail keeps sub's order: insert the missing axes, then broadcast along them)
                r = expand(reshape(r, tuple(r.shape[avail.index(c)] if c in avail else 1 for c in sub)),
                           tuple(ops[k].shape))
            grads.append(r)
        return tuple(grads)


def _broadcast_sizes(ins, tensors):
    """Each letter's size; a size-1 dimension broadcasts against a larger one (PyTorch's einsum)."""
    sizes = {}
    for sub, t in zip(ins, tensors):
        for c, n in zip(sub, t.shape):
            if sizes.get(c, 1) not in (1, n) and n != 1:
                raise ValueError(f"einsum(): subscript {c!r} has size {n} for one operand and {sizes[c]} "
                                 "for another")
            sizes[c] = builtins.max(sizes.get(c, 1), n)
    return sizes


def einsum(equation, *operands):
    """``torch.einsum``: explicit ('ij,jk->ik') or implicit output, '...' for leading dimensions,
    size-1 dimensions broadcast; differentiable (gradients of gradients too). A letter repeated
    within one operand (a diagonal) is refused."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise ValueError("einsum(): at least one operand is required")
    ins, out = _einsum_parse(equation, [t.shape for t in operands])
    sizes = _broadcast_sizes(ins, operands)
    ts = [expand(t, tuple(sizes[c] for c in sub)) if tuple(t.shape) != tuple(sizes[c] for c in sub) else t
          for sub, t in zip(ins, operands)]
    return _Einsum(ins=ins, out=out)(*ts)


def outer(input, vec2):
    """The outer product of two vectors, as ``torch.outer``."""
    if input.ndim != 1 or vec2.ndim != 1:
        raise ValueError(f"outer(): expected two 1-D tensors, got shapes {tuple(input.shape)} and "
                         f"{tuple(vec2.shape)}")
    return reshape(input, (-1, 1)) * reshape(vec2, (1, -1))


def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """beta * input + alpha * (mat1 @ mat2), as ``torch.addmm``."""
    if mat1.ndim != 2 or mat2.ndim != 2:
        raise ValueError(f"addmm(): mat1 and mat2 must be matrices, got {tuple(mat1.shape)} and "
                         f"{tuple(mat2.shape)}")
    return _scaled_sum(input, matmul(mat1, mat2), beta, alpha)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """beta * input + alpha * (batch1 @ batch2) over a batch of matrices, as ``torch.baddbmm``."""
    if batch1.ndim != 3 or batch2.ndim != 3:
        raise ValueError(f"baddbmm(): expected 3-D batches, got {tuple(batch1.shape)} and "
                         f"{tuple(batch2.shape)}")
    return _scaled_sum(input, matmul(batch1, batch2), beta, alpha)


def _scaled_sum(input, product, beta, alpha):
    p = product if alpha == 1 else product * alpha
    if beta == 0:  # input is ignored, NaN and all (PyTorch's rule)
        return p
    return (input if beta == 1 else input * beta) + p


def tensordot(a, b, dims=2):
    """Sum over the last ``dims`` dimensions of a and the first of b, or over the pairs in
    ``dims=([a dims], [b dims])``, as ``torch.tensordot``."""
    if isinstance(dims, int):
        if dims < 0 or dims > builtins.min(a.ndim, b.ndim):
            raise ValueError(f"tensordot(): dims={dims} for operands of {a.ndim} and {b.ndim} dimensions")
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        da, db = ([_norm_dim(d, t.ndim) for d in ([ds] if isinstance(ds, int) else ds)]
                  for ds, t in zip(dims, (a, b)))
    if len(da) != len(db):
        raise ValueError(f"tensordot(): {len(da)} dimensions of a paired with {len(db)} of b")
    for i, j in zip(da, db):
        if a.shape[i] != b.shape[j]:
            raise ValueError(f"tensordot(): dimension {i} of a ({a.shape[i]}) and {j} of b ({b.shape[j]}) "
                             "differ")
    letters = iter(string.ascii_letters)
    sa = [next(letters) for _ in range(a.ndim)]
    sb = [next(letters) for _ in range(b.ndim)]
    for i, j in zip(da, db):
        sb[j] = sa[i]
    out = [c for i, c in enumerate(sa) if i not in da] + [c for j, c in enumerate(sb) if j not in db]
    return einsum("".join(sa) + "," + "".join(sb) + "->" + "".join(out), a, b)


# ----------------------------------------------------------------------------- shapes and triangles


def _tri_mask(xp, rows, cols, diagonal, lower):
    r = xp.arange(rows)[:, None]
    c = xp.arange(cols)[None, :]
    return (c - r <= diagonal) if lower else (c - r >= diagonal)


def _tri(input, diagonal, lower, name):
    if input.ndim < 2:
        raise ValueError(f"{name}(): input must have at least 2 dimensions, got shape {tuple(input.shape)}")
    xp = get_array_module(input.data)
    m = _tri_mask(xp, input.shape[-2], input.shape[-1], int(diagonal), lower)
    zero = Tensor(xp.zeros((), dtype=input.data.dtype))
    return where(Tensor(m), input, zero)


def tril(input, diagonal=0):
    """The lower triangle of the last two dimensions (the rest zero), as ``torch.tril``."""
    return _tri(input, diagonal, True, "tril")


def triu(input, diagonal=0):
    """The upper triangle of the last two dimensions (the rest zero), as ``torch.triu``."""
    return _tri(input, diagonal, False, "triu")


def roll(input, shifts, dims=None):
    """Shift elements along ``dims`` with wrap-around, as ``torch.roll``; without dims, the flattened
    tensor is rolled and reshaped."""
    if dims is None:
        if not isinstance(shifts, int) and len(shifts) != 1:
            raise ValueError("roll(): without dims, shifts must be a single number")
        s = shifts if isinstance(shifts, int) else shifts[0]
        return reshape(roll(reshape(input, (-1,)), s, 0), input.shape)
    shifts = [shifts] if isinstance(shifts, int) else list(shifts)
    dims = [dims] if isinstance(dims, int) else list(dims)
    if len(shifts) != len(dims):
        raise ValueError(f"roll(): {len(shifts)} shifts for {len(dims)} dims")
    out = input
    for s, d in zip(shifts, dims):
        d = _norm_dim(d, input.ndim)
        n = input.shape[d]
        k = int(s) % n if n else 0
        if k:
            out = cat([narrow(out, d, n - k, k), narrow(out, d, 0, n - k)], d)
    return out


def meshgrid(*tensors, indexing="ij"):
    """Coordinate grids from 1-D tensors, as ``torch.meshgrid`` ('ij' matrix or 'xy' Cartesian indexing)."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid(): indexing must be 'ij' or 'xy', got {indexing!r}")
    for t in tensors:
        if t.ndim > 1:
            raise ValueError(f"meshgrid(): expected 0-D or 1-D tensors, got shape {tuple(t.shape)}")
    ts = [reshape(t, (-1,)) for t in tensors]
    if indexing == "xy" and len(ts) >= 2:
        ts[0], ts[1] = ts[1], ts[0]
    shape = tuple(t.shape[0] for t in ts)
    grids = []
    for i, t in enumerate(ts):
        view = [1] * len(ts)
        view[i] = -1
        grids.append(expand(reshape(t, tuple(view)), shape))
    if indexing == "xy" and len(ts) >= 2:  # the grid of (y, x, ...) with the first two outputs swapped back
        grids[0], grids[1] = grids[1], grids[0]
    return tuple(grids)


def movedim(input, source, destination):
    """Move dimensions to new positions (the others keep their order), as ``torch.movedim``."""
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    if len(src) != len(dst):
        raise ValueError(f"movedim(): {len(src)} source dims but {len(dst)} destinations")
    src = [_norm_dim(d, input.ndim) for d in src]
    dst = [_norm_dim(d, input.ndim) for d in dst]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ValueError("movedim(): repeated dims")
    order = [None] * input.ndim
    for s, d in zip(src, dst):
        order[d] = s
    rest = iter(d for d in range(input.ndim) if d not in src)
    order = [o if o is not None else next(rest) for o in order]
    return permute(input, *order)



moveaxis = movedim  # (NumPy's name, as torch.moveaxis)

def swapaxes(input, axis0, axis1):
    """``torch.swapaxes``: transpose."""
    return transpose(input, axis0, axis1)


def tile(input, dims):
    """Repeat the tensor along each dimension (``dims`` padded with ones on the left), as ``torch.tile``."""
    dims = tuple(dims)
    if len(dims) < input.ndim:
        dims = (1,) * (input.ndim - len(dims)) + dims
    return input.repeat(*dims)


def ravel(input):
    """The tensor flattened to 1-D, as ``torch.ravel``."""
    return reshape(input, (-1,))


def diag(input, diagonal=0):
    """A 1-D input gives the square matrix with it on the given diagonal; a 2-D input gives that
    diagonal, as ``torch.diag``."""
    xp = get_array_module(input.data)
    k = int(diagonal)
    if input.ndim == 1:
        n = input.shape[0] + builtins.abs(k)
        rows = xp.arange(input.shape[0]) + builtins.max(-k, 0)
        cols = xp.arange(input.shape[0]) + builtins.max(k, 0)
        flat = Tensor((rows * n + cols).astype(np.int64))
        out = Tensor(xp.zeros(n * n, dtype=input.data.dtype))
        return reshape(out.scatter_add(0, flat, input), (n, n))
    if input.ndim == 2:
        r, c = input.shape
        rows = xp.arange(builtins.max(-k, 0), r)
        cols = rows + k
        keep = (cols >= 0) & (cols < c)
        rows, cols = rows[keep], cols[keep]
        return getitem(input, (Tensor(rows.astype(np.int64)), Tensor(cols.astype(np.int64))))
    raise ValueError(f"diag(): expected a 1-D or 2-D tensor, got shape {tuple(input.shape)}")


def diagonal(input, offset=0, dim1=0, dim2=1):
    """The diagonal of the (dim1, dim2) planes as a last dimension, as ``torch.diagonal``."""
    d1, d2 = _norm_dim(dim1, input.ndim), _norm_dim(dim2, input.ndim)
    if d1 == d2:
        raise ValueError(f"diagonal(): dim1 and dim2 are the same dimension ({dim1}, {dim2})")
    x = movedim(input, (d1, d2), (-2, -1))
    xp = get_array_module(input.data)
    r, c = x.shape[-2:]
    k = int(offset)
    rows = xp.arange(builtins.max(-k, 0), r)
    cols = rows + k
    keep = (cols >= 0) & (cols < c)
    rows, cols = rows[keep].astype(np.int64), cols[keep].astype(np.int64)
    return getitem(x, (Ellipsis, Tensor(rows), Tensor(cols)))


def cdist(x1, x2, p=2.0):
    """Pairwise p-norm distances between the rows of x1 (..., P, M) and x2 (..., R, M), as
    ``torch.cdist`` (zero gradient where two points coincide, as PyTorch)."""
    from .reduce import norm

    if x1.ndim < 2 or x2.ndim < 2 or x1.shape[-1] != x2.shape[-1]:
        raise ValueError(f"cdist(): expected (..., P, M) and (..., R, M), got {tuple(x1.shape)} and "
                         f"{tuple(x2.shape)}")
    diff = x1.unsqueeze(-2) - x2.unsqueeze(-3)
    return norm(diff, p, dim=-1)


def trace(input):
    """The sum of a matrix's main diagonal, as ``torch.trace``."""
    if input.ndim != 2:
        raise ValueError(f"trace(): expected a matrix, got shape {tuple(input.shape)}")
    return sum(diag(input))


# ----------------------------------------------------------------------------- reductions and indexing


def median(input, dim=None, keepdim=False):
    """The lower median (of an even count, the smaller middle value), as ``torch.median``: a 0-D tensor
    without ``dim``; (values, indices) along ``dim``. The gradient goes to the chosen element."""
    from collections import namedtuple

    if dim is None:
        flat = reshape(input, (-1,))
        if flat.shape[0] == 0:
            raise ValueError("median(): the input is empty")
        values, idx = sort(flat, 0)
        return values[(flat.shape[0] - 1) // 2]
    d = _norm_dim(dim, input.ndim)
    n = input.shape[d]
    if n == 0:
        raise ValueError(f"median(): dimension {dim} is empty")
    values, idx = sort(input, d)
    k = (n - 1) // 2
    v, i = narrow(values, d, k, 1), narrow(idx, d, k, 1)
    if not keepdim:
        v, i = v.squeeze(d), i.squeeze(d)
    return namedtuple("median", ["values", "indices"])(v, i)


def kthvalue(input, k, dim=-1, keepdim=False):
    """The k-th smallest element along ``dim`` (k from 1) and its index, as ``torch.kthvalue``."""
    from collections import namedtuple

    d = _norm_dim(dim, input.ndim) if input.ndim else 0
    x = input if input.ndim else reshape(input, (1,))
    n = x.shape[d]
    if not 1 <= int(k) <= n:
        raise ValueError(f"kthvalue(): k = {k} is out of range 1..{n} for dimension {dim}")
    values, idx = sort(x, d)
    v, i = narrow(values, d, int(k) - 1, 1), narrow(idx, d, int(k) - 1, 1)
    if not keepdim or not input.ndim:
        v, i = v.squeeze(d), i.squeeze(d)
    return namedtuple("kthvalue", ["values", "indices"])(v, i)


_QUANTILE_MODES = ("linear", "lower", "higher", "midpoint", "nearest")


def quantile(input, q, dim=None, keepdim=False, *, interpolation="linear"):
    """The q-th quantiles along ``dim`` (all elements when None), as ``torch.quantile``: q a number in
    [0, 1] or a 1-D tensor of them (a leading dimension of the result); ``interpolation`` between the
    two neighbouring order statistics as PyTorch. Differentiable (the gradient goes to those two)."""
    if interpolation not in _QUANTILE_MODES:
        raise ValueError(f"quantile(): interpolation must be one of {', '.join(_QUANTILE_MODES)}, got "
                         f"{interpolation!r}")
    qs = np.asarray(q.data.get() if hasattr(getattr(q, "data", None), "get") else getattr(q, "data", q),
                    dtype=np.float64)
    if qs.ndim > 1 or ((qs < 0) | (qs > 1)).any() or np.isnan(qs).any():
        raise ValueError(f"quantile(): q must be a number or a 1-D tensor of numbers in [0, 1], got "
                         f"{qs.tolist()}")
    if dim is None:
        x, d = reshape(input, (-1,)), 0
    else:
        x, d = input, _norm_dim(dim, input.ndim)
    n = x.shape[d]
    if n == 0:
        raise ValueError("quantile(): the input is empty")
    values = sort(x, d)[0]
    outs = []
    for qv in qs.reshape(-1):
        pos = qv * (n - 1)
        lo, hi = int(math.floor(pos)), int(math.ceil(pos))
        frac_ = pos - lo
        if interpolation == "lower" or (interpolation == "nearest" and round(pos) == lo):
            hi, frac_ = lo, 0.0
        elif interpolation == "higher" or interpolation == "nearest":
            lo, frac_ = hi, 0.0
        elif interpolation == "midpoint" and hi != lo:
            frac_ = 0.5
        a = narrow(values, d, lo, 1)
        v = a if hi == lo or frac_ == 0 else a + (narrow(values, d, hi, 1) - a) * frac_
        if dim is None:
            v = reshape(v, (1,) * input.ndim if keepdim else ())
        elif not keepdim:
            v = v.squeeze(d)
        outs.append(v)
    if qs.ndim == 0:
        return outs[0]
    from .shape import stack

    return stack(outs, 0)


def _reverse_cumsum(t, d):
    return cumsum(t.flip(d), d).flip(d)


class _Cumprod(Function):
    """Running product along ``dim``, with the gradient of :func:`_cumprod_grad`."""

    saves_inputs = (0,)
    saves_output = True

    def forward(self, x):
        return x.cumprod(axis=self.dim)

    def backward(self, g):
        x, y = self.saved_tensors
        return _cumprod_grad(x, y, g, self.dim)


def _cumprod_grad(x, y, g, d):
    """sum over j >= i of g_j prod_{k <= j, k != i} x_k, without dividing by zero, in differentiable
    operations. With z the first zero of a slice and x' the slice with x_z taken as 1 (y' its running
    product): before z it is (reverse cumsum of g * y) / x_i; at z, the reverse cumsum of g * y'; after z,
    x_z times the same gradient for x' (0 in value, but its derivative in x_z is not: gradients of
    gradients stay right)."""
    xp = get_array_module(x.data)
    zeros_so_far = (x.data == 0).cumsum(axis=d)
    before = Tensor(zeros_so_far == 0)
    one = Tensor(xp.ones((), dtype=x.data.dtype))
    zero = Tensor(xp.zeros((), dtype=x.data.dtype))
    grad = where(before, _reverse_cumsum(g * y, d) / where(before, x, one), zero)
    first_mask = (x.data == 0) & (zeros_so_far == 1)
    if not bool(first_mask.any()):
        return grad
    first = Tensor(first_mask)
    x1 = where(first, one, x)
    y1 = _Cumprod(dim=d)(x1)
    x_zero = sum(where(first, x, zero), dim=d, keepdim=True)  # the zero itself, broadcast along the slice
    after = Tensor((zeros_so_far >= 1) & ~first_mask)
    return (grad + where(first, _reverse_cumsum(g * y1, d), zero)
            + where(after, x_zero * _cumprod_grad(x1, y1, g, d), zero))


def cumprod(input, dim, dtype=None):
    """The running product along ``dim``, as ``torch.cumprod``; its gradient is exact at zeros."""
    if dtype is not None:
        input = input.to(dtype)
    if input.ndim == 0:
        return reshape(_Cumprod(dim=0)(reshape(input, (1,))), ())
    return _Cumprod(dim=_norm_dim(dim, input.ndim))(input)


def _running(op, a):
    """``op.accumulate(a, axis=-1)`` for a binary ufunc such as ``maximum``. CuPy has no ``accumulate``
    for these, so there the running result is built in log2(n) passes, each combining every element
    with the one 2**k places before it (a Hillis-Steele scan); NaNs propagate as they do in NumPy."""
    if hasattr(op, "accumulate") and isinstance(a, np.ndarray):
        return op.accumulate(a, axis=-1)
    out, k = a.copy(), 1
    while k < a.shape[-1]:
        out[..., k:] = op(out[..., k:], out[..., :-k])
        k *= 2
    return out


def _cumext(input, dim, largest, name):
    from collections import namedtuple

    d = _norm_dim(dim, input.ndim) if input.ndim else 0
    x = input if input.ndim else reshape(input, (1,))
    xp = get_array_module(x.data)
    a = xp.moveaxis(x.data, d, -1)
    run = _running(xp.maximum if largest else xp.minimum, a)
    prev = xp.concatenate([a[..., :1], run[..., :-1]], axis=-1)
    # the index of the latest element equal to the running extreme (a tie moves it, as PyTorch)
    new = (a >= prev) if largest else (a <= prev)
    pos = xp.where(new, xp.arange(a.shape[-1]), 0)
    idx = _running(xp.maximum, pos)
    idx = Tensor(xp.ascontiguousarray(xp.moveaxis(idx, -1, d)).astype(np.int64))
    values = gather(x, d, idx)
    if not input.ndim:
        values, idx = reshape(values, ()), reshape(idx, ())
    return namedtuple(name, ["values", "indices"])(values, idx)


def cummax(input, dim):
    """Running maximum along ``dim`` and where it was reached, as ``torch.cummax``."""
    return _cumext(input, dim, True, "cummax")


def cummin(input, dim):
    """Running minimum along ``dim`` and where it was reached, as ``torch.cummin``."""
    return _cumext(input, dim, False, "cummin")


def nanmean(input, dim=None, keepdim=False):
    """The mean of the non-NaN elements, as ``torch.nanmean`` (NaN where all are NaN)."""
    xp = get_array_module(input.data)
    ok = Tensor(~xp.isnan(input.data))
    zero = Tensor(xp.zeros((), dtype=input.data.dtype))
    total = sum(where(ok, input, zero), dim=dim, keepdim=keepdim)
    count = sum(ok.to(input.dtype), dim=dim, keepdim=keepdim)
    return total / count


def masked_select(input, mask):
    """The elements where the (broadcast) bool mask is true, in a 1-D tensor, as ``torch.masked_select``."""
    m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype != bool:
        raise TypeError(f"masked_select(): the mask must be a bool tensor, got {m.dtype}")
    xp = get_array_module(input.data)
    shape = np.broadcast_shapes(tuple(input.shape), tuple(m.shape))
    x = expand(input, shape) if tuple(input.shape) != shape else input
    return getitem(x, Tensor(xp.broadcast_to(m, shape)))


def take_along_dim(input, indices, dim=None):
    """Values at ``indices`` along ``dim`` (the two broadcast against each other), as
    ``torch.take_along_dim``; without dim, on the flattened input."""
    if dim is None:
        return gather(reshape(input, (-1,)), 0, reshape(indices, (-1,)))
    d = _norm_dim(dim, input.ndim)
    if indices.ndim != input.ndim:
        raise ValueError(f"take_along_dim(): indices of {indices.ndim} dimensions for an input of "
                         f"{input.ndim}")
    pairs = list(enumerate(zip(input.shape, indices.shape)))  # broadcast against each other, but along d
    shape_i = [builtins.max(a, b) if k != d else b for k, (a, b) in pairs]
    shape_x = [builtins.max(a, b) if k != d else a for k, (a, b) in pairs]
    x = expand(input, tuple(shape_x)) if tuple(shape_x) != tuple(input.shape) else input
    idx = indices if tuple(shape_i) == tuple(indices.shape) else Tensor(
        get_array_module(indices.data).broadcast_to(indices.data, tuple(shape_i)))
    return gather(x, d, idx)


def repeat_interleave(input, repeats, dim=None):
    """Each element repeated ``repeats`` times (a number, or one count per element along ``dim``), as
    ``torch.repeat_interleave``; without dim, on the flattened input."""
    if dim is None:
        input, dim = reshape(input, (-1,)), 0
    d = _norm_dim(dim, input.ndim)
    n = input.shape[d]
    xp = get_array_module(input.data)
    r = repeats.data if isinstance(repeats, Tensor) else np.asarray(repeats)
    r = np.asarray(r.get() if hasattr(r, "get") else r).astype(np.int64).reshape(-1)
    if r.size == 1:
        r = np.full(n, int(r[0]), np.int64)
    if r.size != n or (r < 0).any():
        raise ValueError(f"repeat_interleave(): repeats must be one non-negative count or {n} of them, "
                         f"got {r.tolist()}")
    index = Tensor(xp.asarray(np.repeat(np.arange(n, dtype=np.int64), r)))
    return getitem(input, (slice(None),) * d + (index,))


# ----------------------------------------------------------------------------- linear algebra


class _Inverse(Function):
    saves_output = True

    def forward(self, a):
        xp = get_array_module(a)
        return xp.linalg.inv(a)

    def backward(self, g):
        (y,) = self.saved_tensors
        yt = transpose(y, -1, -2)
        return -matmul(matmul(yt, g), yt)


def inverse(input):
    """The inverse of each square matrix in the last two dimensions, as ``torch.inverse``; a singular
    matrix is an error naming it."""
    _square(input, "inverse")
    try:
        return _Inverse()(_float_in(input))
    except np.linalg.LinAlgError as e:
        raise RuntimeError(f"inverse(): a matrix of shape {tuple(input.shape)} is singular ({e})") from None


class _Det(Function):
    saves_inputs = (0,)
    saves_output = True

    def forward(self, a):
        return get_array_module(a).linalg.det(a)

    def backward(self, g):
        a, y = self.saved_tensors
        # d det(A) / dA = det(A) A^-T (for invertible A)
        scale = reshape(g * y, tuple(g.shape) + (1, 1))
        return scale * transpose(inverse(a), -1, -2)


def det(input):
    """The determinant of each square matrix in the last two dimensions, as ``torch.det`` (its
    gradient needs the matrix to be invertible)."""
    _square(input, "det")
    return _Det()(_float_in(input))


def _square(input, name):
    if input.ndim < 2 or input.shape[-1] != input.shape[-2]:
        raise ValueError(f"{name}(): expected square matrices in the last two dimensions, got shape "
                         f"{tuple(input.shape)}")


# ----------------------------------------------------------------------------- counting and searching


def isinf(input):
    """True where the element is +inf or -inf."""
    return Tensor(get_array_module(input.data).isinf(input.data))


def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):
    """The distinct elements, sorted, as ``torch.unique`` (with the inverse indices and the counts
    when asked; ``dim`` for distinct slices along a dimension)."""
    xp = get_array_module(input.data)
    a = input.data
    if dim is None:
        u, inv, cnt = xp.unique(a, return_inverse=True, return_counts=True)
        inv = inv.reshape(a.shape)
    else:
        d = _norm_dim(dim, a.ndim)
        u, inv, cnt = xp.unique(a, return_inverse=True, return_counts=True, axis=d)
        inv = inv.reshape(-1)
    out = [Tensor(u)]
    if return_inverse:
        out.append(Tensor(inv.astype(np.int64)))
    if return_counts:
        out.append(Tensor(cnt.astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


def bincount(input, weights=None, minlength=0):
    """Counts of each non-negative integer (or the sums of ``weights``), as ``torch.bincount``."""
    a = input.data
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise ValueError(f"bincount(): expected a 1-D integer tensor, got {a.dtype} of shape {a.shape}")
    if a.size and a.min() < 0:
        raise ValueError("bincount(): the input has negative values")
    xp = get_array_module(a)
    w = None if weights is None else (weights.data if isinstance(weights, Tensor) else xp.asarray(weights))
    if w is not None and xp is not np:
        from ..backend import alert_not_deterministic

        alert_not_deterministic("bincount with weights (CUDA, atomic float additions)")
    r = xp.bincount(a, weights=w, minlength=minlength)
    return Tensor(r.astype(np.int64) if w is None else r)


def searchsorted(sorted_sequence, input, *, right=False, side=None):
    """Insertion indices of ``input`` in the sorted last dimension of ``sorted_sequence``, as
    ``torch.searchsorted`` (1-D sequence, or one sequence per leading index)."""
    side = side or ("right" if right else "left")
    seq = sorted_sequence.data
    v = input.data if isinstance(input, Tensor) else np.asarray(input)
    xp = get_array_module(seq)
    if seq.ndim == 1:
        return Tensor(xp.searchsorted(seq, v, side=side).astype(np.int64))
    if seq.shape[:-1] != v.shape[:-1]:
        raise ValueError(f"searchsorted(): leading dimensions differ: {seq.shape} and {v.shape}")
    s2, v2 = seq.reshape(-1, seq.shape[-1]), v.reshape(-1, v.shape[-1])
    out = xp.stack([xp.searchsorted(s, x, side=side) for s, x in zip(s2, v2)])
    return Tensor(out.reshape(v.shape).astype(np.int64))


def bucketize(input, boundaries, *, right=False):
    """The bucket of each element given sorted 1-D ``boundaries``, as ``torch.bucketize``."""
    if boundaries.ndim != 1:
        raise ValueError(f"bucketize(): boundaries must be 1-D, got shape {tuple(boundaries.shape)}")
    return searchsorted(boundaries, input, right=right)


