"""Backpropagation through time, step by step: ``bptt_profile`` for RNN, LSTM and GRU.

    profile = bptt_profile(rnn, x)                  # x: the layer's input sequence
    print(profile)                                  # |dL/dh_t| per step, truncation cosines
    plot_bptt({"RNN": p1, "LSTM": p2}, "bptt.png")  # the picture of a dying gradient

The loss is ``L = sum_n v_n . y_{T-1, n}`` with a fixed random unit vector ``v_n`` per
sequence (seeded), so ``|dL/dh_t|`` says how strongly the last output still depends on the
state at step t: how far back the loss reaches. Pass ``grad_output`` (the gradient of the
output sequence, in the layer's layout) for any other loss.

Every number is computed with the layer's own hand-written backward:

* ``|dL/dh_t|``: the layer runs from its state after step t over ``x[t+1:]``; the gradient
  of its initial state (``grad_initial_state``) is the gradient flowing back through the
  recurrence into h_t, to which the direct gradient of the output y_t is added (the top
  layer's h_t is y_t). O(T^2) steps in all, cheap for the lesson sizes (T of a few hundred);
* gate saturation (LSTM i, f, g, o; GRU r, z, n; RNN: the hidden activation): the share of
  sigmoid gates outside (0.05, 0.95) and of tanh values beyond +-0.95, per step (first
  layer);
* truncation: for each k, the parameter gradient of k-step truncated BPTT (the sequence cut
  into chunks of k steps aligned at its end, the state's value carried over, its gradient
  stopped at every boundary, as ``train_charlm`` trains) against full BPTT, as a cosine.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..layers import GRU, LSTM, RNN
from ..random import resolve_rng
from .plot import _pyplot, _save

_GATE_NAMES = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"), "rnn": ("h",)}
_TANH_GATES = {"g", "n", "h"}


@dataclass
class BPTTProfile:
    """What ``bptt_profile`` measured.

    Attributes:
        grad_norms: (T,) ``|dL/dh_t|`` for every step t (the state after step t).
        cell_grad_norms: (T,) ``|dL/dc_t|`` for an LSTM, else None.
        saturation: gate name -> (T,) share of saturated gate values per step.
        truncation: ``(k, cosine)`` pairs: the k-step truncated-BPTT parameter gradient's
            cosine similarity to the full one.
        kind: ``'RNN'``, ``'LSTM'`` or ``'GRU'``.
    """

    grad_norms: NDArray
    cell_grad_norms: NDArray | None
    saturation: dict[str, NDArray]
    truncation: list[tuple[int, float]] = field(default_factory=list)
    kind: str = ""

    def reach(self, fraction: float = 1e-2) -> int:
        """How many steps back from the end the gradient stays above ``fraction`` of its
        value at the last step."""
        g = self.grad_norms
        above = np.nonzero(g >= fraction * g[-1])[0]
        return int(len(g) - above.min()) if above.size else 0

    def __str__(self) -> str:
        T = len(self.grad_norms)
        picks = sorted({T - 1, *(T - 1 - s for s in (1, 5, 10, 25, 50, 100, 200) if s < T), 0})
        lines = [f"{self.kind} BPTT profile over {T} steps (loss at the last step)",
                 f"{'steps back':>10s} {'|dL/dh_t|':>11s}"]
        lines += [f"{T - 1 - t:>10d} {self.grad_norms[t]:>11.3e}" for t in reversed(picks)]
        if self.saturation:
            lines.append("mean gate saturation: " + ", ".join(
                f"{k} {float(v.mean()):.2f}" for k, v in self.saturation.items()))
        if self.truncation:
            lines.append(f"{'truncate k':>10s} {'cosine to full BPTT':>20s}")
            lines += [f"{k:>10d} {c:>20.4f}" for k, c in self.truncation]
        return "\n".join(lines)

    def plot(self, path: str | os.PathLike, title: str | None = None) -> Path:
        return plot_bptt({self.kind: self}, path, title)


def plot_bptt(profiles: dict[str, BPTTProfile], path: str | os.PathLike,
              title: str | None = None) -> Path:
    """Side by side: ``|dL/dh_t|`` against steps back (log scale), and the truncation
    cosine against k, one line per profile."""
    plt = _pyplot()
    with_trunc = any(p.truncation for p in profiles.values())
    fig, axes = plt.subplots(1, 2 if with_trunc else 1, figsize=(9 if with_trunc else 5, 3.4),
                             squeeze=False)
    ax = axes[0, 0]
    for name, p in profiles.items():
        back = np.arange(len(p.grad_norms))[::-1]
        ax.semilogy(back, np.maximum(p.grad_norms, 1e-300), label=name)
    ax.set_xlabel("steps back from the loss")
    ax.set_ylabel("|dL/dh_t|")
    ax.legend(fontsize="small")
    if with_trunc:
        ax = axes[0, 1]
        for name, p in profiles.items():
            if p.truncation:
                ks, cs = zip(*p.truncation)
                ax.plot(ks, cs, marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("truncation k (steps)")
        ax.set_ylabel("cosine to full-BPTT gradient")
        ax.legend(fontsize="small")
    fig.suptitle(title or "gradient through time")
    fig.tight_layout()
    return _save(fig, plt, path)


def _time(layer: Any, x: NDArray, lo: int, hi: int | None = None) -> NDArray:
    axis = 1 if layer.batch_first and x.ndim == 3 else 0
    index = [slice(None)] * x.ndim
    index[axis] = slice(lo, hi)
    return x[tuple(index)]


def _flat_grads(layer: Any) -> NDArray:
    return np.concatenate([np.zeros(p.size) if p.grad is None else p.grad.ravel()
                           for p in layer.parameters()]).astype(np.float64)


def _state_norm(state: Any) -> tuple[float, float]:
    if isinstance(state, tuple):
        return float(np.linalg.norm(state[0])), float(np.linalg.norm(state[1]))
    return float(np.linalg.norm(state)), math.nan


def bptt_profile(rnn: Any, x: Any, grad_output: Any = None, *,
                 truncations: Sequence[int] = (1, 2, 5, 10, 20, 50), rng: Any = 0
                 ) -> BPTTProfile:
    """Profile one sequence batch through a (unidirectional) ``RNN``, ``LSTM`` or ``GRU``.

    Args:
        rnn: the recurrent layer (use ``model.rnn`` for the recurrent models).
        x: its input, in its layout ((T, N, F), (N, T, F) with batch_first, or (T, F)).
        grad_output: gradient of the output sequence; default: a random unit vector at the
            last step only (drawn from ``rng``).
        truncations: the k of the truncation study (values >= T are skipped).

    The layer's mode, parameter gradients and ``final_state`` are left as they were.
    """
    if not isinstance(rnn, (RNN, LSTM, GRU)):
        raise TypeError(f"bptt_profile: expected an RNN, LSTM or GRU layer, got "
                        f"{type(rnn).__name__}")
    if rnn.bidirectional:
        raise ValueError(f"bptt_profile: {rnn.describe()} is bidirectional; the profile needs "
                         f"one direction of time")
    x = np.asarray(x, dtype=rnn.dtype)
    saved = ([(p, p.grad) for p in rnn.parameters()], rnn.training, rnn._eval_backward,
             rnn.final_state, rnn.grad_initial_state)
    rnn.eval(backward=True)
    try:
        return _profile(rnn, x, grad_output, truncations, rng)
    finally:
        for p, grad in saved[0]:
            p.grad = grad
        object.__setattr__(rnn, "training", saved[1])
        object.__setattr__(rnn, "_eval_backward", saved[2])
        rnn.final_state, rnn.grad_initial_state = saved[3], saved[4]


def _profile(rnn, x, grad_output, truncations, rng) -> BPTTProfile:
    y = rnn(x)
    T = y.shape[1] if rnn.batch_first and y.ndim == 3 else y.shape[0]
    if grad_output is None:
        g = np.zeros_like(y)
        last = _time(rnn, g, T - 1, T)
        v = resolve_rng(rng).standard_normal(last.shape)
        v /= np.linalg.norm(v, axis=-1, keepdims=True)
        last[...] = v
    else:
        g = np.asarray(grad_output, dtype=y.dtype)
        if g.shape != y.shape:
            raise ValueError(f"bptt_profile: expected grad_output of the output's shape "
                             f"{y.shape}, got {g.shape}")
    rnn.zero_grad()
    rnn.backward(g)
    full = _flat_grads(rnn)

    # states after every step, one step at a time (values only)
    states, state = [], None
    for t in range(T):
        rnn(_time(rnn, x, t, t + 1), state)
        state = rnn.final_state
        states.append(state)
    grad_norms, cell_norms = np.zeros(T), np.zeros(T)
    top = rnn.num_layers - 1
    for t in range(T):
        direct = _time(rnn, g, t, t + 1)
        if t == T - 1:
            carried = None
        else:
            rnn(_time(rnn, x, t + 1), states[t])
            rnn.backward(_time(rnn, g, t + 1))
            carried = rnn.grad_initial_state
        h_grad = np.zeros_like(states[t][0] if isinstance(states[t], tuple) else states[t])
        c_grad = np.zeros_like(h_grad)
        if carried is not None:
            h_grad = h_grad + (carried[0] if isinstance(carried, tuple) else carried)
            if isinstance(carried, tuple):
                c_grad = c_grad + carried[1]
        h_grad[top] = h_grad[top] + direct.reshape(h_grad[top].shape)
        grad_norms[t], _ = _state_norm(h_grad)
        cell_norms[t] = float(np.linalg.norm(c_grad))

    truncation = []
    for k in truncations:
        if k >= T:
            continue
        rnn.zero_grad()
        bounds = [0] + list(range(T % k or k, T, k)) + [T]
        bounds = sorted(set(bounds))
        state = None
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            rnn(_time(rnn, x, lo, hi), state)
            state = rnn.final_state
            rnn.backward(_time(rnn, g, lo, hi))
        trunc = _flat_grads(rnn)
        denom = np.linalg.norm(full) * np.linalg.norm(trunc)
        truncation.append((int(k), float(full @ trunc / denom) if denom > 0 else math.nan))
    rnn.zero_grad()
    return BPTTProfile(grad_norms, cell_norms if rnn.mode == "lstm" else None,
                       _saturation(rnn, x, states), truncation, type(rnn).__name__)


def _saturation(rnn: Any, x: NDArray, states: list) -> dict[str, NDArray]:
    """Per step, the share of saturated gate values of the first layer."""
    if rnn.num_layers != 1:
        return {}
    w_ih, w_hh, b_ih, b_hh = rnn._weights(0, 0)
    xs = x if x.ndim == 3 else x[:, None]
    xs = xs.transpose(1, 0, 2) if rnn.batch_first and x.ndim == 3 else xs  # (T, N, F)
    T, H = xs.shape[0], rnn.hidden_size
    names = _GATE_NAMES[rnn.mode]
    out = {n: np.zeros(T) for n in names}
    for t in range(T):
        prev = np.zeros((xs.shape[1], H)) if t == 0 else _hidden(states[t - 1])[0].reshape(-1, H)
        a_ih = xs[t] @ w_ih.data.T + (0 if b_ih is None else b_ih.data)
        a_hh = prev @ w_hh.data.T + (0 if b_hh is None else b_hh.data)
        if rnn.mode == "rnn":
            values = {"h": _hidden(states[t])[0].reshape(-1, H)}
        elif rnn.mode == "lstm":
            a = a_ih + a_hh
            values = {n: a[:, j * H:(j + 1) * H] for j, n in enumerate(names)}
            values = {n: (np.tanh(v) if n == "g" else _sigmoid(v)) for n, v in values.items()}
        else:  # GRU: n = tanh(a_in + r * a_hn)
            r = _sigmoid(a_ih[:, :H] + a_hh[:, :H])
            z = _sigmoid(a_ih[:, H:2 * H] + a_hh[:, H:2 * H])
            values = {"r": r, "z": z, "n": np.tanh(a_ih[:, 2 * H:] + r * a_hh[:, 2 * H:])}
        for n, v in values.items():
            if n in _TANH_GATES:
                out[n][t] = float(np.mean(np.abs(v) > 0.95))
            else:
                out[n][t] = float(np.mean((v < 0.05) | (v > 0.95)))
    return out


def _hidden(state: Any) -> NDArray:
    return state[0] if isinstance(state, tuple) else state


def _sigmoid(a: NDArray) -> NDArray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))


__all__ = ["bptt_profile", "BPTTProfile", "plot_bptt"]
