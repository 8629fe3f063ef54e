"""Padding layers for ``(N, C, L)``, ``(N, C, H, W)`` and ``(N, C, D, H, W)`` inputs, over ``F.pad``."""

from __future__ import annotations

from . import functional as F
from .module import Module

_SIDES = {2: "(left, right)", 4: "(left, right, top, bottom)", 6: "(left, right, top, bottom, front, back)"}


def _sides(padding, n: int):
    if isinstance(padding, int):
        return (padding,) * n
    padding = tuple(padding)
    if len(padding) != n:
        raise ValueError(f"expected an int or {_SIDES[n]}, got {padding!r}")
    return padding


class _Pad2d(Module):
    mode = "constant"
    _n = 4

    def __init__(self, padding):
        super().__init__()
        self.padding = _sides(padding, self._n)

    def forward(self, input):
        return F.pad(input, self.padding, mode=self.mode)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ConstantPad2d(_Pad2d):
    """Pad by ``(left, right, top, bottom)`` with ``value``."""

    def __init__(self, padding, value: float):
        super().__init__(padding)
        self.value = value

    def forward(self, input):
        return F.pad(input, self.padding, mode="constant", value=self.value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ZeroPad2d(ConstantPad2d):
    """Pad with zeros."""

    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ReflectionPad2d(_Pad2d):
    """Pad with the reflection of the input (edge not repeated)."""

    mode = "reflect"


class ReplicationPad2d(_Pad2d):
    """Pad by repeating the edge values."""

    mode = "replicate"


class CircularPad2d(_Pad2d):
    """Pad by wrapping around."""

    mode = "circular"


def _variant(base, n: int, name: str, doc: str):
    """The 1-D or 3-D form of a 2-D padding layer (the same mode, 2 or 6 padding sizes)."""
    return type(name, (base,), {"_n": n, "__doc__": doc, "__module__": __name__})


ConstantPad1d = _variant(ConstantPad2d, 2, "ConstantPad1d", "Pad the last dimension with value.")
ConstantPad3d = _variant(ConstantPad2d, 6, "ConstantPad3d", "Pad the last three dimensions with value.")
ZeroPad1d = _variant(ZeroPad2d, 2, "ZeroPad1d", "Pad the last dimension with zeros.")
ZeroPad3d = _variant(ZeroPad2d, 6, "ZeroPad3d", "Pad the last three dimensions with zeros.")
ReflectionPad1d = _variant(ReflectionPad2d, 2, "ReflectionPad1d", "Pad the last dimension by reflection.")
ReflectionPad3d = _variant(ReflectionPad2d, 6, "ReflectionPad3d", "Pad the last three by reflection.")
ReplicationPad1d = _variant(ReplicationPad2d, 2, "ReplicationPad1d", "Pad the last dimension with its edges.")
ReplicationPad3d = _variant(ReplicationPad2d, 6, "ReplicationPad3d",
                            "Pad the last three dimensions with their edges.")
CircularPad1d = _variant(CircularPad2d, 2, "CircularPad1d", "Pad the last dimension by wrapping around.")
CircularPad3d = _variant(CircularPad2d, 6, "CircularPad3d", "Pad the last three by wrapping around.")
