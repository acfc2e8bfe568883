"""Fused softmax cross-entropy kernels: CrossEntropyLoss with class indices, made fast.

For ``(M, C)`` logits ``z`` and class indices ``t`` (no class weights; label smoothing
``eps`` and ignored rows are allowed), forward computes the shifted logits and their
exponentials ONCE:

    e[i, c] = exp(z[i, c] - max_c z[i, c]),   s[i] = sum_c e[i, c]
    l_i = v_i (log s[i] - (1 - eps) z'[i, t_i] - eps / C sum_c z'[i, c])

(``z' = z - max_c z``, ``v_i`` 0 for an ignored row, else 1) and, while each block of rows
is still in the cache, turns ``e`` in place into ``u v_i (e[i, c] / s[i] - eps / C)``
(``u = 1 / sum_i v_i`` for ``'mean'``, else 1). Backward completes the gradient in place,

    dl_i/dz[i, c] = g u v_i (e[i, c] / s[i] - eps / C - (1 - eps) [c == t_i])

with one write of ``M`` elements at the unique flat indices ``i * C + t_i``, and one
multiply by ``g`` (``grad_output``) only when ``g`` is not 1.

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

# Inputs with fewer elements stay in the calling thread (a hand-off costs ~0.1 ms; the
# 2048 x 65 logits of the char LSTM measured no faster split in two).
PARALLEL_MIN_SIZE = 1 << 18
# Elements per block when splitting (about 0.5 ms of exp): one block per thread for the
# usual sizes; fewer, larger blocks measured faster than many small ones.
BLOCK_SIZE = 1 << 18

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


def softmax_ce_forward(z: NDArray, index: NDArray, in_place: bool, unit: float | None,
                       smoothing: float = 0.0, valid: NDArray | None = None
                       ) -> tuple[NDArray, NDArray] | None:
    """Per-row losses and ``u v_i (softmax - eps / C)`` (see the module docstring), in
    ``z``'s dtype; None when ``z`` is not finite (checked on its maximum and minimum, before
    anything else is computed).

    ``z``: ``(M, C)`` C-contiguous logits, overwritten with the result when ``in_place``;
    ``index``: ``(M,)`` flat indices ``i * C + t_i`` of the targets (all ``t_i`` in
    ``[0, C)``; any class for an ignored row); ``unit``: ``u`` (``1 / sum_i v_i`` for
    ``'mean'``, so that backward has nothing left to scale), or None to skip the
    normalization (no backward); ``smoothing``: ``eps``; ``valid``: ``(M,)`` ``v_i`` in
    ``z``'s dtype, or None when no row is ignored.

    Where all logits of a row block lie in ``[-UNSHIFTED_LIMIT, UNSHIFTED_LIMIT]``, the
    shift by the row maximum is skipped (it cancels in ``e / s`` and in ``log s - z_t``,
    and ``exp`` can neither overflow nor underflow there): that saves a per-row maximum
    and a subtraction pass, and changes the loss only by rounding (``log s`` is rounded
    at a magnitude up to ``UNSHIFTED_LIMIT + log C`` instead of ``log C``).
    """
    m, c = z.shape
    limit = UNSHIFTED_LIMIT.get(z.dtype, -1.0)  # -1: always shift (e.g. float16)
    e = z if in_place else np.empty(z.shape, z.dtype)  # C order, for the flat index
    flat_z, flat_e = z.reshape(-1), e.reshape(-1)
    s = np.empty(m, z.dtype)
    picked = np.empty(m, z.dtype)  # target logits z[i, t_i], shifted like e
    row_sums = np.empty(m, z.dtype) if smoothing else None  # sum_c z'[i, c]
    finite = [True]

    def rows(lo: int, hi: int) -> None:
        z_rows, e_rows = z[lo:hi], e[lo:hi]
        if z_rows.size == 0:  # an empty batch: nothing to compute
            return
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
        if row_sums is not None:
            np.einsum("mc->m", z_rows, out=row_sums[lo:hi])
        np.exp(z_rows, out=e_rows)
        s_rows = np.einsum("mc->m", e_rows, out=s[lo:hi])  # faster than sum(axis=1)
        if unit is None:
            return
        # normalize while the block is still in the cache
        factor = np.divide(unit, s_rows)
        if valid is not None:
            factor *= valid[lo:hi]
        e_rows *= factor[:, None]
        if smoothing:
            shift = smoothing / c * unit
            e_rows -= shift if valid is None else (shift * valid[lo:hi])[:, None]

    _in_row_blocks(rows, m, z.size)
    if not finite[0]:
        return None
    per_row = np.log(s)
    if smoothing:
        picked *= 1.0 - smoothing
        row_sums *= smoothing / c
        picked += row_sums
    per_row -= picked
    if valid is not None:
        per_row *= valid
    return per_row, e


def softmax_ce_backward(probs: NDArray, index: NDArray, target_coef: float | NDArray,
                        grad_output: float | NDArray) -> NDArray:
    """Overwrite ``probs`` (forward's ``u v_i (softmax - eps / C)``) with the gradient
    ``grad_output * (probs - target_coef * onehot(t))`` and return it.

    ``index``: the flat target indices ``i * C + t_i``; ``target_coef``: ``(1 - eps) u``,
    or per row ``(1 - eps) u v_i`` when rows are ignored; ``grad_output``: a Python float
    (nothing to multiply when it is 1), or an ``(M,)`` array of per-row factors.
    """
    probs.reshape(-1)[index] -= target_coef  # one unique element per row
    if isinstance(grad_output, np.ndarray):
        factor = grad_output[:, None]
    elif grad_output != 1.0:
        factor = grad_output
    else:
        return probs

    def rows(lo: int, hi: int) -> None:
        probs[lo:hi] *= factor if not isinstance(factor, np.ndarray) else factor[lo:hi]

    _in_row_blocks(rows, probs.shape[0], probs.size)
    return probs
