"""Activation checkpointing, as ``torch.utils.checkpoint``: ``checkpoint`` and ``checkpoint_sequential``.

A checkpointed segment runs its forward under ``no_grad`` and keeps only its inputs; when the backward
pass reaches it, it runs the segment again with grad enabled and back-propagates through that
recomputation. Memory: the activations of one segment at a time instead of all of them; cost: one more
forward pass per segment.

How a segment joins the graph (``use_reentrant=False``, the default): its outputs come from one node
whose inputs are the segment's tensor arguments and every other tensor needing grad that the segment
read (module parameters, tensors a closure captured); the no-grad forward records those (autograd's
``grad_uses``). Gradients so reach them through the engine like through any other path:
``autograd.grad(loss, params)``, tensor hooks and ``create_graph=True`` work, and the gradients are
those of the same computation without checkpointing.

``use_reentrant=True`` is PyTorch's older variant, with its limits: the node's inputs are the tensor
arguments only (if none requires grad the output does not either), parameters get their gradient by
accumulation into ``.grad`` during the recomputation's own backward pass (so ``autograd.grad`` with
respect to them does not see it), keyword arguments and gradients of gradients are not supported.

Randomness (``preserve_rng_state=True``): the recomputation draws the same random numbers as the
forward did, so dropout masks match. On the CPU the framework generator's state is saved and replayed:
a checkpointed model draws exactly what it draws without checkpointing. CuPy's generator state cannot be
copied; on CUDA devices holding a tensor argument the forward therefore re-seeds CuPy's generator with a
number drawn from it (deterministic under ``manual_seed``) and the recomputation replays that seed. The
masks then differ from those of the same model run without checkpointing (PyTorch keeps them the same),
but forward and recomputation always agree, which is what the gradients need.

As in PyTorch, the forward pass of every checkpointed module runs twice: forward hooks fire twice and
batch norm in training mode updates its running statistics twice.
"""

from __future__ import annotations

import copy
import importlib
import warnings
from contextlib import ExitStack, contextmanager, nullcontext

from .. import amp as _amp
from .. import autograd as _ag
from .. import backend as _backend
from ..autograd import Function, _shares_memory, enable_grad, grad, is_grad_enabled, no_grad
from ..tensor import Tensor

# (the module, whose generator globals are swapped; `framework.tensor` is the factory function)
_tensor_mod = importlib.import_module("..tensor", __package__)

__all__ = ["checkpoint", "checkpoint_sequential", "noop_context_fn"]


def noop_context_fn():
    """The default ``context_fn``: no context around the forward pass or the recomputation."""
    return nullcontext(), nullcontext()


def checkpoint(function, *args, use_reentrant: bool | None = False, preserve_rng_state: bool = True,
               context_fn=noop_context_fn, determinism_check: str = "default", debug: bool = False,
               early_stop: bool = True, **kwargs):
    """``function(*args, **kwargs)`` without keeping its activations: they are recomputed in backward.

    Args:
        function: what to run; it may return a Tensor or a (nested) tuple, list or dict holding Tensors
            and other values. Its floating-point Tensor outputs are differentiable.
        use_reentrant: False (the default) or True; see the module docstring. None means False (in
            PyTorch it warns and means True).
        preserve_rng_state: replay the random generators' state in the recomputation (dropout).
        context_fn: returns two context managers, entered around the forward and the recomputation
            (``use_reentrant=False`` only).
        determinism_check: ``"default"`` checks that the recomputation returns tensors of the same
            shapes, dtypes and devices as the forward; ``"none"`` skips that.
        debug: accepted for PyTorch compatibility; there is no operator trace to print here.
        early_stop: accepted for PyTorch compatibility; the recomputation always runs to the end.
        **kwargs: keyword arguments for ``function`` (``use_reentrant=False`` only).
    """
    if determinism_check not in ("default", "none"):
        raise ValueError("determinism_check should be one of ['default', 'none'], but got "
                         f"{determinism_check}")
    if use_reentrant:
        if kwargs:
            raise ValueError("Unexpected keyword arguments: " + ",".join(kwargs))
        if context_fn is not noop_context_fn or debug:
            raise ValueError("Passing `context_fn` or `debug` is only supported when use_reentrant=False.")
    forward_ctx, recompute_ctx = context_fn()
    if not is_grad_enabled():  # nothing to differentiate: nothing to recompute
        with forward_ctx:
            return function(*args, **kwargs)

    rng = _RngState(_tensors((args, kwargs), [])) if preserve_rng_state else None
    autocast = _autocast_state()
    with _recording_grad_uses() as uses, no_grad(), forward_ctx:
        out = function(*args, **kwargs)

    outs = _tensors(out, [])
    diff = [i for i, t in enumerate(outs) if t.data.dtype.kind in "fc"]
    inputs = [a for a in args if isinstance(a, Tensor)]
    if not use_reentrant:
        seen = {id(t) for t in inputs}
        for t in uses + [outs[i] for i in diff if outs[i].requires_grad]:
            if id(t) not in seen:
                seen.add(id(t))
                inputs.append(t)
    if not any(t.requires_grad for t in inputs):
        if use_reentrant:
            warnings.warn("None of the inputs have requires_grad=True. Gradients will be None", stacklevel=2)
        return out
    if not diff:
        return out

    in_arrays = [t.data for t in inputs]
    # An output that is (a view of) an input must not share its memory: it becomes a tensor of its own.
    arrays = tuple(a.copy() if any(a is b or _shares_memory(a, b) for b in in_arrays) else a
                   for a in (outs[i].data for i in diff))
    node_type = _ReentrantCheckpoint if use_reentrant else _Checkpoint
    node = node_type(function=function, args=args, kwargs=kwargs, rng=rng, autocast=autocast,
                     recompute_ctx=recompute_ctx, diff=diff, n_outs=len(outs),
                     meta=[_meta(outs[i]) for i in diff] if determinism_check == "default" else None,
                     out_arrays=arrays)
    results = node(*inputs)
    del node.out_arrays
    node.save_for_backward(*inputs)  # (version counters: an input changed in place is caught)
    replaced = dict(zip(diff, results))
    return _replace(out, iter([replaced.get(i, t) for i, t in enumerate(outs)]))


