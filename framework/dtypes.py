"""Data types with PyTorch's names, each backed by a NumPy dtype."""

from __future__ import annotations

import numpy as np


class dtype:
    __slots__ = ("name", "np", "is_floating_point", "is_complex", "itemsize")

    def __init__(self, name: str, np_dtype):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.is_floating_point = self.np.kind == "f"
        self.is_complex = self.np.kind == "c"
        self.itemsize = self.np.itemsize

    def to_real(self) -> dtype:
        """The real dtype of a complex one's parts (complex64 -> float32); a real dtype itself."""
        return from_numpy_dtype(_REAL_OF[self.np]) if self.is_complex else self

    def to_complex(self) -> dtype:
        """The complex dtype with this float dtype's parts (float32 -> complex64)."""
        if self.is_complex:
            return self
        if self.np not in _COMPLEX_OF:
            raise TypeError(f"no complex dtype has parts of {self!r}")
        return from_numpy_dtype(_COMPLEX_OF[self.np])

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
complex64 = cfloat = dtype("complex64", np.complex64)
complex128 = cdouble = dtype("complex128", np.complex128)

_ALL = [float16, float32, float64, int8, int16, int32, int64, uint8, bool, complex64, complex128]
_COMPLEX_OF = {np.dtype(np.float32): np.dtype(np.complex64), np.dtype(np.float64): np.dtype(np.complex128)}
_REAL_OF = {c: r for r, c in _COMPLEX_OF.items()}
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


def default_complex_np() -> np.dtype:
    """The complex dtype that goes with the default float dtype (complex64 for float32), for Python
    complex numbers and the transforms of integer tensors, as in PyTorch."""
    return _COMPLEX_OF.get(_default.np, np.dtype(np.complex64))


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
        if isinstance(s, builtins.complex) and tk != "c":  # a float tensor's parts keep its precision
            return _COMPLEX_OF[t.dtype] if t.dtype in _COMPLEX_OF else default_complex_np()
        if isinstance(s, builtins.bool) or tk in "fc":
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
    if ak in "fc" and bk in "biu":
        return a.dtype
    if bk in "fc" and ak in "biu":
        return b.dtype
    return np.promote_types(a.dtype, b.dtype)
