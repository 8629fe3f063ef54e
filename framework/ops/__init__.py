"""Differentiable operations, and the Tensor methods and operators that call them."""

from __future__ import annotations

from .. import dtypes
from ..tensor import Tensor
from . import aliases, basic, complexops, compose, extra, misc, reduce, shape, specfun, spectral, stats
from .aliases import *  # noqa: F401,F403
from .basic import *  # noqa: F401,F403
from .basic import (
    abs,
    add,
    clamp,
    clone,
    cos,
    div,
    eq,
    exp,
    ge,
    gt,
    isnan,
    le,
    log,
    lt,
    maximum,
    minimum,
    mul,
    ne,
    neg,
    pow,
    relu,
    sigmoid,
    sin,
    sqrt,
    sub,
    tanh,
    where,
)
from .complexops import *  # noqa: F401,F403
from .compose import *  # noqa: F401,F403
from .extra import *  # noqa: F401,F403
from .misc import *  # noqa: F401,F403
from .reduce import *  # noqa: F401,F403
from .reduce import all as all_
from .reduce import (
    amax,
    amin,
    argmax,
    argmin,
    argsort,
    cumsum,
    log_softmax,
    logsumexp,
    mean,
    norm,
    softmax,
    sort,
    std,
    topk,
    var,
)
from .reduce import any as any_
from .reduce import max as max_
from .reduce import min as min_
from .reduce import sum as sum_
from .shape import *  # noqa: F401,F403
from .shape import (
    _inplace,
    chunk,
    contiguous,
    expand,
    expand_as,
    flatten,
    flip,
    gather,
    getitem,
    index_select,
    masked_fill,
    matmul,
    narrow,
    permute,
    repeat,
    reshape,
    scatter_add,
    setitem,
    split,
    squeeze,
    transpose,
    unbind,
    unflatten,
    unsqueeze,
    view,
)
from .specfun import *  # noqa: F401,F403
from .spectral import *  # noqa: F401,F403
from .stats import *  # noqa: F401,F403


def _r(fn):
    return lambda self, other: fn(other, self)


def _cmp_dunder(fn):
    # `t == None` is False and `t != None` True (Python's fallback), as in PyTorch: `t in [None, x]` works.
    def method(self, other):
        if other is None:
            return NotImplemented
        return fn(self, other)

    return method


def _inplace_method(name, fn):
    def method(self, *args, **kwargs):
        other = args[0] if args else None
        rg = isinstance(other, Tensor) and other.requires_grad
        return _inplace(self, lambda old: fn(old, *args, **kwargs), name, rg)

    method.__name__ = name
    return method


def _relu_(self):
    from ..autograd import is_grad_enabled

    if is_grad_enabled() or self.data.dtype.kind != "f":
        return _inplace(self, relu, "relu_")
    basic._relu_array(self.data, out=self.data)  # no graph to record: one pass, in place
    self._vc[0] += 1
    return self


def _zero_(self):
    return _fill_(self, 0)


def _fill_(self, value):
    if isinstance(value, Tensor):
        value = value.item()
    return _overwrite(self, "zero_" if value == 0 else "fill_", value)


def _overwrite(self, name, values):
    """Overwrite every element of ``self`` with ``values`` (a scalar, or an array of its shape and
    dtype), in place. In grad mode a leaf that requires grad is refused (as PyTorch), and so is a view
    made under no_grad; a tensor in the graph gets the change recorded (an all-true masked fill), so
    that no gradient flows back through the overwritten values."""
    from ..autograd import is_grad_enabled
    from ..backend import get_array_module

    if is_grad_enabled():
        if self.requires_grad and self.is_leaf:
            raise RuntimeError(f"{name}: a leaf Variable that requires grad is being used in an "
                               "in-place operation.")
        shape._check_untracked_view(self, name)
        if self.requires_grad:
            mask = Tensor(get_array_module(self.data).ones(self.data.shape, dtype=bool))
            if hasattr(values, "shape"):
                return _inplace(self, lambda old: where(mask, Tensor(values), old), name)
            return _inplace(self, lambda old: masked_fill(old, mask, values), name)
    self.data[...] = values
    self._vc[0] += 1
    return self


