"""2-D convolution as one matrix multiply around im2col / col2im (``handgrad.ops.window``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validation import as_float_input, check_grad, check_positive_int
from ..init import default_weight_init_
from ..layer import Layer
from ..ops.parallel import (
    channel_sum,
    even_ranges,
    get_num_threads,
    matmul,
    ones,
    run_chunks,
)
from ..ops.window import (
    ColumnFrame,
    Padding2d,
    col2im,
    im2col,
    im2col_wide,
    output_shape,
    pack_strip,
    pad2d,
    pair,
    resolve_padding,
    strip_images,
    strip_period,
    unpad2d,
)
from ..ops.workspace import column_frame, scratch
from ..parameter import Parameter
from ..random import resolve_rng

# Size of one chunk of im2col columns: small enough to stay in the CPU cache.
_CHUNK_BYTES = 2 << 20


class Conv2d(Layer):
    """2-D cross-correlation over NCHW images, as ``torch.nn.Conv2d``.

    ``y[n, o, oh, ow] = b[o] + sum_{c in group(o), i, j} W[o, c, i, j] *
    xpad[n, c, oh*sh + i*dh, ow*sw + j*dw]``, computed as ``W.reshape(O, -1) @ im2col(x)``
    (one matrix multiply; with ``groups`` one batched multiply over the group axis).

    Args:
        in_channels, out_channels: C and O; both must be divisible by ``groups``.
        kernel_size: ``k`` or ``(kh, kw)``.
        stride: ``s`` or ``(sh, sw)``, positive (default 1).
        padding: ``p``, ``(ph, pw)``, ``'valid'`` (no padding) or ``'same'`` (stride 1 only;
            output size = input size, padding ``d*(k-1)`` split with the extra pixel after,
            as PyTorch does). Padding is with zeros.
        dilation: ``d`` or ``(dh, dw)`` (default 1).
        groups: split input and output channels into this many independent groups
            (``groups == in_channels`` gives a depthwise convolution).
        bias: learn an additive per-channel bias (default True).
        padding_mode: only ``'zeros'`` is implemented.
        dtype: parameter dtype (float32 by default).
        rng: generator for the initial weights (default: ``handgrad.random``'s).

    Shape:
        - input: ``(N, C, H, W)``
        - output: ``(N, O, OH, OW)`` with
          ``OH = floor((H + pad_top + pad_bottom - dh*(kh-1) - 1) / sh) + 1`` (same for OW)
        - weight: ``(O, C/groups, kh, kw)``, PyTorch's default init
          (kaiming_uniform with a=sqrt(5))
        - bias: ``(O,)``, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C/groups*kh*kw

    Forward caches the padded input: for stride 1 each cache-sized chunk of the batch side
    by side in one strip image (``_Strips``), else the padded batch (``_Padded``). Columns
    are built per chunk and rebuilt in backward when it needs them: measured, that is faster
    than caching all columns (kh*kw times the input, pushed through main memory) and needs
    no more memory than PyTorch.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", dtype: DTypeLike = np.float32, rng=None):
        super().__init__()
        name = "Conv2d"
        self.in_channels = check_positive_int(name, "in_channels", in_channels)
        self.out_channels = check_positive_int(name, "out_channels", out_channels)
        self.groups = check_positive_int(name, "groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{name}: groups={groups} must divide both in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = pair(stride, "stride", name)
        self.dilation = pair(dilation, "dilation", name)
        self._pads = resolve_padding(padding, self.kernel_size, self.stride, self.dilation, name)
        self.padding = padding if isinstance(padding, str) else pair(padding, "padding", name, 0)
        if padding_mode != "zeros":
            raise ValueError(
                f"{name}: padding_mode={padding_mode!r} is not implemented; only 'zeros' is"
            )
        self.padding_mode = padding_mode
        kh, kw = self.kernel_size
        self.weight = Parameter(
            np.empty((out_channels, in_channels // groups, kh, kw), dtype=dtype)
        )
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(rng)
        self._cache = None
        # Stride-1 backward when an input gradient is wanted: "correlation" (one im2col of
        # grad_out gives the input and weight gradients; cheaper when out_channels <=
        # in_channels), "col2im" (columns of x, col2im scatter), or "auto" for that rule.
        self._input_grad_method = "auto"
        self._chunk_bytes = _CHUNK_BYTES

    def reset_parameters(self, rng=None) -> None:
        default_weight_init_(self.weight, self.bias, resolve_rng(rng))

    def forward(self, x: NDArray) -> NDArray:
        x = as_float_input(self, x)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self.describe()}: expected input of shape (N, {self.in_channels}, H, W), "
                f"got {x.shape}"
            )
        N, C, H, W = x.shape
        O, G = self.out_channels, self.groups
        oh, ow = output_shape((H, W), self.kernel_size, self.stride, self._pads, self.dilation,
                              who=self.describe)
        w = self.weight.data.reshape(G, O // G, -1)  # (G, O/G, K), K = C/G*kh*kw
        K = w.shape[2]
        y = np.empty((N, O, oh, ow), dtype=x.dtype)
        if self.stride == (1, 1):
            period = strip_period(W, self._pads[1], self.kernel_size[1], self.dilation[1])
            # The last training step's strips are reused when they have the same geometry:
            # their zeros are in place already, only the pixels are copied.
            previous = self._cache[0] if self._cache is not None else None
            self._cache = None  # it is overwritten below
            layout = _Strips(x.shape, self._pads, self.kernel_size, self.dilation, (oh, ow),
                             x.dtype, period, self._chunks(N, K * oh * period), previous)
        else:
            layout = _Padded(x, self._pads, self.kernel_size, self.stride, self.dilation,
                             (oh, ow), self._chunks(N, K * oh * ow))

        # Without groups the bias is one more weight column, times a row of ones in cols.
        fold = self.bias is not None and G == 1
        if fold:
            w = np.concatenate([w, self.bias.data.reshape(1, O, 1)], axis=2)

        def chunk(worker: int, index: int) -> None:
            start, stop = layout.chunks[index]
            cols = layout.columns(index, x[start:stop], worker, ones=fold)
            y2 = np.matmul(w, cols.reshape(G, w.shape[2], -1),
                           out=scratch(f"conv2d.y.{worker}", (G, O // G, cols.shape[1]),
                                       x.dtype))
            y2 = y2.reshape(O, -1)
            if self.bias is not None and not fold:  # in place: one long run per channel
                np.add(y2, self.bias.data[:, None], out=y2)
            np.copyto(y[start:stop], layout.outputs(y2, stop - start))  # (n, O, OH, OW)

        run_chunks(chunk, range(len(layout.chunks)))
        self._cache = (layout, (H, W), (oh, ow)) if self.caching else None
        return y

    def _chunks(self, N: int, image_floats: int) -> list[tuple[int, int]]:
        """``(start, stop)`` slices of the batch whose columns stay in the CPU cache.

        A chunk's im2col columns (``image_floats`` per image) are ~2 MB at most: building
        columns for the whole batch at once would move every column through main memory
        twice. The number of chunks is a multiple of the thread count and their sizes differ
        by at most one image, so that threads get equal shares (32 images in chunks of at
        most 6 are 6, 6, 5, 5, 5, 5, not 6, 6, 6, 6, 6, 2: 16 images per thread, not 18 and 14).
        """
        if N == 0:
            return []
        image_bytes = image_floats * self.weight.data.dtype.itemsize
        count = -(-N // max(1, min(N, self._chunk_bytes // image_bytes)))
        threads = get_num_threads()
        return even_ranges(N, min(N, -(-count // threads) * threads))

    def backward(self, grad_out: NDArray) -> NDArray | None:
        layout, (H, W), (oh, ow) = self._saved(self._cache)
        N, C = layout.shape[:2]
        O, G = self.out_channels, self.groups
        grad_out = check_grad(self, grad_out, (N, O, oh, ow))
        want_w = self.weight.requires_grad
        want_b = self.bias is not None and self.bias.requires_grad
        want_x = self.needs_input_grad
        method = self._input_grad_method
        if method == "auto":
            method = "correlation" if O <= C else "col2im"
        by_correlation = (want_x and isinstance(layout, _Strips) and method == "correlation"
                          and self._flip_pads() is not None)
        grad_x = np.empty((N, C, H, W), dtype=layout.dtype) if want_x else None
        # Per thread: [weight-gradient product, bias gradient] summed over its chunks. The
        # correlation kernel's weight product comes out flipped (see _backward_by_correlation).
        sums: dict[int, list[NDArray | None]] = {}
        if by_correlation:
            kh, kw = self.kernel_size
            # Wt[c, o, i', j'] = W[o, c, kh-1-i', kw-1-j'] per group: a small copy, made once
            wt = self.weight.data.reshape(G, O // G, C // G, kh, kw)[:, :, :, ::-1, ::-1]
            wt = wt.transpose(0, 2, 1, 3, 4).reshape(G, C // G, O // G * kh * kw)
            flip_pads = self._flip_pads()

        def chunk(worker: int, index: int) -> None:
            start, stop = layout.chunks[index]
            if by_correlation:
                part_w = self._backward_by_correlation(
                    grad_out[start:stop], layout, index, grad_x[start:stop], wt, flip_pads,
                    worker, want_w)
                part_b = channel_sum(grad_out[start:stop]) if want_b else None
            else:
                part_w, part_b = self._backward_by_columns(
                    grad_out[start:stop], layout, index, worker, want_w, want_b,
                    grad_x[start:stop] if want_x else None)
            acc = sums.setdefault(worker, [None, None])
            for i, part in enumerate((part_w, part_b)):
                if part is not None:
                    acc[i] = part if acc[i] is None else np.add(acc[i], part, out=acc[i])

        run_chunks(chunk, range(len(layout.chunks)))
        partials = list(sums.values())
        if want_w:
            if not partials:  # an empty batch
                grad_w = np.zeros_like(self.weight.data)
            else:
                grad_w = partials[0][0]
                for part in partials[1:]:
                    grad_w += part[0]
            if by_correlation and partials:  # (G, (O/G, kh', kw'), C/G), kh' = kh-1-i: unflip
                kh, kw = self.kernel_size
                grad_w = grad_w.reshape(G, O // G, kh, kw, C // G)[:, :, ::-1, ::-1]
                grad_w = grad_w.transpose(0, 1, 4, 2, 3)
            elif partials:  # (G, K, O/G) from _backward_by_columns
                grad_w = grad_w.transpose(0, 2, 1)
            self.weight.accumulate_grad(
                np.ascontiguousarray(grad_w).reshape(self.weight.data.shape), fresh=True)
        if want_b:
            grad_b = np.zeros_like(self.bias.data) if not partials else partials[0][1]
            for part in partials[1:]:
                grad_b += part[1]
            self.bias.accumulate_grad(grad_b, fresh=True)
        return grad_x

    def _backward_by_columns(self, grad_out: NDArray, layout: _Strips | _Padded, index: int,
                             worker: int, want_w: bool, want_b: bool, grad_x: NDArray | None
                             ) -> tuple[NDArray | None, NDArray | None]:
        """One chunk's backward from the columns of x: returns the weight-gradient product
        transposed, ``(G, K, O/G)``, and the bias gradient (or None), writes ``grad_x``
        unless None."""
        n, O = grad_out.shape[:2]
        G = self.groups
        w = self.weight.data.reshape(G, O // G, -1)
        # grad_out laid out like the forward's output columns (O, L), zero in garbage columns
        gy = layout.grad_columns(grad_out, worker)
        L = gy.shape[1]
        part_w = part_b = None
        # Both products have small results: parallel.matmul / np.dot keep them running side
        # by side in threads (np.matmul and .sum would hold the GIL).
        if want_b:
            part_b = np.dot(gy, ones(L, gy.dtype))
        gy = gy.reshape(G, O // G, L)
        if want_w:  # dL/dW = gy @ cols^T, per group; the columns are rebuilt, not cached
            cols = layout.columns(index, None, worker)
            # as cols @ gy^T, (G, K, O/G): 10-20 % faster than gy @ cols^T in OpenBLAS
            # for these shapes (few rows, a long inner dimension)
            part_w = matmul(cols.reshape(G, w.shape[2], L), gy.transpose(0, 2, 1))
        if grad_x is None:
            return part_w, part_b
        # Input gradient: dL/dx[n, c, h, w] = sum over (o, i, j, oh, ow) with
        # h = oh*sh + i*dh - pad_top, w = ow*sw + j*dw - pad_left of W[o, c, i, j] *
        # gy[n, o, oh, ow]; i.e. the columns W^T @ gy summed back to pixels by col2im.
        target, sink = layout.grad_columns_target(index, worker)  # target: (C*kh*kw, L)
        np.matmul(w.transpose(0, 2, 1), gy, out=target.reshape(G, w.shape[2], L))
        layout.scatter_columns(index, sink, worker, grad_x)
        return part_w, part_b

    def _flip_pads(self):
        """Padding of grad_out for the stride-1 input gradient, or None if one is negative."""
        pads = tuple(
            (d * (k - 1) - before, d * (k - 1) - after)
            for k, d, (before, after) in zip(self.kernel_size, self.dilation, self._pads)
        )
        return None if min(min(p) for p in pads) < 0 else pads

    def _backward_by_correlation(self, grad_out: NDArray, layout: _Strips, index: int,
                                 grad_x: NDArray, wt: NDArray, pads: Padding2d, worker: int,
                                 want_w: bool) -> NDArray | None:
        """One chunk's stride-1 backward from a single im2col of ``grad_out``.

        Input gradient: dL/dx[n, c, h, w] = sum_{o, i, j} W[o, c, i, j] *
        gy[n, o, h + pt - i*dh, w + pl - j*dw] (gy zero outside its range). With the kernel
        flipped (i' = kh-1-i) this is a stride-1 correlation of gy, padded by d*(k-1) - p on
        each side (``pads``), with weights ``wt`` = Wt[c, o, i', j'] = W[o, c, kh-1-i', kw-1-j']
        (input and output channels swapped, per group, as ``(G, C/G, O/G*kh*kw)``): one im2col
        of gy (side by side in a strip like x's), ``gcols``, and one multiply.

        The same columns give the weight gradient: ``gcols[(o, i', j'), (n, h, w)] =
        gy[n, o, h - i*dh + pt, w - j*dw + pl]``, which multiplies ``x[n, c, h, w] =
        xpad[n, c, oh + i*dh, ow + j*dw]`` in dL/dW[o, c, i, j]. So ``gcols @ x^T`` (x's strip
        seen from its first pixel, zero in the columns between images) is dL/dW with the
        kernel flipped, returned as ``(G, O/G*kh*kw, C/G)`` (None unless ``want_w``); x's
        own columns are never built.
        """
        n, O, oh, ow = grad_out.shape
        G, C = self.groups, self.in_channels
        kh, kw = self.kernel_size
        (ft, fb), (fl, fr) = pads
        H, W = grad_x.shape[2:]
        Ws = layout.width(index)
        gyp = pack_strip(grad_out, pads, layout.period,
                         out=scratch(f"conv2d.grad_out.{worker}", (O, oh + ft + fb, Ws),
                                     grad_out.dtype))
        K, L = O // G * kh * kw, H * Ws
        gcols = im2col_wide(gyp[None], self.kernel_size, self.dilation,
                            out=scratch(f"conv2d.grad_cols.{worker}", (O * kh * kw, L),
                                        gyp.dtype)).reshape(G, K, L)
        gx = np.matmul(wt, gcols, out=scratch(f"conv2d.y.{worker}", (G, C // G, L), gyp.dtype))
        np.copyto(grad_x, strip_images(gx.reshape(C, H, Ws), n, layout.period, W))
        if not want_w:
            return None
        xw = layout.pixels(index)  # (C, H*Ws), column (h, q) = x's strip at (pt + h, pl + q)
        return matmul(gcols, xw.reshape(G, C // G, L).transpose(0, 2, 1))

    def _on_dtype_change(self, dtype: np.dtype) -> None:
        self._cache = None

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding!r}" if isinstance(self.padding, str) else \
                f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


def _column_scratch(worker: int, rows: int, length: int, dtype, ones: bool) -> NDArray:
    """Scratch for a chunk's ``rows`` im2col rows, plus a row of ones if ``ones`` (the
    forward multiplies it by the bias: no separate pass over the outputs to add it)."""
    out = scratch(f"conv2d.cols.{worker}", (rows + ones, length), dtype)
    if ones:
        out[rows] = 1
    return out


class _Strips:
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
        self.zeroed = isinstance(previous, _Strips) and previous.key == self.key
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
        out = _column_scratch(worker, C * kh * kw, oh * strip.shape[2], self.dtype, ones)
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


class _Padded:
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
        out = _column_scratch(worker, C * kh * kw, (stop - start) * oh * ow, self.dtype, ones)
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
