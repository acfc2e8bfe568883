"""Losses on pairs and triplets of embeddings: CosineEmbeddingLoss, TripletMarginLoss.

Every input is differentiated. As for every loss with several differentiable inputs,
``backward`` returns the gradient with respect to the first input, and
``criterion.grad_inputs`` holds the gradients of all of them in argument order:
``(grad_x1, grad_x2)`` and ``(grad_anchor, grad_positive, grad_negative)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .base import Loss
from .margin import check_second_input
from .probabilistic import _check_number, scale_for
from .regression import as_array, check_pred

EPSILON = 1e-12  # added to each squared norm in the cosine, as PyTorch


def _per_sample_scale(loss: Loss, grad_output: Any, shape: tuple[int, ...], dtype) -> Any:
    """The upstream factor of each sample's loss, shaped to broadcast over ``(*, D)``."""
    scale = scale_for(loss, grad_output, shape, dtype)
    return scale[..., None] if isinstance(scale, np.ndarray) else scale


class CosineEmbeddingLoss(Loss):
    """Pulls pairs with ``y = 1`` together and pushes pairs with ``y = -1`` apart, by cosine:
    ``l = 1 - cos(x1, x2)`` for ``y = 1``, ``max(0, cos(x1, x2) - margin)`` for ``y = -1``.

    ``cos = x1 . x2 / sqrt((|x1|^2 + 1e-12) (|x2|^2 + 1e-12))`` (PyTorch's stabilised
    form); with ``m_k = |x_k|^2 + 1e-12``, ``dcos/dx1 = x2 / sqrt(m1 m2) - cos x1 / m1`` (and
    symmetrically for x2); ``dl/dcos = -1`` for ``y = 1`` and ``[cos - margin >= 0]`` for
    ``y = -1``. ``criterion(x1, x2, y)``; ``backward()`` returns the gradient with respect
    to ``x1``; ``criterion.grad_inputs = (grad_x1, grad_x2)``.

    Args:
        margin: the margin for ``y = -1`` pairs, in [-1, 1] (default 0).
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'``.

    Shape: x1, x2 ``(N, D)`` or ``(D,)``; y ``(N,)`` or ``()``; output a float, or ``(N,)``
    (``()``) for ``'none'``. Forward caches both inputs, the cosines, the squared norms and
    ``dl/dcos``.
    """

    def __init__(self, margin: float = 0.0, size_average: bool | None = None,
                 reduce: bool | None = None,
                 reduction: str = "mean"):
        super().__init__(reduction, size_average=size_average, reduce=reduce)
        self.margin = _check_number("CosineEmbeddingLoss", "margin", margin)
        self._cache = None
        self.grad_inputs = None

    def forward(self, x1: NDArray, x2: NDArray, target: NDArray) -> Any:
        x1 = check_pred(self, x1, allow_empty=True, what="input x1")
        x2 = check_second_input(self, x1, x2, "input x2")
        if x1.ndim not in (1, 2):
            raise ValueError(f"CosineEmbeddingLoss: expected inputs of shape (N, D) or (D,), "
                             f"got {x1.shape}")
        y = as_array(self, target, "target")
        if y.shape != x1.shape[:-1]:
            raise ValueError(f"CosineEmbeddingLoss: expected target of shape {x1.shape[:-1]}, "
                             f"got {y.shape}")
        if y.dtype.kind not in "iuf":
            raise TypeError(f"CosineEmbeddingLoss: expected a numeric target, got dtype "
                            f"{y.dtype}")
        dot = np.einsum("...d,...d->...", x1, x2)
        m1 = np.einsum("...d,...d->...", x1, x1) + EPSILON
        m2 = np.einsum("...d,...d->...", x2, x2) + EPSILON
        denom = np.sqrt(m1 * m2)
        cos = dot / denom
        per = np.where(y == 1, 1 - cos, 0) + np.where(y == -1, np.maximum(cos - self.margin,
                                                                          0), 0)
        slope = (np.where(y == 1, -1.0, 0.0)
                 + ((y == -1) & (cos - self.margin >= 0))).astype(x1.dtype)
        self._cache = (x1, x2, cos, m1, m2, denom, slope) if self.caching else None
        return self._reduce(per.astype(x1.dtype, copy=False))

    def backward(self, grad_output: Any = 1.0) -> NDArray:
        x1, x2, cos, m1, m2, denom, slope = self._saved(self._cache)
        g = slope * scale_for(self, grad_output, slope.shape, x1.dtype)  # dL/dcos, (N,)
        g, cos, m1, m2, denom = (a[..., None] for a in (g, cos, m1, m2, denom))
        grad_x1 = g * (x2 / denom - cos * x1 / m1)
        grad_x2 = g * (x1 / denom - cos * x2 / m2)
        self.grad_inputs = (grad_x1, grad_x2)
        return grad_x1

    def extra_repr(self) -> str:
        return ", ".join(s for s in (f"margin={self.margin}", super().extra_repr()) if s)


