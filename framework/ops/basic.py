"""Element-wise arithmetic and unary functions, casts and device moves.

Each Function's forward works on arrays; its backward is written with Tensor operations, so it is
itself differentiable (gradients of gradients).
"""

from __future__ import annotations

import math

import numpy as np

from .. import dtypes as _dt
from ..autograd import Function, is_grad_enabled
from ..backend import device_of, get_array_module, to_device
from ..tensor import Tensor


def _arr(x):
    return x.data if isinstance(x, Tensor) else x


def _check_devices(name, a, b):
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        if type(a.data) is np.ndarray and type(b.data) is np.ndarray:
            return
        da, db = device_of(a.data), device_of(b.data)
        if da != db:
            raise RuntimeError(f"{name}: expected all tensors to be on the same device, but found "
                               f"at least two devices, {da} and {db}")


def unbroadcast(g: Tensor, shape) -> Tensor:
    """Sum ``g`` down to ``shape`` (the reduction that undoes NumPy broadcasting)."""
    if g.shape == tuple(shape):
        return g
    return SumTo(shape=tuple(shape))(g)


class SumTo(Function):
    complex_grad = True
    def forward(self, x):
        self.in_shape = x.shape
        return _sum_to(x, self.shape)

    def backward(self, g):
        return BroadcastTo(shape=self.in_shape)(g)


def _sum_to(x, shape):
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and x.shape[i + lead] != 1)
    y = x.sum(axis=axes, keepdims=True) if axes else x
    if lead:
        y = y.reshape(shape)
    return y


class BroadcastTo(Function):
    complex_grad = True
    is_view = True

    def forward(self, x):
        self.in_shape = x.shape
        xp = get_array_module(x)
        return xp.broadcast_to(x, self.shape)

    def backward(self, g):
        return unbroadcast(g, self.in_shape)


def _promote(a, b):
    dt = _dt.result_type(a, b)
    if hasattr(a, "dtype"):
        if a.dtype != dt:
            a = a.astype(dt)
    elif type(a) is int and dt.kind in "iu":
        a = _wrap_int(a, dt)
    if hasattr(b, "dtype"):
        if b.dtype != dt:
            b = b.astype(dt)
    elif type(b) is int and dt.kind in "iu":
        b = _wrap_int(b, dt)
    return a, b


def _wrap_int(s, dt):
    """A Python int outside an integer tensor's range wraps around in the tensor's dtype, as in PyTorch
    (``uint8 tensor + 300`` adds 44); NumPy 2 raises OverflowError instead."""
    info = np.iinfo(dt)
    if info.min <= s <= info.max:
        return s
    return np.array(s, dtype=np.uint64 if s > 0 else np.int64).astype(dt)[()]


def _shape(x):
    return x.shape if isinstance(x, Tensor) else ()


class Add(Function):
    complex_grad = True
    def forward(self, a, b):
        a, b = _promote(a, b)
        return a + b

    def backward(self, g):
        a, b = self.inputs
        return (unbroadcast(g, _shape(a)) if self.needs_input_grad[0] else None,
                unbroadcast(g, _shape(b)) if self.needs_input_grad[1] else None)


class Sub(Function):
    complex_grad = True
    def forward(self, a, b):
        a, b = _promote(a, b)
        return a - b

    def backward(self, g):
        a, b = self.inputs
        return (unbroadcast(g, _shape(a)) if self.needs_input_grad[0] else None,
                unbroadcast(-g, _shape(b)) if self.needs_input_grad[1] else None)


class Mul(Function):
    complex_grad = True
    saves_inputs = (0, 1)

    def forward(self, a, b):
        a, b = _promote(a, b)
        return a * b

    def backward(self, g):
        a, b = _saved_pair(self)
        return (unbroadcast(g * _conj(b), _shape(a)) if self.needs_input_grad[0] else None,
                unbroadcast(g * _conj(a), _shape(b)) if self.needs_input_grad[1] else None)


