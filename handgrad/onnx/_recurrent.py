"""Converters of RNN, LSTM and GRU (and of the recurrent models), with the gate reordering.

PyTorch (and handgrad) stack the gate blocks of ``weight_ih_l{k}`` etc. as LSTM (i, f, g, o)
and GRU (r, z, n); ONNX's LSTM wants (i, o, f, c) and its GRU (z, r, h). The reordering is
written into the graph (``Split`` into gate blocks, ``Concat`` in ONNX's order) so the
initializers keep the state_dict's names and layout; runtimes fold it at load time.
PyTorch's GRU applies the reset gate after the hidden projection, ``n = tanh(W_in x + b_in
+ r * (W_hn h + b_hn))``: that is ONNX's ``linear_before_reset=1``.

Each handgrad layer of ``num_layers`` layers becomes one ONNX node per layer (ONNX's
recurrent ops are single-layer), both directions in one node; between layers the
``(T, D, N, H)`` output is turned into the ``(T, N, D*H)`` input of the next.
"""

from __future__ import annotations

import numpy as np

from ..layers import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from ..models import CharLM, SequenceClassifier
from ._graph import ExportContext, Tensor, converter
from ._pool_norm import reduce

__all__ = ["GATE_ORDER", "ONNX_OPS", "to_onnx_gates", "from_onnx_gates"]

# ONNX's gate block k is PyTorch's block GATE_ORDER[mode][k]
GATE_ORDER = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2], "rnn": [0]}
ONNX_OPS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


def to_onnx_gates(array: np.ndarray, mode: str) -> np.ndarray:
    """PyTorch's gate blocks along axis 0 in ONNX's order (the graph's Split/Concat, in NumPy)."""
    blocks = np.split(array, len(GATE_ORDER[mode]), axis=0)
    return np.concatenate([blocks[k] for k in GATE_ORDER[mode]], axis=0)


def from_onnx_gates(array: np.ndarray, mode: str) -> np.ndarray:
    """The inverse of ``to_onnx_gates``: ONNX's gate blocks back in PyTorch's order."""
    order = GATE_ORDER[mode]
    blocks = np.split(array, len(order), axis=0)
    back = [None] * len(order)
    for onnx_index, torch_index in enumerate(order):
        back[torch_index] = blocks[onnx_index]
    return np.concatenate(back, axis=0)


def _reordered(ctx: ExportContext, name: str, mode: str, hidden: int) -> str:
    order = GATE_ORDER[mode]
    if len(order) == 1:
        return name
    blocks = ctx.node("Split", [name, ctx.ints([hidden] * len(order), "gate_sizes")],
                      len(order), axis=0)
    return ctx.node("Concat", [blocks[k] for k in order], axis=0)[0]


def _stacked(ctx: ExportContext, names: list[str]) -> str:
    """(K, ...) tensors stacked into (len(names), K, ...): ONNX's direction axis."""
    axis0 = ctx.ints([0], "axis0")
    parts = [ctx.node("Unsqueeze", [n, axis0])[0] for n in names]
    return parts[0] if len(parts) == 1 else ctx.node("Concat", parts, axis=0)[0]


def _weights(ctx: ExportContext, layer, mode: str, hidden: int,
             directions: list[tuple[str, str, str | None, str | None]]):
    """ONNX's W, R and B (None without biases) from the parameters named per direction."""
    w = [_reordered(ctx, ctx.param(layer, d[0]), mode, hidden) for d in directions]
    r = [_reordered(ctx, ctx.param(layer, d[1]), mode, hidden) for d in directions]
    if directions[0][2] is None:
        return _stacked(ctx, w), _stacked(ctx, r), None
    b = [ctx.node("Concat", [_reordered(ctx, ctx.param(layer, d[2]), mode, hidden),
                             _reordered(ctx, ctx.param(layer, d[3]), mode, hidden)],
                  axis=0)[0] for d in directions]
    return _stacked(ctx, w), _stacked(ctx, r), _stacked(ctx, b)


