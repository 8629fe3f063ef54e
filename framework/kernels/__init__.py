"""Kernel dispatch: NumPy arrays go to ``kernels.cpu``; CuPy arrays to ``kernels.cuda`` when it provides
the function, else to the generic ``xp`` code of ``kernels.cpu`` (which runs on CuPy too).

``kernel("conv", "conv2d_forward", array)`` returns the function to call. Array-level signatures
(shared by both back ends) are documented in ``kernels/cpu/conv.py`` and ``kernels/cpu/pool.py``.
"""

from __future__ import annotations

import importlib

import numpy as np

_cache: dict[tuple[str, str, bool], object] = {}


def kernel(module: str, name: str, array):
    """The implementation of ``module.name`` for the array's device."""
    cuda = not isinstance(array, np.ndarray) and type(array).__module__.startswith("cupy")
    key = (module, name, cuda)
    fn = _cache.get(key)
    if fn is None:
        fn = None
        if cuda:
            try:
                fn = getattr(importlib.import_module(f"{__name__}.cuda.{module}"), name, None)
            except Exception:  # missing, or fails to build on this machine: use the generic code
                fn = None
        if fn is None:
            fn = getattr(importlib.import_module(f"{__name__}.cpu.{module}"), name)
        _cache[key] = fn
    return fn


def conv_impl(array):
    """A namespace with conv2d_forward / conv2d_backward_input / conv2d_backward_weight for ``array``."""
    return _Impl("conv", array)


def pool_impl(array):
    return _Impl("pool", array)


class _Impl:
    __slots__ = ("_module", "_array")

    def __init__(self, module, array):
        self._module, self._array = module, array

    def __getattr__(self, name):
        return kernel(self._module, name, self._array)
