"""The define-by-run engine: Function nodes, grad modes, backward() and grad().

A Function's ``forward`` works on raw arrays (NumPy or CuPy); its ``backward`` receives the output
gradients as Tensors and returns input gradients built from differentiable Tensor operations, so
running backward with ``create_graph=True`` records a graph of its own (gradients of gradients).
"""

from __future__ import annotations

import inspect
import sys
import threading
import weakref
from collections.abc import Sequence

import numpy as _np

_state = threading.local()
_TENSOR = None


def _tensor_cls():
    global _TENSOR
    if _TENSOR is None:
        from .tensor import Tensor

        _TENSOR = Tensor
    return _TENSOR


def is_grad_enabled() -> bool:
    return getattr(_state, "grad", True)


def _set_grad(mode: bool) -> None:
    _state.grad = mode


class _GradMode:
    """Context manager and decorator, like ``torch.no_grad`` / ``torch.enable_grad``; as in PyTorch
    the decorator also works without parentheses (``@no_grad``)."""

    mode = True

    def __new__(cls, orig_func=None, **kwargs):
        if not callable(orig_func):  # (None, or the mode that inference_mode / set_grad_enabled take)
            return super().__new__(cls)
        return cls()(orig_func)

    def __enter__(self):
        self._prev = is_grad_enabled()
        _set_grad(self.mode)
        return self

    def __exit__(self, *exc):
        _set_grad(self._prev)
        return False

    def __call__(self, fn):
        return _with_grad_mode(fn, self.mode)


def _with_grad_mode(fn, mode):
    """``fn`` run under grad mode ``mode``; for a generator function, each of its steps (the caller
    keeps its own mode between them), as PyTorch's grad-mode decorators do."""
    import functools
    import inspect

    def ctx():
        return enable_grad() if mode else no_grad()

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            gen = fn(*args, **kwargs)
            try:
                with ctx():
                    response = gen.send(None)
                while True:
                    try:
                        request = yield response
                    except GeneratorExit:
                        with ctx():
                            gen.close()
                        raise
                    except BaseException as e:
                        with ctx():
                            response = gen.throw(e)
                    else:
                        with ctx():
                            response = gen.send(request)
            except StopIteration as e:
                return e.value

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with ctx():
            return fn(*args, **kwargs)

    return wrapper


class no_grad(_GradMode):
    mode = False


class enable_grad(_GradMode):
    mode = True


def is_inference_mode_enabled() -> bool:
    """Whether an ``inference_mode()`` block (or function it decorates) is running, as PyTorch's."""
    return getattr(_state, "inference", False)


class inference_mode(_GradMode):
    """Like ``torch.inference_mode``; here no_grad that ``is_inference_mode_enabled()`` reports (no
    separate tensor kind). ``inference_mode(False)`` turns inference mode off and grad mode on, as
    PyTorch's guard does."""

    mode = False

    def __init__(self, mode: bool = True):
        self.on = bool(mode)

    def __enter__(self):
        self._prev = is_grad_enabled()
        self._prev_inference = is_inference_mode_enabled()
        _set_grad(not self.on)
        _state.inference = self.on
        return self

    def __exit__(self, *exc):
        _set_grad(self._prev)
        _state.inference = self._prev_inference
        return False

    def __call__(self, fn):
        import functools

        if inspect.isgeneratorfunction(fn):  # (each step of the generator inside the mode, as no_grad)
            @functools.wraps(fn)
            def gen_wrapper(*args, **kwargs):
                with inference_mode(self.on):
                    gen = fn(*args, **kwargs)
                    request = None
                while True:
                    try:
                        with inference_mode(self.on):
                            response = gen.send(request)
                    except StopIteration as e:
                        return e.value
                    request = yield response

            return gen_wrapper

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with inference_mode(self.on):
                return fn(*args, **kwargs)

        return wrapper