class Div(Function):
    complex_grad = True
    saves_inputs = (0, 1)

    def forward(self, a, b):
        a, b = _promote(a, b)
        out = a / b
        if getattr(out, "dtype", None) is not None and out.dtype.kind == "f" and (
                _kind(a) != "f" and _kind(b) != "f"):
            out = out.astype(_dt.get_default_dtype().np)
        return out

    def backward(self, g):
        a, b = _saved_pair(self)
        ga = unbroadcast(g / _conj(b), _shape(a)) if self.needs_input_grad[0] else None
        gb = unbroadcast(-g * _conj(a / (b * b)), _shape(b)) if self.needs_input_grad[1] else None
        return ga, gb


def _saved_pair(fn):
    """(a, b) of a binary node that saved only the operands its gradients read (see ``mul``/``div``);
    an unsaved one is used for its shape only."""
    if fn.saves_inputs == (0, 1):
        return fn.saved_tensors
    saved = dict(zip(fn.saves_inputs, fn.saved_tensors))
    return saved.get(0, fn.inputs[0]), saved.get(1, fn.inputs[1])


def _needs_grad(x):
    return isinstance(x, Tensor) and x.requires_grad


def _conj(t):
    """conj(t) for a complex tensor, a real one as it is: the conjugate that complex gradients take
    (see ``framework.ops.complexops``)."""
    if isinstance(t, Tensor):
        if t.data.dtype.kind == "c":
            from .complexops import Conj

            return Conj()(t)
        return t
    return t.conjugate() if isinstance(t, (complex, np.complexfloating)) else t


def _kind(x):
    """dtype kind of an array or Python scalar (a Python float counts as floating point)."""
    return x.dtype.kind if hasattr(x, "dtype") else ("f" if isinstance(x, float) else "i")


class Pow(Function):
    """``a ** b`` with tensors or scalars on either side."""

    complex_grad = True
    saves_inputs = (0, 1)
    saves_output = True

    def forward(self, a, b):
        a, b = _promote(a, b)
        return a**b

    def backward(self, g):
        a, b, y = self.saved_tensors
        ga = gb = None
        if self.needs_input_grad[0]:
            if isinstance(b, Tensor):  # 0 where the exponent is 0 (0 * 0^-1 would be NaN), as PyTorch
                ga = where(b == 0, 0.0, g * _conj(b * a ** (b - 1)))
            elif b == 0:
                ga = g * 0.0
            else:
                ga = g * _conj(b * a ** (b - 1)) if b != 1 else g
            ga = unbroadcast(ga, _shape(a))
        if self.needs_input_grad[1]:
            # d(a^b)/db = a^b log(a), taken as 0 where a == 0 and b >= 0 (PyTorch's rule; 0 * -inf
            # would be NaN), and for a Python base 0 (math.log(0) raises).
            if isinstance(a, Tensor):
                gb = where((a == 0) & (b >= 0), 0.0, g * _conj(y * log(a)))
            elif a == 0:
                gb = where(b >= 0, 0.0, g * y * float("-inf"))
            else:
                gb = g * _conj(y * (math.log(a) if a > 0 else float("nan")))
            gb = unbroadcast(gb, _shape(b))
        return ga, gb


class Neg(Function):
    complex_grad = True
    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


class Exp(Function):
    complex_grad = True
    saves_output = True

    def forward(self, x):
        return get_array_module(x).exp(x)

    def backward(self, g):
        (y,) = self.saved_tensors
        return g * _conj(y)


class Log(Function):
    complex_grad = True
    saves_inputs = (0,)

    def forward(self, x):
        return get_array_module(x).log(x)

    def backward(self, g):
        (x,) = self.saved_tensors
        return g / _conj(x)


class Sqrt(Function):
    complex_grad = True
    saves_output = True

    def forward(self, x):
        return get_array_module(x).sqrt(x)

    def backward(self, g):
        (y,) = self.saved_tensors
        return g / (2 * _conj(y))


class Sin(Function):
    complex_grad = True
    saves_inputs = (0,)

    def forward(self, x):
        return get_array_module(x).sin(x)

    def backward(self, g):
        (x,) = self.saved_tensors
        return g * _conj(cos(x))


