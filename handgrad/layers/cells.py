"""Single-step recurrent cells RNNCell, LSTMCell and GRUCell, for hand-written loops.

A cell computes one time step with the same kernels as ``RNN``/``LSTM``/``GRU`` (T = 1).
Because a loop calls the same cell once per step, each training-mode forward PUSHES its
cache on a stack and each ``backward`` POPS the most recent one. Backpropagating a loop is
therefore the loop reversed:

    cell = LSTMCell(F, H)
    state = None
    for t in range(T):                                   # forward, pushes T caches
        state = cell(x[t], state)
        h[t] = state[0]
    grad_h_next = grad_c_next = 0                        # nothing flows in after step T-1
    for t in reversed(range(T)):                         # backward, pops them in reverse
        grad_x[t] = cell.backward(grad_h[t] + grad_h_next, grad_c_next)
        grad_h_next, grad_c_next = cell.grad_state       # gradient of the state fed in at t

The parameter gradients of all steps add up in ``p.grad``. ``cell.clear_cache()`` drops
pending caches (e.g. after a forward-only pass in training mode); in eval mode nothing is
cached. ``cell.pending`` tells how many forwards await their backward.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validation import as_float_input, check_grad, check_positive_int
from ..init import uniform_
from ..layer import Layer
from ..ops import recurrent as kernels
from ..parameter import Parameter
from ..random import resolve_rng
from .recurrent import accumulate_weight_grads, check_state_shape

__all__ = ["RNNCell", "LSTMCell", "GRUCell"]


class _CellBase(Layer):
    gates = 1
    state_names = ("h",)

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 dtype: DTypeLike = np.float32, rng=None):
        super().__init__()
        name = type(self).__name__
        self.input_size = check_positive_int(name, "input_size", input_size)
        self.hidden_size = check_positive_int(name, "hidden_size", hidden_size)
        G = self.gates * hidden_size
        self.weight_ih = Parameter(np.empty((G, input_size), dtype))
        self.weight_hh = Parameter(np.empty((G, hidden_size), dtype))
        if bias:
            self.bias_ih = Parameter(np.empty(G, dtype))
            self.bias_hh = Parameter(np.empty(G, dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters(rng)
        self._stack: list = []
        self.grad_state = None

    def reset_parameters(self, rng=None) -> None:
        """Every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) (PyTorch)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        gen = resolve_rng(rng)
        for param in self.parameters():
            uniform_(param, -bound, bound, gen)

    @property
    def pending(self) -> int:
        """How many cached forwards wait for their backward."""
        return len(self._stack)

    def clear_cache(self) -> None:
        """Forget every pending cached forward."""
        self._stack.clear()

    def _run(self, x, state, **kwargs):
        raise NotImplementedError

    def _run_backward(self, cache, grad_y, grad_final):
        raise NotImplementedError

    def forward(self, x: NDArray, state=None):
        x = as_float_input(self, x)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"{self.describe()}: expected input of shape (N, {self.input_size}) "
                             f"or ({self.input_size},), got {x.shape}")
        unbatched = x.ndim == 1
        x2 = x[None] if unbatched else x
        N, H = x2.shape[0], self.hidden_size
        parts = self._state_tuple(state)
        expected = (H,) if unbatched else (N, H)
        start = []
        for name, part in zip(self.state_names, parts):
            if part is None:
                start.append(np.zeros((N, H), dtype=x.dtype))
            else:
                part = check_state_shape(self, part, expected, f"state {name}")
                start.append(part[None] if unbatched else part)
        b_ih = None if self.bias_ih is None else self.bias_ih.data
        b_hh = None if self.bias_hh is None else self.bias_hh.data
        _, final, cache = self._run(x2[None], tuple(start), self.weight_ih.data,
                                    self.weight_hh.data, b_ih, b_hh, keep=self.caching)
        if self.caching:
            self._stack.append((cache, unbatched))
        out = tuple(f[0] if unbatched else f for f in final)
        return out if len(out) > 1 else out[0]

    def _state_tuple(self, state):
        if state is None:
            return (None,) * len(self.state_names)
        if len(self.state_names) == 1:
            return (state,)
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise ValueError(f"{self.describe()}: expected state as a tuple (h, c), got "
                             f"{type(state).__name__}")
        return tuple(state)

    def backward(self, grad_h: NDArray, grad_c: NDArray | None = None) -> NDArray:
        """Pop the latest cached step; return dL/dx and set ``grad_state`` (dL/d state in).

        ``grad_h`` is the gradient of the returned ``h`` (including what flows back from
        later steps); ``grad_c`` (LSTMCell only, None means zero) that of the returned ``c``.
        """
        if not self._stack:
            self._saved(None)
        cache, unbatched = self._stack[-1]
        x = cache[0]  # (1, N, I), or (1, N, I + 1) with the ones column of the biases
        shape = (self.hidden_size,) if unbatched else (x.shape[1], self.hidden_size)
        grads = [check_grad(self, grad_h, shape)]
        if len(self.state_names) == 2:
            grads.append(None if grad_c is None else check_grad(self, grad_c, shape))
        elif grad_c is not None:
            raise ValueError(f"{self.describe()}: has no cell state, got grad_c")
        self._stack.pop()
        grads = [None if g is None else (g[None] if unbatched else g) for g in grads]
        grad_y = np.zeros((1,) + x.shape[1:2] + (self.hidden_size,), dtype=x.dtype)
        g_init, g_ih, g_hh, prev_h = self._run_backward(cache, grad_y, tuple(grads),
                                                        self.weight_hh.data)
        accumulate_weight_grads(self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh,
                                x, prev_h, g_ih, g_hh)
        grad_x = g_ih[0] @ self.weight_ih.data  # (N, I)
        g_init = tuple(g[0] if unbatched else g for g in g_init)
        self.grad_state = g_init if len(g_init) > 1 else g_init[0]
        return grad_x[0] if unbatched else grad_x

    def extra_repr(self) -> str:
        extra = "" if self.bias_ih is not None else ", bias=False"
        return f"{self.input_size}, {self.hidden_size}{extra}"