class set_grad_enabled(_GradMode):
    """``set_grad_enabled(False)`` switches the mode at once (a plain call works, as in PyTorch); used
    as a context manager or decorator it also restores the previous mode afterwards."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self._prev = is_grad_enabled()
        _set_grad(self.mode)

    def __enter__(self):
        return self

    def __call__(self, fn):
        _set_grad(self._prev)  # as a decorator, the mode applies only inside calls of fn
        return _with_grad_mode(fn, self.mode)


class Function:
    """A node of the graph.

    Subclasses implement ``forward(self, *arrays) -> array | tuple`` and
    ``backward(self, *grad_outputs: Tensor) -> Tensor | None | tuple``. ``save_for_backward`` keeps
    tensors (inputs or outputs) and records their versions, so that an in-place change made after
    the forward is caught when backward reads them.
    """

    __slots__ = ("inputs", "needs_input_grad", "_edges", "_outputs", "_freed", "__dict__", "__weakref__")
    _saved: tuple = ()
    _saved_versions: tuple = ()

    # Set by subclasses whose output shares memory with their first input (views).
    is_view = False

    # Set by subclasses whose forward and backward are right for complex tensors (framework.ops.complexops):
    # any other refuses complex inputs, rather than give silently wrong values or gradients.
    complex_grad = False

    # Which inputs (by position) and whether the output are kept for backward; Function.__call__
    # saves them after forward, when a graph is being recorded.
    saves_inputs: tuple = ()
    saves_output = False

    def save_for_backward(self, *tensors):
        self._saved = tensors
        self._saved_versions = tuple(getattr(t, "_vc", (None,))[0] for t in tensors)

    @property
    def saved_tensors(self):
        if self._freed:
            raise RuntimeError(
                f"{type(self).__name__}: trying to backward through the graph a second time (or to "
                "access saved tensors after they have been freed). Specify retain_graph=True on the "
                "first backward if you need to backward twice.")
        for i, (t, v) in enumerate(zip(self._saved, self._saved_versions)):
            if v is not None and t._vc[0] != v:
                raise RuntimeError(
                    f"one of the variables needed for gradient computation has been modified by an "
                    f"inplace operation: input {i} of {type(self).__name__}, a tensor of shape "
                    f"{tuple(t.shape)}, is at version {t._vc[0]}; expected version {v} instead.")
        return self._saved

    def forward(self, *xs):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, *gys):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} is not differentiable")

    @classmethod
    def apply(cls, *inputs, **kwargs):
        """Run the Function on ``inputs``. A subclass written in PyTorch's style (``forward`` and
        ``backward`` static methods taking a context first, on Tensors) runs through
        :class:`FunctionCtx`; one written in this framework's style (methods on arrays) directly."""
        if isinstance(inspect.getattr_static(cls, "forward"), staticmethod):
            return _apply_ctx_style(cls, inputs, kwargs)
        return cls(**kwargs)(*inputs)

    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)

    def __call__(self, *inputs):
        Tensor = _tensor_cls()
        self._freed = False
        arrays = []
        need = cplx = False
        for x in inputs:
            if isinstance(x, Tensor):
                a = x.data
                arrays.append(a)
                if a.dtype.kind == "c":
                    cplx = True
                if x._requires_grad:
                    need = True
            else:
                arrays.append(x)
        if cplx and not self.complex_grad:
            raise TypeError(f"{type(self).__name__}: complex tensors are not supported by this operation yet "
                            "(apply it to the real and imaginary parts, or to the magnitude)")
        try:
            raw = self.forward(*arrays)
        except (ValueError, IndexError, TypeError) as e:
            shapes = ", ".join(str(tuple(a.shape)) if hasattr(a, "shape") else repr(a) for a in arrays)
            raise type(e)(f"{type(self).__name__}: {e} (input shapes: {shapes})") from e
        multi = isinstance(raw, tuple)
        # (NumPy gives a scalar, not a 0-d array, for a full reduction: a tensor must own an array, which
        # in-place writes such as load_state_dict's copy can write into)
        if multi:
            outs = tuple([_np.asarray(o) if isinstance(o, _np.generic) else o for o in raw])
        else:
            outs = (_np.asarray(raw) if isinstance(raw, _np.generic) else raw,)
        if need and is_grad_enabled():
            if not self.complex_grad:  # complex outputs from real inputs
                for o in outs:
                    if getattr(o, "dtype", None) is not None and o.dtype.kind == "c":
                        raise TypeError(f"{type(self).__name__}: gradients through complex tensors are not "
                                        "supported by this operation yet")
            self.inputs = inputs
            self.needs_input_grad = tuple(isinstance(x, Tensor) and x._requires_grad for x in inputs)
            # Each input's producer as it is now: an in-place op later gives the tensor a new
            # grad_fn, but this node consumed the old value (PyTorch's edges are fixed the same way).
            # A view whose base was changed in place since is first re-derived from the base.
            edges = []
            for x in inputs:
                if isinstance(x, Tensor):
                    if x._view_ver is not None and x._view_ver != x._vc[0]:
                        _refresh_view(x)
                    edges.append((x.grad_fn, x._out_idx))
                else:
                    edges.append(_NO_EDGE)
            self._edges = edges
            results = tuple([Tensor._from_op(o, self, i) for i, o in enumerate(outs)])
            self._outputs = tuple([weakref.ref(r) for r in results])
            if multi:
                self._ometa = [(o.shape, o.dtype) for o in outs]
            if self.saves_inputs or self.saves_output:
                saved = [inputs[i] for i in self.saves_inputs]
                if self.saves_output:
                    saved.append(results[0])
                self.save_for_backward(*saved)
        else:
            self.inputs = self._edges = ()
            results = tuple([Tensor(o) for o in outs])
            if need and getattr(_state, "grad_uses", None) is not None:
                # (a checkpointed segment's no-grad forward: which tensors needing grad it read, so
                # that framework.utils.checkpoint can link them to the graph without keeping activations)
                _state.grad_uses.extend(x for x in inputs if isinstance(x, Tensor) and x._requires_grad)
        # (a reshape that had to copy is no view: its result keeps a version counter of its own)
        if self.is_view and isinstance(inputs[0], Tensor) and _shares_memory(outs[0], arrays[0]):
            results[0]._vc = inputs[0]._vc
            if results[0].grad_fn is not None:
                results[0]._view_ver = results[0]._vc[0]
            if results[0].grad_fn is None:
                results[0]._view_src = (inputs[0], self)
        return results if multi else results[0]

    def _release(self):
        # Drops the inputs too: a tensor kept after backward (the loss) must not hold every
        # activation of its forward alive, as PyTorch frees what a graph saved. (Leaves that need
        # a gradient stay: grad() tells by them whether a later pass would go through this node;
        # so do tensors with hooks, which must still fire when their producer is reached.)
        self._freed = True
        self._saved = ()
        self.inputs = tuple(x if need and (e[0] is None or x._hooks) else None
                            for x, e, need in zip(self.inputs, self._edges, self.needs_input_grad))
        self.__dict__.clear()


