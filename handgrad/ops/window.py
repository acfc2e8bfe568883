"""Sliding-window kernels shared by convolution and pooling: pure functions on arrays.

Everything here works on NCHW arrays and 2-D hyperparameters given as ``(h, w)`` pairs:

* ``pair`` / ``resolve_padding``: argument normalisation (int or pair, ``'valid'``/``'same'``);
* ``output_size`` / ``output_shape``: PyTorch's output-size rule
  ``floor((H + pad_before + pad_after - d*(k-1) - 1) / s) + 1`` (``ceil`` with ``ceil_mode``);
* ``pad2d`` / ``unpad2d``: constant padding (zeros for conv, ``-inf`` for max-pool);
* ``window_slice``: the strided slice of a padded image seen by one kernel offset;
* ``im2col`` / ``col2im``: the column matrix of all windows, and its adjoint;
* ``im2col_wide`` / ``col2im_wide``: the same for stride 1 in a "wide" layout whose rows are
  long contiguous runs (much cheaper copies for small images); ``ColumnFrame`` holds one
  image's wide column gradients framed by zeros, so their col2im is a single reduction;
* ``strip_period`` / ``pack_strip`` / ``strip_images``: a batch of images side by side in one
  zero-padded "strip" image (neighbours share their zero columns), so that a stride-1
  convolution of the whole chunk is one wide im2col of one image.

The column layout is ``(C*kh*kw, N*OH*OW)`` with rows ordered ``(c, i, j)`` like a PyTorch
conv weight ``(O, C, kh, kw)`` flattened, so a convolution is one matrix multiply
``weight.reshape(O, -1) @ cols`` (and groups just split the row axis).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

Pair = tuple[int, int]
Padding2d = tuple[Pair, Pair]  # ((top, bottom), (left, right))

__all__ = [
    "pair", "single", "resolve_padding", "output_size", "output_shape", "pad2d", "unpad2d",
    "window_slice", "window_view", "im2col", "col2im", "ceil_extra", "im2col_wide",
    "col2im_wide", "ColumnFrame", "strip_period", "pack_strip", "strip_images",
]


def pair(value: Any, name: str = "value", who: str = "window", minimum: int = 1) -> Pair:
    """``(v, v)`` for an int ``v``, or the pair itself; every entry an int >= ``minimum``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        values = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
    ):
        values = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"{who}: expected {name} as an int or a pair of ints, got {value!r}")
    if min(values) < minimum:
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{who}: expected {bound} {name}, got {value!r}")
    return values


def single(value: Any, name: str = "value", who: str = "window", minimum: int = 1) -> int:
    """``v`` for an int ``v`` or a 1-tuple ``(v,)`` (PyTorch's 1-d arguments), ``>= minimum``."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if value < minimum:
            bound = "positive" if minimum == 1 else f">= {minimum}"
            raise ValueError(f"{who}: expected {bound} {name}, got {value!r}")
        return int(value)
    raise ValueError(f"{who}: expected {name} as an int or a 1-tuple of ints, got {value!r}")


def resolve_padding(padding: Any, kernel_size: Pair, stride: Pair = (1, 1),
                    dilation: Pair = (1, 1), who: str = "window") -> Padding2d:
    """``((top, bottom), (left, right))`` for an int, a pair, ``'valid'`` or ``'same'``.

    ``'same'`` (stride 1 only, as in PyTorch) pads ``d*(k-1)`` in total per axis, the
    smaller half before and the larger after, so even kernels pad asymmetrically.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if tuple(stride) != (1, 1):
                raise ValueError(
                    f"{who}: padding='same' needs stride 1 (as in PyTorch), got stride {stride}"
                )
            pads = []
            for k, d in zip(kernel_size, dilation):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return pads[0], pads[1]
        raise ValueError(
            f"{who}: expected padding 'valid', 'same', an int or a pair, got {padding!r}"
        )
    ph, pw = pair(padding, "padding", who, minimum=0)
    return (ph, ph), (pw, pw)


