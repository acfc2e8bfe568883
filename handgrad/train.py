"""Deprecated alias of :mod:`handgrad.training.fit`, kept for one release: import from
``handgrad`` (``hg.fit``) or ``handgrad.training`` instead."""

from .training.fit import *  # noqa: F403
from .training.fit import __all__ as __all__  # noqa: F401