def _copy_(self, src, non_blocking=False):
    from ..backend import to_device

    def make(old):
        s = src.to(self.device) if isinstance(src, Tensor) else Tensor(to_device(src, self.device))
        s = s.to(self.dtype)
        return old * 0 + s if s.shape != old.shape else s + old * 0

    rg = isinstance(src, Tensor) and src.requires_grad
    return _inplace(self, make, "copy_", rg)


_METHODS = {
    "__add__": add, "__radd__": _r(add), "__sub__": sub, "__rsub__": _r(sub),
    "__mul__": mul, "__rmul__": _r(mul), "__truediv__": div, "__rtruediv__": _r(div),
    "__pow__": pow, "__rpow__": _r(pow), "__matmul__": matmul, "__rmatmul__": _r(matmul),
    "__neg__": neg, "__abs__": abs,
    "__eq__": _cmp_dunder(eq), "__ne__": _cmp_dunder(ne),
    "__lt__": lt, "__le__": le, "__gt__": gt, "__ge__": ge,
    "__getitem__": getitem, "__setitem__": setitem,
    "__invert__": lambda self: basic.logical_not(self) if self.data.dtype.kind == "b" else Tensor(~self.data),
    "__and__": basic.bitwise_and, "__or__": basic.bitwise_or, "__xor__": basic.bitwise_xor,
    "__rand__": _r(basic.bitwise_and), "__ror__": _r(basic.bitwise_or), "__rxor__": _r(basic.bitwise_xor),
    "__floordiv__": lambda a, b: div(a, b, rounding_mode="floor"),
    "__mod__": lambda a, b: a - div(a, b, rounding_mode="floor") * b,
    "add": add, "sub": sub, "mul": mul, "div": div, "pow": pow, "neg": neg, "matmul": matmul,
    "exp": exp, "log": log, "sqrt": sqrt, "rsqrt": basic.rsqrt, "abs": abs, "sin": sin, "cos": cos,
    "tanh": tanh, "sigmoid": sigmoid, "relu": relu, "clamp": clamp, "clip": clamp,
    "square": basic.square, "sign": basic.sign, "floor": basic.floor, "ceil": basic.ceil,
    "round": basic.round, "maximum": maximum, "minimum": minimum, "clone": clone,
    "eq": eq, "ne": ne, "lt": lt, "le": le, "gt": gt, "ge": ge, "isnan": isnan,
    "isfinite": basic.isfinite, "nonzero": basic.nonzero, "argwhere": basic.argwhere,
    "logical_not": basic.logical_not,
    "sum": sum_, "mean": mean, "max": max_, "min": min_, "amax": amax, "amin": amin,
    "argmax": argmax, "argmin": argmin, "var": var, "std": std, "logsumexp": logsumexp,
    "softmax": softmax, "log_softmax": log_softmax, "cumsum": cumsum, "norm": norm, "topk": topk,
    "sort": sort, "argsort": argsort, "all": all_, "any": any_, "prod": reduce.prod,
    "reshape": reshape, "view": view, "flatten": flatten, "unflatten": unflatten, "permute": permute,
    "transpose": transpose, "t": shape.t, "squeeze": squeeze, "unsqueeze": unsqueeze,
    "expand": expand, "expand_as": expand_as, "repeat": repeat, "contiguous": contiguous,
    "chunk": chunk, "split": split, "unbind": unbind, "gather": gather, "scatter_add": scatter_add,
    "masked_fill": masked_fill, "flip": flip, "index_select": index_select, "narrow": narrow,
    "where": lambda self, condition, other: where(condition, self, other),
    "view_as": lambda self, other: reshape(self, other.shape),
    "reshape_as": lambda self, other: reshape(self, other.shape),
    "type_as": lambda self, other: self.to(other.dtype),
    **{name: getattr(extra, name) for name in (
        "log1p", "expm1", "log2", "log10", "exp2", "reciprocal", "asin", "acos", "atan", "atan2", "sinh",
        "cosh", "trunc", "frac", "fmod", "remainder", "hypot", "logaddexp", "lerp", "erf", "outer", "addmm",
        "baddbmm", "tril", "triu", "roll", "movedim", "swapaxes", "tile", "ravel", "diag", "diagonal",
        "trace", "median", "kthvalue", "quantile", "cumprod", "cummax", "cummin", "nanmean", "masked_select",
        "take_along_dim", "repeat_interleave", "inverse", "det", "isinf", "unique", "bincount")},
    "arcsin": extra.asin, "arccos": extra.acos, "arctan": extra.atan, "arctan2": extra.atan2,
    "moveaxis": extra.movedim, "fix": extra.trunc,
    **{name: getattr(compose, name) for name in (
        "clamp_min", "clamp_max", "nan_to_num", "addcmul", "addcdiv", "select", "take", "dot", "inner",
        "cross", "kron", "diff", "logit", "xlogy", "count_nonzero", "nansum", "isclose", "fliplr", "flipud",
        "rot90", "tensor_split", "aminmax", "isin", "diag_embed", "deg2rad", "rad2deg", "sinc", "scatter",
        "index_add", "index_fill", "index_copy")},
    **{name: getattr(stats, name) for name in (
        "cov", "corrcoef", "logcumsumexp", "copysign", "heaviside", "renorm", "histc", "nanmedian", "frexp",
        "ldexp", "gcd", "lcm")},
    **{name: getattr(misc, name) for name in (
        "mv", "addmv", "addr", "ger", "addbmm", "diagflat", "index_put", "masked_scatter", "put",
        "unique_consecutive", "swapdims", "adjoint", "signbit", "positive", "float_power", "true_divide",
        "floor_divide", "bitwise_not", "bernoulli", "scatter_reduce", "index_reduce", "split_with_sizes",
        "hsplit", "vsplit", "dsplit", "is_nonzero", "nextafter", "logaddexp2", "i0")},
    **{name: getattr(aliases, name) for name in (
        "absolute", "multiply", "divide", "subtract", "negative", "greater", "greater_equal", "less",
        "less_equal", "not_equal", "tan", "asinh", "acosh", "atanh", "arcsinh", "arccosh", "arctanh", "erfc",
        "fmax", "fmin", "isposinf", "isneginf", "dist", "nanquantile", "msort", "mvlgamma", "cholesky", "qr",
        "svd", "pinverse", "bitwise_left_shift", "bitwise_right_shift", "cholesky_solve", "cholesky_inverse",
        "matrix_exp", "matrix_power", "narrow_copy", "isreal")},
    "bitwise_and": basic.bitwise_and, "bitwise_or": basic.bitwise_or, "bitwise_xor": basic.bitwise_xor,
    "broadcast_to": lambda self, size: expand(self, *size),
    "logdet": stats.logdet, "slogdet": stats.slogdet, "mode": stats.mode, "histogram": stats.histogram,
    "multinomial": misc.multinomial, "stft": spectral.stft, "istft": spectral.istft,
    "is_same_size": lambda self, other: tuple(self.shape) == tuple(other.shape),
    "is_cpu": property(lambda self: self.device.type == "cpu"),
    "is_inference": lambda self: False, "is_conj": lambda self: False, "is_neg": lambda self: False,
    "char": lambda self: self.to(dtypes.int8), "short": lambda self: self.to(dtypes.int16),
    "cfloat": lambda self: self.to(dtypes.complex64), "cdouble": lambda self: self.to(dtypes.complex128),
    "fill_diagonal_": _inplace_method("fill_diagonal_", aliases._fill_diagonal),
    "lgamma": specfun.lgamma, "digamma": specfun.digamma, "erfinv": specfun.erfinv,
    "polygamma": lambda self, n: specfun.polygamma(n, self),
    "unfold": compose.unfold_windows, "sgn": basic.sign,
    "logical_and": basic.logical_and, "logical_or": basic.logical_or, "logical_xor": basic.logical_xor,
    "equal": basic.equal, "allclose": basic.allclose,
    "zero_": _zero_, "fill_": _fill_, "copy_": _copy_,
    "add_": _inplace_method("add_", add), "sub_": _inplace_method("sub_", sub),
    "mul_": _inplace_method("mul_", mul), "div_": _inplace_method("div_", div),
    "clamp_": _inplace_method("clamp_", clamp), "pow_": _inplace_method("pow_", pow),
    "masked_fill_": _inplace_method("masked_fill_", masked_fill),
    "scatter_add_": _inplace_method("scatter_add_", scatter_add),
    "relu_": _relu_, "sigmoid_": _inplace_method("sigmoid_", sigmoid),
    "exp_": _inplace_method("exp_", exp), "neg_": _inplace_method("neg_", neg),
    "__iadd__": _inplace_method("add_", add), "__isub__": _inplace_method("sub_", sub),
    "__imul__": _inplace_method("mul_", mul), "__itruediv__": _inplace_method("div_", div),
}


