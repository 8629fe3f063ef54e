"""``Parameter``: a leaf Tensor that a Module registers as one of its learnable weights."""

from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..backend import get_array_module
from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor that, assigned as a Module attribute, is registered in the module's parameters.

    ``Parameter(data=None, requires_grad=True)`` shares ``data``'s array (no copy), as PyTorch does.
    Operations on a Parameter return plain Tensors.
    """

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            arr = np.empty((0,), dtype=_dt.get_default_dtype().np)
            vc = [0]
        elif isinstance(data, Tensor):
            arr, vc = data.data, data._vc
        else:
            arr, vc = (data if get_array_module(data) is not np else np.asarray(data)), [0]
        super().__init__(arr, requires_grad=False)
        self._vc = vc
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo):
        # copy.deepcopy(model) (EMA weights, best-model snapshots) copies the array and the grad.
        if id(self) in memo:
            return memo[id(self)]
        new = Parameter(Tensor(self.data.copy()), requires_grad=self.requires_grad)
        if self.grad is not None:
            new.grad = Tensor(self.grad.data.copy())
        memo[id(self)] = new
        return new


class Buffer(Tensor):
    """A marker like ``torch.nn.Buffer``: assigned to a Module attribute, it becomes a buffer."""

    def __init__(self, data, persistent: bool = True):
        arr = data.data if isinstance(data, Tensor) else (
            data if get_array_module(data) is not np else np.asarray(data))
        super().__init__(arr)
        self.persistent = persistent


def is_parameter(t) -> bool:
    return isinstance(t, Parameter)
