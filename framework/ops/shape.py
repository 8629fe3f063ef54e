"""Shape, indexing and joining operations; matrix products."""

from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..autograd import Function
from ..backend import get_array_module
from ..kernels.cpu import gemm as _cpu_gemm
from ..tensor import Tensor
from .basic import BroadcastTo, Clone, _check_devices, _conj, unbroadcast


def _norm_dim(d, ndim):
    if not -ndim <= d < max(ndim, 1):
        raise IndexError(f"Dimension out of range (expected to be in range of [{-ndim}, {ndim - 1}], "
                         f"but got {d})")
    return d % ndim if ndim else 0


class Reshape(Function):
    complex_grad = True
    is_view = True

    def forward(self, x):
        self.in_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise RuntimeError(f"shape '{list(self.shape)}' is invalid for input of size {x.size}") from None

    def backward(self, g):
        return Reshape(shape=self.in_shape)(g)


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def reshape(input, *shape):
    shape = _shape_arg(shape)
    if shape == input.shape:
        return input
    return Reshape(shape=shape)(input)


def view(input, *shape):
    shape = _shape_arg(shape)
    if shape and isinstance(shape[0], _dt.dtype):
        raise NotImplementedError("view(dtype) is not supported")
    a = input.data
    if type(a) is np.ndarray and not a.flags.c_contiguous and a.size:
        try:  # view never copies: PyTorch raises where the strides cannot express the new shape
            np.reshape(a, shape, copy=False)
        except ValueError:
            raise RuntimeError(f"view size is not compatible with input tensor's size and stride (at least "
                               f"one dimension spans across two contiguous subspaces): input shape "
                               f"{list(input.shape)}, view shape {list(shape)}. Use .reshape(...) "
                               f"instead.") from None
    return reshape(input, shape)


def flatten(input, start_dim=0, end_dim=-1):
    if input.ndim == 0:
        return reshape(input, 1)
    s, e = _norm_dim(start_dim, input.ndim), _norm_dim(end_dim, input.ndim)
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    shp = input.shape
    n = 1
    for v in shp[s:e + 1]:
        n *= v
    return reshape(input, shp[:s] + (n,) + shp[e + 1:])


def unflatten(input, dim, sizes):
    d = _norm_dim(dim, input.ndim)
    return reshape(input, input.shape[:d] + tuple(sizes) + input.shape[d + 1:])


def squeeze(input, dim=None):
    if dim is None:
        return reshape(input, tuple(s for s in input.shape if s != 1))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    dims = {_norm_dim(d, input.ndim) for d in dims}
    return reshape(input, tuple(s for i, s in enumerate(input.shape) if not (i in dims and s == 1)))


def unsqueeze(input, dim):
    d = _norm_dim(dim, input.ndim + 1)
    return reshape(input, input.shape[:d] + (1,) + input.shape[d:])


class Permute(Function):
    complex_grad = True
    is_view = True

    def forward(self, x):
        return x.transpose(self.dims)

    def backward(self, g):
        return Permute(dims=tuple(np.argsort(self.dims)))(g)


def permute(input, *dims):
    dims = _shape_arg(dims)
    if len(dims) != input.ndim:
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does not "
                           f"match the length of the desired ordering of dimensions i.e. input.dim() "
                           f"= {input.ndim} is not equal to len(dims) = {len(dims)}")
    dims = tuple(_norm_dim(d, input.ndim) for d in dims)
    if dims == tuple(range(input.ndim)):
        return input
    return Permute(dims=dims)(input)


def transpose(input, dim0, dim1):
    if input.ndim == 2 and dim0 != dim1:
        return Permute(dims=(1, 0))(input)
    if input.ndim < 2 and dim0 in (0, -1) and dim1 in (0, -1):
        return input
    d = list(range(input.ndim))
    a, b = _norm_dim(dim0, input.ndim), _norm_dim(dim1, input.ndim)
    d[a], d[b] = d[b], d[a]
    return permute(input, d)


def t(input):
    if input.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {input.ndim}D")
    return input if input.ndim < 2 else transpose(input, 0, 1)


