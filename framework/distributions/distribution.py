"""The Distribution base class, as ``torch.distributions.Distribution``, and shared helpers."""

from __future__ import annotations

import numbers

import numpy as np

from ..autograd import no_grad
from ..ops.specfun import broadcast_shapes
from ..tensor import Size, Tensor, rand, randn, tensor
from . import constraints

__all__ = ["Distribution"]


class lazy_property:
    """A property computed on first use and then cached on the instance (``Bernoulli.logits`` when
    built from ``probs``); a parameter given to the constructor is stored directly instead."""

    def __init__(self, fn):
        self.fn = fn
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        value = self.fn(instance)
        instance.__dict__[self.fn.__name__] = value
        return value


def broadcast_all(*values):
    """Tensors (numbers become tensors of the first tensor's dtype and device, or the default dtype)
    expanded to their common shape; the expansion is differentiable."""
    ref = next((v for v in values if isinstance(v, Tensor)), None)
    out = []
    for v in values:
        if isinstance(v, Tensor):
            out.append(v if v.dtype.is_floating_point else v.float())
        elif isinstance(v, numbers.Number):
            out.append(tensor(float(v), dtype=None if ref is None else ref.dtype,
                              device=None if ref is None else ref.device))
        else:
            raise ValueError(f"Input arguments must all be instances of numbers.Number or Tensor, got "
                             f"{type(v).__name__}")
    shape = broadcast_shapes(*(v.shape for v in out))
    return tuple(v if tuple(v.shape) == shape else v.expand(*shape) for v in out)


def _host(t: Tensor, shape):
    """A parameter's values on the host, broadcast to ``shape``: for the draws NumPy makes there."""
    from ..backend import device, to_device

    return np.broadcast_to(to_device(t.data, device("cpu")), tuple(shape))


def _back(x, like: Tensor) -> Tensor:
    """Host draws as a tensor of ``like``'s dtype, on its device."""
    from ..backend import to_device

    return Tensor(to_device(np.ascontiguousarray(x.astype(like.data.dtype)), like.device))


def standard_normal(shape, like: Tensor) -> Tensor:
    """N(0, 1) noise of ``shape`` with ``like``'s dtype and device, from the framework's generator."""
    return randn(tuple(shape), dtype=like.dtype, device=like.device)


def standard_uniform(shape, like: Tensor) -> Tensor:
    """U[0, 1) noise of ``shape`` with ``like``'s dtype and device, from the framework's generator."""
    return rand(tuple(shape), dtype=like.dtype, device=like.device)


def clamp_probs(probs: Tensor) -> Tensor:
    """Probabilities kept inside [eps, 1 - eps] of their dtype, so their logits are finite."""
    import numpy as np

    eps = float(np.finfo(probs.data.dtype).eps)
    return probs.clamp(eps, 1 - eps)