def output_size(size: int, kernel: int, stride: int = 1, padding: int | Pair = 0,
                dilation: int = 1, ceil_mode: bool = False) -> int:
    """Number of window positions along one axis (PyTorch's rule; may be < 1).

    ``padding`` is the per-side padding (int) or ``(before, after)``. With ``ceil_mode``
    (pooling) the last window may hang over the end, but must start inside the input or
    the leading padding, as in PyTorch.
    """
    before, after = (padding, padding) if isinstance(padding, (int, np.integer)) else padding
    span = size + before + after - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1 if span >= 0 else 0
    # ceil(span / stride), floored as PyTorch does: a window that overhangs the padded
    # input by less than a stride still counts.
    out = (span + stride - 1) // stride + 1
    if out < 1:
        return 0
    if (out - 1) * stride >= size + before:
        out -= 1
    return out


def output_shape(in_hw: tuple[int, int], kernel_size: Pair, stride: Pair, padding: Padding2d,
                 dilation: Pair = (1, 1), ceil_mode: bool = False,
                 who: str | Callable[[], str] = "window") -> Pair:
    """``(OH, OW)``, or a ValueError naming ``who`` when the output would be empty (``who``
    may be a function giving the name, called only then: a layer's ``describe``)."""
    out = tuple(
        output_size(in_hw[a], kernel_size[a], stride[a], padding[a], dilation[a], ceil_mode)
        for a in range(2)
    )
    if min(out) < 1:
        extent = tuple(dilation[a] * (kernel_size[a] - 1) + 1 for a in range(2))
        padded = tuple(in_hw[a] + padding[a][0] + padding[a][1] for a in range(2))
        raise ValueError(
            f"{who() if callable(who) else who}: input of spatial size {tuple(in_hw)} (padded "
            f"{padded}) is too small for a "
            f"kernel covering {extent}; the output size would be {out}"
        )
    return out  # type: ignore[return-value]


def pad2d(x: NDArray, padding: Padding2d, value: float = 0.0, out: NDArray | None = None
          ) -> NDArray:
    """``x`` (N, C, H, W) padded with the constant ``value``; ``x`` itself if no padding.

    ``out`` (of the padded shape) receives the result instead of a new array.
    """
    (t, b), (l, r) = padding
    if t == b == l == r == 0:
        return x
    N, C, H, W = x.shape
    if out is None:
        out = np.empty((N, C, H + t + b, W + l + r), dtype=x.dtype)
    out[:, :, t:t + H, l:l + W] = x
    # Fill only the border (not the whole array twice).
    out[:, :, :t] = value
    out[:, :, t + H:] = value
    out[:, :, t:t + H, :l] = value
    out[:, :, t:t + H, l + W:] = value
    return out


def unpad2d(x: NDArray, padding: Padding2d) -> NDArray:
    """The interior of a padded (N, C, Hp, Wp) array: a view, the inverse of ``pad2d``."""
    (t, b), (l, r) = padding
    if t == b == l == r == 0:
        return x
    return x[:, :, t:x.shape[2] - b, l:x.shape[3] - r]


def window_slice(i: int, j: int, out_hw: Pair, stride: Pair, dilation: Pair = (1, 1)
                 ) -> tuple[slice, slice]:
    """The (rows, cols) slices of a padded image read by kernel offset ``(i, j)``.

    ``xp[..., rows, cols]`` has shape (..., OH, OW): element ``(oh, ow)`` is
    ``xp[..., oh*sh + i*dh, ow*sw + j*dw]``.
    """
    (oh, ow), (sh, sw), (dh, dw) = out_hw, stride, dilation
    return (slice(i * dh, i * dh + sh * (oh - 1) + 1, sh),
            slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))


def window_view(xp: NDArray, kernel_size: Pair, stride: Pair, dilation: Pair = (1, 1)
                ) -> NDArray:
    """Read-only strided view (N, C, kh, kw, OH, OW) of every window of padded ``xp``."""
    N, C, Hp, Wp = xp.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    oh = (Hp - dh * (kh - 1) - 1) // sh + 1
    ow = (Wp - dw * (kw - 1) - 1) // sw + 1
    s = xp.strides
    return _read_only_view(xp, (N, C, kh, kw, oh, ow),
                           (s[0], s[1], dh * s[2], dw * s[3], sh * s[2], sw * s[3]))


