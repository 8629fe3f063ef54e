"""Upsample: a Module over ``F.interpolate``."""

from __future__ import annotations

from . import functional as F
from .module import Module


class Upsample(Module):
    """Resize ``(N, C, H, W)`` inputs to ``size`` or by ``scale_factor`` with ``mode`` in
    ``'nearest'``, ``'bilinear'`` (``align_corners`` as in PyTorch)."""

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        self.name = type(self).__name__
        self.size = size
        self.scale_factor = float(scale_factor) if isinstance(scale_factor, (int, float)) else scale_factor
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input):
        kwargs = {}
        if self.recompute_scale_factor is not None:
            kwargs["recompute_scale_factor"] = self.recompute_scale_factor
        return F.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners, **kwargs)

    def extra_repr(self) -> str:
        if self.scale_factor is not None:
            info = f"scale_factor={self.scale_factor!r}"
        else:
            info = f"size={self.size!r}"
        return info + f", mode={self.mode!r}"
