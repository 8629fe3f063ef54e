"""Dropout: zero elements with probability ``p`` in training, scale the rest by 1/(1-p)."""

from __future__ import annotations

from . import functional as F
from .module import Module


class Dropout(Module):
    """Identity in eval mode; in training, each element is zeroed with probability ``p`` and the
    survivors are scaled by ``1/(1-p)`` (inverted dropout, as PyTorch)."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input):
        return F.dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout2d(Dropout):
    """Zero whole channels: input ``(N, C, H, W)``, each (n, c) plane dropped with probability ``p``."""

    def forward(self, input):
        return F.dropout2d(input, self.p, self.training, self.inplace)


class AlphaDropout(Dropout):
    """Dropout that keeps SELU activations at zero mean and unit variance (Klambauer et al. 2017):
    dropped elements take SELU's saturation value, then an affine map restores the statistics."""

    def forward(self, input):
        return F.alpha_dropout(input, self.p, self.training, self.inplace)


class Dropout1d(Dropout):
    """Zero whole channels of ``(N, C, L)``."""

    def forward(self, input):
        return F.dropout1d(input, self.p, self.training, self.inplace)


class Dropout3d(Dropout):
    """Zero whole channels of ``(N, C, D, H, W)``."""

    def forward(self, input):
        return F.dropout3d(input, self.p, self.training, self.inplace)


class FeatureAlphaDropout(Dropout):
    """AlphaDropout of whole channels (each (n, c) map kept or set to SELU's saturation together)."""

    def forward(self, input):
        return F.feature_alpha_dropout(input, self.p, self.training, self.inplace)