def _read_only_view(a: NDArray, shape: tuple[int, ...], strides: tuple[int, ...]) -> NDArray:
    """``as_strided(a, shape, strides, writeable=False)``, about 4x cheaper for a contiguous
    ``a`` (an ndarray over its buffer: NumPy checks that the view stays inside it). Kernels
    working through a batch in chunks make thousands of these per training step."""
    if not a.flags.c_contiguous:
        return np.lib.stride_tricks.as_strided(a, shape, strides, writeable=False)
    view = np.ndarray(shape, a.dtype, a, 0, strides)
    view.flags.writeable = False
    return view


def im2col(xp: NDArray, kernel_size: Pair, stride: Pair, dilation: Pair = (1, 1),
           out: NDArray | None = None) -> NDArray:
    """Columns ``(C*kh*kw, N*OH*OW)`` of padded ``xp`` (N, C, Hp, Wp).

    ``cols[(c, i, j), (n, oh, ow)] = xp[n, c, oh*sh + i*dh, ow*sw + j*dw]``. One strided
    copy; ``out`` (C-contiguous, right shape and dtype) is reused when given.
    """
    N, C = xp.shape[:2]
    kh, kw = kernel_size
    view = window_view(xp, kernel_size, stride, dilation)  # (N, C, kh, kw, OH, OW)
    oh, ow = view.shape[4:]
    shape = (C * kh * kw, N * oh * ow)
    if out is None or out.shape != shape or out.dtype != xp.dtype:
        out = np.empty(shape, dtype=xp.dtype)
    np.copyto(out.reshape(C, kh, kw, N, oh, ow), view.transpose(1, 2, 3, 0, 4, 5))
    return out


def col2im(cols: NDArray, padded_shape: tuple[int, int, int, int], kernel_size: Pair,
           stride: Pair, dilation: Pair = (1, 1), dtype: DTypeLike | None = None) -> NDArray:
    """Adjoint of ``im2col``: sum every column entry back into a new (N, C, Hp, Wp) array.

    A loop over the kh*kw kernel offsets, each adding one strided slice (overlapping
    windows accumulate, positions no window reads stay zero).
    """
    N, C, Hp, Wp = padded_shape
    kh, kw = kernel_size
    (sh, sw), (dh, dw) = stride, dilation
    oh = (Hp - dh * (kh - 1) - 1) // sh + 1
    ow = (Wp - dw * (kw - 1) - 1) // sw + 1
    cols6 = cols.reshape(C, kh, kw, N, oh, ow)
    out = np.zeros(padded_shape, dtype=dtype or cols.dtype)
    out_cn = out.transpose(1, 0, 2, 3)  # (C, N, Hp, Wp) view
    disjoint = sh >= dh * (kh - 1) + 1 and sw >= dw * (kw - 1) + 1
    for i in range(kh):
        for j in range(kw):
            rows, cols_ = window_slice(i, j, (oh, ow), stride, dilation)
            if disjoint:  # no two offsets touch the same pixel: assign, don't add
                out_cn[:, :, rows, cols_] = cols6[:, i, j]
            else:
                out_cn[:, :, rows, cols_] += cols6[:, i, j]
    return out


def ceil_extra(size: int, kernel: int, stride: int, padding: int, dilation: int, out: int) -> int:
    """Extra trailing padding so that ``out`` windows fit (ceil_mode may need it)."""
    need = (out - 1) * stride + dilation * (kernel - 1) + 1
    return max(0, need - (size + 2 * padding))


