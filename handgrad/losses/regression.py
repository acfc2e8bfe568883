"""Regression losses: MSELoss, L1Loss, HuberLoss, SmoothL1Loss.

Each compares a prediction with a target of the same shape, element by element, through a
function of the difference ``d = pred - target``; forward caches ``d`` and backward applies
that function's derivative. The helpers here (prediction/target checks and the upstream
gradient scale) are shared with the classification losses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .base import Loss


def check_pred(loss: Loss, pred: Any, finite: bool = True) -> NDArray:
    """``pred`` as a non-empty, floating-point ndarray, checked to be finite if ``finite``
    (a caller passing False checks that itself)."""
    if not isinstance(pred, np.ndarray):
        pred = np.asarray(pred)
    if pred.dtype.kind != "f":
        raise TypeError(f"{type(loss).__name__}: expected a floating-point prediction, got "
                        f"dtype {pred.dtype}")
    if pred.size == 0:
        raise ValueError(
            f"{type(loss).__name__}: expected a non-empty batch of predictions, got shape "
            f"{pred.shape}"
        )
    if finite:
        loss._check_finite_pred(pred)
    return pred


def check_same_shape_target(loss: Loss, pred: NDArray, target: Any) -> NDArray:
    """``target`` as an array of ``pred``'s shape and dtype (never upcasting ``pred``)."""
    if not isinstance(target, np.ndarray):
        target = np.asarray(target)
    name = type(loss).__name__
    if not (np.issubdtype(target.dtype, np.floating) or np.issubdtype(target.dtype, np.integer)
            or target.dtype == np.bool_):
        raise TypeError(f"{name}: expected a numeric target, got dtype {target.dtype}")
    if target.shape != pred.shape:
        raise ValueError(
            f"{name}: expected target of shape {pred.shape} (the prediction's), "
            f"got {target.shape}"
        )
    return target.astype(pred.dtype, copy=False)


def upstream_scale(loss: Loss, grad_output: Any, shape: tuple[int, ...], count: float,
                   dtype: np.dtype) -> Any:
    """The factor each per-element gradient is multiplied by.

    ``mean``: ``grad_output / count`` (a Python float, so float32 stays float32);
    ``sum``: ``grad_output``; ``none``: ``grad_output`` as an array of the loss's ``shape``
    (a scalar is broadcast).
    """
    name = type(loss).__name__
    if loss.reduction == "none":
        g = np.asarray(grad_output)
        if g.ndim == 0:
            return float(g)
        if g.shape != tuple(shape):
            raise ValueError(
                f"{name}: expected grad_output of shape {tuple(shape)} (the unreduced "
                f"loss's), got {g.shape}"
            )
        return g.astype(dtype, copy=False)
    if np.ndim(grad_output) != 0:
        raise ValueError(
            f"{name}: expected a scalar grad_output for reduction='{loss.reduction}', got "
            f"shape {np.shape(grad_output)}"
        )
    g = float(grad_output)
    return g / count if loss.reduction == "mean" else g


class _DifferenceLoss(Loss):
    """Shared forward/backward for losses that are a function of ``pred - target``."""

    def __init__(self, reduction: str = "mean"):
        super().__init__(reduction)
        self._cache = None

    def forward(self, pred: NDArray, target: NDArray) -> Any:
        pred = check_pred(self, pred)
        diff = pred - check_same_shape_target(self, pred, target)
        self._cache = diff if self.caching else None
        return self._reduce(self._loss(diff))

    def backward(self, grad_output: Any = 1.0) -> NDArray:
        diff = self._saved(self._cache)
        scale = upstream_scale(self, grad_output, diff.shape, diff.size, diff.dtype)
        grad = self._grad(diff)
        grad *= scale
        return grad


class MSELoss(_DifferenceLoss):
    """Mean squared error: ``l = (pred - target)^2``; ``dl/dpred = 2 (pred - target)``.

    Args:
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'``.

    Shape: pred ``(*)``, target ``(*)`` (the same shape); output a float, or ``(*)`` for
    ``'none'``. Forward caches ``pred - target``.
    """

    def _loss(self, diff):
        return diff * diff

    def _grad(self, diff):
        return 2 * diff


class L1Loss(_DifferenceLoss):
    """Mean absolute error: ``l = |pred - target|``; ``dl/dpred = sign(pred - target)``
    (0 where they are equal, as in PyTorch).

    Args:
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'``.

    Shape: pred ``(*)``, target ``(*)``; output a float, or ``(*)`` for ``'none'``.
    Forward caches ``pred - target``.
    """

    def _loss(self, diff):
        return np.abs(diff)

    def _grad(self, diff):
        return np.sign(diff)


class HuberLoss(_DifferenceLoss):
    """Huber loss: quadratic near zero, linear beyond ``delta``.

    ``l = 0.5 d^2`` if ``|d| < delta`` else ``delta (|d| - 0.5 delta)``, with
    ``d = pred - target``; ``dl/dpred = clip(d, -delta, delta)``.

    Args:
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'``.
        delta: where the loss turns linear (> 0; default 1.0).

    Shape: pred ``(*)``, target ``(*)``; output a float, or ``(*)`` for ``'none'``.
    Forward caches ``pred - target``.
    """

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction)
        if isinstance(delta, bool) or not isinstance(delta, (int, float, np.floating)) or not (
            delta > 0
        ):
            raise ValueError(f"HuberLoss: expected delta > 0, got {delta!r}")
        self.delta = float(delta)

    def _loss(self, diff):
        a = np.abs(diff)
        return np.where(a < self.delta, 0.5 * diff * diff, self.delta * (a - 0.5 * self.delta))

    def _grad(self, diff):
        return np.clip(diff, -self.delta, self.delta)

    def extra_repr(self) -> str:
        return ", ".join(s for s in (super().extra_repr(), f"delta={self.delta}") if s)


class SmoothL1Loss(_DifferenceLoss):
    """Smooth L1 loss: ``HuberLoss / beta``.

    ``l = 0.5 d^2 / beta`` if ``|d| < beta`` else ``|d| - 0.5 beta``; ``beta = 0`` is
    ``L1Loss``. ``dl/dpred = clip(d / beta, -1, 1)``.

    Args:
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'``.
        beta: where the loss turns linear (>= 0; default 1.0).

    Shape: pred ``(*)``, target ``(*)``; output a float, or ``(*)`` for ``'none'``.
    Forward caches ``pred - target``.
    """

    def __init__(self, reduction: str = "mean", beta: float = 1.0):
        super().__init__(reduction)
        if isinstance(beta, bool) or not isinstance(beta, (int, float, np.floating)) or not (
            beta >= 0
        ):
            raise ValueError(f"SmoothL1Loss: expected beta >= 0, got {beta!r}")
        self.beta = float(beta)

    def _loss(self, diff):
        a = np.abs(diff)
        if self.beta == 0:
            return a
        return np.where(a < self.beta, (0.5 / self.beta) * diff * diff, a - 0.5 * self.beta)

    def _grad(self, diff):
        if self.beta == 0:
            return np.sign(diff)
        return np.clip(diff * (1.0 / self.beta), -1.0, 1.0)

    def extra_repr(self) -> str:
        return ", ".join(s for s in (super().extra_repr(), f"beta={self.beta}") if s)
