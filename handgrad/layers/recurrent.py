"""Recurrent layers RNN, LSTM and GRU with hand-written backpropagation through time.

The time loops live in ``handgrad.ops.recurrent``; this module handles layers, directions,
inter-layer dropout, shapes and the parameter gradients. The cells are in ``cells.py``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validation import as_array, as_float_input, check_positive_int, check_probability
from ..init import uniform_
from ..layer import Layer
from ..ops import recurrent as kernels
from ..parameter import Parameter
from ..random import resolve_rng, spawn_rng

__all__ = ["RNN", "LSTM", "GRU"]

_GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def accumulate_weight_grads(w_ih, w_hh, b_ih, b_hh, x, prev_h, grad_pre_ih, grad_pre_hh):
    """Add the weight gradients of a whole sequence with as few large matmuls as possible.

    ``x`` is the kernels' projection input: (T, N, I), or with biases always (T, N, I + 1)
    with a last column of ones (see ``ops.recurrent._project``); ``prev_h`` (T, N, H),
    ``grad_pre_*`` (T, N, G). dW_ih = sum_t da_ih[t]^T x[t], dW_hh = sum_t da_hh[t]^T
    h[t-1], db = column sums, which the ones column turns into one more column of the dW_ih
    matmul. When the input and hidden sides share the pre-activation gradient and it is wide
    (LSTM, G = 4H), ``[x | h]`` side by side make it ONE (G, I [+ 1] + H) matmul (cheaper
    than two thinner ones, copy included; for the plain RNN, G = H, the copy costs more).
    """
    G = grad_pre_ih.shape[-1]
    I, H, K = w_ih.data.shape[1], prev_h.shape[-1], x.shape[-1]
    g_ih = grad_pre_ih.reshape(-1, G)
    g_hh = g_ih if grad_pre_hh is grad_pre_ih else grad_pre_hh.reshape(-1, G)
    x2 = x.reshape(-1, K)
    h2 = prev_h.reshape(-1, H)
    with_bias = b_ih is not None and (b_ih.requires_grad or b_hh.requires_grad)
    need_ih = w_ih.requires_grad or with_bias
    grad_ih = grad_hh = None  # (G, K) and (G, H) products
    if g_hh is g_ih and G > 2 * H and need_ih and w_hh.requires_grad:
        side_by_side = np.empty((x2.shape[0], K + H), dtype=x.dtype)
        side_by_side[:, :K] = x2
        side_by_side[:, K:] = h2
        both = g_ih.T @ side_by_side
        grad_ih, grad_hh = both[:, :K], np.ascontiguousarray(both[:, K:])
    else:
        if need_ih:
            grad_ih = g_ih.T @ x2
        if w_hh.requires_grad:
            grad_hh = g_hh.T @ h2
    if w_ih.requires_grad:
        w_ih.accumulate_grad(np.ascontiguousarray(grad_ih[:, :I]), fresh=True)
    if w_hh.requires_grad:
        w_hh.accumulate_grad(grad_hh, fresh=True)
    if with_bias:
        sum_ih = grad_ih[:, I].copy()  # the ones column
        sum_hh = sum_ih if g_hh is g_ih else g_hh.sum(axis=0)
        b_ih.accumulate_grad(sum_ih, fresh=sum_hh is not sum_ih)
        b_hh.accumulate_grad(sum_hh, fresh=True)


def check_state_shape(layer: Layer, state, expected: tuple[int, ...], what: str) -> NDArray:
    state = as_float_input(layer, state, what)
    if state.shape != expected:
        raise ValueError(
            f"{layer.describe()}: expected {what} of shape {expected}, got {state.shape}"
        )
    return state


class _RNNBase(Layer):
    """Shared machinery of RNN, LSTM and GRU (see their docstrings)."""

    mode = "rnn"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, dtype: DTypeLike = np.float32, rng=None,
                 nonlinearity: str = "tanh", proj_size: int = 0):
        super().__init__()
        name = type(self).__name__
        self.input_size = check_positive_int(name, "input_size", input_size)
        self.hidden_size = check_positive_int(name, "hidden_size", hidden_size)
        self.num_layers = check_positive_int(name, "num_layers", num_layers)
        self.dropout = check_probability(name, "dropout", dropout)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"{name}: expected nonlinearity 'tanh' or 'relu', got {nonlinearity!r}"
            )
        self.nonlinearity = nonlinearity
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        if isinstance(proj_size, bool) or not isinstance(proj_size, (int, np.integer)) or \
                proj_size < 0:
            raise ValueError(f"{name}: expected a non-negative integer proj_size, got "
                             f"{proj_size!r}")
        if proj_size and self.mode != "lstm":
            raise ValueError(f"{name}: proj_size is only supported by LSTM, got {proj_size}")
        if proj_size >= hidden_size:
            raise ValueError(f"{name}: proj_size has to be smaller than hidden_size "
                             f"({hidden_size}), got {proj_size}")
        self.proj_size = int(proj_size)
        G = _GATES[self.mode] * hidden_size
        P = self.proj_size or hidden_size  # the size of h (the output per direction)
        for k in range(num_layers):
            in_size = input_size if k == 0 else P * self.num_directions
            for suffix in self._suffixes():
                setattr(self, f"weight_ih_l{k}{suffix}", Parameter(np.empty((G, in_size), dtype)))
                setattr(self, f"weight_hh_l{k}{suffix}", Parameter(np.empty((G, P), dtype)))
                if bias:
                    setattr(self, f"bias_ih_l{k}{suffix}", Parameter(np.empty(G, dtype)))
                    setattr(self, f"bias_hh_l{k}{suffix}", Parameter(np.empty(G, dtype)))
                if self.proj_size:
                    setattr(self, f"weight_hr_l{k}{suffix}",
                            Parameter(np.empty((P, hidden_size), dtype)))
        gen = resolve_rng(rng)
        self.reset_parameters(gen)
        # the inter-layer dropout masks: the rest of the seeded stream, or a child generator
        self.rng = gen if rng is not None else spawn_rng(None)
        # (rows, index) set by DistributedDataParallel: the masks are drawn for the global
        # batch of `rows` sequences and this process keeps the sequences `index` (see Dropout)
        self.shard = None
        self._cache = None
        self.final_state = None
        self.grad_initial_state = None

    def _suffixes(self) -> list[str]:
        return ["", "_reverse"][: self.num_directions]

    def reset_parameters(self, rng=None) -> None:
        """Every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) (PyTorch)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        gen = resolve_rng(rng)
        for param in self.parameters():
            uniform_(param, -bound, bound, gen)

    def _weights(self, k: int, d: int):
        suffix = self._suffixes()[d]
        get = self._parameters.get
        return (get(f"weight_ih_l{k}{suffix}"), get(f"weight_hh_l{k}{suffix}"),
                get(f"bias_ih_l{k}{suffix}"), get(f"bias_hh_l{k}{suffix}"))

    def _projection(self, k: int, d: int) -> Parameter | None:
        return self._parameters.get(f"weight_hr_l{k}{self._suffixes()[d]}")

    @property
    def _out_size(self) -> int:
        """The size of h: proj_size with a projection, else hidden_size."""
        return self.proj_size or self.hidden_size

    def _kernels(self):
        if self.mode == "lstm":
            return kernels.lstm_forward, kernels.lstm_backward
        if self.mode == "gru":
            return kernels.gru_forward, kernels.gru_backward
        relu = self.nonlinearity == "relu"

        def forward(*args, **kwargs):
            return kernels.rnn_forward(*args, relu=relu, **kwargs)

        return forward, kernels.rnn_backward

    # ------------------------------------------------------------------ shapes
    def _input_layout(self, x: NDArray) -> tuple[NDArray, bool]:
        """``x`` as a contiguous (T, N, I) array, and whether it was unbatched."""
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            layout = "(N, T, {0})" if self.batch_first else "(T, N, {0})"
            raise ValueError(
                f"{self.describe()}: expected input of shape {layout.format(self.input_size)} "
                f"or unbatched (T, {self.input_size}), got {x.shape}"
            )
        unbatched = x.ndim == 2
        if unbatched:
            x = x[:, None, :]
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        if x.shape[0] == 0:  # an empty batch (N = 0) runs, as in PyTorch; T = 0 does not
            raise ValueError(f"{self.describe()}: expected a sequence of length T > 0, got "
                             f"input of shape {x.shape}")
        return np.ascontiguousarray(x), unbatched

    def _to_user(self, y: NDArray, unbatched: bool) -> NDArray:
        """(T, N, F) time-major array to the user's layout."""
        if unbatched:
            return y[:, 0]
        return y.transpose(1, 0, 2) if self.batch_first else y

    def _state_parts(self):
        return ("h_0", "c_0") if self.mode == "lstm" else ("h_0",)

    def _state_sizes(self) -> tuple[int, ...]:
        """The last dimension of each part of the state: h (proj_size or H), and c (H)."""
        return (self._out_size, self.hidden_size) if self.mode == "lstm" else (self.hidden_size,)

    def _check_state(self, state, N: int, unbatched: bool, what: str = "state"):
        """The (initial or gradient) state as a tuple of (L*D, N, H) arrays (None: zeros)."""
        LD = self.num_layers * self.num_directions
        names = self._state_parts()
        if what != "state":
            names = tuple(f"grad_{n[0]}_n" for n in names)
        if state is None:
            return (None,) * len(names)
        if self.mode == "lstm":
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise ValueError(f"{self.describe()}: expected {what} as a tuple (h, c), got "
                                 f"{type(state).__name__}")
            parts = tuple(state)
        else:
            parts = (state,)
        checked = []
        for name, part, size in zip(names, parts, self._state_sizes()):
            if part is None and what != "state":
                checked.append(None)
                continue
            expected = (LD, size) if unbatched else (LD, N, size)
            part = check_state_shape(self, part, expected, name)
            checked.append(part[:, None] if unbatched else part)
        return tuple(checked)

    def _state_to_user(self, parts, unbatched: bool):
        if unbatched:
            parts = tuple(p[:, 0] for p in parts)
        return parts if self.mode == "lstm" else parts[0]

    # ------------------------------------------------------------------ forward/backward
    def forward(self, x: NDArray, state=None, lengths=None) -> NDArray:
        """The output sequence; the final state goes to ``self.final_state``.

        ``lengths`` (N integers in ``[1, T]``, any order) makes a padded batch a batch of
        variable-length sequences, as ``pack_padded_sequence`` does in PyTorch: sequence n
        is only its first ``lengths[n]`` steps, the reverse direction starts at its last
        real step, the output is zero past it, and ``final_state`` holds each sequence's
        state after its own last step.
        """
        x = as_float_input(self, x)
        x, unbatched = self._input_layout(x)
        T, N, _ = x.shape
        init = self._check_state(state, N, unbatched)
        keep = self.caching
        if lengths is None:
            y, final, cache = self._forward_dense(x, init, keep)
            self._cache = ("dense", cache, x.shape, unbatched) if keep else None
        else:
            groups = self._length_groups(lengths, T, N, unbatched)
            y = np.zeros((T, N, self.num_directions * self._out_size), dtype=x.dtype)
            final = tuple(np.empty((self.num_layers * self.num_directions, N, size), x.dtype)
                          for size in self._state_sizes())
            caches = []
            for length, rows in groups:  # each group of equal lengths is one dense batch
                part_init = tuple(None if s is None else s[:, rows] for s in init)
                y_g, final_g, cache = self._forward_dense(x[:length, rows], part_init, keep)
                y[:length, rows] = y_g
                for buf, value in zip(final, final_g):
                    buf[:, rows] = value
                caches.append((length, rows, cache))
            self._cache = ("lengths", caches, x.shape, unbatched) if keep else None
        self.final_state = self._state_to_user(final, unbatched)
        return self._to_user(y, unbatched)

    def _length_groups(self, lengths, T: int, N: int, unbatched: bool):
        """``[(length, row indices), ...]`` for the distinct lengths, longest first."""
        lengths = as_array(self, lengths, "lengths")
        if unbatched:
            lengths = lengths.reshape(-1)
        if lengths.shape != (N,) or lengths.dtype.kind not in "iu":
            raise ValueError(f"{self.describe()}: expected lengths as {N} integers (one per "
                             f"sequence), got {lengths.dtype} array of shape {lengths.shape}")
        if lengths.min() < 1 or lengths.max() > T:
            raise ValueError(f"{self.describe()}: expected lengths in [1, {T}] (the padded "
                             f"length), got min {lengths.min()} and max {lengths.max()}")
        return [(int(length), np.flatnonzero(lengths == length))
                for length in np.unique(lengths)[::-1]]

    def _forward_dense(self, x: NDArray, init: tuple, keep: bool):
        """All layers and directions over a (T, N, I) batch of full-length sequences."""
        T, N, _ = x.shape
        LD = self.num_layers * self.num_directions
        sizes = self._state_sizes()
        final = tuple(np.empty((LD, N, size), dtype=x.dtype) for size in sizes)
        run, _ = self._kernels()
        layer_caches, masks = [], []
        inp = x
        for k in range(self.num_layers):
            if k > 0 and self.training and self.dropout > 0:
                mask = self._dropout_mask(inp.shape, inp.dtype)
                inp = inp * mask
                masks.append(mask)
            else:
                masks.append(None)
            outputs, caches = [], []
            for d in range(self.num_directions):
                idx = k * self.num_directions + d
                start = tuple(np.zeros((N, size), x.dtype) if s is None else s[idx]
                              for s, size in zip(init, sizes))
                w_ih, w_hh, b_ih, b_hh = self._weights(k, d)
                extra = {}
                if self.proj_size:
                    extra["w_hr"] = self._projection(k, d).data
                y, last, cache = run(inp, start, w_ih.data, w_hh.data,
                                     None if b_ih is None else b_ih.data,
                                     None if b_hh is None else b_hh.data,
                                     reverse=d == 1, keep=keep, **extra)
                for buf, value in zip(final, last):
                    buf[idx] = value
                outputs.append(y)
                caches.append(cache)
            inp = outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=2)
            layer_caches.append(caches)
        return inp, final, ((layer_caches, masks) if keep else None)

    def _dropout_mask(self, shape, dtype) -> NDArray:
        if self.dropout == 1.0:
            return np.zeros(shape, dtype=dtype)
        draw = np.float32 if dtype == np.float32 else np.float64
        if self.shard is None or len(shape) != 3:
            keep = self.rng.random(shape, dtype=draw)
        else:  # (T, N, F): the batch is axis 1
            rows, index = self.shard
            keep = self.rng.random((shape[0], rows, shape[2]), dtype=draw)[:, index]
        mask = (keep >= self.dropout).astype(dtype)
        mask *= 1.0 / (1.0 - self.dropout)
        return mask

    def backward(self, grad_out: NDArray | None, grad_final_state=None) -> NDArray:
        """Gradient of the input; the initial state's goes to ``self.grad_initial_state``.

        ``grad_out`` is the gradient of the output sequence (``None``: zero);
        ``grad_final_state`` the gradient arriving at ``final_state`` (same structure;
        ``None`` or, for the LSTM, ``(grad_h, None)``/``(None, grad_c)`` for zeros).
        """
        kind, cache, (T, N, I), unbatched = self._saved(self._cache)
        out_shape = (T, N, self.num_directions * self._out_size)
        if grad_out is None:
            grad = np.zeros(out_shape, dtype=self.dtype)
        else:
            grad = as_array(self, grad_out, "grad_out", kinds="biuf")
            user_shape = self._to_user(np.empty(out_shape, dtype=np.int8), unbatched).shape
            if grad.shape != user_shape:
                raise ValueError(f"{self.describe()}: expected grad_out of shape {user_shape} "
                                 f"(the forward output's), got {grad.shape}")
            grad = grad[:, None] if unbatched else grad
            grad = grad.transpose(1, 0, 2) if self.batch_first and not unbatched else grad
        grad_final = self._check_state(grad_final_state, N, unbatched, what="grad_final_state")
        if kind == "dense":
            grad_x, grad_init = self._backward_dense(cache, grad, grad_final)
        else:  # each group of equal lengths backpropagates as the dense batch it ran as
            grad_x = np.zeros((T, N, I), dtype=self.dtype)
            grad_init = tuple(np.empty((self.num_layers * self.num_directions, N, size),
                                       self.dtype) for size in self._state_sizes())
            for length, rows, part in cache:
                part_final = tuple(None if g is None else g[:, rows] for g in grad_final)
                gx, g_init = self._backward_dense(part, grad[:length, rows], part_final)
                grad_x[:length, rows] = gx
                for buf, value in zip(grad_init, g_init):
                    buf[:, rows] = value
        self.grad_initial_state = self._state_to_user(grad_init, unbatched)
        return self._to_user(grad_x, unbatched)

    def _backward_dense(self, cache, grad: NDArray, grad_final: tuple):
        """BPTT through all layers and directions of one :meth:`_forward_dense` call."""
        layer_caches, masks = cache
        T, N = grad.shape[:2]
        D, H = self.num_directions, self._out_size
        grad_init = tuple(np.empty((self.num_layers * D, N, size), dtype=self.dtype)
                          for size in self._state_sizes())
        _, run_backward = self._kernels()
        for k in reversed(range(self.num_layers)):
            grad_inp = None
            for d in range(D):
                idx = k * D + d
                w_ih, w_hh, b_ih, b_hh = self._weights(k, d)
                cache = layer_caches[k][d]
                grad_y = grad if D == 1 else grad[..., d * H:(d + 1) * H]
                last = tuple(None if g is None else g[idx] for g in grad_final)
                w_hr = self._projection(k, d) if self.proj_size else None
                if w_hr is None:
                    g_init, g_ih, g_hh, prev_h = run_backward(cache, grad_y, last, w_hh.data)
                else:
                    g_init, g_ih, g_hh, prev_h, g_hr = run_backward(cache, grad_y, last,
                                                                    w_hh.data, w_hr.data)
                    if w_hr.requires_grad:
                        w_hr.accumulate_grad(g_hr, fresh=True)
                for buf, value in zip(grad_init, g_init):
                    buf[idx] = value
                x_k = cache[0]  # the projection input, maybe with a ones column
                accumulate_weight_grads(w_ih, w_hh, b_ih, b_hh, x_k, prev_h, g_ih, g_hh)
                G = g_ih.shape[-1]
                dx = (g_ih.reshape(-1, G) @ w_ih.data).reshape(T, N, w_ih.data.shape[1])
                if grad_inp is None:
                    grad_inp = dx
                else:
                    grad_inp += dx
            if masks[k] is not None:
                grad_inp *= masks[k]
            grad = grad_inp
        return grad, grad_init

    def extra_repr(self) -> str:
        parts = [str(self.input_size), str(self.hidden_size)]
        if self.num_layers != 1:
            parts.append(f"num_layers={self.num_layers}")
        if self.mode == "rnn" and self.nonlinearity != "tanh":
            parts.append(f"nonlinearity={self.nonlinearity!r}")
        if not self.bias:
            parts.append("bias=False")
        if self.batch_first:
            parts.append("batch_first=True")
        if self.dropout:
            parts.append(f"dropout={self.dropout}")
        if self.bidirectional:
            parts.append("bidirectional=True")
        if self.proj_size:
            parts.append(f"proj_size={self.proj_size}")
        return ", ".join(parts)


