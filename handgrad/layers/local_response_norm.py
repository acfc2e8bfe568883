"""Local response normalization across neighbouring channels (Krizhevsky et al., 2012)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .._validation import as_float_input, check_grad, check_positive_int
from ..layer import Layer

__all__ = ["LocalResponseNorm"]


def _channel_window_sum(a: NDArray, before: int, after: int) -> NDArray:
    """``out[:, c] = sum(a[:, c - before : c + after + 1])`` along axis 1, zero outside.

    One shifted add per window offset (the window is a few channels wide).
    """
    out = np.zeros_like(a)
    c = a.shape[1]
    for shift in range(-before, after + 1):  # out[:, j] += a[:, j + shift]
        lo, hi = max(0, -shift), min(c, c - shift)
        if hi > lo:
            out[:, lo:hi] += a[:, lo + shift:hi + shift]
    return out


class LocalResponseNorm(Layer):
    """Normalise each value by the energy of its neighbouring channels, as
    ``torch.nn.LocalResponseNorm``.

    ``d_c = k + alpha / size * sum_{j = c - size//2}^{c + (size - 1)//2} x_j^2`` (channels
    outside ``[0, C)`` count as zero) and ``y_c = x_c * d_c^(-beta)``. Backward:
    ``grad_x_j = g_j d_j^(-beta) - (2 alpha beta / size) x_j * sum_{c : j in window(c)}
    g_c x_c d_c^(-beta - 1)``, where ``j`` is in the window of ``c`` exactly when
    ``c`` lies in ``[j - (size - 1)//2, j + size//2]``.

    Args:
        size: number of channels in the window.
        alpha: multiplicative factor (default 1e-4).
        beta: exponent (default 0.75).
        k: additive factor (default 1).

    Shape:
        - input: ``(N, C, *)`` with at least one dimension after C; output: same shape

    Forward caches the input and ``d``.
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        self.size = check_positive_int("LocalResponseNorm", "size", size)
        self.alpha, self.beta, self.k = float(alpha), float(beta), float(k)
        self._cache = None

    def forward(self, x: NDArray) -> NDArray:
        x = as_float_input(self, x)
        if x.ndim < 3:
            raise ValueError(f"{self.describe()}: expected input of shape (N, C, *) with at "
                             f"least 3 dimensions, got {x.shape}")
        before, after = self.size // 2, (self.size - 1) // 2
        d = _channel_window_sum(np.square(x), before, after)
        d *= self.alpha / self.size
        d += self.k
        y = x * d ** -self.beta
        self._cache = (x, d) if self.caching else None
        return y

    def backward(self, grad_out: NDArray) -> NDArray:
        x, d = self._saved(self._cache)
        grad_out = check_grad(self, grad_out, x.shape)
        t = grad_out * x * d ** (-self.beta - 1)  # g_c x_c d_c^(-beta-1)
        before, after = self.size // 2, (self.size - 1) // 2
        spread = _channel_window_sum(t, after, before)  # c in [j - after, j + before]
        grad_x = grad_out * d ** -self.beta
        grad_x -= (2 * self.alpha * self.beta / self.size) * x * spread
        return grad_x

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
