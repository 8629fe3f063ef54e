"""The multivariate normal distribution, parametrised by a covariance, a precision or a Cholesky factor."""

from __future__ import annotations

import math

from ..linalg import cholesky, solve_triangular
from ..ops import diagonal, inverse, matmul
from ..ops.specfun import broadcast_shapes
from . import constraints
from .distribution import Distribution, lazy_property, standard_normal

__all__ = ["MultivariateNormal"]


def _mT(x):
    return x.transpose(-1, -2)


def _batch_mahalanobis(L, x):
    """|L^-1 x|^2 for each batch: L (..., n, n) lower-triangular, x (..., n); batch shapes broadcast."""
    batch = broadcast_shapes(L.shape[:-2], x.shape[:-1])
    n = L.shape[-1]
    z = solve_triangular(L.expand(*batch, n, n), x.expand(*batch, n).unsqueeze(-1), upper=False)
    return (z.squeeze(-1) ** 2).sum(-1)


class MultivariateNormal(Distribution):
    """N(loc, Sigma) over vectors of the last dimension of ``loc``, as
    ``torch.distributions.MultivariateNormal``. Exactly one of ``covariance_matrix``,
    ``precision_matrix`` or ``scale_tril`` (lower-triangular L with Sigma = L L^T) is given; the others are
    derived lazily. ``rsample`` is loc + L eps."""

    arg_constraints = {"loc": constraints.real_vector, "covariance_matrix": constraints.positive_definite,
                       "precision_matrix": constraints.positive_definite,
                       "scale_tril": constraints.lower_cholesky}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc, covariance_matrix=None, precision_matrix=None, scale_tril=None,
                 validate_args=None):
        if loc.ndim < 1:
            raise ValueError("MultivariateNormal: loc must be at least one-dimensional.")
        given = [(k, v) for k, v in (("covariance_matrix", covariance_matrix),
                                     ("precision_matrix", precision_matrix), ("scale_tril", scale_tril))
                 if v is not None]
        if len(given) != 1:
            raise ValueError("MultivariateNormal: exactly one of covariance_matrix or precision_matrix or "
                             "scale_tril may be specified.")
        name, matrix = given[0]
        if matrix.ndim < 2:
            raise ValueError(f"MultivariateNormal: {name} must be at least two-dimensional, with optional "
                             "leading batch dimensions")
        if matrix.shape[-1] != loc.shape[-1] or matrix.shape[-2] != loc.shape[-1]:
            raise ValueError(f"MultivariateNormal: {name} of shape {tuple(matrix.shape)} does not match "
                             f"loc of shape {tuple(loc.shape)}")
        n = loc.shape[-1]
        batch_shape = broadcast_shapes(matrix.shape[:-2], loc.shape[:-1])
        self.__dict__[name] = matrix.expand(*batch_shape, n, n)
        self._params_given = ("loc", name)
        self.loc = loc.expand(*batch_shape, n)
        super().__init__(batch_shape, (n,), validate_args=validate_args)

    @lazy_property
    def scale_tril(self):
        if "covariance_matrix" in self.__dict__:
            return cholesky(self.covariance_matrix)
        return cholesky(inverse(self.precision_matrix))

    @lazy_property
    def covariance_matrix(self):
        return matmul(self.scale_tril, _mT(self.scale_tril))

    @lazy_property
    def precision_matrix(self):
        if "covariance_matrix" in self.__dict__:
            return inverse(self.covariance_matrix)
        return inverse(matmul(self.scale_tril, _mT(self.scale_tril)))

    @property
    def mean(self):
        return self.loc

    @property
    def mode(self):
        return self.loc

    @property
    def variance(self):
        return (self.scale_tril**2).sum(-1).expand(*self._batch_shape, *self._event_shape)

    def rsample(self, sample_shape=()):
        eps = standard_normal(self._extended_shape(sample_shape), self.loc)
        return self.loc + matmul(self.scale_tril, eps.unsqueeze(-1)).squeeze(-1)

    def _half_log_det(self):
        return diagonal(self.scale_tril, 0, -2, -1).log().sum(-1)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        n = self._event_shape[0]
        m = _batch_mahalanobis(self.scale_tril, value - self.loc)
        return -0.5 * (n * math.log(2 * math.pi) + m) - self._half_log_det()

    def entropy(self):
        n = self._event_shape[0]
        h = 0.5 * n * (1.0 + math.log(2 * math.pi)) + self._half_log_det()
        return h.expand(*self._batch_shape) if len(self._batch_shape) else h
