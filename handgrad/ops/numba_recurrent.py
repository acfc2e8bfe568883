"""The LSTM's and GRU's per-step gate arithmetic as compiled loops (the Numba backend).

The NumPy twins are the time loops of ``handgrad.ops.recurrent`` (``_lstm_loop``,
``_lstm_backward_loop``, ``_gru_loop``, ``_gru_backward_loop``): same arguments, same
cache layout, same results up to float rounding. The per-step matrix multiply stays in BLAS
(``np.matmul``), and so do ``exp`` and ``tanh``: NumPy's are vectorised, a compiled
``math.exp`` is a scalar call about six times slower (measured: 50 against 8.5 us for a
(16, 1024) block). The rest of a step's element-wise work (every gate, the cell update,
the BPTT of all gates at once) is one compiled pass over its (rows, H) block.

As in the NumPy loops, the gate buffer holds the pre-activations times a per-gate factor
folded into the weights (LSTM: -1 for i, f, o and -2 for g, so that ``1 / (1 + exp(k a))``
gives sigmoid(a) and sigmoid(2a); GRU: 1/2 for r and z, so that ``0.5 tanh(k a) + 0.5``
gives sigmoid(a)), and the forward leaves the gate values in it.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel

# The kernels' constants are float32 numbers (all exact in float32): float32 data is then
# computed in float32, as the NumPy path does, and float64 data in float64 (float32 and
# float64 give float64). A Python float literal is a float64 and would make every float32
# operation a float64 one, at half the vector width (measured: the LSTM cell 22 us against
# NumPy's 15 us for a (16, 256) block that way).
ONE, TWO, FOUR, HALF = np.float32(1.0), np.float32(2.0), np.float32(4.0), np.float32(0.5)

__all__ = ["lstm_loop", "lstm_backward_loop", "gru_loop", "gru_backward_loop"]


def _steps(T: int, reverse: bool, backward: bool = False) -> range:
    forward_order = range(T - 1, -1, -1) if reverse else range(T)
    return forward_order[::-1] if backward else forward_order


# ---------------------------------------------------------------------------- LSTM
@kernel
def lstm_cell(gates, c_prev, c, tanh_g):
    """One step's gates and cell, in place in ``gates`` (rows, 4H), which holds
    ``e = exp(k a)`` (k = -1 for i, f, o and -2 for g) when it comes in:

        i, f, o = 1 / (1 + e) = sigmoid(a);   r = 1 / (1 + e_g) = sigmoid(2 a_g), g = 2 r - 1
        c = f * c_prev + i * g

    ``gates`` keeps (i, f, r, o); ``tanh_g`` gets g and ``c`` the new cell state.
    """
    rows, H = c.shape
    for n in range(rows):
        for j in range(H):
            i = ONE / (ONE + gates[n, j])
            f = ONE / (ONE + gates[n, H + j])
            r = ONE / (ONE + gates[n, 2 * H + j])
            g = TWO * r - ONE
            gates[n, j] = i
            gates[n, H + j] = f
            gates[n, 2 * H + j] = r
            gates[n, 3 * H + j] = ONE / (ONE + gates[n, 3 * H + j])
            tanh_g[n, j] = g
            c[n, j] = f * c_prev[n, j] + i * g


@kernel
def lstm_backward_step(dh, grad_y, gates, tanh_c, tanh_g, c_prev, dc, da):
    """One BPTT step. With dh = dL/dh_t (``dh + grad_y``) and dc = dL/dc_t:

        dc += dh * o * (1 - tanh(c)^2)
        da_i = dc * g * i (1 - i);   da_f = dc * c_prev * f (1 - f)
        da_g = dc * i * (1 - g^2) = dc * i * 4 r (1 - r);   da_o = dh * tanh(c) * o (1 - o)
        dc_prev = dc * f

    Writes ``da`` (rows, 4H) and updates ``dc`` to dc_prev; dh_prev = da @ W_hh follows.
    """
    rows, H = dc.shape
    for n in range(rows):
        for j in range(H):
            i = gates[n, j]
            f = gates[n, H + j]
            r = gates[n, 2 * H + j]
            o = gates[n, 3 * H + j]
            tc = tanh_c[n, j]
            d_h = dh[n, j] + grad_y[n, j]
            d_c = dc[n, j] + d_h * o * (ONE - tc * tc)
            da[n, j] = d_c * tanh_g[n, j] * i * (ONE - i)
            da[n, H + j] = d_c * c_prev[n, j] * f * (ONE - f)
            da[n, 2 * H + j] = d_c * i * FOUR * r * (ONE - r)
            da[n, 3 * H + j] = d_h * tc * o * (ONE - o)
            dc[n, j] = d_c * f


def lstm_loop(T, reverse, H, gates, hs, cs, tanh_c, tanh_g, w_hh_t):
    """``ops.recurrent._lstm_loop`` with :func:`lstm_step` for each step's element-wise part."""
    po, co = (1, 0) if reverse else (0, 1)
    hidden = np.empty((hs.shape[1], 4 * H), dtype=hs.dtype)
    for t in _steps(T, reverse):
        s = gates[t]
        np.matmul(hs[t + po], w_hh_t, out=hidden)
        s += hidden
        np.exp(s, out=s)  # NumPy's vectorised exp (a compiled scalar exp is ~6x slower)
        lstm_cell(s, cs[t + po], cs[t + co], tanh_g[t])
        np.tanh(cs[t + co], out=tanh_c[t])
        np.multiply(s[:, 3 * H:], tanh_c[t], out=hs[t + co])  # h = o * tanh(c)


