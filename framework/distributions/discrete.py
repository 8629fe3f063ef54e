"""Discrete distributions: Bernoulli, Categorical, OneHotCategorical (each from probs or logits)."""

from __future__ import annotations

import math

import numpy as np

from ..autograd import no_grad
from ..functional import logsigmoid
from ..ops import gather, logsumexp, sigmoid, where
from ..tensor import Size, arange
from . import constraints
from .distribution import Distribution, broadcast_all, clamp_probs, lazy_property, standard_uniform

__all__ = ["Bernoulli", "Categorical", "OneHotCategorical"]


def _one_of(name, probs, logits):
    if (probs is None) == (logits is None):
        raise ValueError(f"{name}: either `probs` or `logits` must be specified, but not both.")


class _FromProbsOrLogits(Distribution):
    """A distribution given by ``probs`` or by ``logits`` (``_params_given`` names the one given)."""

    @property
    def _param(self):
        return self.__dict__[self._params_given[0]]

    @property
    def param_shape(self):
        return self._param.shape


class _BinaryProbs(_FromProbsOrLogits):
    """A distribution given by one success probability per element, ``probs``, or by its log-odds
    ``logits`` (the other computed on first use); ``_take(probs, logits)`` stores the one given."""

    def _take(self, name, probs, logits, *others):
        """Store the given parameter (broadcast with ``others``, which are returned)."""
        _one_of(name, probs, logits)
        given = "probs" if probs is not None else "logits"
        *rest, value = broadcast_all(*others, probs if probs is not None else logits)
        self.__dict__[given] = value
        self._params_given = (given,)
        return rest

    @lazy_property
    def probs(self):
        return sigmoid(self.logits)

    @lazy_property
    def logits(self):
        p = clamp_probs(self.probs)
        return p.log() - (-p).log1p()


class Bernoulli(_BinaryProbs):
    """1 with probability ``probs`` (or sigmoid(``logits``)), else 0, as
    ``torch.distributions.Bernoulli``; samples are floats of the parameter's dtype."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.boolean
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args=None):
        self._take("Bernoulli", probs, logits)
        super().__init__(self._param.shape, validate_args=validate_args)

    @property
    def mean(self):
        return self.probs

    @property
    def mode(self):
        p = self.probs
        return where(p == 0.5, p * math.nan, (p >= 0.5).to(p.dtype))

    @property
    def variance(self):
        return self.probs * (1 - self.probs)

    def sample(self, sample_shape=()):
        with no_grad():
            p = self.probs.expand(*self._extended_shape(sample_shape))
            return (standard_uniform(p.shape, p) < p).to(p.dtype)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        # log p^v (1-p)^(1-v) = v * logits + log(1 - p) = logsigmoid(logits) - (1 - v) * logits
        return logsigmoid(logits) - (1 - value) * logits

    def entropy(self):
        logits = self.logits
        return (1 - self.probs) * logits - logsigmoid(logits)

    def enumerate_support(self, expand=True):
        values = arange(2, dtype=self._param.dtype, device=self._param.device)
        values = values.reshape((-1,) + (1,) * len(self._batch_shape))
        return values.expand(2, *self._batch_shape) if expand else values


class Categorical(_FromProbsOrLogits):
    """A category in {0, ..., K-1} with probabilities ``probs`` (normalised along the last dimension)
    or softmax(``logits``), as ``torch.distributions.Categorical``; samples are int64."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.independent(constraints.real, 1)}
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args=None):
        _one_of(type(self).__name__, probs, logits)
        if probs is not None:
            if probs.ndim < 1:
                raise ValueError("`probs` parameter must be at least one-dimensional.")
            self.probs = probs / probs.sum(-1, keepdim=True)
            self._params_given = ("probs",)
        else:
            if logits.ndim < 1:
                raise ValueError("`logits` parameter must be at least one-dimensional.")
            self.logits = logits - logsumexp(logits, -1, keepdim=True)
            self._params_given = ("logits",)
        self._num_events = self._param.shape[-1]
        super().__init__(self._param.shape[:-1], validate_args=validate_args)

    @lazy_property
    def probs(self):
        return self.logits.softmax(-1)

    @lazy_property
    def logits(self):
        return clamp_probs(self.probs).log()

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self):
        return constraints.integer_interval(0, self._num_events - 1)

    @property
    def mean(self):
        return _full_like_shape(self._param, self._extended_shape(), math.nan)

    @property
    def mode(self):
        return self.probs.argmax(-1)

    @property
    def variance(self):
        return self.mean

    def sample(self, sample_shape=()):
        with no_grad():
            p = self.probs
            cdf = p.cumsum(-1)
            shape = tuple(sample_shape) + tuple(self._batch_shape)
            u = standard_uniform(shape + (1,), p) * cdf[..., -1:]  # (rounding: scale to the last cdf)
            idx = (cdf.expand(*shape, self._num_events) <= u).sum(-1)
            return idx.clamp(max=self._num_events - 1).long()

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        value = value.long().unsqueeze(-1)
        shape = tuple(np.broadcast_shapes(tuple(value.shape), tuple(self.logits.shape[:-1]) + (1,)))
        value = value.expand(*shape)
        logits = self.logits.expand(*shape[:-1], self._num_events)
        return gather(logits, -1, value).squeeze(-1)

    def entropy(self):
        finite_min = float(np.finfo(self.logits.data.dtype).min)
        logits = self.logits.clamp(min=finite_min)  # -inf logits (zero probabilities) add nothing
        return -(logits * self.probs).sum(-1)

    def enumerate_support(self, expand=True):
        values = arange(self._num_events, device=self._param.device)
        values = values.reshape((-1,) + (1,) * len(self._batch_shape))
        return values.expand(self._num_events, *self._batch_shape) if expand else values


