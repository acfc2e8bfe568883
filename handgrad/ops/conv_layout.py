"""How a convolution walks through its batch: cache-sized chunks of images, each laid out so
that its im2col columns are one cheap copy. Used by ``handgrad.ops.conv2d``.

* :func:`plan_chunks`: ``(start, stop)`` slices of the batch whose columns stay in the cache,
  a multiple of the thread count of them;
* :class:`StripLayout` (stride 1): each chunk's images side by side in one zero-padded strip
  (``window.pack_strip``), its columns the wide-layout im2col of that strip;
* :class:`PaddedLayout` (other strides): the zero-padded batch and compact im2col columns.

Both keep the padded input for backward and answer the same questions: the chunk's columns
(:meth:`columns`), its outputs seen as (n, O, OH, OW) (:meth:`outputs`), ``grad_out`` laid
out like the outputs (:meth:`grad_columns`), where the column gradients go
(:meth:`grad_columns_target`) and their col2im onto ``grad_x`` (:meth:`scatter_columns`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .parallel import even_ranges, get_num_threads
from .window import (
    ColumnFrame,
    Padding2d,
    col2im,
    im2col,
    im2col_wide,
    pack_strip,
    pad2d,
    strip_images,
    unpad2d,
)
from .workspace import column_frame, scratch

__all__ = ["CHUNK_BYTES", "plan_chunks", "column_scratch", "StripLayout", "PaddedLayout"]

# Size of one chunk of im2col columns: small enough to stay in the CPU cache.
CHUNK_BYTES = 2 << 20


def plan_chunks(N: int, image_floats: int, itemsize: int, chunk_bytes: int = CHUNK_BYTES
                ) -> list[tuple[int, int]]:
    """``(start, stop)`` slices of the batch whose columns stay in the CPU cache.

    A chunk's im2col columns (``image_floats`` per image) are ``chunk_bytes`` (~2 MB) at most:
    building columns for the whole batch at once would move every column through main memory
    twice. The number of chunks is a multiple of the thread count and their sizes differ
    by at most one image, so that threads get equal shares (32 images in chunks of at
    most 6 are 6, 6, 5, 5, 5, 5, not 6, 6, 6, 6, 6, 2: 16 images per thread, not 18 and 14).
    """
    if N == 0:
        return []
    image_bytes = image_floats * itemsize
    count = -(-N // max(1, min(N, chunk_bytes // image_bytes)))
    threads = get_num_threads()
    return even_ranges(N, min(N, -(-count // threads) * threads))


def column_scratch(worker: int, rows: int, length: int, dtype, ones: bool) -> NDArray:
    """Scratch for a chunk's ``rows`` im2col rows, plus a row of ones if ``ones`` (the
    forward multiplies it by the bias: no separate pass over the outputs to add it)."""
    out = scratch(f"conv2d.cols.{worker}", (rows + ones, length), dtype)
    if ones:
        out[rows] = 1
    return out


class StripLayout:
    """Stride 1: each chunk of the batch side by side in one zero-padded strip image
    (``ops.window.pack_strip``), kept for backward. A chunk's columns are the wide-layout
    im2col of its strip (one image): long contiguous copies, and fewer garbage columns than
    one padded image at a time because neighbours share their zero columns.

    All strips live in one buffer, each followed by ``left`` zeros of slack, so that
    :meth:`pixels` can read every strip as rows of ``Ws`` columns starting at its first pixel
    (the last row runs ``left`` columns past the strip).
    """

    def __init__(self, shape, pads: Padding2d, kernel: tuple[int, int],
                 dilation: tuple[int, int], out_hw: tuple[int, int], dtype, period: int,
                 chunks: list[tuple[int, int]], previous: object = None):
        N, C, H, W = shape
        (top, bottom), (left, right) = pads
        self.shape, self.pads, self.dtype, self.chunks = shape, pads, np.dtype(dtype), chunks
        self.period = period  # ops.window.strip_period for W, the padding and the kernel
        self.kernel, self.dilation, self.out_hw = kernel, dilation, out_hw
        self.rows = H + top + bottom
        self.key = (tuple(shape), pads, kernel, dilation, self.dtype, period, tuple(chunks))
        self._offsets = []
        total = 0
        for start, stop in chunks:
            self._offsets.append(total)
            total += C * self.rows * self.width_of(stop - start) + left
        # ``zeroed``: every entry that is not a pixel (padding, gaps, slack) is zero already
        self.zeroed = isinstance(previous, StripLayout) and previous.key == self.key
        if self.zeroed:
            self._buffer = previous._buffer
            return
        self._buffer = np.empty(total, self.dtype)
        for index, offset in enumerate(self._offsets):  # the slack after each strip
            end = offset + self.strip(index).size
            self._buffer[end:end + left] = 0

    def width_of(self, n: int) -> int:
        """Columns of the strip of ``n`` images: room for the first image's left padding
        and for the input-gradient correlation's (``d*(k-1) - left``) before it."""
        left, reach = self.pads[1][0], self.dilation[1] * (self.kernel[1] - 1)
        return n * self.period + max(left, reach - left)

    def width(self, index: int) -> int:
        start, stop = self.chunks[index]
        return self.width_of(stop - start)

    def strip(self, index: int) -> NDArray:
        """The chunk's strip ``(C, rows, Ws)``, a view of the buffer."""
        C, Ws = self.shape[1], self.width(index)
        offset = self._offsets[index]
        return self._buffer[offset:offset + C * self.rows * Ws].reshape(C, self.rows, Ws)

    def columns(self, index: int, x: NDArray | None, worker: int, ones: bool = False
                ) -> NDArray:
        """The chunk's im2col columns ``(C*kh*kw, OH*Ws)``, with a last row of ones if
        ``ones``; packs ``x`` first unless None."""
        strip = self.strip(index)
        if x is not None:
            pack_strip(x, self.pads, self.period, out=strip, zeroed=self.zeroed)
        C, (kh, kw), (oh, _) = self.shape[1], self.kernel, self.out_hw
        out = column_scratch(worker, C * kh * kw, oh * strip.shape[2], self.dtype, ones)
        im2col_wide(strip[None], self.kernel, self.dilation, out=out[:C * kh * kw])
        return out

    def outputs(self, y: NDArray, n: int) -> NDArray:
        """The ``(n, O, OH, OW)`` view of a chunk's outputs ``y`` (O, OH*Ws)."""
        oh, ow = self.out_hw
        return strip_images(y.reshape(y.shape[0], oh, -1), n, self.period, ow)

    def grad_columns(self, grad_out: NDArray, worker: int) -> NDArray:
        """``grad_out`` (n, O, OH, OW) laid out like the outputs: (O, OH*Ws), zero between."""
        n, O, oh, _ = grad_out.shape
        gy = scratch(f"conv2d.grad_out.{worker}", (O, oh, self.width_of(n)), grad_out.dtype)
        return pack_strip(grad_out, ((0, 0), (0, 0)), self.period, out=gy).reshape(O, -1)

    def grad_columns_target(self, index: int, worker: int) -> tuple[NDArray, ColumnFrame]:
        """Where the chunk's column gradients go, ``(C*kh*kw, OH*Ws)``, and what to hand to
        :meth:`scatter_columns`: the columns of a zero-framed ``ColumnFrame`` (whose col2im
        is one reduction), and the frame."""
        frame = column_frame(f"conv2d.frame.{worker}", self.shape[1],
                             (self.rows, self.width(index)), self.kernel, self.dilation,
                             self.dtype)
        return frame.columns, frame

    def scatter_columns(self, index: int, frame: ColumnFrame, worker: int,
                        grad_x: NDArray) -> None:
        """col2im of the chunk's column gradients (written into ``frame``'s columns) onto
        its strip, then the pixels into ``grad_x`` (n, C, H, W)."""
        n, _, H, W = grad_x.shape
        C, Ws = self.shape[1], self.width(index)
        (top, _), (left, _) = self.pads
        grad_strip = frame.col2im(
            scratch(f"conv2d.grad_strip.{worker}", (C, self.rows, Ws), self.dtype))
        np.copyto(grad_x, strip_images(grad_strip[:, top:top + H], n, self.period, W, left))

    def pixels(self, index: int) -> NDArray:
        """The strip as ``(C, H*Ws)``: column (h, q) is the strip's entry (top + h, left + q),
        so column ``h*Ws + i*period + w`` is pixel (h, w) of the chunk's image i and every
        other column is zero."""
        C, H = self.shape[1], self.shape[2]
        Ws = self.width(index)
        (top, _), (left, _) = self.pads
        item = self.dtype.itemsize
        return np.ndarray((C, H * Ws), self.dtype, self._buffer,
                          (self._offsets[index] + top * Ws + left) * item,
                          (self.rows * Ws * item, item))


