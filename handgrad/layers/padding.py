"""Padding layers: Zero/Constant/Reflection/Replication/CircularPad, 1d, 2d and 3d.

Forward copies the input into the middle of a larger array and fills the border by the
mode's rule; backward adds every border entry's gradient to the input entry it was copied
from (constant borders have none)::

    y = pad(x, ((top, bottom), (left, right)), mode)
    dL/dx = backprop_pad(grad_out, ...)   # the interior, plus the folded-back borders

Both are ``handgrad.ops.padding``'s kernel, the same one ``Conv2d(padding_mode=...)`` uses.
Arguments follow PyTorch: ``padding`` is an int or ``(left, right)`` for 1-d,
``(left, right, top, bottom)`` for 2-d and ``(left, right, top, bottom, front, back)`` for
3-d (last axis first).
"""

from __future__ import annotations

from typing import Any

from numpy.typing import NDArray

from .._validation import as_float_input, check_grad
from ..layer import Layer
from ..ops.padding import backprop_pad, pad

__all__ = [
    "ZeroPad1d", "ZeroPad2d", "ConstantPad1d", "ConstantPad2d", "ReflectionPad1d",
    "ReflectionPad2d", "ReplicationPad1d", "ReplicationPad2d", "CircularPad1d", "CircularPad2d",
    "ZeroPad3d", "ConstantPad3d", "ReflectionPad3d", "ReplicationPad3d", "CircularPad3d",
]


def _padding_tuple(padding: Any, dims: int, name: str, allow_negative: bool) -> tuple[int, ...]:
    n = 2 * dims
    values = (padding,) * n if not isinstance(padding, (tuple, list)) else tuple(padding)
    ok = len(values) == n and all(isinstance(v, int) and not isinstance(v, bool)
                                  for v in values)
    if not ok or (not allow_negative and min(values) < 0):
        sign = "" if allow_negative else "non-negative "
        raise ValueError(f"{name}: expected padding as a {sign}int or a {n}-tuple of "
                         f"{sign}ints, got {padding!r}")
    return values


