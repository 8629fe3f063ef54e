"""``fw.special``: PyTorch's ``torch.special`` names for the special functions the framework has, all
differentiable (``gammaln`` is ``fw.lgamma``, ``expit`` is ``fw.sigmoid``, ...), plus the few that are
compositions of them (``erfc``, ``ndtr``, ``entr``, ``multigammaln``, ``log1p`` ...)."""

from __future__ import annotations

import math

from .ops import basic, compose, extra, reduce, specfun
from .tensor import Tensor

__all__ = ["erf", "erfc", "erfinv", "expit", "logit", "gammaln", "digamma", "psi", "polygamma",
           "multigammaln", "xlogy", "entr", "sinc", "ndtr", "ndtri", "logsumexp", "softmax", "log_softmax",
           "log1p", "expm1", "exp2", "round"]

erf = extra.erf
erfinv = specfun.erfinv
expit = basic.sigmoid
logit = compose.logit
gammaln = specfun.lgamma
digamma = psi = specfun.digamma
polygamma = specfun.polygamma
xlogy = compose.xlogy
sinc = compose.sinc
logsumexp = reduce.logsumexp
log1p, expm1, exp2 = extra.log1p, extra.expm1, extra.exp2


def erfc(input: Tensor) -> Tensor:
    """1 - erf(x), as ``torch.special.erfc``."""
    return 1 - erf(input)


def ndtr(input: Tensor) -> Tensor:
    """The standard normal CDF, as ``torch.special.ndtr``."""
    return 0.5 * (1 + erf(input * (1 / math.sqrt(2))))


def ndtri(input: Tensor) -> Tensor:
    """The standard normal quantile (the inverse of ``ndtr``), as ``torch.special.ndtri``."""
    return math.sqrt(2) * erfinv(2 * input - 1)


def entr(input: Tensor) -> Tensor:
    """-x log x element-wise (0 at 0, -inf below 0), as ``torch.special.entr``."""
    out = -xlogy(input, input)
    return basic.where(input < 0, Tensor(input.data.dtype.type(-math.inf)), out)


def multigammaln(input: Tensor, p: int) -> Tensor:
    """The log of the multivariate gamma function of dimension ``p``, as ``torch.special.multigammaln``."""
    if p < 1:
        raise ValueError(f"multigammaln: p must be at least 1, got {p}")
    if bool((input.detach() <= (p - 1) / 2).any()):
        raise ValueError(f"multigammaln: all elements must be greater than (p-1)/2 = {(p - 1) / 2}")
    out = gammaln(input)
    for j in range(1, p):
        out = out + gammaln(input - j / 2)
    return out + p * (p - 1) / 4 * math.log(math.pi)


def softmax(input: Tensor, dim: int, dtype=None) -> Tensor:
    return reduce.softmax(input if dtype is None else input.to(dtype), dim)


def log_softmax(input: Tensor, dim: int, dtype=None) -> Tensor:
    return reduce.log_softmax(input if dtype is None else input.to(dtype), dim)


round = basic.round  # noqa: A001 - torch.special's name
