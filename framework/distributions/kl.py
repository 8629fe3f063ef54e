"""KL(p || q) in closed form, dispatched on the pair of distribution types, as
``torch.distributions.kl_divergence`` / ``register_kl``."""

from __future__ import annotations

import math

from ..functional import logsigmoid
from ..linalg import solve_triangular
from ..ops import erf, where, xlogy
from ..ops.specfun import broadcast_shapes, digamma, lgamma
from ..tensor import full
from .continuous import Beta, Exponential, Laplace, Normal, Uniform
from .discrete import Bernoulli, Categorical, OneHotCategorical
from .distribution import Distribution
from .independent import Independent, _sum_rightmost
from .multivariate_normal import MultivariateNormal, _batch_mahalanobis

__all__ = ["register_kl", "kl_divergence"]

_REGISTRY: dict = {}
_CACHE: dict = {}


def register_kl(type_p, type_q):
    """Decorator registering ``fn(p, q)`` as KL(p || q) for p of ``type_p`` and q of ``type_q``
    (subclasses included; the most specific registered pair wins)."""
    if not (isinstance(type_p, type) and issubclass(type_p, Distribution)):
        raise TypeError(f"Expected type_p to be a Distribution subclass but got {type_p}")
    if not (isinstance(type_q, type) and issubclass(type_q, Distribution)):
        raise TypeError(f"Expected type_q to be a Distribution subclass but got {type_q}")

    def decorator(fn):
        _REGISTRY[type_p, type_q] = fn
        _CACHE.clear()
        return fn

    return decorator


def _dispatch(type_p, type_q):
    matches = [(tp, tq) for tp, tq in _REGISTRY if issubclass(type_p, tp) and issubclass(type_q, tq)]
    if not matches:
        return None
    # most specific: nearest in p's method resolution order, then in q's
    return _REGISTRY[min(matches, key=lambda m: (type_p.__mro__.index(m[0]), type_q.__mro__.index(m[1])))]


def kl_divergence(p: Distribution, q: Distribution):
    """KL(p || q) = E_p[log p(x) - log q(x)], over the batch shape."""
    key = (type(p), type(q))
    if key not in _CACHE:
        _CACHE[key] = _dispatch(*key)
    fn = _CACHE[key]
    if fn is None:
        raise NotImplementedError(f"No KL(p || q) is implemented for p type {type(p).__name__} and q type "
                                  f"{type(q).__name__}")
    return fn(p, q)


def _infinite(p, q):
    ref = next(iter(v for v in p.__dict__.values() if hasattr(v, "dtype") and hasattr(v, "device")))
    shape = broadcast_shapes(p.batch_shape, q.batch_shape)
    return full(shape, math.inf, dtype=ref.dtype, device=ref.device)


def _inf_where(cond, value):
    return where(cond, value * 0 + math.inf, value)


def _log_beta(a, b):
    return lgamma(a) + lgamma(b) - lgamma(a + b)


# ------------------------------------------------------------------ same family
@register_kl(Normal, Normal)
def _kl_normal_normal(p, q):
    var_ratio = (p.scale / q.scale) ** 2
    t1 = ((p.loc - q.loc) / q.scale) ** 2
    return 0.5 * (var_ratio + t1 - 1 - var_ratio.log())


@register_kl(Bernoulli, Bernoulli)
def _kl_bernoulli_bernoulli(p, q):
    pp, qp = p.probs, q.probs
    t1 = pp * (logsigmoid(p.logits) - logsigmoid(q.logits))
    t1 = where(pp == 0, t1 * 0, _inf_where(qp == 0, t1))
    t2 = (1 - pp) * (logsigmoid(-p.logits) - logsigmoid(-q.logits))
    t2 = where(pp == 1, t2 * 0, _inf_where(qp == 1, t2))
    return t1 + t2


@register_kl(Categorical, Categorical)
def _kl_categorical_categorical(p, q):
    t = p.probs * (p.logits - q.logits)
    t = _inf_where(q.probs == 0, t)
    t = where(p.probs == 0, t * 0, t)
    return t.sum(-1)


