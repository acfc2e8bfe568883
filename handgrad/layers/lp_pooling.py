"""Power-average pooling: LPPool1d, LPPool2d, LPPool3d, on the average pools.

With ``K`` the kernel's size (kh*kw) and ``avg`` the layer's average pooling (no padding)::

    s = avg(x ** p)                 y = (K * s) ** (1/p)        (the p-norm of each window)
    dL/ds = dL/dy * K/p * (K*s) ** (1/p - 1)   (0 where s = 0, as PyTorch)
    dL/dx = avg.backward(dL/ds) * p * x ** (p - 1)

As PyTorch, a window that ``ceil_mode`` lets overhang the input is averaged over its real
elements and then scaled by the full ``K``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._validation import as_float_input
from .pooling import AvgPool1d, AvgPool2d
from .pooling3d import AvgPool3d

__all__ = ["LPPool1d", "LPPool2d", "LPPool3d"]


class _LPPool:
    """The power-average forward/backward around an average pool's (a mixin)."""

    def _init_lp(self, norm_type: float) -> None:
        if isinstance(norm_type, bool) or not isinstance(norm_type, (int, float)) or \
                not math.isfinite(norm_type) or norm_type == 0:
            raise ValueError(f"{type(self).__name__}: expected a finite non-zero norm_type, "
                             f"got {norm_type!r} (use MaxPool for the infinity norm)")
        self.norm_type = norm_type
        self._lp_cache = None

    def _window_size(self) -> int:
        k = self.kernel_size
        return int(np.prod(k)) if isinstance(k, tuple) else int(k)

    def forward(self, x: NDArray) -> NDArray:
        x = as_float_input(self, x)
        p, K = self.norm_type, self._window_size()
        s = super().forward(x ** p)
        y = (K * s) ** (1.0 / p)
        self._lp_cache = (x, s, y) if self.caching else None
        return y

    def backward(self, grad_out: NDArray) -> NDArray:
        x, s, y = self._saved(self._lp_cache)
        p = self.norm_type
        grad_out = np.asarray(grad_out)
        with np.errstate(divide="ignore", invalid="ignore"):
            # dy/ds = K/p * (K s)^(1/p - 1) = y / (p s)
            grad_s = np.where(s != 0, grad_out * y / (p * s), 0.0).astype(y.dtype)
        return super().backward(grad_s) * (p * x ** (p - 1))

    def _on_dtype_change(self, dtype: np.dtype) -> None:
        self._lp_cache = None

    def extra_repr(self) -> str:
        return (f"norm_type={self.norm_type}, kernel_size={self._given[0]}, "
                f"stride={self._given[1]}, ceil_mode={self.ceil_mode}")


class LPPool2d(_LPPool, AvgPool2d):
    """Power-average pooling, as ``torch.nn.LPPool2d``: ``y = (sum_window x^p)^(1/p)``.

    Args:
        norm_type: ``p`` (finite, non-zero).
        kernel_size, stride (default ``kernel_size``), ceil_mode: as ``AvgPool2d``
            (no padding).

    Shape:
        - input: ``(N, C, H, W)`` or ``(C, H, W)``; output: ``(N, C, OH, OW)``

    Forward caches the input, the window means of ``x^p`` and the output.
    """

    def __init__(self, norm_type: float, kernel_size: Any, stride: Any = None,
                 ceil_mode: bool = False):
        super().__init__(kernel_size, stride, 0, ceil_mode)
        self._given = (kernel_size, stride)
        self._init_lp(norm_type)


class LPPool1d(_LPPool, AvgPool1d):
    """Power-average pooling of (N, C, L), as ``torch.nn.LPPool1d`` (``LPPool2d`` on the
    height-1 view).

    Shape:
        - input: ``(N, C, L)`` or ``(C, L)``; output: ``(N, C, L_out)``
    """

    def __init__(self, norm_type: float, kernel_size: Any, stride: Any = None,
                 ceil_mode: bool = False):
        super().__init__(kernel_size, stride, 0, ceil_mode)
        self._given = (kernel_size, stride)
        self._init_lp(norm_type)


class LPPool3d(_LPPool, AvgPool3d):
    """Power-average pooling of volumes, as ``torch.nn.LPPool3d``.

    Shape:
        - input: ``(N, C, D, H, W)`` or ``(C, D, H, W)``; output: ``(N, C, OD, OH, OW)``
    """

    def __init__(self, norm_type: float, kernel_size: Any, stride: Any = None,
                 ceil_mode: bool = False):
        super().__init__(kernel_size, stride, 0, ceil_mode)
        self._given = (kernel_size, stride)
        self._init_lp(norm_type)
