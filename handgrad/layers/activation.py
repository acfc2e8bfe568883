"""Element-wise activations and softmax.

Each caches one array: its output where the derivative is a function of the output
(Sigmoid, Tanh, Softmax, LogSoftmax), else its input.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy.special import erf

from .._validation import as_float_input, check_grad, check_real
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


class _InplaceElementwise(_Elementwise):
    """An element-wise layer with PyTorch's ``inplace`` flag.

    ``inplace=True`` is accepted so PyTorch code ports unchanged; the output is always a
    new array (the values are the same), so the input is never overwritten.
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = bool(inplace)

    def _with_inplace(self, text: str) -> str:
        """``text`` followed by ``inplace=True`` when set (PyTorch's repr)."""
        return ", ".join(s for s in (text, "inplace=True" if self.inplace else "") if s)

    def extra_repr(self) -> str:
        return self._with_inplace("")


class ReLU(_InplaceElementwise):
    """``y = max(x, 0)``; the gradient at exactly 0 is 0, as in PyTorch.

    Args:
        inplace: accepted for PyTorch compatibility (the output is a new array).

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


class LeakyReLU(_InplaceElementwise):
    """``y = x`` for x > 0, else ``negative_slope * x``.

    Args:
        negative_slope: the slope for x <= 0 (default 0.01).
        inplace: accepted for PyTorch compatibility (the output is a new array).

    Shape: input ``(*)``, output ``(*)``. Caches the input.
    """

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__(inplace)
        self.negative_slope = check_real("LeakyReLU", "negative_slope", negative_slope)

    def _forward(self, x):
        return np.where(x > 0, x, x * x.dtype.type(self.negative_slope)), x

    def _backward(self, grad_out, x):
        return np.where(x > 0, grad_out, grad_out * grad_out.dtype.type(self.negative_slope))

    def extra_repr(self) -> str:
        return self._with_inplace(f"negative_slope={self.negative_slope}")


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


class SiLU(_InplaceElementwise):
    """``y = x sigmoid(x)``; ``dy/dx = s (1 + x (1 - s))``.

    Args:
        inplace: accepted for PyTorch compatibility (the output is a new array).

    Shape: input ``(*)``, output ``(*)``. Caches the input.
    """

    def _forward(self, x):
        return x * sigmoid(x), x

    def _backward(self, grad_out, x):
        s = sigmoid(x)
        return grad_out * s * (1 + x * (1 - s))


class ELU(_InplaceElementwise):
    """``y = x`` for x > 0, else ``alpha (exp(x) - 1)``.

    Args:
        alpha: the negative saturation value (default 1.0).
        inplace: accepted for PyTorch compatibility (the output is a new array).

    Shape: input ``(*)``, output ``(*)``. Caches the input.
    """

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__(inplace)
        self.alpha = check_real("ELU", "alpha", alpha)

    def _forward(self, x):
        a = x.dtype.type(self.alpha)
        return np.where(x > 0, x, a * np.expm1(np.minimum(x, 0))), x

    def _backward(self, grad_out, x):
        a = x.dtype.type(self.alpha)
        return np.where(x > 0, grad_out, grad_out * a * np.exp(np.minimum(x, 0)))

    def extra_repr(self) -> str:
        return self._with_inplace(f"alpha={self.alpha}")


def _check_dim(layer: Layer, dim: int, ndim: int) -> int:
    """``dim`` as an axis in ``[0, ndim)``; a 0-dim input takes dim 0 or -1, as in PyTorch."""
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        low, high = -max(ndim, 1), max(ndim, 1) - 1
        raise ValueError(
            f"{layer.describe()}: dim {dim} is out of range for an input with {ndim} "
            f"dimensions (expected a dim in [{low}, {high}])"
        )
    return dim % max(ndim, 1)


def implicit_softmax_dim(ndim: int) -> int:
    """PyTorch's legacy choice for ``dim=None``: 0 for 0-, 1- and 3-dim inputs, else 1."""
    return 0 if ndim in (0, 1, 3) else 1


def check_softmax_dim(name: str, dim: int | None) -> int | None:
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, (int, np.integer))):
        raise TypeError(f"{name}: expected an integer dim or None, got {dim!r}")
    return None if dim is None else int(dim)


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

    Args:
        dim: the axis to normalise. The default ``None`` is PyTorch's: its legacy implicit
            choice, 0 for 0-, 1- and 3-dim inputs, else 1 (the last axis of a 2-d input;
            pass ``dim`` explicitly for anything else). A 0-dim input takes dim 0 or -1 and
            gives 1 (``LogSoftmax``: 0), as in PyTorch.

    Shape: input ``(*)``, output ``(*)`` (same shape; empty inputs give empty outputs).
    Caches the output and the axis it normalised.
    """

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = check_softmax_dim(type(self).__name__, dim)

    def _axis(self, x: NDArray) -> int:
        dim = implicit_softmax_dim(x.ndim) if self.dim is None else self.dim
        return _check_dim(self, dim, x.ndim)

    def _forward(self, x):
        axis = self._axis(x)
        if x.size == 0:
            return x.copy(), (x, axis)
        y = self._normalize(x.reshape(1) if x.ndim == 0 else x, axis).reshape(x.shape)
        return y, (y, axis)

    def _normalize(self, x, axis):
        return softmax(x, axis)

    def backward(self, grad_out: NDArray) -> NDArray:
        y, axis = self._saved(self._cache)
        grad_out = check_grad(self, grad_out, y.shape)
        if y.size == 0:
            return grad_out.copy()
        if y.ndim == 0:
            return self._backward(grad_out.reshape(1), y.reshape(1), 0).reshape(())
        return self._backward(grad_out, y, axis)

    def _backward(self, grad_out, y, axis):
        return y * (grad_out - (grad_out * y).sum(axis=axis, keepdims=True))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """``y = x - logsumexp(x, dim)``. Backward: ``dx = dy - softmax(x) * sum(dy, dim)``.

    Args:
        dim: as ``Softmax``'s (default -1).

    Shape: input ``(*)``, output ``(*)``. Caches the output and the axis.
    """

    def _normalize(self, x, axis):
        return log_softmax(x, axis)

    def _backward(self, grad_out, y, axis):
        return grad_out - np.exp(y) * grad_out.sum(axis=axis, keepdims=True)
