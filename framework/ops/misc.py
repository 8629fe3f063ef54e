"""Top-level conveniences of ``torch`` not covered elsewhere: dtype information and promotion
(``finfo``, ``iinfo``, ``result_type``, ``promote_types``, ``can_cast``), random draws shaped by
probabilities (``bernoulli``, ``poisson``, ``multinomial``, ``randint_like``), small products (``mv``,
``addmv``, ``addr``, ``addbmm``, ``chain_matmul``), index writes (``index_put``, ``masked_scatter``, ``put``),
``unique_consecutive``, ``broadcast_tensors``, ``diagflat``, and element-wise odds and ends
(``signbit``, ``float_power``, ``floor_divide``, ``bitwise_not``, ...). Differentiable where PyTorch's are,
through the operations they are composed of."""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from .. import dtypes
from ..autograd import Function
from ..backend import get_array_module
from ..tensor import Tensor, _gen, empty
from .basic import _float_in

__all__ = ["finfo", "iinfo", "result_type", "promote_types", "can_cast", "numel", "asarray", "randint_like",
           "bernoulli", "poisson", "multinomial", "broadcast_tensors", "mv", "addmv", "addr", "ger",
           "addbmm", "chain_matmul", "diagflat", "index_put", "masked_scatter", "put", "unique_consecutive",
           "swapdims", "adjoint", "signbit", "positive", "float_power", "true_divide", "floor_divide",
           "bitwise_not", "scatter_reduce", "index_reduce", "split_with_sizes", "hsplit", "vsplit", "dsplit",
           "is_nonzero", "nextafter", "logaddexp2", "i0", "is_floating_point", "from_dlpack", "gradient"]


_finfo = namedtuple("finfo", ["bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution", "dtype"])
_iinfo = namedtuple("iinfo", ["bits", "max", "min", "dtype"])


def finfo(type=None):
    """Machine limits of a floating dtype (default: the default dtype), as ``torch.finfo``."""
    d = dtypes.get_default_dtype() if type is None else type
    nd = dtypes.to_numpy_dtype(d)
    if nd.kind != "f":
        raise TypeError(f"torch.finfo() requires a floating point input type, got {d}")
    f = np.finfo(nd)
    return _finfo(f.bits, float(f.eps), float(f.max), float(f.min), float(f.tiny), float(f.smallest_normal),
                  10.0 ** -f.precision, str(d).replace("framework.", ""))


def iinfo(type):
    """Machine limits of an integer dtype, as ``torch.iinfo``."""
    nd = dtypes.to_numpy_dtype(type)
    if nd.kind not in "iub":
        raise TypeError(f"torch.iinfo() requires an integer input type, got {type}")
    i = np.iinfo(nd) if nd.kind != "b" else np.iinfo(np.uint8)
    return _iinfo(i.bits, int(i.max), int(i.min), str(type).replace("framework.", ""))


def result_type(tensor1, tensor2):
    """The dtype of an arithmetic operation on the two (tensors or Python numbers), by this framework's
    promotion rules, which are PyTorch's."""
    def probe(v):
        return empty(0, dtype=v.dtype) if isinstance(v, Tensor) and v.ndim else (
            Tensor(np.zeros((), v.data.dtype)) if isinstance(v, Tensor) else v)

    a, b = probe(tensor1), probe(tensor2)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        return (Tensor(np.asarray(a)) + b).dtype
    return (a + b).dtype if isinstance(a, Tensor) else (b + a).dtype


def promote_types(type1, type2):
    """The smallest dtype both promote to, as ``torch.promote_types``."""
    return (empty(0, dtype=type1) + empty(0, dtype=type2)).dtype


_KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2}


def can_cast(from_, to) -> bool:
    """Whether PyTorch's casting rules allow ``from_`` to ``to``: not to a lower kind (float to integer,
    integer to bool), any size within a kind."""
    return _KIND_RANK[dtypes.to_numpy_dtype(from_).kind] <= _KIND_RANK[dtypes.to_numpy_dtype(to).kind]


def numel(input: Tensor) -> int:
    return input.numel()


