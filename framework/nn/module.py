"""``Module``: the base class of every layer, with PyTorch's registration, traversal and state API."""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .. import dtypes as _dt
from ..autograd import no_grad
from ..backend import device as _device
from ..backend import get_array_module, to_device
from ..tensor import Tensor, parse_to_args
from .hooks import RemovableHandle, _BackwardHookState, _insert
from .parameter import Buffer, Parameter


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns: ``(missing_keys, unexpected_keys)``."""

    __slots__ = ()

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


def _addindent(s: str, n: int) -> str:
    lines = s.split("\n")
    if len(lines) == 1:
        return s
    return lines[0] + "\n" + "\n".join(" " * n + line for line in lines[1:])


class Module:
    """Base class for all layers.

    Attributes that are Parameters, Modules or registered buffers are tracked in ordered dicts, so
    ``parameters()``, ``state_dict()`` and ``to()`` see them, and ``state_dict`` keys are the dotted
    attribute paths (``"layer1.0.conv.weight"``), exactly as in PyTorch.
    """

    training: bool
    _version = 1

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise TypeError(f"{type(self).__name__}.__init__() got unexpected arguments")
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_non_persistent_buffers_set"] = set()
        d["_modules"] = OrderedDict()
        d["_forward_hooks"] = OrderedDict()
        d["_forward_hooks_with_kwargs"] = set()
        d["_forward_hooks_always_called"] = set()
        d["_forward_pre_hooks"] = OrderedDict()
        d["_forward_pre_hooks_with_kwargs"] = set()
        d["_backward_hooks"] = OrderedDict()
        d["_backward_pre_hooks"] = OrderedDict()
        d["_load_state_dict_pre_hooks"] = OrderedDict()

    forward: Callable[..., Any]

    def forward(self, *args, **kwargs):  # noqa: F811 - documented placeholder
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" '
                                  "function")

    # ------------------------------------------------------------------ registration
    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        _check_name(name, "parameter")
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute '{name}' already exists")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            "(framework.nn.Parameter or None required)")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        _check_name(name, "buffer")
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            "(Tensor or None required)")
        if isinstance(tensor, Buffer):
            persistent = tensor.persistent
            tensor = Tensor(tensor.data)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        if not isinstance(module, Module) and module is not None:
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        _check_name(name, "module")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name: str, value) -> None:
        d = self.__dict__
        params = d.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            _remove_from(self, name, keep="_parameters")
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                "(framework.nn.Parameter or None expected)")
            params[name] = None
        elif isinstance(value, Module):
            if "_modules" not in d:
                raise AttributeError("cannot assign module before Module.__init__() call")
            _remove_from(self, name, keep="_modules")
            d["_modules"][name] = value
        elif "_modules" in d and name in d["_modules"]:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' "
                                "(framework.nn.Module or None expected)")
            d["_modules"][name] = None
        elif isinstance(value, Buffer):
            _remove_from(self, name, keep="_buffers")
            self.register_buffer(name, value)
        elif "_buffers" in d and name in d["_buffers"]:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                "(Tensor or None expected)")
            d["_buffers"][name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str):
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            store = d.get(key)
            if store is not None and name in store:
                return store[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for key in ("_parameters", "_buffers", "_modules"):
            store = self.__dict__[key]
            if name in store:
                del store[name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        keys = list(super().__dir__()) + list(self._parameters) + list(self._buffers) + list(self._modules)
        return sorted(set(k for k in keys if not k[0].isdigit()))

    # ------------------------------------------------------------------ traversal
    def named_modules(self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True):
        """Yield ``(dotted_name, module)`` for this module and every descendant, depth first."""
        if memo is None:
            memo = set()
        stack = [(prefix, self)]
        while stack:  # iterative, so deep nestings (long chains) cannot hit the recursion limit
            pre, m = stack.pop()
            if remove_duplicate:
                if id(m) in memo:
                    continue
                memo.add(id(m))
            yield pre, m
            kids = [(pre + ("." if pre else "") + n, c) for n, c in m._modules.items() if c is not None]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, get, prefix="", recurse=True, remove_duplicate=True):
        seen = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [
            (prefix, self)]
        for mod_prefix, m in mods:
            for name, v in get(m):
                if v is None:
                    continue
                if remove_duplicate:
                    if id(v) in seen:
                        continue
                    seen.add(id(v))
                yield (mod_prefix + ("." if mod_prefix else "") + name), v

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """``(name, Parameter)`` pairs; a Parameter shared by two modules is yielded once."""
        return self._named_members(lambda m: m._parameters.items(), prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        return self._named_members(lambda m: m._buffers.items(), prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> Module:
        m = self
        if target == "":
            return m
        for part in target.split("."):
            if part not in m._modules:
                raise AttributeError(f"{type(m).__name__} has no attribute `{part}`")
            m = m._modules[part]
        return m

    def get_parameter(self, target: str) -> Parameter:
        mod, _, name = target.rpartition(".")
        m = self.get_submodule(mod)
        if name not in m._parameters:
            raise AttributeError(f"{type(m).__name__} has no parameter `{name}`")
        return m._parameters[name]

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> Module:
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        for m in self.modules():
            m.__dict__["training"] = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad = p.grad.detach()
                p.grad.zero_()

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call ``fn`` on every submodule (children first) and then on self, as PyTorch does."""
        # Post-order (children before parents), iteratively; a shared module is visited each time
        # it appears, as PyTorch's recursive apply does.
        stack = [(self, False)]
        while stack:
            m, expanded = stack.pop()
            if expanded:
                fn(m)
                continue
            stack.append((m, True))
            stack.extend((c, False) for c in reversed(list(m.children())))
        return self

    # ------------------------------------------------------------------ conversion
    def _apply(self, fn: Callable, floating_only: bool = False):
        """Replace the array of every parameter, gradient and buffer by ``fn(array)``, in place."""

        def conv(t):
            if floating_only and t.data.dtype.kind != "f":
                return
            t.data = fn(t.data)

        for m in self.modules():
            for p in m._parameters.values():
                if p is not None:
                    conv(p)
                    if p.grad is not None:
                        conv(p.grad)
            for b in m._buffers.values():
                if b is not None:
                    conv(b)
        return self

    def to(self, *args, **kwargs) -> Module:
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)``, ``to(tensor)``; modifies in place.

        A dtype applies to floating-point parameters and buffers only (integer buffers such as
        BatchNorm's ``num_batches_tracked`` keep their type), as in PyTorch.
        """
        dev, dt = parse_to_args(args, kwargs)
        if dt is not None and not dt.is_floating_point:
            raise TypeError(f"nn.Module.to only accepts floating point dtypes, but got desired dtype={dt}")
        if dev is not None:
            target = _device(dev)
            self._apply(lambda a: to_device(a, target))
        if dt is not None:
            self._apply(lambda a: a.astype(dt.np, copy=False), floating_only=True)
        return self

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self, device=None) -> Module:
        return self.to(_device("cuda", device if isinstance(device, int) else 0) if not isinstance(
            device, (str, _device)) else device)

    def float(self) -> Module:
        return self.to(_dt.float32)

    def double(self) -> Module:
        return self.to(_dt.float64)

    def half(self) -> Module:
        return self.to(_dt.float16)

    def type(self, dst_type) -> Module:
        return self.to(dst_type)

    # ------------------------------------------------------------------ state dict
    def _save_to_state_dict(self, destination, prefix, keep_vars):
        for name, p in self._parameters.items():
            if p is not None:
                destination[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = b if keep_vars else b.detach()

    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):
        """An ordered dict ``name -> Tensor`` of parameters and persistent buffers.

        Values share memory with the module (detached unless ``keep_vars``); keys match PyTorch's.
        """
        if args:  # PyTorch's deprecated positional form: (destination, prefix, keep_vars)
            destination = args[0]
            if len(args) > 1:
                prefix = args[1]
            if len(args) > 2:
                keep_vars = args[2]
        if destination is None:
            destination = OrderedDict()
        for pre, m in self.named_modules(prefix=prefix.rstrip(".") if prefix else "",
                                         remove_duplicate=False):
            m._save_to_state_dict(destination, pre + "." if pre else "", keep_vars)
        return destination

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs, assign=False):
        local = [(n, p, True) for n, p in self._parameters.items()] + [
            (n, b, False) for n, b in self._buffers.items() if n not in self._non_persistent_buffers_set]
        for name, t, is_param in local:
            if t is None:
                continue
            key = prefix + name
            if key not in state_dict:
                missing_keys.append(key)
                continue
            value = state_dict[key]
            arr = _as_array(value)
            if arr is None:
                error_msgs.append(f'While copying the parameter named "{key}", expected an array or '
                                  f"Tensor from checkpoint but received {type(value).__name__}")
                continue
            if tuple(arr.shape) != tuple(t.shape):
                error_msgs.append(f"size mismatch for {key}: copying a param with shape "
                                  f"{list(arr.shape)} from checkpoint, the shape in current model is "
                                  f"{list(t.shape)}.")
                continue
            if get_array_module(arr) is not np or t.device.type != "cpu":
                arr = to_device(arr, t.device)
            if assign:
                new = arr.astype(t.data.dtype, copy=True) if arr.dtype != t.data.dtype else arr.copy()
                if is_param:
                    self._parameters[name] = Parameter(Tensor(new), requires_grad=t.requires_grad)
                else:
                    self._buffers[name] = Tensor(new)
            else:
                with no_grad():
                    t.data[...] = arr.astype(t.data.dtype, copy=False)
                    t._vc[0] += 1

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Copy parameters and buffers from ``state_dict`` (Tensors or arrays, e.g. NumPy).

        Returns ``(missing_keys, unexpected_keys)``. With ``strict=True`` any missing or unexpected
        key raises a RuntimeError that lists them; shape mismatches raise in both modes.
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict).__name__}.")
        missing: list[str] = []
        errors: list[str] = []
        expected = set()
        hooked = any(m.__dict__.get("_load_state_dict_pre_hooks") for m in self.modules())
        if hooked:  # the hooks may rename keys: in a copy, the caller's dict is never changed
            state_dict = OrderedDict(state_dict)
        for pre, m in self.named_modules(remove_duplicate=False):
            p = pre + "." if pre else ""
            for hook in m.__dict__.get("_load_state_dict_pre_hooks", {}).values():
                hook(m, state_dict, p, {}, strict, missing, [], errors)  # parents before children
            m._load_from_state_dict(state_dict, p, {}, strict, missing, [], errors, assign=assign)
            expected.update(p + n for n, t in m._parameters.items() if t is not None)
            expected.update(p + n for n, t in m._buffers.items()
                            if t is not None and n not in m._non_persistent_buffers_set)
        unexpected = [k for k in state_dict.keys() if k not in expected]
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: " + ", ".join(
                    f'"{k}"' for k in unexpected) + ". ")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: " + ", ".join(
                    f'"{k}"' for k in missing) + ". ")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(errors))
        return _IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ hooks
    def register_load_state_dict_pre_hook(self, hook):
        """``hook(module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
        error_msgs)`` runs before this module's entries are loaded by ``load_state_dict``, and may rename
        or convert them in ``state_dict`` (a copy of the one given; a module's hooks run before its
        children load)."""
        hooks = self.__dict__.setdefault("_load_state_dict_pre_hooks", OrderedDict())
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        return handle

    def _register_load_state_dict_pre_hook(self, hook, with_module: bool = False):
        """PyTorch's private form: ``hook`` without the module argument unless ``with_module``."""
        if with_module:
            return self.register_load_state_dict_pre_hook(hook)
        return self.register_load_state_dict_pre_hook(lambda module, *args: hook(*args))

    def register_forward_pre_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False):
        """``hook(module, args)`` (or ``hook(module, args, kwargs)``) runs before ``forward``.

        It may return replacement args (a tuple, or a single value that is wrapped into one), or
        with ``with_kwargs`` a replacement ``(args, kwargs)``.
        """
        handle = RemovableHandle(self._forward_pre_hooks)
        _insert(self._forward_pre_hooks, handle.id, hook, prepend)
        if with_kwargs:
            self._forward_pre_hooks_with_kwargs.add(handle.id)
        return handle

    def register_forward_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False,
                              always_call: bool = False):
        """``hook(module, args, output)`` (or ``(module, args, kwargs, output)``) runs after forward;
        a non-None return value replaces the output. ``always_call``: it also runs, with output None,
        when the forward (or an earlier hook) raises, before the error goes on, as PyTorch's."""
        handle = RemovableHandle(self._forward_hooks)
        _insert(self._forward_hooks, handle.id, hook, prepend)
        if with_kwargs:
            self._forward_hooks_with_kwargs.add(handle.id)
        if always_call:
            self.__dict__.setdefault("_forward_hooks_always_called", set()).add(handle.id)
        return handle

    def register_full_backward_hook(self, hook, prepend: bool = False):
        """``hook(module, grad_input, grad_output) -> tuple | None``, as in PyTorch.

        ``grad_input`` holds the gradients with respect to the module's positional Tensor inputs
        (None for those that do not require grad) and ``grad_output`` those with respect to its
        Tensor outputs. A returned tuple replaces ``grad_input``. Outputs must not be modified in
        place afterwards.
        """
        handle = RemovableHandle(self._backward_hooks)
        _insert(self._backward_hooks, handle.id, hook, prepend)
        return handle

    def register_full_backward_pre_hook(self, hook, prepend: bool = False):
        """``hook(module, grad_output) -> tuple | None`` runs before the module's gradients are
        computed; a returned tuple replaces ``grad_output``."""
        handle = RemovableHandle(self._backward_pre_hooks)
        _insert(self._backward_pre_hooks, handle.id, hook, prepend)
        return handle

    def register_backward_hook(self, hook):
        raise NotImplementedError("register_backward_hook is deprecated in PyTorch; use "
                                  "register_full_backward_hook")

    def __call__(self, *args, **kwargs):
        d = self.__dict__
        if not (d["_forward_hooks"] or d["_forward_pre_hooks"] or d["_backward_hooks"]
                or d["_backward_pre_hooks"]):
            return self.forward(*args, **kwargs)
        return self._call_with_hooks(args, kwargs)

    def _call_with_hooks(self, args, kwargs):
        for hid, hook in list(self._forward_pre_hooks.items()):
            if hid in self._forward_pre_hooks_with_kwargs:
                r = hook(self, args, kwargs)
                if r is not None:
                    if not (isinstance(r, tuple) and len(r) == 2):
                        raise RuntimeError("forward pre-hook with kwargs must return None or a tuple "
                                           f"of (new_args, new_kwargs), but got {r!r}.")
                    args, kwargs = r
            else:
                r = hook(self, args)
                if r is not None:
                    args = r if isinstance(r, tuple) else (r,)
        bw = None
        if (self._backward_hooks or self._backward_pre_hooks):
            from ..autograd import is_grad_enabled

            if is_grad_enabled():
                bw = _BackwardHookState(self)
                args = bw.wrap_inputs(args)
        called = set()
        try:
            out = self.forward(*args, **kwargs)
            for hid, hook in list(self._forward_hooks.items()):
                called.add(hid)
                if hid in self._forward_hooks_with_kwargs:
                    r = hook(self, args, kwargs, out)
                else:
                    r = hook(self, args, out)
                if r is not None:
                    out = r
        except Exception:
            self._run_always_called_hooks(args, kwargs, called)
            raise
        if bw is not None:
            out = bw.wrap_outputs(out)
        return out

    def _run_always_called_hooks(self, args, kwargs, called):
        """The always_call forward hooks not yet run, with output None, after the forward raised; an error
        in one of them is a warning, so that the forward's own error is the one that goes on."""
        import warnings

        always = self.__dict__.get("_forward_hooks_always_called", ())
        for hid, hook in list(self._forward_hooks.items()):
            if hid not in always or hid in called:
                continue
            try:
                if hid in self._forward_hooks_with_kwargs:
                    hook(self, args, kwargs, None)
                else:
                    hook(self, args, None)
            except Exception as e:  # noqa: BLE001 (reported; the forward's error is the one raised)
                warnings.warn("forward hook with always_call=True raised an exception that was ignored: "
                              f"{e!r}", stacklevel=3)

    # ------------------------------------------------------------------ repr
    def extra_repr(self) -> str:
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self):
        lines = []
        extra = self.extra_repr()
        if extra:
            lines = extra.split("\n")
        for key, m in self._modules.items():
            lines.append("(" + key + "): " + _addindent(repr(m), 2))
        main = self._get_name() + "("
        if lines:
            if len(lines) == 1 and not self._modules:
                main += lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"



# ------------------------------------------------------------------------- helpers


def _check_name(name, what):
    if not isinstance(name, str):
        raise TypeError(f"{what} name should be a string. Got {type(name).__name__}")
    if name == "":
        raise KeyError(f'{what} name can\'t be empty string ""')
    if "." in name:
        raise KeyError(f'{what} name can\'t contain "."')


def _remove_from(module, name, keep=None):
    """Forget ``name`` in every store but ``keep``: a re-assigned parameter, buffer or child keeps its
    place in its own store, so state_dict and parameters() order stay as PyTorch's."""
    d = module.__dict__
    for key in ("_parameters", "_buffers", "_modules"):
        store = d.get(key)
        if key != keep and store is not None and name in store:
            del store[name]
    d.pop(name, None)
    if "_non_persistent_buffers_set" in d:
        d["_non_persistent_buffers_set"].discard(name)


def _as_array(value):
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, np.ndarray):
        return value
    if get_array_module(value) is not np:
        return value
    if hasattr(value, "__array__") or isinstance(value, (int, float, list, tuple)):
        try:
            return np.asarray(value)
        except Exception:  # noqa: BLE001 - reported as an error message by the caller
            return None
    return None