class FunctionCtx:
    """The ``ctx`` of a PyTorch-style custom Function: ``save_for_backward(*tensors)`` /
    ``saved_tensors``, ``needs_input_grad``, ``mark_non_differentiable(*outputs)``,
    ``set_materialize_grads(value)``, and any attribute the forward stores for the backward."""

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self.materialize_grads = True
        self._to_save: tuple = ()
        self._non_differentiable: set = set()
        self._node = None

    def save_for_backward(self, *tensors):
        self._to_save = tensors

    @property
    def saved_tensors(self):
        if self._node is None:  # still in forward, or no graph was recorded
            return self._to_save
        return self._node.saved_tensors

    def mark_non_differentiable(self, *outputs):
        self._non_differentiable.update(id(o) for o in outputs)

    def mark_dirty(self, *tensors):
        """Accepted for compatibility: in-place changes are tracked by version counters here."""

    def set_materialize_grads(self, value: bool):
        """Accepted for compatibility: the gradient of an unused output always arrives as zeros here
        (PyTorch can pass None instead)."""
        self.materialize_grads = bool(value)


class _CtxNode(Function):
    """The graph node of a PyTorch-style Function: its forward hands back the outputs already computed
    (on their arrays); its backward calls the user's ``backward(ctx, *grads)`` on Tensors."""

    def forward(self, *arrays):
        return self.results if len(self.results) > 1 else self.results[0]

    def backward(self, *grads):
        out = self.user.backward(self.ctx, *grads)
        out = out if isinstance(out, tuple) else (out,)
        n = len(self.inputs)
        if len(out) < n and all(o is None for o in out[len(out):]):
            out = out + (None,) * (n - len(out))
        if len(out) != n:
            raise RuntimeError(f"function {self.user.__name__}Backward returned an incorrect number of "
                               f"gradients (expected {n}, got {len(out)})")
        Tensor = _tensor_cls()
        return tuple(None if g is None else (g if isinstance(g, Tensor) else Tensor(g)) for g in out)


