"""ReLU's backward and the residual add + ReLU as compiled passes (the Numba backend).

The NumPy twins: ``handgrad.layers.activation.backprop_relu`` (three passes: a mask, its
negation into all-ones bit patterns, an AND) and the end of
``handgrad.models.resnet.BasicBlock.forward`` (``y += skip`` then ``relu(y, out=y)``, two
passes). Same numbers exactly; flat contiguous arrays, shared between handgrad's threads in
blocks like the NumPy path (``ops.parallel.split``).
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .parallel import run_chunks, split

__all__ = ["relu_backward", "add_relu"]

ZERO = np.float32(0.0)  # float32 so that float32 data stays float32 (float64 stays float64)


@kernel
def relu_backward_block(grad_out, y, grad_x, lo, hi):
    """``grad_x = grad_out where y > 0, else exactly 0`` (also for NaN/inf ``grad_out``)."""
    # Zero-based loops over views of the block and a zero in the data's dtype: the compiler
    # turns the choice into a vector select. Written as ``for k in range(lo, hi)`` with a
    # Python 0.0 it stays a branch on the data (measured, 524288 float32 values with half of
    # y at 0: 3260 us that way, 75 us this way, NumPy's three passes 166 us).
    g_block, y_block, out_block = grad_out[lo:hi], y[lo:hi], grad_x[lo:hi]
    for k in range(g_block.size):
        out_block[k] = g_block[k] if y_block[k] > 0 else ZERO


@kernel
def add_relu_block(y, skip, lo, hi):
    """``y = max(y + skip, 0)`` in place (NaN stays NaN, as ``np.maximum``)."""
    # As above (measured: 524288 float32 values 276 us as a range(lo, hi) loop, 57 us this
    # way, NumPy's two passes 127 us).
    y_block, skip_block = y[lo:hi], skip[lo:hi]
    for k in range(y_block.size):
        total = y_block[k] + skip_block[k]
        y_block[k] = ZERO if total < 0 else total  # NaN is not < 0: it stays (one select)


def _flat(*arrays):
    if not all(a.flags.c_contiguous for a in arrays):
        return None
    return [a.reshape(-1) for a in arrays]


def relu_backward(grad_out, y):
    """``backprop_relu`` in one pass; None when an array is not contiguous."""
    arrays = _flat(grad_out, y)
    if arrays is None:
        return None
    g, yf = arrays
    grad_x = np.empty_like(grad_out)
    gx = grad_x.reshape(-1)
    run_chunks(lambda worker, b: relu_backward_block(g, yf, gx, b[0], b[1]),
               split(g.size, grad_out.nbytes))
    return grad_x


def add_relu(y, skip) -> bool:
    """``y = relu(y + skip)`` in place in one pass; False when an array is not contiguous
    (or their dtypes differ: the NumPy path then does it)."""
    arrays = _flat(y, skip)
    if arrays is None or y.dtype != skip.dtype:
        return False
    yf, sf = arrays
    run_chunks(lambda worker, b: add_relu_block(yf, sf, b[0], b[1]), split(yf.size, y.nbytes))
    return True
