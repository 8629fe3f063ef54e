"""More distributions, shaped like ``torch.distributions``: LogNormal, Gumbel, Cauchy, HalfNormal (with
``rsample``), StudentT, Gamma, Chi2, Dirichlet, Poisson, Geometric, Binomial.

Differs from PyTorch: Gamma and Chi2 have no ``cdf`` (it needs the regularised incomplete gamma
function); StudentT, Gamma, Chi2 and Dirichlet have no ``rsample`` (PyTorch differentiates
Gamma draws implicitly); their ``sample``, and Poisson's and Binomial's, draw on the host from the
framework's generator and move the result to the parameters' device, as ``Beta`` does."""

from __future__ import annotations

import math

import numpy as np

from ..autograd import no_grad
from ..functional import binary_cross_entropy_with_logits
from ..ops import atan, cos, erf, log1p, sin, where, xlogy
from ..ops.specfun import digamma, erfinv, lgamma
from ..tensor import Tensor, _gen
from . import constraints
from .continuous import Normal, _LocScale
from .discrete import _BinaryProbs
from .distribution import (
    Distribution,
    _back,
    _host,
    broadcast_all,
    standard_uniform,
)

__all__ = ["LogNormal", "Gumbel", "Cauchy", "HalfNormal", "StudentT", "Gamma", "Chi2", "Dirichlet", "Poisson",
           "Geometric", "Binomial"]

_EULER = 0.57721566490153286060


def _open_uniform(shape, like: Tensor) -> Tensor:
    """U(0, 1) without its ends (the smallest normal float to 1 - eps), as PyTorch's Gumbel draws."""
    fi = np.finfo(like.data.dtype)
    return standard_uniform(shape, like).clamp(float(fi.tiny), 1 - float(fi.eps))


class LogNormal(Distribution):
    """exp of N(loc, scale^2), as ``torch.distributions.LogNormal``."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, loc, scale, validate_args=None):
        self.loc, self.scale = broadcast_all(loc, scale)
        self.base_dist = Normal(self.loc, self.scale, validate_args=validate_args)
        super().__init__(self.loc.shape, validate_args=validate_args)

    @property
    def mean(self):
        return (self.loc + self.scale**2 / 2).exp()

    @property
    def mode(self):
        return (self.loc - self.scale**2).exp()

    @property
    def variance(self):
        s2 = self.scale**2
        return s2.expm1() * (2 * self.loc + s2).exp()

    def rsample(self, sample_shape=()):
        return self.base_dist.rsample(sample_shape).exp()

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        y = value.log()
        return self.base_dist.log_prob(y) - y

    def cdf(self, value):
        return self.base_dist.cdf(value.log())

    def icdf(self, value):
        return self.base_dist.icdf(value).exp()

    def entropy(self):
        return self.base_dist.entropy() + self.loc


class Gumbel(_LocScale):
    """Gumbel(loc, scale) (the maximum-value distribution), as ``torch.distributions.Gumbel``."""

    @property
    def mean(self):
        return self.loc + self.scale * _EULER

    @property
    def stddev(self):
        return (math.pi / math.sqrt(6)) * self.scale

    @property
    def variance(self):
        return self.stddev**2

    def rsample(self, sample_shape=()):
        u = _open_uniform(self._extended_shape(sample_shape), self.loc)
        return self.loc - self.scale * (-u.log()).log()

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale
        return -(z + (-z).exp()) - self.scale.log()

    def cdf(self, value):
        return (-(-(value - self.loc) / self.scale).exp()).exp()

    def icdf(self, value):
        return self.loc - self.scale * (-value.log()).log()

    def entropy(self):
        return self.scale.log() + (1 + _EULER)


class Cauchy(_LocScale):
    """Cauchy(loc, scale), as ``torch.distributions.Cauchy`` (no mean: nan; infinite variance)."""

    @property
    def mean(self):
        return self.loc * math.nan

    @property
    def variance(self):
        return self.loc * 0 + math.inf

    def rsample(self, sample_shape=()):
        u = _open_uniform(self._extended_shape(sample_shape), self.loc)
        t = math.pi * (u - 0.5)
        return self.loc + self.scale * sin(t) / cos(t)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale
        return -math.log(math.pi) - self.scale.log() - log1p(z**2)

    def cdf(self, value):
        return atan((value - self.loc) / self.scale) / math.pi + 0.5

    def icdf(self, value):
        t = math.pi * (value - 0.5)
        return sin(t) / cos(t) * self.scale + self.loc

    def entropy(self):
        return math.log(4 * math.pi) + self.scale.log()


class HalfNormal(Distribution):
    """|N(0, scale^2)|, as ``torch.distributions.HalfNormal``."""

    arg_constraints = {"scale": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, scale, validate_args=None):
        (self.scale,) = broadcast_all(scale)
        self.base_dist = Normal(self.scale * 0, self.scale, validate_args=validate_args)
        super().__init__(self.scale.shape, validate_args=validate_args)

    @property
    def mean(self):
        return self.scale * math.sqrt(2 / math.pi)

    @property
    def mode(self):
        return self.scale * 0

    @property
    def variance(self):
        return self.scale**2 * (1 - 2 / math.pi)

    def rsample(self, sample_shape=()):
        return self.base_dist.rsample(sample_shape).abs()

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        lp = self.base_dist.log_prob(value) + math.log(2)
        return where(value >= 0, lp, -math.inf)

    def cdf(self, value):
        return erf(value / (self.scale * math.sqrt(2)))

    def icdf(self, value):
        return self.scale * erfinv(value) * math.sqrt(2)

    def entropy(self):
        return self.base_dist.entropy() - math.log(2)


class StudentT(Distribution):
    """Student's t with ``df`` degrees of freedom, location and scale, as ``torch.distributions.StudentT``."""

    arg_constraints = {"df": constraints.positive, "loc": constraints.real, "scale": constraints.positive}
    support = constraints.real

    def __init__(self, df, loc=0.0, scale=1.0, validate_args=None):
        self.df, self.loc, self.scale = broadcast_all(df, loc, scale)
        super().__init__(self.df.shape, validate_args=validate_args)

    @property
    def mean(self):
        return where(self.df > 1, self.loc, math.nan)

    @property
    def mode(self):
        return self.loc

    @property
    def variance(self):
        df = self.df
        finite = self.scale**2 * df / where(df > 2, df - 2, 1.0)
        return where(df > 2, finite, where(df > 1, math.inf, math.nan))

    def sample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        t = _gen(None).standard_t(_host(self.df, shape))
        return self.loc.detach() + self.scale.detach() * _back(t, self.df)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        y = (value - self.loc) / self.scale
        z = (self.scale.log() + 0.5 * self.df.log() + 0.5 * math.log(math.pi)
             + lgamma(0.5 * self.df) - lgamma(0.5 * (self.df + 1)))
        return -0.5 * (self.df + 1) * log1p(y**2 / self.df) - z

    def entropy(self):
        df = self.df
        lbeta = lgamma(0.5 * df) + math.lgamma(0.5) - lgamma(0.5 * (df + 1))
        return (self.scale.log() + 0.5 * (df + 1) * (digamma(0.5 * (df + 1)) - digamma(0.5 * df))
                + 0.5 * df.log() + lbeta)


