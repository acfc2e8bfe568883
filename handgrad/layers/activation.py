"""Element-wise activations and softmax.

Each caches one array: its output where the derivative is a function of the output
(Sigmoid, Tanh, Softmax, LogSoftmax), else its input.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy.special import erf

from .._validation import as_float_input, check_grad
from ..layer import Layer
from ..ops.backend import kernels
from ..ops.elementwise import clamp_min_zero
from ..ops.parallel import run_chunks, split


class _Elementwise(Layer):
    """Shared plumbing: validate, run ``_forward``, cache, check ``grad_out``'s shape."""

    def __init__(self) -> None:
        super().__init__()
        self._cache = None

    def forward(self, x: NDArray) -> NDArray:
        x = as_float_input(self, x)
        y, cache = self._forward(x)
        self._cache = cache if self.caching else None
        return y

    def backward(self, grad_out: NDArray) -> NDArray:
        cache = self._saved(self._cache)
        grad_out = check_grad(self, grad_out, cache.shape)
        return self._backward(grad_out, cache)


class ReLU(_Elementwise):
    """``y = max(x, 0)``; the gradient at exactly 0 is 0, as in PyTorch.

    Shape: input ``(*)``, output ``(*)``. Caches the output.
    """

    def _forward(self, x):
        y = relu(x)
        return y, y

    def _backward(self, grad_out, y):
        return backprop_relu(grad_out, y)


def relu(x: NDArray, out: NDArray | None = None) -> NDArray:
    """``max(x, 0)`` into ``out`` (a new array by default; ``out=x`` works in place).

    Large contiguous arrays are split into one block per thread (``ops.parallel``).
    """
    if out is None:
        out = np.empty_like(x)
    if not (x.flags.c_contiguous and out.flags.c_contiguous):
        return np.maximum(x, 0, out=out)
    xf, of = x.reshape(-1), out.reshape(-1)

    def block(worker: int, bounds: tuple[int, int]) -> None:
        k = slice(*bounds)
        clamp_min_zero(xf[k], of[k])

    run_chunks(block, split(xf.size, x.nbytes))
    return out


def backprop_relu(grad_out: NDArray, y: NDArray) -> NDArray:
    """``grad_out`` where ``y > 0``, else exactly 0 (also for NaN/inf ``grad_out``, as PyTorch).

    Branch-free: the mask becomes all-ones/all-zeros integers ANDed with ``grad_out``'s bits.
    ``np.where`` with a data-dependent mask runs about 10x slower (branch mispredictions).
    Large contiguous arrays are split into one block per thread (``ops.parallel``).
    """
    fused = kernels()  # the Numba backend: one pass (ops/numba_elementwise.py)
    if fused is not None:
        grad_x = fused.relu_backward(grad_out, y)
        if grad_x is not None:
            return grad_x
    as_int = np.dtype(f"i{grad_out.dtype.itemsize}")
    if not (grad_out.flags.c_contiguous and y.flags.c_contiguous):
        grad_out, y = np.ascontiguousarray(grad_out), np.ascontiguousarray(y)
    result = np.empty(grad_out.shape, as_int)
    gf, yf, rf = grad_out.view(as_int).reshape(-1), y.reshape(-1), result.reshape(-1)

    def block(worker: int, bounds: tuple[int, int]) -> None:
        k = slice(*bounds)
        mask = np.greater(yf[k], 0).view(np.int8)  # 1 where y > 0, else 0
        np.negative(mask, out=rf[k], casting="unsafe")  # all bits set where y > 0
        np.bitwise_and(rf[k], gf[k], out=rf[k])

    run_chunks(block, split(rf.size, grad_out.nbytes))
    return result.view(grad_out.dtype)


class LeakyReLU(_Elementwise):
    """``y = x`` for x > 0, else ``negative_slope * x``.

    Shape: input ``(*)``, output ``(*)``. Caches the input.
    """

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def _forward(self, x):
        return np.where(x > 0, x, x * x.dtype.type(self.negative_slope)), x

    def _backward(self, grad_out, x):
        return np.where(x > 0, grad_out, grad_out * grad_out.dtype.type(self.negative_slope))

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Sigmoid(_Elementwise):
    """``y = 1 / (1 + exp(-x))``, computed without overflow; ``dy/dx = y (1 - y)``.

    Shape: input ``(*)``, output ``(*)``. Caches the output.
    """

    def _forward(self, x):
        y = sigmoid(x)
        return y, y

    def _backward(self, grad_out, y):
        return grad_out * y * (1 - y)


def sigmoid(x: NDArray) -> NDArray:
    """Numerically stable logistic function in the dtype of ``x``."""
    e = np.exp(-np.abs(x))  # in (0, 1], never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