def expand(input, *sizes):
    sizes = _shape_arg(sizes)
    lead = len(sizes) - input.ndim
    if lead < 0:
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater or "
                           f"equal to the number of dimensions in the tensor ({input.ndim})")
    if -1 in sizes[:lead]:
        raise RuntimeError(f"expand: the expanded size of the tensor (-1) isn't allowed in a leading, "
                           f"non-existing dimension {sizes.index(-1)} (sizes {list(sizes)}, tensor shape "
                           f"{list(input.shape)})")
    shape = tuple(input.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    if shape == input.shape:
        return input
    try:
        np.broadcast_shapes(input.shape, shape)
    except ValueError:
        raise RuntimeError(f"expand: the expanded size of the tensor ({list(shape)}) must match the "
                           f"existing size {list(input.shape)} at non-singleton dimensions") from None
    return BroadcastTo(shape=shape)(input)


def expand_as(input, other):
    return expand(input, other.shape)


def broadcast_to(input, shape):
    return expand(input, tuple(shape))


def repeat(input, *sizes):
    sizes = _shape_arg(sizes)
    if len(sizes) < input.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of "
                           "dimensions of tensor")
    x = reshape(input, (1,) * (len(sizes) - input.ndim) + input.shape)
    # tile = interleave a new axis of size r before each axis, broadcast, then merge.
    inter, target, final = [], [], []
    for r, s in zip(sizes, x.shape):
        inter += [1, s]
        target += [r, s]
        final.append(r * s)
    return reshape(expand(reshape(x, inter), target).contiguous(), final)


class Contiguous(Function):
    complex_grad = True

    def forward(self, x):
        return get_array_module(x).ascontiguousarray(x)

    def backward(self, g):
        return g


def contiguous(input):
    if input.data.flags.c_contiguous:
        return input
    return Contiguous()(input)


class Flip(Function):
    complex_grad = True

    def forward(self, x):
        return get_array_module(x).flip(x, axis=self.dims).copy()

    def backward(self, g):
        return Flip(dims=self.dims)(g)


def flip(input, *dims, **kwargs):
    # flip(x, (0, 1)), flip(x, dims=[0]) and x.flip(0, 1), as PyTorch
    dims = _shape_arg(dims if not kwargs else (kwargs.pop("dims"),))
    if kwargs:
        raise TypeError(f"flip() got unexpected keyword arguments {sorted(kwargs)}")
    return Flip(dims=dims)(input)


# ----------------------------------------------------------------------------- indexing


def _index_key(key):
    """Turn Tensors inside an index into arrays; bool masks stay bool."""
    if isinstance(key, tuple):
        return tuple(_index_key(k) for k in key)
    if isinstance(key, Tensor):
        return key.data
    if isinstance(key, list):
        return np.asarray(key)
    return key


def _is_basic(key):
    ks = key if isinstance(key, tuple) else (key,)
    return all(k is None or k is Ellipsis or isinstance(k, (int, slice, np.integer)) for k in ks)


class GetItem(Function):
    complex_grad = True

    def forward(self, x):
        self.in_shape, self.in_dtype = x.shape, x.dtype
        y = x[self.key]
        self.is_view_result = _is_basic(self.key)
        return y

    def backward(self, g):
        return IndexAdd(key=self.key, shape=self.in_shape)(g)


class IndexAdd(Function):
    """Scatter-add ``g`` into zeros of ``shape`` at ``key`` (the backward of indexing)."""

    complex_grad = True

    def forward(self, g):
        xp = get_array_module(g)
        out = xp.zeros(self.shape, dtype=g.dtype)
        if _is_basic(self.key):
            out[self.key] = g
        else:
            add_at(xp, out, self.key, g)
        return out

    def backward(self, gg):
        return GetItem(key=self.key)(gg)


def getitem(input, key):
    k = _index_key(key)
    fn = GetItem(key=k)
    out = fn(input)
    if _is_basic(k):
        out._vc = input._vc  # a view shares its base's version counter
        if out.grad_fn is None and isinstance(input, Tensor):
            out._view_src = (input, fn)
        elif out.grad_fn is not None:
            out._view_ver = out._vc[0]
    return out


