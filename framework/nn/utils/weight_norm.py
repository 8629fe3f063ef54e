"""Weight normalization, as ``torch.nn.utils.weight_norm`` / ``remove_weight_norm`` (the classic, hook
based form): ``w = g * v / ||v||`` (Salimans & Kingma, 2016, arXiv:1602.07868).

The parameter ``name`` is replaced by ``name_g`` (the magnitude) and ``name_v`` (the direction), with
PyTorch's names and shapes, so a PyTorch state dict of a weight-normed layer loads unchanged. A forward
pre-hook recomputes ``module.<name>`` (a plain tensor attribute) from them before every forward.
"""

from __future__ import annotations

from ...autograd import no_grad
from ...backend import get_array_module
from ...tensor import Tensor
from ..parameter import Parameter


def norm_except_dim(v: Tensor, pow: float = 2, dim: int = 0) -> Tensor:
    """The ``pow``-norm of ``v`` over every dimension but ``dim``, keeping them as size 1 (shape
    ``(1, .., v.shape[dim], .., 1)``); ``dim=-1`` means over all of ``v`` (a 0-d tensor), as in PyTorch
    (where ``-1`` does not mean the last dimension here)."""
    if dim == -1:
        return v.norm(pow)
    dim = dim % v.ndim
    others = tuple(d for d in range(v.ndim) if d != dim)
    if not others:
        return v.abs()
    return v.norm(pow, dim=others, keepdim=True)


class WeightNorm:
    """The forward pre-hook that ``weight_norm`` registers (PyTorch's ``WeightNorm``)."""

    def __init__(self, name: str, dim: int | None):
        self.name = name
        self.dim = -1 if dim is None else dim

    def compute_weight(self, module) -> Tensor:
        g = getattr(module, self.name + "_g")
        v = getattr(module, self.name + "_v")
        return v * (g / norm_except_dim(v, 2, self.dim))

    @staticmethod
    def apply(module, name: str, dim: int | None) -> WeightNorm:
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, WeightNorm) and hook.name == name:
                raise RuntimeError(f"Cannot register two weight_norm hooks on the same parameter {name}")
        if name not in module._parameters or module._parameters[name] is None:
            raise ValueError(f"weight_norm: {type(module).__name__} has no parameter '{name}'")
        fn = WeightNorm(name, dim)
        weight = module._parameters[name]
        del module._parameters[name]
        with no_grad():
            g = norm_except_dim(weight, 2, fn.dim)
        # (a full reduction may hold a NumPy scalar; a parameter needs an array, 0-d here)
        g = Tensor(get_array_module(g.data).asarray(g.data))
        module.register_parameter(name + "_g", Parameter(g))
        module.register_parameter(name + "_v", Parameter(weight.detach()))
        setattr(module, name, fn.compute_weight(module))
        module.register_forward_pre_hook(fn)
        return fn

    def remove(self, module) -> None:
        with no_grad():
            weight = self.compute_weight(module)
        delattr(module, self.name)
        del module._parameters[self.name + "_g"]
        del module._parameters[self.name + "_v"]
        setattr(module, self.name, Parameter(weight))

    def __call__(self, module, inputs) -> None:
        setattr(module, self.name, self.compute_weight(module))


def weight_norm(module, name: str = "weight", dim: int | None = 0):
    """Reparametrize ``module.<name>`` as ``g * v / ||v||`` and return ``module``.

    ``dim``: the dimension kept by the norm (0: one magnitude per output channel, as PyTorch's default);
    None (or -1) normalizes over the whole tensor, with a 0-d ``g``.
    """
    WeightNorm.apply(module, name, dim)
    return module


def remove_weight_norm(module, name: str = "weight"):
    """Undo ``weight_norm``: ``module.<name>`` becomes a plain Parameter holding the current weight."""
    for key, hook in module._forward_pre_hooks.items():
        if isinstance(hook, WeightNorm) and hook.name == name:
            hook.remove(module)
            del module._forward_pre_hooks[key]
            return module
    raise ValueError(f"weight_norm of '{name}' not found in {module}")
