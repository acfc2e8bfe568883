"""Margin losses: MarginRankingLoss, HingeEmbeddingLoss, SoftMarginLoss,
MultiLabelSoftMarginLoss, MultiMarginLoss.

Targets are labels (+1/-1, 0/1 or class indices) and get no gradient. MarginRankingLoss
compares two inputs and differentiates both: ``backward`` returns the gradient of the first
and ``criterion.grad_inputs`` holds ``(grad_x1, grad_x2)`` (the convention of every loss
with several differentiable inputs). At a hinge's kink the gradient is PyTorch's (stated in
each docstring). Empty batches work as in PyTorch (``'mean'`` gives NaN).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..layers.activation import sigmoid
from ..layers.activation_smooth import softplus
from .base import Loss
from .classification import _weight_buffer
from .probabilistic import _check_number, scale_for
from .regression import as_array, check_pred, check_same_shape_target


def check_second_input(loss: Loss, x: NDArray, other: Any, what: str) -> NDArray:
    """``other`` as a floating-point array of ``x``'s shape and dtype."""
    other = check_pred(loss, other, allow_empty=True, what=what)
    if other.shape != x.shape:
        raise ValueError(f"{type(loss).__name__}: expected {what} of shape {x.shape} (the first "
                         f"input's), got {other.shape}")
    if other.dtype != x.dtype:
        raise TypeError(f"{type(loss).__name__}: expected {what} of dtype {x.dtype} (the first "
                        f"input's), got {other.dtype}")
    return other


class MarginRankingLoss(Loss):
    """Ranks two inputs: ``l = max(0, -y (x1 - x2) + margin)`` with ``y`` = 1 (x1 should
    rank higher) or -1.

    ``dl/dx1 = -y`` and ``dl/dx2 = y`` where ``-y (x1 - x2) + margin >= 0`` (PyTorch's
    choice at the kink), else 0. ``criterion(x1, x2, y)``; ``backward()`` returns the
    gradient with respect to ``x1``; ``criterion.grad_inputs = (grad_x1, grad_x2)``.

    Args:
        margin: the margin (default 0).
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'``.

    Shape: x1 ``(*)``, x2 and y the same shape; output a float, or ``(*)`` for ``'none'``.
    Forward caches ``-y`` where the hinge is active, else 0.
    """

    refused_target_kinds = "b"  # as PyTorch: bool targets fail there

    def __init__(self, margin: float = 0.0, size_average: bool | None = None,
                 reduce: bool | None = None,
                 reduction: str = "mean"):
        super().__init__(reduction, size_average=size_average, reduce=reduce)
        self.margin = _check_number("MarginRankingLoss", "margin", margin)
        self._cache = None
        self.grad_inputs = None

    def forward(self, x1: NDArray, x2: NDArray, target: NDArray) -> Any:
        x1 = check_pred(self, x1, allow_empty=True, what="input x1")
        x2 = check_second_input(self, x1, x2, "input x2")
        y = check_same_shape_target(self, x1, target)
        z = -y * (x1 - x2) + self.margin
        self._cache = np.where(z >= 0, -y, 0).astype(x1.dtype) if self.caching else None
        return self._reduce(np.maximum(z, 0))

    def backward(self, grad_output: Any = 1.0) -> NDArray:
        slope = self._saved(self._cache)
        grad_x1 = slope * scale_for(self, grad_output, slope.shape, slope.dtype)
        self.grad_inputs = (grad_x1, np.negative(grad_x1))
        return grad_x1

    def extra_repr(self) -> str:
        return ", ".join(s for s in (f"margin={self.margin}", super().extra_repr()) if s)