def im2col_wide(xp: NDArray, kernel_size: Pair, dilation: Pair = (1, 1),
                out: NDArray | None = None) -> NDArray:
    """Stride-1 columns in the wide layout ``(C*kh*kw, N*OH*Wp)``.

    Like ``im2col`` with stride 1, but each output row is ``Wp`` (the padded width) long
    instead of ``OW``: column ``(n, oh, q)`` holds the window starting at flat position
    ``oh*Wp + q`` of image n. Columns with ``q >= OW`` are garbage (they wrap into the next
    row; the last ``Wp - OW`` columns of each image, past the end of the image, are set to
    zero), so every row of the result is one contiguous run of ``xp`` per image: a cheap
    copy. All entries are finite for finite input, so garbage columns times zeros are zero.
    """
    N, C, Hp, Wp = xp.shape
    (kh, kw), (dh, dw) = kernel_size, dilation
    oh, ow = Hp - dh * (kh - 1), Wp - dw * (kw - 1)
    span = (oh - 1) * Wp + ow
    shape = (C * kh * kw, N * oh * Wp)
    if out is None or out.shape != shape or out.dtype != xp.dtype:
        out = np.empty(shape, dtype=xp.dtype)
    xp = np.ascontiguousarray(xp)
    s = xp.strides
    view = _read_only_view(xp, (C, kh, kw, N, span), (s[1], dh * s[2], dw * s[3], s[0], s[3]))
    out5 = out.reshape(C, kh, kw, N, oh * Wp)
    np.copyto(out5[..., :span], view)
    out5[..., span:] = 0
    return out