class Cos(Function):
    complex_grad = True
    saves_inputs = (0,)

    def forward(self, x):
        return get_array_module(x).cos(x)

    def backward(self, g):
        (x,) = self.saved_tensors
        return -g * _conj(sin(x))


class Tanh(Function):
    complex_grad = True
    saves_output = True

    def forward(self, x):
        return get_array_module(x).tanh(x)

    def backward(self, g):
        (y,) = self.saved_tensors
        return g * _conj(1 - y * y)


class Sigmoid(Function):
    saves_output = True

    def forward(self, x):
        xp = get_array_module(x)
        # Stable on both tails: exp of a non-positive number only.
        e = xp.exp(-xp.abs(x))
        return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)

    def backward(self, g):
        (y,) = self.saved_tensors
        return g * y * (1 - y)


class Mask(Function):
    """Multiply by a constant mask (the derivative of piecewise functions: relu, clamp, abs; for a
    complex tensor's abs, z / |z|)."""

    complex_grad = True

    def forward(self, x):
        return x * self.mask

    def backward(self, g):
        m = self.mask
        return Mask(mask=m.conj() if m.dtype.kind == "c" else m)(g)


class Relu(Function):
    """One pass forward (maximum); the backward's 0/1 mask is derived from the saved output."""

    saves_output = True

    def forward(self, x):
        return _relu_array(x)

    def backward(self, g):
        (y,) = self.saved_tensors
        if not is_grad_enabled():  # (no graph of the gradient to record: one fused pass)
            fast = _relu_grad_array(g.data, y.data)
            if fast is not None:
                return Tensor(fast)
        return Mask(mask=y.data > 0)(g)  # a bool mask: x * mask keeps x's float dtype


_RELU_CHUNK = 1 << 18
_zero_chunks: dict = {}


def _relu_grad_array(g, y):
    """g * (y > 0) for contiguous NumPy float arrays of one dtype and shape (None otherwise): the mask
    made and used a cache-sized chunk at a time, over the framework's threads when large."""
    if (not isinstance(g, np.ndarray) or not isinstance(y, np.ndarray) or g.dtype != y.dtype
            or g.dtype.kind != "f" or g.shape != y.shape
            or not (g.flags.c_contiguous and y.flags.c_contiguous)):
        return None
    out = np.empty_like(g)
    gf, yf, of = g.reshape(-1), y.reshape(-1), out.reshape(-1)

    def part(i0, i1):
        mask = np.empty(min(_RELU_CHUNK, i1 - i0), bool)
        for i in range(i0, i1, _RELU_CHUNK):
            j = min(i1, i + _RELU_CHUNK)
            np.multiply(gf[i:j], np.greater(yf[i:j], 0, out=mask[:j - i]), out=of[i:j])

    from ..utils.parallel import over_row_parts

    over_row_parts(part, gf.size, gf.size)
    return out


def _relu_array(x, out=None):
    """max(x, 0) with NaN kept (as PyTorch's relu): NumPy's maximum propagates NaN.

    NumPy's maximum against a scalar runs a slow loop (measured 2.5-3x slower than against an array
    of zeros on an AVX-512 core, NumPy 2.4), so contiguous float arrays go against a fixed zero
    buffer, a chunk at a time (the buffer stays small and in cache).
    """
    xp = get_array_module(x)
    zero = x.dtype.type(0)
    if (xp is not np or x.dtype.kind != "f" or x.size < 1024 or not x.flags.c_contiguous
            or (out is not None and not out.flags.c_contiguous)):
        return xp.maximum(x, zero, out=out)
    if out is None:
        out = np.empty_like(x)
    zb = _zero_chunks.get(x.dtype)
    if zb is None:
        zb = _zero_chunks[x.dtype] = np.zeros(_RELU_CHUNK, dtype=x.dtype)
    xf, of = x.reshape(-1), out.reshape(-1)
    c = zb.size

    def part(i0, i1):
        for i in range(i0, i1, c):
            j = min(i1, i + c)
            np.maximum(xf[i:j], zb[:j - i], out=of[i:j])

    from ..utils.parallel import over_row_parts

    over_row_parts(part, xf.size, xf.size)
    return out


