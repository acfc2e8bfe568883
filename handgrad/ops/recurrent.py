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
grad_pre_hh^T prev_h``, bias gradients are column sums).

Speed: the input projection of all T steps is ONE matmul before the loop, into a
preallocated (T, N, G) gate buffer; each step does one (N, H) x (H, G) matmul and in-place
element-wise work on views. LSTM gates use one ``exp`` for all four gates (``sigmoid(a) =
1 / (1 + exp(-a))``, ``tanh(a) = 2 sigmoid(2a) - 1``, the factors -1/-2 folded into the
weights); GRU gates one ``tanh`` for r and z (``sigmoid(a) = 0.5 tanh(a / 2) + 0.5``).

The hidden states live in one buffer ``hs`` of shape (T + 1, N, H): running forward,
``hs[0]`` is the initial state and ``hs[t + 1]`` the state after step t; running in
reverse, ``hs[T]`` is the initial state and ``hs[t]`` the state after step t. So the outputs
are ``hs[1:]`` (``hs[:T]``) and the previous states ``hs[:T]`` (``hs[1:]``), both
contiguous.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

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


def _project(x: NDArray, w_ih: NDArray, out: NDArray) -> NDArray:
    """``out[t] = x[t] @ w_ih^T`` for all t with one matmul; ``out`` is (T, N, G)."""
    T, N, I = x.shape
    np.matmul(x.reshape(T * N, I), w_ih.T, out=out.reshape(T * N, out.shape[-1]))
    return out


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
    _project(x, w_ih, y)  # the pre-activations are written where the states will be
    if b_ih is not None:
        y += b_ih + b_hh
    hs[po * T] = h0
    w_hh_t = w_hh.T
    tmp = np.empty((N, H), dtype=x.dtype)
    for t in _steps(T, reverse):
        h = hs[t + co]
        np.matmul(hs[t + po], w_hh_t, out=tmp)
        h += tmp
        if relu:
            np.maximum(h, 0, out=h)
        else:
            np.tanh(h, out=h)
    cache = (x, hs, reverse, relu) if keep else None
    return y, (hs[co * T],), cache


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
    for t in _steps(T, reverse, backward=True):
        dh += grad_y[t]
        g = grad_pre[t]
        g *= dh
        np.matmul(g, w_hh, out=dh)  # dL/dh_{t-1} through the recurrence
    return (dh,), grad_pre, grad_pre, hs[po:po + T]


# ---------------------------------------------------------------------------- LSTM
def _lstm_scale(H: int, dtype) -> NDArray:
    """Per-gate (i, f, g, o) factor k such that exp(k a) gives every gate from one exp:
    sigmoid(a) = 1 / (1 + exp(-a)) for i, f, o and tanh(a) = 2 / (1 + exp(-2a)) - 1 for g."""
    scale = np.full(4 * H, -1, dtype=dtype)
    scale[2 * H:3 * H] = -2
    return scale


def lstm_forward(x, state, w_ih, w_hh, b_ih, b_hh, reverse=False, keep=True):
    """PyTorch's LSTM, gates (i, f, g, o):

    i, f, o = sigmoid(W_i* x + b_i* + W_h* h + b_h*);  g = tanh(W_ig x + b_ig + W_hg h + b_hg)
    c' = f * c + i * g;  h' = o * tanh(c')
    """
    h0, c0 = state
    T, N, _ = x.shape
    H = w_hh.shape[1]
    po, co = _offsets(reverse)
    scale = _lstm_scale(H, x.dtype)  # folded into the weights: gates hold k * a
    gates = _project(x, w_ih * scale[:, None], np.empty((T, N, 4 * H), dtype=x.dtype))
    if b_ih is not None:
        gates += (b_ih + b_hh) * scale
    w_hh_t = w_hh.T * scale  # (H, 4H)
    hs = np.empty((T + 1, N, H), dtype=x.dtype)
    cs = np.empty((T + 1, N, H), dtype=x.dtype)
    tanh_c = np.empty((T, N, H), dtype=x.dtype)
    hs[po * T] = h0
    cs[po * T] = c0
    tmp = np.empty((N, 4 * H), dtype=x.dtype)
    tmp_h = np.empty((N, H), dtype=x.dtype)
    with np.errstate(over="ignore"):
        _lstm_loop(T, reverse, H, gates, hs, cs, tanh_c, w_hh_t, tmp, tmp_h)
    cache = (x, hs, cs, gates, tanh_c, reverse) if keep else None
    return hs[co:co + T], (hs[co * T], cs[co * T]), cache


def _lstm_loop(T, reverse, H, gates, hs, cs, tanh_c, w_hh_t, tmp, tmp_h):
    po, co = _offsets(reverse)
    for t in _steps(T, reverse):
        g_t = gates[t]
        np.matmul(hs[t + po], w_hh_t, out=tmp)
        g_t += tmp
        np.exp(g_t, out=g_t)  # overflow to inf is fine: 1 / (1 + inf) = 0
        g_t += 1
        np.reciprocal(g_t, out=g_t)
        g = g_t[:, 2 * H:3 * H]
        g *= 2
        g -= 1  # now (sigmoid(i), sigmoid(f), tanh(g), sigmoid(o))
        c = cs[t + co]
        np.multiply(g_t[:, H:2 * H], cs[t + po], out=c)
        np.multiply(g_t[:, :H], g_t[:, 2 * H:3 * H], out=tmp_h)
        c += tmp_h
        np.tanh(c, out=tanh_c[t])
        np.multiply(g_t[:, 3 * H:], tanh_c[t], out=hs[t + co])


