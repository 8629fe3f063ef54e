"""Flatten parameters into one vector and back (``torch.nn.utils.parameters_to_vector``)."""

from __future__ import annotations

from ...autograd import no_grad
from ...ops import cat
from ...tensor import Tensor


def parameters_to_vector(parameters) -> Tensor:
    """Concatenate the flattened parameters into one 1-D tensor (differentiable)."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return cat([p.reshape(-1) for p in parameters], 0)


def vector_to_parameters(vec: Tensor, parameters) -> None:
    """Copy consecutive slices of ``vec`` into ``parameters``, in place."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected vec to be a Tensor, but got: {type(vec).__name__}")
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    pointer = 0
    with no_grad():
        for p in parameters:
            n = p.numel()
            p.data[...] = vec.data[pointer:pointer + n].reshape(p.data.shape).astype(p.data.dtype)
            p._vc[0] += 1
            pointer += n
    if pointer != vec.numel():
        raise ValueError(f"vector has {vec.numel()} elements but the parameters hold {pointer}")