@register_kl(OneHotCategorical, OneHotCategorical)
def _kl_onehot_onehot(p, q):
    return _kl_categorical_categorical(p._categorical, q._categorical)


@register_kl(Uniform, Uniform)
def _kl_uniform_uniform(p, q):
    kl = ((q.high - q.low) / (p.high - p.low)).log()
    return _inf_where((q.low > p.low) | (q.high < p.high), kl)


@register_kl(Exponential, Exponential)
def _kl_exponential_exponential(p, q):
    ratio = q.rate / p.rate
    return ratio - 1 - ratio.log()


@register_kl(Laplace, Laplace)
def _kl_laplace_laplace(p, q):
    scale_ratio = p.scale / q.scale
    diff = (p.loc - q.loc).abs()
    return -scale_ratio.log() + diff / q.scale + scale_ratio * (-diff / p.scale).exp() - 1


@register_kl(Beta, Beta)
def _kl_beta_beta(p, q):
    a1, b1, a2, b2 = p.concentration1, p.concentration0, q.concentration1, q.concentration0
    return (_log_beta(a2, b2) - _log_beta(a1, b1) + (a1 - a2) * digamma(a1) + (b1 - b2) * digamma(b1)
            + (a2 - a1 + b2 - b1) * digamma(a1 + b1))


@register_kl(MultivariateNormal, MultivariateNormal)
def _kl_mvn_mvn(p, q):
    if p.event_shape != q.event_shape:
        raise ValueError("KL-divergence between two Multivariate Normals with different event shapes "
                         "cannot be computed")
    n = p.event_shape[0]
    batch = broadcast_shapes(p.batch_shape, q.batch_shape)
    half_log_det = q._half_log_det() - p._half_log_det()
    # tr(Sigma_q^-1 Sigma_p) = |Lq^-1 Lp|_F^2
    lq, lp = q.scale_tril.expand(*batch, n, n), p.scale_tril.expand(*batch, n, n)
    trace = (solve_triangular(lq, lp, upper=False) ** 2).sum((-2, -1))
    m = _batch_mahalanobis(q.scale_tril, q.loc - p.loc)
    return half_log_det + 0.5 * (trace + m - n)


@register_kl(Independent, Independent)
def _kl_independent_independent(p, q):
    if p.reinterpreted_batch_ndims != q.reinterpreted_batch_ndims:
        raise NotImplementedError("KL between Independent distributions with different "
                                  "reinterpreted_batch_ndims")
    return _sum_rightmost(kl_divergence(p.base_dist, q.base_dist), p.reinterpreted_batch_ndims)


# ------------------------------------------------------------------ across families
def _normal_cross_entropy(mean, var, q):
    """E_p[-log q(x)] for q = Normal, from p's mean and variance."""
    return 0.5 * math.log(2 * math.pi) + q.scale.log() + (var + (mean - q.loc) ** 2) / (2 * q.scale**2)


@register_kl(Uniform, Normal)
@register_kl(Exponential, Normal)
@register_kl(Laplace, Normal)
@register_kl(Beta, Normal)
def _kl_to_normal(p, q):
    """KL(p || Normal) = -H(p) + the Normal's cross-entropy, which needs only p's mean and variance."""
    return -p.entropy() + _normal_cross_entropy(p.mean, p.variance, q)


@register_kl(Beta, Exponential)
def _kl_beta_exponential(p, q):
    return -p.entropy() - q.rate.log() + q.rate * p.mean


@register_kl(Beta, Uniform)
def _kl_beta_uniform(p, q):
    kl = -p.entropy() + (q.high - q.low).log()
    return _inf_where((q.low > 0) | (q.high < 1), kl)


@register_kl(Uniform, Exponential)
def _kl_uniform_exponential(p, q):
    kl = -p.entropy() - q.rate.log() + q.rate * p.mean
    return _inf_where(p.low < 0, kl)