def _layer_weights(ctx: ExportContext, layer, k: int):
    names = []
    for s in ["", "_reverse"][: layer.num_directions]:
        bias = (f"bias_ih_l{k}{s}", f"bias_hh_l{k}{s}") if layer.bias else (None, None)
        names.append((f"weight_ih_l{k}{s}", f"weight_hh_l{k}{s}", *bias))
    return _weights(ctx, layer, layer.mode, layer.hidden_size, names)


def _attrs(mode: str, hidden: int, directions: int, nonlinearity: str = "tanh") -> dict:
    attrs = dict(hidden_size=hidden, direction="bidirectional" if directions == 2 else "forward")
    if mode == "gru":
        attrs["linear_before_reset"] = 1  # PyTorch's GRU: r * (W_hn h + b_hn)
    if mode == "rnn":
        attrs["activations"] = ["Relu" if nonlinearity == "relu" else "Tanh"] * directions
    return attrs


def _step(ctx: ExportContext, mode: str, attrs: dict, seq: str, w: str, r: str, b: str | None,
          starts: list[str | None], seq_lens: str | None = None) -> list[str]:
    """One ONNX recurrent node; returns Y, Y_h (and Y_c for the LSTM)."""
    inputs = [seq, w, r, b, seq_lens, *starts]
    while inputs[-1] is None:
        inputs.pop()
    return ctx.node(ONNX_OPS[mode], inputs, 1 + len(starts), **attrs)


def _state_parts(state, mode: str) -> list[Tensor | None]:
    count = 2 if mode == "lstm" else 1
    if state is None:
        return [None] * count
    parts = list(state) if isinstance(state, (tuple, list)) else [state]
    return parts + [None] * (count - len(parts))


@converter(RNN, LSTM, GRU)
def recurrent(ctx: ExportContext, layer, x: Tensor, state=None,
              lengths: Tensor | None = None) -> tuple[Tensor, ...]:
    """One ONNX node per layer; ``lengths`` (padded sequences, as handgrad's forward takes
    them) become every node's ``sequence_lens``: ONNX's outputs are zero past a sequence's
    length, its final state is the state after its last step and the reverse direction
    starts there, as handgrad's (and PyTorch's packed sequences)."""
    mode, D, H, L = layer.mode, layer.num_directions, layer.hidden_size, layer.num_layers
    ctx.ensure(getattr(layer, "proj_size", 0) == 0, layer, "proj_size (an LSTM with a "
               "projection) has no ONNX LSTM equivalent")
    parts = _state_parts(state, mode)
    values = [None if p is None else p.value for p in parts]
    given = None if state is None else (tuple(values) if mode == "lstm" else values[0])
    y = layer(x.value, given, None if lengths is None else lengths.value)
    finals = list(layer.final_state) if mode == "lstm" else [layer.final_state]
    unbatched = x.value.ndim == 2
    ctx.ensure(lengths is None or not unbatched, layer, "lengths of an unbatched sequence are "
               "not exported (give a batch of one)")
    seq_lens = None if lengths is None else ctx.node("Cast", [lengths], to=6)[0]  # int32
    axis1 = ctx.ints([1], "axis1") if unbatched or D == 1 else None
    if unbatched:  # (T, F) -> (T, 1, F); a state (L*D, H) -> (L*D, 1, H)
        seq = ctx.node("Unsqueeze", [x, axis1])[0]
        parts = [p if p is None else ctx.node("Unsqueeze", [p, axis1])[0] for p in parts]
    else:
        seq = ctx.node("Transpose", [x], perm=[1, 0, 2])[0] if layer.batch_first else x.name
        parts = [p if p is None else p.name for p in parts]
    attrs = _attrs(mode, H, D, layer.nonlinearity)
    final_names: list[list[str]] = [[] for _ in parts]
    for k in range(L):
        w, r, b = _layer_weights(ctx, layer, k)
        starts = []
        for p in parts:
            if p is None or L == 1:
                starts.append(p)
            else:
                starts.append(ctx.node("Slice", [p, ctx.ints([k * D], "start"),
                                                 ctx.ints([(k + 1) * D], "end"),
                                                 ctx.ints([0], "axis0")])[0])
        outs = _step(ctx, mode, attrs, seq, w, r, b, starts, seq_lens)
        if D == 1:  # (T, 1, N, H) -> (T, N, H)
            seq = ctx.node("Squeeze", [outs[0], axis1])[0]
        else:  # (T, D, N, H) -> (T, N, D, H) -> (T, N, D*H)
            seq = ctx.node("Transpose", [outs[0]], perm=[0, 2, 1, 3])[0]
            seq = ctx.node("Reshape", [seq, ctx.ints([0, 0, -1])])[0]
        for names, out in zip(final_names, outs[1:]):
            names.append(out)
    if unbatched:
        out = ctx.op("Squeeze", [seq, axis1], y)
    elif layer.batch_first:
        out = ctx.op("Transpose", [seq], y, perm=[1, 0, 2])
    else:
        out = Tensor(seq, y)
    result = [out]
    for names, value in zip(final_names, finals):
        name = names[0] if len(names) == 1 else ctx.node("Concat", names, axis=0)[0]
        if unbatched:
            name = ctx.node("Squeeze", [name, axis1])[0]
        result.append(Tensor(name, value))
    return tuple(result)


