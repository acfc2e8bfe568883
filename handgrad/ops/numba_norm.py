"""BatchNorm's training forward and backward as compiled loops (the Numba backend).

The NumPy twin is ``handgrad.layers.normalization._BatchNorm``; these kernels take the same
``(N, C, S)`` views and produce the same arrays (the cached ``xc = x - mean`` and ``invstd``
included), one channel at a time over ``c0 <= c < c1`` so that handgrad's threads can take
channel blocks (``ops.parallel.run_chunks``) while the compiled code runs without the GIL.

Sums are accumulated in float64. They run over the batch first, into one accumulator per
position ``s`` (a loop the compiler vectorises without reordering any addition), then over
the positions. The per-element work runs in the data's dtype: the per-channel coefficients
are rounded to it first (stored in a typed array and read back), since a float64 scalar
would turn every float32 operation of the loop into a float64 one at half the vector width.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .parallel import even_ranges, get_num_threads, run_chunks

__all__ = ["batch_norm_forward", "batch_norm_backward", "batch_norm_eval", "batch_norm_train",
           "batch_norm_train_backward", "batch_norm_running"]


@kernel
def batch_norm_forward(x, weight, bias, eps, c0, c1, xc, y, mean, var, invstd):
    """Training forward of channels ``c0 .. c1 - 1`` with M = N * S values each:

        mean = sum(x) / M;   xc = x - mean;   var = sum(xc^2) / M   (biased)
        invstd = 1 / sqrt(var + eps);   y = xc * (weight * invstd) + bias

    Writes ``xc``, ``y`` (N, C, S) and ``mean``, ``var``, ``invstd`` (C,).
    """
    n_batch, _, n_pos = x.shape
    m = n_batch * n_pos
    acc = np.empty(n_pos)  # float64
    for c in range(c0, c1):
        acc[:] = 0.0
        for n in range(n_batch):
            for s in range(n_pos):
                acc[s] += x[n, c, s]
        mu = acc.sum() / m
        acc[:] = 0.0
        for n in range(n_batch):
            for s in range(n_pos):
                d = x[n, c, s] - mu
                xc[n, c, s] = d
                acc[s] += d * d
        v = acc.sum() / m
        mean[c] = mu
        var[c] = v
        invstd[c] = 1.0 / np.sqrt(v + eps)
        scale = weight[c] * invstd[c]  # in x's dtype (see the module docstring)
        shift = bias[c]
        for n in range(n_batch):
            for s in range(n_pos):
                y[n, c, s] = xc[n, c, s] * scale + shift


@kernel
def batch_norm_backward(grad_out, xc, invstd, weight, c0, c1, grad_x, sum_g, sum_g_xhat):
    """Training backward of channels ``c0 .. c1 - 1`` (M = N * S values each). With
    ``xhat = xc * invstd`` and ``a = weight * invstd``:

        sum_g = sum(g)                    (the bias gradient)
        sum_g_xhat = sum(g * xhat)        (the weight gradient)
        grad_x = a * (g - sum_g / M - xhat * sum_g_xhat / M)

    Writes ``grad_x`` (N, C, S), ``sum_g`` and ``sum_g_xhat`` (C,).
    """
    n_batch, _, n_pos = xc.shape
    m = n_batch * n_pos
    acc_g = np.empty(n_pos)
    acc_gx = np.empty(n_pos)
    coef = np.empty(3, xc.dtype)  # per-channel coefficients, rounded to the data's dtype
    for c in range(c0, c1):
        acc_g[:] = 0.0
        acc_gx[:] = 0.0
        for n in range(n_batch):
            for s in range(n_pos):
                g = grad_out[n, c, s]
                acc_g[s] += g
                acc_gx[s] += g * xc[n, c, s]
        inv = invstd[c]
        sum_g[c] = acc_g.sum()
        sum_g_xhat[c] = acc_gx.sum() * inv
        coef[0] = weight[c] * inv  # a
        coef[1] = sum_g[c] / m  # mean(g)
        coef[2] = sum_g_xhat[c] / m  # mean(g * xhat)
        a, mean_g, mean_g_xhat = coef[0], coef[1], coef[2]
        for n in range(n_batch):
            for s in range(n_pos):
                xhat = xc[n, c, s] * inv
                grad_x[n, c, s] = a * (grad_out[n, c, s] - mean_g - xhat * mean_g_xhat)


@kernel
def batch_norm_eval(x, scale, shift, c0, c1, y):
    """Eval forward with the running statistics folded into ``scale`` and ``shift`` (C,):
    ``y = x * scale + shift`` for channels ``c0 .. c1 - 1``, one pass."""
    n_batch, _, n_pos = x.shape
    for n in range(n_batch):
        for c in range(c0, c1):
            a = scale[c]
            b = shift[c]
            for s in range(n_pos):
                y[n, c, s] = x[n, c, s] * a + b


# ------------------------------------------------------------------ callers (plain Python)
# Above this many bytes of input the channels are shared between handgrad's threads. Below
# it one thread is faster: measured (N=32, 2 threads, ResNet-20's three BatchNorm2d sizes,
# forward + backward) 1.25 / 0.35 / 0.19 ms on one thread against 1.67 / 0.53 / 0.20 ms
# with the channels split in two; the kernels are bound by memory, not by arithmetic.
FUSED_PARALLEL_BYTES = 8 << 20


def _channel_blocks(c: int, nbytes: int) -> list[tuple[int, int]]:
    parts = get_num_threads() if nbytes >= FUSED_PARALLEL_BYTES else 1
    return even_ranges(c, max(1, min(c, parts)))


def _affine(weight, bias, c: int, dtype):
    """The affine parameters: ones for a missing weight (``affine=False``), zeros for a
    missing bias (``affine=False`` or ``bias=False``)."""
    return (np.ones(c, dtype) if weight is None else weight,
            np.zeros(c, dtype) if bias is None else bias)


def batch_norm_train(x3, weight, bias, eps: float, xc):
    """:func:`batch_norm_forward` over all channels: returns ``(y, mean, var, invstd)`` and
    fills ``xc`` (the caller's reusable buffer)."""
    n, c, s = x3.shape
    weight, bias = _affine(weight, bias, c, x3.dtype)
    y = np.empty_like(x3)
    mean, var, invstd = (np.empty(c, x3.dtype) for _ in range(3))
    run_chunks(lambda worker, b: batch_norm_forward(x3, weight, bias, eps, b[0], b[1], xc, y,
                                                    mean, var, invstd),
               _channel_blocks(c, x3.nbytes))
    return y, mean, var, invstd


def batch_norm_train_backward(g3, xc, invstd, weight):
    """:func:`batch_norm_backward` over all channels: ``(grad_x, sum_g, sum_g_xhat)``."""
    n, c, s = xc.shape
    weight, _ = _affine(weight, weight, c, xc.dtype)
    grad_x = np.empty_like(xc)
    sum_g, sum_g_xhat = np.empty(c, xc.dtype), np.empty(c, xc.dtype)
    run_chunks(lambda worker, b: batch_norm_backward(g3, xc, invstd, weight, b[0], b[1],
                                                     grad_x, sum_g, sum_g_xhat),
               _channel_blocks(c, xc.nbytes))
    return grad_x, sum_g, sum_g_xhat


def batch_norm_running(x3, scale, shift):
    """:func:`batch_norm_eval` over all channels (``scale``, ``shift`` in x's dtype)."""
    c = x3.shape[1]
    y = np.empty_like(x3)
    run_chunks(lambda worker, b: batch_norm_eval(x3, scale, shift, b[0], b[1], y),
               _channel_blocks(c, x3.nbytes))
    return y
