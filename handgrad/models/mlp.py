"""The multilayer perceptron of DESIGN.md's ``mlp`` workload."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import DTypeLike

from .._validation import check_positive_int
from ..layers import Linear, ReLU, Sequential
from ..random import resolve_rng

__all__ = ["mlp"]


def mlp(in_features: int = 784, hidden: Sequence[int] = (256, 256), num_classes: int = 10,
        dtype: DTypeLike = np.float32, rng=None) -> Sequential:
    """``Linear -> ReLU`` for each hidden width, then ``Linear(hidden[-1], num_classes)``.

    The defaults give the ``mlp`` reference workload: Linear 784-256-256-10 with ReLU.

    Args:
        in_features: input size.
        hidden: widths of the hidden layers (may be empty: a linear classifier).
        num_classes: output size (logits).
        dtype: parameter dtype (float32 by default).
        rng: generator or integer seed for the initial weights.

    Shape: input ``(N, in_features)``, output ``(N, num_classes)``.

    State dict: a ``Sequential`` as PyTorch's ``nn.Sequential(Linear, ReLU, ..., Linear)``:
    ``0.weight``, ``0.bias``, ``2.weight``, ... (ReLUs take the odd indices).
    """
    check_positive_int("mlp", "in_features", in_features)
    check_positive_int("mlp", "num_classes", num_classes)
    rng = resolve_rng(rng)
    layers = []
    width = in_features
    for h in hidden:
        check_positive_int("mlp", "hidden width", h)
        layers += [Linear(width, h, dtype=dtype, rng=rng), ReLU()]
        width = h
    layers.append(Linear(width, num_classes, dtype=dtype, rng=rng))
    return Sequential(*layers)