class _PadNd(Layer):
    """Shared forward/backward: ``mode`` and ``_dims`` are set by each subclass."""

    mode = "constant"
    _dims = 2

    def __init__(self, padding: Any, value: float = 0.0):
        super().__init__()
        name = type(self).__name__
        self.padding = _padding_tuple(padding, self._dims, name, self.mode == "constant")
        self.value = float(value)
        # PyTorch's order is last axis first: (left, right[, top, bottom]) -> per axis
        pairs = [self.padding[i:i + 2] for i in range(0, len(self.padding), 2)]
        self._pads = tuple(tuple(p) for p in reversed(pairs))
        self._cache = None

    def forward(self, x: NDArray) -> NDArray:
        x = as_float_input(self, x)
        d = self._dims
        if x.ndim not in (d + 1, d + 2):
            form = {1: "(N, C, L) or (C, L)", 2: "(N, C, H, W) or (C, H, W)",
                    3: "(N, C, D, H, W) or (C, D, H, W)"}[d]
            raise ValueError(f"{self.describe()}: expected input of shape {form}, got {x.shape}")
        y = pad(x, self._pads, self.mode, self.value, who=self.describe())
        if y is x:
            y = x.copy()  # never hand out the caller's array as the output
        self._cache = (x.shape, y.shape) if self.caching else None
        return y

    def backward(self, grad_out: NDArray) -> NDArray:
        x_shape, y_shape = self._saved(self._cache)
        grad_out = check_grad(self, grad_out, y_shape)
        grad_x = backprop_pad(grad_out, self._pads, self.mode)
        return grad_x.copy() if grad_x is grad_out else grad_x

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ConstantPad2d(_PadNd):
    """Pad the last two axes with a constant, as ``torch.nn.ConstantPad2d``.

    ``y[..., top + h, left + w] = x[..., h, w]``, ``value`` elsewhere; negative amounts crop.
    ``dL/dx`` is the interior of ``grad_out``.

    Args:
        padding: ``p`` or ``(left, right, top, bottom)``.
        value: the fill value.

    Shape:
        - input: ``(N, C, H, W)`` or ``(C, H, W)``
        - output: ``(N, C, H + top + bottom, W + left + right)``

    Forward caches the input and output shapes.
    """

    def __init__(self, padding: Any, value: float):
        super().__init__(padding, value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ConstantPad1d(ConstantPad2d):
    """Pad the last axis with a constant, as ``torch.nn.ConstantPad1d``.

    Args:
        padding: ``p`` or ``(left, right)``; value: the fill value.

    Shape:
        - input: ``(N, C, L)`` or ``(C, L)``; output: ``(N, C, L + left + right)``
    """

    _dims = 1


class ZeroPad2d(ConstantPad2d):
    """``ConstantPad2d(padding, 0.0)``, as ``torch.nn.ZeroPad2d``.

    Shape:
        - input: ``(N, C, H, W)`` or ``(C, H, W)``
        - output: ``(N, C, H + top + bottom, W + left + right)``
    """

    def __init__(self, padding: Any):
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad1d(ZeroPad2d):
    """``ConstantPad1d(padding, 0.0)``, as ``torch.nn.ZeroPad1d``.

    Shape:
        - input: ``(N, C, L)`` or ``(C, L)``; output: ``(N, C, L + left + right)``
    """

    _dims = 1


class ReflectionPad2d(_PadNd):
    """Mirror the last two axes at their edges without repeating the edge, as
    ``torch.nn.ReflectionPad2d``: ``d c b | a b c d | c b a``.

    ``dL/dx`` is the interior of ``grad_out`` plus each border, reversed, added onto the
    pixels it mirrors. Each amount must be smaller than its axis.

    Args:
        padding: ``p`` or ``(left, right, top, bottom)``.

    Shape:
        - input: ``(N, C, H, W)`` or ``(C, H, W)``
        - output: ``(N, C, H + top + bottom, W + left + right)``

    Forward caches the input and output shapes.
    """

    mode = "reflect"

    def __init__(self, padding: Any):  # PyTorch's signature: no fill value
        super().__init__(padding)


class ReflectionPad1d(ReflectionPad2d):
    """``ReflectionPad2d`` for the last axis only, as ``torch.nn.ReflectionPad1d``.

    Shape:
        - input: ``(N, C, L)`` or ``(C, L)``; output: ``(N, C, L + left + right)``
    """

    _dims = 1


class ReplicationPad2d(_PadNd):
    """Repeat the edge pixels of the last two axes, as ``torch.nn.ReplicationPad2d``:
    ``a a | a b c d | d d``.

    ``dL/dx`` is the interior of ``grad_out`` plus each border's sum added onto its edge.

    Args:
        padding: ``p`` or ``(left, right, top, bottom)``.

    Shape:
        - input: ``(N, C, H, W)`` or ``(C, H, W)``
        - output: ``(N, C, H + top + bottom, W + left + right)``

    Forward caches the input and output shapes.
    """

    mode = "replicate"

    def __init__(self, padding: Any):  # PyTorch's signature: no fill value
        super().__init__(padding)


class ReplicationPad1d(ReplicationPad2d):
    """``ReplicationPad2d`` for the last axis only, as ``torch.nn.ReplicationPad1d``.

    Shape:
        - input: ``(N, C, L)`` or ``(C, L)``; output: ``(N, C, L + left + right)``
    """

    _dims = 1


class CircularPad2d(_PadNd):
    """Wrap the last two axes around, as ``torch.nn.CircularPad2d``: ``c d | a b c d | a b``.

    ``dL/dx`` is the interior of ``grad_out`` plus each border added onto the pixels it
    copies (the other end of the axis). Each amount must be at most its axis.

    Args:
        padding: ``p`` or ``(left, right, top, bottom)``.

    Shape:
        - input: ``(N, C, H, W)`` or ``(C, H, W)``
        - output: ``(N, C, H + top + bottom, W + left + right)``

    Forward caches the input and output shapes.
    """

    mode = "circular"

    def __init__(self, padding: Any):  # PyTorch's signature: no fill value
        super().__init__(padding)


class CircularPad1d(CircularPad2d):
    """``CircularPad2d`` for the last axis only, as ``torch.nn.CircularPad1d``.

    Shape:
        - input: ``(N, C, L)`` or ``(C, L)``; output: ``(N, C, L + left + right)``
    """

    _dims = 1


class ConstantPad3d(ConstantPad2d):
    """``ConstantPad2d`` for the last three axes, as ``torch.nn.ConstantPad3d``; padding
    ``p`` or ``(left, right, top, bottom, front, back)``.

    Shape:
        - input: ``(N, C, D, H, W)`` or ``(C, D, H, W)``; output: each axis padded
    """

    _dims = 3


class ZeroPad3d(ZeroPad2d):
    """``ConstantPad3d(padding, 0.0)``, as ``torch.nn.ZeroPad3d``.

    Shape:
        - input: ``(N, C, D, H, W)`` or ``(C, D, H, W)``; output: each axis padded
    """

    _dims = 3


class ReflectionPad3d(ReflectionPad2d):
    """``ReflectionPad2d`` for the last three axes, as ``torch.nn.ReflectionPad3d``.

    Shape:
        - input: ``(N, C, D, H, W)`` or ``(C, D, H, W)``; output: each axis padded
    """

    _dims = 3


class ReplicationPad3d(ReplicationPad2d):
    """``ReplicationPad2d`` for the last three axes, as ``torch.nn.ReplicationPad3d``.

    Shape:
        - input: ``(N, C, D, H, W)`` or ``(C, D, H, W)``; output: each axis padded
    """

    _dims = 3


class CircularPad3d(CircularPad2d):
    """``CircularPad2d`` for the last three axes, as ``torch.nn.CircularPad3d``.

    Shape:
        - input: ``(N, C, D, H, W)`` or ``(C, D, H, W)``; output: each axis padded
    """

    _dims = 3