class Abs(Function):
    complex_grad = True  # the mask is sign(z) = z / |z|: the gradient g * z / |z|

    def forward(self, x):
        xp = get_array_module(x)
        y = xp.abs(x)
        if x.dtype.kind == "c":  # z / |z|, 0 at 0, written out (CuPy's sign of a complex number is not this)
            self.mask = xp.where(y == 0, 0, x / xp.where(y == 0, 1, y)).astype(x.dtype)
        else:
            self.mask = xp.sign(x).astype(x.dtype)
        return y

    def backward(self, g):
        return Mask(mask=self.mask)(g)


class Clamp(Function):
    def forward(self, x, lo, hi):
        xp = get_array_module(x)
        y = x
        if lo is not None:
            y = xp.maximum(y, lo)
        if hi is not None:
            y = xp.minimum(y, hi)
        y = y.astype(x.dtype, copy=False)
        if x.dtype.kind == "f":
            m = xp.ones(x.shape, dtype=bool)
            if lo is not None:
                m &= x >= lo
            if hi is not None:
                m &= x <= hi
            self.mask = m.astype(x.dtype)
        return y

    def backward(self, g):
        x, lo, hi = self.inputs
        glo = ghi = None
        if self.needs_input_grad[1]:
            glo = unbroadcast(where(x < lo, g, 0.0), lo.shape)
        if self.needs_input_grad[2]:
            ghi = unbroadcast(where(x > hi, g, 0.0), hi.shape)
        return Mask(mask=self.mask)(g) if self.needs_input_grad[0] else None, glo, ghi


class Where(Function):
    complex_grad = True
    def forward(self, cond, a, b):
        self.cond = cond
        a, b = _promote(a, b)
        xp = get_array_module(cond)
        return xp.where(cond, a, b)

    def backward(self, g):
        _, a, b = self.inputs
        ga = unbroadcast(where(self.cond, g, 0.0), _shape(a)) if self.needs_input_grad[1] else None
        gb = unbroadcast(where(self.cond, 0.0, g), _shape(b)) if self.needs_input_grad[2] else None
        return None, ga, gb


class Cast(Function):
    """A dtype change; its backward casts back (complex to real keeps the real part, as PyTorch)."""

    complex_grad = True

    def forward(self, x):
        self.src = x.dtype
        if x.dtype.kind == "c" and np.dtype(self.dtype).kind != "c":
            return x.real.astype(self.dtype)
        return x.astype(self.dtype)

    def backward(self, g):
        if self.src.kind not in "fc":
            return None
        return Cast(dtype=self.src)(g)


class ToDevice(Function):
    complex_grad = True
    def forward(self, x):
        self.src = device_of(x)
        return to_device(x, self.target)

    def backward(self, g):
        return ToDevice(target=self.src)(g)


class Clone(Function):
    complex_grad = True
    def forward(self, x):
        return x.copy()

    def backward(self, g):
        return g


# ----------------------------------------------------------------------------- functional API


def _wrap_scalar_like(x, other):
    return x


def add(input, other, alpha=1):
    if alpha != 1:
        other = other * alpha
    _check_devices("add", input, other)
    return Add()(input, other)


def sub(input, other, alpha=1):
    if alpha != 1:
        other = other * alpha
    _check_devices("sub", input, other)
    return Sub()(input, other)


def mul(input, other):
    _check_devices("mul", input, other)
    an = isinstance(input, Tensor) and input.requires_grad
    bn = isinstance(other, Tensor) and other.requires_grad
    if an is bn:  # both need grad (save both), or neither (nothing is saved anyway)
        return Mul()(input, other)
    # As PyTorch, keep only what the gradient reads: y[0] = y[1] * 2 must not save (and then find
    # modified) the view y[1].
    return Mul(saves_inputs=(0,) if bn else (1,) if an else ())(input, other)