def checkpoint_sequential(functions, segments: int, input, use_reentrant: bool | None = False, **kwargs):
    """Run ``functions`` (a ``Sequential`` or a list of callables) one after another on ``input``, in
    ``segments`` segments of ``len(functions) // segments`` functions, each but the last checkpointed
    (the last one's activations are needed at once by the backward pass anyway), as PyTorch does.

    ``preserve_rng_state`` may be passed as a keyword argument.
    """
    preserve = kwargs.pop("preserve_rng_state", True)
    if kwargs:
        raise ValueError("Unexpected keyword arguments: " + ",".join(kwargs))
    from ..nn import Sequential

    if isinstance(functions, Sequential):
        functions = list(functions.children())
    size = len(functions) // segments if segments > 0 else 0
    if size == 0:
        raise ValueError(f"checkpoint_sequential: cannot split {len(functions)} functions into {segments} "
                         "segments (expected 1 <= segments <= the number of functions)")

    def run(start, end):
        def forward(x):
            for j in range(start, end + 1):
                x = functions[j](x)
            return x

        return forward

    end = -1
    for start in range(0, size * (segments - 1), size):
        end = start + size - 1
        input = checkpoint(run(start, end), input, use_reentrant=use_reentrant, preserve_rng_state=preserve)
    return run(end + 1, len(functions) - 1)(input)


# ------------------------------------------------------------------------------------ the nodes


class _Checkpoint(Function):
    """The floating-point outputs of a checkpointed segment. Inputs: its tensor arguments, then the other
    tensors needing grad that its forward read."""

    def forward(self, *arrays):
        return self.out_arrays  # (computed by the no-grad forward already)

    def _recompute(self, args, kwargs):
        with ExitStack() as stack:
            if self.rng is not None:
                stack.enter_context(self.rng.replayed())
            for device_type, enabled, dtype in self.autocast:
                stack.enter_context(_amp.autocast(device_type, dtype=dtype, enabled=enabled))
            stack.enter_context(enable_grad())
            stack.enter_context(self.recompute_ctx)
            out = self.function(*args, **kwargs)
        outs = _tensors(out, [])
        if self.meta is not None:
            got = [_meta(outs[i]) if i < len(outs) else None for i in self.diff]
            if len(outs) != self.n_outs or got != self.meta:
                raise RuntimeError("checkpoint: the recomputation returned tensors that differ from the "
                                   f"forward's: (shape, dtype, device) {got} instead of {self.meta} (pass "
                                   "determinism_check='none' to skip this check)")
        return [outs[i] for i in self.diff]

    def backward(self, *grad_outputs):
        self.saved_tensors  # noqa: B018  (raises if an input was modified in place since the forward)
        create_graph = is_grad_enabled()  # (the engine runs backward with grad on iff create_graph)
        outs = self._recompute(self.args, self.kwargs)
        pairs = [(t, g) for t, g in zip(outs, grad_outputs) if t.requires_grad]
        wanted = []
        for x, need in zip(self.inputs, self.needs_input_grad):
            if need and all(x is not w for w in wanted):
                wanted.append(x)
        if not pairs:
            return (None,) * len(self.inputs)
        # Gradients with respect to the segment's own inputs only: the paths from them further back
        # (through the rest of the graph) are the outer pass's to follow.
        with _graph_ends_at(wanted):
            res = grad([t for t, _ in pairs], wanted, [g for _, g in pairs], retain_graph=create_graph,
                       create_graph=create_graph, allow_unused=True)
        by_id = {id(x): g for x, g in zip(wanted, res)}
        grads = []
        for x, need in zip(self.inputs, self.needs_input_grad):
            grads.append(by_id.pop(id(x), None) if need else None)  # (a repeated input: counted once)
        return tuple(grads)