def once_differentiable(fn):
    """Decorate a PyTorch-style ``backward``: it runs with gradients disabled, so its result has no
    graph (a second derivative through it raises instead of being silently wrong)."""
    import functools

    @functools.wraps(fn)
    def wrapper(ctx, *grads):
        with no_grad():
            return fn(ctx, *grads)

    return wrapper


_CTX_NODES: dict = {}


def _apply_ctx_style(cls, inputs, kwargs):
    Tensor = _tensor_cls()
    if kwargs:
        raise TypeError(f"{cls.__name__}.apply() takes positional arguments only")
    needs = tuple(isinstance(x, Tensor) and x.requires_grad for x in inputs)
    ctx = FunctionCtx(needs)
    with no_grad():
        raw = cls.forward(ctx, *inputs)
    outs = raw if isinstance(raw, tuple) else (raw,)
    for o in outs:
        if not isinstance(o, Tensor):
            raise TypeError(f"{cls.__name__}.forward must return Tensors, got {type(o).__name__}")
    if not (any(needs) and is_grad_enabled()):
        return raw
    node_cls = _CTX_NODES.get(cls)
    if node_cls is None:  # named after the Function, as PyTorch's grad_fn (MyExpBackward)
        node_cls = _CTX_NODES[cls] = type(f"{cls.__name__}Backward", (_CtxNode,), {})
    node = node_cls(user=cls, ctx=ctx, results=tuple(o.data for o in outs))
    linked = node(*inputs)
    linked = linked if isinstance(linked, tuple) else (linked,)
    # saved outputs become the linked outputs (so that a backward written with Tensor operations
    # differentiates again through this node); saved inputs are the inputs themselves
    swap = {id(o): t for o, t in zip(outs, linked)}
    node.save_for_backward(*(swap.get(id(t), t) if isinstance(t, Tensor) else t for t in ctx._to_save))
    ctx._node = node
    for o, t in zip(outs, linked):
        if id(o) in ctx._non_differentiable:
            t._requires_grad = False
            t.grad_fn = None
    return linked if isinstance(raw, tuple) else linked[0]


def _shares_memory(a, b):
    """Whether a view op's result ``a`` may share memory with its input ``b`` (a bounds check). On the
    path of every view op's forward, so NumPy arrays take no import and no lookup."""
    if type(a) is _np.ndarray:
        return a.base is not None and bool(_np.may_share_memory(a, b))
    from .backend import get_array_module

    shares = getattr(get_array_module(a), "may_share_memory", None)
    return shares is None or bool(shares(a, b))


# ----------------------------------------------------------------------------------------- engine

_NO_EDGE = (None, 0)


def _retire_grad_fn(x):
    """``x`` is about to get a new grad_fn: its old node's output becomes a snapshot that keeps the
    hooks registered so far (PyTorch attaches hooks to a version of a tensor)."""
    from .tensor import Tensor

    old = x.grad_fn
    if old is not None and len(old._outputs) == 1:
        snap = Tensor._from_op(x.data, old, x._out_idx)
        snap._hooks, x._hooks = x._hooks, []
        old._outputs = (weakref.ref(snap),)
        old._stale_output = snap  # (kept alive while the old node is; freed with it)


