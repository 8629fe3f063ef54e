"""Array-module selection: NumPy on the CPU, CuPy on CUDA devices.

Every operation asks ``xp = get_array_module(array)`` and writes one code path for both.
CuPy is optional: without it, ``cuda`` devices raise a clear error and everything else works.
"""

from __future__ import annotations

import numpy as np

try:  # CuPy is an optional extra (`pip install .[gpu]`)
    import cupy as _cupy

    try:
        _CUDA_OK = _cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # CuPy installed, but no driver or no device
        _CUDA_OK = False
except ImportError:  # pragma: no cover - depends on the machine
    _cupy = None
    _CUDA_OK = False


def cupy_module():
    """The CuPy module, or a RuntimeError that says why CUDA cannot be used."""
    if _cupy is None:
        raise RuntimeError("CUDA requested but CuPy is not installed (pip install '.[gpu]')")
    if not _CUDA_OK:
        raise RuntimeError("CUDA requested but no CUDA device is visible to CuPy")
    return _cupy


def cuda_available() -> bool:
    return _CUDA_OK


class device:
    """A device, as in ``torch.device``: ``device('cpu')``, ``device('cuda')``, ``device('cuda:1')``."""

    __slots__ = ("type", "index")

    def __init__(self, spec="cpu", index: int | None = None):
        if isinstance(spec, device):
            self.type, self.index = spec.type, spec.index
            return
        if isinstance(spec, int):
            spec, index = "cuda", spec
        spec = str(spec)
        if ":" in spec:
            spec, idx = spec.split(":", 1)
            if not idx.isdigit():
                raise ValueError(f"invalid device string: {spec}:{idx!r}")
            index = int(idx)
        if spec not in ("cpu", "cuda"):
            raise ValueError(f"unknown device type {spec!r}: expected 'cpu' or 'cuda[:index]'")
        if spec == "cpu" and index not in (None, 0):
            raise ValueError("the cpu device has no index other than 0")
        self.type = spec
        self.index = (index or 0) if spec == "cuda" else None

    def __eq__(self, other):
        try:
            other = device(other)
        except (ValueError, TypeError):
            return NotImplemented
        return self.type == other.type and self.index == other.index

    def __hash__(self):
        return hash((self.type, self.index))

    def __repr__(self):
        return f"device(type='{self.type}')" if self.index is None else (
            f"device(type='{self.type}', index={self.index})")

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"


CPU = device("cpu")


def get_array_module(a):
    """NumPy or CuPy, whichever owns ``a`` (an array or a Tensor)."""
    if _cupy is not None:
        # A CuPy array's own ``.data`` is its memory pointer, so test the array before a Tensor's data.
        if isinstance(a, _cupy.ndarray) or isinstance(getattr(a, "data", None), _cupy.ndarray):
            return _cupy
    return np


def device_of(array) -> device:
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return device("cuda", array.device.id)
    return CPU


def to_device(array, dev: device):
    """Move an array to ``dev`` (a copy only when it changes device)."""
    src = device_of(array)
    if src == dev:
        return array
    if dev.type == "cpu":
        return array.get()
    cp = cupy_module()
    with cp.cuda.Device(dev.index):
        return cp.asarray(array)


# framework.use_deterministic_algorithms: on the CPU every operation of the framework gives the same bits on
# every run (fixed orders of summation, on the framework's threads too). On CUDA the float scatter-adds
# (atomic additions in an order that changes between runs) do not: with the mode on they raise, or warn
# with ``warn_only``, as PyTorch's.
_DETERMINISTIC = {"on": False, "warn_only": False}


def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
    """Ask for operations that give the same result on every run, as PyTorch's function of that name."""
    _DETERMINISTIC["on"], _DETERMINISTIC["warn_only"] = bool(mode), bool(warn_only)


def are_deterministic_algorithms_enabled() -> bool:
    return _DETERMINISTIC["on"]


def is_deterministic_algorithms_warn_only_enabled() -> bool:
    return _DETERMINISTIC["warn_only"]


def alert_not_deterministic(caller: str) -> None:
    """Called by an operation about to run without a deterministic implementation (on CUDA)."""
    if not _DETERMINISTIC["on"]:
        return
    msg = (f"{caller} does not have a deterministic implementation, but you set "
           "'use_deterministic_algorithms(True)'. You can turn off determinism just for this operation, or "
           "use the 'warn_only=True' option, if that's acceptable for your application.")
    if _DETERMINISTIC["warn_only"]:
        import warnings

        warnings.warn(msg, UserWarning, stacklevel=3)
    else:
        raise RuntimeError(msg)
