"""Adaptive pooling: AdaptiveAvgPool1d/2d/3d, AdaptiveMaxPool1d/2d/3d, GlobalAvgPool2d.

The output has a fixed size; output pixel ``(i, j)`` covers PyTorch's adaptive bins, rows
``[floor(i*H/OH), ceil((i+1)*H/OH))`` and columns ``[floor(j*W/OW), ceil((j+1)*W/OW))``::

    average:  y = A_h @ x @ A_w^T            dL/dx = A_h^T @ grad_out @ A_w
    max:      y[i, j] = max of bin (i, j)    dL/dx: grad_out[i, j] to the bin's first maximum

with ``A_h`` (OH, H), ``A_w`` (OW, W) the bin-averaging matrices. The 1-d layers are the
2-d ones on the height-1 view (N, C, 1, L). Inputs may be unbatched.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._validation import as_float_input, check_grad
from ..layer import Layer
from ..ops.pooling import backprop_max_pool2d, flat_indices, max_pool2d
from .pooling import _batched_grad, _output, as_batched_nchw

__all__ = ["AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "AdaptiveAvgPool1d", "AdaptiveMaxPool1d",
           "AdaptiveAvgPool3d", "AdaptiveMaxPool3d", "GlobalAvgPool2d", "adaptive_bins"]


def _adaptive_size(output_size: Any, name: str, dims: int) -> tuple[int | None, int | None]:
    if dims == 1:
        values = tuple(output_size) if isinstance(output_size, (tuple, list)) else \
            (output_size,)
        if len(values) == 1 and values[0] is not None:
            values = (1,) + values
        else:
            values = ()
    else:
        values = (output_size, output_size) if not isinstance(output_size, (tuple, list)) \
            else tuple(output_size)
    if len(values) != 2 or not all(
        v is None or (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0)
        for v in values
    ):
        what = "a positive int" if dims == 1 else \
            "a positive int, a pair of positive ints or None"
        raise ValueError(f"{name}: expected output_size as {what}, got {output_size!r}")
    return tuple(None if v is None else int(v) for v in values)  # type: ignore[return-value]


def adaptive_bins(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive bins: ``[floor(i*size/out), ceil((i+1)*size/out))``."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def _averaging_matrix(size: int, out: int, dtype) -> NDArray:
    """(out, size) matrix whose row i averages bin i."""
    m = np.zeros((out, size), dtype=dtype)
    for i, (start, end) in enumerate(adaptive_bins(size, out)):
        m[i, start:end] = 1.0 / (end - start)
    return m


class _AdaptivePool2d(Layer):
    _dims = 2

    def __init__(self, output_size: Any):
        super().__init__()
        name = type(self).__name__
        self._size2 = _adaptive_size(output_size, name, self._dims)
        # 2-d: the (OH, OW) pair (None keeps an input size); 1-d: L_out, as PyTorch keeps it
        self.output_size = self._size2 if self._dims == 2 else self._size2[1]
        self._cache = None

    def _out_hw(self, x: NDArray) -> tuple[int, int]:
        return tuple(x.shape[2 + a] if self._size2[a] is None else self._size2[a]
                     for a in range(2))  # type: ignore[return-value]

    def _check(self, x: NDArray) -> tuple[NDArray, bool]:
        x, unbatched = as_batched_nchw(self, x, self._dims)
        if x.shape[2] < 1 or x.shape[3] < 1:
            raise ValueError(f"{self.describe()}: expected a non-empty image, got {x.shape}")
        return x, unbatched

    def extra_repr(self) -> str:
        size = self._size2 if self._dims == 2 else self._size2[1:]
        return f"output_size={size[0] if len(set(size)) == 1 else size}"


class AdaptiveAvgPool2d(_AdaptivePool2d):
    """Average over PyTorch's adaptive bins, as ``torch.nn.AdaptiveAvgPool2d``.

    Separable, so ``y = A_h @ x @ A_w^T`` with averaging matrices ``A_h`` (OH, H) and
    ``A_w`` (OW, W); output size 1 is a plain mean.

    Args:
        output_size: ``k``, ``(OH, OW)``; ``None`` in a pair keeps that input size.

    Shape:
        - input: ``(N, C, H, W)`` or ``(C, H, W)``; output: ``(N, C, OH, OW)`` or ``(C, OH, OW)``

    Forward caches the input shape (and the two small averaging matrices).
    """

    def forward(self, x: NDArray) -> NDArray:
        x, unbatched = self._check(x)
        N, C, H, W = x.shape
        oh, ow = self._out_hw(x)
        if (oh, ow) == (1, 1):
            y = x.reshape(N, C, H * W).sum(axis=2, keepdims=True).reshape(N, C, 1, 1)
            y *= 1.0 / (H * W)
            self._cache = (x.shape, None, None, unbatched) if self.caching else None
            return _output(y, unbatched, self._dims)
        a_h = _averaging_matrix(H, oh, x.dtype)
        a_w = _averaging_matrix(W, ow, x.dtype)
        y = np.matmul(a_h, x @ a_w.T)  # (N, C, H, OW) -> (N, C, OH, OW)
        self._cache = (x.shape, a_h, a_w, unbatched) if self.caching else None
        return _output(y, unbatched, self._dims)

    def backward(self, grad_out: NDArray) -> NDArray:
        x_shape, a_h, a_w, unbatched = self._saved(self._cache)
        N, C, H, W = x_shape
        if a_h is None:
            grad_out = _batched_grad(self, grad_out, (N, C, 1, 1), unbatched, self._dims)
            grad_x = np.empty(x_shape, dtype=grad_out.dtype)
            np.multiply(grad_out, 1.0 / (H * W), out=grad_x)  # broadcast over H, W
            return _output(grad_x, unbatched, self._dims)
        grad_out = _batched_grad(self, grad_out, (N, C, a_h.shape[0], a_w.shape[0]),
                                 unbatched, self._dims)
        # y = A_h x A_w^T  =>  dL/dx = A_h^T grad_out A_w
        return _output(np.matmul(a_h.T, grad_out @ a_w), unbatched, self._dims)


class GlobalAvgPool2d(AdaptiveAvgPool2d):
    """Mean over all pixels of each channel: ``AdaptiveAvgPool2d(1)``.

    Returns ``(N, C, 1, 1)`` like PyTorch's ``AdaptiveAvgPool2d(1)`` by default, or
    ``(N, C)`` with ``flatten=True`` (then no ``Flatten`` layer is needed before a Linear).

    Shape:
        - input: ``(N, C, H, W)``; output: ``(N, C, 1, 1)`` or ``(N, C)`` with ``flatten``

    Forward caches the input shape.
    """

    def __init__(self, flatten: bool = False):
        super().__init__(1)
        self.flatten = bool(flatten)

    def forward(self, x: NDArray) -> NDArray:
        y = super().forward(x)
        return y.reshape(y.shape[:-2]) if self.flatten else y

    def backward(self, grad_out: NDArray) -> NDArray:
        if self.flatten and self._cache is not None:
            grad_out = np.asarray(grad_out)
            x_shape, unbatched = self._cache[0], self._cache[3]
            expected = tuple(x_shape[1:2]) if unbatched else tuple(x_shape[:2])
            if grad_out.shape != expected:
                raise ValueError(
                    f"{self.describe()}: expected grad_out of shape {expected} (the forward "
                    f"output's), got {grad_out.shape}"
                )
            grad_out = grad_out.reshape(grad_out.shape + (1, 1))
        return super().backward(grad_out)

    def extra_repr(self) -> str:
        return "flatten=True" if self.flatten else ""


class AdaptiveMaxPool2d(_AdaptivePool2d):
    """Max over PyTorch's adaptive bins, as ``torch.nn.AdaptiveMaxPool2d``.

    The gradient goes to the first maximum of each bin in row-major order. When the bins
    tile the input evenly this is ``MaxPool2d`` with ``kernel = stride = H/OH``; otherwise
    it loops over the (few) output bins, each vectorized over the batch and channels.

    Args:
        output_size: ``k``, ``(OH, OW)``; ``None`` in a pair keeps that input size.
        return_indices: forward returns ``(y, indices)``, int64 positions ``h*W + w`` of
            the maxima in the input, as PyTorch.

    Shape:
        - input: ``(N, C, H, W)`` or ``(C, H, W)``; output: ``(N, C, OH, OW)`` or ``(C, OH, OW)``

    Forward caches the winning position of every output.
    """

    def __init__(self, output_size: Any, return_indices: bool = False):
        super().__init__(output_size)
        self.return_indices = bool(return_indices)

    def forward(self, x: NDArray) -> NDArray | tuple[NDArray, NDArray]:
        x, unbatched = self._check(x)
        N, C, H, W = x.shape
        oh, ow = self._out_hw(x)
        with_index = self.caching or self.return_indices
        if H % oh == 0 and W % ow == 0:
            kernel = (H // oh, W // ow)
            y, index = max_pool2d(x, kernel, kernel, (1, 1), (oh, ow), with_index=with_index)
            self._cache = ("even", index, x.shape, kernel, unbatched) if self.caching else None
            flat = None if not self.return_indices else \
                flat_indices(index, kernel, kernel, (1, 1), ((0, 0), (0, 0)), (H, W))
        else:
            bins_h, bins_w = adaptive_bins(H, oh), adaptive_bins(W, ow)
            y = np.empty((N, C, oh, ow), dtype=x.dtype)
            index = np.empty((N, C, oh, ow), dtype=np.int64) if with_index else None
            for i, (h0, h1) in enumerate(bins_h):
                for j, (w0, w1) in enumerate(bins_w):
                    window = x[:, :, h0:h1, w0:w1].reshape(N, C, (h1 - h0) * (w1 - w0))
                    arg = window.argmax(axis=2)  # the first maximum in row-major order
                    y[:, :, i, j] = np.take_along_axis(window, arg[..., None], axis=2)[..., 0]
                    if index is not None:  # the winner's position in the input
                        index[:, :, i, j] = (h0 + arg // (w1 - w0)) * W + w0 + arg % (w1 - w0)
            self._cache = ("bins", index, x.shape, None, unbatched) if self.caching else None
            flat = index
        y = _output(y, unbatched, self._dims)
        return (y, _output(flat, unbatched, self._dims)) if self.return_indices else y

    def backward(self, grad_out: NDArray) -> NDArray:
        kind, index, x_shape, kernel, unbatched = self._saved(self._cache)
        grad_out = _batched_grad(self, grad_out, index.shape, unbatched, self._dims)
        if kind == "even":
            grad_x = backprop_max_pool2d(grad_out, index, x_shape, kernel, kernel, (1, 1))
            return _output(grad_x, unbatched, self._dims)
        # Each output's gradient to its winner: a scatter of N*C*OH*OW values onto distinct
        # positions per bin; bins may overlap, so sum bin by bin (few bins, all vectorized).
        N, C, H, W = x_shape
        grad_x = np.zeros((N, C, H * W), dtype=grad_out.dtype)
        flat = index.reshape(N, C, index.shape[2] * index.shape[3])
        g = grad_out.reshape(flat.shape)
        for b in range(flat.shape[2]):
            rows = np.take_along_axis(grad_x, flat[:, :, b:b + 1], axis=2)
            np.put_along_axis(grad_x, flat[:, :, b:b + 1], rows + g[:, :, b:b + 1], axis=2)
        return _output(grad_x.reshape(x_shape), unbatched, self._dims)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s + ", return_indices=True" if self.return_indices else s


class AdaptiveAvgPool1d(AdaptiveAvgPool2d):
    """Average over PyTorch's adaptive bins of (N, C, L) sequences, as
    ``torch.nn.AdaptiveAvgPool1d``: ``AdaptiveAvgPool2d((1, L_out))`` on the height-1 view.

    Args:
        output_size: ``L_out``.

    Shape:
        - input: ``(N, C, L)`` or ``(C, L)``; output: ``(N, C, L_out)`` or ``(C, L_out)``
    """

    _dims = 1


class AdaptiveMaxPool1d(AdaptiveMaxPool2d):
    """Max over PyTorch's adaptive bins of (N, C, L) sequences, as
    ``torch.nn.AdaptiveMaxPool1d``: ``AdaptiveMaxPool2d((1, L_out))`` on the height-1 view.

    Args:
        output_size: ``L_out``; return_indices: positions in L (int64).

    Shape:
        - input: ``(N, C, L)`` or ``(C, L)``; output: ``(N, C, L_out)`` or ``(C, L_out)``
    """

    _dims = 1


class _AdaptivePool3d(Layer):
    def __init__(self, output_size: Any):
        super().__init__()
        values = (output_size,) * 3 if not isinstance(output_size, (tuple, list)) else \
            tuple(output_size)
        if len(values) != 3 or not all(v is None or (isinstance(v, (int, np.integer)) and
                                                     not isinstance(v, bool) and v > 0)
                                       for v in values):
            raise ValueError(f"{type(self).__name__}: expected output_size as a positive int "
                             f"or a triple of positive ints or None, got {output_size!r}")
        self.output_size = output_size if not isinstance(output_size, list) else values
        self._size3 = values
        self._cache = None

    def _check(self, x: Any) -> tuple[NDArray, bool, tuple[int, int, int]]:
        x = as_float_input(self, x)
        if x.ndim not in (4, 5) or min(x.shape[-4:]) < 1:
            raise ValueError(f"{self.describe()}: expected input of shape (N, C, D, H, W) or "
                             f"(C, D, H, W) with C, D, H, W > 0, got {x.shape}")
        unbatched = x.ndim == 4
        x = x[None] if unbatched else x
        out = tuple(n if o is None else o for n, o in zip(x.shape[2:], self._size3))
        return x, unbatched, out  # type: ignore[return-value]

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool3d(_AdaptivePool3d):
    """Average over PyTorch's adaptive bins of volumes, as ``torch.nn.AdaptiveAvgPool3d``:
    ``y = A_d (x) A_h (x) A_w`` applied along depth, height and width (averaging matrices),
    and ``dL/dx`` the transposed matrices applied to ``grad_out``.

    Args:
        output_size: ``k`` or ``(OD, OH, OW)``; ``None`` keeps that input size.

    Shape:
        - input: ``(N, C, D, H, W)`` or ``(C, D, H, W)``; output: ``(N, C, OD, OH, OW)``

    Forward caches the three averaging matrices.
    """

    def forward(self, x: NDArray) -> NDArray:
        x, unbatched, out = self._check(x)
        mats = [_averaging_matrix(n, o, x.dtype) for n, o in zip(x.shape[2:], out)]
        y = np.einsum("pd,qh,rw,ncdhw->ncpqr", *mats, x, optimize=True)
        self._cache = (mats, x.shape[:2], unbatched) if self.caching else None
        return y[0] if unbatched else y

    def backward(self, grad_out: NDArray) -> NDArray:
        mats, (N, C), unbatched = self._saved(self._cache)
        shape = (N, C) + tuple(m.shape[0] for m in mats)
        g = check_grad(self, grad_out, shape[1:] if unbatched else shape)
        g = g[None] if unbatched else g
        grad_x = np.einsum("pd,qh,rw,ncpqr->ncdhw", *mats, g, optimize=True)
        return grad_x[0] if unbatched else grad_x


class AdaptiveMaxPool3d(_AdaptivePool3d):
    """Max over PyTorch's adaptive bins of volumes, as ``torch.nn.AdaptiveMaxPool3d``; the
    gradient goes to each bin's first maximum in (d, h, w) order. Loops over the output
    bins, each vectorized over the batch and channels.

    Args:
        output_size: ``k`` or ``(OD, OH, OW)``; ``None`` keeps that input size.
        return_indices: also return the maxima's positions ``(d*H + h)*W + w`` (int64).

    Shape:
        - input: ``(N, C, D, H, W)`` or ``(C, D, H, W)``; output: ``(N, C, OD, OH, OW)``

    Forward caches the winning position of every output.
    """

    def __init__(self, output_size: Any, return_indices: bool = False):
        super().__init__(output_size)
        self.return_indices = bool(return_indices)

    def forward(self, x: NDArray) -> NDArray | tuple[NDArray, NDArray]:
        x, unbatched, out = self._check(x)
        N, C, D, H, W = x.shape
        y = np.empty((N, C) + out, x.dtype)
        index = np.empty((N, C) + out, np.int64)
        bins = [adaptive_bins(n, o) for n, o in zip((D, H, W), out)]
        for a, (d0, d1) in enumerate(bins[0]):
            for i, (h0, h1) in enumerate(bins[1]):
                for j, (w0, w1) in enumerate(bins[2]):
                    bd, bh, bw = d1 - d0, h1 - h0, w1 - w0
                    window = x[:, :, d0:d1, h0:h1, w0:w1].reshape(N, C, bd * bh * bw)
                    arg = window.argmax(axis=2)  # the first maximum in (d, h, w) order
                    y[:, :, a, i, j] = np.take_along_axis(window, arg[..., None], 2)[..., 0]
                    da, rest = np.divmod(arg, bh * bw)
                    index[:, :, a, i, j] = ((d0 + da) * H + h0 + rest // bw) * W + w0 + \
                        rest % bw
        self._cache = (index, x.shape, unbatched) if self.caching else None
        y = y[0] if unbatched else y
        if self.return_indices:
            return y, (index[0] if unbatched else index)
        return y

    def backward(self, grad_out: NDArray) -> NDArray:
        index, x_shape, unbatched = self._saved(self._cache)
        grad_out = check_grad(self, grad_out, index.shape[1:] if unbatched else index.shape)
        g = grad_out[None] if unbatched else grad_out
        N, C = x_shape[:2]
        size = int(np.prod(x_shape[2:]))
        flat = index.reshape(N, C, int(np.prod(index.shape[2:])))
        g = g.reshape(flat.shape)
        grad_x = np.zeros((N, C, size), g.dtype)
        for b in range(flat.shape[2]):  # one winner per (n, c) per bin: distinct positions
            rows = np.take_along_axis(grad_x, flat[:, :, b:b + 1], axis=2)
            np.put_along_axis(grad_x, flat[:, :, b:b + 1], rows + g[:, :, b:b + 1], axis=2)
        grad_x = grad_x.reshape(x_shape)
        return grad_x[0] if unbatched else grad_x

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s + ", return_indices=True" if self.return_indices else s
