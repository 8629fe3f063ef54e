"""Pruning, shaped like ``torch.nn.utils.prune``: zero a share of a layer's weights through a mask.

Pruning ``module.<name>`` moves the parameter to ``<name>_orig``, adds the buffer ``<name>_mask`` (1 keeps,
0 prunes) and a forward pre-hook that sets ``module.<name> = <name>_orig * <name>_mask`` before every
forward; gradients reach the kept entries of ``<name>_orig`` only. Pruning the same tensor again prunes
among what is left (a :class:`PruningContainer` combines the masks). ``remove`` makes it permanent: a
plain parameter holding the pruned values. The keys and arithmetic are PyTorch's, so a pruned PyTorch
model's state dict loads into a model pruned the same way.

Amounts: an int is a number of entries (or channels), a float in [0, 1] a fraction of them, rounded.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

from ...autograd import no_grad
from ...tensor import Tensor, ones_like, rand, rand_like, zeros_like
from .convert_parameters import parameters_to_vector

__all__ = ["BasePruningMethod", "PruningContainer", "Identity", "RandomUnstructured", "L1Unstructured",
           "RandomStructured", "LnStructured", "CustomFromMask", "identity", "random_unstructured",
           "l1_unstructured", "random_structured", "ln_structured", "global_unstructured",
           "custom_from_mask", "remove", "is_pruned"]


def _validate_amount_init(amount) -> None:
    if not isinstance(amount, numbers.Real) or isinstance(amount, bool):
        raise TypeError(f"Invalid type for amount: {amount}. Must be int or float.")
    if (isinstance(amount, numbers.Integral) and amount < 0) or (
            not isinstance(amount, numbers.Integral) and (float(amount) > 1.0 or float(amount) < 0.0)):
        raise ValueError(f"amount={amount} should either be a float in the range [0, 1] or a non-negative "
                         "integer")


def _n_to_prune(amount, size: int) -> int:
    if isinstance(amount, numbers.Integral):
        return int(amount)
    return round(amount * size)


def _validate_amount(n: int, size: int) -> None:
    if n > size:
        raise ValueError(f"amount={n} should be smaller than the number of parameters to prune={size}")


def _validate_dim(t: Tensor, dim: int) -> int:
    if dim >= t.ndim or dim < -t.ndim:
        raise IndexError(f"Invalid index {dim} for tensor of size {tuple(t.shape)}")
    return dim % t.ndim


class BasePruningMethod:
    """A way of computing a mask (``compute_mask``); ``PRUNING_TYPE`` "unstructured", "structured"
    (whole slices along ``dim``) or "global". Instances are the forward pre-hooks of pruned modules."""

    PRUNING_TYPE = "unstructured"
    _tensor_name: str

    def __call__(self, module, inputs) -> None:
        setattr(module, self._tensor_name, self.apply_mask(module))

    def compute_mask(self, t: Tensor, default_mask: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def apply_mask(self, module) -> Tensor:
        orig = getattr(module, self._tensor_name + "_orig")
        mask = getattr(module, self._tensor_name + "_mask")
        return mask.to(orig.dtype) * orig

    @classmethod
    def apply(cls, module, name: str, *args, importance_scores: Tensor | None = None, **kwargs):
        """Prune ``module.<name>`` with ``cls(*args, **kwargs)``, ranking entries by
        ``importance_scores`` (default: the tensor itself); returns the method (the hook)."""
        old = [(k, h) for k, h in module._forward_pre_hooks.items()
               if isinstance(h, BasePruningMethod) and h._tensor_name == name]
        method = cls(*args, **kwargs)
        method._tensor_name = name
        if old:
            (key, prev), = old
            del module._forward_pre_hooks[key]
            if not isinstance(prev, PruningContainer):
                prev = PruningContainer(prev)
            prev.add_pruning_method(method)
            method = prev
        orig = getattr(module, name)
        if importance_scores is not None and tuple(importance_scores.shape) != tuple(orig.shape):
            raise ValueError(f"importance_scores should have the same shape as parameter {name} of "
                             f"{type(module).__name__}: {tuple(importance_scores.shape)} against "
                             f"{tuple(orig.shape)}")
        scores = orig if importance_scores is None else importance_scores
        fresh = not isinstance(method, PruningContainer)
        if fresh:
            if name not in module._parameters:
                raise ValueError(f"Parameter '{name}' of module {type(module).__name__} has to be a "
                                 "parameter to be pruned")
            module.register_parameter(name + "_orig", orig)
            del module._parameters[name]
            default_mask = ones_like(orig)
        else:
            default_mask = getattr(module, name + "_mask").detach().clone()
        try:
            with no_grad():
                mask = method.compute_mask(scores.detach(), default_mask=default_mask)
            module.register_buffer(name + "_mask", mask)
            setattr(module, name, method.apply_mask(module))
            module.register_forward_pre_hook(method)
        except Exception:
            if fresh:  # the module as it was
                module.register_parameter(name, module._parameters.pop(name + "_orig"))
            elif old:
                module.register_forward_pre_hook(method)
            raise
        return method

    def prune(self, t: Tensor, default_mask: Tensor | None = None,
              importance_scores: Tensor | None = None) -> Tensor:
        """The pruned copy of ``t`` (no module involved)."""
        scores = t if importance_scores is None else importance_scores
        mask = default_mask if default_mask is not None else ones_like(t)
        with no_grad():
            return t * self.compute_mask(scores, default_mask=mask).to(t.dtype)

    def remove(self, module) -> None:
        """Make the pruning permanent: ``<name>`` becomes a plain parameter with the masked values."""
        name = self._tensor_name
        with no_grad():
            weight = self.apply_mask(module)
        if hasattr(module, name) and name in module.__dict__:
            delattr(module, name)
        orig = module._parameters.pop(name + "_orig")
        orig.data = weight.data
        orig._vc[0] += 1
        del module._buffers[name + "_mask"]
        module.register_parameter(name, orig)


class PruningContainer(BasePruningMethod):
    """Successive prunings of one tensor: each new method prunes among the entries (or, structured,
    the slices) that the mask so far keeps."""

    def __init__(self, *methods: BasePruningMethod):
        self._pruning_methods: tuple = ()
        if len(methods) == 1 and not isinstance(methods[0], BasePruningMethod):
            methods = tuple(methods[0])
        for m in methods:
            self.add_pruning_method(m)

    def add_pruning_method(self, method: BasePruningMethod) -> None:
        if not isinstance(method, BasePruningMethod) and method is not None:
            raise TypeError(f"{type(method).__name__} is not a BasePruningMethod subclass")
        if method is not None and self._pruning_methods and self._tensor_name != method._tensor_name:
            raise ValueError(f"Can only add pruning methods acting on the parameter named "
                             f"'{self._tensor_name}' to PruningContainer. Found '{method._tensor_name}'")
        if method is not None:
            if not self._pruning_methods:
                self._tensor_name = method._tensor_name
            self._pruning_methods += (method,)

    def __len__(self) -> int:
        return len(self._pruning_methods)

    def __iter__(self):
        return iter(self._pruning_methods)

    def __getitem__(self, i):
        return self._pruning_methods[i]

    def compute_mask(self, t: Tensor, default_mask: Tensor) -> Tensor:
        method = self._pruning_methods[-1]
        mask = default_mask.to(t.dtype)
        if method.PRUNING_TYPE == "unstructured":
            keep = default_mask == 1
            part = method.compute_mask(t[keep], default_mask=default_mask[keep])
            new = mask.clone()
            new[keep] = part.to(new.dtype)
            return new
        if method.PRUNING_TYPE == "structured":
            if not hasattr(method, "dim"):
                raise AttributeError("Pruning methods of PRUNING_TYPE 'structured' need to have the "
                                     "attribute `dim` defined.")
            dim = _validate_dim(t, method.dim)
            others = tuple(d for d in range(t.ndim) if d != dim)
            kept = (default_mask.sum(dim=others) != 0) if others else (default_mask != 0)
            index = [slice(None)] * t.ndim
            index[dim] = kept
            index = tuple(index)
            part = method.compute_mask(t[index], default_mask=default_mask[index])
            new = mask.clone()
            new[index] = part.to(new.dtype)
            return new
        if method.PRUNING_TYPE == "global":
            return method.compute_mask(t, default_mask=default_mask).to(t.dtype)
        raise ValueError(f"Unrecognized PRUNING_TYPE {method.PRUNING_TYPE}")


class Identity(BasePruningMethod):
    """Prunes nothing (a mask of ones), so that a layer has the pruned form."""

    def compute_mask(self, t, default_mask):
        return default_mask

    @classmethod
    def apply(cls, module, name):
        return super().apply(module, name)


class _Unstructured(BasePruningMethod):
    """Prunes the ``amount`` entries that ``_ranking(t)`` puts first (``topk`` of it)."""

    def __init__(self, amount):
        _validate_amount_init(amount)
        self.amount = amount

    def _ranking(self, t):  # pragma: no cover - abstract
        raise NotImplementedError

    def compute_mask(self, t, default_mask):
        n = _n_to_prune(self.amount, t.numel())
        _validate_amount(n, t.numel())
        mask = default_mask.clone()
        if n:
            _, idx = self._ranking(t).reshape(-1).topk(n)
            mask.view(-1)[idx] = 0
        return mask


class RandomUnstructured(_Unstructured):
    """Prunes ``amount`` entries chosen at random (the framework's generator)."""

    def _ranking(self, t):
        return rand_like(t)

    @classmethod
    def apply(cls, module, name, amount):
        return super().apply(module, name, amount=amount)


class L1Unstructured(_Unstructured):
    """Prunes the ``amount`` entries of smallest magnitude."""

    def _ranking(self, t):
        return -t.abs()

    @classmethod
    def apply(cls, module, name, amount, importance_scores=None):
        return super().apply(module, name, amount=amount, importance_scores=importance_scores)


def _slices_mask(t: Tensor, dim: int, keep) -> Tensor:
    mask = zeros_like(t)
    index = [slice(None)] * t.ndim
    index[dim] = keep
    mask[tuple(index)] = 1
    return mask


class _Structured(BasePruningMethod):
    """Prunes ``amount`` whole slices along ``dim``: all but the ``keep`` that ``_kept`` chooses."""

    PRUNING_TYPE = "structured"

    def __init__(self, amount, dim: int = -1):
        _validate_amount_init(amount)
        self.amount = amount
        self.dim = dim

    def _kept(self, t, dim: int, keep: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def compute_mask(self, t, default_mask):
        dim = _validate_dim(t, self.dim)
        size = t.shape[dim]
        n = _n_to_prune(self.amount, size)
        _validate_amount(n, size)
        if n == 0:
            return default_mask
        return _slices_mask(t, dim, self._kept(t, dim, size - n)) * default_mask.to(t.dtype)


class RandomStructured(_Structured):
    """Prunes ``amount`` whole slices along ``dim`` (channels), chosen at random."""

    def _kept(self, t, dim, keep):
        return rand(t.shape[dim], device=t.device).topk(keep)[1]

    @classmethod
    def apply(cls, module, name, amount, dim=-1):
        return super().apply(module, name, amount=amount, dim=dim)


class LnStructured(_Structured):
    """Prunes the ``amount`` slices along ``dim`` of smallest L``n`` norm (``n`` as ``Tensor.norm``'s p)."""

    def __init__(self, amount, n, dim: int = -1):
        super().__init__(amount, dim)
        self.n = n

    def _kept(self, t, dim, keep):
        others = tuple(d for d in range(t.ndim) if d != dim)
        norm = t.norm(p=self.n, dim=others) if others else t.abs()
        return norm.topk(keep)[1]

    @classmethod
    def apply(cls, module, name, amount, n, dim, importance_scores=None):
        return super().apply(module, name, amount=amount, n=n, dim=dim, importance_scores=importance_scores)


class CustomFromMask(BasePruningMethod):
    """Prunes where a given mask is 0."""

    PRUNING_TYPE = "global"

    def __init__(self, mask: Tensor):
        self.mask = mask

    def compute_mask(self, t, default_mask):
        if tuple(default_mask.shape) != tuple(self.mask.shape):
            raise ValueError(f"custom mask of shape {tuple(self.mask.shape)} for a tensor of shape "
                             f"{tuple(default_mask.shape)}")
        return default_mask * self.mask.to(default_mask.dtype)

    @classmethod
    def apply(cls, module, name, mask):
        return super().apply(module, name, mask=mask)


def identity(module, name: str):
    """Give ``module.<name>`` the pruned form without pruning anything; returns the module."""
    Identity.apply(module, name)
    return module


def random_unstructured(module, name: str, amount):
    RandomUnstructured.apply(module, name, amount)
    return module


def l1_unstructured(module, name: str, amount, importance_scores: Tensor | None = None):
    L1Unstructured.apply(module, name, amount=amount, importance_scores=importance_scores)
    return module


def random_structured(module, name: str, amount, dim: int):
    RandomStructured.apply(module, name, amount, dim)
    return module


def ln_structured(module, name: str, amount, n, dim: int, importance_scores: Tensor | None = None):
    LnStructured.apply(module, name, amount, n, dim, importance_scores=importance_scores)
    return module


def custom_from_mask(module, name: str, mask: Tensor):
    CustomFromMask.apply(module, name, mask)
    return module


def global_unstructured(parameters: Iterable, pruning_method: type, importance_scores: dict | None = None,
                        **kwargs) -> None:
    """Prune several tensors together: ``pruning_method`` (an unstructured method class, such as
    :class:`L1Unstructured`, with its ``kwargs``) ranks the entries of all ``(module, name)`` pairs as
    one vector, and each tensor gets its share of the mask."""
    if not isinstance(parameters, Iterable):
        raise TypeError("global_unstructured(): parameters is not an Iterable")
    parameters = list(parameters)
    importance_scores = {} if importance_scores is None else importance_scores
    if not isinstance(importance_scores, dict):
        raise TypeError("global_unstructured(): importance_scores must be of type dict")
    with no_grad():
        scores = parameters_to_vector([importance_scores.get((m, n), getattr(m, n)).detach()
                                       for m, n in parameters])
        default = parameters_to_vector([getattr(m, n + "_mask") if hasattr(m, n + "_mask")
                                        else ones_like(getattr(m, n)) for m, n in parameters])
    method = pruning_method(**kwargs)
    if method.PRUNING_TYPE != "unstructured":
        raise TypeError(f'Only "unstructured" PRUNING_TYPE supported for the `pruning_method`. Found method '
                        f"{pruning_method} of type {method.PRUNING_TYPE}")
    method._tensor_name = "temp"
    container = PruningContainer(method)
    with no_grad():
        final = container.compute_mask(scores, default)
    at = 0
    for m, n in parameters:
        p = getattr(m, n)
        custom_from_mask(m, n, mask=final[at:at + p.numel()].reshape(p.shape))
        at += p.numel()


def remove(module, name: str):
    """Make the pruning of ``module.<name>`` permanent; returns the module."""
    for key, hook in list(module._forward_pre_hooks.items()):
        if isinstance(hook, BasePruningMethod) and hook._tensor_name == name:
            hook.remove(module)
            del module._forward_pre_hooks[key]
            return module
    raise ValueError(f"Parameter '{name}' of module {type(module).__name__} has to be pruned before pruning "
                     "can be removed")


def is_pruned(module) -> bool:
    """Whether ``module`` or any module inside it has a pruned tensor."""
    return any(isinstance(h, BasePruningMethod)
               for m in module.modules() for h in m._forward_pre_hooks.values())
