"""Channel-wise and self-normalising dropout: Dropout1d/2d/3d, AlphaDropout,
FeatureAlphaDropout.

Every layer here draws a keep-mask from its own generator in training mode (identity in
eval mode) and backward multiplies ``grad_out`` by the same scaled mask:

* ``Dropout{1,2,3}d``: one draw per (sample, channel), broadcast over the positions:
  ``y = x * m / (1 - p)``, ``grad_x = grad_out * m / (1 - p)``.
* ``AlphaDropout`` (per element) and ``FeatureAlphaDropout`` (per channel), for SELU
  networks: a dropped value is set to SELU's negative saturation ``-alpha'`` and the result
  is rescaled so that zero mean and unit variance are kept (Klambauer et al., 2017):
  ``y = a * (x * m + alpha' * (m - 1 + p))`` with ``alpha' = 1.7580993408473766`` and
  ``a = 1 / sqrt((alpha'^2 p + 1) (1 - p))``, ``grad_x = grad_out * a * m``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from .._validation import as_float_input, check_grad, check_probability
from ..layer import Layer
from ..random import spawn_rng

__all__ = ["Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"]

_SELU_ALPHA = 1.7580993408473766  # SELU's lambda * alpha: its negative saturation value


class _MaskDropout(Layer):
    """Shared draw, cache and backward of the dropout layers in this module."""

    _ranks: tuple[int, ...] = ()  # accepted input ranks; () for any rank
    _shape_text = "(*)"
    _per_channel = False
    _alpha = False

    def __init__(self, p: float = 0.5, inplace: bool = False, rng=None):
        super().__init__()
        self.p = check_probability(type(self).__name__, "p", p)
        self.inplace = bool(inplace)  # accepted; the output is always a new array
        self.rng = spawn_rng(rng)
        self._cache = None

    def _mask_shape(self, x: NDArray) -> tuple[int, ...]:
        if not self._per_channel:
            return x.shape
        if x.ndim == self._ranks[0]:  # unbatched (C, *): one draw per channel
            return (x.shape[0],) + (1,) * (x.ndim - 1)
        return x.shape[:2] + (1,) * (x.ndim - 2)

    def forward(self, x: NDArray) -> NDArray:
        x = as_float_input(self, x)
        if self._ranks and x.ndim not in self._ranks:
            raise ValueError(f"{self.describe()}: expected input of shape {self._shape_text}, "
                             f"got {x.shape}")
        if not self.training or self.p == 0.0:
            self._cache = (None, 1.0, x.shape) if self.caching else None
            return x
        keep = self.rng.random(self._mask_shape(x),
                               dtype=np.float32 if x.dtype == np.float32 else np.float64)
        mask = (keep >= self.p).astype(x.dtype)
        if self._alpha:
            a = 1.0 / math.sqrt((_SELU_ALPHA ** 2 * self.p + 1) * (1 - self.p)) \
                if self.p < 1 else 0.0
            shift = (mask - 1 + self.p) * x.dtype.type(_SELU_ALPHA * a)
            scale = mask * x.dtype.type(a)
            y = x * scale + shift
        else:
            scale = mask * x.dtype.type(1.0 / (1.0 - self.p) if self.p < 1 else 0.0)
            y = x * scale
        self._cache = (scale, None, x.shape) if self.caching else None
        return y

    def backward(self, grad_out: NDArray) -> NDArray:
        scale, _, shape = self._saved(self._cache)
        grad_out = check_grad(self, grad_out, shape)
        return grad_out if scale is None else grad_out * scale

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout1d(_MaskDropout):
    """Zero whole channels of sequences with probability ``p``, as ``torch.nn.Dropout1d``.

    Args:
        p: probability of zeroing a channel (default 0.5).
        inplace: accepted for compatibility (the output is a new array).
        rng: generator or seed for the masks.

    Shape: input ``(N, C, L)`` or unbatched ``(C, L)``; output: same shape. Caches the
    scaled ``(N, C, 1)`` mask.
    """

    _ranks = (2, 3)
    _shape_text = "(N, C, L) or (C, L)"
    _per_channel = True


class Dropout2d(_MaskDropout):
    """Zero whole channels of images with probability ``p``, as ``torch.nn.Dropout2d``.

    Args:
        p: probability of zeroing a channel (default 0.5).
        inplace: accepted for compatibility (the output is a new array).
        rng: generator or seed for the masks.

    Shape: input ``(N, C, H, W)`` or unbatched ``(C, H, W)``; output: same shape. Caches
    the scaled ``(N, C, 1, 1)`` mask.
    """

    _ranks = (3, 4)
    _shape_text = "(N, C, H, W) or (C, H, W)"
    _per_channel = True


class Dropout3d(_MaskDropout):
    """Zero whole channels of volumes with probability ``p``, as ``torch.nn.Dropout3d``.

    Args:
        p: probability of zeroing a channel (default 0.5).
        inplace: accepted for compatibility (the output is a new array).
        rng: generator or seed for the masks.

    Shape: input ``(N, C, D, H, W)`` or unbatched ``(C, D, H, W)``; output: same shape.
    Caches the scaled ``(N, C, 1, 1, 1)`` mask.
    """

    _ranks = (4, 5)
    _shape_text = "(N, C, D, H, W) or (C, D, H, W)"
    _per_channel = True


class AlphaDropout(_MaskDropout):
    """Dropout for SELU networks that keeps zero mean and unit variance, as
    ``torch.nn.AlphaDropout`` (formula in the module docstring).

    Args:
        p: probability of dropping an element (default 0.5).
        inplace: accepted for compatibility (the output is a new array).
        rng: generator or seed for the masks.

    Shape: input ``(*)``, output: same shape. Caches the scaled mask.
    """

    _alpha = True


class FeatureAlphaDropout(_MaskDropout):
    """Alpha dropout of whole channels, as ``torch.nn.FeatureAlphaDropout``.

    Args:
        p: probability of dropping a channel (default 0.5).
        inplace: accepted for compatibility (the output is a new array).
        rng: generator or seed for the masks.

    Shape: input ``(N, C, *)``; output: same shape. Caches the scaled ``(N, C, 1, ...)`` mask.
    """

    _alpha = True
    _per_channel = True
    _ranks = (2, 3, 4, 5, 6)
    _shape_text = "(N, C, *)"

    def _mask_shape(self, x: NDArray) -> tuple[int, ...]:
        return x.shape[:2] + (1,) * (x.ndim - 2)