class Distribution:
    """A batch of probability distributions of ``batch_shape``, each over events of ``event_shape``.

    ``validate_args`` (default True, as PyTorch in debug mode) checks the parameters against
    ``arg_constraints`` when constructed and values against ``support`` in ``log_prob``/``cdf``; a
    failed check is a ValueError naming the distribution and the argument."""

    has_rsample = False
    has_enumerate_support = False
    _validate_args = True
    arg_constraints: dict = {}
    support = None

    @staticmethod
    def set_default_validate_args(value: bool) -> None:
        if value not in (True, False):
            raise ValueError("set_default_validate_args expects True or False")
        Distribution._validate_args = value

    def __init__(self, batch_shape=(), event_shape=(), validate_args=None):
        self._batch_shape = Size(tuple(batch_shape))
        self._event_shape = Size(tuple(event_shape))
        if validate_args is not None:
            self._validate_args = validate_args
        if not self._validate_args:
            return
        for param, constraint in self.arg_constraints.items():
            if constraints.is_dependent(constraint):
                continue
            if param not in self.__dict__ and isinstance(getattr(type(self), param, None), lazy_property):
                continue  # the other parametrisation (logits when probs was given) is derived
            value = getattr(self, param)
            with no_grad():
                ok = bool(constraint.check(value).all().item())
            if not ok:
                raise ValueError(
                    f"Expected parameter {param} ({type(value).__name__} of shape {tuple(value.shape)}) of "
                    f"distribution {self!r} to satisfy the constraint {constraint!r}, but found invalid "
                    f"values:\n{value}")

    # ------------------------------------------------------------------ shapes
    @property
    def batch_shape(self) -> Size:
        return self._batch_shape

    @property
    def event_shape(self) -> Size:
        return self._event_shape

    def _extended_shape(self, sample_shape=()) -> Size:
        return Size(tuple(sample_shape) + tuple(self._batch_shape) + tuple(self._event_shape))

    def expand(self, batch_shape, _instance=None):
        """The same distribution over a larger ``batch_shape`` (parameters expanded, not copied)."""
        batch_shape = Size(tuple(batch_shape))
        new = object.__new__(type(self)) if _instance is None else _instance
        lazy = {n for n in self.__dict__ if isinstance(getattr(type(self), n, None), lazy_property)}
        for name, value in self.__dict__.items():
            if name in lazy and name not in self._given_params():
                continue
            if name in self.arg_constraints and isinstance(value, Tensor):
                trailing = tuple(value.shape[len(self._batch_shape):])
                value = value.expand(*batch_shape, *trailing)
            new.__dict__[name] = value
        new._batch_shape = batch_shape
        return new

    def _given_params(self):
        """The parametrisation this instance was built from (the others are derived lazily)."""
        return getattr(self, "_params_given", tuple(self.arg_constraints))

    # ------------------------------------------------------------------ moments and functions
    @property
    def mean(self) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no mean")

    @property
    def mode(self) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no mode")

    @property
    def variance(self) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no variance")

    @property
    def stddev(self) -> Tensor:
        return self.variance.sqrt()

    def sample(self, sample_shape=()) -> Tensor:
        """A sample of shape ``sample_shape + batch_shape + event_shape``, without gradient."""
        with no_grad():
            return self.rsample(sample_shape)

    def rsample(self, sample_shape=()) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no reparameterized sampler (rsample)")

    def sample_n(self, n: int) -> Tensor:
        return self.sample(Size((n,)))

    def log_prob(self, value: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def cdf(self, value: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no cdf")

    def icdf(self, value: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no icdf")

    def entropy(self) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no entropy")

    def perplexity(self) -> Tensor:
        return self.entropy().exp()

    def enumerate_support(self, expand=True) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no enumerate_support")

    # ------------------------------------------------------------------ validation
    def _validate_sample(self, value) -> None:
        """Raise ValueError unless ``value`` is a tensor whose shape broadcasts with the batch and event
        shapes and whose values lie in the support."""
        name = type(self).__name__
        if not isinstance(value, Tensor):
            raise ValueError(f"{name}: the value argument must be a Tensor, got {type(value).__name__}")
        event_dim = len(self._event_shape)
        if tuple(value.shape[value.ndim - event_dim:]) != tuple(self._event_shape) or value.ndim < event_dim:
            raise ValueError(f"{name}: the right-most size of value must match event_shape: "
                             f"{tuple(value.shape)} vs {tuple(self._event_shape)}")
        actual = tuple(value.shape[:value.ndim - event_dim])
        expected = tuple(self._batch_shape)
        for i, j in zip(reversed(actual), reversed(expected)):
            if i != 1 and j != 1 and i != j:
                raise ValueError(f"{name}: value with shape {tuple(value.shape)} is not broadcastable with "
                                 f"batch_shape+event_shape {expected + tuple(self._event_shape)}")
        support = self.support
        with no_grad():
            ok = bool(support.check(value).all().item())
        if not ok:
            raise ValueError(f"Expected value argument ({type(value).__name__} of shape "
                             f"{tuple(value.shape)}) to be within the support ({support!r}) of the "
                             f"distribution {self!r}, but found invalid values:\n{value}")

    def __repr__(self):
        names = [k for k in self.arg_constraints if k in self.__dict__]
        args = ", ".join(f"{k}: {self._show(self.__dict__[k])}" for k in names)
        return f"{type(self).__name__}({args})"

    @staticmethod
    def _show(v):
        if isinstance(v, Tensor) and v.numel() == 1:
            return f"{v.reshape(()).item():.4g}"
        return f"size {tuple(v.shape)}" if isinstance(v, Tensor) else repr(v)
