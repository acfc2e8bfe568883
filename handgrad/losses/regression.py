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


def check_pred(loss: Loss, pred: Any, finite: bool = True, allow_empty: bool = True,
               what: str = "prediction") -> NDArray:
    """``pred`` as a floating-point ndarray, checked to be finite if ``finite`` (a caller
    passing False checks that itself); an empty batch passes (PyTorch's losses accept N = 0:
    NaN for ``mean``, 0 for ``sum``) unless ``allow_empty`` is False. ``what`` names it in
    messages."""
    pred = as_array(loss, pred, what)
    if pred.dtype.kind != "f":
        raise TypeError(f"{type(loss).__name__}: expected a floating-point {what}, got "
                        f"dtype {pred.dtype}")
    if pred.size == 0 and not allow_empty:
        raise ValueError(
            f"{type(loss).__name__}: expected a non-empty batch of predictions, got shape "
            f"{pred.shape}"
        )
    if finite:
        loss._check_finite_pred(pred)
    return pred


def as_array(loss: Loss, value: Any, what: str) -> NDArray:
    """``value`` as an ndarray; junk (None, strings, ragged lists, dicts) raises a TypeError
    naming the loss instead of a NumPy error or an object array."""
    if isinstance(value, np.ndarray):
        array = value
    else:
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as error:  # ragged nested lists
            raise TypeError(f"{type(loss).__name__}: expected {what} as a numeric array, got "
                            f"{type(value).__name__} ({error})") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{type(loss).__name__}: expected {what} as a numeric array, got "
                        f"{type(value).__name__} of dtype {array.dtype}")
    return array


def check_same_shape_target(loss: Loss, pred: NDArray, target: Any) -> NDArray:
    """``target`` as an array of ``pred``'s shape and dtype (never upcasting ``pred``).

    Integer or bool targets are refused where PyTorch refuses them: the loss class lists the
    refused dtype kinds in ``refused_target_kinds`` (``"b"`` bool, ``"i"`` integer)."""
    target = as_array(loss, target, "target")
    name = type(loss).__name__
    if not (np.issubdtype(target.dtype, np.floating) or np.issubdtype(target.dtype, np.integer)
            or target.dtype == np.bool_):
        raise TypeError(f"{name}: expected a numeric target, got dtype {target.dtype}")
    refused = getattr(loss, "refused_target_kinds", "")
    kind = "i" if target.dtype.kind == "u" else target.dtype.kind
    if kind in refused:
        expected = "a floating-point" if "i" in refused else "a numeric, non-bool"
        raise TypeError(f"{name}: expected {expected} target, got dtype {target.dtype}; "
                        f"use target.astype(np.{pred.dtype})")
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
    if grad_output is None or isinstance(grad_output, (str, bytes)):
        raise TypeError(f"{name}: expected grad_output as a number or an array, got "
                        f"{grad_output!r}")
    if loss.reduction == "none":
        g = as_array(loss, grad_output, "grad_output")
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
    g = float(as_array(loss, grad_output, "grad_output"))
    # an empty batch: the gradient is empty whatever the scale (the mean loss is NaN)
    return g / count if loss.reduction == "mean" and count else g


class _DifferenceLoss(Loss):
    """Shared forward/backward for losses that are a function of ``pred - target``."""

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean"):
        super().__init__(reduction, size_average=size_average, reduce=reduce)
        self._cache = None

    def forward(self, pred: NDArray, target: NDArray) -> Any:
        pred = check_pred(self, pred)
        diff = pred - check_same_shape_target(self, pred, target)
        per_element, cache = self._loss(diff)
        self._cache = cache if self.caching else None
        return self._reduce(per_element)

    def backward(self, grad_output: Any = 1.0) -> NDArray:
        cache = self._saved(self._cache)
        scale = upstream_scale(self, grad_output, cache.shape, cache.size, cache.dtype)
        return self._grad(cache, scale)

    # Subclasses: _loss(diff) -> (per-element loss, what backward needs);
    # _grad(cached, scale) -> a new array, the gradient times scale (a float or an array).


class MSELoss(_DifferenceLoss):
    """Mean squared error: ``l = (pred - target)^2``; ``dl/dpred = 2 (pred - target)``.

    Args:
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'``.

    Shape: pred ``(*)``, target ``(*)`` (the same shape); output a float, or ``(*)`` for
    ``'none'``. Forward caches ``pred - target``.
    """

    def _loss(self, diff):
        return diff * diff, diff

    def _grad(self, diff, scale):
        if isinstance(scale, np.ndarray):
            grad = np.multiply(diff, 2.0)
            grad *= scale
            return grad
        return np.multiply(diff, 2.0 * scale)  # one pass; doubling is exact