class HingeEmbeddingLoss(Loss):
    """``l = x`` where ``y = 1``, ``max(0, margin - x)`` where ``y = -1`` (as PyTorch, a
    label that is neither gets both terms).

    ``dl/dx = [y != -1] - [y != 1] [margin - x >= 0]``.

    Args:
        margin: the margin for the ``y = -1`` examples (default 1).
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'``.

    Shape: input ``(*)``, target ``(*)`` (+1/-1); output a float, or ``(*)`` for ``'none'``.
    Forward caches ``dl/dx``.
    """

    def __init__(self, margin: float = 1.0, size_average: bool | None = None,
                 reduce: bool | None = None,
                 reduction: str = "mean"):
        super().__init__(reduction, size_average=size_average, reduce=reduce)
        self.margin = _check_number("HingeEmbeddingLoss", "margin", margin)
        self._cache = None

    def forward(self, pred: NDArray, target: NDArray) -> Any:
        x = check_pred(self, pred, allow_empty=True)
        y = check_same_shape_target(self, x, target)
        hinge = self.margin - x
        per = np.where(y != 1, np.maximum(hinge, 0), 0) + np.where(y != -1, x, 0)
        grad = (y != -1).astype(x.dtype) - ((y != 1) & (hinge >= 0))
        self._cache = grad if self.caching else None
        return self._reduce(per.astype(x.dtype, copy=False))

    def backward(self, grad_output: Any = 1.0) -> NDArray:
        grad = self._saved(self._cache)
        return grad * scale_for(self, grad_output, grad.shape, grad.dtype)

    def extra_repr(self) -> str:
        return ", ".join(s for s in (f"margin={self.margin}", super().extra_repr()) if s)


class SoftMarginLoss(Loss):
    """Logistic loss of a +1/-1 target: ``l = log(1 + exp(-y x))``;
    ``dl/dx = -y sigmoid(-y x)``.

    Args:
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'``.

    Shape: input ``(*)``, target ``(*)``; output a float, or ``(*)`` for ``'none'``.
    Forward caches ``dl/dx``.
    """

    refused_target_kinds = "b"  # as PyTorch: bool targets fail there

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean"):
        super().__init__(reduction, size_average=size_average, reduce=reduce)
        self._cache = None

    def forward(self, pred: NDArray, target: NDArray) -> Any:
        x = check_pred(self, pred, allow_empty=True)
        y = check_same_shape_target(self, x, target)
        z = -y * x
        self._cache = -y * sigmoid(z) if self.caching else None
        return self._reduce(softplus(z))

    def backward(self, grad_output: Any = 1.0) -> NDArray:
        grad = self._saved(self._cache)
        return grad * scale_for(self, grad_output, grad.shape, grad.dtype)


class MultiLabelSoftMarginLoss(Loss):
    """One-versus-all logistic loss over C labels, averaged over the labels:
    ``l = (1/C) sum_c w_c [softplus(x_c) - y_c x_c]``
    (``= -(1/C) sum_c w_c [y_c log sigmoid(x_c) + (1 - y_c) log sigmoid(-x_c)]``);
    ``dl/dx_c = w_c (sigmoid(x_c) - y_c) / C``.

    Args:
        weight: per-label weights ``(C,)`` (a buffer, broadcast against the input).
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'``.

    Shape: input ``(N, C)`` or ``(C,)`` (generally ``(*, C)``), target the same (0/1);
    output a float, or ``(N,)`` (``(*)``) for ``'none'``. Forward caches ``dl/dx``.
    """

    refused_target_kinds = "b"  # as PyTorch: bool targets fail there

    def __init__(self, weight: Any = None, size_average: bool | None = None,
                 reduce: bool | None = None,
                 reduction: str = "mean"):
        super().__init__(reduction, size_average=size_average, reduce=reduce)
        self.register_buffer("weight", _weight_buffer(self, "weight", weight))
        self._cache = None

    def forward(self, pred: NDArray, target: NDArray) -> Any:
        x = check_pred(self, pred, allow_empty=True)
        if x.ndim == 0:
            raise ValueError("MultiLabelSoftMarginLoss: expected input of shape (N, C) or "
                             "(C,), got a 0-dim input")
        y = check_same_shape_target(self, x, target)
        c = x.shape[-1]
        per = softplus(x) - y * x
        grad = sigmoid(x) - y
        if self.weight is not None:
            w = self.weight.astype(x.dtype, copy=False)
            try:
                per, grad = per * w, grad * w
            except ValueError:
                raise ValueError(f"MultiLabelSoftMarginLoss: weight of shape {w.shape} does not "
                                 f"broadcast to the input's shape {x.shape}") from None
        self._cache = grad / max(c, 1) if self.caching else None
        return self._reduce(per.sum(axis=-1) / max(c, 1))

    def backward(self, grad_output: Any = 1.0) -> NDArray:
        grad = self._saved(self._cache)
        scale = scale_for(self, grad_output, grad.shape[:-1], grad.dtype)
        return grad * (scale[..., None] if isinstance(scale, np.ndarray) else scale)


