"""Loss functions: ``loss = criterion(pred, target)``; ``grad = criterion.backward()``."""

from .base import Loss
from .classification import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, NLLLoss
from .regression import HuberLoss, L1Loss, MSELoss, SmoothL1Loss

__all__ = [
    "Loss", "MSELoss", "L1Loss", "HuberLoss", "SmoothL1Loss", "CrossEntropyLoss", "NLLLoss",
    "BCEWithLogitsLoss", "BCELoss",
]