def _full_like_shape(p, shape, value):
    from ..tensor import full

    return full(tuple(shape), value, dtype=p.dtype, device=p.device)


class OneHotCategorical(Distribution):
    """A one-hot vector of length K whose hot index is Categorical(probs or logits), as
    ``torch.distributions.OneHotCategorical``; samples have the parameter's dtype."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.independent(constraints.real, 1)}
    support = constraints.one_hot
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args=None):
        _one_of("OneHotCategorical", probs, logits)
        self._categorical = Categorical(probs, logits, validate_args=validate_args)
        super().__init__(self._categorical.batch_shape, self._categorical.param_shape[-1:],
                         validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new._categorical = self._categorical.expand(batch_shape)
        new._batch_shape = Size(tuple(batch_shape))
        return new

    @property
    def probs(self):
        return self._categorical.probs

    @property
    def logits(self):
        return self._categorical.logits

    @property
    def param_shape(self):
        return self._categorical.param_shape

    @property
    def _param(self):
        return self._categorical._param

    @property
    def mean(self):
        return self.probs

    @property
    def mode(self):
        k = self._categorical._num_events
        hot = self.probs.argmax(-1).unsqueeze(-1) == arange(k, device=self.probs.device)
        return hot.to(self.probs.dtype)

    @property
    def variance(self):
        return self.probs * (1 - self.probs)

    def sample(self, sample_shape=()):
        idx = self._categorical.sample(sample_shape)
        k = self._categorical._num_events
        return (idx.unsqueeze(-1) == arange(k, device=idx.device)).to(self.probs.dtype)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return self._categorical.log_prob(value.argmax(-1))

    def entropy(self):
        return self._categorical.entropy()

    def enumerate_support(self, expand=True):
        k = self._categorical._num_events
        values = (arange(k).unsqueeze(-1) == arange(k)).to(self.probs.dtype).to(self.probs.device)
        values = values.reshape((k,) + (1,) * len(self._batch_shape) + (k,))
        return values.expand(k, *self._batch_shape, k) if expand else values

    def __repr__(self):
        return f"OneHotCategorical({self._categorical!r})"