_SHAPE_DOC = """
    Shape (T: sequence length, N: batch, D: 2 if bidirectional else 1, L: num_layers):
        - input: ``(T, N, input_size)``, ``(N, T, input_size)`` with ``batch_first``, or
          unbatched ``(T, input_size)``
        - state: ``(L * D, N, hidden_size)`` (``(L * D, hidden_size)`` unbatched){lstm}
        - output: ``(T, N, D * hidden_size)`` (same layout rules as the input)
        - weight_ih_l{{k}}: ``({G} * hidden_size, in_k)`` with in_0 = input_size and
          in_k = D * hidden_size; weight_hh_l{{k}}: ``({G} * hidden_size, hidden_size)``;
          bias_ih_l{{k}}, bias_hh_l{{k}}: ``({G} * hidden_size,)``; ``_reverse`` for the
          backward direction. All ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).

    ``forward(x, state=None)`` returns the output sequence (the last layer's hidden state at
    every step, both directions concatenated) and sets ``final_state`` (h_n{cn}, the state
    after the last step of every layer and direction; the reverse direction ends at t = 0).
    ``backward(grad_out, grad_final_state=None)`` returns the input gradient, ADDS the
    parameter gradients and sets ``grad_initial_state`` (same structure as the state; it is
    computed also when the initial state was None, i.e. zeros). Truncated BPTT: pass the
    previous ``final_state`` as the next ``state``; the values carry over, the gradient stops
    at the chunk boundary (read ``grad_initial_state`` if you want it).
    Inter-layer dropout (on the inputs of layers 1 .. L-1) runs only in training mode, with
    the layer's own generator ``rng``.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional: as in
            PyTorch.
        dtype: parameter dtype (float32 by default).
        rng: generator or seed for the initial weights and the dropout masks.

    Forward caches, per layer and direction, the layer input and the buffers of hidden
    states{cache} (time-major, preallocated once per call).
"""


