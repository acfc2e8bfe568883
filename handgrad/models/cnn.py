"""Small convolutional classifiers: LeNet-5 (28x28) and a CNN for the 8x8 digits."""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from .._validation import check_positive_int
from ..layers import BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from ..random import resolve_rng

__all__ = ["lenet5", "digits_cnn"]


def lenet5(num_classes: int = 10, in_channels: int = 1, dtype: DTypeLike = np.float32,
           rng=None) -> Sequential:
    """LeNet-5 for 28x28 images (the ``lenet`` workload of DESIGN.md), with ReLU and max-pool.

    ``conv5(6, pad 2) -> maxpool2 -> ReLU -> conv5(16) -> maxpool2 -> ReLU -> Flatten ->
    Linear(400, 120) -> ReLU -> Linear(120, 84) -> ReLU -> Linear(84, num_classes)``.

    Each ReLU comes after its max-pool, as the activation came after subsampling in the
    original LeNet-5: the same function and the same gradients as ReLU before the pool
    (ReLU is non-decreasing, so it commutes with a maximum; a window whose maximum is not
    positive passes no gradient either way), on a quarter of the values.

    Shape: input ``(N, in_channels, 28, 28)``, output ``(N, num_classes)`` (logits).

    State dict (a ``Sequential``, as the same ``nn.Sequential`` in PyTorch): ``0.weight``,
    ``0.bias`` (conv1), ``3.*`` (conv2), ``7.*``, ``9.*``, ``11.*`` (the Linear layers).
    """
    check_positive_int("lenet5", "num_classes", num_classes)
    check_positive_int("lenet5", "in_channels", in_channels)
    rng = resolve_rng(rng)
    return Sequential(
        Conv2d(in_channels, 6, 5, padding=2, dtype=dtype, rng=rng),  # (N, 6, 28, 28)
        MaxPool2d(2),  # (N, 6, 14, 14)
        ReLU(),
        Conv2d(6, 16, 5, dtype=dtype, rng=rng),  # (N, 16, 10, 10)
        MaxPool2d(2),  # (N, 16, 5, 5)
        ReLU(),
        Flatten(),  # (N, 400)
        Linear(16 * 5 * 5, 120, dtype=dtype, rng=rng),
        ReLU(),
        Linear(120, 84, dtype=dtype, rng=rng),
        ReLU(),
        Linear(84, num_classes, dtype=dtype, rng=rng),
    )


def digits_cnn(num_classes: int = 10, in_channels: int = 1, dtype: DTypeLike = np.float32,
               rng=None) -> Sequential:
    """A small CNN for 8x8 images (scikit-learn's digits), with BatchNorm.

    ``conv3(16, pad 1) -> BN -> ReLU -> conv3(32, pad 1) -> BN -> maxpool2 -> ReLU ->
    Flatten -> Linear(512, 64) -> ReLU -> Linear(64, num_classes)``; the convolutions have
    no bias (BatchNorm's bias replaces it).

    Shape: input ``(N, in_channels, 8, 8)``, output ``(N, num_classes)`` (logits).

    State dict (a ``Sequential``): ``0.weight`` (conv1), ``1.weight``, ``1.bias``,
    ``1.running_mean``, ``1.running_var``, ``1.num_batches_tracked`` (bn1), ``3.weight``
    (conv2), ``4.*`` (bn2), ``8.*`` and ``10.*`` (the Linear layers).
    """
    check_positive_int("digits_cnn", "num_classes", num_classes)
    check_positive_int("digits_cnn", "in_channels", in_channels)
    rng = resolve_rng(rng)
    return Sequential(
        Conv2d(in_channels, 16, 3, padding=1, bias=False, dtype=dtype, rng=rng),  # (N, 16, 8, 8)
        BatchNorm2d(16, dtype=dtype),
        ReLU(),
        Conv2d(16, 32, 3, padding=1, bias=False, dtype=dtype, rng=rng),  # (N, 32, 8, 8)
        BatchNorm2d(32, dtype=dtype),
        MaxPool2d(2),  # (N, 32, 4, 4)
        ReLU(),  # after the pool: the same function as before it (see lenet5), 4x cheaper
        Flatten(),  # (N, 512)
        Linear(32 * 4 * 4, 64, dtype=dtype, rng=rng),
        ReLU(),
        Linear(64, num_classes, dtype=dtype, rng=rng),
    )
