"""Loss functions: ``loss = criterion(pred, target)``; ``grad = criterion.backward()``."""

from .base import Loss

__all__ = ["Loss"]