class _ReentrantCheckpoint(_Checkpoint):
    """``use_reentrant=True``: inputs are the tensor arguments only; the recomputation's own backward
    pass accumulates the gradients of everything else (parameters) into ``.grad``."""

    def backward(self, *grad_outputs):
        if is_grad_enabled():
            raise RuntimeError("checkpoint(use_reentrant=True) does not support gradients of gradients "
                               "(create_graph=True); use use_reentrant=False")
        inputs = self.saved_tensors
        detached = [x.detach().requires_grad_(x.requires_grad) for x in inputs]
        it = iter(detached)
        args = tuple(next(it) if isinstance(a, Tensor) else a for a in self.args)
        outs = self._recompute(args, {})
        pairs = [(t, g) for t, g in zip(outs, grad_outputs) if t.requires_grad]
        if pairs:
            _ag.backward([t for t, _ in pairs], [g for _, g in pairs])
        return tuple(d.grad if x.requires_grad else None for d, x in zip(detached, inputs))


@contextmanager
def _graph_ends_at(tensors):
    """While active, a backward pass sees ``tensors`` as where the graph ends: their producers' inputs
    are hidden (so no gradient flows on through them, and none of those nodes is run or freed), and their
    hooks are set aside (they fire once, in the outer pass, with the whole gradient)."""
    hooks = [(t, t._hooks) for t in tensors]
    cut, seen = [], set()
    for t in tensors:
        t._hooks = []
        fn = t.grad_fn
        if fn is not None and id(fn) not in seen:
            seen.add(id(fn))
            cut.append((fn, fn.inputs, fn._edges))
            fn.inputs, fn._edges = (None,) * len(fn._edges), [_ag._NO_EDGE] * len(fn._edges)
    try:
        yield
    finally:
        for fn, inputs, edges in cut:
            fn.inputs, fn._edges = inputs, edges
        for t, h in hooks:
            t._hooks = h


# ----------------------------------------------------------------------------- forward helpers


@contextmanager
def _recording_grad_uses():
    """Collect the tensors needing grad that operations read while grad is off (see Function.__call__);
    a checkpoint nested in another's forward passes them on to the outer one."""
    state = _ag._state
    outer = getattr(state, "grad_uses", None)
    uses: list = []
    state.grad_uses = uses
    try:
        yield uses
    finally:
        state.grad_uses = outer
        if outer is not None:
            outer.extend(uses)


def _autocast_state():
    return [(d, _amp.is_autocast_enabled(d), _amp.get_autocast_dtype(d)) for d in ("cuda", "cpu")]


def _meta(t):
    return tuple(t.shape), t.dtype, str(t.device)


class _RngState:
    """The random generators' state at a checkpointed forward, replayed by its recomputation."""

    def __init__(self, tensors):
        self.cpu = copy.deepcopy(_tensor_mod.default_generator())
        self.cuda = {}
        devices = sorted({t.device.index for t in tensors if t.device.type == "cuda"})
        if devices:
            cp = _backend.cupy_module()
            for index in devices:
                with cp.cuda.Device(index):
                    seed = int(cp.random.get_random_state().randint(0, 2**31 - 1, size=(1,)).get()[0])
                    cp.random.set_random_state(cp.random.RandomState(seed))
                self.cuda[index] = seed

    @contextmanager
    def replayed(self):
        old_cpu = _swap_cpu_generator(copy.deepcopy(self.cpu))
        old_cuda = {}
        try:
            if self.cuda:
                cp = _backend.cupy_module()
                for index, seed in self.cuda.items():
                    with cp.cuda.Device(index):
                        old_cuda[index] = cp.random.get_random_state()
                        cp.random.set_random_state(cp.random.RandomState(seed))
            yield
        finally:
            _swap_cpu_generator(old_cpu)
            for index, state in old_cuda.items():
                with _backend.cupy_module().cuda.Device(index):
                    _backend.cupy_module().random.set_random_state(state)


def _swap_cpu_generator(generator):
    """Make ``generator`` the one that framework draws use (the thread's own one if it has one, as in a
    DataLoader worker, else the global one); returns the one it replaces."""
    thread = _tensor_mod._thread
    if getattr(thread, "rng", None) is not None:
        old, thread.rng = thread.rng, generator
    else:
        old, _tensor_mod._rng = _tensor_mod._rng, generator
    return old


# ------------------------------------------------------------------------ nested outputs


def _tensors(obj, out: list) -> list:
    """The tensors in ``obj`` (a tensor, or tuples, lists and dicts of them), in order."""
    if isinstance(obj, Tensor):
        out.append(obj)
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            _tensors(o, out)
    elif isinstance(obj, dict):
        for o in obj.values():
            _tensors(o, out)
    return out


def _replace(obj, new):
    """``obj`` with its tensors replaced, in the order ``_tensors`` lists them, by those of ``new``."""
    if isinstance(obj, Tensor):
        return next(new)
    if isinstance(obj, (tuple, list)):
        items = [_replace(o, new) for o in obj]
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a namedtuple
            return type(obj)(*items)
        return type(obj)(items)
    if isinstance(obj, dict):
        return type(obj)((k, _replace(v, new)) for k, v in obj.items())
    return obj