def _uniform_(self, a=0.0, b=1.0, generator=None):
    from ..tensor import _gen

    return _fill_random(self, _gen(generator).uniform(a, b, self.shape), "uniform_")


def _normal_(self, mean=0.0, std=1.0, generator=None):
    from ..tensor import _gen

    return _fill_random(self, _gen(generator).normal(mean, std, self.shape), "normal_")


def _fill_random(self, values, name):
    from ..backend import to_device

    return _overwrite(self, name, to_device(values.astype(self.data.dtype), self.device))


_METHODS["uniform_"] = _uniform_
_METHODS["normal_"] = _normal_


def _random_fill(name, draw):
    import numpy as np

    def method(self, *args, generator=None, **kwargs):
        from ..tensor import _gen

        return _fill_random(self, np.asarray(draw(_gen(generator), self.shape, *args, **kwargs)), name)

    method.__name__ = name
    return method


def _host_array(v):
    import numpy as np

    return np.asarray(v.detach().cpu().numpy() if isinstance(v, Tensor) else v)



for _name, _fn in _METHODS.items():
    setattr(Tensor, _name, _fn)

def _view_in_place(name, op):
    """``t.unsqueeze_(...)`` and the like: ``t`` becomes ``op(t)``, a view of its own data with another
    shape or order (no values change). In the graph, the view's node takes over as ``t``'s producer, as
    PyTorch's. A view of another tensor in the graph is refused rather than re-derived wrongly."""

    def method(self, *args, **kwargs):
        from ..autograd import is_grad_enabled

        if not (is_grad_enabled() and self.requires_grad):
            self.data = op(Tensor(self.data), *args, **kwargs).data
            return self
        if self.is_leaf:
            raise RuntimeError(f"{name}: a leaf Variable that requires grad is being used in an in-place "
                               "operation.")
        if self._view_ver is not None or getattr(self, "_view_src", None) is not None:
            raise RuntimeError(f"{name}: changing the shape of a view in place is not supported for tensors "
                               f"that require grad; use {name[:-1]}() instead")
        fn, idx = self.grad_fn, self._out_idx
        old = Tensor._from_op(self.data, fn, idx)  # (the value before: the producer's output now)
        shape._point_output(fn, idx, old)
        old._hooks, self._hooks = self._hooks, []
        new = op(old, *args, **kwargs)
        shape._point_output(new.grad_fn, new._out_idx, self)
        self.data, self.grad_fn, self._out_idx = new.data, new.grad_fn, new._out_idx
        return self

    method.__name__ = name
    return method