class IndexPut(Function):
    """``out = x.clone(); out[key] = v`` (what ``x[key] = v`` records); with ``inplace``, ``x`` itself
    is written (its values are not needed for the backward)."""

    complex_grad = True

    inplace = False

    def forward(self, x, v):
        out = x if self.inplace else x.copy()
        out[self.key] = v
        return out

    def backward(self, g):
        x, v = self.inputs
        gx = gv = None
        if self.needs_input_grad[0]:
            gx = IndexPut(key=self.key)(g, 0.0)
        if self.needs_input_grad[1]:
            sel = GetItem(key=self.key)(g)
            gv = unbroadcast(sel, v.shape)
            if gv is sel and _is_basic(self.key):
                # (a view would keep all of g alive while it waits in the engine: x[t] = h in a
                # loop of T steps held T gradients of the whole x)
                gv = Clone()(gv)
        return gx, gv


def setitem(input, key, value):
    k = _index_key(key)
    if isinstance(value, Tensor):
        _check_devices("index_put_", input, value)
    _inplace(input, lambda old: IndexPut(key=k, inplace=True)(old, value), "index_put_",
             value.requires_grad if isinstance(value, Tensor) else False, copy_old=False)


def _view_of(t: Tensor, untracked: bool = False):
    """``(base, view, unview)`` when ``t`` is a view (basic indexing, reshape, permute) of a
    tensor in the graph: ``view(b)`` recomputes ``t`` from a base ``b`` and ``unview(b, v)`` is
    ``b`` with the viewed part replaced by ``v``. With ``untracked``, also when ``t`` was viewed
    from a base outside the graph (an in-place op is about to write a tensor that requires grad
    into it, so the base joins the graph, as in PyTorch). None otherwise."""
    fn = t.grad_fn
    if fn is None:
        src = getattr(t, "_view_src", None) if untracked else None
        if src is None:
            return None
        base, fn = src
        xp = get_array_module(t.data)
        shares = getattr(xp, "may_share_memory", None)
        if shares is not None and not shares(t.data, base.data):
            return None  # the base was given new storage since
    elif fn._freed or not fn.inputs or not isinstance(fn.inputs[0], Tensor):
        return None
    else:
        base = fn.inputs[0]
    if isinstance(fn, GetItem) and getattr(fn, "is_view_result", False):
        key = fn.key
        return base, lambda b: GetItem(key=key)(b), lambda b, v: IndexPut(key=key)(b, v)
    if isinstance(fn, (Reshape, Permute)):
        xp = get_array_module(t.data)
        shares = getattr(xp, "may_share_memory", None)
        if shares is not None and not shares(t.data, base.data):
            return None  # reshape had to copy: not a view, as in PyTorch
        if isinstance(fn, Reshape):
            shape, in_shape = fn.shape, fn.in_shape
            return base, lambda b: Reshape(shape=shape)(b), lambda b, v: Reshape(shape=in_shape)(v)
        dims = fn.dims
        inv = tuple(int(i) for i in np.argsort(dims))
        return base, lambda b: Permute(dims=dims)(b), lambda b, v: Permute(dims=inv)(v)
    return None


def _check_untracked_view(t: Tensor, name):
    """In grad mode, PyTorch refuses an in-place op on a view made outside the graph (under no_grad)
    of a tensor that requires grad: whether the change should be recorded is ambiguous."""
    src = getattr(t, "_view_src", None)
    if t.grad_fn is None and src is not None and src[0].requires_grad:
        from ..autograd import _shares_memory

        if _shares_memory(t.data, src[0].data):
            raise RuntimeError(f"{name}: a view (shape {list(t.shape)}) of a tensor that requires grad "
                               f"(shape {list(src[0].shape)}) was created in no_grad mode and is being "
                               "modified in place with grad mode enabled. Make both the view and the "
                               "in-place op inside the no_grad block, or both outside it.")


def _indexed_view_key(t: Tensor):
    """The key of basic indexing when ``t`` is such a view (see ``_view_of``), else None."""
    fn = t.grad_fn if t.grad_fn is not None else getattr(t, "_view_src", (None, None))[1]
    return fn.key if isinstance(fn, GetItem) and getattr(fn, "is_view_result", False) else None


