"""Batch transforms in NumPy: normalize, random crop with padding, horizontal flip.

Each transform takes a whole batch (``(N, C, H, W)`` for images) and returns a new array
of the same dtype; random ones draw from their own ``numpy.random.Generator`` (``rng``)
with one vectorised draw per batch. Pass them to ``DataLoader(..., transform=...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from ..random import spawn_rng

__all__ = ["Normalize", "RandomCrop", "RandomHorizontalFlip", "Compose"]


def _float_batch(name: str, x: Any, min_ndim: int = 2) -> NDArray:
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name}: expected a floating-point batch, got dtype {x.dtype}")
    if x.ndim < min_ndim:
        raise ValueError(f"{name}: expected a batch with at least {min_ndim} dimensions, got "
                         f"shape {x.shape}")
    return x


def _images(name: str, x: Any) -> NDArray:
    x = _float_batch(name, x)
    if x.ndim != 4:
        raise ValueError(f"{name}: expected images of shape (N, C, H, W), got {x.shape}")
    return x


class Normalize:
    """``y = (x - mean) / std``, per channel (axis 1) or with scalars.

    Args:
        mean, std: scalars, or sequences of length C applied along axis 1 (the channel of
            an ``(N, C, H, W)`` batch, the feature of an ``(N, F)`` batch).

    Shape: ``(N, C, *)`` in and out; the dtype of ``x`` is kept.
    """

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if self.mean.ndim != 1 or self.std.ndim != 1:
            raise ValueError("Normalize: expected scalars or 1-D sequences for mean and std")
        if np.any(self.std <= 0) or not np.all(np.isfinite(self.std)):
            raise ValueError(f"Normalize: expected std > 0, got {self.std.tolist()}")

    def __call__(self, x: NDArray) -> NDArray:
        x = _float_batch("Normalize", x)
        channels = x.shape[1]
        for name, v in (("mean", self.mean), ("std", self.std)):
            if v.shape[0] not in (1, channels):
                raise ValueError(
                    f"Normalize: {name} has {v.shape[0]} values but the batch has "
                    f"{channels} channels (shape {x.shape})"
                )
        shape = (1, -1) + (1,) * (x.ndim - 2)
        mean = self.mean.astype(x.dtype).reshape(shape)
        inv_std = (1.0 / self.std).astype(x.dtype).reshape(shape)
        y = x - mean
        y *= inv_std
        return y

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class RandomCrop:
    """Pad each image by ``padding`` zeros on every side, then crop ``size`` at random.

    Every image of the batch gets its own offset; the crop is one gather from a window
    view of the padded batch (no per-image loop).

    Args:
        size: output ``(h, w)`` or an int for a square.
        padding: zeros added on each side before cropping (4 for CIFAR-style augmentation).
        rng: generator or seed for the offsets.

    Shape: ``(N, C, H, W)`` -> ``(N, C, h, w)``.
    """

    def __init__(self, size: int | tuple[int, int], padding: int = 0, rng=None):
        size = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
        if len(size) != 2 or any(int(s) <= 0 for s in size):
            raise ValueError(f"RandomCrop: expected a positive size or (h, w), got {size!r}")
        if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or (
            padding < 0
        ):
            raise ValueError(f"RandomCrop: expected a non-negative integer padding, got "
                             f"{padding!r}")
        self.size = (int(size[0]), int(size[1]))
        self.padding = int(padding)
        self.rng = spawn_rng(rng)

    def __call__(self, x: NDArray) -> NDArray:
        x = _images("RandomCrop", x)
        p = self.padding
        h, w = self.size
        if p:
            x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        n, _, hp, wp = x.shape
        if h > hp or w > wp:
            raise ValueError(
                f"RandomCrop: crop size {self.size} is larger than the padded image "
                f"({hp}, {wp})"
            )
        top = self.rng.integers(0, hp - h + 1, size=n)
        left = self.rng.integers(0, wp - w + 1, size=n)
        windows = sliding_window_view(x, (h, w), axis=(2, 3))  # (N, C, hp-h+1, wp-w+1, h, w)
        # advanced indices separated by a slice: the batch axis comes first -> (N, C, h, w)
        return windows[np.arange(n), :, top, left]

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p`` (one draw per image).

    Shape: ``(N, *, W)`` in and out (the last axis is flipped).
    """

    def __init__(self, p: float = 0.5, rng=None):
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: expected p in [0, 1], got {p!r}")
        self.p = float(p)
        self.rng = spawn_rng(rng)

    def __call__(self, x: NDArray) -> NDArray:
        x = _float_batch("RandomHorizontalFlip", x)
        flip = self.rng.random(x.shape[0]) < self.p
        return np.where(flip.reshape((-1,) + (1,) * (x.ndim - 1)), x[..., ::-1], x)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Compose:
    """Apply transforms one after another: ``Compose([RandomCrop(32, 4), Normalize(...)])``."""

    def __init__(self, transforms: Sequence[Callable[[NDArray], NDArray]]):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: expected callables, got {type(t).__name__}")

    def __call__(self, x: NDArray) -> NDArray:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"