class PaddedLayout:
    """Other strides: the zero-padded batch (x itself without padding), kept for backward,
    and compact im2col columns ``(C*kh*kw, n*OH*OW)`` per chunk."""

    def __init__(self, x: NDArray, pads: Padding2d, kernel: tuple[int, int],
                 stride: tuple[int, int], dilation: tuple[int, int], out_hw: tuple[int, int],
                 chunks: list[tuple[int, int]]):
        N, C, H, W = x.shape
        (top, bottom), (left, right) = pads
        self.shape, self.pads, self.dtype, self.chunks = x.shape, pads, x.dtype, chunks
        self.kernel, self.stride, self.dilation, self.out_hw = kernel, stride, dilation, out_hw
        self.padded = top or bottom or left or right
        self.xp = np.empty((N, C, H + top + bottom, W + left + right), x.dtype) \
            if self.padded else x

    def columns(self, index: int, x: NDArray | None, worker: int, ones: bool = False
                ) -> NDArray:
        """The chunk's im2col columns ``(C*kh*kw, n*OH*OW)``, with a last row of ones if
        ``ones``; pads ``x`` into the kept batch first unless None."""
        start, stop = self.chunks[index]
        if x is not None and self.padded:
            pad2d(x, self.pads, out=self.xp[start:stop])
        C, (kh, kw), (oh, ow) = self.shape[1], self.kernel, self.out_hw
        out = column_scratch(worker, C * kh * kw, (stop - start) * oh * ow, self.dtype, ones)
        im2col(self.xp[start:stop], self.kernel, self.stride, self.dilation,
               out=out[:C * kh * kw])
        return out

    def outputs(self, y: NDArray, n: int) -> NDArray:
        """The ``(n, O, OH, OW)`` view of a chunk's outputs ``y`` (O, n*OH*OW)."""
        return y.reshape(y.shape[0], n, *self.out_hw).transpose(1, 0, 2, 3)

    def grad_columns(self, grad_out: NDArray, worker: int) -> NDArray:
        """``grad_out`` (n, O, OH, OW) laid out like the outputs: (O, n*OH*OW)."""
        gy = scratch(f"conv2d.grad_out.{worker}", grad_out.shape, grad_out.dtype)
        gy = gy.reshape(grad_out.shape[1], grad_out.shape[0], *grad_out.shape[2:])
        np.copyto(gy, grad_out.transpose(1, 0, 2, 3))
        return gy.reshape(gy.shape[0], -1)

    def grad_columns_target(self, index: int, worker: int) -> tuple[NDArray, NDArray]:
        """Where the chunk's column gradients go, a scratch ``(C*kh*kw, n*OH*OW)``, twice
        (the second for :meth:`scatter_columns`)."""
        start, stop = self.chunks[index]
        C, (kh, kw), (oh, ow) = self.shape[1], self.kernel, self.out_hw
        cols = scratch(f"conv2d.grad_cols.{worker}", (C * kh * kw, (stop - start) * oh * ow),
                       self.dtype)
        return cols, cols

    def scatter_columns(self, index: int, grad_cols: NDArray, worker: int,
                        grad_x: NDArray) -> None:
        """col2im of the chunk's column gradients ``grad_cols``, then the pixels into
        ``grad_x``."""
        start, stop = self.chunks[index]
        shape = (stop - start,) + self.xp.shape[1:]
        grad_xp = col2im(grad_cols, shape, self.kernel, self.stride, self.dilation)
        np.copyto(grad_x, unpad2d(grad_xp, self.pads))
