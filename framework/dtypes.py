"""Data types with PyTorch's names, each backed by a NumPy dtype."""

from __future__ import annotations

import numpy as np


class dtype:
    __slots__ = ("name", "np", "is_floating_point", "itemsize")

    def __init__(self, name: str, np_dtype):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.is_floating_point = self.np.kind == "f"
        self.itemsize = self.np.itemsize

    def __repr__(self):
        return f"framework.{self.name}"

    def __reduce__(self):  # dtypes are singletons
        return (from_numpy_dtype, (self.np.str,))


float16 = half = dtype("float16", np.float16)
float32 = float = dtype("float32", np.float32)
float64 = double = dtype("float64", np.float64)
int8 = dtype("int8", np.int8)
int16 = dtype("int16", np.int16)
int32 = int = dtype("int32", np.int32)
int64 = long = dtype("int64", np.int64)
uint8 = dtype("uint8", np.uint8)
bool = dtype("bool", np.bool_)  # noqa: A001 - PyTorch's name

_ALL = [float16, float32, float64, int8, int16, int32, int64, uint8, bool]
_BY_NP = {d.np: d for d in _ALL}

_default = float32


def from_numpy_dtype(np_dtype) -> dtype:
    try:
        return _BY_NP[np.dtype(np_dtype)]
    except KeyError:
        raise TypeError(f"unsupported array dtype {np.dtype(np_dtype)}") from None


def to_numpy_dtype(d) -> np.dtype:
    if isinstance(d, dtype):
        return d.np
    return np.dtype(d)


def get_default_dtype() -> dtype:
    return _default


def set_default_dtype(d: dtype) -> None:
    global _default
    if not isinstance(d, dtype) or not d.is_floating_point:
        raise TypeError(f"default dtype must be a floating point dtype, got {d!r}")
    _default = d


_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


def result_type(a, b) -> np.dtype:
    """PyTorch's promotion for two operands (arrays or Python scalars).

    Differs from NumPy: int tensor with float tensor gives the float tensor's dtype (NumPy widens
    int64 + float32 to float64), Python scalars never widen a tensor of the same kind, and a zero-dim
    tensor never widens a dimensioned tensor of the same kind.
    """
    import builtins

    a_scalar = not hasattr(a, "dtype")
    b_scalar = not hasattr(b, "dtype")
    if a_scalar and b_scalar:
        return np.result_type(a, b)
    if a_scalar or b_scalar:
        t, s = (b, a) if a_scalar else (a, b)
        tk = t.dtype.kind
        if isinstance(s, builtins.bool) or tk == "f":
            return t.dtype
        if isinstance(s, builtins.float):
            return _default.np if tk in "biu" else t.dtype
        if isinstance(s, builtins.int):
            return t.dtype if tk != "b" else np.dtype(np.int64)
        return np.result_type(t.dtype, s)
    if a.dtype == b.dtype:  # (the common case, first)
        return a.dtype
    ak, bk = a.dtype.kind, b.dtype.kind
    a0, b0 = getattr(a, "ndim", 1) == 0, getattr(b, "ndim", 1) == 0
    if a0 != b0:
        # A zero-dim tensor only decides the dtype when its category (bool < int < float) is higher
        # than the dimensioned operand's: float32 [n] + float64 0-d stays float32, as in PyTorch.
        z, d = (a, b) if a0 else (b, a)
        return z.dtype if _CATEGORY[z.dtype.kind] > _CATEGORY[d.dtype.kind] else d.dtype
    if ak == "f" and bk != "f":
        return a.dtype
    if bk == "f" and ak != "f":
        return b.dtype
    return np.promote_types(a.dtype, b.dtype)