class Gamma(Distribution):
    """Gamma(concentration, rate), as ``torch.distributions.Gamma``."""

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.nonnegative

    def __init__(self, concentration, rate, validate_args=None):
        self.concentration, self.rate = broadcast_all(concentration, rate)
        super().__init__(self.concentration.shape, validate_args=validate_args)

    @property
    def mean(self):
        return self.concentration / self.rate

    @property
    def mode(self):
        return ((self.concentration - 1) / self.rate).clamp(min=0)

    @property
    def variance(self):
        return self.concentration / self.rate**2

    def sample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        x = _gen(None).gamma(_host(self.concentration, shape), 1.0 / _host(self.rate, shape))
        tiny = float(np.finfo(self.concentration.data.dtype).tiny)
        return _back(np.maximum(x, tiny), self.concentration)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        a, b = self.concentration, self.rate
        return xlogy(a, b) + xlogy(a - 1, value) - b * value - lgamma(a)

    def entropy(self):
        a = self.concentration
        return a - self.rate.log() + lgamma(a) + (1.0 - a) * digamma(a)


class Chi2(Gamma):
    """Chi-squared with ``df`` degrees of freedom (Gamma(df / 2, 1 / 2)), as ``torch.distributions.Chi2``."""

    arg_constraints = {"df": constraints.positive}

    def __init__(self, df, validate_args=None):
        (df,) = broadcast_all(df)
        super().__init__(0.5 * df, 0.5 * df / df, validate_args=validate_args)

    @property
    def df(self):
        return self.concentration * 2