@converter(RNNCell, LSTMCell, GRUCell, output_names=("h_1", "c_1"))
def cell(ctx: ExportContext, layer, x: Tensor, state=None):
    """One step: the sequence op on a sequence of length 1."""
    mode = {RNNCell: "rnn", LSTMCell: "lstm", GRUCell: "gru"}[type(layer)]
    parts = _state_parts(state, mode)
    values = [None if p is None else p.value for p in parts]
    given = None if state is None else (tuple(values) if mode == "lstm" else values[0])
    result = layer(x.value, given)
    results = list(result) if mode == "lstm" else [result]
    axes = ctx.ints([0] if x.value.ndim == 2 else [0, 1], "step_axes")
    # (N, F) -> (1, N, F), a state (N, H) -> (1, N, H); unbatched (F,) -> (1, 1, F)
    seq = ctx.node("Unsqueeze", [x, axes])[0]
    starts = [p if p is None else ctx.node("Unsqueeze", [p, axes])[0] for p in parts]
    bias = ("bias_ih", "bias_hh") if layer.bias_ih is not None else (None, None)
    w, r, b = _weights(ctx, layer, mode, layer.hidden_size, [("weight_ih", "weight_hh", *bias)])
    attrs = _attrs(mode, layer.hidden_size, 1, getattr(layer, "nonlinearity", "tanh"))
    outs = _step(ctx, mode, attrs, seq, w, r, b, starts)
    return tuple(ctx.op("Squeeze", [out, axes], value) for out, value in zip(outs[1:], results))


# ---------------------------------------------------------------------------- models
@converter(CharLM)
def char_lm(ctx: ExportContext, model: CharLM, ids: Tensor, state=None) -> tuple[Tensor, ...]:
    vectors = ctx.convert(model.embedding, "embedding", ids)[0]
    y, *finals = ctx.convert(model.rnn, "rnn", vectors, state)
    logits = ctx.convert(model.head, "head", y)[0]
    return (logits, *finals)


@converter(SequenceClassifier)
def sequence_classifier(ctx: ExportContext, model: SequenceClassifier, x: Tensor) -> Tensor:
    if model.embedding is not None:
        x = ctx.convert(model.embedding, "embedding", x)[0]
    y, h_n, *_ = ctx.convert(model.rnn, "rnn", x)
    if model.pooling == "mean":
        features = reduce(ctx, "ReduceMean", y, [1], y.value.mean(axis=1), keepdims=0)
    else:  # the last layer's final h of both directions, (D, N, H) -> (N, D*H)
        D, LD = model.rnn.num_directions, h_n.value.shape[0]
        last = ctx.node("Slice", [h_n, ctx.ints([LD - D], "start"), ctx.ints([LD], "end"),
                                  ctx.ints([0], "axis0")])[0]
        last = ctx.node("Transpose", [last], perm=[1, 0, 2])[0]
        features = ctx.op("Reshape", [last, ctx.ints([0, -1])],
                          np.concatenate(list(h_n.value[-D:]), axis=1))
    return ctx.convert(model.head, "head", features)[0]