def _point_output(fn, idx: int, t: Tensor) -> None:
    """Make output ``idx`` of node ``fn`` refer to ``t`` (after an in-place change, the tensor that now holds
    that value: the snapshot of the old one, or the changed tensor itself)."""
    import weakref

    outs = list(fn._outputs)
    outs[idx] = weakref.ref(t)
    fn._outputs = tuple(outs)


class _ZeroGradConstant(Function):
    """``value`` in the graph of x with a zero gradient: what an in-place op whose result does not depend
    on the graph (a comparison written as 1 / 0) leaves, as PyTorch's."""

    def forward(self, x):
        return self.value

    def backward(self, g):
        from ..tensor import zeros_like

        return zeros_like(g)


def _inplace(t: Tensor, make, name, other_requires_grad=False, copy_old=True):
    """Run ``make(old)`` out of place and make ``t`` hold the result, in place.

    Views of ``t`` see the new values (the array is written into), the version counter moves on
    (so a backward that saved ``t`` before this raises), and the graph now goes through ``make``.
    ``copy_old=False``: ``make`` neither keeps ``old`` nor its values for the backward, so ``old``
    may share ``t``'s array (``x[i] = v`` in a loop then costs no copy of ``x`` per step).
    """
    from ..autograd import is_grad_enabled

    grad_mode = is_grad_enabled()
    if not getattr(t.data.flags, "writeable", True):  # (NumPy's expand: a read-only broadcast view)
        raise RuntimeError(f"{name}: unsupported operation: more than one element of the written-to tensor "
                           f"(shape {list(t.shape)}, an expanded tensor) refers to a single memory "
                           "location. Please clone() the tensor before performing the operation.")
    if grad_mode and t.is_leaf and t.requires_grad:
        raise RuntimeError(f"{name}: a leaf Variable that requires grad is being used in an in-place "
                           "operation.")
    if grad_mode:
        _check_untracked_view(t, name)
    view = _view_of(t, untracked=other_requires_grad) if grad_mode else None
    if view is not None:
        # ``t`` is a view of a base that is in the graph: record the change on the base, as
        # ``base = unview(base, make(view(base)))``, so that gradients through the base see it too
        # (PyTorch rebases views the same way). The view's array shares the base's memory, so it
        # already holds the new values afterwards; only its graph is re-derived.
        base, to_view, unview = view
        key = _indexed_view_key(t)
        if key is not None:
            # (an indexed part, x[t] += h in a loop: write the base in place and copy only the part,
            # which ``make`` may keep; not the whole base per step)
            def write(old):
                return IndexPut(key=key, inplace=True)(old, make(Clone()(GetItem(key=key)(old))))

            _inplace(base, write, name, other_requires_grad, copy_old=False)
        else:
            _inplace(base, lambda old: unview(old, make(to_view(old))), name, other_requires_grad)
        nv = to_view(base)
        import weakref

        from ..autograd import _retire_grad_fn

        _retire_grad_fn(t)
        nv.grad_fn._outputs = (weakref.ref(t),)
        t.grad_fn, t._out_idx, t._requires_grad = nv.grad_fn, 0, True
        t._view_ver = t._vc[0]  # (derived from the base's current version: not stale)
        return t
    if grad_mode and (t.requires_grad or other_requires_grad):
        data = t.data.copy() if copy_old else t.data
        old = Tensor._from_op(data, t.grad_fn, t._out_idx) if t.grad_fn is not None else Tensor(data)
        if t.grad_fn is not None:
            # Re-point the producer's output to the snapshot so gradients reach it.
            fn, idx = t.grad_fn, t._out_idx
            _point_output(fn, idx, old)
            old._hooks = t._hooks
            t._hooks = []
        try:
            new = make(old)
            if new.data.dtype != t.data.dtype:
                raise RuntimeError(f"{name}: result type {new.dtype} can't be cast to the desired output "
                                   f"type {t.dtype}")
        except BaseException:
            if t.grad_fn is not None:  # (the op failed: ``t`` stays what it was, hooks included)
                _point_output(fn, idx, t)
                t._hooks = old._hooks
            raise
        if new.grad_fn is None:  # (a result that does not depend on the graph, a comparison's: zero gradient)
            new = _ZeroGradConstant(value=new.data)(old)
        if new.data is not t.data:
            t.data[...] = new.data
        _point_output(new.grad_fn, new._out_idx, t)
        t.grad_fn, t._out_idx, t._requires_grad = new.grad_fn, new._out_idx, True
    else:
        new = make(Tensor(t.data))
        xp = get_array_module(t.data)
        res = new.data
        if res.dtype != t.data.dtype:
            if xp.can_cast(res.dtype, t.data.dtype, "same_kind") or t.data.dtype.kind == "f":
                res = res.astype(t.data.dtype)
            else:
                raise RuntimeError(f"{name}: result type {new.dtype} can't be cast to the desired "
                                   f"output type {t.dtype}")
        if t.data.shape != res.shape:
            raise RuntimeError(f"{name}: output with shape {list(t.shape)} doesn't match the "
                               f"broadcast shape {list(res.shape)}")
        if res is not t.data:
            t.data[...] = res
    t._vc[0] += 1
    return t


