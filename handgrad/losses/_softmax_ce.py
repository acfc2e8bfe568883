"""Fused softmax cross-entropy kernels: the common case of CrossEntropyLoss, made fast.

For ``(M, C)`` logits ``z`` and class indices ``t`` (no weights, no label smoothing, no
ignored rows), forward computes the shifted logits and their exponentials ONCE:

    e[i, c] = exp(z[i, c] - max_c z[i, c]),   s[i] = sum_c e[i, c]
    l_i = log s[i] - (z[i, t_i] - max_c z[i, c])

and keeps ``e`` and ``s``. Backward turns ``e`` into the gradient in place:

    dl_i/dz[i, c] = g_i (e[i, c] / s[i] - [c == t_i])

(``g_i`` the upstream factor: ``grad_output / M`` for ``'mean'``), one multiply by a
per-row factor and one write of ``M`` elements at unique flat indices ``i * C + t_i``.

NumPy's float32 ``exp`` costs about 2 ns per element on one core, most of the step; so for
large inputs (at least ``PARALLEL_MIN_SIZE`` elements) the rows are cut into blocks that
``handgrad.ops.parallel.run_chunks`` shares between threads (``handgrad.set_num_threads``;
NumPy releases the GIL inside each call). Each element sees the same operations either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from ..ops.parallel import get_num_threads, run_chunks

# Inputs with fewer elements stay in the calling thread (a hand-off costs ~20-80 us).
PARALLEL_MIN_SIZE = 1 << 17
# Elements per block when splitting (about 0.1 ms of exp).
BLOCK_SIZE = 1 << 16

# Logits within +-this need no shift by the row maximum (see softmax_ce_forward).
UNSHIFTED_LIMIT = {np.dtype(np.float32): 16.0, np.dtype(np.float64): 16.0}


def _in_row_blocks(kernel: Callable[[int, int], None], m: int, size: int) -> None:
    """Run ``kernel(lo, hi)`` over row blocks covering ``[0, m)``: in the calling thread
    for small inputs, else over a few blocks per thread, each thread taking the next block
    when done with one."""
    threads = get_num_threads() if size >= PARALLEL_MIN_SIZE else 1
    if threads <= 1:
        kernel(0, m)
        return
    blocks = min(m, max(threads, min(4 * threads, size // BLOCK_SIZE)))
    bounds = [m * i // blocks for i in range(blocks + 1)]
    run_chunks(lambda worker, rows: kernel(*rows), list(zip(bounds[:-1], bounds[1:])),
               threads)


def softmax_ce_forward(z: NDArray, index: NDArray, in_place: bool
                       ) -> tuple[NDArray, NDArray, NDArray] | None:
    """Per-row losses, ``e`` and ``s`` (see the module docstring), all in ``z``'s dtype;
    None when ``z`` is not finite (checked on its maximum and minimum, before anything
    else is computed).

    ``z``: ``(M, C)`` C-contiguous logits, overwritten with ``e`` when ``in_place``;
    ``index``: ``(M,)`` flat indices ``i * C + t_i`` of the targets (all ``t_i`` in
    ``[0, C)``).

    Where all logits of a row block lie in ``[-UNSHIFTED_LIMIT, UNSHIFTED_LIMIT]``, the
    shift by the row maximum is skipped (it cancels in ``e / s`` and in ``log s - z_t``,
    and ``exp`` can neither overflow nor underflow there): that saves a per-row maximum
    and a subtraction pass, and changes the loss only by rounding (``log s`` is rounded
    at a magnitude up to ``UNSHIFTED_LIMIT + log C`` instead of ``log C``).
    """
    m = z.shape[0]
    limit = UNSHIFTED_LIMIT.get(z.dtype, -1.0)  # -1: always shift (e.g. float16)
    e = z if in_place else np.empty(z.shape, z.dtype)  # C order, for the flat index
    flat_z, flat_e = z.reshape(-1), e.reshape(-1)
    s = np.empty(m, z.dtype)
    picked = np.empty(m, z.dtype)  # target logits z[i, t_i], shifted like e
    finite = [True]

    def rows(lo: int, hi: int) -> None:
        z_rows, e_rows = z[lo:hi], e[lo:hi]
        high, low = float(z_rows.max()), float(z_rows.min())
        if not (math.isfinite(high) and math.isfinite(low)):
            finite[0] = False  # NaN or +-inf somewhere in these rows
            return
        if -limit <= low and high <= limit:
            picked[lo:hi] = flat_z[index[lo:hi]]
        else:
            np.subtract(z_rows, z_rows.max(axis=1, keepdims=True), out=e_rows)
            picked[lo:hi] = flat_e[index[lo:hi]]
            z_rows = e_rows
        np.exp(z_rows, out=e_rows)
        np.einsum("mc->m", e_rows, out=s[lo:hi])  # row sums; faster than sum(axis=1)

    _in_row_blocks(rows, m, z.size)
    if not finite[0]:
        return None
    per_row = np.log(s)
    per_row -= picked
    return per_row, e, s


def softmax_ce_backward(e: NDArray, s: NDArray, index: NDArray, scale: float | NDArray
                        ) -> NDArray:
    """Overwrite ``e`` with the gradient ``scale * (e / s - onehot(t))`` and return it.

    ``index``: the flat target indices ``i * C + t_i``; ``scale``: a Python float, or an
    ``(M,)`` array of per-row factors (``'none'``).
    """
    row_factor = np.divide(scale, s)[:, None]  # (M, 1) g_i / s_i, in e's dtype (s is)

    def rows(lo: int, hi: int) -> None:
        e[lo:hi] *= row_factor[lo:hi]

    _in_row_blocks(rows, e.shape[0], e.size)
    e.reshape(-1)[index] -= scale  # one unique element per row
    return e
