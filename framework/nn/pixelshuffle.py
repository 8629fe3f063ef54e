"""PixelShuffle: ``(N, C·r², H, W) -> (N, C, H·r, W·r)`` (Shi et al. 2016)."""

from __future__ import annotations

from . import functional as F
from .module import Module


class PixelShuffle(Module):
    def __init__(self, upscale_factor: int):
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, input):
        return F.pixel_shuffle(input, self.upscale_factor)

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"