# ----------------------------------------------------------------------------- joining


class Cat(Function):
    complex_grad = True

    def forward(self, *xs):
        xp = get_array_module(xs[0])
        dt = xs[0].dtype
        for x in xs[1:]:
            dt = _dt.result_type(np.empty(0, dt), x)
        self.sizes = [x.shape[self.dim] for x in xs]
        return xp.concatenate([x.astype(dt, copy=False) for x in xs], axis=self.dim)

    def backward(self, g):
        outs, start = [], 0
        for s in self.sizes:
            sl = [slice(None)] * g.ndim
            sl[self.dim] = slice(start, start + s)
            outs.append(GetItem(key=tuple(sl))(g))
            start += s
        return tuple(outs)


def cat(tensors, dim=0):
    tensors = [t for t in tensors]
    if not tensors:
        raise RuntimeError("cat(): expected a non-empty list of Tensors")
    legacy = [t for t in tensors if t.shape == (0,)]
    if legacy and len(legacy) < len(tensors):
        # PyTorch skips 1-d empty tensors (the `out = cat([out, x])` loop starting from tensor([]));
        # their dtype still takes part in the promotion.
        kept = [t for t in tensors if t.shape != (0,)]
        dt = kept[0].data.dtype
        for t in tensors:
            dt = _dt.result_type(np.empty(0, dt), t.data)
        tensors = [t if t.data.dtype == dt else t.to(_dt.from_numpy_dtype(dt)) for t in kept]
    nd = tensors[0].ndim
    d = _norm_dim(dim, nd)
    for i, t in enumerate(tensors):
        _check_devices("cat", tensors[0], t)
        if t.ndim != nd or any(a != b for j, (a, b) in enumerate(zip(t.shape, tensors[0].shape)) if j != d):
            raise RuntimeError(f"cat(): sizes of tensors must match except in dimension {dim}; "
                               f"tensor 0 has shape {list(tensors[0].shape)}, tensor {i} has shape "
                               f"{list(t.shape)}")
    return Cat(dim=d)(*tensors)


concat = concatenate = cat


def stack(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                               f"{list(tensors[0].shape)} at entry 0 and {list(t.shape)} at entry {i}")
    d = _norm_dim(dim, tensors[0].ndim + 1)
    return cat([unsqueeze(t, d) for t in tensors], d)


def split(input, split_size_or_sections, dim=0):
    d = _norm_dim(dim, input.ndim)
    n = input.shape[d]
    if isinstance(split_size_or_sections, int):
        s = split_size_or_sections
        sizes = [min(s, n - i) for i in range(0, n, s)] if n else [0]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} (input "
                               f"tensor's size at dimension {dim}), but got split_sizes={sizes}")
    out, start = [], 0
    for s in sizes:
        key = (slice(None),) * d + (slice(start, start + s),)
        out.append(getitem(input, key))
        start += s
    return tuple(out)


