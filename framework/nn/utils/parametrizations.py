"""Weight and spectral normalization as parametrizations, shaped like
``torch.nn.utils.parametrizations`` (the forms PyTorch recommends over the hook-based ones in
``weight_norm.py`` / ``spectral_norm.py``).

- ``weight_norm(module, name="weight", dim=0)``: ``weight = g * v / ||v||`` with the magnitude at
  ``parametrizations.weight.original0`` and the direction at ``original1``; a state dict of the classic
  form (``weight_g`` / ``weight_v``) loads too, converted.
- ``spectral_norm(module, name="weight", n_power_iterations=1, eps=1e-12, dim=None)``: the weight divided
  by its largest singular value, estimated by power iteration (one step per training forward, from the
  vectors kept as buffers ``parametrizations.weight.0._u`` / ``_v``).
"""

from __future__ import annotations

from ...autograd import no_grad
from ...tensor import Tensor, randn
from ..functional import normalize
from ..module import Module
from . import parametrize
from .spectral_norm import SpectralNorm, _transposed_conv
from .weight_norm import norm_except_dim

__all__ = ["weight_norm", "spectral_norm"]


class _WeightNorm(Module):
    def __init__(self, dim: int | None = 0):
        super().__init__()
        self.dim = -1 if dim is None else dim

    def forward(self, weight_g: Tensor, weight_v: Tensor) -> Tensor:
        return weight_v * (weight_g / norm_except_dim(weight_v, 2, self.dim))

    def right_inverse(self, weight: Tensor) -> tuple[Tensor, Tensor]:
        return norm_except_dim(weight, 2, self.dim), weight


def weight_norm(module: Module, name: str = "weight", dim: int | None = 0) -> Module:
    """Reparametrize ``module.<name>`` as magnitude times direction (Salimans & Kingma 2016); returns
    the module. ``dim``: the dimension whose slices keep their own magnitude (None: one for all)."""
    parametrize.register_parametrization(module, name, _WeightNorm(dim), unsafe=True)

    def classic_keys(state_dict, prefix, *_):
        g, v = f"{prefix}{name}_g", f"{prefix}{name}_v"
        if g in state_dict and v in state_dict:
            state_dict[f"{prefix}parametrizations.{name}.original0"] = state_dict.pop(g)
            state_dict[f"{prefix}parametrizations.{name}.original1"] = state_dict.pop(v)

    module._register_load_state_dict_pre_hook(classic_keys)
    return module


class _SpectralNorm(Module):
    def __init__(self, weight: Tensor, n_power_iterations: int = 1, dim: int = 0, eps: float = 1e-12):
        super().__init__()
        ndim = weight.ndim
        if dim >= ndim or dim < -ndim:
            raise IndexError("Dimension out of range (expected to be in range of "
                             f"[-{ndim}, {ndim - 1}] but got {dim})")
        if n_power_iterations <= 0:
            raise ValueError("Expected n_power_iterations to be positive, but got "
                             f"n_power_iterations={n_power_iterations}")
        self.dim = dim % ndim
        self.eps = eps
        self.n_power_iterations = n_power_iterations
        self._matrix = SpectralNorm(dim=self.dim).reshape_weight_to_matrix
        if ndim > 1:
            with no_grad():
                h, w = self._matrix(weight).shape
                self.register_buffer("_u", normalize(randn(h, dtype=weight.dtype, device=weight.device),
                                                     dim=0, eps=eps))
                self.register_buffer("_v", normalize(randn(w, dtype=weight.dtype, device=weight.device),
                                                     dim=0, eps=eps))
                self._power_method(self._matrix(weight), 15)

    def _power_method(self, mat: Tensor, steps: int) -> None:
        with no_grad():
            mat = mat.detach()
            for _ in range(steps):
                self._u.copy_(normalize(mat @ self._v, dim=0, eps=self.eps))
                self._v.copy_(normalize(mat.T @ self._u, dim=0, eps=self.eps))

    def forward(self, weight: Tensor) -> Tensor:
        if weight.ndim == 1:
            return normalize(weight, dim=0, eps=self.eps)
        mat = self._matrix(weight)
        if self.training:
            self._power_method(mat, self.n_power_iterations)
        # copies: the buffers change in place at the next training forward, while this graph may still
        # need the values it used
        u, v = self._u.clone(), self._v.clone()
        return weight / (u * (mat @ v)).sum()

    def right_inverse(self, value: Tensor) -> Tensor:
        return value


def spectral_norm(module: Module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12,
                  dim: int | None = None) -> Module:
    """Divide ``module.<name>`` by its spectral norm (Miyato et al. 2018); returns the module. ``dim``:
    the output dimension (the matrix's rows), by default 1 for transposed convolutions, else 0."""
    weight = getattr(module, name, None)
    if not isinstance(weight, Tensor):
        raise ValueError(f"Module '{type(module).__name__}' has no parameter or buffer with name '{name}'")
    if dim is None:
        dim = 1 if _transposed_conv(module) else 0
    parametrize.register_parametrization(module, name, _SpectralNorm(weight, n_power_iterations, dim, eps))
    return module
