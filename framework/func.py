"""Function transforms, shaped like ``torch.func``: ``grad``, ``grad_and_value``, ``vjp``, ``jacrev``,
``jacfwd``, ``hessian``, ``vmap`` and ``functional_call``.

They are built on this framework's tape autograd, not on a transform interpreter as PyTorch's are:

- ``grad(f)(x)`` runs ``f`` on ``x`` made a leaf that requires grad and returns ``df/dx``. Where ``x``
  already takes part in a graph (an enclosing ``grad``), or ``f`` reads another tensor that requires
  grad (a parameter being trained), the gradient is computed with ``create_graph=True``, so transforms
  nest: ``grad(grad(f))`` is the second derivative, and a ``grad`` inside a loss (a gradient penalty) is
  trained through. Otherwise the results are plain tensors.
- ``jacfwd`` computes the same Jacobian as ``jacrev`` (by reverse mode: there is no forward mode here).
- ``vmap(f)`` runs ``f`` once per slice of the mapped inputs and stacks the results: the semantics of
  PyTorch's ``vmap`` (including ``in_dims`` / ``out_dims`` trees and ``chunk_size``), not its speed.
  ``randomness="error"`` (the default, as PyTorch's) is enforced by watching the random generator's
  state across the slices; "different" lets each slice draw anew; "same" replays one draw for all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from . import autograd
from .tensor import Tensor

__all__ = ["grad", "grad_and_value", "vjp", "jacrev", "jacfwd", "hessian", "vmap", "functional_call"]


def _argnums(argnums, n: int) -> tuple[tuple[int, ...], bool]:
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)
    if not nums:
        raise ValueError("argnums must be non-empty")
    for a in nums:
        if not isinstance(a, int) or not -n <= a < n:
            raise ValueError(f"Got argnums={argnums}, but only {n} positional inputs")
    return tuple(a % n for a in nums), single


def _prepare(args, argnums):
    """(args as a list with the differentiated ones made leaves, their positions, whether argnums was a
    single int, whether an outer graph runs through them)."""
    nums, single = _argnums(argnums, len(args))
    args = list(args)
    outer = False
    for a in nums:
        args[a], nested = _leaf(args[a])
        outer |= nested
    return args, nums, single, outer


def _leaf(x):
    """(x as an input to differentiate, whether an outer graph runs through it)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"can only differentiate with respect to Tensors, got {type(x).__name__}")
    if x.requires_grad:
        return x, True
    return x.detach().requires_grad_(True), False


def _reaches_other_leaves(outputs, leaves) -> bool:
    """Whether the graph of ``outputs`` reaches a tensor that requires grad other than ``leaves`` (a
    parameter of the function, a tensor of an enclosing transform): then the derivatives must be built
    with a graph of their own, so that gradients can flow on to it."""
    own = {id(t) for t in leaves}
    seen, stack = set(), [o.grad_fn for o in outputs if isinstance(o, Tensor) and o.grad_fn is not None]
    while stack:
        fn = stack.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        for x in getattr(fn, "inputs", ()) or ():
            if not isinstance(x, Tensor) or not x.requires_grad:
                continue
            if x.grad_fn is None:
                if id(x) not in own:
                    return True
            else:
                stack.append(x.grad_fn)
    return False


def _split_aux(out, has_aux: bool, name: str):
    if not has_aux:
        return out, None
    if not (isinstance(out, tuple) and len(out) == 2):
        raise RuntimeError(f"{name}(f, ...)(*args): output of function f should be a tuple: (output, aux) "
                           "if has_aux is True")
    return out


