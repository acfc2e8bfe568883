"""Piecewise-linear activations: ReLU6, Hardtanh, Hardswish, Hardsigmoid, Threshold,
Softshrink, Hardshrink and the learnable PReLU.

Each caches its input. At the breakpoints the derivative is the one PyTorch uses (stated
in each docstring), so gradients agree with PyTorch everywhere, kinks included.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validation import as_float_input, check_grad, check_positive_int
from ..layer import Layer
from ..parameter import Parameter
from .activation import _Elementwise, _InplaceElementwise


def _check_number(name: str, arg: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number for {arg}, got {value!r}")
    return float(value)


class Hardtanh(_InplaceElementwise):
    """``y = clip(x, min_val, max_val)``; ``dy/dx = 1`` strictly inside, else 0.

    Args:
        min_val, max_val: the clipping range (default -1, 1; ``max_val > min_val``).
        inplace: accepted for PyTorch compatibility (the output is a new array).
        min_value, max_value: PyTorch's deprecated spellings; when given they win.

    Shape: input ``(*)``, output ``(*)``. Caches the input.
    """

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False,
                 min_value: float | None = None, max_value: float | None = None):
        super().__init__(inplace)
        name = type(self).__name__
        low = _check_number(name, "min_val", min_val if min_value is None else min_value)
        high = _check_number(name, "max_val", max_val if max_value is None else max_value)
        if not high > low:
            raise ValueError(f"{name}: expected max_val > min_val, got min_val={low}, "
                             f"max_val={high}")
        self.min_val, self.max_val = low, high

    def _forward(self, x):
        return np.clip(x, self.min_val, self.max_val), x

    def _backward(self, grad_out, x):
        inside = (x > self.min_val) & (x < self.max_val)
        return np.where(inside, grad_out, 0).astype(grad_out.dtype, copy=False)

    def extra_repr(self) -> str:
        return self._with_inplace(f"min_val={self.min_val}, max_val={self.max_val}")


class ReLU6(Hardtanh):
    """``y = min(max(x, 0), 6)`` (``Hardtanh(0, 6)``); the gradient at 0 and 6 is 0.

    Args:
        inplace: accepted for PyTorch compatibility (the output is a new array).

    Shape: input ``(*)``, output ``(*)``. Caches the input.
    """

    def __init__(self, inplace: bool = False):
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self) -> str:
        return self._with_inplace("")


class Hardsigmoid(_InplaceElementwise):
    """``y = clip(x / 6 + 1/2, 0, 1)``; ``dy/dx = 1/6`` for ``-3 < x < 3``, else 0.

    Args:
        inplace: accepted for PyTorch compatibility (the output is a new array).

    Shape: input ``(*)``, output ``(*)``. Caches the input.
    """

    def _forward(self, x):
        return np.clip(x / 6 + 0.5, 0, 1).astype(x.dtype, copy=False), x

    def _backward(self, grad_out, x):
        inside = (x > -3) & (x < 3)
        return np.where(inside, grad_out / 6, 0).astype(grad_out.dtype, copy=False)


class Hardswish(_InplaceElementwise):
    """``y = x * clip(x + 3, 0, 6) / 6``.

    ``dy/dx = 0`` for ``x <= -3``, ``(2x + 3) / 6`` for ``-3 < x < 3``, 1 for ``x >= 3``
    (PyTorch's choice at the breakpoints).

    Args:
        inplace: accepted for PyTorch compatibility (the output is a new array).

    Shape: input ``(*)``, output ``(*)``. Caches the input.
    """

    def _forward(self, x):
        return (x * np.clip(x + 3, 0, 6) / 6).astype(x.dtype, copy=False), x

    def _backward(self, grad_out, x):
        slope = np.where(x <= -3, 0, np.where(x < 3, x / 3 + 0.5, 1))
        return (grad_out * slope).astype(grad_out.dtype, copy=False)


class Threshold(_InplaceElementwise):
    """``y = x`` where ``x > threshold``, else ``value``; ``dy/dx = [x > threshold]``.

    Args:
        threshold: the value to threshold at (required, as in PyTorch).
        value: what replaces the values at or below ``threshold`` (required).
        inplace: accepted for PyTorch compatibility (the output is a new array).

    Shape: input ``(*)``, output ``(*)``. Caches the input.
    """

    def __init__(self, threshold: float, value: float, inplace: bool = False):
        super().__init__(inplace)
        self.threshold = _check_number("Threshold", "threshold", threshold)
        self.value = _check_number("Threshold", "value", value)

    def _forward(self, x):
        return np.where(x > self.threshold, x, self.value).astype(x.dtype, copy=False), x

    def _backward(self, grad_out, x):
        return np.where(x > self.threshold, grad_out, 0).astype(grad_out.dtype, copy=False)

    def extra_repr(self) -> str:
        return self._with_inplace(f"threshold={self.threshold}, value={self.value}")


class Softshrink(_Elementwise):
    """``y = x - lambd`` for ``x > lambd``, ``x + lambd`` for ``x < -lambd``, else 0;
    ``dy/dx = 1`` outside ``[-lambd, lambd]``, else 0.

    Args:
        lambd: the half-width of the dead zone (>= 0, default 0.5).

    Shape: input ``(*)``, output ``(*)``. Caches the input.
    """

    def __init__(self, lambd: float = 0.5):
        super().__init__()
        self.lambd = _check_number(type(self).__name__, "lambd", lambd)
        if self.lambd < 0 and type(self) is Softshrink:
            raise ValueError(f"Softshrink: expected lambd >= 0, got {lambd!r}")

    def _outside(self, x):
        return (x < -self.lambd) | (x > self.lambd)

    def _forward(self, x):
        shrunk = x - np.clip(x, -self.lambd, self.lambd)  # 0 inside, x -+ lambd outside
        return shrunk.astype(x.dtype, copy=False), x

    def _backward(self, grad_out, x):
        return np.where(self._outside(x), grad_out, 0).astype(grad_out.dtype, copy=False)

    def extra_repr(self) -> str:
        return f"{self.lambd}"


class Hardshrink(Softshrink):
    """``y = x`` outside ``[-lambd, lambd]``, else 0; ``dy/dx = 1`` outside, else 0.

    Args:
        lambd: the half-width of the dead zone (default 0.5; a negative value keeps all).

    Shape: input ``(*)``, output ``(*)``. Caches the input.
    """

    def _forward(self, x):
        return np.where(self._outside(x), x, 0).astype(x.dtype, copy=False), x


class PReLU(Layer):
    """``y = x`` for ``x > 0``, else ``weight[c] * x`` with a learned slope per channel.

    The channel dimension is 1; inputs with fewer than 2 dimensions (unbatched ``(L,)`` or
    0-dim) have one channel, so they need ``num_parameters=1``, as in PyTorch.
    ``dy/dx = 1`` for x > 0, else ``weight[c]``; ``dL/dweight[c] = sum of dy * x`` over the
    elements of channel c with ``x <= 0``.

    Args:
        num_parameters: 1 (one slope shared by every channel) or the number of channels.
        init: the initial slope (default 0.25).
        dtype: parameter dtype (float32 by default).

    Shape:
        - input: ``(*)``; with ``num_parameters > 1``, ``(N, C, *)`` with C = num_parameters
        - output: same as the input
        - weight: ``(num_parameters,)``, filled with ``init``

    Forward caches the input.
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25,
                 dtype: DTypeLike = np.float32):
        super().__init__()
        self.num_parameters = check_positive_int("PReLU", "num_parameters", num_parameters)
        self.init = _check_number("PReLU", "init", init)
        self.weight = Parameter(np.empty(self.num_parameters, dtype=dtype))
        self.reset_parameters()
        self._x = None

    def reset_parameters(self) -> None:
        self.weight.data[...] = self.init

    def _slope(self, x: NDArray) -> NDArray:
        """The weight shaped to broadcast against ``x``: ``(C, 1, ..., 1)`` over dims 1..."""
        w = self.weight.data
        if self.num_parameters == 1:
            return w.reshape(())
        return w.reshape((-1,) + (1,) * (x.ndim - 2))

    def forward(self, x: NDArray) -> NDArray:
        x = as_float_input(self, x)
        channels = x.shape[1] if x.ndim >= 2 else 1
        if self.num_parameters != 1 and channels != self.num_parameters:
            got = "a 0-dim input" if x.ndim == 0 else f"input of shape {x.shape}"
            raise ValueError(
                f"{self.describe()}: expected input of shape (N, {self.num_parameters}, *) "
                f"(channel dim 1), got {got}; inputs with fewer than 2 dimensions have one "
                f"channel and need num_parameters=1"
            )
        y = np.where(x > 0, x, x * self._slope(x))
        self._x = x if self.caching else None
        return y

    def backward(self, grad_out: NDArray) -> NDArray:
        x = self._saved(self._x)
        grad_out = check_grad(self, grad_out, x.shape)
        slope = self._slope(x)
        if self.weight.requires_grad:
            contrib = np.where(x > 0, 0, x * grad_out)
            if self.num_parameters == 1:
                grad_w = contrib.sum().reshape(1)
            else:
                grad_w = contrib.sum(axis=tuple(a for a in range(x.ndim) if a != 1))  # (C,)
            self.weight.accumulate_grad(grad_w.astype(x.dtype, copy=False), fresh=True)
        return np.where(x > 0, grad_out, grad_out * slope)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"