class Dirichlet(Distribution):
    """Dirichlet(concentration) over the simplex of the last dimension, as
    ``torch.distributions.Dirichlet``."""

    arg_constraints = {"concentration": constraints.independent(constraints.positive, 1)}
    support = constraints.simplex

    def __init__(self, concentration, validate_args=None):
        if concentration.ndim < 1:
            raise ValueError("`concentration` parameter must be at least one-dimensional.")
        (self.concentration,) = broadcast_all(concentration)
        shape = tuple(self.concentration.shape)
        super().__init__(shape[:-1], shape[-1:], validate_args=validate_args)

    @property
    def mean(self):
        return self.concentration / self.concentration.sum(-1, keepdim=True)

    @property
    def variance(self):
        a = self.concentration
        a0 = a.sum(-1, keepdim=True)
        return a * (a0 - a) / (a0**2 * (a0 + 1))

    @property
    def mode(self):
        a = (self.concentration - 1).clamp(min=0.0)
        return a / a.sum(-1, keepdim=True)

    def sample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        g = _gen(None).gamma(_host(self.concentration, shape))
        tiny = float(np.finfo(self.concentration.data.dtype).tiny)
        g = np.maximum(g, tiny)
        return _back(g / g.sum(-1, keepdims=True), self.concentration)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        a = self.concentration
        return xlogy(a - 1.0, value).sum(-1) + lgamma(a.sum(-1)) - lgamma(a).sum(-1)

    def entropy(self):
        a = self.concentration
        k = a.shape[-1]
        a0 = a.sum(-1)
        return (lgamma(a).sum(-1) - lgamma(a0) - (k - a0) * digamma(a0)
                - ((a - 1.0) * digamma(a)).sum(-1))


class Poisson(Distribution):
    """Poisson(rate), as ``torch.distributions.Poisson``; samples are floats of the rate's dtype."""

    arg_constraints = {"rate": constraints.nonnegative}
    support = constraints.nonnegative_integer

    def __init__(self, rate, validate_args=None):
        (self.rate,) = broadcast_all(rate)
        super().__init__(self.rate.shape, validate_args=validate_args)

    @property
    def mean(self):
        return self.rate

    @property
    def mode(self):
        return self.rate.floor()

    @property
    def variance(self):
        return self.rate

    def sample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        return _back(_gen(None).poisson(_host(self.rate, shape)), self.rate)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        rate, value = broadcast_all(self.rate, value)
        return xlogy(value, rate) - rate - lgamma(value + 1)


class Geometric(_BinaryProbs):
    """The number of failures before the first success of Bernoulli(``probs``) trials, as
    ``torch.distributions.Geometric`` (from ``probs`` or ``logits``)."""

    arg_constraints = {"probs": constraints.interval(0.0, 1.0), "logits": constraints.real}
    support = constraints.nonnegative_integer

    def __init__(self, probs=None, logits=None, validate_args=None):
        self._take("Geometric", probs, logits)
        super().__init__(self._param.shape, validate_args=validate_args)

    @property
    def mean(self):
        return 1.0 / self.probs - 1.0

    @property
    def mode(self):
        return self.probs * 0

    @property
    def variance(self):
        return (1.0 / self.probs - 1.0) / self.probs

    def sample(self, sample_shape=()):
        with no_grad():
            p = self.probs.expand(*self._extended_shape(sample_shape))
            u = _open_uniform(p.shape, p)
            return (u.log() / (-p).log1p()).floor()

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        value, probs = broadcast_all(value, self.probs)
        probs = where((probs == 1) & (value == 0), 0.0, probs)  # 0 * log(0) is 0 here
        return value * (-probs).log1p() + self.probs.clamp(min=float(np.finfo(probs.data.dtype).tiny)).log()

    def entropy(self):
        return binary_cross_entropy_with_logits(self.logits, self.probs, reduction="none") / self.probs


class Binomial(_BinaryProbs):
    """The number of successes in ``total_count`` Bernoulli(``probs``) trials, as
    ``torch.distributions.Binomial`` (from ``probs`` or ``logits``)."""

    arg_constraints = {"total_count": constraints.nonnegative_integer, "probs": constraints.unit_interval,
                       "logits": constraints.real}

    def __init__(self, total_count=1, probs=None, logits=None, validate_args=None):
        (self.total_count,) = self._take("Binomial", probs, logits, total_count)
        super().__init__(self._param.shape, validate_args=validate_args)

    @constraints.dependent_property
    def support(self):
        return constraints.integer_interval(0, self.total_count)

    @property
    def mean(self):
        return self.total_count * self.probs

    @property
    def mode(self):
        return ((self.total_count + 1) * self.probs).floor().clamp(max=self.total_count)

    @property
    def variance(self):
        return self.total_count * self.probs * (1 - self.probs)

    def sample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        n = _host(self.total_count, shape).astype(np.int64)
        with no_grad():
            p = _host(self.probs, shape)
        return _back(_gen(None).binomial(n, p), self.probs)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        n, k, logits = self.total_count, value, self.logits
        log_comb = lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)
        # k * logits - n * log(1 + e^logits), written without overflow for large |logits|
        norm = n * logits.clamp(min=0) + n * log1p((-logits.abs()).exp()) - k * logits
        return log_comb - norm