def pairwise_distance(u: NDArray, v: NDArray, p: float, eps: float) -> tuple[NDArray, NDArray]:
    """``||u - v + eps||_p`` over the last axis (PyTorch's ``pairwise_distance``), and its
    gradient with respect to ``u``: ``sign(d) |d|^(p-1) / ||d||^(p-1)`` (0 where the
    distance is 0)."""
    d = u - v + eps
    a = np.abs(d)
    if p == 2:
        dist = np.sqrt(np.einsum("...d,...d->...", d, d))
        with np.errstate(divide="ignore", invalid="ignore"):
            grad = np.where(dist[..., None] > 0, d / dist[..., None], 0)
        return dist, grad.astype(u.dtype, copy=False)
    if p == 1:
        return a.sum(axis=-1), np.sign(d)
    dist = (a**p).sum(axis=-1) ** (1 / p)
    with np.errstate(divide="ignore", invalid="ignore"):
        grad = np.sign(d) * (a / dist[..., None]) ** (p - 1)
        grad = np.where(dist[..., None] > 0, grad, 0)
    return dist, grad.astype(u.dtype, copy=False)


class TripletMarginLoss(Loss):
    """Anchor nearer its positive than its negative by a margin:
    ``l = max(d(a, p) - d(a, n) + margin, 0)`` with ``d(u, v) = ||u - v + eps||_p``.

    With ``swap=True`` the negative distance is ``min(d(a, n), d(p, n))`` (the gradient is
    shared equally at a tie, as PyTorch's ``minimum``). Where
    ``d(a, p) - d_neg + margin >= 0`` (PyTorch's choice at the kink) the loss has slope 1 in
    ``d(a, p)`` and -1 in ``d_neg``; each distance's gradient is ``pairwise_distance``'s.
    ``criterion(anchor, positive, negative)``; ``backward()`` returns the anchor gradient;
    ``criterion.grad_inputs = (grad_anchor, grad_positive, grad_negative)``.

    Args:
        margin: the margin (> 0, default 1).
        p: the norm degree (> 0, default 2).
        eps: added to each difference before its norm (default 1e-6).
        swap: use the distance swap (default False).
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'``.

    Shape: anchor, positive, negative ``(N, D)`` or ``(D,)`` (generally ``(*, D)``);
    output a float, or ``(N,)`` (``()``) for ``'none'``. Forward caches the distance
    gradients and the slopes.
    """

    def __init__(self, margin: float = 1.0, p: float = 2.0, eps: float = 1e-6,
                 swap: bool = False, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean"):
        super().__init__(reduction, size_average=size_average, reduce=reduce)
        self.margin = _check_number("TripletMarginLoss", "margin", margin, positive=True)
        self.p = _check_number("TripletMarginLoss", "p", p, positive=True)
        if not np.isfinite(self.p):
            raise ValueError(f"TripletMarginLoss: expected a finite p, got {p!r}")
        self.eps = _check_number("TripletMarginLoss", "eps", eps)
        self.swap = bool(swap)
        self._cache = None
        self.grad_inputs = None

    def forward(self, anchor: NDArray, positive: NDArray, negative: NDArray) -> Any:
        a = check_pred(self, anchor, allow_empty=True, what="anchor")
        pos = check_second_input(self, a, positive, "positive")
        neg = check_second_input(self, a, negative, "negative")
        if a.ndim == 0:
            raise ValueError("TripletMarginLoss: expected inputs of shape (N, D) or (D,), got "
                             "0-dim inputs")
        d_ap, g_ap = pairwise_distance(a, pos, self.p, self.eps)
        d_an, g_an = pairwise_distance(a, neg, self.p, self.eps)
        w_an = np.ones_like(d_an)
        g_pn = None
        d_neg = d_an
        if self.swap:
            d_pn, g_pn = pairwise_distance(pos, neg, self.p, self.eps)
            d_neg = np.minimum(d_an, d_pn)
            w_an = np.where(d_an < d_pn, 1.0, np.where(d_an == d_pn, 0.5, 0.0)).astype(a.dtype)
        z = d_ap - d_neg + self.margin
        active = (z >= 0).astype(a.dtype)
        self._cache = (g_ap, g_an, g_pn, w_an, active) if self.caching else None
        return self._reduce(np.maximum(z, 0).astype(a.dtype, copy=False))

    def backward(self, grad_output: Any = 1.0) -> NDArray:
        g_ap, g_an, g_pn, w_an, active = self._saved(self._cache)
        scale = _per_sample_scale(self, grad_output, active.shape, g_ap.dtype)
        s = active[..., None] * scale  # dL/dd(a, p); dL/dd_neg = -s
        an = s * w_an[..., None] * g_an
        grad_anchor = s * g_ap - an
        grad_positive = -s * g_ap
        grad_negative = an
        if g_pn is not None:
            pn = s * (1 - w_an[..., None]) * g_pn
            grad_positive = grad_positive - pn
            grad_negative = grad_negative + pn
        self.grad_inputs = (grad_anchor, grad_positive, grad_negative)
        return grad_anchor

    def extra_repr(self) -> str:
        parts = [f"margin={self.margin}", f"p={self.p}", f"eps={self.eps}",
                 "swap=True" if self.swap else "", super().extra_repr()]
        return ", ".join(s for s in parts if s)