def lstm_backward_loop(T, reverse, H, grad_y, gates, tanh_c, tanh_g, cs, grad_pre, dh, dc,
                       w_hh):
    """``ops.recurrent._lstm_backward_loop`` with :func:`lstm_backward_step`."""
    po = 1 if reverse else 0
    for t in _steps(T, reverse, backward=True):
        lstm_backward_step(dh, grad_y[t], gates[t], tanh_c[t], tanh_g[t], cs[t + po], dc,
                           grad_pre[t])
        np.matmul(grad_pre[t], w_hh, out=dh)


# ---------------------------------------------------------------------------- GRU
@kernel
def gru_gates(gates, hidden, b_hn, hn):
    """One step's r, z and the candidate's pre-activation, in place in ``gates`` (rows, 3H),
    whose r, z columns hold ``tanh(a / 2)`` when it comes in:

        r, z = 0.5 tanh(a / 2) + 0.5 = sigmoid(a)
        hn = W_hn h_{t-1} + b_hn;   gates_n = a_n + r * hn   (n = tanh of it follows)

    ``hidden`` = h_{t-1} W_hh^T; ``hn`` is kept for the backward.
    """
    rows, H = hn.shape
    for n in range(rows):
        for j in range(H):
            r = HALF * gates[n, j] + HALF
            gates[n, j] = r
            gates[n, H + j] = HALF * gates[n, H + j] + HALF
            h_n = hidden[n, 2 * H + j] + b_hn[j]
            hn[n, j] = h_n
            gates[n, 2 * H + j] += r * h_n


@kernel
def gru_mix(gates, prev, h):
    """``h = n + z * (h_{t-1} - n)`` (= (1 - z) n + z h_{t-1}) from ``gates`` = (r, z, n)."""
    rows, H = prev.shape
    for n in range(rows):
        for j in range(H):
            new = gates[n, 2 * H + j]
            h[n, j] = new + gates[n, H + j] * (prev[n, j] - new)


@kernel
def gru_backward_step(dh, grad_y, gates, prev, hn, da, dhh, dh_z):
    """One BPTT step. With dh = dL/dh_t (``dh + grad_y``):

        dz = dh * (h_{t-1} - n);   dn = dh * (1 - z);   da_n = dn * (1 - n^2)
        da_r = da_n * hn * r (1 - r);   da_z = dz * z (1 - z)

    Writes the input-side gradients ``da`` = (da_r, da_z, da_n), the hidden-side ones
    ``dhh`` = (da_r, da_z, da_n * r) and ``dh_z`` = dh * z (the direct path to h_{t-1});
    dh_prev = dhh @ W_hh + dh_z follows.
    """
    rows, H = prev.shape
    for n in range(rows):
        for j in range(H):
            r = gates[n, j]
            z = gates[n, H + j]
            new = gates[n, 2 * H + j]
            d_h = dh[n, j] + grad_y[n, j]
            da_n = d_h * (ONE - z) * (ONE - new * new)
            da_r = da_n * hn[n, j] * r * (ONE - r)
            da_z = d_h * (prev[n, j] - new) * z * (ONE - z)
            da[n, j] = da_r
            da[n, H + j] = da_z
            da[n, 2 * H + j] = da_n
            dhh[n, j] = da_r
            dhh[n, H + j] = da_z
            dhh[n, 2 * H + j] = da_n * r
            dh_z[n, j] = d_h * z


def gru_loop(T, reverse, H, gates, hs, hn, w_hh_t, b_hn):
    """``ops.recurrent._gru_loop`` with :func:`gru_step` for each step's element-wise part."""
    po, co = (1, 0) if reverse else (0, 1)
    hidden = np.empty((hs.shape[1], 3 * H), dtype=hs.dtype)
    if b_hn is None:
        b_hn = np.zeros(H, dtype=hs.dtype)
    for t in _steps(T, reverse):
        g_t = gates[t]
        np.matmul(hs[t + po], w_hh_t, out=hidden)
        rz = g_t[:, :2 * H]
        rz += hidden[:, :2 * H]
        np.tanh(rz, out=rz)  # NumPy's vectorised tanh
        gru_gates(g_t, hidden, b_hn, hn[t])
        n = g_t[:, 2 * H:]
        np.tanh(n, out=n)
        gru_mix(g_t, hs[t + po], hs[t + co])


def gru_backward_loop(T, reverse, H, grad_y, gates, hs, hn, grad_ih, grad_hh, dh, w_hh):
    """``ops.recurrent._gru_backward_loop`` with :func:`gru_backward_step`."""
    po = 1 if reverse else 0
    dh_z = np.empty_like(dh)
    for t in _steps(T, reverse, backward=True):
        gru_backward_step(dh, grad_y[t], gates[t], hs[t + po], hn[t], grad_ih[t], grad_hh[t],
                          dh_z)
        np.matmul(grad_hh[t], w_hh, out=dh)
        dh += dh_z
