"""The 2-D convolution kernels behind ``Conv2d`` (and Conv1d, on a height-1 view).

Forward, per cache-sized chunk of the batch (``conv_layout``), on worker threads::

    cols = im2col(xpad)                  # (C*kh*kw, L), L = n*OH*OW (or the strip's width)
    y    = W.reshape(O, -1) @ cols + b   # (O, L), per group with groups

Backward, per chunk, from the same columns rebuilt (cheaper than keeping them)::

    gy     = grad_out laid out like y    # (O, L)
    dW    += gy @ cols^T                 # one multiply
    db    += gy @ 1
    grad_x = col2im(W^T @ gy)            # one multiply, summed back onto the pixels

or, for stride 1 when ``out_channels <= in_channels``, the "correlation" kernel: one im2col of
``grad_out`` gives the input gradient (a stride-1 correlation with the flipped kernel) and the
weight gradient, and x's columns are never rebuilt. The plain loop versions of all three are
in ``tests/reference.py``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .conv_layout import CHUNK_BYTES, PaddedLayout, StripLayout, plan_chunks
from .parallel import channel_sum, matmul, ones, run_chunks
from .window import Padding2d, Pair, im2col_wide, pack_strip, strip_images, strip_period
from .workspace import scratch

__all__ = ["conv2d_forward", "conv2d_backward", "flip_padding"]

Layout = StripLayout | PaddedLayout


def conv2d_forward(x: NDArray, weight: NDArray, bias: NDArray | None, groups: int,
                   stride: Pair, dilation: Pair, pads: Padding2d, out_hw: Pair,
                   previous: object = None, chunk_bytes: int = CHUNK_BYTES
                   ) -> tuple[NDArray, Layout]:
    """``y`` (N, O, OH, OW) of ``x`` (N, C, H, W) and the layout kept for backward.

    ``weight`` is (O, C/groups, kh, kw); ``pads`` the zero padding per side; ``previous``
    the layout of the last call (its zero-filled strips are reused when the geometry is the
    same).
    """
    N, C, H, W = x.shape
    O, G = weight.shape[0], groups
    kernel = weight.shape[2:]
    oh, ow = out_hw
    w = weight.reshape(G, O // G, -1)  # (G, O/G, K), K = C/G*kh*kw
    K = w.shape[2]
    itemsize = x.dtype.itemsize
    if stride == (1, 1):
        period = strip_period(W, pads[1], kernel[1], dilation[1])
        layout: Layout = StripLayout(
            x.shape, pads, kernel, dilation, out_hw, x.dtype, period,
            plan_chunks(N, K * oh * period, itemsize, chunk_bytes), previous)
    else:
        layout = PaddedLayout(x, pads, kernel, stride, dilation, out_hw,
                              plan_chunks(N, K * oh * ow, itemsize, chunk_bytes))
    y = np.empty((N, O, oh, ow), dtype=x.dtype)
    # Without groups the bias is one more weight column, times a row of ones in cols.
    fold = bias is not None and G == 1
    if fold:
        w = np.concatenate([w, bias.reshape(1, O, 1)], axis=2)

    def chunk(worker: int, index: int) -> None:
        start, stop = layout.chunks[index]
        cols = layout.columns(index, x[start:stop], worker, ones=fold)
        y2 = np.matmul(w, cols.reshape(G, w.shape[2], -1),
                       out=scratch(f"conv2d.y.{worker}", (G, O // G, cols.shape[1]), x.dtype))
        y2 = y2.reshape(O, -1)
        if bias is not None and not fold:  # in place: one long run per channel
            np.add(y2, bias[:, None], out=y2)
        np.copyto(y[start:stop], layout.outputs(y2, stop - start))  # (n, O, OH, OW)

    run_chunks(chunk, range(len(layout.chunks)))
    return y, layout


def flip_padding(kernel: Pair, dilation: Pair, pads: Padding2d) -> Padding2d | None:
    """Padding of grad_out for the stride-1 input gradient, or None if one is negative."""
    flipped = tuple((d * (k - 1) - before, d * (k - 1) - after)
                    for k, d, (before, after) in zip(kernel, dilation, pads))
    return None if min(min(p) for p in flipped) < 0 else flipped  # type: ignore[return-value]


def conv2d_backward(layout: Layout, grad_out: NDArray, weight: NDArray, groups: int,
                    want_w: bool, want_b: bool, want_x: bool, method: str = "auto"
                    ) -> tuple[NDArray | None, NDArray | None, NDArray | None]:
    """``(grad_x, grad_w, grad_b)`` of the convolution whose forward made ``layout``; each
    None unless wanted. ``method``: "col2im", "correlation" (stride 1 only) or "auto"
    (correlation when ``out_channels <= in_channels``)."""
    N, C, H, W = layout.shape
    O, G = weight.shape[0], groups
    kernel, dilation = tuple(weight.shape[2:]), layout.dilation
    if method == "auto":
        method = "correlation" if O <= C else "col2im"
    flip_pads = flip_padding(kernel, dilation, layout.pads)
    by_correlation = (want_x and isinstance(layout, StripLayout) and method == "correlation"
                      and flip_pads is not None)
    grad_x = np.empty((N, C, H, W), dtype=layout.dtype) if want_x else None
    if by_correlation:
        kh, kw = kernel
        # Wt[c, o, i', j'] = W[o, c, kh-1-i', kw-1-j'] per group: a small copy, made once
        wt = weight.reshape(G, O // G, C // G, kh, kw)[:, :, :, ::-1, ::-1]
        wt = wt.transpose(0, 2, 1, 3, 4).reshape(G, C // G, O // G * kh * kw)
    # Per thread: [weight-gradient product, bias gradient] summed over its chunks.
    sums: dict[int, list[NDArray | None]] = {}

    def chunk(worker: int, index: int) -> None:
        start, stop = layout.chunks[index]
        if by_correlation:
            part_w = _chunk_by_correlation(grad_out[start:stop], layout, index,
                                           grad_x[start:stop], wt, flip_pads, G, worker, want_w)
            part_b = channel_sum(grad_out[start:stop]) if want_b else None
        else:
            part_w, part_b = _chunk_by_columns(grad_out[start:stop], layout, index, weight, G,
                                               worker, want_w, want_b,
                                               grad_x[start:stop] if want_x else None)
        acc = sums.setdefault(worker, [None, None])
        for i, part in enumerate((part_w, part_b)):
            if part is not None:
                acc[i] = part if acc[i] is None else np.add(acc[i], part, out=acc[i])

    run_chunks(chunk, range(len(layout.chunks)))
    partials = list(sums.values())
    grad_w = grad_b = None
    if want_w:
        if not partials:  # an empty batch
            grad_w = np.zeros_like(weight)
        else:
            grad_w = partials[0][0]
            for part in partials[1:]:
                grad_w += part[0]
            if by_correlation:  # (G, (O/G, kh', kw'), C/G), kh' = kh-1-i: unflip
                kh, kw = kernel
                grad_w = grad_w.reshape(G, O // G, kh, kw, C // G)[:, :, ::-1, ::-1]
                grad_w = grad_w.transpose(0, 1, 4, 2, 3)
            else:  # (G, K, O/G) from _chunk_by_columns
                grad_w = grad_w.transpose(0, 2, 1)
            grad_w = np.ascontiguousarray(grad_w).reshape(weight.shape)
    if want_b:
        grad_b = np.zeros(O, dtype=layout.dtype) if not partials else partials[0][1]
        for part in partials[1:]:
            grad_b += part[1]
    return grad_x, grad_w, grad_b


def _chunk_by_columns(grad_out: NDArray, layout: Layout, index: int, weight: NDArray,
                      G: int, worker: int, want_w: bool, want_b: bool,
                      grad_x: NDArray | None) -> tuple[NDArray | None, NDArray | None]:
    """One chunk's backward from the columns of x: returns the weight-gradient product
    transposed, ``(G, K, O/G)``, and the bias gradient (or None), writes ``grad_x``
    unless None."""
    O = grad_out.shape[1]
    w = weight.reshape(G, O // G, -1)
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


def _chunk_by_correlation(grad_out: NDArray, layout: StripLayout, index: int,
                          grad_x: NDArray, wt: NDArray, pads: Padding2d, G: int, worker: int,
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
    C = layout.shape[1]
    kh, kw = layout.kernel
    (ft, fb), (fl, fr) = pads
    H, W = grad_x.shape[2:]
    Ws = layout.width(index)
    gyp = pack_strip(grad_out, pads, layout.period,
                     out=scratch(f"conv2d.grad_out.{worker}", (O, oh + ft + fb, Ws),
                                 grad_out.dtype))
    K, L = O // G * kh * kw, H * Ws
    gcols = im2col_wide(gyp[None], layout.kernel, layout.dilation,
                        out=scratch(f"conv2d.grad_cols.{worker}", (O * kh * kw, L),
                                    gyp.dtype)).reshape(G, K, L)
    gx = np.matmul(wt, gcols, out=scratch(f"conv2d.y.{worker}", (G, C // G, L), gyp.dtype))
    np.copyto(grad_x, strip_images(gx.reshape(C, H, Ws), n, layout.period, W))
    if not want_w:
        return None
    xw = layout.pixels(index)  # (C, H*Ws), column (h, q) = x's strip at (pt + h, pl + q)
    return matmul(gcols, xw.reshape(G, C // G, L).transpose(0, 2, 1))