def asarray(obj, *, dtype=None, device=None, copy=None, requires_grad: bool = False) -> Tensor:
    """A tensor from a tensor, array or nested sequence, sharing memory where it can (``copy=None``),
    as ``torch.asarray``."""
    from ..tensor import tensor

    if isinstance(obj, Tensor):
        out = obj
        if dtype is not None and out.dtype != dtype:
            out = out.to(dtype)
        if device is not None:
            out = out.to(device)
        if copy:
            out = out.clone()
        return out.requires_grad_(requires_grad) if requires_grad else out
    if (copy is not True and isinstance(obj, np.ndarray) and device in (None, "cpu")
            and (dtype is None or dtypes.to_numpy_dtype(dtype) == obj.dtype)):
        dtypes.from_numpy_dtype(obj.dtype)  # a dtype this framework has, or a clear error
        t = Tensor(obj)  # the array's own memory
        return t.requires_grad_(requires_grad) if requires_grad else t
    return tensor(obj, dtype=dtype, device=device, requires_grad=requires_grad)


def randint_like(input: Tensor, low: int = 0, high: int | None = None, *, dtype=None, device=None) -> Tensor:
    """Random integers in [low, high) with input's shape (``randint_like(x, high)`` as PyTorch)."""
    from ..tensor import randint

    if high is None:
        low, high = 0, low
    return randint(low, high, tuple(input.shape), dtype=dtype or input.dtype, device=device or input.device)


def bernoulli(input: Tensor, p: float | None = None, *, generator=None) -> Tensor:
    """1 with probability ``input`` (or ``p``) per element, else 0, as ``torch.bernoulli``."""
    from ..tensor import rand

    probs = input if p is None else input * 0 + p
    u = rand(tuple(probs.shape), generator=generator, dtype=probs.dtype, device=probs.device)
    return (u < probs.detach()).to(probs.dtype)


def poisson(input: Tensor, generator=None) -> Tensor:
    """Poisson draws with the rates in ``input``, as ``torch.poisson``."""
    if bool((input.data < 0).any()):
        raise RuntimeError("poisson: rates must be non-negative")
    from ..distributions.distribution import _back, _host  # (the host-draw helpers the distributions use)

    rates = input.detach()
    return _back(_gen(generator).poisson(_host(rates, rates.shape)), rates)


def multinomial(input: Tensor, num_samples: int, replacement: bool = False, *, generator=None) -> Tensor:
    """Indices drawn with the (unnormalised, non-negative) weights of each row of ``input``, as
    ``torch.multinomial``; without replacement, at most as many as there are non-zero weights."""
    w = np.asarray(input.detach().cpu().numpy(), np.float64)
    if w.ndim not in (1, 2):
        raise RuntimeError(f"multinomial: prob_dist must be 1 or 2 dim, got {w.ndim}")
    if (w < 0).any() or not np.isfinite(w).all():
        raise RuntimeError("multinomial: probability tensor contains either `inf`, `nan` or element < 0")
    rows = w.reshape(-1, w.shape[-1])
    if (rows.sum(-1) <= 0).any():
        raise RuntimeError("multinomial: invalid multinomial distribution (sum of probabilities <= 0)")
    if not replacement and num_samples > int((rows > 0).sum(-1).min()):
        raise RuntimeError("multinomial: cannot sample n_sample > prob_dist.size(-1) samples without "
                           "replacement")
    g = _gen(generator)
    out = np.stack([g.choice(len(r), size=num_samples, replace=replacement, p=r / r.sum()) for r in rows])
    out = out.reshape(w.shape[:-1] + (num_samples,)).astype(np.int64)
    t = Tensor(out)
    return t.to(input.device) if input.device.type != "cpu" else t


def broadcast_tensors(*tensors: Tensor) -> tuple:
    """The tensors expanded to their common shape (views), as ``torch.broadcast_tensors``."""
    shape = np.broadcast_shapes(*(tuple(t.shape) for t in tensors))
    return tuple(t if tuple(t.shape) == shape else t.expand(*shape) for t in tensors)


def mv(input: Tensor, vec: Tensor) -> Tensor:
    if input.ndim != 2 or vec.ndim != 1:
        raise RuntimeError(f"mv: expected a matrix and a vector, got shapes {tuple(input.shape)} and "
                           f"{tuple(vec.shape)}")
    return input @ vec


def addmv(input: Tensor, mat: Tensor, vec: Tensor, *, beta=1, alpha=1) -> Tensor:
    """beta * input + alpha * (mat @ vec), as ``torch.addmv``."""
    return beta * input + alpha * mv(mat, vec)


