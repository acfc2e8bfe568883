"""Loss base class."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..layer import Layer

REDUCTIONS = ("mean", "sum", "none")


def legacy_reduction(size_average: bool | None, reduce: bool | None, reduction: str,
                     owner: str = "Loss") -> str:
    """PyTorch's deprecated ``size_average``/``reduce`` pair as a ``reduction`` string.

    Both ``None`` (the default) keep ``reduction``; otherwise an unset one counts as ``True``
    and the pair decides: both true ``'mean'``, ``reduce`` alone ``'sum'``, no reduce ``'none'``.
    """
    if size_average is None and reduce is None:
        return reduction
    for arg, value in (("size_average", size_average), ("reduce", reduce)):
        if value is not None and not isinstance(value, (bool, np.bool_)):
            raise TypeError(
                f"{owner}: expected {arg} None or a bool (PyTorch's deprecated argument), got "
                f"{value!r}; pass reduction={value!r} by keyword"
            )
    size_average = True if size_average is None else bool(size_average)
    reduce = True if reduce is None else bool(reduce)
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


class Loss(Layer):
    """A criterion: ``loss = criterion(pred, target)``, then ``grad = criterion.backward()``.

    ``forward`` returns a Python float for ``reduction="mean"`` or ``"sum"`` and an array
    for ``"none"``. ``backward(grad_output=1.0)`` returns the gradient of
    ``grad_output * loss`` with respect to ``pred`` (for ``"none"``, ``grad_output`` is an
    array of the loss's shape; by default ones).
    """

    def __init__(self, reduction: str = "mean", *, size_average: bool | None = None,
                 reduce: bool | None = None):
        super().__init__()
        reduction = legacy_reduction(size_average, reduce, reduction, type(self).__name__)
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"{type(self).__name__}: expected reduction 'mean', 'sum' or 'none', "
                f"got {reduction!r}"
            )
        self.reduction = reduction

    def _reduce(self, per_element: NDArray) -> Any:
        if self.reduction == "none":
            return per_element
        if self.reduction == "sum":
            return float(per_element.sum())
        return float(per_element.mean()) if per_element.size else float("nan")

    def extra_repr(self) -> str:
        return f"reduction='{self.reduction}'" if self.reduction != "mean" else ""

    def _check_finite_pred(self, pred: NDArray) -> None:
        if not np.all(np.isfinite(pred)):
            raise ValueError(
                f"{type(self).__name__}: prediction contains NaN or infinite values "
                f"({int(np.sum(~np.isfinite(pred)))} of {pred.size}); the model diverged "
                f"or its input was not finite"
            )
