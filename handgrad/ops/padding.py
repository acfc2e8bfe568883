"""The one padding kernel: constant, reflect, replicate and circular padding, and its adjoint.

Used by the padding layers (``ZeroPad2d``, ``ReflectionPad1d``, ...) and by the convolutions'
``padding_mode``. Padding is given for the trailing axes, outermost first, as
``((before, after), ...)``: for an (N, C, H, W) image ``((top, bottom), (left, right))``.
The axes are padded one after another (all four modes are separable, so the corners come out
as PyTorch's), each by copying the interior and filling the borders with slices:

* ``constant``: ``value``; a negative amount crops instead (as ``torch.nn.ConstantPad2d``);
* ``reflect``: mirror without repeating the edge (``d c b | a b c d | c b a``), amounts < size;
* ``replicate``: repeat the edge (``a a | a b c d | d d``);
* ``circular``: wrap around (``c d | a b c d | a b``), amounts <= size.

The backward folds the border gradients back onto the pixels they were copied from, with the
same slices in reverse (a reversed slice for reflect, a sum for replicate, a shifted slice for
circular): no scatter, no ``np.add.at``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["PAD_MODES", "pad", "backprop_pad", "check_padding"]

PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _at(axis: int, ndim: int, s: slice) -> tuple:
    """An index selecting ``s`` along ``axis`` (counted from the end: -1 is the last axis)."""
    return (slice(None),) * (ndim + axis) + (s,)


def check_padding(shape: Sequence[int], padding: Sequence[tuple[int, int]], mode: str,
                  who: str = "pad") -> None:
    """ValueError naming ``who`` when ``padding`` does not fit ``shape`` under ``mode``."""
    if mode not in PAD_MODES:
        raise ValueError(f"{who}: expected a padding mode in {PAD_MODES}, got {mode!r}")
    k = len(padding)
    for axis, (before, after) in zip(range(-k, 0), padding):
        size = shape[axis]
        if mode != "constant" and (before < 0 or after < 0):
            raise ValueError(f"{who}: negative padding ({before}, {after}) is only supported "
                             f"with constant padding, got mode {mode!r}")
        if mode == "constant":
            if size + before + after < 0:
                raise ValueError(f"{who}: padding ({before}, {after}) crops more than the "
                                 f"input size {size} along axis {len(shape) + axis}")
        elif mode == "reflect" and max(before, after) >= size:
            raise ValueError(f"{who}: reflect padding ({before}, {after}) must be smaller than "
                             f"the input size {size} along axis {len(shape) + axis} "
                             f"(input shape {tuple(shape)})")
        elif mode == "circular" and max(before, after) > size:
            raise ValueError(f"{who}: circular padding ({before}, {after}) must be at most the "
                             f"input size {size} along axis {len(shape) + axis} (it would wrap "
                             f"around more than once; input shape {tuple(shape)})")
        elif mode == "replicate" and size < 1 and before + after > 0:
            raise ValueError(f"{who}: replicate padding needs a non-empty axis "
                             f"{len(shape) + axis}, got input shape {tuple(shape)}")


def _pad_axis(x: NDArray, axis: int, before: int, after: int, mode: str, value: float
              ) -> NDArray:
    nd = x.ndim
    if before < 0 or after < 0:  # constant only: crop first
        x = x[_at(axis, nd, slice(max(-before, 0), x.shape[axis] - max(-after, 0)))]
        before, after = max(before, 0), max(after, 0)
    if before == after == 0:
        return x
    size = x.shape[axis]
    shape = list(x.shape)
    shape[axis] = size + before + after
    out = np.empty(shape, x.dtype)
    out[_at(axis, nd, slice(before, before + size))] = x
    left = out[_at(axis, nd, slice(0, before))]
    right = out[_at(axis, nd, slice(before + size, before + size + after))]
    rev = _at(axis, nd, slice(None, None, -1))
    if mode == "constant":
        left[...] = value
        right[...] = value
    elif mode == "reflect":  # out[before - q] = x[q], out[before + size - 1 + q] = x[size-1-q]
        left[...] = x[_at(axis, nd, slice(1, before + 1))][rev]
        right[...] = x[_at(axis, nd, slice(size - 1 - after, size - 1))][rev]
    elif mode == "replicate":
        left[...] = x[_at(axis, nd, slice(0, 1))]
        right[...] = x[_at(axis, nd, slice(size - 1, size))]
    else:  # circular
        left[...] = x[_at(axis, nd, slice(size - before, size))]
        right[...] = x[_at(axis, nd, slice(0, after))]
    return out


def _fold_axis(g: NDArray, axis: int, before: int, after: int, mode: str, size: int
               ) -> NDArray:
    """Adjoint of ``_pad_axis``: the gradient of the ``size`` input positions."""
    nd = g.ndim
    if before < 0 or after < 0:  # constant with cropping: zeros where x was cropped
        lo, hi = max(-before, 0), max(-after, 0)
        inner = _fold_axis(g, axis, max(before, 0), max(after, 0), mode, size - lo - hi)
        shape = list(g.shape)
        shape[axis] = size
        out = np.zeros(shape, g.dtype)
        out[_at(axis, nd, slice(lo, size - hi))] = inner
        return out
    if before == after == 0:
        return g
    grad = g[_at(axis, nd, slice(before, before + size))].copy()
    left = g[_at(axis, nd, slice(0, before))]
    right = g[_at(axis, nd, slice(before + size, before + size + after))]
    rev = _at(axis, nd, slice(None, None, -1))
    if mode == "reflect":
        grad[_at(axis, nd, slice(1, before + 1))] += left[rev]
        grad[_at(axis, nd, slice(size - 1 - after, size - 1))] += right[rev]
    elif mode == "replicate":
        grad[_at(axis, nd, slice(0, 1))] += left.sum(axis=axis, keepdims=True)
        grad[_at(axis, nd, slice(size - 1, size))] += right.sum(axis=axis, keepdims=True)
    elif mode == "circular":
        grad[_at(axis, nd, slice(size - before, size))] += left
        grad[_at(axis, nd, slice(0, after))] += right
    return grad


def pad(x: NDArray, padding: Sequence[tuple[int, int]], mode: str = "constant",
        value: float = 0.0, who: str = "pad") -> NDArray:
    """``x`` padded along its last ``len(padding)`` axes (``x`` itself when all are zero).

    ``padding[a] = (before, after)`` for axis ``a - len(padding)``; ``mode`` one of
    :data:`PAD_MODES`; ``value`` fills constant padding. Errors name ``who``.
    """
    padding = tuple((int(b), int(a)) for b, a in padding)
    check_padding(x.shape, padding, mode, who)
    k = len(padding)
    for axis, (before, after) in reversed(list(zip(range(-k, 0), padding))):
        x = _pad_axis(x, axis, before, after, mode, value)
    return x


def backprop_pad(grad_out: NDArray, padding: Sequence[tuple[int, int]], mode: str = "constant"
                 ) -> NDArray:
    """The gradient w.r.t. the input of :func:`pad`: every padded entry's gradient added to
    the input entry it was copied from (constant padding's entries have none)."""
    padding = tuple((int(b), int(a)) for b, a in padding)
    k = len(padding)
    g = grad_out
    for axis, (before, after) in zip(range(-k, 0), padding):
        size = g.shape[axis] - before - after
        g = _fold_axis(g, axis, before, after, mode, size)
    return g