_CELL_DOC = """
    Args:
        input_size, hidden_size, bias: as in PyTorch.
        dtype: parameter dtype (float32 by default).
        rng: generator or seed for the initial weights.

    Shape:
        - input: ``(N, input_size)`` or unbatched ``(input_size,)``
        - state and output: ``(N, hidden_size)`` (``(hidden_size,)`` unbatched){lstm}
        - weight_ih: ``({G} * hidden_size, input_size)``, weight_hh:
          ``({G} * hidden_size, hidden_size)``, bias_ih, bias_hh: ``({G} * hidden_size,)``,
          all ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).

    Forward pushes one step's cache (input, states, gates) on a stack; ``backward`` pops it
    (see the module docstring for a complete hand-written loop).
"""


class RNNCell(_CellBase):
    __doc__ = """One Elman RNN step: ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)``.

    ``forward(x, h=None)`` returns h'; ``backward(grad_h)`` returns dL/dx and sets
    ``grad_state`` = dL/dh. ``nonlinearity`` is 'tanh' or 'relu'.
    """ + _CELL_DOC.format(G=1, lstm="")

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", dtype: DTypeLike = np.float32, rng=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"RNNCell: expected nonlinearity 'tanh' or 'relu', got {nonlinearity!r}"
            )
        super().__init__(input_size, hidden_size, bias, dtype, rng)
        self.nonlinearity = nonlinearity

    def _run(self, *args, **kwargs):
        return kernels.rnn_forward(*args, relu=self.nonlinearity == "relu", **kwargs)

    def _run_backward(self, *args):
        return kernels.rnn_backward(*args)

    def extra_repr(self) -> str:
        extra = "" if self.nonlinearity == "tanh" else f", nonlinearity={self.nonlinearity!r}"
        return super().extra_repr() + extra


class LSTMCell(_CellBase):
    __doc__ = """One LSTM step (gates i, f, g, o as in PyTorch).

    ``forward(x, (h, c)=None)`` returns ``(h', c')``; ``backward(grad_h, grad_c=None)``
    returns dL/dx and sets ``grad_state`` = (dL/dh, dL/dc).
    """ + _CELL_DOC.format(G=4, lstm="; the state is a tuple ``(h, c)``")
    gates = 4
    state_names = ("h", "c")

    def _run(self, *args, **kwargs):
        return kernels.lstm_forward(*args, **kwargs)

    def _run_backward(self, *args):
        return kernels.lstm_backward(*args)


class GRUCell(_CellBase):
    __doc__ = """One GRU step (gates r, z, n as in PyTorch).

    ``forward(x, h=None)`` returns h'; ``backward(grad_h)`` returns dL/dx and sets
    ``grad_state`` = dL/dh.
    """ + _CELL_DOC.format(G=3, lstm="")
    gates = 3

    def _run(self, *args, **kwargs):
        return kernels.gru_forward(*args, **kwargs)

    def _run_backward(self, *args):
        return kernels.gru_backward(*args)