def lstm_backward(cache, grad_y, grad_final, w_hh):
    # With dh = dL/dh_t and dc = dL/dc_t (including what flows back from step t+1):
    #   dc += dh * o * (1 - tanh(c)^2)
    #   da_o = dh * tanh(c) * o(1-o),  da_i = dc * g * i(1-i),  da_f = dc * c_{t-1} * f(1-f)
    #   da_g = dc * i * (1-g^2);  dc_{t-1} = dc * f;  dh_{t-1} = da @ W_hh
    x, hs, cs, gates, tanh_c, reverse = cache
    T, N, _ = x.shape
    H = hs.shape[-1]
    po, co = _offsets(reverse)
    # activation derivatives of all steps at once: a(1-a) for i, f, o and 1-g^2 for g
    grad_pre = np.square(gates)
    for part in (slice(0, 2 * H), slice(3 * H, 4 * H)):
        np.subtract(gates[..., part], grad_pre[..., part], out=grad_pre[..., part])
    np.subtract(1, grad_pre[..., 2 * H:3 * H], out=grad_pre[..., 2 * H:3 * H])
    dtanh_c = np.square(tanh_c)
    np.subtract(1, dtanh_c, out=dtanh_c)
    dh = _grad_init(grad_final[0], (N, H), x.dtype)
    dc = _grad_init(grad_final[1], (N, H), x.dtype)
    up = np.empty((N, 4 * H), dtype=x.dtype)
    tmp_h = np.empty((N, H), dtype=x.dtype)
    for t in _steps(T, reverse, backward=True):
        dh += grad_y[t]
        g_t = gates[t]
        np.multiply(dh, g_t[:, 3 * H:], out=tmp_h)
        tmp_h *= dtanh_c[t]
        dc += tmp_h
        np.multiply(dh, tanh_c[t], out=up[:, 3 * H:])
        np.multiply(dc, g_t[:, 2 * H:3 * H], out=up[:, :H])
        np.multiply(dc, cs[t + po], out=up[:, H:2 * H])
        np.multiply(dc, g_t[:, :H], out=up[:, 2 * H:3 * H])
        da = grad_pre[t]
        da *= up
        dc *= g_t[:, H:2 * H]
        np.matmul(da, w_hh, out=dh)
    return (dh, dc), grad_pre, grad_pre, hs[po:po + T]


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
    gates = _project(x, w_ih, np.empty((T, N, 3 * H), dtype=x.dtype))
    b_hn = None
    if b_ih is not None:
        bias = b_ih.copy()
        bias[:2 * H] += b_hh[:2 * H]
        gates += bias
        b_hn = b_hh[2 * H:]
    gates[..., :2 * H] *= 0.5
    w_hh_t = w_hh.T.copy()  # (H, 3H)
    w_hh_t[:, :2 * H] *= 0.5
    hs = np.empty((T + 1, N, H), dtype=x.dtype)
    hn = np.empty((T, N, H), dtype=x.dtype)  # W_hn h + b_hn, needed for dL/dr
    hs[po * T] = h0
    tmp = np.empty((N, 3 * H), dtype=x.dtype)
    tmp_h = np.empty((N, H), dtype=x.dtype)
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
    cache = (x, hs, gates, hn, reverse) if keep else None
    return hs[co:co + T], (hs[co * T],), cache


def gru_backward(cache, grad_y, grad_final, w_hh):
    # dz = dh * (h_{t-1} - n);  dn = dh * (1 - z);  da_n = dn * (1 - n^2)
    # dr = da_n * (W_hn h + b_hn);  da_r = dr * r(1-r);  da_z = dz * z(1-z)
    # input side pre-activations: (da_r, da_z, da_n); hidden side: (da_r, da_z, da_n * r)
    # dh_{t-1} = (hidden-side grads) @ W_hh + dh * z
    x, hs, gates, hn, reverse = cache
    T, N, _ = x.shape
    H = hs.shape[-1]
    po, co = _offsets(reverse)
    grad_ih = np.square(gates)
    np.subtract(gates[..., :2 * H], grad_ih[..., :2 * H], out=grad_ih[..., :2 * H])
    np.subtract(1, grad_ih[..., 2 * H:], out=grad_ih[..., 2 * H:])
    grad_hh = np.empty_like(grad_ih)
    dh = _grad_init(grad_final[0], (N, H), x.dtype)
    up = np.empty((N, 3 * H), dtype=x.dtype)
    dh_z = np.empty((N, H), dtype=x.dtype)
    tmp_h = np.empty((N, H), dtype=x.dtype)
    for t in _steps(T, reverse, backward=True):
        dh += grad_y[t]
        g_t = gates[t]
        da = grad_ih[t]
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
    return (dh,), grad_ih, grad_hh, hs[po:po + T]
