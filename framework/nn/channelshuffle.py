"""ChannelShuffle: interleave the channels of ``(N, C, *)`` from ``groups`` groups (ShuffleNet)."""

from __future__ import annotations

from . import functional as F
from .module import Module


class ChannelShuffle(Module):
    """Reshape channels to ``(groups, C/groups)``, transpose, flatten back (Zhang et al. 2018)."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, input):
        return F.channel_shuffle(input, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