def div(input, other, rounding_mode=None):
    _check_devices("div", input, other)
    if rounding_mode is None:
        if _needs_grad(other):
            return Div()(input, other)
        return Div(saves_inputs=(1,) if _needs_grad(input) else ())(input, other)
    a, b = _arr(input), _arr(other)
    xp = get_array_module(a if hasattr(a, "dtype") else b)
    if _kind(a) in "biu" and _kind(b) in "biu" and bool(xp.any(xp.asarray(b) == 0)):
        raise RuntimeError(f"div(rounding_mode={rounding_mode!r}): ZeroDivisionError (integer division "
                           "by zero)")
    q = a / b
    q = xp.floor(q) if rounding_mode == "floor" else xp.trunc(q)
    dt = _dt.result_type(a, b)
    return Tensor(xp.asarray(q).astype(dt))


def pow(input, exponent):
    _check_devices("pow", input, exponent)
    return Pow()(input, exponent)


def neg(input):
    return Neg()(input)


def _float_in(input):
    """Integer and bool inputs of floating functions compute in the default dtype (PyTorch's rule:
    ``torch.tensor([1, 2]).exp()`` is float32, and sigmoid of ints is not truncated to 0)."""
    if isinstance(input, Tensor) and input.data.dtype.kind in "biu":
        return input.to(_dt.get_default_dtype())
    return input


def exp(input):
    return Exp()(_float_in(input))


def log(input):
    return Log()(_float_in(input))


def sqrt(input):
    return Sqrt()(_float_in(input))


def rsqrt(input):
    return 1 / sqrt(input)


def sin(input):
    return Sin()(_float_in(input))


def cos(input):
    return Cos()(_float_in(input))


def tanh(input):
    return Tanh()(_float_in(input))


def sigmoid(input):
    return Sigmoid()(_float_in(input))


def relu(input):
    return Relu()(input)


def abs(input):
    return Abs()(input)


def square(input):
    return input * input


def clamp(input, min=None, max=None):
    if min is None and max is None:
        raise ValueError("clamp: at least one of 'min' or 'max' must not be None")
    if input.data.dtype.kind in "biu":
        # The result has the promoted dtype of input and bounds: an int tensor clamped to 1.5 is float.
        for bound in (min, max):
            dt = _dt.result_type(input.data, _arr(bound)) if bound is not None else input.data.dtype
            if dt.kind == "f":
                input = input.to(_dt.from_numpy_dtype(dt))
                break
    return Clamp()(input, min, max)


clip = clamp


def nonzero(input, *, as_tuple=False):
    """Indices of the non-zero elements: an int64 (n, ndim) tensor, or one index tensor per dim."""
    xp = get_array_module(input.data)
    a = input.data
    idx = xp.nonzero(a if a.ndim else a.reshape(1))
    if as_tuple:
        return tuple(Tensor(i.astype("int64")) for i in idx)
    out = xp.stack(idx, axis=1).astype("int64")
    return Tensor(out if a.ndim else out[:, :0])  # a 0-d input gives (n, 0), as PyTorch


def argwhere(input):
    return nonzero(input)


def where(condition, input=None, other=None):
    """``where(condition, input, other)``; ``where(condition)`` alone is ``nonzero(as_tuple=True)``."""
    if input is None and other is None:
        return nonzero(condition, as_tuple=True)
    c = _arr(condition)
    return Where()(c, input, other)


class _Extremum(Function):
    """maximum / minimum. The value is NumPy's (NaN propagates; -inf stays -inf: the weighted sum
    a w + b (1 - w) used before gave -inf * 0 = NaN); ties split the gradient evenly, as PyTorch."""

    def forward(self, a, b):
        a, b = _promote(a, b)
        xp = get_array_module(a if hasattr(a, "dtype") else b)
        # Weights: 1 unless the operand lost, 0.5 on ties; at a NaN both operands get the gradient.
        lt, gt, tie = a < b, a > b, 0.5 * (a == b)
        self.wa = (~(lt if self.largest else gt)) - tie
        self.wb = (~(gt if self.largest else lt)) - tie
        return xp.maximum(a, b) if self.largest else xp.minimum(a, b)

    def backward(self, g):
        a, b = self.inputs
        dt = g.data.dtype
        ga = unbroadcast(Mask(mask=self.wa.astype(dt))(g), _shape(a)) if self.needs_input_grad[0] else None
        gb = unbroadcast(Mask(mask=self.wb.astype(dt))(g), _shape(b)) if self.needs_input_grad[1] else None
        return ga, gb


