"""Smooth element-wise activations: Softplus, Softsign, Mish, SELU, CELU, LogSigmoid,
Tanhshrink.

Each caches its input; every ``exp`` is taken of a non-positive number, so none overflows.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .activation import _Elementwise, _InplaceElementwise, sigmoid
from .activation_piecewise import _check_number


def softplus(z: NDArray) -> NDArray:
    """``log(1 + exp(z))`` as ``max(z, 0) + log1p(exp(-|z|))``, which never overflows."""
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


class Softplus(_Elementwise):
    """``y = log(1 + exp(beta x)) / beta``, and ``y = x`` where ``beta x > threshold``.

    ``dy/dx = sigmoid(beta x)``, and 1 where ``beta x > threshold`` (as PyTorch).

    Args:
        beta: the sharpness (non-zero, default 1).
        threshold: above ``beta x > threshold`` the function is the identity (default 20).

    Shape: input ``(*)``, output ``(*)``. Caches the input.
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta = _check_number("Softplus", "beta", beta)
        self.threshold = _check_number("Softplus", "threshold", threshold)
        if self.beta == 0:
            raise ValueError("Softplus: expected a non-zero beta, got 0")

    def _forward(self, x):
        z = x * self.beta
        y = np.where(z > self.threshold, x, softplus(z) / self.beta)
        return y.astype(x.dtype, copy=False), x

    def _backward(self, grad_out, x):
        z = x * self.beta
        return np.where(z > self.threshold, grad_out, grad_out * sigmoid(z))

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Softsign(_Elementwise):
    """``y = x / (1 + |x|)``; ``dy/dx = 1 / (1 + |x|)^2``.

    Shape: input ``(*)``, output ``(*)``. Caches the input.
    """

    def _forward(self, x):
        return x / (1 + np.abs(x)), x

    def _backward(self, grad_out, x):
        d = 1 + np.abs(x)
        return grad_out / (d * d)


class Mish(_InplaceElementwise):
    """``y = x tanh(softplus(x))``; with ``t = tanh(softplus(x))``,
    ``dy/dx = t + x sigmoid(x) (1 - t^2)`` (``d softplus / dx = sigmoid``).

    Args:
        inplace: accepted for PyTorch compatibility (the output is a new array).

    Shape: input ``(*)``, output ``(*)``. Caches the input.
    """

    def _forward(self, x):
        return x * np.tanh(softplus(x)), x

    def _backward(self, grad_out, x):
        t = np.tanh(softplus(x))
        return grad_out * (t + x * sigmoid(x) * (1 - t * t))


class CELU(_InplaceElementwise):
    """``y = x`` for x > 0, else ``alpha (exp(x / alpha) - 1)``; ``dy/dx = exp(x / alpha)``
    for ``x <= 0``.

    Args:
        alpha: the negative saturation value (non-zero, default 1).
        inplace: accepted for PyTorch compatibility (the output is a new array).

    Shape: input ``(*)``, output ``(*)``. Caches the input.
    """

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__(inplace)
        self.alpha = _check_number(type(self).__name__, "alpha", alpha)
        if self.alpha == 0:
            raise ValueError(f"{type(self).__name__}: expected a non-zero alpha, got 0")

    def _scale_and_alpha(self) -> tuple[float, float, float]:
        """``(scale, alpha, 1 / alpha inside the exp)``: CELU's, or SELU's constants."""
        return 1.0, self.alpha, 1.0 / self.alpha

    def _forward(self, x):
        scale, alpha, inv = self._scale_and_alpha()
        negative = alpha * np.expm1(np.minimum(x, 0) * inv)
        y = np.where(x > 0, x, negative)
        if scale != 1.0:
            y = y * scale
        return y.astype(x.dtype, copy=False), x

    def _backward(self, grad_out, x):
        scale, alpha, inv = self._scale_and_alpha()
        slope = np.where(x > 0, scale, (scale * alpha * inv) * np.exp(np.minimum(x, 0) * inv))
        return (grad_out * slope).astype(grad_out.dtype, copy=False)

    def extra_repr(self) -> str:
        return self._with_inplace(f"alpha={self.alpha}")


class SELU(CELU):
    """``y = scale * (x for x > 0, else alpha (exp(x) - 1))`` with PyTorch's constants
    ``alpha = 1.6732632423543772``, ``scale = 1.0507009873554805``;
    ``dy/dx = scale`` for x > 0, else ``scale alpha exp(x)``.

    Args:
        inplace: accepted for PyTorch compatibility (the output is a new array).

    Shape: input ``(*)``, output ``(*)``. Caches the input.
    """

    ALPHA = 1.6732632423543772848170429916717
    SCALE = 1.0507009873554804934193349852946

    def __init__(self, inplace: bool = False):
        super().__init__(1.0, inplace)

    def _scale_and_alpha(self) -> tuple[float, float, float]:
        return self.SCALE, self.ALPHA, 1.0

    def extra_repr(self) -> str:
        return self._with_inplace("")


class LogSigmoid(_Elementwise):
    """``y = log(sigmoid(x)) = min(x, 0) - log(1 + exp(-|x|))``; ``dy/dx = sigmoid(-x)``.

    Shape: input ``(*)``, output ``(*)``. Caches the input.
    """

    def _forward(self, x):
        return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x))), x

    def _backward(self, grad_out, x):
        return grad_out * sigmoid(-x)


class Tanhshrink(_Elementwise):
    """``y = x - tanh(x)``; ``dy/dx = tanh(x)^2``.

    Shape: input ``(*)``, output ``(*)``. Caches the input.
    """

    def _forward(self, x):
        return x - np.tanh(x), x

    def _backward(self, grad_out, x):
        t = np.tanh(x)
        return grad_out * (t * t)

