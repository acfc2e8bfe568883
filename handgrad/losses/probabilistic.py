"""Likelihood and divergence losses: KLDivLoss, PoissonNLLLoss, GaussianNLLLoss.

Each compares an input with a target of the same shape element by element; empty inputs
work as in PyTorch (``'mean'`` gives NaN, ``'sum'`` 0, ``'none'`` an empty array).
``GaussianNLLLoss`` also takes a variance and differentiates it: ``backward`` returns the
input gradient and leaves the variance gradient in ``criterion.grad_var`` (the convention
of every loss with several differentiable inputs: ``backward`` returns the gradient of the
first, and ``criterion.grad_inputs`` holds all of them in argument order).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import xlogy

from .base import REDUCTIONS, Loss, legacy_reduction
from .regression import check_pred, check_same_shape_target, upstream_scale


def _check_number(name: str, arg: str, value: Any, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number for {arg}, got {value!r}")
    if positive and not value > 0:
        raise ValueError(f"{name}: expected {arg} > 0, got {value!r}")
    return float(value)


def scale_for(loss: Loss, grad_output: Any, shape: tuple[int, ...], dtype: np.dtype) -> Any:
    """``upstream_scale`` for a loss over ``shape`` elements (an empty loss is fine)."""
    count = max(int(np.prod(shape, dtype=np.int64)), 1)
    return upstream_scale(loss, grad_output, shape, count, dtype)


class KLDivLoss(Loss):
    """Kullback-Leibler divergence of a target distribution from the input's.

    The input holds log-probabilities ``x``; the target holds probabilities ``t`` (or
    log-probabilities with ``log_target=True``, then ``t = exp(target)``):
    ``l = t (log t - x)`` (0 where ``t = 0``); ``dl/dx = -t``.

    Args:
        reduction: ``'mean'`` (over every element, as PyTorch; not the mathematical KL),
            ``'batchmean'`` (the sum divided by the batch size ``x.shape[0]``: the KL
            divergence per sample), ``'sum'`` or ``'none'``.
        log_target: the target is given as log-probabilities (default False).

    Shape: input ``(*)``, target ``(*)``; output a float, or ``(*)`` for ``'none'``.
    Forward caches ``t`` (as probabilities).
    """

    refused_target_kinds = "bi"  # as PyTorch: integer and bool targets fail there

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean",
                 log_target: bool = False):
        reduction = legacy_reduction(size_average, reduce, reduction, "KLDivLoss")
        if reduction not in REDUCTIONS + ("batchmean",):
            raise ValueError(f"KLDivLoss: expected reduction 'mean', 'batchmean', 'sum' or "
                             f"'none', got {reduction!r}")
        super().__init__("mean" if reduction == "batchmean" else reduction)
        self.reduction = reduction
        self.log_target = bool(log_target)
        self._cache = None

    def forward(self, pred: NDArray, target: NDArray) -> Any:
        # log-probabilities may be -inf (log 0); like PyTorch, non-finite values propagate
        x = check_pred(self, pred, finite=False, allow_empty=True)
        t = check_same_shape_target(self, x, target)
        if self.log_target:
            p = np.exp(t)
            per = p * (t - x)
        else:
            p = t
            per = xlogy(t, t).astype(x.dtype, copy=False) - t * x
        self._cache = (p, x.shape) if self.caching else None
        if self.reduction == "batchmean":
            batch = x.shape[0] if x.ndim else 1
            return float(per.sum()) / batch if batch else float("nan")  # PyTorch's 0/0
        return self._reduce(per)

    def backward(self, grad_output: Any = 1.0) -> NDArray:
        p, shape = self._saved(self._cache)
        if self.reduction == "batchmean":
            if np.ndim(grad_output) != 0:
                raise ValueError(f"KLDivLoss: expected a scalar grad_output for "
                                 f"reduction='batchmean', got shape {np.shape(grad_output)}")
            scale = float(grad_output) / (shape[0] if len(shape) and shape[0] else 1)
        else:
            scale = scale_for(self, grad_output, shape, p.dtype)
        return np.negative(p) * scale

    def extra_repr(self) -> str:
        parts = [f"reduction='{self.reduction}'" if self.reduction != "mean" else ""]
        parts.append("log_target=True" if self.log_target else "")
        return ", ".join(s for s in parts if s)


class PoissonNLLLoss(Loss):
    """Negative log-likelihood of a Poisson-distributed target ``t`` with rate ``lambda``.

    With ``log_input=True`` the input is ``log lambda``: ``l = exp(x) - t x``,
    ``dl/dx = exp(x) - t``; otherwise the input is ``lambda``: ``l = x - t log(x + eps)``,
    ``dl/dx = 1 - t / (x + eps)``. ``full=True`` adds Stirling's approximation of
    ``log(t!)``, ``t log t - t + 0.5 log(2 pi t)``, for ``t > 1`` (it has no input gradient).

    Args:
        log_input: the input is the log of the rate (default True).
        full: add the Stirling term (default False).
        eps: keeps ``log`` finite at a zero rate when ``log_input=False`` (default 1e-8).
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'``.

    Shape: input ``(*)``, target ``(*)``; output a float, or ``(*)`` for ``'none'``.
    Forward caches ``dl/dx``.
    """

    def __init__(self, log_input: bool = True, full: bool = False, size_average: bool | None = None,
                 eps: float = 1e-8, reduce: bool | None = None, reduction: str = "mean"):
        super().__init__(reduction, size_average=size_average, reduce=reduce)
        self.log_input = bool(log_input)
        self.full = bool(full)
        self.eps = _check_number("PoissonNLLLoss", "eps", eps)
        self._cache = None

    def forward(self, pred: NDArray, target: NDArray) -> Any:
        x = check_pred(self, pred, allow_empty=True)
        t = check_same_shape_target(self, x, target)
        if self.log_input:
            rate = np.exp(x)
            per = rate - t * x
            grad = rate - t
        else:
            per = x - t * np.log(x + self.eps)
            grad = 1 - t / (x + self.eps)
        if self.full:
            big = t > 1
            safe = np.where(big, t, 2)  # log only of t > 1
            stirling = safe * np.log(safe) - safe + 0.5 * np.log(2 * math.pi * safe)
            per = per + np.where(big, stirling, 0).astype(x.dtype, copy=False)
        self._cache = grad if self.caching else None
        return self._reduce(per)

    def backward(self, grad_output: Any = 1.0) -> NDArray:
        grad = self._saved(self._cache)
        return grad * scale_for(self, grad_output, grad.shape, grad.dtype)

    def extra_repr(self) -> str:
        parts = [super().extra_repr(), f"log_input={self.log_input}", f"full={self.full}",
                 f"eps={self.eps}"]
        return ", ".join(s for s in parts if s)


class GaussianNLLLoss(Loss):
    """Negative log-likelihood of a target under a normal distribution with the input as
    mean and ``var`` as variance.

    ``l = 0.5 (log v + (x - t)^2 / v)`` (+ ``0.5 log(2 pi)`` with ``full=True``) with
    ``v = max(var, eps)``; ``dl/dx = (x - t) / v`` and ``dl/dvar = 0.5 (1 / v - (x - t)^2 /
    v^2)``: as in PyTorch the clamp is not differentiated (the gradient reaches ``var``
    even where it was clamped).

    ``criterion(input, target, var)``; ``backward()`` returns the input gradient and stores
    the variance gradient, of ``var``'s shape, in ``criterion.grad_var`` (a float if ``var``
    was a Python float); ``criterion.grad_inputs = (grad_input, grad_var)``. The target is
    data (no gradient).

    Args:
        full: include the constant ``0.5 log(2 pi)`` (keyword only, default False).
        eps: the smallest variance used (keyword only, > 0, default 1e-6).
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'`` (keyword only).

    Shape: input ``(N, *)`` or ``(*)``; target the input's shape; var the input's shape,
    the input's shape with one dimension of size 1 (one variance shared along it), the
    input's shape without its last dimension, or a float; output a float, or the input's
    shape for ``'none'``. Forward caches ``x - t``, ``v`` and var's shape.
    """

    refused_target_kinds = "b"  # as PyTorch: bool targets fail there

    def __init__(self, *, full: bool = False, eps: float = 1e-6, reduction: str = "mean"):
        super().__init__(reduction)
        self.full = bool(full)
        self.eps = _check_number("GaussianNLLLoss", "eps", eps, positive=True)
        self._cache = None
        self.grad_var = None
        self.grad_inputs = None

    def _var(self, x: NDArray, var: Any) -> tuple[NDArray, Any]:
        """``var`` broadcastable to ``x``, and how to give its gradient back: its shape, or
        None for a Python float."""
        name = "GaussianNLLLoss"
        if isinstance(var, (int, float)) and not isinstance(var, bool):
            if var < 0:
                raise ValueError(f"{name}: expected a non-negative var, got {var!r}")
            return np.full(x.shape, var, dtype=x.dtype), None
        v = check_pred(self, var, finite=False, allow_empty=True, what="var")
        shape = v.shape
        if shape != x.shape:
            if shape == x.shape[:-1]:
                v = v[..., None]
            elif not (v.ndim == x.ndim and sum(
                    b for a, b in zip(x.shape, shape) if a != b) == 1):
                raise ValueError(
                    f"{name}: expected var of the input's shape {x.shape}, that shape with one "
                    f"dimension of size 1, or {x.shape[:-1]} (the input's without its last "
                    f"dimension), got {shape}"
                )
        if np.any(v < 0):
            raise ValueError(f"{name}: expected a non-negative var, got "
                             f"{int(np.sum(v < 0))} negative entries")
        return v.astype(x.dtype, copy=False), shape

    def forward(self, pred: NDArray, target: NDArray, var: Any) -> Any:
        x = check_pred(self, pred, allow_empty=True, what="input")
        t = check_same_shape_target(self, x, target)
        v, var_shape = self._var(x, var)
        v = np.maximum(v, self.eps)
        diff = x - t
        per = 0.5 * (np.log(v) + diff * diff / v)
        if self.full:
            per = per + 0.5 * math.log(2 * math.pi)
        self._cache = (diff, v, var_shape) if self.caching else None
        return self._reduce(per.astype(x.dtype, copy=False))

    def backward(self, grad_output: Any = 1.0) -> NDArray:
        diff, v, var_shape = self._saved(self._cache)
        scale = scale_for(self, grad_output, diff.shape, diff.dtype)
        grad_x = diff / v * scale
        grad_v = 0.5 * (1 / v - diff * diff / (v * v)) * scale  # (*) of the input
        if var_shape is None:
            self.grad_var = float(grad_v.sum())
        else:
            # sum over the axes var was broadcast along
            axes = tuple(a for a in range(grad_v.ndim) if v.shape[a] == 1 != grad_v.shape[a])
            self.grad_var = grad_v.sum(axis=axes, keepdims=True).reshape(var_shape)
        self.grad_inputs = (grad_x, self.grad_var)
        return grad_x

    def extra_repr(self) -> str:
        parts = [super().extra_repr(), "full=True" if self.full else "", f"eps={self.eps}"]
        return ", ".join(s for s in parts if s)
