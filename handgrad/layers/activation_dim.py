"""Activations along one dimension: Softmin, Softmax2d (the softmax family) and GLU.

Softmin and Softmax2d reuse ``Softmax``'s kernels; GLU splits its input in two halves.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .._validation import as_float_input, check_grad
from ..layer import Layer
from .activation import Softmax, _check_dim, sigmoid, softmax


class Softmin(Softmax):
    """``y = softmax(-x)`` along ``dim``. Backward: ``dx = -y * (dy - sum(dy * y, dim))``.

    Args:
        dim: the axis to normalise (default None: PyTorch's legacy implicit choice, 0 for
            0-, 1- and 3-dim inputs, else 1). A 0-dim input takes dim 0 or -1 (output 1).

    Shape: input ``(*)``, output ``(*)`` (same shape). Caches the output and the axis.
    """

    def __init__(self, dim: int | None = None):
        super().__init__(dim)

    def _normalize(self, x, axis):
        return softmax(-x, axis)

    def _backward(self, grad_out, y, axis):
        return -super()._backward(grad_out, y, axis)


class Softmax2d(Softmax):
    """Softmax over the channels at every spatial location: ``Softmax(dim=-3)``.

    Shape: input ``(N, C, H, W)`` or unbatched ``(C, H, W)``, output the same. Caches the
    output.
    """

    def __init__(self) -> None:
        super().__init__(-3)

    def _axis(self, x: NDArray) -> int:
        if x.ndim not in (3, 4):
            raise ValueError(
                f"Softmax2d: expected input of shape (N, C, H, W) or (C, H, W), got "
                f"{x.shape} ({x.ndim}-dim)"
            )
        return x.ndim - 3

    def extra_repr(self) -> str:
        return ""


class GLU(Layer):
    """Gated linear unit: ``x`` split in halves ``a, b`` along ``dim``, ``y = a sigmoid(b)``.

    Backward, with ``s = sigmoid(b)``: ``da = dy s``, ``db = dy a s (1 - s)``.

    Args:
        dim: the dimension to split (default -1; its size must be even).

    Shape: input ``(*, 2M, *)``, output ``(*, M, *)`` (half along ``dim``). Caches ``a``,
    ``s`` and the axis.
    """

    def __init__(self, dim: int = -1):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"GLU: expected an integer dim, got {dim!r}")
        self.dim = int(dim)
        self._cache = None

    def forward(self, x: NDArray) -> NDArray:
        x = as_float_input(self, x)
        if x.ndim == 0:
            raise ValueError(f"{self.describe()}: expected an input with at least 1 "
                             f"dimension (halving a 0-dim input is impossible), got shape ()")
        axis = _check_dim(self, self.dim, x.ndim)
        if x.shape[axis] % 2:
            raise ValueError(
                f"{self.describe()}: expected an even size along dim {self.dim} (it is split "
                f"in halves), got input of shape {x.shape}"
            )
        a, b = np.split(x, 2, axis=axis)
        s = sigmoid(b)
        self._cache = (a, s, axis) if self.caching else None
        return a * s

    def backward(self, grad_out: NDArray) -> NDArray:
        a, s, axis = self._saved(self._cache)
        grad_out = check_grad(self, grad_out, a.shape)
        grad_a = grad_out * s
        grad_b = grad_a * a * (1 - s)
        return np.concatenate([grad_a, grad_b], axis=axis)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
