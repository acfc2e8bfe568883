"""Max unpooling: MaxUnpool1d, MaxUnpool2d, MaxUnpool3d, the partial inverse of max pooling.

Forward puts every input value at the position its max pooling took it from and zeros
elsewhere; backward reads the gradient back from those positions::

    y.reshape(N, C, -1)[n, c, indices[n, c, k]] = x[n, c, k]      (all other entries 0)
    dL/dx[n, c, k] = grad_out.reshape(N, C, -1)[n, c, indices[n, c, k]]

The indices are those of ``MaxPool*d(return_indices=True)``: flat positions in the
(unpadded) output, e.g. ``h*W + w`` in 2-d. When two inputs share an index (overlapping
pooling windows), the forward keeps one of them, as PyTorch (which leaves the choice
undefined), and the backward gives both the gradient of that output, as PyTorch's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._validation import as_float_input, check_grad
from ..layer import Layer

__all__ = ["MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d"]


def _tuple(value: Any, dims: int, name: str, who: str, minimum: int) -> tuple[int, ...]:
    values = (value,) * dims if isinstance(value, (int, np.integer)) and \
        not isinstance(value, bool) else tuple(value) if isinstance(value, (tuple, list)) \
        else ()
    if len(values) != dims or not all(isinstance(v, (int, np.integer)) and
                                      not isinstance(v, bool) and v >= minimum
                                      for v in values):
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{who}: expected {name} as a {bound} int or a {dims}-tuple of them, "
                         f"got {value!r}")
    return tuple(int(v) for v in values)


class MaxUnpool2d(Layer):
    """Scatter pooled values back to their positions, as ``torch.nn.MaxUnpool2d``.

    Args:
        kernel_size, stride (default ``kernel_size``), padding: those of the max pooling.

    Call as ``unpool(x, indices, output_size=None)``; ``output_size`` (``(H, W)`` or a full
    shape whose last entries are used) picks among the sizes that pooling maps to the
    input's size: each must lie strictly between ``default - stride`` and
    ``default + stride``, with ``default = (H_in - 1)*s - 2p + k``.

    Shape:
        - input, indices: ``(N, C, H_in, W_in)`` or ``(C, H_in, W_in)``
        - output: ``(N, C, H, W)`` (or ``(C, H, W)``), by default ``H = (H_in-1)*sh - 2*ph + kh``

    Forward caches the indices.
    """

    _dims = 2

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0):
        super().__init__()
        name, d = type(self).__name__, self._dims
        self.kernel_size = _tuple(kernel_size, d, "kernel_size", name, 1)
        self.stride = self.kernel_size if stride is None else \
            _tuple(stride, d, "stride", name, 1)
        self.padding = _tuple(padding, d, "padding", name, 0)
        self._cache = None

    def _out_size(self, in_size: tuple[int, ...], output_size: Any) -> tuple[int, ...]:
        default = tuple((n - 1) * s - 2 * p + k for n, s, p, k in
                        zip(in_size, self.stride, self.padding, self.kernel_size))
        if output_size is None:
            return default
        size = tuple(int(v) for v in output_size)[-self._dims:]
        if len(size) != self._dims:
            raise ValueError(f"{self.describe()}: expected output_size with at least "
                             f"{self._dims} entries, got {output_size!r}")
        for o, m, s in zip(size, default, self.stride):
            if not m - s < o < m + s:
                raise ValueError(
                    f"{self.describe()}: output_size {tuple(output_size)} is not possible for "
                    f"this input; each size must lie strictly between {m - s} and {m + s}"
                )
        return size

    def forward(self, x: NDArray, indices: NDArray, output_size: Any = None) -> NDArray:
        x = as_float_input(self, x)
        d = self._dims
        if x.ndim not in (d + 1, d + 2) or x.shape[-d - 1] == 0:
            raise ValueError(f"{self.describe()}: expected input of {d + 2} dimensions (or "
                             f"{d + 1} unbatched) with C > 0, got {x.shape}")
        indices = np.asarray(indices)
        if indices.dtype.kind not in "iu":
            raise TypeError(f"{self.describe()}: expected integer indices, got dtype "
                            f"{indices.dtype}")
        if indices.shape != x.shape:
            raise ValueError(f"{self.describe()}: expected indices of the input's shape "
                             f"{x.shape}, got {indices.shape}")
        unbatched = x.ndim == d + 1
        x, index = (x[None], indices[None]) if unbatched else (x, indices)
        N, C = x.shape[:2]
        out = self._out_size(x.shape[2:], output_size)
        size = math.prod(out)
        flat = index.reshape(N, C, math.prod(x.shape[2:])).astype(np.intp, copy=False)
        if flat.size and (flat.min() < 0 or flat.max() >= size):
            raise ValueError(f"{self.describe()}: found an index outside the output of "
                             f"{size} positions ({out}): {flat.min()}..{flat.max()}")
        y = np.zeros((N, C, size), dtype=x.dtype)
        np.put_along_axis(y, flat, x.reshape(flat.shape), axis=2)
        self._cache = (flat, x.shape, (N, C) + out, unbatched) if self.caching else None
        y = y.reshape((N, C) + out)
        return y[0] if unbatched else y

    def backward(self, grad_out: NDArray) -> NDArray:
        flat, x_shape, y_shape, unbatched = self._saved(self._cache)
        grad_out = check_grad(self, grad_out, y_shape[1:] if unbatched else y_shape)
        g = grad_out.reshape(y_shape[0], y_shape[1], math.prod(y_shape[2:]))
        grad_x = np.take_along_axis(g, flat, axis=2).reshape(x_shape)
        return grad_x[0] if unbatched else grad_x

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(MaxUnpool2d):
    """``MaxUnpool2d`` for (N, C, L) sequences, as ``torch.nn.MaxUnpool1d`` (indices are
    positions in L; default ``L_out = (L_in - 1)*s - 2p + k``).

    Shape:
        - input, indices: ``(N, C, L_in)`` or ``(C, L_in)``; output: ``(N, C, L_out)``
    """

    _dims = 1


class MaxUnpool3d(MaxUnpool2d):
    """``MaxUnpool2d`` for volumes, as ``torch.nn.MaxUnpool3d`` (indices ``(d*H + h)*W + w``).

    Shape:
        - input, indices: ``(N, C, D_in, H_in, W_in)`` or unbatched; output:
          ``(N, C, D, H, W)``, by default ``D = (D_in - 1)*sd - 2*pd + kd``
    """

    _dims = 3
