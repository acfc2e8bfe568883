"""Max-pooling kernels on padded NCHW batches: the window maxima with the winning offset,
and the gradient scatter back onto the winners. Used by ``MaxPool2d``/``MaxPool1d`` and the
evenly tiled ``AdaptiveMaxPool2d``.

Both loop over the kh*kw kernel offsets (never over pixels): each offset is one strided
view of the padded input (``window.window_slice``), combined element-wise over the batch.
``flat_indices`` turns the winning offsets into PyTorch's ``return_indices`` form.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .window import Padding2d, Pair, window_slice

__all__ = ["max_pool2d", "backprop_max_pool2d", "flat_indices", "index_dtype"]


def index_dtype(window: int) -> np.dtype:
    """The smallest unsigned type for offsets within a window of ``window`` elements."""
    return np.dtype(np.uint8 if window <= 256 else np.uint16)


def max_pool2d(xp: NDArray, kernel_size, stride, dilation, out_hw, with_index: bool = True,
               out: NDArray | None = None, index_out: NDArray | None = None
               ) -> tuple[NDArray, NDArray | None]:
    """Window maxima of padded ``xp`` (N, C, Hp, Wp) and the winning kernel offset.

    Returns ``y`` (N, C, OH, OW) and ``index`` (same shape, uint8/uint16: ``i*kw + j`` of the
    first maximum in row-major window order, as PyTorch breaks ties), or None for the index
    when ``with_index`` is False. ``out`` / ``index_out`` (of that shape and dtype; any
    contents) receive them instead of new arrays.
    """
    kh, kw = kernel_size
    rows, cols = window_slice(0, 0, out_hw, stride, dilation)
    if out is None:
        out = np.empty(xp.shape[:2] + tuple(out_hw), dtype=xp.dtype)
    if not with_index:
        y = out
        np.copyto(y, xp[:, :, rows, cols])
        for k in range(1, kh * kw):
            rows, cols = window_slice(k // kw, k % kw, out_hw, stride, dilation)
            np.maximum(y, xp[:, :, rows, cols], out=y)
        return y, None
    index = index_out if index_out is not None else \
        np.empty(out.shape, dtype=index_dtype(kh * kw))
    index.fill(0)
    wins = np.empty(out.shape, dtype=bool)
    stamp = np.empty(out.shape, dtype=index.dtype)
    # The running maximum alternates between two buffers, so that whether offset k wins
    # compares two contiguous arrays (new maximum > old maximum, i.e. v > old maximum:
    # strictly, the first maximum keeps the win) instead of reading the strided window
    # view a second time. Started in the buffer that makes the last maximum land in out.
    spare = np.empty_like(out)
    y, other = (out, spare) if (kh * kw - 1) % 2 == 0 else (spare, out)
    np.copyto(y, xp[:, :, rows, cols])
    # Masked NumPy operations (where=, boolean indexing) are ~20x slower than plain
    # element-wise ones, so the index is updated arithmetically: offsets come in increasing
    # order, so max(index, wins * k) is k where offset k wins and the old index elsewhere.
    for k in range(1, kh * kw):
        rows, cols = window_slice(k // kw, k % kw, out_hw, stride, dilation)
        np.maximum(y, xp[:, :, rows, cols], out=other)
        np.greater(other, y, out=wins)
        np.multiply(wins, index.dtype.type(k), out=stamp)
        np.maximum(index, stamp, out=index)
        y, other = other, y
    return y, index


def backprop_max_pool2d(grad_out: NDArray, index: NDArray, padded_shape, kernel_size, stride,
                        dilation, out: NDArray | None = None) -> NDArray:
    """Gradient w.r.t. padded input: each output's gradient goes to its one winning pixel.

    Written into ``out`` (of ``padded_shape``; any contents) when given, else a new array.
    """
    kh, kw = kernel_size
    out_hw = grad_out.shape[2:]
    # Windows tiling the padded input exactly (the usual k x k, stride k pooling): every
    # pixel is written once below, so the result needs no zero fill first.
    tiled = tuple(dilation) == (1, 1) and tuple(stride) == (kh, kw) and \
        padded_shape[2:] == (kh * out_hw[0], kw * out_hw[1])
    if out is None:
        grad_xp = (np.empty if tiled else np.zeros)(padded_shape, dtype=grad_out.dtype)
    else:
        grad_xp = out
        if not tiled:
            grad_xp.fill(0)
    hit = np.empty(index.shape, dtype=bool)
    share = np.empty(grad_out.shape, dtype=grad_out.dtype)
    for k in range(kh * kw):
        rows, cols = window_slice(k // kw, k % kw, out_hw, stride, dilation)
        target = grad_xp[:, :, rows, cols]
        np.equal(index, k, out=hit)
        if tiled:  # every pixel has exactly one writer
            np.multiply(grad_out, hit, out=target)
        else:  # (masked where= adds are far slower than multiply + add)
            np.multiply(grad_out, hit, out=share)
            target += share
    return grad_xp


def flat_indices(index: NDArray, kernel_size: Pair, stride: Pair, dilation: Pair,
                 pads: Padding2d, in_hw: Pair) -> NDArray:
    """PyTorch's ``return_indices``: each winner's position ``h*W + w`` in the unpadded
    (H, W) input (int64), from the winning offsets ``index`` (..., OH, OW) of ``max_pool2d``."""
    oh, ow = index.shape[-2:]
    i, j = np.divmod(index.astype(np.int64), kernel_size[1])
    h = np.arange(oh)[:, None] * stride[0] + i * dilation[0] - pads[0][0]
    w = np.arange(ow) * stride[1] + j * dilation[1] - pads[1][0]
    return h * in_hw[1] + w