@register_kl(Uniform, Beta)
def _kl_uniform_beta(p, q):
    lo, hi = p.low, p.high
    width = hi - lo
    # E_p[log x] and E_p[log(1 - x)] over U[lo, hi]: (x log x - x) integrated between the ends
    e_log_x = (xlogy(hi, hi) - hi - xlogy(lo, lo) + lo) / width
    e_log_1mx = (xlogy(1 - lo, 1 - lo) - (1 - lo) - xlogy(1 - hi, 1 - hi) + (1 - hi)) / width
    a, b = q.concentration1, q.concentration0
    kl = -width.log() - (a - 1) * e_log_x - (b - 1) * e_log_1mx + _log_beta(a, b)
    return _inf_where((lo < 0) | (hi > 1), kl)


@register_kl(Normal, Laplace)
def _kl_normal_laplace(p, q):
    d = p.loc - q.loc
    # E|x - m| for x ~ N(mu, s^2), d = mu - m: s sqrt(2/pi) exp(-d^2 / 2 s^2) + d erf(d / (s sqrt 2))
    e_abs = (p.scale * math.sqrt(2 / math.pi) * (-(d**2) / (2 * p.scale**2)).exp()
             + d * erf(d / (p.scale * math.sqrt(2))))
    return -p.entropy() + (2 * q.scale).log() + e_abs / q.scale


for _p, _qs in ((Normal, (Uniform, Exponential, Beta)), (Exponential, (Uniform, Beta)),
                (Laplace, (Uniform, Exponential, Beta))):
    for _q in _qs:
        register_kl(_p, _q)(_infinite)


# ------------------------------------------------------------ the distributions of more.py

from .more import (  # noqa: E402  (below the registry: more.py does not use it)
    Binomial,
    Dirichlet,
    Gamma,
    Geometric,
    Gumbel,
    HalfNormal,
    LogNormal,
    Poisson,
)


@register_kl(Gamma, Gamma)
def _kl_gamma_gamma(p, q):
    a1, b1, a2, b2 = p.concentration, p.rate, q.concentration, q.rate
    return (a2 * (b1 / b2).log() + lgamma(a2) - lgamma(a1) + (a1 - a2) * digamma(a1)
            + (b2 - b1) * (a1 / b1))


@register_kl(Dirichlet, Dirichlet)
def _kl_dirichlet_dirichlet(p, q):
    a, b = p.concentration, q.concentration
    a0 = a.sum(-1)
    return (lgamma(a0) - lgamma(b.sum(-1)) - (lgamma(a) - lgamma(b)).sum(-1)
            + ((a - b) * (digamma(a) - digamma(a0).unsqueeze(-1))).sum(-1))


@register_kl(Poisson, Poisson)
def _kl_poisson_poisson(p, q):
    return xlogy(p.rate, p.rate) - xlogy(p.rate, q.rate) - (p.rate - q.rate)


@register_kl(LogNormal, LogNormal)
@register_kl(HalfNormal, HalfNormal)
def _kl_through_base(p, q):
    """The same invertible map of both: KL is that of the base distributions."""
    return kl_divergence(p.base_dist, q.base_dist)


@register_kl(Geometric, Geometric)
def _kl_geometric_geometric(p, q):
    return -p.entropy() - (-q.probs).log1p() / p.probs - q.logits


@register_kl(Binomial, Binomial)
def _kl_binomial_binomial(p, q):
    # (PyTorch: only for equal total counts; infinite where p's count exceeds q's)
    if bool((p.total_count < q.total_count).any()):
        raise NotImplementedError("KL between Binomials where q.total_count > p.total_count is not "
                                  "implemented")
    n = p.total_count
    kl = n * (p.probs * (p.logits - q.logits) + (-p.probs).log1p() - (-q.probs).log1p())
    return _inf_where(p.total_count > q.total_count, kl)


@register_kl(Gumbel, Gumbel)
def _kl_gumbel_gumbel(p, q):
    ct1 = p.scale / q.scale
    ct2 = q.loc / q.scale
    ct3 = p.loc / q.scale
    t1 = -ct1.log() - ct2 + ct3
    t2 = ct1 * 0.57721566490153286060
    t3 = (ct2 + lgamma(1 + ct1) - ct3).exp()
    return t1 + t2 + t3 - (1 + 0.57721566490153286060)