def _refresh_view(x):
    """Re-derive the grad_fn of view ``x`` from its base's current version: the base was modified in
    place after ``x`` was made, and ``x`` (sharing its memory) holds the new values. PyTorch
    regenerates a view's grad_fn the same way; uses of ``x`` recorded before keep the old one."""
    from .ops.basic import BroadcastTo
    from .ops.shape import _view_of

    x._view_ver = x._vc[0]
    view = _view_of(x)
    fn = x.grad_fn
    if view is None and isinstance(fn, BroadcastTo) and not fn._freed and fn.inputs:
        # (expand: a view that cannot be written through, but still follows its base)
        view = (fn.inputs[0], lambda b, shape=fn.shape: BroadcastTo(shape=shape)(b), None)
    if view is None:
        return
    base, to_view, _ = view
    with enable_grad():
        nv = to_view(base)
    if nv.grad_fn is None:
        return
    _retire_grad_fn(x)
    nv.grad_fn._outputs = (weakref.ref(x),)
    x.grad_fn, x._out_idx = nv.grad_fn, 0
    x._view_ver = x._vc[0]


def _topo_order(roots):
    """Functions reachable from ``roots`` in reverse topological order, without recursion."""
    order, seen = [], set()
    stack = [(fn, False) for fn in roots]
    while stack:
        fn, done = stack.pop()
        if done:
            order.append(fn)
            continue
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        stack.append((fn, True))
        for g, _ in fn._edges:
            if g is not None and id(g) not in seen:
                stack.append((g, False))
    order.reverse()
    return order