def chunk(input, chunks, dim=0):
    n = input.shape[dim]
    size = -(-n // chunks)
    return split(input, max(size, 1), dim)


def unbind(input, dim=0):
    d = _norm_dim(dim, input.ndim)
    return tuple(getitem(input, (slice(None),) * d + (i,)) for i in range(input.shape[d]))


# ----------------------------------------------------------------------------- gather / scatter


def _as_array(a):
    """A NumPy or CuPy array as it is; anything else (lists, scalars) as a NumPy array."""
    return a if get_array_module(a) is not np else np.asarray(a)


def add_at(xp, out, key, values):
    """``out[key] += values`` with repeated indices accumulating (np.add.at / cupyx.scatter_add)."""
    if xp is np:
        np.add.at(out, key, values)
        return
    import cupyx

    kind = out.dtype
    if kind in (xp.int64, xp.uint64) or kind.kind in "iu" and kind.itemsize < 4:
        # CuPy's scatter_add takes (u)int32, uint64 and floats: add int64 as uint64 (the same bits
        # modulo 2**64), narrow integers through int64
        if kind.itemsize == 8:
            cupyx.scatter_add(out.view(xp.uint64), key, xp.asarray(values).astype(kind).view(xp.uint64))
        else:
            wide = out.astype(xp.int64)
            add_at(xp, wide, key, xp.asarray(values).astype(xp.int64))
            out[...] = wide.astype(kind)
    elif kind == xp.bool_:  # logical or, as NumPy's add on booleans
        wide = out.astype(xp.int32)
        cupyx.scatter_add(wide, key, xp.asarray(values).astype(xp.int32))
        out[...] = wide > 0
    else:
        from ..backend import alert_not_deterministic

        alert_not_deterministic("scatter_add (CUDA, atomic float additions)")
        cupyx.scatter_add(out, key, values)


def _take_along(xp, x, idx, dim):
    return xp.take_along_axis(x, idx, axis=dim)


class Gather(Function):
    complex_grad = True

    def forward(self, x, idx):
        xp = get_array_module(x)
        self.in_shape = x.shape
        if idx.ndim != x.ndim:
            raise RuntimeError(f"gather(): Index tensor must have the same number of dimensions as "
                               f"input tensor ({idx.ndim} vs {x.ndim})")
        if idx.size and (idx.min() < -x.shape[self.dim] or idx.max() >= x.shape[self.dim]):
            raise IndexError(f"gather(): index out of range for dimension {self.dim} with size "
                             f"{x.shape[self.dim]}")
        # PyTorch bounds the index by the input outside ``dim`` only; along ``dim`` it may be longer
        if idx.shape == x.shape or all(i <= s for d, (i, s) in enumerate(zip(idx.shape, x.shape))
                                       if d != self.dim):
            sl = tuple(slice(0, s) if d != self.dim else slice(None) for d, s in enumerate(idx.shape))
            return _take_along(xp, x[sl], idx, self.dim)
        raise RuntimeError(f"gather(): index shape {list(idx.shape)} is larger than input shape "
                           f"{list(x.shape)} outside dimension {self.dim}")

    def backward(self, g):
        _, idx = self.inputs
        z = Tensor(get_array_module(g.data).zeros(self.in_shape, dtype=g.data.dtype))
        return scatter_add(z, self.dim, idx, g), None


def gather(input, dim, index):
    d = _norm_dim(dim, input.ndim)
    idx = index if isinstance(index, Tensor) else Tensor(_as_array(index))
    return Gather(dim=d)(input, idx)


class ScatterAdd(Function):
    complex_grad = True

    def forward(self, x, idx, src):
        xp = get_array_module(x)
        out = x.copy()
        sl = tuple(slice(0, s) for s in idx.shape)
        src = src[sl]
        # open grids (what np.indices(..., sparse=True) gives; CuPy's indices has no sparse=)
        nd = idx.ndim
        grids = [xp.arange(n).reshape((1,) * d + (n,) + (1,) * (nd - d - 1)) for d, n in enumerate(idx.shape)]
        grids[self.dim] = idx
        add_at(xp, out, tuple(grids), src)
        return out

    def backward(self, g):
        _, idx, src = self.inputs
        gx = g if self.needs_input_grad[0] else None
        gs = None
        if self.needs_input_grad[2]:
            gsel = gather(g, self.dim, idx)
            if gsel.shape != src.shape:
                gsel = IndexAdd(key=tuple(slice(0, s) for s in idx.shape), shape=src.shape)(gsel)
            gs = gsel
        return gx, None, gs


def scatter_add(input, dim, index, src):
    d = _norm_dim(dim, input.ndim)
    return ScatterAdd(dim=d)(input, index, src)


def masked_fill(input, mask, value):
    from .basic import where

    m = mask.data if isinstance(mask, Tensor) else mask
    if isinstance(value, Tensor) and value.ndim == 0 and not value.requires_grad:
        value = value.item()
    out = where(Tensor(m), value, input)
    return out.to(input.dtype) if out.dtype != input.dtype else out


def index_select(input, dim, index):
    d = _norm_dim(dim, input.ndim)
    return getitem(input, (slice(None),) * d + (index,))


def narrow(input, dim, start, length):
    d = _norm_dim(dim, input.ndim)
    n = input.shape[d]
    start = int(start.item() if isinstance(start, Tensor) else start)
    if start < 0:  # a negative start counts from the end, as PyTorch (slice(-2, 0) was empty)
        start += n
    if not 0 <= start <= n:
        raise IndexError(f"narrow(): start out of range (expected to be in range of [{-n}, {n}], "
                         f"tensor shape {list(input.shape)})")
    if length < 0 or start + length > n:
        raise RuntimeError(f"narrow(): start ({start}) + length ({length}) exceeds dimension size ({n}) "
                           f"of a tensor of shape {list(input.shape)}")
    return getitem(input, (slice(None),) * d + (slice(start, start + length),))


# ----------------------------------------------------------------------------- matrix products


class MatMul(Function):
    complex_grad = True
    saves_inputs = (0, 1)

    def forward(self, a, b):
        if a.dtype != b.dtype:
            raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {a.dtype} != "
                               f"{b.dtype}")
        if a.ndim == 0 or b.ndim == 0:
            raise RuntimeError("both arguments to matmul need to be at least 1D")
        ka = a.shape[-1]
        kb = b.shape[-2] if b.ndim > 1 else b.shape[0]
        if ka != kb:
            raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({_mshape(a)} and {_mshape(b)})")
        if isinstance(a, np.ndarray):  # (large products in row blocks on the framework's threads, when on)
            return _cpu_gemm.matmul(a, b)
        return a @ b

    def backward(self, g):
        a, b = self.saved_tensors
        ga = gb = None
        if a.ndim == 2 and b.ndim == 2:
            if self.needs_input_grad[0]:
                ga = matmul(g, Permute(dims=(1, 0))(_conj(b)))
            if self.needs_input_grad[1]:
                gb = matmul(Permute(dims=(1, 0))(_conj(a)), g)
            return ga, gb
        if a.ndim == 1 and b.ndim == 1:  # dot product: g is a scalar
            return (g * _conj(b) if self.needs_input_grad[0] else None,
                    g * _conj(a) if self.needs_input_grad[1] else None)
        a2 = a if a.ndim > 1 else unsqueeze(a, 0)
        b2 = b if b.ndim > 1 else unsqueeze(b, -1)
        g2 = g
        if a.ndim == 1:
            g2 = unsqueeze(g2, -2)
        if b.ndim == 1:
            g2 = unsqueeze(g2, -1)
        if self.needs_input_grad[0]:
            ga = matmul(g2, transpose(_conj(b2), -1, -2))
            ga = unbroadcast(ga, a2.shape) if ga.shape != a2.shape else ga
            ga = reshape(ga, a.shape)
        if self.needs_input_grad[1]:
            gb = matmul(transpose(_conj(a2), -1, -2), g2)
            gb = unbroadcast(gb, b2.shape) if gb.shape != b2.shape else gb
            gb = reshape(gb, b.shape)
        return ga, gb


def _mshape(a):
    return "x".join(str(s) for s in (a.shape if a.ndim > 1 else (1,) + a.shape))


def matmul(input, other):
    _check_devices("matmul", input, other)
    return MatMul()(input, other)


def mm(input, mat2):
    if input.ndim != 2 or mat2.ndim != 2:
        raise RuntimeError("mm: both arguments must be 2-D matrices")
    return matmul(input, mat2)


def bmm(input, mat2):
    if input.ndim != 3 or mat2.ndim != 3:
        raise RuntimeError("bmm: both arguments must be 3-D tensors")
    return matmul(input, mat2)
