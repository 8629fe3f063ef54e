"""Module hooks: removable handles and the wiring of full backward hooks."""

from __future__ import annotations

import itertools
from collections import OrderedDict

from ..autograd import Function
from ..tensor import Tensor


class RemovableHandle:
    """Returned by the ``register_*_hook`` methods; ``remove()`` unregisters the hook."""

    _next_id = itertools.count()

    def __init__(self, *dicts):
        self.id = next(RemovableHandle._next_id)
        self._dicts = dicts

    def remove(self):
        for d in self._dicts:
            d.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def _insert(store: OrderedDict, key, value, prepend):
    store[key] = value
    if prepend:
        store.move_to_end(key, last=False)


class _HookIdentity(Function):
    """Identity over several tensors; its backward calls ``self.on_backward(grads)``."""

    def forward(self, *xs):
        return tuple(xs)

    def backward(self, *gs):
        r = self.on_backward(gs)
        return tuple(r) if r is not None else gs


class _BackwardHookState:
    """Wires full backward hooks of one call: identities around the inputs and the outputs."""

    def __init__(self, module):
        self.module = module
        self.grad_output = None
        self.n_inputs = 0
        self.input_requires = False

    def wrap_inputs(self, args):
        idx = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        self.n_inputs = len(idx)
        self.input_requires = any(args[i].requires_grad for i in idx)
        if not self.input_requires or not self.module._backward_hooks:
            return args
        fn = _HookIdentity(on_backward=self._on_input_grads)
        tens = [args[i] for i in idx]
        outs = fn(*tens)
        args = list(args)
        for i, o in zip(idx, outs):
            # Inputs that do not require grad come back unchanged (the identity gives them a graph
            # node only when they take part in differentiation).
            args[i] = o if args[i].requires_grad else args[i]
        return tuple(args)

    def wrap_outputs(self, out):
        single = isinstance(out, Tensor)
        outs = [out] if single else (list(out) if isinstance(out, (tuple, list)) else None)
        if outs is None:
            return out
        idx = [i for i, o in enumerate(outs) if isinstance(o, Tensor) and o.requires_grad]
        if not idx:
            return out
        fn = _HookIdentity(on_backward=self._on_output_grads)
        wrapped = fn(*[outs[i] for i in idx])
        for i, w in zip(idx, wrapped):
            outs[i] = w
        if single:
            return outs[0]
        if hasattr(out, "_fields"):  # a namedtuple
            return type(out)(*outs)
        return tuple(outs) if isinstance(out, tuple) else outs

    def _on_output_grads(self, gys):
        gys = tuple(gys)
        for hook in list(self.module._backward_pre_hooks.values()):
            r = hook(self.module, gys)
            if r is not None:
                gys = tuple(r)
        self.grad_output = gys
        if not self.input_requires:
            # No input takes part: the hooks are called now, with all-None grad_input.
            for hook in list(self.module._backward_hooks.values()):
                hook(self.module, (None,) * self.n_inputs, gys)
        return gys

    def _on_input_grads(self, gxs):
        # Inputs that do not require grad get zeros, as PyTorch's non-differentiable hook outputs.
        grad_input = tuple(gxs)
        for hook in list(self.module._backward_hooks.values()):
            r = hook(self.module, grad_input, self.grad_output)
            if r is not None:
                if len(r) != len(grad_input):
                    raise RuntimeError(f"backward hook returned an invalid number of grad_input, got "
                                       f"{len(r)}, but expected {len(grad_input)}")
                grad_input = tuple(r)
        return grad_input
