"""Unfold and Fold: im2col and col2im as layers (the pixel and channel shuffles are in
``rearrange.py``).

``Unfold`` is the column matrix every convolution multiplies, per image; ``Fold`` is its
adjoint, which sums overlapping windows back onto the pixels. Each is the other's backward::

    Unfold:  y[n, (c, i, j), (oh, ow)] = xpad[n, c, oh*sh + i*dh, ow*sw + j*dw]
    Fold:    y = unpad(col2im(x))          dL/dx = im2col(pad(grad_out))

Both run ``handgrad.ops.window.im2col`` / ``col2im``, the kernels behind ``Conv2d``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._validation import as_float_input, check_grad
from ..layer import Layer
from ..ops.window import col2im, im2col, output_shape, pad2d, pair, unpad2d

__all__ = ["Unfold", "Fold"]


class _Window(Layer):
    def __init__(self, kernel_size: Any, dilation: Any, padding: Any, stride: Any):
        super().__init__()
        name = type(self).__name__
        # as given (PyTorch keeps them so); the pairs the kernels use in _kernel, _dilation, ...
        self.kernel_size, self.dilation, self.padding, self.stride = \
            kernel_size, dilation, padding, stride
        self._kernel = pair(kernel_size, "kernel_size", name)
        self._dilation = pair(dilation, "dilation", name)
        self._padding = pair(padding, "padding", name, minimum=0)
        self._stride = pair(stride, "stride", name)
        self._pads = tuple((p, p) for p in self._padding)
        self._cache = None

    def _out_hw(self, hw) -> tuple[int, int]:
        return output_shape(hw, self._kernel, self._stride, self._pads, self._dilation,
                            who=self.describe)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"padding={self.padding}, stride={self.stride}")


def _cols_to_batch(cols: NDArray, N: int, L: int) -> NDArray:
    """im2col's (C*K, N*L) as (N, C*K, L)."""
    return cols.reshape(cols.shape[0], N, L).transpose(1, 0, 2)


def _batch_to_cols(a: NDArray) -> NDArray:
    """(N, C*K, L) as im2col's (C*K, N*L)."""
    N, CK, L = a.shape
    return np.ascontiguousarray(a.transpose(1, 0, 2)).reshape(CK, N * L)


class Unfold(_Window):
    """Sliding local blocks of an image as columns, as ``torch.nn.Unfold`` (im2col).

    ``y[n, (c, i, j), oh*OW + ow] = xpad[n, c, oh*sh + i*dh, ow*sw + j*dw]``; backward
    sums each column's gradient back onto its pixels (col2im).

    Args:
        kernel_size, dilation (1), padding (0), stride (1): ``k`` or pairs.

    Shape:
        - input: ``(N, C, H, W)`` or ``(C, H, W)``
        - output: ``(N, C*kh*kw, L)`` (or ``(C*kh*kw, L)``), ``L = OH*OW``

    Forward caches the input shape.
    """

    def __init__(self, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1):
        super().__init__(kernel_size, dilation, padding, stride)

    def forward(self, x: NDArray) -> NDArray:
        x = as_float_input(self, x)
        if x.ndim not in (3, 4):
            raise ValueError(f"{self.describe()}: expected input of shape (N, C, H, W) or "
                             f"(C, H, W), got {x.shape}")
        unbatched = x.ndim == 3
        x = x[None] if unbatched else x
        out_hw = self._out_hw(x.shape[2:])
        cols = im2col(pad2d(x, self._pads), self._kernel, self._stride, self._dilation)
        y = np.ascontiguousarray(_cols_to_batch(cols, x.shape[0], out_hw[0] * out_hw[1]))
        self._cache = (x.shape, out_hw, unbatched) if self.caching else None
        return y[0] if unbatched else y

    def backward(self, grad_out: NDArray) -> NDArray:
        x_shape, out_hw, unbatched = self._saved(self._cache)
        N, C, H, W = x_shape
        (kh, kw), L = self._kernel, out_hw[0] * out_hw[1]
        shape = (N, C * kh * kw, L)
        grad_out = check_grad(self, grad_out, shape[1:] if unbatched else shape)
        g = grad_out[None] if unbatched else grad_out
        padded = (N, C, H + 2 * self._padding[0], W + 2 * self._padding[1])
        grad_x = unpad2d(col2im(_batch_to_cols(g), padded, self._kernel, self._stride,
                                self._dilation), self._pads)
        return grad_x[0] if unbatched else grad_x


class Fold(_Window):
    """Sum columns of sliding blocks back into an image, as ``torch.nn.Fold`` (col2im).

    ``y = unpad(col2im(x))``: each column entry ``(c, i, j), l`` is added onto pixel
    ``(oh*sh + i*dh - ph, ow*sw + j*dw - pw)`` of channel c (``l = oh*OW + ow``), so
    overlapping blocks accumulate. Backward is im2col of the zero-padded gradient.

    Args:
        output_size: ``(H, W)`` of the image (or one int).
        kernel_size, dilation (1), padding (0), stride (1): ``k`` or pairs.

    Shape:
        - input: ``(N, C*kh*kw, L)`` or ``(C*kh*kw, L)``, ``L`` the number of blocks
        - output: ``(N, C, H, W)`` or ``(C, H, W)``

    Forward caches the input shape.
    """

    def __init__(self, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
                 stride: Any = 1):
        super().__init__(kernel_size, dilation, padding, stride)
        self.output_size = output_size
        self._output_size = pair(output_size, "output_size", type(self).__name__)

    def forward(self, x: NDArray) -> NDArray:
        x = as_float_input(self, x)
        kh, kw = self._kernel
        out_hw = self._out_hw(self._output_size)
        L = out_hw[0] * out_hw[1]
        if x.ndim not in (2, 3) or x.shape[-2] % (kh * kw) or x.shape[-1] != L or \
                x.shape[-2] == 0:
            raise ValueError(f"{self.describe()}: expected input of shape (N, C*{kh * kw}, "
                             f"{L}) or (C*{kh * kw}, {L}) (C > 0; {L} blocks fit "
                             f"{self.output_size}), got {x.shape}")
        unbatched = x.ndim == 2
        x = x[None] if unbatched else x
        N, C = x.shape[0], x.shape[1] // (kh * kw)
        H, W = self._output_size
        padded = (N, C, H + 2 * self._padding[0], W + 2 * self._padding[1])
        y = unpad2d(col2im(_batch_to_cols(x), padded, self._kernel, self._stride,
                           self._dilation), self._pads)
        y = np.ascontiguousarray(y)
        self._cache = (x.shape, unbatched) if self.caching else None
        return y[0] if unbatched else y

    def backward(self, grad_out: NDArray) -> NDArray:
        x_shape, unbatched = self._saved(self._cache)
        N, CK = x_shape[:2]
        shape = (N, CK // (self._kernel[0] * self._kernel[1])) + self._output_size
        grad_out = check_grad(self, grad_out, shape[1:] if unbatched else shape)
        g = grad_out[None] if unbatched else grad_out
        cols = im2col(pad2d(g, self._pads), self._kernel, self._stride, self._dilation)
        grad_x = np.ascontiguousarray(_cols_to_batch(cols, N, x_shape[2]))
        return grad_x[0] if unbatched else grad_x

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, " + super().extra_repr()