def col2im_wide(cols: NDArray, padded_shape: tuple[int, int, int, int], kernel_size: Pair,
                dilation: Pair = (1, 1)) -> NDArray:
    """Adjoint of ``im2col_wide`` (garbage columns must hold zeros): a new (N, C, Hp, Wp)."""
    N, C, Hp, Wp = padded_shape
    (kh, kw), (dh, dw) = kernel_size, dilation
    oh, ow = Hp - dh * (kh - 1), Wp - dw * (kw - 1)
    span = (oh - 1) * Wp + ow
    cols5 = cols.reshape(C, kh, kw, N, oh * Wp)
    out = np.zeros((N, C, Hp * Wp), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            start = i * dh * Wp + j * dw
            target = out[:, :, start:start + span]
            target += cols5[:, i, j, :, :span].transpose(1, 0, 2)
    return out.reshape(padded_shape)


class ColumnFrame:
    """Stride-1 column gradients of one padded image in the wide layout, every row framed
    by zeros, so that their col2im is one NumPy reduction.

    ``col2im_wide`` adds kh*kw shifted slices one after another: kh*kw NumPy calls, each
    letting go of the GIL and taking it back. Two threads doing that at once wait for each
    other at every call (measured: a pair of 25-add col2ims took 2.8x as long side by side
    in two threads as one alone). Here row ``(c, i, j)`` of :attr:`columns` lies in one
    buffer with ``gap`` zeros before and after it, so what kernel offset (i, j) gives pixel
    p of the padded image, ``columns[(c, i, j), p - i*dh*Wp - j*dw]`` (zero when no window
    of that offset covers p), is one fixed-stride read for every p, and :meth:`col2im` sums
    all offsets in one ``np.add.reduce`` over a strided view: one call, the same additions.

    Write the gradients into :attr:`columns` (``(C*kh*kw, OH*Wp)``, rows :attr:`stride`
    apart; garbage columns ``q >= OW`` of each row must be zero, as for ``col2im_wide``),
    for instance with ``np.matmul(..., out=frame.columns)``. Nothing else may write to the
    buffer: the gaps must stay zero (they are set once, when the frame is made).
    """

    def __init__(self, channels: int, padded_hw: Pair, kernel_size: Pair,
                 dilation: Pair = (1, 1), dtype: DTypeLike = np.float32):
        Hp, Wp = padded_hw
        (kh, kw), (dh, dw) = kernel_size, dilation
        oh, ow = Hp - dh * (kh - 1), Wp - dw * (kw - 1)
        if min(channels, oh, ow) < 1:
            raise ValueError(f"ColumnFrame: a {kh}x{kw} kernel with dilation {dilation} does "
                             f"not fit a padded image of {padded_hw} ({channels} channels)")
        self.shape = (channels, Hp, Wp)  # of the image col2im gives
        rows, span = channels * kh * kw, oh * Wp
        # The reads reach back i*dh*Wp + j*dw before a row and (dh*(kh-1))*Wp past its end.
        self.gap = dh * (kh - 1) * Wp + dw * (kw - 1)
        self.stride = span + self.gap  # from one row to the next, in elements
        buffer = np.zeros(self.gap + rows * self.stride, dtype)
        item, R = buffer.itemsize, self.stride
        self.columns = np.ndarray((rows, span), buffer.dtype, buffer, self.gap * item,
                                  (R * item, item))
        # view[c, i, j, p] = columns[(c, i, j), p - i*dh*Wp - j*dw]
        self._view = np.ndarray((channels, kh, kw, Hp * Wp), buffer.dtype, buffer,
                                self.gap * item,
                                (kh * kw * R * item, (kw * R - dh * Wp) * item,
                                 (R - dw) * item, item))
        self._view.flags.writeable = False

    def col2im(self, out: NDArray | None = None) -> NDArray:
        """The ``(C, Hp, Wp)`` image of the columns summed back onto their pixels (into
        ``out``, C-contiguous of that shape, when given)."""
        C, Hp, Wp = self.shape
        if out is None:
            out = np.empty((C, Hp, Wp), self.columns.dtype)
        elif out.shape != (C, Hp, Wp) or not out.flags.c_contiguous:
            raise ValueError(f"ColumnFrame.col2im: expected a C-contiguous out of shape "
                             f"{(C, Hp, Wp)}, got {out.shape}")
        np.add.reduce(self._view, axis=(1, 2), out=out.reshape(C, Hp * Wp))
        return out


def strip_period(width: int, padding: Pair, kernel: int, dilation: int = 1) -> int:
    """Columns from one image to the next when images of ``width`` sit side by side in a strip.

    Between two images there are ``gap = period - width`` zero columns, enough to be the right
    padding of one and the left padding of the next (``max(left, right)``), and enough that
    one image's stride-1 outputs (``width + left + right - d*(k-1)`` of them) end before the
    next image's begin. Sharing the padding columns makes the garbage columns of the wide
    layout fewer: for 8-pixel images and a 3x3 kernel with padding 1, 1 in 9 instead of 2 in 10.
    """
    left, right = padding
    return width + max(left, right, left + right - dilation * (kernel - 1))


def pack_strip(x: NDArray, padding: Padding2d, period: int, out: NDArray,
               zeroed: bool = False) -> NDArray:
    """Images ``x`` (n, C, H, W) side by side in the strip ``out`` (C, H + top + bottom, Ws).

    Image i's pixel (h, w) goes to ``out[:, top + h, left + i*period + w]``; every other entry
    is set to zero, unless ``zeroed`` says they are zero already (``out`` last held a strip
    of the same geometry). ``Ws`` must be at least ``left + n*period``. Returns ``out``.
    """
    n, C, H, W = x.shape
    (top, bottom), (left, _) = padding
    end = left + n * period
    if out.shape[:2] != (C, H + top + bottom) or out.shape[2] < end or period < W:
        raise ValueError(f"pack_strip: a strip of shape {out.shape} cannot hold {n} images of "
                         f"{(C, H, W)} with padding {padding} every {period} columns")
    if not zeroed:
        out.fill(0)  # one pass: faster than zeroing the padding and the gaps piece by piece
    cells = _cells(out[:, top:top + H, left:end], n, period)  # (C, H, n, period)
    np.copyto(cells[..., :W], x.transpose(1, 2, 0, 3))
    return out


def strip_images(a: NDArray, n: int, period: int, width: int, offset: int = 0) -> NDArray:
    """The view ``(n, *lead, rows, width)`` of ``n`` images side by side in ``a`` (*lead, rows,
    Ws): image i's column w is ``a[..., offset + i*period + w]`` (the inverse of pack_strip's
    placement, for any leading axes)."""
    cells = _cells(a[..., offset:offset + n * period], n, period)[..., :width]
    lead = cells.ndim - 2
    return cells.transpose((lead,) + tuple(range(lead)) + (lead + 1,))


def _cells(a: NDArray, n: int, period: int) -> NDArray:
    """``a`` (..., n*period) viewed as (..., n, period): splitting the last axis never needs a
    copy, so NumPy's reshape returns a view (pack_strip writes through it)."""
    return a.reshape(a.shape[:-1] + (n, period))
