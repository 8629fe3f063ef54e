"""``framework.nn.functional``: the same functions as ``framework.functional`` (torch's layout)."""

from framework.functional import *  # noqa
from framework.functional import __all__  # noqa: F401