def _compare_in_place(name):
    """``t.ge_(other)`` and the like: 1 / 0 in ``t``'s own dtype (``_inplace`` gives the constant result its
    zero gradient)."""

    def make(old, other):
        return getattr(Tensor, name)(old, other).to(old.dtype)

    return make


_MORE = {
    # in place, through the out-of-place operation (autograd records them as PyTorch's do)
    **{f"{n}_": _inplace_method(f"{n}_", getattr(Tensor, n)) for n in (
        "sqrt", "abs", "sin", "cos", "floor", "round", "ceil", "trunc", "sign", "reciprocal", "tanh", "log",
        "lerp", "addcmul", "addcdiv", "clamp_min", "clamp_max", "cumsum", "tril", "triu", "index_add",
        "index_fill", "index_copy", "index_put", "masked_scatter", "put", "log1p", "expm1", "square", "rsqrt",
        "fmod", "remainder", "atan2", "hypot", "logit", "nan_to_num", "frac", "erf", "floor_divide",
        "acos", "acosh", "asin", "asinh", "atan", "atanh", "arccos", "arccosh", "arcsin", "arcsinh", "arctan",
        "arctanh", "arctan2", "absolute", "cosh", "sinh", "tan", "exp2", "log2", "log10", "erfc", "erfinv",
        "lgamma", "digamma", "polygamma", "mvlgamma", "i0", "sinc", "deg2rad", "rad2deg", "sgn", "fix",
        "copysign", "heaviside", "ldexp", "float_power", "true_divide", "divide", "multiply", "subtract",
        "negative", "xlogy", "cumprod", "renorm", "addmm", "addmv", "addr", "addbmm", "baddbmm", "nextafter",
        "gcd", "lcm", "logical_and", "logical_or", "logical_xor", "logical_not", "bitwise_and", "bitwise_or",
        "bitwise_xor", "bitwise_not", "bitwise_left_shift", "bitwise_right_shift", "clip")
        if hasattr(Tensor, n)},
    # shape changes in place (views of the tensor's own data)
    **{f"{n}_": _view_in_place(f"{n}_", getattr(Tensor, n)) for n in (
        "squeeze", "unsqueeze", "transpose", "t", "swapaxes", "swapdims")},
    # comparisons in place write 1 / 0 in the tensor's own dtype, as PyTorch's (a zero gradient)
    **{f"{n}_": _inplace_method(f"{n}_", _compare_in_place(n))
       for n in ("ge", "gt", "le", "lt", "ne", "eq", "greater", "greater_equal", "less", "less_equal",
                 "not_equal")},
    "scatter_": _inplace_method("scatter_", compose.scatter),
    "scatter_reduce_": _inplace_method("scatter_reduce_", misc.scatter_reduce),
    "index_reduce_": _inplace_method("index_reduce_", misc.index_reduce),
    # random fills, from the framework's generator
    "bernoulli_": _random_fill("bernoulli_", lambda g, shape, p=0.5: g.random(shape) < _host_array(p)),
    "exponential_": _random_fill("exponential_",
                                 lambda g, shape, lambd=1.0: g.exponential(1.0 / lambd, shape)),
    "geometric_": _random_fill("geometric_", lambda g, shape, p: g.geometric(p, shape)),
    "cauchy_": _random_fill("cauchy_", lambda g, shape, median=0.0, sigma=1.0:
                            median + sigma * g.standard_cauchy(shape)),
    "log_normal_": _random_fill("log_normal_",
                                lambda g, shape, mean=1.0, std=2.0: g.lognormal(mean, std, shape)),
    "random_": _random_fill("random_", lambda g, shape, low=0, high=None:
                            g.integers(0, low, shape) if high is None else g.integers(low, high, shape)),
    # conveniences
    "new_empty": lambda self, *size, dtype=None, device=None, requires_grad=False: self.new_zeros(
        *size, dtype=dtype, device=device, requires_grad=requires_grad),
    "is_complex": complexops.is_complex,
    "angle": complexops.angle,
    "sgn": complexops.sgn,
    "imag": property(complexops.imag),
    "conj_physical": complexops.conj,
    "is_signed": lambda self: self.data.dtype.kind in "if",
    "get_device": lambda self: -1 if self.device.type == "cpu" else (self.device.index or 0),
    "mm": lambda self, other: self @ other,
    "bmm": lambda self, other: self @ other,
    "vdot": lambda self, other: (complexops.conj(self.reshape(-1)) * other.reshape(-1)).sum(),
    "fmax": lambda self, other: where(self != self, other, where(other != other, self, maximum(self, other))),
    "fmin": lambda self, other: where(self != self, other, where(other != other, self, minimum(self, other))),
    "isposinf": lambda self: (self == float("inf")),
    "isneginf": lambda self: (self == float("-inf")),
    "dist": lambda self, other, p=2: (self - other).norm(p),
    "msort": lambda self: self.sort(0)[0],
    "sum_to_size": lambda self, *size: basic.unbroadcast(self, tuple(size[0]) if len(size) == 1 and
                                                          not isinstance(size[0], int) else tuple(size)),
    "real": property(complexops.real),
    "conj": complexops.conj,
    "resolve_conj": complexops.resolve_conj,
    "resolve_neg": complexops.resolve_neg,
    "H": property(lambda self: complexops.conj(self.transpose(0, 1)) if self.ndim == 2 else self),
    "mH": property(lambda self: complexops.conj(self.transpose(-2, -1))),
}
for _name, _fn in _MORE.items():
    setattr(Tensor, _name, _fn)
Tensor.__hash__ = lambda self: id(self)
