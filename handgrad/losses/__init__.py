"""Loss functions: ``loss = criterion(pred, target)``; ``grad = criterion.backward()``.

Losses with several differentiable inputs (``MarginRankingLoss``, ``CosineEmbeddingLoss``,
``TripletMarginLoss``, ``GaussianNLLLoss``'s variance) return the gradient of the first from
``backward`` and keep all of them, in argument order, in ``criterion.grad_inputs``.
"""

from .base import Loss
from .classification import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, NLLLoss
from .ctc import CTCLoss
from .margin import (
    HingeEmbeddingLoss,
    MarginRankingLoss,
    MultiLabelSoftMarginLoss,
    MultiMarginLoss,
    SoftMarginLoss,
)
from .probabilistic import GaussianNLLLoss, KLDivLoss, PoissonNLLLoss
from .regression import HuberLoss, L1Loss, MSELoss, SmoothL1Loss
from .similarity import CosineEmbeddingLoss, TripletMarginLoss

__all__ = [
    "Loss", "MSELoss", "L1Loss", "HuberLoss", "SmoothL1Loss", "CrossEntropyLoss", "NLLLoss",
    "BCEWithLogitsLoss", "BCELoss", "KLDivLoss", "PoissonNLLLoss", "GaussianNLLLoss",
    "MarginRankingLoss", "HingeEmbeddingLoss", "SoftMarginLoss", "MultiLabelSoftMarginLoss",
    "MultiMarginLoss", "CosineEmbeddingLoss", "TripletMarginLoss", "CTCLoss",
]