def addr(input: Tensor, vec1: Tensor, vec2: Tensor, *, beta=1, alpha=1) -> Tensor:
    """beta * input + alpha * outer(vec1, vec2), as ``torch.addr``."""
    return beta * input + alpha * (vec1.unsqueeze(1) * vec2.unsqueeze(0))


def ger(input: Tensor, vec2: Tensor) -> Tensor:
    return input.unsqueeze(1) * vec2.unsqueeze(0)


def addbmm(input: Tensor, batch1: Tensor, batch2: Tensor, *, beta=1, alpha=1) -> Tensor:
    """beta * input + alpha * sum_b batch1[b] @ batch2[b], as ``torch.addbmm``."""
    return beta * input + alpha * (batch1 @ batch2).sum(0)


def chain_matmul(*matrices: Tensor) -> Tensor:
    """The product of the matrices in the cheapest order, as ``torch.chain_matmul``
    (``linalg.multi_dot``)."""
    from ..linalg import multi_dot

    return matrices[0] if len(matrices) == 1 else multi_dot(list(matrices))


def diagflat(input: Tensor, offset: int = 0) -> Tensor:
    """The flattened input on the ``offset`` diagonal of a square matrix, as ``torch.diagflat``."""
    from .extra import diag

    return diag(input.reshape(-1), offset)


def index_put(input: Tensor, indices, values, accumulate: bool = False) -> Tensor:
    """A copy of input with ``input[indices] = values`` (``accumulate``: ``+=``, duplicates summed), as
    ``torch.index_put``."""
    out = input.clone()
    idx = tuple(indices)
    if accumulate:
        from .compose import index_add

        if len(idx) == 1:
            return index_add(out, 0, idx[0].reshape(-1), values.expand(*idx[0].shape, *input.shape[1:])
                             .reshape(-1, *input.shape[1:]) if isinstance(values, Tensor) else
                             Tensor(np.full((idx[0].numel(),) + tuple(input.shape[1:]), values,
                                            input.data.dtype)))
        flat = 0
        for k, i in enumerate(idx):
            flat = flat * input.shape[k] + i
        rest = tuple(input.shape[len(idx):])
        vals = values if isinstance(values, Tensor) else Tensor(np.asarray(values, input.data.dtype))
        vals = vals.expand(*np.broadcast_shapes(tuple(flat.shape) + rest, tuple(vals.shape)))
        merged = out.reshape((-1,) + rest)
        return index_add(merged, 0, flat.reshape(-1), vals.reshape((-1,) + rest)).reshape(tuple(input.shape))
    out[idx] = values
    return out


def masked_scatter(input: Tensor, mask: Tensor, source: Tensor) -> Tensor:
    """input with the positions where ``mask`` (broadcast) is true filled, in order, from ``source``,
    as ``torch.masked_scatter``."""
    m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    m = get_array_module(m).broadcast_to(m, tuple(input.shape))
    n = int(m.sum())
    if source.numel() < n:
        raise RuntimeError(f"masked_scatter: expected source to have at least {n} elements, got "
                           f"{source.numel()}")
    out = input.clone()
    out[Tensor(m)] = source.reshape(-1)[:n]
    return out


def put(input: Tensor, index: Tensor, source: Tensor, accumulate: bool = False) -> Tensor:
    """input with the elements at flat ``index`` set to (or, ``accumulate``, increased by) ``source``,
    as ``torch.put``."""
    flat = index_put(input.reshape(-1), (index.reshape(-1) % input.numel(),), source.reshape(-1), accumulate)
    return flat.reshape(tuple(input.shape))