class RNN(_RNNBase):
    __doc__ = """Elman RNN: ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``.

    ``act`` is tanh or relu (``nonlinearity``).
    """ + _SHAPE_DOC.format(G=1, lstm="", cn="", cache=" (the activations)")

    mode = "rnn"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False,
                 dtype: DTypeLike = np.float32, rng=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype, rng, nonlinearity)


class LSTM(_RNNBase):
    __doc__ = """Long short-term memory, PyTorch's equations and gate order (i, f, g, o).

    ``i, f, o = sigmoid(x W_i*^T + b_i* + h W_h*^T + b_h*)``, ``g = tanh(...)``,
    ``c_t = f * c_{t-1} + i * g``, ``h_t = o * tanh(c_t)``. With ``proj_size = P > 0``
    (LSTMP, Sak et al. 2014, as PyTorch): ``h_t = (o * tanh(c_t)) W_hr^T`` of size P, so
    h, the output and ``weight_hh_l{k}`` (4H, P) use P, layers after the first take
    ``D * P`` inputs, ``weight_hr_l{k}`` is (P, hidden_size), and c keeps hidden_size.
    """ + _SHAPE_DOC.format(
        G=4, lstm="; the state is a tuple ``(h, c)`` of two such arrays", cn=", c_n",
        cache=", cell states, activated gates and tanh(c)")
    mode = "lstm"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0,
                 dtype: DTypeLike = np.float32, rng=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype, rng, proj_size=proj_size)


class GRU(_RNNBase):
    __doc__ = """Gated recurrent unit, PyTorch's equations and gate order (r, z, n).

    ``r, z = sigmoid(x W_i*^T + b_i* + h W_h*^T + b_h*)``,
    ``n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))``, ``h_t = (1 - z) * n + z * h_{t-1}``.
    """ + _SHAPE_DOC.format(G=3, lstm="", cn="",
                            cache=", activated gates and h W_hn^T + b_hn")
    mode = "gru"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, dtype: DTypeLike = np.float32, rng=None):
        # PyTorch's GRU signature: no nonlinearity and no proj_size (torch refuses both)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype, rng)