class Tanh(_Elementwise):
    """``y = tanh(x)``; ``dy/dx = 1 - y^2``.

    Shape: input ``(*)``, output ``(*)``. Caches the output.
    """

    def _forward(self, x):
        y = np.tanh(x)
        return y, y

    def _backward(self, grad_out, y):
        return grad_out * (1 - y * y)


class GELU(_Elementwise):
    """Gaussian error linear unit, ``y = x Phi(x)``.

    ``approximate="none"`` uses the exact normal CDF ``Phi(x) = (1 + erf(x / sqrt 2)) / 2``,
    with ``dy/dx = Phi(x) + x phi(x)``; ``approximate="tanh"`` uses PyTorch's tanh formula
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.

    Shape: input ``(*)``, output ``(*)``. Caches the input.
    """

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(
                f"GELU: expected approximate 'none' or 'tanh', got {approximate!r}"
            )
        self.approximate = approximate

    def _forward(self, x):
        if self.approximate == "tanh":
            inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
            return (0.5 * x * (1 + np.tanh(inner))).astype(x.dtype, copy=False), x
        cdf = 0.5 * (1 + erf(x / math.sqrt(2)))
        return (x * cdf).astype(x.dtype, copy=False), x

    def _backward(self, grad_out, x):
        if self.approximate == "tanh":
            k = math.sqrt(2 / math.pi)
            t = np.tanh(k * (x + 0.044715 * x**3))
            d = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x)
        else:
            cdf = 0.5 * (1 + erf(x / math.sqrt(2)))
            pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
            d = cdf + x * pdf
        return (grad_out * d).astype(grad_out.dtype, copy=False)

    def extra_repr(self) -> str:
        return f"approximate='{self.approximate}'"


class SiLU(_Elementwise):
    """``y = x sigmoid(x)``; ``dy/dx = s (1 + x (1 - s))``.

    Shape: input ``(*)``, output ``(*)``. Caches the input.
    """

    def _forward(self, x):
        return x * sigmoid(x), x

    def _backward(self, grad_out, x):
        s = sigmoid(x)
        return grad_out * s * (1 + x * (1 - s))


class ELU(_Elementwise):
    """``y = x`` for x > 0, else ``alpha (exp(x) - 1)``.

    Shape: input ``(*)``, output ``(*)``. Caches the input.
    """

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = float(alpha)

    def _forward(self, x):
        a = x.dtype.type(self.alpha)
        return np.where(x > 0, x, a * np.expm1(np.minimum(x, 0))), x

    def _backward(self, grad_out, x):
        a = x.dtype.type(self.alpha)
        return np.where(x > 0, grad_out, grad_out * a * np.exp(np.minimum(x, 0)))

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


def _check_dim(layer: Layer, dim: int, ndim: int) -> int:
    if not -ndim <= dim < ndim:
        raise ValueError(
            f"{layer.describe()}: dim {dim} is out of range for an input with {ndim} dimensions"
        )
    return dim % ndim


def softmax(x: NDArray, axis: int) -> NDArray:
    """Softmax along ``axis``, shifted by the maximum so ``exp`` never overflows."""
    z = x - x.max(axis=axis, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=axis, keepdims=True)
    return z


def log_softmax(x: NDArray, axis: int) -> NDArray:
    """``x - logsumexp(x)`` along ``axis``, computed stably."""
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


class Softmax(_Elementwise):
    """``y_i = exp(x_i) / sum_j exp(x_j)`` along ``dim``.

    Backward: ``dx = y * (dy - sum(dy * y, dim))``.

    Shape: input ``(*)``, output ``(*)`` (same shape). Caches the output.
    """

    def __init__(self, dim: int = -1):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"Softmax: expected an integer dim, got {dim!r}")
        self.dim = int(dim)

    def _forward(self, x):
        if x.ndim == 0:
            raise ValueError(f"{self.describe()}: expected an input with at least 1 dimension")
        y = softmax(x, _check_dim(self, self.dim, x.ndim))
        return y, y

    def _backward(self, grad_out, y):
        return y * (grad_out - (grad_out * y).sum(axis=self.dim, keepdims=True))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """``y = x - logsumexp(x, dim)``. Backward: ``dx = dy - softmax(x) * sum(dy, dim)``.

    Shape: input ``(*)``, output ``(*)``. Caches the output.
    """

    def _forward(self, x):
        if x.ndim == 0:
            raise ValueError(f"{self.describe()}: expected an input with at least 1 dimension")
        y = log_softmax(x, _check_dim(self, self.dim, x.ndim))
        return y, y

    def _backward(self, grad_out, y):
        return grad_out - np.exp(y) * grad_out.sum(axis=self.dim, keepdims=True)