def maximum(input, other):
    _check_devices("maximum", input, other)
    return _Extremum(largest=True)(input, other)


def minimum(input, other):
    _check_devices("minimum", input, other)
    return _Extremum(largest=False)(input, other)


def _needs(*xs):
    from ..autograd import is_grad_enabled

    return is_grad_enabled() and any(isinstance(x, Tensor) and x.requires_grad for x in xs)


class _Piecewise(Function):
    """sign, floor, ceil, round: piecewise constant, so their gradient is zero where it exists. As in
    PyTorch, the result stays in the graph (a later backward reaches the input with zeros) instead of
    cutting it."""

    def forward(self, x):
        xp = get_array_module(x)
        return xp.round(x, self.decimals) if self.op == "round" else getattr(xp, self.op)(x)

    def backward(self, g):
        return g * 0


def _piecewise(op, input, decimals=0):
    if not (input.requires_grad and input.data.dtype.kind == "f"):
        xp = get_array_module(input.data)
        return Tensor(xp.round(input.data, decimals) if op == "round" else getattr(xp, op)(input.data))
    return _Piecewise(op=op, decimals=decimals)(input)


def sign(input):
    return _piecewise("sign", input)


def floor(input):
    return _piecewise("floor", input)


def ceil(input):
    return _piecewise("ceil", input)


def round(input, decimals=0):
    return _piecewise("round", input, decimals)


def clone(input):
    return Clone()(input)


def _compare(op):
    def f(input, other):
        _check_devices(op.__name__, input, other)
        a, b = _arr(input), _arr(other)
        return Tensor(op(a, b))

    return f


eq = _compare(np.equal)
ne = _compare(np.not_equal)
lt = _compare(np.less)
le = _compare(np.less_equal)
gt = _compare(np.greater)
ge = _compare(np.greater_equal)


def logical_not(input):
    return Tensor(~input.data.astype(bool))


def logical_and(input, other):
    return Tensor(_arr(input).astype(bool) & _arr(other).astype(bool))


def logical_or(input, other):
    return Tensor(_arr(input).astype(bool) | _arr(other).astype(bool))


def logical_xor(input, other):
    return Tensor(_arr(input).astype(bool) ^ _arr(other).astype(bool))


def _bitwise(name, op):
    """``&``, ``|``, ``^``: logical on bool tensors, bitwise on integer tensors (PyTorch's operators)."""

    def f(input, other):
        _check_devices(name, input, other)
        a, b = _arr(input), _arr(other)
        if _kind(a) == "f" or _kind(b) == "f":
            da, db = (getattr(v, "dtype", type(v).__name__) for v in (a, b))
            raise TypeError(f"{name}: operands must be integer or bool tensors, got {da} and {db}")
        a, b = _promote(a, b)
        return Tensor(op(a, b))

    f.__name__ = name
    return f


bitwise_and = _bitwise("bitwise_and", lambda a, b: a & b)
bitwise_or = _bitwise("bitwise_or", lambda a, b: a | b)
bitwise_xor = _bitwise("bitwise_xor", lambda a, b: a ^ b)


def isnan(input):
    return Tensor(get_array_module(input.data).isnan(input.data))


def isfinite(input):
    return Tensor(get_array_module(input.data).isfinite(input.data))


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    xp = get_array_module(input.data)
    return bool(xp.allclose(input.data, _arr(other), rtol=rtol, atol=atol, equal_nan=equal_nan))


def equal(input, other):
    return input.shape == other.shape and bool((input.data == other.data).all())