def _run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs=None, allow_unused=False):
    from .tensor import Tensor

    if retain_graph is None:
        retain_graph = create_graph
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"got {len(outputs)} tensors and {len(grad_outputs)} gradients")
    pending: dict[tuple[int, int], Tensor] = {}
    roots = []
    leaf_grads: dict[int, Tensor] = {}
    for out, grad_output in zip(outputs, grad_outputs):
        g = grad_output
        if not out.requires_grad:
            raise RuntimeError(f"element of a tensor of shape {tuple(out.shape)} does not require "
                               "grad and does not have a grad_fn")
        if out._view_ver is not None and out._view_ver != out._vc[0]:
            _refresh_view(out)
        if g is None:
            if out.data.dtype.kind == "c":
                raise RuntimeError("grad can be implicitly created only for real scalar outputs")
            if out.numel() != 1:
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs; got "
                                   f"shape {tuple(out.shape)}")
            g = Tensor(_ones_like(out.data))
        elif not isinstance(g, Tensor):
            raise TypeError(f"gradients can be either Tensors or None, but got {type(g).__name__}")
        if tuple(g.shape) != tuple(out.shape):
            raise RuntimeError(f"mismatch in shape: grad_output has shape {tuple(g.shape)} and "
                               f"output has shape {tuple(out.shape)}")
        if g.data.dtype != out.data.dtype:  # (PyTorch casts a gradient to its tensor's dtype)
            g = g.to(out.dtype)
        if out.grad_fn is None:  # a leaf: its gradient is g itself
            leaf_grads[id(out)] = g if id(out) not in leaf_grads else leaf_grads[id(out)] + g
            continue
        key = (id(out.grad_fn), out._out_idx)
        pending[key] = g if key not in pending else pending[key] + g
        roots.append(out.grad_fn)

    wanted = {id(t): t for t in inputs} if inputs is not None else {}
    leaves: dict[int, Tensor] = {}
    # The caller's gradient arrays count as taken: one that reaches a leaf unchanged (through an
    # add) is copied there, never made the .grad that later accumulations write into. (Views of
    # them, through a reshape, are copied by _own anyway.) Copying only then, as PyTorch's
    # AccumulateGrad does, keeps backward(gradient) free of a copy of every output gradient.
    taken: set[int] = {id(g.data) for g in grad_outputs if isinstance(g, Tensor)}

    def to_leaf(x, g):
        i = id(x)
        leaves[i] = x
        leaf_grads[i] = g if i not in leaf_grads else leaf_grads[i] + g

    for out in outputs:
        if out.grad_fn is None and id(out) in leaf_grads and (inputs is None or id(out) in wanted):
            leaves[id(out)] = out

    order = _topo_order(roots)
    # With ``inputs``, only the part of the graph that leads to them runs (as in PyTorch): hooks
    # elsewhere do not fire and no gradient is computed for other tensors.
    execute = reach = None
    if inputs is not None:
        execute, reach = set(), {id(t.grad_fn) for t in inputs if t.grad_fn is not None}
        for fn in reversed(order):
            if any(id(x) in wanted if xfn is None else id(xfn) in reach
                   for x, (xfn, _) in zip(fn.inputs, fn._edges)):
                execute.add(id(fn))
                reach.add(id(fn))

    with enable_grad() if create_graph else no_grad():
        for fn in order:
            if reach is not None and id(fn) not in reach:
                continue  # (not run, so not freed: a later backward may still go through it)
            if fn._freed:
                raise RuntimeError(
                    f"{type(fn).__name__}: trying to backward through the graph a second time (or "
                    "to access saved tensors after they have already been freed). Specify "
                    "retain_graph=True if you need to backward through the graph a second time.")
            gys = []
            any_grad = False
            for i, ref in enumerate(fn._outputs):
                g = pending.pop((id(fn), i), None)
                t = ref()
                if g is not None and t is not None:
                    g = _call_hooks(t, g)
                    if t._retains_grad and inputs is None:
                        _accumulate_leaf(t, g, create_graph, taken)
                    if id(t) in wanted:
                        leaf_grads[id(t)] = g
                if g is not None:
                    any_grad = True
                gys.append(g)
            if execute is not None and id(fn) not in execute:
                continue
            if not any_grad:
                if not retain_graph:
                    fn._release()
                continue
            if len(gys) > 1 and any(g is None for g in gys):
                for i in range(len(gys)):
                    if gys[i] is None:
                        shape, dt = fn._ometa[i]
                        gys[i] = Tensor(_zeros_like_meta(fn, shape, dt))
            gxs = fn.backward(*gys)
            if not isinstance(gxs, tuple):
                gxs = (gxs,)
            if len(gxs) != len(fn.inputs):
                raise RuntimeError(f"{type(fn).__name__}.backward returned {len(gxs)} gradients "
                                   f"for {len(fn.inputs)} inputs")
            for x, (xfn, xidx), gx, need in zip(fn.inputs, fn._edges, gxs, fn.needs_input_grad):
                if not need or gx is None:
                    continue
                if gx.data.shape != x.data.shape:  # (arrays' shapes: no Size objects in the hot loop)
                    raise RuntimeError(f"{type(fn).__name__}.backward: gradient of shape "
                                       f"{tuple(gx.shape)} for an input of shape {tuple(x.shape)}")
                if reach is not None and (id(x) not in wanted if xfn is None else id(xfn) not in reach):
                    continue
                if gx.data.dtype != x.data.dtype:  # (PyTorch casts a gradient to its tensor's dtype)
                    gx = gx.to(x.dtype)
                if not create_graph and gx._requires_grad:
                    gx = gx.detach()
                if xfn is not None:
                    key = (id(xfn), xidx)
                    pending[key] = gx if key not in pending else pending[key] + gx
                else:
                    to_leaf(x, gx)
            if not retain_graph:
                fn._release()

    # Leaves: hooks see the whole gradient of this pass, then it is accumulated or returned.
    for i, x in leaves.items():
        g = leaf_grads[i] = _call_hooks(x, leaf_grads[i])
        if inputs is None:
            _accumulate_leaf(x, g, create_graph, taken)

    if inputs is None:
        return None
    result = []
    for t in inputs:
        g = leaf_grads.get(id(t))
        if g is None and not allow_unused:
            raise RuntimeError(f"one of the differentiated tensors (shape {tuple(t.shape)}) appears "
                               "not to have been used in the graph. Set allow_unused=True if this "
                               "is the desired behavior.")
        result.append(g)
    return tuple(result)


def _call_hooks(t, g):
    for hook in t._hooks:
        r = hook(g)
        if r is not None:
            if tuple(r.shape) != tuple(g.shape):
                raise RuntimeError(f"hook '{getattr(hook, '__name__', hook)}' has changed the size of value: "
                                   f"the gradient has shape {tuple(g.shape)}, the hook returned "
                                   f"{tuple(r.shape)}")
            g = r
    return g


def _ones_like(a):
    from .backend import get_array_module

    return get_array_module(a).ones_like(a)


def _zeros_like_meta(fn, shape, dt):
    from .backend import get_array_module

    x = next(x for x in fn.inputs if isinstance(x, _tensor_cls()))
    return get_array_module(x.data).zeros(shape, dtype=dt)


