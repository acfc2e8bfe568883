"""Distances between two inputs: CosineSimilarity and PairwiseDistance.

Both take two inputs that broadcast against each other and reduce over one dimension;
``backward(g)`` returns ``(grad_x1, grad_x2)``, each summed back to its input's shape where
it was broadcast.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .._validation import as_float_input, check_grad, check_int, check_real
from ..layer import Layer

__all__ = ["CosineSimilarity", "PairwiseDistance"]


def _unbroadcast(grad: NDArray, shape: tuple[int, ...]) -> NDArray:
    """``grad`` summed over the axes along which an array of ``shape`` was broadcast."""
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


def _pair(layer: Layer, x1, x2) -> tuple[NDArray, NDArray, tuple[int, ...]]:
    x1 = as_float_input(layer, x1, "x1")
    x2 = as_float_input(layer, x2, "x2")
    try:
        shape = np.broadcast_shapes(x1.shape, x2.shape)
    except ValueError:
        raise ValueError(f"{layer.describe()}: expected inputs that broadcast together, got "
                         f"{x1.shape} and {x2.shape}") from None
    return x1, x2, shape


class CosineSimilarity(Layer):
    """Cosine of the angle between ``x1`` and ``x2`` along ``dim``, as
    ``torch.nn.CosineSimilarity``.

    ``y = sum(x1 * x2) / (max(|x1|, eps) * max(|x2|, eps))`` (2-norms along ``dim``; each
    norm is clamped separately, as PyTorch 2.x). Backward, with ``n1, n2`` the clamped
    norms: ``grad_x1 = g * (x2 / (n1 n2) - y x1 / n1^2)`` where ``|x1| > eps`` (the second
    term is absent where the norm was clamped), and the same with 1 and 2 swapped.

    Args:
        dim: the dimension reduced (default 1).
        eps: the smallest norm (default 1e-8).

    Shape: ``x1``, ``x2``: broadcastable ``(*, D, *)``; output: the broadcast shape without
    ``dim``. Caches both inputs, the clamped norms and the output.
    """

    def __init__(self, dim: int = 1, eps: float = 1e-8):
        super().__init__()
        self.dim = check_int("CosineSimilarity", "dim", dim)
        self.eps = check_real("CosineSimilarity", "eps", eps)
        self._cache = None

    def forward(self, x1: NDArray, x2: NDArray) -> NDArray:
        x1, x2, shape = _pair(self, x1, x2)
        if not -len(shape) <= self.dim < len(shape):
            raise ValueError(f"{self.describe()}: dim {self.dim} is out of range for inputs "
                             f"of broadcast shape {shape}")
        a, b = np.broadcast_to(x1, shape), np.broadcast_to(x2, shape)
        n1 = np.sqrt(np.sum(a * a, axis=self.dim, keepdims=True))
        n2 = np.sqrt(np.sum(b * b, axis=self.dim, keepdims=True))
        c1, c2 = n1 > self.eps, n2 > self.eps
        n1, n2 = np.maximum(n1, self.eps), np.maximum(n2, self.eps)
        y = np.sum(a * b, axis=self.dim, keepdims=True) / (n1 * n2)
        self._cache = (x1.shape, x2.shape, a, b, n1, n2, c1, c2, y) if self.caching else None
        return np.squeeze(y, axis=self.dim)

    def backward(self, grad_out: NDArray) -> tuple[NDArray, NDArray]:
        s1, s2, a, b, n1, n2, c1, c2, y = self._saved(self._cache)
        g = np.expand_dims(check_grad(self, grad_out, np.squeeze(y, self.dim).shape), self.dim)
        grad_a = g * (b / (n1 * n2) - np.where(c1, y / (n1 * n1), 0) * a)
        grad_b = g * (a / (n1 * n2) - np.where(c2, y / (n2 * n2), 0) * b)
        return _unbroadcast(grad_a, s1), _unbroadcast(grad_b, s2)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, eps={self.eps}"


class PairwiseDistance(Layer):
    """p-norm distance ``|x1 - x2 + eps|_p`` over the last dimension, as
    ``torch.nn.PairwiseDistance``.

    With ``d = x1 - x2 + eps`` and ``y = (sum |d|^p)^(1/p)``: ``grad_x1 = g * sign(d)
    |d|^(p-1) / y^(p-1)`` (0 where y = 0), ``grad_x2 = -grad_x1``; ``p = inf`` is the
    maximum of ``|d|`` (its gradient goes to every position attaining it, split evenly, as
    PyTorch's amax).

    Args:
        p: the norm degree (default 2); must be positive.
        eps: added to the difference (default 1e-6).
        keepdim: keep the reduced dimension (default False).

    Shape: ``x1``, ``x2``: broadcastable ``(*, D)``; output ``(*)`` (``(*, 1)`` with
    ``keepdim``). Caches the difference and the distances.
    """

    def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
        super().__init__()
        if not check_real("PairwiseDistance", "p", p) > 0:
            raise ValueError(f"PairwiseDistance: expected a positive norm degree p, got {p!r}")
        self.norm = float(p)
        self.eps = check_real("PairwiseDistance", "eps", eps)
        self.keepdim = bool(keepdim)
        self._cache = None

    def forward(self, x1: NDArray, x2: NDArray) -> NDArray:
        x1, x2, shape = _pair(self, x1, x2)
        if not shape:
            raise ValueError(f"{self.describe()}: expected inputs with at least one "
                             f"dimension, got {x1.shape} and {x2.shape}")
        d = x1 - x2 + x1.dtype.type(self.eps)
        d = np.broadcast_to(d, shape)
        absd = np.abs(d)
        if np.isinf(self.norm):
            y = absd.max(axis=-1, keepdims=True)
        else:
            y = np.sum(absd ** self.norm, axis=-1, keepdims=True) ** (1.0 / self.norm)
        self._cache = (x1.shape, x2.shape, d, y) if self.caching else None
        return y if self.keepdim else y[..., 0]

    def backward(self, grad_out: NDArray) -> tuple[NDArray, NDArray]:
        s1, s2, d, y = self._saved(self._cache)
        g = check_grad(self, grad_out, y.shape if self.keepdim else y.shape[:-1])
        g = g if self.keepdim else g[..., None]
        absd = np.abs(d)
        if np.isinf(self.norm):
            hit = absd == y
            grad = g * np.sign(d) * hit / np.maximum(hit.sum(axis=-1, keepdims=True), 1)
        else:
            safe = np.where(y > 0, y, 1)
            grad = g * np.sign(d) * absd ** (self.norm - 1) / safe ** (self.norm - 1)
            grad = np.where(y > 0, grad, 0)
        return _unbroadcast(grad, s1), _unbroadcast(-grad, s2)

    def extra_repr(self) -> str:
        return f"p={self.norm}, eps={self.eps}, keepdim={self.keepdim}"
