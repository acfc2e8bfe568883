"""Time loops of one direction of one recurrent layer (RNN, LSTM, GRU), forward and BPTT.

Pure array functions shared by the recurrent layers and the cells. Each forward takes the
input sequence ``x`` (T, N, I) in time order, the initial state, the weights in PyTorch's
layout and ``reverse`` (process t = T-1 .. 0), and returns ``(y, final_state, cache)``:

* ``y`` (T, N, H): the hidden state at every time step, in time order (a view of the cache);
* ``final_state``: a tuple ``(h,)`` or ``(h, c)`` for the LSTM;
* ``cache``: what the backward needs (``None`` when ``keep`` is False).

The matching backward takes the cache, ``grad_y`` (T, N, H) and the gradient arriving at the
final state (a tuple of arrays or ``None``s) and returns ``(grad_init, grad_pre_ih,
grad_pre_hh, prev_h)``: the gradient of the initial state, the gradients of the gate
pre-activations on the input side and on the hidden side (T, N, G) (the same array except
for the GRU) and the previous hidden state of every step (T, N, H). The caller turns them
into the input gradient and the weight gradients with a few large matrix multiplies
(``grad_x = grad_pre_ih @ W_ih``, ``grad_W_ih = grad_pre_ih^T x``, ``grad_W_hh =
grad_pre_hh^T prev_h``, bias gradients are column sums). The cache's first entry is the
projection input: ``x``, or with biases ``x`` with a column of ones appended (T, N, I + 1),
so that ``grad_pre_ih^T`` times it gives the weight and the bias gradient in one matmul.

Speed: the input projection of all T steps is ONE matmul before the loop (biases included
through the ones column), into a preallocated (T, N, G) gate buffer; each step does one
(N, H) x (H, G) matmul and in-place element-wise work on views. LSTM gates use one ``exp``
for all four gates (``sigmoid(a) = 1 / (1 + exp(-a))``, ``tanh(a) = 2 sigmoid(2a) - 1``, the
factors -1/-2 folded into the weights); GRU gates one ``tanh`` for r and z (``sigmoid(a) =
0.5 tanh(a / 2) + 0.5``, the 1/2 folded likewise). The backwards compute the activation
derivatives step by step on blocks that are still in cache, never in passes over the
whole (T, N, G) buffer. Batch rows are independent, so with several threads each thread
takes a block of rows through the whole time loop (``_row_blocks``; BLAS single-threaded
meanwhile): one hand-off per sequence instead of one per step.

The hidden states live in one buffer ``hs`` of shape (T + 1, N, H): running forward,
``hs[0]`` is the initial state and ``hs[t + 1]`` the state after step t; running in
reverse, ``hs[T]`` is the initial state and ``hs[t]`` the state after step t. So the outputs
are ``hs[1:]`` (``hs[:T]``) and the previous states ``hs[:T]`` (``hs[1:]``), both
contiguous.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .backend import kernels
from .elementwise import clamp_min_zero
from .parallel import even_ranges, get_num_threads, run_chunks

_MIN_ROWS = 8  # rows per thread block at least
_MIN_BLOCK_WORK = 4096  # N * H below which the time loop stays on one thread
_MIN_STEPS = 4  # sequences shorter than this stay on one thread

__all__ = [
    "rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward",
    "gru_forward", "gru_backward",
]


def _offsets(reverse: bool) -> tuple[int, int]:
    """(index of the previous state, index of the new state) relative to t in ``hs``."""
    return (1, 0) if reverse else (0, 1)


def _steps(T: int, reverse: bool, backward: bool = False) -> range:
    forward_order = range(T - 1, -1, -1) if reverse else range(T)
    return forward_order[::-1] if backward else forward_order


def _project(x: NDArray, w_ih: NDArray, bias: NDArray | None, out: NDArray,
             scale: NDArray | None = None) -> NDArray:
    """``out[t] = (x[t] @ w_ih^T + bias) * scale`` for all t with ONE matmul; ``out`` is (T, N, G).

    With a bias, the bias rides in the matmul as an extra input column of ones (no separate
    pass over the large ``out``). Returns the matmul's input: ``x`` itself, or with a bias the
    (T, N, I + 1) copy of ``x`` with that column of ones, which the backward uses to get the
    weight and bias gradients from one matmul too (see ``layers.recurrent``).
    """
    T, N, I = x.shape
    G = out.shape[-1]
    if bias is None:
        w = w_ih if scale is None else w_ih * scale[:, None]
        np.matmul(x.reshape(T * N, I), w.T, out=out.reshape(T * N, G))
        return x
    xa = np.empty((T, N, I + 1), dtype=x.dtype)
    xa[..., :I] = x
    xa[..., I] = 1
    wa = np.empty((G, I + 1), dtype=x.dtype)
    if scale is None:
        wa[:, :I] = w_ih
        wa[:, I] = bias
    else:
        np.multiply(w_ih, scale[:, None], out=wa[:, :I])
        np.multiply(bias, scale, out=wa[:, I])
    np.matmul(xa.reshape(T * N, I + 1), wa.T, out=out.reshape(T * N, G))
    return xa


def _row_blocks(T: int, N: int, H: int) -> list[tuple[int, int]]:
    """Blocks of batch rows for the threads: every row of a recurrent layer runs through
    time independently of the others, so each thread can take a block of rows through the
    WHOLE time loop (one hand-off per sequence, not per step), with BLAS single-threaded.
    Measured (LSTM, N=32, H=256, T=64, 2 threads): forward 22.9 -> 20.0 ms against one
    loop with two-thread BLAS multiplies. Small batches and short sequences (a cell's single
    step: the ~50 us hand-off would be paid every step) stay in one block."""
    parts = min(get_num_threads(), N // _MIN_ROWS)
    if parts < 2 or N * H < _MIN_BLOCK_WORK or T < _MIN_STEPS:
        return [(0, N)]
    return even_ranges(N, parts)


def _grad_init(grad: NDArray | None, shape: tuple[int, ...], dtype) -> NDArray:
    if grad is None:
        return np.zeros(shape, dtype=dtype)
    return np.array(grad, dtype=dtype, copy=True)


# ---------------------------------------------------------------------------- RNN
def rnn_forward(x, state, w_ih, w_hh, b_ih, b_hh, reverse=False, keep=True, relu=False):
    """h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act = tanh or relu."""
    (h0,) = state
    T, N, _ = x.shape
    H = w_hh.shape[1]
    po, co = _offsets(reverse)
    hs = np.empty((T + 1, N, H), dtype=x.dtype)
    y = hs[co:co + T]
    bias = None if b_ih is None else b_ih + b_hh
    xp = _project(x, w_ih, bias, y)  # the pre-activations are written where the states will be
    hs[po * T] = h0
    w_hh_t = w_hh.T

    def rows(worker: int, bounds: tuple[int, int]) -> None:
        _rnn_loop(T, reverse, hs[:, slice(*bounds)], w_hh_t, relu)

    run_chunks(rows, _row_blocks(T, N, H))
    cache = (xp, hs, reverse, relu) if keep else None
    return y, (hs[co * T],), cache


def _rnn_loop(T, reverse, hs, w_hh_t, relu):
    """The time loop of ``rnn_forward`` over one block of batch rows (``hs`` its view)."""
    po, co = _offsets(reverse)
    tmp = np.empty(hs.shape[1:], dtype=hs.dtype)
    for t in _steps(T, reverse):
        h = hs[t + co]
        np.matmul(hs[t + po], w_hh_t, out=tmp)
        h += tmp
        if relu:
            clamp_min_zero(h, h)
        else:
            np.tanh(h, out=h)


def rnn_backward(cache, grad_y, grad_final, w_hh):
    x, hs, reverse, relu = cache
    T, N, _ = x.shape
    H = hs.shape[-1]
    po, co = _offsets(reverse)
    y = hs[co:co + T]
    # grad_pre starts as act'(a) = 1 - h^2 (tanh) or [h > 0] (relu), then is scaled by dL/dh
    if relu:
        grad_pre = (y > 0).astype(x.dtype)
    else:
        grad_pre = np.square(y)
        np.subtract(1, grad_pre, out=grad_pre)
    dh = _grad_init(grad_final[0], (N, H), x.dtype)

    def rows(worker: int, bounds: tuple[int, int]) -> None:
        k = slice(*bounds)
        _rnn_backward_loop(T, reverse, grad_y[:, k], grad_pre[:, k], dh[k], w_hh)

    run_chunks(rows, _row_blocks(T, N, H))
    return (dh,), grad_pre, grad_pre, hs[po:po + T]


def _rnn_backward_loop(T, reverse, grad_y, grad_pre, dh, w_hh):
    """The BPTT loop of ``rnn_backward`` over one block of batch rows; ``dh`` comes in as
    the final-state gradient and leaves as the initial-state gradient."""
    for t in _steps(T, reverse, backward=True):
        dh += grad_y[t]
        g = grad_pre[t]
        g *= dh
        np.matmul(g, w_hh, out=dh)  # dL/dh_{t-1} through the recurrence


# ---------------------------------------------------------------------------- LSTM
def _lstm_scale(H: int, dtype) -> NDArray:
    """Per-gate (i, f, g, o) factor k such that exp(k a) gives every gate from one exp:
    sigmoid(a) = 1 / (1 + exp(-a)) for i, f, o and tanh(a) = 2 / (1 + exp(-2a)) - 1 for g."""
    scale = np.full(4 * H, -1, dtype=dtype)
    scale[2 * H:3 * H] = -2
    return scale


def lstm_forward(x, state, w_ih, w_hh, b_ih, b_hh, reverse=False, keep=True, w_hr=None):
    """PyTorch's LSTM, gates (i, f, g, o):

    i, f, o = sigmoid(W_i* x + b_i* + W_h* h + b_h*);  g = tanh(W_ig x + b_ig + W_hg h + b_hg)
    c' = f * c + i * g;  h' = o * tanh(c')

    With a projection ``w_hr`` (P, H) (PyTorch's ``proj_size``): ``m = o * tanh(c')`` and
    ``h' = m W_hr^T``, so h is (N, P) and ``w_hh`` is (4H, P); ``m`` is kept for backward.

    The gate buffer ends up holding sigmoid(a) for i, f, o and r = sigmoid(2 a) for g
    (tanh(a) = 2 r - 1 goes to its own buffer), so one formula s (1 - s) gives every gate's
    derivative in the backward (times 4 for g: 1 - tanh(a)^2 = 4 r (1 - r)).
    """
    h0, c0 = state
    T, N, _ = x.shape
    H = w_hh.shape[0] // 4
    P = H if w_hr is None else w_hr.shape[0]  # the size of h
    po, co = _offsets(reverse)
    scale = _lstm_scale(H, x.dtype)  # folded into the weights: gates hold k * a
    bias = None if b_ih is None else b_ih + b_hh
    gates = np.empty((T, N, 4 * H), dtype=x.dtype)
    xp = _project(x, w_ih, bias, gates, scale)
    w_hh_t = w_hh.T * scale  # (P, 4H)
    hs = np.empty((T + 1, N, P), dtype=x.dtype)
    cs = np.empty((T + 1, N, H), dtype=x.dtype)
    tanh_c = np.empty((T, N, H), dtype=x.dtype)
    tanh_g = np.empty((T, N, H), dtype=x.dtype)
    ms = None if w_hr is None else np.empty((T, N, H), dtype=x.dtype)  # o * tanh(c)
    w_hr_t = None if w_hr is None else w_hr.T  # (H, P)
    hs[po * T] = h0
    cs[po * T] = c0

    def rows(worker: int, bounds: tuple[int, int]) -> None:
        k = slice(*bounds)
        with np.errstate(over="ignore"):
            _lstm_loop(T, reverse, H, gates[:, k], hs[:, k], cs[:, k], tanh_c[:, k],
                       tanh_g[:, k], w_hh_t, None if ms is None else ms[:, k], w_hr_t)

    run_chunks(rows, _row_blocks(T, N, H))
    cache = (xp, hs, cs, gates, tanh_g, tanh_c, reverse, ms) if keep else None
    return hs[co:co + T], (hs[co * T], cs[co * T]), cache


def _lstm_loop(T, reverse, H, gates, hs, cs, tanh_c, tanh_g, w_hh_t, ms=None, w_hr_t=None):
    """The time loop of ``lstm_forward`` over one block of batch rows (all arrays its views);
    with a projection, ``ms[t] = o * tanh(c)`` and ``h = ms[t] @ w_hr_t``."""
    fused = kernels() if w_hr_t is None else None  # the Numba backend: ops/numba_recurrent.py
    if fused is not None:
        return fused.lstm_loop(T, reverse, H, gates, hs, cs, tanh_c, tanh_g, w_hh_t)
    po, co = _offsets(reverse)
    n_rows = hs.shape[1]
    tmp = np.empty((n_rows, 4 * H), dtype=hs.dtype)
    tmp_h = np.empty((n_rows, H), dtype=hs.dtype)
    for t in _steps(T, reverse):
        s = gates[t]
        np.matmul(hs[t + po], w_hh_t, out=tmp)
        s += tmp
        np.exp(s, out=s)  # overflow to inf is fine: 1 / (1 + inf) = 0
        s += 1
        np.reciprocal(s, out=s)  # (sigmoid(i), sigmoid(f), sigmoid(2 g), sigmoid(o))
        g = tanh_g[t]
        np.multiply(s[:, 2 * H:3 * H], 2, out=g)
        g -= 1
        c = cs[t + co]
        np.multiply(s[:, H:2 * H], cs[t + po], out=c)
        np.multiply(s[:, :H], g, out=tmp_h)
        c += tmp_h
        np.tanh(c, out=tanh_c[t])
        if ms is None:
            np.multiply(s[:, 3 * H:], tanh_c[t], out=hs[t + co])
        else:
            np.multiply(s[:, 3 * H:], tanh_c[t], out=ms[t])
            np.matmul(ms[t], w_hr_t, out=hs[t + co])


def lstm_backward(cache, grad_y, grad_final, w_hh, w_hr=None):
    # With dh = dL/dh_t and dc = dL/dc_t (including what flows back from step t+1):
    #   dc += dh * o * (1 - tanh(c)^2) = o * (dh - tanh(c) * (dh * tanh(c)))
    #   da_o = dh * tanh(c) * o(1-o),  da_i = dc * g * i(1-i),  da_f = dc * c_{t-1} * f(1-f)
    #   da_g = dc * i * (1-g^2) = dc * i * 4 r(1-r);  dc_{t-1} = dc * f;  dh_{t-1} = da @ W_hh
    # With a projection h = m W_hr^T, the formulas above take dm = dh @ W_hr in place of dh,
    # and dW_hr = sum_t dh_t^T m_t (returned as a 5th value; one matmul after the loop).
    # Everything per step on (N, 4H) blocks that stay in cache (no whole-sequence passes).
    x, hs, cs, gates, tanh_g, tanh_c, reverse, ms = cache
    T, N, _ = x.shape
    H, P = cs.shape[-1], hs.shape[-1]
    po, _ = _offsets(reverse)
    grad_pre = np.empty_like(gates)
    dh_all = _grad_init(grad_final[0], (N, P), x.dtype)
    dc_all = _grad_init(grad_final[1], (N, H), x.dtype)
    dhs = None if w_hr is None else np.empty((T, N, P), dtype=x.dtype)  # dL/dh_t, for dW_hr

    def rows(worker: int, bounds: tuple[int, int]) -> None:
        k = slice(*bounds)
        _lstm_backward_loop(T, reverse, H, grad_y[:, k], gates[:, k], tanh_c[:, k],
                            tanh_g[:, k], cs[:, k], grad_pre[:, k], dh_all[k], dc_all[k], w_hh,
                            None if dhs is None else dhs[:, k], w_hr)

    run_chunks(rows, _row_blocks(T, N, H))
    if w_hr is None:
        return (dh_all, dc_all), grad_pre, grad_pre, hs[po:po + T]
    grad_w_hr = dhs.reshape(T * N, P).T @ ms.reshape(T * N, H)  # (P, H)
    return (dh_all, dc_all), grad_pre, grad_pre, hs[po:po + T], grad_w_hr


def _lstm_backward_loop(T, reverse, H, grad_y, gates, tanh_c, tanh_g, cs, grad_pre, dh_in, dc,
                        w_hh, dhs=None, w_hr=None):
    """The BPTT loop of ``lstm_backward`` over one block of batch rows (all arrays are that
    block's views); ``dh_in`` and ``dc`` come in as the final-state gradients and leave as
    the initial-state gradients. With a projection, ``dhs[t]`` receives dL/dh_t."""
    fused = kernels() if w_hr is None else None  # the Numba backend: ops/numba_recurrent.py
    if fused is not None:
        return fused.lstm_backward_loop(T, reverse, H, grad_y, gates, tanh_c, tanh_g, cs,
                                        grad_pre, dh_in, dc, w_hh)
    po, _ = _offsets(reverse)
    n = dh_in.shape[0]
    up = np.empty((n, 4 * H), dtype=dh_in.dtype)
    tmp_h = np.empty((n, H), dtype=dh_in.dtype)
    dh = dh_in if w_hr is None else np.empty((n, H), dtype=dh_in.dtype)  # dL/dm with w_hr
    for t in _steps(T, reverse, backward=True):
        dh_in += grad_y[t]
        if w_hr is not None:
            dhs[t] = dh_in
            np.matmul(dh_in, w_hr, out=dh)
        s = gates[t]
        tc = tanh_c[t]
        up_o = up[:, 3 * H:]
        np.multiply(dh, tc, out=up_o)
        np.multiply(tc, up_o, out=tmp_h)
        np.subtract(dh, tmp_h, out=tmp_h)
        tmp_h *= s[:, 3 * H:]
        dc += tmp_h
        np.multiply(dc, tanh_g[t], out=up[:, :H])
        np.multiply(dc, cs[t + po], out=up[:, H:2 * H])
        up_g = up[:, 2 * H:3 * H]
        np.multiply(dc, s[:, :H], out=up_g)
        up_g *= 4
        da = grad_pre[t]
        np.subtract(1, s, out=da)
        da *= s
        da *= up
        dc *= s[:, H:2 * H]
        np.matmul(da, w_hh, out=dh_in)


# ---------------------------------------------------------------------------- GRU
def gru_forward(x, state, w_ih, w_hh, b_ih, b_hh, reverse=False, keep=True):
    """PyTorch's GRU, gates (r, z, n):

    r, z = sigmoid(W_i* x + b_i* + W_h* h + b_h*)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn));  h' = (1 - z) * n + z * h
    """
    (h0,) = state
    T, N, _ = x.shape
    H = w_hh.shape[1]
    po, co = _offsets(reverse)
    gates = np.empty((T, N, 3 * H), dtype=x.dtype)
    scale = np.ones(3 * H, dtype=x.dtype)
    scale[:2 * H] = 0.5  # sigmoid(a) = 0.5 tanh(a / 2) + 0.5
    bias = b_hn = None
    if b_ih is not None:
        bias = b_ih.copy()
        bias[:2 * H] += b_hh[:2 * H]
        b_hn = b_hh[2 * H:]
    xp = _project(x, w_ih, bias, gates, scale)
    w_hh_t = w_hh.T.copy()  # (H, 3H)
    w_hh_t[:, :2 * H] *= 0.5
    hs = np.empty((T + 1, N, H), dtype=x.dtype)
    hn = np.empty((T, N, H), dtype=x.dtype)  # W_hn h + b_hn, needed for dL/dr
    hs[po * T] = h0

    def rows(worker: int, bounds: tuple[int, int]) -> None:
        k = slice(*bounds)
        _gru_loop(T, reverse, H, gates[:, k], hs[:, k], hn[:, k], w_hh_t, b_hn)

    run_chunks(rows, _row_blocks(T, N, H))
    cache = (xp, hs, gates, hn, reverse) if keep else None
    return hs[co:co + T], (hs[co * T],), cache


def _gru_loop(T, reverse, H, gates, hs, hn, w_hh_t, b_hn):
    """The time loop of ``gru_forward`` over one block of batch rows (all arrays its views)."""
    fused = kernels()  # the Numba backend: ops/numba_recurrent.py
    if fused is not None:
        return fused.gru_loop(T, reverse, H, gates, hs, hn, w_hh_t, b_hn)
    po, co = _offsets(reverse)
    n_rows = hs.shape[1]
    tmp = np.empty((n_rows, 3 * H), dtype=hs.dtype)
    tmp_h = np.empty((n_rows, H), dtype=hs.dtype)
    for t in _steps(T, reverse):
        g_t = gates[t]
        prev = hs[t + po]
        np.matmul(prev, w_hh_t, out=tmp)
        rz = g_t[:, :2 * H]
        rz += tmp[:, :2 * H]
        np.tanh(rz, out=rz)
        rz *= 0.5
        rz += 0.5
        if b_hn is not None:
            np.add(tmp[:, 2 * H:], b_hn, out=hn[t])
        else:
            hn[t] = tmp[:, 2 * H:]
        n = g_t[:, 2 * H:]
        np.multiply(g_t[:, :H], hn[t], out=tmp_h)
        n += tmp_h
        np.tanh(n, out=n)
        np.subtract(prev, n, out=tmp_h)
        tmp_h *= g_t[:, H:2 * H]
        np.add(n, tmp_h, out=hs[t + co])  # h' = n + z * (h - n)


def gru_backward(cache, grad_y, grad_final, w_hh):
    # dz = dh * (h_{t-1} - n);  dn = dh * (1 - z);  da_n = dn * (1 - n^2)
    # dr = da_n * (W_hn h + b_hn);  da_r = dr * r(1-r);  da_z = dz * z(1-z)
    # input side pre-activations: (da_r, da_z, da_n); hidden side: (da_r, da_z, da_n * r)
    # dh_{t-1} = (hidden-side grads) @ W_hh + dh * z
    x, hs, gates, hn, reverse = cache
    T, N, _ = x.shape
    H = hs.shape[-1]
    po, co = _offsets(reverse)
    grad_ih = np.empty_like(gates)
    grad_hh = np.empty_like(gates)
    dh = _grad_init(grad_final[0], (N, H), x.dtype)

    def rows(worker: int, bounds: tuple[int, int]) -> None:
        k = slice(*bounds)
        _gru_backward_loop(T, reverse, H, grad_y[:, k], gates[:, k], hs[:, k], hn[:, k],
                           grad_ih[:, k], grad_hh[:, k], dh[k], w_hh)

    run_chunks(rows, _row_blocks(T, N, H))
    return (dh,), grad_ih, grad_hh, hs[po:po + T]


def _gru_backward_loop(T, reverse, H, grad_y, gates, hs, hn, grad_ih, grad_hh, dh, w_hh):
    """The BPTT loop of ``gru_backward`` over one block of batch rows; ``dh`` comes in as
    the final-state gradient and leaves as the initial-state gradient."""
    fused = kernels()  # the Numba backend: ops/numba_recurrent.py
    if fused is not None:
        return fused.gru_backward_loop(T, reverse, H, grad_y, gates, hs, hn, grad_ih, grad_hh,
                                       dh, w_hh)
    po, _ = _offsets(reverse)
    n_rows = dh.shape[0]
    up = np.empty((n_rows, 3 * H), dtype=dh.dtype)
    dh_z = np.empty((n_rows, H), dtype=dh.dtype)
    tmp_h = np.empty((n_rows, H), dtype=dh.dtype)
    for t in _steps(T, reverse, backward=True):
        dh += grad_y[t]
        g_t = gates[t]
        da = grad_ih[t]
        # activation derivatives, per step on cache-resident blocks: r(1-r), z(1-z), 1-n^2
        np.subtract(1, g_t[:, :2 * H], out=da[:, :2 * H])
        da[:, :2 * H] *= g_t[:, :2 * H]
        np.multiply(g_t[:, 2 * H:], g_t[:, 2 * H:], out=da[:, 2 * H:])
        np.subtract(1, da[:, 2 * H:], out=da[:, 2 * H:])
        np.subtract(hs[t + po], g_t[:, 2 * H:], out=tmp_h)
        np.multiply(dh, tmp_h, out=up[:, H:2 * H])
        np.multiply(dh, g_t[:, H:2 * H], out=dh_z)
        np.subtract(dh, dh_z, out=up[:, 2 * H:])
        da[:, 2 * H:] *= up[:, 2 * H:]
        np.multiply(da[:, 2 * H:], hn[t], out=up[:, :H])
        da[:, :2 * H] *= up[:, :2 * H]
        dhh = grad_hh[t]
        dhh[:, :2 * H] = da[:, :2 * H]
        np.multiply(da[:, 2 * H:], g_t[:, :H], out=dhh[:, 2 * H:])
        np.matmul(dhh, w_hh, out=dh)
        dh += dh_z