def grad_and_value(func: Callable, argnums=0, has_aux: bool = False) -> Callable:
    """``f -> (lambda *args: (df/dargs[argnums], f(*args)))`` for a scalar-valued f (with ``has_aux``, f
    returns ``(value, aux)`` and the wrapper ``((grads), (value, aux))``)."""

    def wrapper(*args, **kwargs):
        args, nums, single, outer = _prepare(args, argnums)
        with autograd.enable_grad():
            out = func(*args, **kwargs)
            value, aux = _split_aux(out, has_aux, "grad_and_value")
            if not isinstance(value, Tensor) or value.numel() != 1:
                got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise RuntimeError(f"grad_and_value(f)(*args): Expected f(*args) to return a scalar Tensor, "
                                   f"got {got}")
            outer = outer or _reaches_other_leaves([value], [args[a] for a in nums])
            grads = autograd.grad(value, [args[a] for a in nums], create_graph=outer, allow_unused=True)
        grads = tuple(g if g is not None else args[a].detach() * 0 for g, a in zip(grads, nums))
        g = grads[0] if single else grads
        if not outer:
            value = value.detach()
        return (g, (value, aux)) if has_aux else (g, value)

    return wrapper


def grad(func: Callable, argnums=0, has_aux: bool = False) -> Callable:
    """``f -> df/dargs[argnums]`` (see :func:`grad_and_value`); with ``has_aux``, ``(grads, aux)``."""
    both = grad_and_value(func, argnums, has_aux)

    def wrapper(*args, **kwargs):
        g, value = both(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return wrapper


def vjp(func: Callable, *primals, has_aux: bool = False):
    """``(f(*primals), vjp_fn)``; ``vjp_fn(v)`` is the tuple of ``v^T J`` for each primal (with
    ``has_aux``: ``(output, vjp_fn, aux)``)."""
    leaves, outer = [], False
    for p in primals:
        leaf, nested = _leaf(p)
        leaves.append(leaf)
        outer |= nested
    with autograd.enable_grad():
        out = func(*leaves)
    out, aux = _split_aux(out, has_aux, "vjp")
    outer = outer or _reaches_other_leaves(out if isinstance(out, (tuple, list)) else [out], leaves)

    def vjp_fn(*cotangents):
        outs = out if isinstance(out, (tuple, list)) else (out,)
        if len(cotangents) == 1 and isinstance(cotangents[0], (tuple, list)):
            cotangents = tuple(cotangents[0])
        if len(cotangents) != len(outs):
            raise RuntimeError(f"vjp_fn: expected {len(outs)} cotangents, got {len(cotangents)}")
        with autograd.enable_grad():
            gs = autograd.grad(list(outs), leaves, grad_outputs=list(cotangents), retain_graph=True,
                               create_graph=outer, allow_unused=True)
        return tuple(g if g is not None else leaf.detach() * 0 for g, leaf in zip(gs, leaves))

    if outer:
        shown = out
    else:
        shown = tuple(o.detach() for o in out) if isinstance(out, (tuple, list)) else out.detach()
    return (shown, vjp_fn, aux) if has_aux else (shown, vjp_fn)


def jacrev(func: Callable, argnums=0, has_aux: bool = False) -> Callable:
    """``f -> J`` with ``J[out_index..., in_index...] = d out / d in`` for one tensor output, by one
    backward pass per output element; a tuple per argument for a tuple ``argnums``."""

    def wrapper(*args, **kwargs):
        from .ops.shape import stack
        from .tensor import zeros_like

        args, nums, single, outer = _prepare(args, argnums)
        with autograd.enable_grad():
            out = func(*args, **kwargs)
            out, aux = _split_aux(out, has_aux, "jacrev")
            if not isinstance(out, Tensor):
                raise RuntimeError(f"jacrev: f must return a Tensor, got {type(out).__name__}")
            outer = outer or _reaches_other_leaves([out], [args[a] for a in nums])
            flat = out.reshape(-1)
            rows = [[] for _ in nums]
            for i in range(flat.numel()):
                gs = autograd.grad(flat[i], [args[a] for a in nums], retain_graph=True, create_graph=outer,
                                   allow_unused=True)
                for r, g, a in zip(rows, gs, nums):
                    r.append(g if g is not None else zeros_like(args[a]))
        jacs = []
        for r, a in zip(rows, nums):
            shape = tuple(out.shape) + tuple(args[a].shape)
            j = stack(r).reshape(shape) if r else zeros_like(args[a]).reshape(shape)
            jacs.append(j if outer else j.detach())
        j = jacs[0] if single else tuple(jacs)
        return (j, aux) if has_aux else j

    return wrapper


def jacfwd(func: Callable, argnums=0, has_aux: bool = False, *, randomness: str = "error") -> Callable:
    """The Jacobian of ``jacrev`` (computed by reverse mode here; same values and layout)."""
    return jacrev(func, argnums, has_aux)


def hessian(func: Callable, argnums=0) -> Callable:
    """``f -> d^2 f / d args^2`` for a scalar f: the Jacobian of the Jacobian."""
    return jacrev(jacrev(func, argnums), argnums)


# ------------------------------------------------------------------------------------------ vmap

def _tree_flatten(tree):
    if isinstance(tree, (tuple, list)):
        leaves, specs = [], []
        for t in tree:
            lv, sp = _tree_flatten(t)
            leaves += lv
            specs.append(sp)
        return leaves, (type(tree), specs)
    if isinstance(tree, dict):
        leaves, specs = [], []
        for k in tree:
            lv, sp = _tree_flatten(tree[k])
            leaves += lv
            specs.append((k, sp))
        return leaves, (dict, specs)
    return [tree], None


def _tree_unflatten(leaves, spec):
    it = iter(leaves)

    def build(sp):
        if sp is None:
            return next(it)
        kind, parts = sp
        if kind is dict:
            return {k: build(p) for k, p in parts}
        return kind(build(p) for p in parts)

    return build(spec)


def _broadcast_dims(dims, tree, what: str):
    """One in/out dim per leaf of ``tree``: an int or None applies to all its leaves."""
    if dims is None or isinstance(dims, int):
        return [dims] * len(_tree_flatten(tree)[0])
    if isinstance(dims, (tuple, list)) and isinstance(tree, (tuple, list)):
        if len(dims) != len(tree):
            raise ValueError(f"vmap: {what}={dims} has {len(dims)} entries for {len(tree)} values")
        out = []
        for d, t in zip(dims, tree):
            out += _broadcast_dims(d, t, what)
        return out
    if isinstance(dims, dict) and isinstance(tree, dict):
        out = []
        for k in tree:
            out += _broadcast_dims(dims.get(k), tree[k], what)
        return out
    raise ValueError(f"vmap: {what}={dims!r} does not match the structure of the values")


def vmap(func: Callable, in_dims=0, out_dims=0, randomness: str = "error", *,
         chunk_size: int | None = None) -> Callable:
    """``f`` mapped over a dimension of its inputs (see the module docstring): ``in_dims`` per argument
    (an int, None for an unmapped one, or a tree matching the argument), ``out_dims`` per output."""
    if randomness not in ("error", "different", "same"):
        raise ValueError(f"Only allowed values for randomness are 'error', 'different', or 'same'. Got "
                         f"{randomness}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"vmap: chunk_size should be None or greater than 0. (got {chunk_size})")

    def wrapper(*args, **kwargs):
        from .ops.shape import stack
        from .tensor import get_rng_state, set_rng_state

        dims = in_dims if isinstance(in_dims, (tuple, list)) else (in_dims,) * len(args)
        if len(dims) != len(args):
            raise ValueError(f"vmap: in_dims is not compatible with the structure of `inputs`: in_dims has "
                             f"{len(dims)} entries, but inputs has {len(args)}")
        leaves, spec = _tree_flatten(list(args))
        leaf_dims = _broadcast_dims(list(dims), list(args), "in_dims")
        size = None
        for x, d in zip(leaves, leaf_dims):
            if d is None:
                continue
            if not isinstance(x, Tensor):
                raise ValueError(f"vmap: got in_dim={d} for an input of type {type(x).__name__}: only "
                                 "Tensors can be mapped (use None)")
            if not -x.ndim <= d < x.ndim:
                raise ValueError(f"vmap: in_dim={d} for an input of shape {tuple(x.shape)}")
            n = x.shape[d]
            if size is not None and n != size:
                raise ValueError(f"vmap: Expected all tensors to have the same size in the mapped dimension, "
                                 f"got sizes {size} and {n} for the mapped dimension")
            size = n
        if size is None:
            raise ValueError("vmap: at least one input must be mapped (in_dims all None)")
        results = []
        state = get_rng_state()
        for i in range(size):
            if randomness == "same":
                set_rng_state(state)
            sliced = [x.select(d, i) if d is not None else x for x, d in zip(leaves, leaf_dims)]
            before = get_rng_state() if randomness == "error" else None
            results.append(func(*_tree_unflatten(sliced, spec), **kwargs))
            if before is not None and not _same_state(before, get_rng_state()):
                raise RuntimeError("vmap: called random operation while in randomness error mode. Please "
                                   "either use the 'same' or 'different' randomness flags on vmap or perform "
                                   "the randomness operation out of vmap")
        flat0, out_spec = _tree_flatten(results[0])
        per = [_tree_flatten(r)[0] for r in results]
        odims = _broadcast_dims(out_dims, results[0], "out_dims")
        outs = []
        for j, d in enumerate(odims):
            column = [p[j] for p in per]
            if not isinstance(column[0], Tensor):
                raise ValueError(f"vmap: `{func.__name__ if hasattr(func, '__name__') else func}` must only "
                                 f"return Tensors, got type {type(column[0]).__name__}")
            if d is None:
                outs.append(column[0])
            else:
                outs.append(stack(column, dim=d if d >= 0 else d + column[0].ndim + 1))
        return _tree_unflatten(outs, out_spec)

    return wrapper  # (chunk_size: slices already run one at a time, so it changes nothing here)


def _same_state(a, b) -> bool:
    import numpy as np

    return np.array_equal(np.asarray(a.numpy() if isinstance(a, Tensor) else a),
                          np.asarray(b.numpy() if isinstance(b, Tensor) else b))


# ----------------------------------------------------------------------------- functional_call

def functional_call(module, parameter_and_buffer_dicts, args=None, kwargs=None, *, tie_weights: bool = True,
                    strict: bool = False):
    """Call ``module`` with some of its parameters and buffers replaced by the given tensors (a dict, or a
    tuple of dicts, of dotted names), which the result is then differentiable with respect to; the
    module's own tensors are back in place afterwards, also after an exception. ``strict``: every
    parameter and buffer must be given, and no other name."""
    dicts = parameter_and_buffer_dicts
    if isinstance(dicts, dict):
        dicts = (dicts,)
    merged: dict = {}
    for d in dicts:
        for k, v in d.items():
            if k in merged:
                raise ValueError(f"{k} appeared in multiple dictionaries; behavior of functional call is "
                                 "ambiguous")
            merged[k] = v
    own = dict(module.named_parameters(remove_duplicate=False))
    own.update(dict(module.named_buffers(remove_duplicate=False)))
    unknown = [k for k in merged if k not in own]
    if strict:
        missing = [k for k in own if k not in merged]
        if unknown or missing:
            raise RuntimeError(f"Error(s) in reparametrizing for {type(module).__name__}: unexpected keys "
                               f"{unknown}, missing keys {missing}")
    elif unknown:
        raise RuntimeError(f"functional_call: {type(module).__name__} has no parameter or buffer {unknown}")
    if tie_weights:  # a tensor shared under several names is replaced under all of them
        by_id: dict = {}
        for k, t in own.items():
            by_id.setdefault(id(t), []).append(k)
        for k in list(merged):
            for alias in by_id[id(own[k])]:
                merged.setdefault(alias, merged[k])
    args = () if args is None else (args if isinstance(args, tuple) else (args,))
    with _swapped(module, merged):
        return module(*args, **(kwargs or {}))


@contextlib.contextmanager
def _swapped(module, tensors: dict):
    saved = []
    try:
        for name, t in tensors.items():
            owner = module
            *path, leaf = name.split(".")
            for p in path:
                owner = getattr(owner, p)
            store = owner._parameters if leaf in owner._parameters else owner._buffers
            saved.append((store, leaf, store[leaf]))
            store[leaf] = t
        yield
    finally:
        for store, leaf, old in reversed(saved):
            store[leaf] = old
