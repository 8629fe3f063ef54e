"""``framework.utils``, as ``torch.utils``: ``checkpoint`` (activation checkpointing).

``framework.utils.data`` is another name for ``framework.data`` (Dataset, DataLoader), so that
``from framework.utils.data import DataLoader`` works as it does with torch.
"""

from __future__ import annotations

import sys

from .. import data
from . import checkpoint

sys.modules[__name__ + ".data"] = data

__all__ = ["checkpoint", "data"]