def unique_consecutive(input: Tensor, return_inverse: bool = False, return_counts: bool = False,
                       dim: int | None = None):
    """Each run of equal consecutive elements (or slices along ``dim``) reduced to one, as
    ``torch.unique_consecutive``; optionally the run of each element and the run lengths."""
    xp = get_array_module(input.data)
    a = input.data
    if dim is None:
        flat = a.reshape(-1)
        starts = xp.ones(flat.shape, dtype=bool)
        starts[1:] = flat[1:] != flat[:-1]
        values = Tensor(flat[starts])
        shape = a.shape
    else:
        d = dim % a.ndim
        moved = xp.moveaxis(a, d, 0).reshape(a.shape[d], -1)
        starts = xp.ones(moved.shape[0], dtype=bool)
        starts[1:] = (moved[1:] != moved[:-1]).any(1)
        values = Tensor(xp.take(a, xp.nonzero(starts)[0], axis=d))
        shape = (a.shape[d],)
    out = [values]
    runs = xp.cumsum(starts) - 1
    if return_inverse:
        out.append(Tensor(runs.reshape(shape).astype(np.int64)))
    if return_counts:
        edges = xp.concatenate([xp.nonzero(starts)[0], xp.asarray([starts.shape[0]])])
        out.append(Tensor(xp.diff(edges).astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


def swapdims(input: Tensor, dim0: int, dim1: int) -> Tensor:
    return input.transpose(dim0, dim1)


def adjoint(input: Tensor) -> Tensor:
    """The conjugate transpose of the last two dimensions (the transpose: real tensors only here)."""
    return input.transpose(-2, -1)


def signbit(input: Tensor) -> Tensor:
    xp = get_array_module(input.data)
    return Tensor(xp.signbit(input.data))


def positive(input: Tensor) -> Tensor:
    if input.dtype == dtypes.bool:
        raise TypeError("The `+` operator, on a bool tensor is not supported.")
    return input


def float_power(input, exponent) -> Tensor:
    """input ** exponent in float64, as ``torch.float_power``."""
    base = input.to(dtypes.float64) if isinstance(input, Tensor) else Tensor(np.asarray(input, np.float64))
    exp = exponent.to(dtypes.float64) if isinstance(exponent, Tensor) else exponent
    return base ** exp


def true_divide(input, other) -> Tensor:
    return _float_in(input) / other


def floor_divide(input, other) -> Tensor:
    """floor(input / other), as ``torch.floor_divide`` (integers stay integers)."""
    if input.dtype.is_floating_point or (isinstance(other, Tensor) and other.dtype.is_floating_point) or \
            isinstance(other, float):
        return (input / other).floor()
    xp = get_array_module(input.data)
    return Tensor(xp.floor_divide(input.data, other.data if isinstance(other, Tensor) else other))


def bitwise_not(input: Tensor) -> Tensor:
    xp = get_array_module(input.data)
    if input.data.dtype.kind not in "iub":
        raise TypeError(f"bitwise_not: integer or bool tensors only, got {input.dtype}")
    return Tensor(xp.invert(input.data))


def _scatter_extreme_exact(xp, base, flat, vals, reduce):
    """``maximum.at`` / ``minimum.at`` of float ``vals`` into ``base`` without rounding, for CuPy.

    CuPy's ``maximum.at`` on float64 rounds through float32 (0.49884238 came back 0.49884239 on an H200),
    so the result is not one of the values and the gradient finds no winner. Here each float becomes an
    integer of its width whose order is the floats' (sign-magnitude to two's complement), the extreme is
    taken by the exact integer scatter, and mapped back. NaN (made positive) wins, as in NumPy."""
    dt = base.dtype
    work = np.dtype(np.float32) if dt.itemsize < 4 else dt  # (float16 holds exactly in float32)
    it = np.dtype(f"int{8 * work.itemsize}")
    low = it.type(np.iinfo(it).max)

    def key(a):
        a = a.astype(work, copy=False)
        if reduce == "amin":
            a = -a
        bits = xp.where(xp.isnan(a), work.type(np.nan), a).view(it)
        return xp.where(bits < 0, bits ^ low, bits)

    k = key(base)
    xp.maximum.at(k, flat, key(vals))
    out = xp.where(k < 0, k ^ low, k).view(work)
    base[...] = (-out if reduce == "amin" else out).astype(dt)


def _scatter_prod(xp, base, flat, vals):
    """``multiply.at(base, flat, vals)``. CuPy's ``ufunc.at`` covers only some ufuncs (and rounded float64
    through float32 for max / min on an H200), so for CuPy arrays each position's product is made from
    counts and a sum of logarithms in float64 (zeros, signs, NaN and infinities counted
    apart, so 0 * inf is NaN as in NumPy), then multiplied in; relative error about 1e-15 per value."""
    if xp is np:
        np.multiply.at(base, flat, vals)
        return
    v = vals.astype(np.float64)
    n = base.size

    def count(mask, weights=None):
        w = mask.astype(np.float64) if weights is None else xp.where(mask, weights, 0.0)
        return xp.bincount(flat, weights=w, minlength=n)

    finite_nonzero = xp.isfinite(v) & (v != 0)
    logs = count(finite_nonzero, xp.log(xp.where(finite_nonzero, xp.abs(v), 1.0)))
    zeros, infs, nans, negs = count(v == 0), count(xp.isinf(v)), count(xp.isnan(v)), count(v < 0)
    prod = xp.where(negs % 2 == 1, -1.0, 1.0) * xp.where(infs > 0, np.inf, xp.exp(logs))
    prod = xp.where(zeros > 0, 0.0, prod)
    prod = xp.where((nans > 0) | ((zeros > 0) & (infs > 0)), np.nan, prod)
    prod = base.astype(np.float64) * prod
    base[...] = (prod if base.dtype.kind in "fc" else xp.rint(prod)).astype(base.dtype)


class _ScatterReduce(Function):
    """out = input with ``src`` reduced into it at ``index`` along ``dim`` (see ``scatter_reduce``)."""

    def forward(self, x, src):
        xp = get_array_module(x)
        idx, dim, reduce, inc = self.index, self.dim, self.reduce, self.include_self
        coords = list(xp.indices(idx.shape))
        coords[dim] = idx
        flat = xp.ravel_multi_index(tuple(coords), x.shape).ravel()
        vals = src[tuple(slice(0, n) for n in idx.shape)].ravel()
        out = x.ravel().copy()
        touched = xp.zeros(out.size, bool)
        touched[flat] = True
        if reduce in ("sum", "mean"):
            base = out if inc else xp.where(touched, 0, out).astype(out.dtype)
            if xp is not np and base.dtype.kind in "fc":
                from ..backend import alert_not_deterministic

                alert_not_deterministic(f"scatter_reduce(reduce={reduce!r}) (CUDA, atomic float additions)")
            xp.add.at(base, flat, vals)
            if reduce == "mean":
                cnt = xp.bincount(flat, minlength=out.size) + (1 if inc else 0)
                base = xp.where(touched, base / xp.maximum(cnt, 1), out).astype(out.dtype)
                self.cnt = cnt
        else:
            fill = {"prod": 1, "amax": -np.inf, "amin": np.inf}[reduce]
            base = out if inc else xp.where(touched, fill, out).astype(out.dtype)
            if reduce == "prod":
                _scatter_prod(xp, base, flat, vals)
            elif xp is np or base.dtype.kind != "f":  # (integers: CuPy's integer scatter is exact)
                (xp.maximum if reduce == "amax" else xp.minimum).at(base, flat, vals)
            else:
                _scatter_extreme_exact(xp, base, flat, vals, reduce)
        self.flat, self.touched, self.vals = flat, touched, vals
        self.result = base
        return base.reshape(x.shape)

    def backward(self, g):
        x, src = self.inputs
        xp = get_array_module(g.data)
        gd = g.data.ravel()
        flat, touched, inc, reduce = self.flat, self.touched, self.include_self, self.reduce
        xd = x.data.ravel()
        if reduce == "sum":
            gx = gd if inc else xp.where(touched, 0, gd)
            gs_vals = gd[flat]
        elif reduce == "mean":
            share = 1.0 / xp.maximum(self.cnt, 1)
            gx = xp.where(touched, gd * share * (1 if inc else 0), gd)
            gs_vals = (gd * share)[flat]
        elif reduce in ("amax", "amin"):
            res = self.result
            self_hits = (xd == res) & (touched if inc else False) | ~touched
            src_hits = self.vals == res[flat]
            ties = self_hits.astype(gd.dtype) + xp.bincount(flat, weights=src_hits.astype(gd.dtype),
                                                            minlength=res.size)
            per = gd / xp.maximum(ties, 1)
            gx = xp.where(self_hits, per, 0)
            gs_vals = xp.where(src_hits, per[flat], 0)
        else:  # prod: the product of the others, zeros counted as PyTorch does
            res = self.result
            vals = self.vals
            # self's share: the product with self's zeros taken as ones, over self
            masked_self = xp.where(xd == 0, 1, xd).astype(xd.dtype)
            msr = masked_self.copy() if inc else xp.where(touched, 1, masked_self).astype(xd.dtype)
            _scatter_prod(xp, msr, flat, vals)
            gx = gd * msr / masked_self
            if not inc:
                gx = xp.where(touched, 0, gx)
            # src's share: the product over it, except where it is the one zero of its position
            src_zero = vals == 0
            zeros_at = xp.bincount(flat, weights=src_zero.astype(gd.dtype), minlength=res.size)[flat]
            single = src_zero & (zeros_at == 1)
            without = xd.copy() if inc else xp.where(touched, 1, xd).astype(xd.dtype)
            _scatter_prod(xp, without, flat, xp.where(single, 1, vals).astype(vals.dtype))
            gs_vals = xp.where(single, (gd * without)[flat], (gd * res)[flat] / xp.where(src_zero, 1, vals))
        gs = xp.zeros(src.shape, gd.dtype)
        gs[tuple(slice(0, n) for n in self.index.shape)] = gs_vals.reshape(self.index.shape)
        return Tensor(gx.reshape(x.shape).astype(gd.dtype)), Tensor(gs)


def scatter_reduce(input: Tensor, dim: int, index: Tensor, src: Tensor, reduce: str, *,
                   include_self: bool = True) -> Tensor:
    """``input`` with each ``src[i][j]...`` reduced into ``out[...][index[i][j]...][...]`` along ``dim``
    by ``reduce`` ("sum", "prod", "mean", "amax", "amin"); ``include_self=False`` leaves input's values out
    where anything is scattered, as ``torch.scatter_reduce``. Gradients as PyTorch's (ties of amax / amin
    share it evenly; "prod" gives each value the product of the others, zeros included)."""
    if reduce not in ("sum", "prod", "mean", "amax", "amin"):
        raise RuntimeError(f"reduce argument must be either sum, prod, mean, amax or amin, got {reduce}")
    idx = index.data if isinstance(index, Tensor) else np.asarray(index)
    if idx.ndim != input.ndim or idx.ndim != src.ndim:
        raise RuntimeError("Index tensor must have the same number of dimensions as self tensor")
    d = dim % input.ndim
    for k in range(idx.ndim):
        if idx.shape[k] > src.shape[k] or (k != d and idx.shape[k] > input.shape[k]):
            raise RuntimeError(f"Size does not match at dimension {k} expected index {tuple(idx.shape)} "
                               f"to be smaller than self {tuple(input.shape)} apart from dimension {d} "
                               f"and to be smaller size than src {tuple(src.shape)}")
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= input.shape[d]):
        raise IndexError(f"scatter_reduce: index {int(idx.max())} is out of bounds for dimension {d} with "
                         f"size {input.shape[d]}")
    return _ScatterReduce(dim=d, index=idx, reduce=reduce, include_self=include_self)(input, src)


def index_reduce(input: Tensor, dim: int, index: Tensor, source: Tensor, reduce: str, *,
                 include_self: bool = True) -> Tensor:
    """``input`` with the slices of ``source`` along ``dim`` reduced into the slices ``index`` names
    ("prod", "mean", "amax", "amin"), as ``torch.index_reduce``: ``scatter_reduce`` with the index
    broadcast over the other dimensions."""
    if reduce not in ("prod", "mean", "amax", "amin"):
        raise RuntimeError(f"index_reduce(): Expected reduce to be one of prod, mean, amax or amin but got "
                           f"{reduce}.")
    idx = index.data if isinstance(index, Tensor) else np.asarray(index)
    d = dim % input.ndim
    if idx.ndim != 1 or idx.shape[0] != source.shape[d]:
        raise RuntimeError(f"index_reduce(): Index should have dimension 1 and as many entries as source has "
                           f"along dim {d} ({source.shape[d]}), got shape {tuple(idx.shape)}")
    shape = [1] * source.ndim
    shape[d] = -1
    xp = get_array_module(idx)
    full = xp.broadcast_to(idx.reshape(shape), tuple(source.shape))
    full = Tensor(xp.ascontiguousarray(full))
    return scatter_reduce(input, d, full, source, reduce, include_self=include_self)


def split_with_sizes(input: Tensor, split_sizes, dim: int = 0) -> tuple:
    """Views of ``input`` of the given lengths along ``dim``, which must add up to its size, as
    ``torch.split_with_sizes``."""
    from .shape import split

    if isinstance(split_sizes, int) or not all(isinstance(s, (int, np.integer)) for s in split_sizes):
        raise TypeError(f"split_with_sizes(): split_sizes must be a sequence of ints, got {split_sizes!r}")
    return split(input, [int(s) for s in split_sizes], dim)


def _split_along(name: str, input: Tensor, sections, dim: int, min_ndim: int) -> tuple:
    from .compose import tensor_split

    if input.ndim < min_ndim:
        raise RuntimeError(f"torch.{name} requires a tensor with at least {min_ndim} dimension, but got a "
                           f"tensor with {input.ndim} dimensions!")
    if isinstance(sections, (int, np.integer)):
        n = input.shape[dim]
        if sections <= 0 or n % sections:
            raise RuntimeError(f"torch.{name} attempted to split along dimension {dim}, but the size of the "
                               f"dimension {n} is not divisible by the split_size {sections}!")
    return tensor_split(input, sections if isinstance(sections, (int, np.integer)) else list(sections), dim)


def hsplit(input: Tensor, indices_or_sections) -> tuple:
    """Split along dimension 1 (0 for a 1-D tensor) into equal sections or at indices, as ``torch.hsplit``."""
    return _split_along("hsplit", input, indices_or_sections, 0 if input.ndim == 1 else 1, 1)


def vsplit(input: Tensor, indices_or_sections) -> tuple:
    """Split along dimension 0 of an at least 2-D tensor, as ``torch.vsplit``."""
    return _split_along("vsplit", input, indices_or_sections, 0, 2)


def dsplit(input: Tensor, indices_or_sections) -> tuple:
    """Split along dimension 2 of an at least 3-D tensor, as ``torch.dsplit``."""
    return _split_along("dsplit", input, indices_or_sections, 2, 3)


def is_nonzero(input: Tensor) -> bool:
    """Whether a one-element tensor is not zero (False, 0, 0.0), as ``torch.is_nonzero``."""
    n = input.numel()
    if n != 1:
        raise RuntimeError("Boolean value of Tensor with no values is ambiguous" if n == 0 else
                           "Boolean value of Tensor with more than one value is ambiguous")
    return bool(input.detach().reshape(()).item() != 0)


def nextafter(input: Tensor, other) -> Tensor:
    """The next floating-point value after ``input`` towards ``other``, element-wise, as
    ``torch.nextafter`` (no gradient, as PyTorch's)."""
    a = input.data
    b = other.data if isinstance(other, Tensor) else other
    if a.dtype.kind != "f":
        raise TypeError(f"nextafter: floating-point tensors only, got {input.dtype}")
    xp = get_array_module(a)
    return Tensor(xp.nextafter(a, xp.asarray(b, dtype=a.dtype)))


def logaddexp2(input: Tensor, other) -> Tensor:
    """log2(2**input + 2**other) without overflow, as ``torch.logaddexp2``."""
    from .extra import logaddexp

    ln2 = float(np.log(2.0))
    return logaddexp(input * ln2, other * ln2) / ln2


class _Bessel(Function):
    """The modified Bessel function of the first kind of ``order`` 0 or 1; d/dx i0 = i1, and
    d/dx i1 = i0 - i1 / x (1/2 at 0)."""

    saves_inputs = (0,)

    def forward(self, x):
        from .specfun import _special

        return getattr(_special(x), f"i{self.order}")(x).astype(x.dtype, copy=False)

    def backward(self, g):
        (x,) = self.saved_tensors
        if self.order == 0:
            return g * _Bessel(order=1)(x)
        from .basic import where

        zero = Tensor(x.data == 0)
        return g * where(zero, 0.5, _Bessel(order=0)(x) - _Bessel(order=1)(x) / where(zero, 1.0, x))


def i0(input: Tensor) -> Tensor:
    """The modified Bessel function of the first kind of order 0, element-wise, as ``torch.i0``."""
    return _Bessel(order=0)(_float_in(input))


def is_floating_point(input: Tensor) -> bool:
    """Whether ``input`` holds a floating-point dtype, as ``torch.is_floating_point``."""
    return input.is_floating_point()


def from_dlpack(ext) -> Tensor:
    """A tensor sharing the memory of any object with ``__dlpack__`` (a NumPy or CuPy array, a PyTorch
    tensor...), as ``torch.from_dlpack``: on the CPU through NumPy, on a CUDA device through CuPy."""
    if not hasattr(ext, "__dlpack__"):
        raise TypeError(f"from_dlpack: {type(ext).__name__} does not support the DLPack protocol "
                        "(__dlpack__)")
    kind = ext.__dlpack_device__()[0] if hasattr(ext, "__dlpack_device__") else 1
    if kind == 1:  # kDLCPU
        return Tensor(np.from_dlpack(ext))
    from ..backend import _cupy, cuda_available

    if not cuda_available():
        raise RuntimeError(f"from_dlpack: the array lives on a device of DLPack type {kind}, and CuPy with a "
                           "CUDA device is not available here")
    return Tensor(_cupy.from_dlpack(ext))


def gradient(input: Tensor, *, spacing=1, dim=None, edge_order: int = 1) -> tuple:
    """Estimates of the partial derivatives of the function sampled by ``input``, one tensor per
    dimension in ``dim`` (all by default), as ``torch.gradient``: second-order central differences
    inside, first- or second-order one-sided ones at the ends (``edge_order``). ``spacing``: one number
    for every dimension, one per dimension, or per dimension the 1-D tensor of its sample coordinates
    (uneven spacing). Differentiable in ``input``."""
    from .shape import cat, narrow

    if edge_order not in (1, 2):
        raise ValueError(f"torch.gradient only supports edge_order=1 and edge_order=2, got {edge_order}")
    dims = list(range(input.ndim)) if dim is None else [dim] if isinstance(dim, int) else list(dim)
    dims = [d % input.ndim for d in dims]
    if isinstance(spacing, (int, float, Tensor)) and not (isinstance(spacing, Tensor) and spacing.ndim == 1):
        spacing = [spacing] * len(dims)
    spacing = list(spacing)
    if len(spacing) == 1 and len(dims) > 1:
        spacing = spacing * len(dims)
    if len(spacing) != len(dims):
        raise RuntimeError(f"torch.gradient expected spacing to be unspecified, a scalar, or a list of "
                           f"length {len(dims)} (one per dimension), but got a list of length {len(spacing)}")
    x = input if input.is_floating_point() else input.to(dtypes.get_default_dtype())
    out = []
    for d, sp in zip(dims, spacing):
        n = x.shape[d]
        if n < edge_order + 1:
            raise RuntimeError(f"torch.gradient expected each dimension size to be at least edge_order+1, "
                               f"got a size of {n} along dimension {d}")

        def f(a, b, d=d, n=n):  # x along d from a to b (b exclusive, None for the end)
            return narrow(x, d, a % n, ((n if b is None else b % n if b < 0 else b) - a % n))

        shape = [1] * x.ndim
        shape[d] = -1
        if isinstance(sp, Tensor):  # sample coordinates along d
            if sp.ndim != 1 or sp.shape[0] != n:
                raise RuntimeError(f"torch.gradient expected the coordinates of dimension {d} to be a 1-D "
                                   f"tensor of length {n}, got shape {tuple(sp.shape)}")
            dx = sp.detach().to(x.dtype)
            dx = (dx[1:] - dx[:-1]).reshape(-1)
            h1, h2 = dx[:-1].reshape(shape), dx[1:].reshape(shape)
            inner = (f(0, -2) * (-h2 / (h1 * (h1 + h2))) + f(1, -1) * ((h2 - h1) / (h1 * h2))
                     + f(2, None) * (h1 / (h2 * (h1 + h2))))
            if edge_order == 1:
                first = (f(1, 2) - f(0, 1)) / dx[0]
                last = (f(-1, None) - f(-2, -1)) / dx[-1]
            else:
                a1, a2 = dx[0], dx[1]
                first = (f(0, 1) * (-(2 * a1 + a2) / (a1 * (a1 + a2))) + f(1, 2) * ((a1 + a2) / (a1 * a2))
                         + f(2, 3) * (-a1 / (a2 * (a1 + a2))))
                b1, b2 = dx[-2], dx[-1]
                last = (f(-3, -2) * (b2 / (b1 * (b1 + b2))) + f(-2, -1) * (-(b1 + b2) / (b1 * b2))
                        + f(-1, None) * ((2 * b2 + b1) / (b2 * (b1 + b2))))
        else:
            h = float(sp)
            inner = (f(2, None) - f(0, -2)) / (2 * h)
            if edge_order == 1:
                first = (f(1, 2) - f(0, 1)) / h
                last = (f(-1, None) - f(-2, -1)) / h
            else:
                first = (f(0, 1) * -3 + f(1, 2) * 4 - f(2, 3)) / (2 * h)
                last = (f(-1, None) * 3 - f(-2, -1) * 4 + f(-3, -2)) / (2 * h)
        out.append(cat([first, inner, last], d) if n > 2 else cat([first, last], d))
    return tuple(out)
