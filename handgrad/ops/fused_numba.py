"""The Numba backend's kernels, gathered (what ``handgrad.ops.backend.kernels()`` returns).

Each family has its own module, whose docstring names the NumPy twin it replaces:

* ``numba_norm``: BatchNorm's training forward / backward and its eval forward;
* ``numba_recurrent``: the LSTM's and GRU's per-step gate arithmetic, forward and BPTT;
* ``numba_optim``: Adam's (and AdamW's) and SGD momentum's element-wise updates;
* ``numba_elementwise``: ReLU's backward and the residual add + ReLU of a ResNet block.

Importing this module imports Numba; nothing else in handgrad does.
"""

from __future__ import annotations

from .numba_elementwise import add_relu, relu_backward
from .numba_norm import batch_norm_running, batch_norm_train, batch_norm_train_backward
from .numba_optim import adam_update, momentum_update
from .numba_recurrent import gru_backward_loop, gru_loop, lstm_backward_loop, lstm_loop

__all__ = [
    "batch_norm_train", "batch_norm_train_backward", "batch_norm_running",
    "lstm_loop", "lstm_backward_loop", "gru_loop", "gru_backward_loop",
    "adam_update", "momentum_update", "relu_backward", "add_relu",
]
