"""``framework.utils``, as ``torch.utils``: ``checkpoint`` (activation checkpointing), and ``parallel``
(``parallel_map``: independent calls on the framework's CPU threads).

``framework.utils.data`` is another name for ``framework.data`` (Dataset, DataLoader), so that
``from framework.utils.data import DataLoader`` works as it does with torch.
"""

from __future__ import annotations

import sys

from .. import data
from . import checkpoint, parallel

sys.modules[__name__ + ".data"] = data

__all__ = ["checkpoint", "data", "parallel"]
