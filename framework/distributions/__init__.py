"""``fw.distributions``: probability distributions with sampling, reparameterised sampling and
log-densities, shaped like ``torch.distributions``.

Sampling draws from the framework's generator (``fw.manual_seed`` makes it reproducible) and returns
tensors on the parameters' device (NumPy or CuPy)."""

from . import constraints
from .continuous import Beta, Exponential, Laplace, Normal, Uniform
from .discrete import Bernoulli, Categorical, OneHotCategorical
from .distribution import Distribution
from .independent import Independent
from .kl import kl_divergence, register_kl
from .more import (
                   Binomial,
                   Cauchy,
                   Chi2,
                   Dirichlet,
                   Gamma,
                   Geometric,
                   Gumbel,
                   HalfNormal,
                   LogNormal,
                   Poisson,
                   StudentT,
)
from .multivariate_normal import MultivariateNormal

__all__ = [
    "constraints", "Distribution", "Normal", "Uniform", "Exponential", "Laplace", "Beta", "Bernoulli",
    "Categorical", "OneHotCategorical", "MultivariateNormal", "Independent", "kl_divergence", "register_kl",
    "LogNormal", "Gumbel", "Cauchy", "HalfNormal", "StudentT", "Gamma", "Chi2", "Dirichlet", "Poisson",
    "Geometric", "Binomial",
]