# Tensor.register_post_accumulate_grad_hook: id(leaf) -> (weak reference to it, [hooks]). (Keyed by id:
# a Tensor's == is element-wise, so it cannot be a dictionary key itself.)
_POST_ACC_HOOKS: dict = {}


def _add_post_accumulate_hook(t, hook):
    ref, hooks = _POST_ACC_HOOKS.get(id(t), (None, None))
    if ref is None or ref() is not t:
        key = id(t)
        ref = weakref.ref(t, lambda _r, key=key: _POST_ACC_HOOKS.pop(key, None))
        hooks = []
        _POST_ACC_HOOKS[key] = (ref, hooks)
    hooks.append(hook)
    return hooks


def _accumulate_leaf(t, g, create_graph, taken):
    """Add ``g`` into ``t.grad``, then run the leaf's post-accumulate-grad hooks (``hook(t)``)."""
    _accumulate_into(t, g, create_graph, taken)
    entry = _POST_ACC_HOOKS.get(id(t))
    if entry is not None and entry[0]() is t:
        for hook in list(entry[1]):
            hook(t)


def _accumulate_into(t, g, create_graph, taken):
    """Add ``g`` into ``t.grad``. ``taken``: ids of the arrays already made a ``.grad`` in this pass
    (an add hands one gradient to both operands; two ``.grad`` must not be one array)."""
    if g.dtype != t.dtype:
        g = g.to(t.dtype)
    if t.grad is None:
        # Own the storage unless building a graph: later in-place accumulation must not alias.
        if create_graph:
            if id(g.data) in taken:
                with enable_grad():
                    g = g.clone()
            taken.add(id(g.data))
            t.grad = g
            return
        g = g.detach()._own()
        if id(g.data) in taken:
            g.data = g.data.copy()
        taken.add(id(g.data))
        t.grad = g
    elif create_graph:
        t.grad = t.grad + g
    else:
        t.grad.data += g.data
        t.grad._vc[0] += 1  # (a grad from create_graph may have been saved by a graph since)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """``torch.autograd.backward``: accumulate into the leaves' ``.grad`` (or only into ``inputs``)."""
    from .tensor import Tensor

    if isinstance(tensors, Tensor):
        tensors = [tensors]
    if grad_tensors is None or isinstance(grad_tensors, Tensor):
        grad_tensors = [grad_tensors] * len(tensors)
    if inputs is not None:
        inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        if not inputs:
            raise RuntimeError("backward: 'inputs' argument to backward() cannot be empty")
        grads = _run_backward(list(tensors), list(grad_tensors), retain_graph, create_graph, inputs, True)
        taken = {id(g.data) for g in grad_tensors if isinstance(g, Tensor)}  # (see _run_backward)
        for t, g in zip(inputs, grads):
            if g is not None:
                _accumulate_leaf(t, g, create_graph, taken)
        return
    _run_backward(list(tensors), list(grad_tensors), retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """Gradients of ``outputs`` with respect to ``inputs``, as ``torch.autograd.grad``.

    ``materialize_grads=True`` returns zeros instead of None for inputs the outputs do not depend
    on (and implies ``allow_unused``). ``is_grads_batched`` is not supported.
    """
    from .tensor import Tensor

    if is_grads_batched:
        raise NotImplementedError("grad: is_grads_batched=True is not supported")
    if allow_unused is None:
        allow_unused = materialize_grads
    elif materialize_grads and not allow_unused:
        raise ValueError("Expected allow_unused to be True or not passed when materialize_grads=True, "
                         "but got: allow_unused=False.")

    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs)
    elif isinstance(grad_outputs, Sequence):
        grad_outputs = list(grad_outputs)
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError(f"one of the differentiated tensors (shape {tuple(t.shape)}) does "
                               "not require grad")
    grads = _run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs, allow_unused)
    if materialize_grads:
        from .tensor import zeros_like

        grads = tuple(zeros_like(t) if g is None else g for g, t in zip(grads, inputs))
    return grads


# fw.autograd.functional, as torch's (registered as a submodule: `import framework.autograd.functional`)
from . import autograd_functional as functional  # noqa: E402

sys.modules[__name__ + ".functional"] = functional
