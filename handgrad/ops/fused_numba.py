"""The Numba backend's kernels, gathered (what ``handgrad.ops.backend.kernels()`` returns).

Each family has its own module, whose docstring names the NumPy twin it replaces:

* ``numba_norm``: BatchNorm's training forward / backward and its eval forward;
* ``numba_recurrent``: the LSTM's and GRU's per-step gate arithmetic, forward and BPTT;
* ``numba_optim``: Adam's (and AdamW's) and SGD momentum's element-wise updates;
* ``numba_elementwise``: ReLU's backward and the residual add + ReLU of a ResNet block.

Importing this module imports Numba; nothing else in handgrad does.
"""

from __future__ import annotations

import numpy as np

from .numba_elementwise import add_relu, relu_backward
from .numba_norm import batch_norm_running, batch_norm_train, batch_norm_train_backward
from .numba_optim import adam_update, momentum_update
from .numba_recurrent import gru_backward_loop, gru_loop, lstm_backward_loop, lstm_loop

__all__ = [
    "batch_norm_train", "batch_norm_train_backward", "batch_norm_running",
    "lstm_loop", "lstm_backward_loop", "gru_loop", "gru_backward_loop",
    "adam_update", "momentum_update", "relu_backward", "add_relu",
    "warm_up",
]


def warm_up(dtype=np.float32) -> None:
    """Compile every kernel for ``dtype`` (or load it from Numba's on-disk cache) now, on
    tiny arrays, instead of at its first use in a training step."""
    import types

    dtype = np.dtype(dtype)
    rng = np.random.default_rng(0)

    def rand(*shape):
        return rng.standard_normal(shape).astype(dtype)

    x3 = rand(2, 3, 4)
    weight, bias = np.ones(3, dtype), np.zeros(3, dtype)
    xc = np.empty_like(x3)
    y, mean, var, invstd = batch_norm_train(x3, weight, bias, 1e-5, xc)
    batch_norm_train_backward(rand(2, 3, 4), xc, invstd, weight)
    batch_norm_running(x3, weight, bias)
    T, n, H = 2, 2, 3
    hs, cs = rand(T + 1, n, H), rand(T + 1, n, H)
    lstm_gates = rand(T, n, 4 * H)
    lstm_loop(T, False, H, lstm_gates, hs, cs, rand(T, n, H), rand(T, n, H), rand(H, 4 * H))
    lstm_backward_loop(T, False, H, rand(T, n, H), lstm_gates, rand(T, n, H), rand(T, n, H),
                       cs, rand(T, n, 4 * H), rand(n, H), rand(n, H), rand(4 * H, H))
    gru_gates = rand(T, n, 3 * H)
    gru_loop(T, False, H, gru_gates, hs, rand(T, n, H), rand(H, 3 * H), rand(H))
    gru_backward_loop(T, False, H, rand(T, n, H), gru_gates, hs, rand(T, n, H),
                      rand(T, n, 3 * H), rand(T, n, 3 * H), rand(n, H), rand(3 * H, H))
    hp = types.SimpleNamespace(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, amsgrad=False,
                               momentum=0.9, dampening=0.0)
    adam_update(rand(5), rand(5), np.abs(rand(5)), None, rand(5), hp, 1.0)
    momentum_update(rand(5), rand(5), hp)
    relu_backward(rand(5), rand(5))
    add_relu(rand(5), rand(5))
