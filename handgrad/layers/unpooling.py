"""Max unpooling: MaxUnpool2d and MaxUnpool1d, the partial inverse of max pooling.

Forward puts every input value at the position its max pooling took it from and zeros
elsewhere; backward reads the gradient back from those positions::

    y.reshape(N, C, -1)[n, c, indices[n, c, k]] = x[n, c, k]      (all other entries 0)
    dL/dx[n, c, k] = grad_out.reshape(N, C, -1)[n, c, indices[n, c, k]]

The indices are those of ``MaxPool2d(return_indices=True)``: positions ``h*W + w`` in the
(unpadded) output image. When two inputs share an index (overlapping pooling windows), the
forward keeps one of them, as PyTorch (which leaves the choice undefined), and the backward
gives both the gradient of that output, as PyTorch's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..layer import Layer
from ..ops.window import pair, single
from .pooling import _batched_grad, _output, as_batched_nchw

__all__ = ["MaxUnpool2d", "MaxUnpool1d"]


class MaxUnpool2d(Layer):
    """Scatter pooled values back to their positions, as ``torch.nn.MaxUnpool2d``.

    Args:
        kernel_size, stride (default ``kernel_size``), padding: those of the max pooling.

    Call as ``unpool(x, indices, output_size=None)``; ``output_size`` (``(H, W)`` or a full
    shape whose last two entries are used) picks among the sizes that pooling maps to the
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
        name = type(self).__name__
        if self._dims == 2:
            self.kernel_size = pair(kernel_size, "kernel_size", name)
            self.stride = self.kernel_size if stride is None else pair(stride, "stride", name)
            self.padding = pair(padding, "padding", name, minimum=0)
            self._geometry = (self.kernel_size, self.stride, self.padding)
        else:
            self.kernel_size = single(kernel_size, "kernel_size", name)
            self.stride = self.kernel_size if stride is None else single(stride, "stride", name)
            self.padding = single(padding, "padding", name, minimum=0)
            self._geometry = ((1, self.kernel_size), (1, self.stride), (0, self.padding))
        self._cache = None

    def _out_hw(self, in_hw: tuple[int, int], output_size: Any) -> tuple[int, int]:
        kernel, stride, padding = self._geometry
        default = tuple((in_hw[a] - 1) * stride[a] - 2 * padding[a] + kernel[a]
                        for a in range(2))
        if output_size is None:
            return default  # type: ignore[return-value]
        size = tuple(int(v) for v in output_size)[-self._dims:]
        if len(size) != self._dims:
            raise ValueError(f"{self.describe()}: expected output_size with at least "
                             f"{self._dims} entries, got {output_size!r}")
        if self._dims == 1:
            size = (1,) + size
        for a in range(2 - self._dims, 2):
            if not default[a] - stride[a] < size[a] < default[a] + stride[a]:
                raise ValueError(
                    f"{self.describe()}: output_size {tuple(output_size)} is not possible for "
                    f"this input; each size must lie strictly between "
                    f"{default[a] - stride[a]} and {default[a] + stride[a]}"
                )
        return size  # type: ignore[return-value]

    def forward(self, x: NDArray, indices: NDArray, output_size: Any = None) -> NDArray:
        x, unbatched = as_batched_nchw(self, x, self._dims)
        indices = np.asarray(indices)
        if indices.dtype.kind not in "iu":
            raise TypeError(f"{self.describe()}: expected integer indices, got dtype "
                            f"{indices.dtype}")
        index = indices[None] if unbatched else indices
        index = index if self._dims == 2 else index[:, :, None]
        if index.shape != x.shape:
            raise ValueError(f"{self.describe()}: expected indices of the input's shape "
                             f"{np.shape(_output(x, unbatched, self._dims))}, got "
                             f"{indices.shape}")
        N, C = x.shape[:2]
        oh, ow = self._out_hw(x.shape[2:], output_size)
        flat = index.reshape(N, C, x.shape[2] * x.shape[3]).astype(np.intp, copy=False)
        if flat.size and (flat.min() < 0 or flat.max() >= oh * ow):
            raise ValueError(f"{self.describe()}: found an index outside the output of "
                             f"{oh * ow} positions ({(oh, ow)}): {flat.min()}..{flat.max()}")
        y = np.zeros((N, C, oh * ow), dtype=x.dtype)
        np.put_along_axis(y, flat, x.reshape(flat.shape), axis=2)
        self._cache = (flat, x.shape, (N, C, oh, ow), unbatched) if self.caching else None
        return _output(y.reshape(N, C, oh, ow), unbatched, self._dims)

    def backward(self, grad_out: NDArray) -> NDArray:
        flat, x_shape, y_shape, unbatched = self._saved(self._cache)
        grad_out = _batched_grad(self, grad_out, y_shape, unbatched, self._dims)
        g = np.take_along_axis(grad_out.reshape(y_shape[0], y_shape[1], y_shape[2] * y_shape[3]),
                                flat, axis=2)
        return _output(g.reshape(x_shape), unbatched, self._dims)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(MaxUnpool2d):
    """``MaxUnpool2d`` for (N, C, L) sequences, as ``torch.nn.MaxUnpool1d`` (indices are
    positions in L; default ``L_out = (L_in - 1)*s - 2p + k``).

    Shape:
        - input, indices: ``(N, C, L_in)`` or ``(C, L_in)``; output: ``(N, C, L_out)``
    """

    _dims = 1
