"""Spectral normalization, as ``torch.nn.utils.spectral_norm`` / ``remove_spectral_norm`` (the classic,
hook based form): ``w = w_orig / sigma(w_orig)``, with the largest singular value ``sigma`` estimated by
power iteration (Miyato et al., 2018, arXiv:1802.05957).

The parameter ``name`` becomes ``name_orig``, and the power iteration's vectors are the buffers
``name_u`` (``h`` values) and ``name_v`` (``w`` values) of the ``(h, w)`` matrix the weight is seen as,
with PyTorch's names and shapes: a PyTorch state dict of a spectral-normed layer loads unchanged and,
from the same ``u`` and ``v``, gives the same outputs. A forward pre-hook recomputes ``module.<name>``
(a plain tensor attribute) before every forward; in training mode it first runs
``n_power_iterations`` steps, updating ``u`` and ``v`` in place.

Not carried over from PyTorch: the conversion of state dicts saved by its versions before 1.0
(which stored ``name`` instead of ``name_v``).
"""

from __future__ import annotations

from ...autograd import no_grad
from ...functional import normalize
from ...tensor import Tensor, randn
from ..parameter import Parameter


class SpectralNorm:
    """The forward pre-hook that ``spectral_norm`` registers (PyTorch's ``SpectralNorm``)."""

    _version = 1

    def __init__(self, name: str = "weight", n_power_iterations: int = 1, dim: int = 0, eps: float = 1e-12):
        if n_power_iterations <= 0:
            raise ValueError("Expected n_power_iterations to be positive, but got "
                             f"n_power_iterations={n_power_iterations}")
        self.name = name
        self.dim = dim
        self.n_power_iterations = n_power_iterations
        self.eps = eps

    def reshape_weight_to_matrix(self, weight: Tensor) -> Tensor:
        """``weight`` as an ``(h, w)`` matrix: dimension ``dim`` first, the others flattened."""
        if self.dim != 0:
            order = [self.dim] + [d for d in range(weight.ndim) if d != self.dim]
            weight = weight.permute(*order)
        return weight.reshape(weight.shape[0], -1)

    def compute_weight(self, module, do_power_iteration: bool) -> Tensor:
        weight = getattr(module, self.name + "_orig")
        u = getattr(module, self.name + "_u")
        v = getattr(module, self.name + "_v")
        mat = self.reshape_weight_to_matrix(weight)
        if do_power_iteration:
            with no_grad():
                for _ in range(self.n_power_iterations):
                    v.copy_(normalize(mat.T @ u, dim=0, eps=self.eps))
                    u.copy_(normalize(mat @ v, dim=0, eps=self.eps))
                # Copies: the buffers change in place at the next training forward, while this graph
                # may still need the values it used.
                u, v = u.clone(), v.clone()
        sigma = (u * (mat @ v)).sum()
        return weight / sigma

    def remove(self, module) -> None:
        with no_grad():
            weight = self.compute_weight(module, do_power_iteration=False)
        delattr(module, self.name)
        delattr(module, self.name + "_u")
        delattr(module, self.name + "_v")
        delattr(module, self.name + "_orig")
        module.register_parameter(self.name, Parameter(weight.detach()))

    def __call__(self, module, inputs) -> None:
        setattr(module, self.name, self.compute_weight(module, do_power_iteration=module.training))

    @staticmethod
    def apply(module, name: str, n_power_iterations: int, dim: int, eps: float) -> SpectralNorm:
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, SpectralNorm) and hook.name == name:
                raise RuntimeError(f"Cannot register two spectral_norm hooks on the same parameter {name}")
        if name not in module._parameters or module._parameters[name] is None:
            raise ValueError(f"spectral_norm: {type(module).__name__} has no parameter '{name}'")
        fn = SpectralNorm(name, n_power_iterations, dim, eps)
        weight = module._parameters[name]
        with no_grad():
            h, w = fn.reshape_weight_to_matrix(weight).shape
            # (random starting vectors from the framework's generator, as PyTorch draws from its own)
            u = normalize(randn(h, dtype=weight.dtype, device=weight.device), dim=0, eps=eps)
            v = normalize(randn(w, dtype=weight.dtype, device=weight.device), dim=0, eps=eps)
        delattr(module, name)
        module.register_parameter(name + "_orig", weight)
        setattr(module, name, weight.detach())
        module.register_buffer(name + "_u", u)
        module.register_buffer(name + "_v", v)
        module.register_forward_pre_hook(fn)
        return fn


def _transposed_conv(module) -> bool:
    from ... import nn

    kinds = tuple(k for k in (getattr(nn, n, None) for n in ("ConvTranspose1d", "ConvTranspose2d",
                                                             "ConvTranspose3d")) if k is not None)
    return isinstance(module, kinds)


def spectral_norm(module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12,
                  dim: int | None = None):
    """Divide ``module.<name>`` by its spectral norm before every forward; returns ``module``.

    ``dim``: the output-channel dimension (the matrix's rows); by default 1 for transposed convolutions
    and 0 otherwise, as in PyTorch.
    """
    if dim is None:
        dim = 1 if _transposed_conv(module) else 0
    SpectralNorm.apply(module, name, n_power_iterations, dim, eps)
    return module


def remove_spectral_norm(module, name: str = "weight"):
    """Undo ``spectral_norm``: ``module.<name>`` becomes a plain Parameter holding the current
    normalized weight (without a further power iteration)."""
    for key, hook in module._forward_pre_hooks.items():
        if isinstance(hook, SpectralNorm) and hook.name == name:
            hook.remove(module)
            del module._forward_pre_hooks[key]
            return module
    raise ValueError(f"spectral_norm of '{name}' not found in {module}")
