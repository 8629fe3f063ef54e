"""Global switches for the GPU kernels, with PyTorch's names (``torch.backends``).

``fw.backends.cuda.matmul.allow_tf32`` (default False, as in PyTorch >= 1.12): float32 matrix
products through cuBLAS may use TF32 tensor cores (10-bit mantissa inputs, float32 accumulation).

``fw.backends.cudnn.*`` keep PyTorch's names although the convolutions are ours, not cuDNN's, so that
code written for PyTorch keeps working:

- ``allow_tf32`` (default True, as PyTorch): float32 convolutions may run on TF32 tensor cores.
- ``benchmark`` (default False): time every tile configuration once per (shape, dtype, device) and
  keep the fastest, like ``cudnn.benchmark``; when False a heuristic picks the configuration.
- ``deterministic`` (default False): our kernels are deterministic in every configuration (no float
  atomics anywhere), so this flag changes nothing; it exists so that setting it does not fail.
- ``enabled`` (default True): when False, convolutions on CUDA tensors take the generic CuPy path
  (the framework's CPU algorithm run through ``xp``) instead of our kernels.
"""

from __future__ import annotations


class _Flags:
    """A namespace whose writes are checked against the known flag names."""

    _names: tuple = ()

    def __setattr__(self, name, value):
        if name not in self._names:
            raise AttributeError(f"{type(self).__name__} has no flag {name!r} (known: {self._names})")
        object.__setattr__(self, name, bool(value))
        for hook in _HOOKS.get((type(self).__name__, name), ()):
            hook(bool(value))


class _MatmulFlags(_Flags):
    _names = ("allow_tf32", "allow_fp16_reduced_precision_reduction")

    def __init__(self):
        object.__setattr__(self, "allow_tf32", False)
        object.__setattr__(self, "allow_fp16_reduced_precision_reduction", True)


class _CudaNamespace:
    def __init__(self):
        self.matmul = _MatmulFlags()

    @staticmethod
    def is_built() -> bool:
        """True when CuPy is importable (the CUDA "build" of this framework is CuPy)."""
        from . import backend

        return backend._cupy is not None


class _ConvFlags(_Flags):
    _names = ("allow_tf32", "benchmark", "deterministic", "enabled")

    def __init__(self):
        object.__setattr__(self, "allow_tf32", True)
        object.__setattr__(self, "benchmark", False)
        object.__setattr__(self, "deterministic", False)
        object.__setattr__(self, "enabled", True)

    @staticmethod
    def is_available() -> bool:
        from . import backend

        return backend.cuda_available()

    @staticmethod
    def version():
        """None: there is no cuDNN; the convolutions are this framework's own kernels."""
        return None


# (namespace class name, flag) -> callables run with the new value (e.g. to reconfigure cuBLAS).
_HOOKS: dict = {}


def on_change(namespace: str, flag: str, hook) -> None:
    """Register ``hook(value)`` to run when ``fw.backends.<namespace>.<flag>`` is set."""
    _HOOKS.setdefault((namespace, flag), []).append(hook)


cuda = _CudaNamespace()
cudnn = _ConvFlags()


def _apply_matmul_tf32(value: bool) -> None:
    """Tell CuPy's cuBLAS calls whether float32 GEMMs may use TF32 (best effort, CuPy >= 10)."""
    from . import backend

    if backend._cupy is None:
        return
    try:
        import numpy as np
        from cupy._core import _routines_linalg as rl  # CuPy's switch for cuBLAS compute types

        rl.set_compute_type(np.dtype(np.float32),
                            rl.COMPUTE_TYPE_TF32 if value else rl.COMPUTE_TYPE_DEFAULT)
    except (ImportError, AttributeError, TypeError, ValueError):  # pragma: no cover - CuPy version
        pass


on_change("_MatmulFlags", "allow_tf32", _apply_matmul_tf32)