class MultiMarginLoss(Loss):
    """Multi-class hinge loss: for each sample with class ``y``,
    ``l = (1/C) sum_{i != y} w_y max(0, margin - x_y + x_i)^p``.

    ``dl/dx_i = w_y p z_i^(p-1) / C`` for ``i != y`` with ``z_i = margin - x_y + x_i > 0``
    (0 at ``z_i = 0``, as PyTorch), and ``dl/dx_y = -sum_{i != y} dl/dx_i``.

    Args:
        p: 1 or 2 (default 1).
        margin: the margin (default 1).
        weight: per-class weights ``(C,)`` (a buffer), indexed by the target class.
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'``.

    Shape: input ``(N, C)`` or ``(C,)``; target integer ``(N,)`` or ``()``; output a float,
    or ``(N,)`` (``()``) for ``'none'``. Forward caches ``dl/dx``.
    """

    def __init__(self, p: int = 1, margin: float = 1.0, weight: Any = None,
                 size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean"):
        super().__init__(reduction, size_average=size_average, reduce=reduce)
        if isinstance(p, bool) or p not in (1, 2):
            raise ValueError(f"MultiMarginLoss: expected p 1 or 2, got {p!r}")
        self.p = int(p)
        self.margin = _check_number("MultiMarginLoss", "margin", margin)
        w = _weight_buffer(self, "weight", weight)
        if w is not None and w.ndim != 1:
            raise ValueError(f"MultiMarginLoss: expected a 1-d weight of shape (C,), got "
                             f"shape {w.shape}")
        self.register_buffer("weight", w)
        self._cache = None

    def forward(self, pred: NDArray, target: NDArray) -> Any:
        x = check_pred(self, pred, allow_empty=True)
        target = as_array(self, target, "target")
        unbatched = x.ndim == 1
        if x.ndim not in (1, 2) or (unbatched and x.shape[0] == 0):
            raise ValueError(f"MultiMarginLoss: expected input of shape (N, C) or (C,) with "
                             f"C > 0, got {x.shape}")
        if target.dtype.kind not in "iu":
            raise TypeError(f"MultiMarginLoss: expected integer class indices, got a target of "
                            f"dtype {target.dtype}")
        rows = x[None] if unbatched else x  # (N, C)
        n, c = rows.shape
        if target.shape != (() if unbatched else (n,)):
            raise ValueError(f"MultiMarginLoss: expected target of shape "
                             f"{() if unbatched else (n,)}, got {target.shape}")
        t = target.reshape(n)
        if np.any((t < 0) | (t >= c)):
            raise ValueError(f"MultiMarginLoss: expected class indices in [0, {c}), got "
                             f"values from {t.min()} to {t.max()}")
        if self.weight is not None and self.weight.shape != (c,):
            raise ValueError(f"MultiMarginLoss: expected weight of shape ({c},) (one per "
                             f"class), got {self.weight.shape}")
        flat = np.arange(n) * c + t  # (N,) flat index of x[n, y_n]
        z = self.margin - rows.reshape(-1)[flat][:, None] + rows  # (N, C)
        active = z > 0
        active.reshape(-1)[flat] = False  # the target class is not summed over
        h = np.where(active, z if self.p == 1 else z * z, 0)
        dh = np.where(active, 1 if self.p == 1 else 2 * z, 0).astype(x.dtype)
        coef = np.full(n, 1.0 / c, x.dtype)
        if self.weight is not None:
            coef = coef * self.weight.astype(x.dtype)[t]
        dh *= coef[:, None]
        dh.reshape(-1)[flat] = -dh.sum(axis=1)  # dl/dx_y: one unique element per row
        self._cache = (dh, unbatched) if self.caching else None
        per = (h.sum(axis=1) * coef).astype(x.dtype, copy=False)
        return self._reduce(per[0] if unbatched else per)

    def backward(self, grad_output: Any = 1.0) -> NDArray:
        dh, unbatched = self._saved(self._cache)
        scale = scale_for(self, grad_output, () if unbatched else dh.shape[:1], dh.dtype)
        grad = dh * (scale[:, None] if isinstance(scale, np.ndarray) else scale)
        return grad[0] if unbatched else grad

    def extra_repr(self) -> str:
        parts = [f"p={self.p}", f"margin={self.margin}", super().extra_repr()]
        return ", ".join(s for s in parts if s)
