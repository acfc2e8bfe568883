"""Element-wise kernels that need care to be fast in NumPy.

``np.maximum(x, 0)`` with a *scalar* 0 takes NumPy 2.x's slow broadcasting loop: measured
here (NumPy 2.4, AVX2) 26 us for 32K float32 elements and 820 us for 1M, against 5 us and
200 us when the other operand is an array. :func:`clamp_min_zero` therefore takes the
maximum against a small read-only block of zeros, viewing the flat input as rows of that
block's length (the block stays in cache; no array of the input's size is read).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["clamp_min_zero"]

BLOCK = 16384  # elements in the zeros block (64 KB in float32)

_zero_blocks: dict[np.dtype, NDArray] = {}


def _zeros(dtype: np.dtype) -> NDArray:
    block = _zero_blocks.get(dtype)
    if block is None:
        block = np.zeros(BLOCK, dtype=dtype)
        block.flags.writeable = False
        _zero_blocks[dtype] = block
    return block


def clamp_min_zero(x: NDArray, out: NDArray) -> NDArray:
    """``out = max(x, 0)`` element-wise (NaN stays NaN, as ``np.maximum``); ``out`` may be
    ``x``. Both must have the same shape and dtype; contiguous arrays take the fast path."""
    if not (x.flags.c_contiguous and out.flags.c_contiguous) or x.dtype != out.dtype:
        return np.maximum(x, 0, out=out)
    zeros = _zeros(x.dtype)
    xf, of = x.reshape(-1), out.reshape(-1)
    n = xf.size
    rows = n // BLOCK
    if rows:
        body = rows * BLOCK
        np.maximum(xf[:body].reshape(rows, BLOCK), zeros, out=of[:body].reshape(rows, BLOCK))
    else:
        body = 0
    if n > body:
        np.maximum(xf[body:], zeros[:n - body], out=of[body:])
    return out