class L1Loss(_DifferenceLoss):
    """Mean absolute error: ``l = |pred - target|``; ``dl/dpred = sign(pred - target)``
    (0 where they are equal, as in PyTorch).

    Args:
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'``.

    Shape: pred ``(*)``, target ``(*)``; output a float, or ``(*)`` for ``'none'``.
    Forward caches ``pred - target``.
    """

    refused_target_kinds = "b"  # as PyTorch: bool targets fail there

    def _loss(self, diff):
        return np.abs(diff), diff

    def _grad(self, diff, scale):
        grad = np.sign(diff)
        grad *= scale
        return grad


class HuberLoss(_DifferenceLoss):
    """Huber loss: quadratic near zero, linear beyond ``delta``.

    ``l = 0.5 d^2`` if ``|d| < delta`` else ``delta (|d| - 0.5 delta)``, with
    ``d = pred - target``; ``dl/dpred = clip(d, -delta, delta)``. Computed as
    ``l = c (d - 0.5 c)`` with ``c = clip(d, -delta, delta)`` (both branches at once; no
    masked selection, which NumPy runs ~20x slower than arithmetic).

    Args:
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'``.
        delta: where the loss turns linear (> 0; default 1.0).

    Shape: pred ``(*)``, target ``(*)``; output a float, or ``(*)`` for ``'none'``.
    Forward caches ``clip(pred - target, -delta, delta)``.
    """

    refused_target_kinds = "bi"  # as PyTorch: integer and bool targets fail there

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction=reduction)
        if isinstance(delta, bool) or not isinstance(delta, (int, float, np.floating)) or not (
            delta > 0
        ):
            raise ValueError(f"HuberLoss: expected delta > 0, got {delta!r}")
        self.delta = float(delta)

    def _loss(self, diff):
        return _huber(diff, self.delta)

    def _grad(self, clipped, scale):
        return np.multiply(clipped, scale)

    def extra_repr(self) -> str:
        return ", ".join(s for s in (super().extra_repr(), f"delta={self.delta}") if s)


class SmoothL1Loss(_DifferenceLoss):
    """Smooth L1 loss: ``HuberLoss / beta``.

    ``l = 0.5 d^2 / beta`` if ``|d| < beta`` else ``|d| - 0.5 beta``; ``beta = 0`` is
    ``L1Loss``. ``dl/dpred = clip(d, -beta, beta) / beta``.

    Args:
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'``.
        beta: where the loss turns linear (>= 0; default 1.0).

    Shape: pred ``(*)``, target ``(*)``; output a float, or ``(*)`` for ``'none'``.
    Forward caches ``clip(pred - target, -beta, beta)`` (``pred - target`` for beta 0).
    """

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean",
                 beta: float = 1.0):
        super().__init__(size_average, reduce, reduction)
        if isinstance(beta, bool) or not isinstance(beta, (int, float, np.floating)) or not (
            beta >= 0
        ):
            raise ValueError(f"SmoothL1Loss: expected beta >= 0, got {beta!r}")
        self.beta = float(beta)

    def _loss(self, diff):
        if self.beta == 0:
            return np.abs(diff), diff
        per_element, clipped = _huber(diff, self.beta)
        per_element /= self.beta
        return per_element, clipped

    def _grad(self, cached, scale):
        if self.beta == 0:
            grad = np.sign(cached)
            grad *= scale
            return grad
        if isinstance(scale, np.ndarray):
            grad = np.multiply(cached, 1.0 / self.beta)
            grad *= scale
            return grad
        return np.multiply(cached, scale / self.beta)

    def extra_repr(self) -> str:
        return ", ".join(s for s in (super().extra_repr(), f"beta={self.beta}") if s)


def _huber(diff: NDArray, delta: float) -> tuple[NDArray, NDArray]:
    """Huber's per-element loss ``c (d - 0.5 c)`` and ``c = clip(d, -delta, delta)``: that is
    ``0.5 d^2`` inside (``d - 0.5 d`` is exact) and ``delta (|d| - 0.5 delta)`` outside."""
    clipped = np.clip(diff, -delta, delta)
    per_element = np.multiply(clipped, -0.5)
    per_element += diff
    per_element *= clipped
    return per_element, clipped
