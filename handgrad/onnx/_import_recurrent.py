"""Importing ONNX's LSTM, GRU and RNN nodes (the layers and cells ``export`` writes, and the
same shapes from other tools) and assembling the recurrent models.

A chain of same-kind nodes joined by the ``(T, D, N, H) -> (T, N, D*H)`` reshape is one
multi-layer handgrad layer; a ``Transpose`` before and after makes it ``batch_first``; an
``Unsqueeze`` before and a ``Squeeze`` after it, an unbatched sequence or (on the final
hidden state of a length-1 sequence) a cell. The gate blocks go back to PyTorch's order
(``from_onnx_gates``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..layer import Layer
from ..layers import GRU, LSTM, RNN, Embedding, GRUCell, Linear, LSTMCell, RNNCell
from ..models import CharLM, SequenceClassifier
from ._recurrent import GATE_ORDER, from_onnx_gates

__all__ = ["Pooling", "recurrent", "sequence_model"]

_LAYERS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}
_CELLS = {"lstm": LSTMCell, "gru": GRUCell, "rnn": RNNCell}
_OPS = {"LSTM", "GRU", "RNN"}


class Pooling(Layer):
    """A placeholder for a SequenceClassifier's pooling over time (never run)."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind


def _ints(g, name: str) -> list[int] | None:
    value = g.const(name)
    return None if value is None else [int(v) for v in np.ravel(value)]


def _from_input(g, name: str) -> bool:
    """Whether ``name`` is a graph input, maybe through a Cast."""
    producer = g.producer.get(name)
    if producer is not None and producer.op_type == "Cast":
        name = producer.input[0]
    return name in g.inputs


def _check_node(g, node, mode: str) -> tuple[int, int, str]:
    a = g.attrs(node)
    H = a["hidden_size"]
    direction = a.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    if direction not in ("forward", "bidirectional") or a.get("layout", 0) \
            or a.get("clip") is not None or a.get("input_forget", 0):
        raise g.bad(node, f"direction {direction!r}, layout, clip and input_forget other than "
                          f"the defaults have no handgrad layer")
    if len(node.input) > 4 and node.input[4] and not _from_input(g, node.input[4]):
        raise g.bad(node, "sequence_lens other than a graph input (the lengths that the "
                          "loaded layer's forward then takes) are not imported")
    if mode == "lstm" and len(node.input) > 7 and node.input[7]:
        raise g.bad(node, "peephole weights have no handgrad LSTM")
    if mode == "gru" and a.get("linear_before_reset", 0) != 1:
        raise g.bad(node, "a GRU with linear_before_reset=0 has no handgrad layer (PyTorch's "
                          "and handgrad's GRU are linear_before_reset=1)")
    nonlinearity = "tanh"
    if mode == "rnn":
        acts = [s.decode() if isinstance(s, bytes) else s for s in a.get("activations", [])]
        if len(set(acts)) > 1 or (acts and acts[0] not in ("Tanh", "Relu")):
            raise g.bad(node, f"activations {acts} have no handgrad RNN (Tanh or Relu)")
        nonlinearity = acts[0].lower() if acts else "tanh"
    D = 2 if direction == "bidirectional" else 1
    return H, D, nonlinearity


def _node_weights(g, node, mode: str, H: int, D: int) -> list[dict[str, np.ndarray]]:
    w = g.const(node.input[1])
    r = g.const(node.input[2])
    b = g.const(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    if w is None or r is None or (len(node.input) > 3 and node.input[3] and b is None):
        raise g.bad(node, "expected constant W, R and B")
    GH = len(GATE_ORDER[mode]) * H
    out = []
    for d in range(D):
        entry = {"ih": from_onnx_gates(w[d], mode), "hh": from_onnx_gates(r[d], mode)}
        if b is not None:
            entry["b_ih"] = from_onnx_gates(b[d, :GH], mode)
            entry["b_hh"] = from_onnx_gates(b[d, GH:], mode)
        out.append(entry)
    return out


def recurrent(g, node, x: str) -> tuple[Any, str, list]:
    """The handgrad recurrent layer (or cell) starting at ``node``; its output; its nodes."""
    nodes, batch_first, unbatched, cell_axes = [], False, False, None
    if node.op_type in ("Transpose", "Unsqueeze"):
        nxt = g.single_next(node.output[0])
        if nxt is None or nxt.op_type not in _OPS:
            raise g.bad(node, f"a {node.op_type} that does not lead into a recurrent node "
                              "has no handgrad layer")
        if node.op_type == "Transpose":
            if list(g.attrs(node).get("perm", [])) != [1, 0, 2]:
                raise g.bad(node, "expected Transpose(perm=[1, 0, 2]) before a batch-first "
                                  "recurrent node")
            batch_first = True
        else:
            axes = _ints(g, node.input[1])
            if axes == [1]:
                unbatched = True
            elif axes in ([0], [0, 1]):
                cell_axes = axes
            else:
                raise g.bad(node, f"Unsqueeze of axes {axes} before a recurrent node")
        nodes.append(node)
        node = nxt
    mode = node.op_type.lower()
    first = node
    H, D, nonlinearity = _check_node(g, node, mode)
    weights, last, seq = [], node, None
    while True:
        weights.append(_node_weights(g, node, mode, H, D))
        nodes.append(node)
        last = node
        if cell_axes is not None:
            break
        post = g.single_next(node.output[0]) if node.output[0] else None
        if post is None:
            seq = None
            break
        if D == 1 and post.op_type == "Squeeze" and _ints(g, post.input[1]) == [1]:
            nodes.append(post)
            seq = post.output[0]
        elif D == 2 and post.op_type == "Transpose" and \
                list(g.attrs(post).get("perm", [])) == [0, 2, 1, 3] and \
                (flat := g.single_next(post.output[0], "Reshape")) is not None:
            nodes += [post, flat]
            seq = flat.output[0]
        else:
            raise g.bad(post, "expected the (T, D, N, H) output reshaped to (T, N, D*H)")
        nxt = g.single_next(seq)
        if nxt is None or nxt.op_type != first.op_type or nxt.input[0] != seq:
            break
        if _check_node(g, nxt, mode) != (H, D, nonlinearity):
            break
        node = nxt
    bias = "b_ih" in weights[0][0]
    input_size = weights[0][0]["ih"].shape[1]
    dtype = weights[0][0]["ih"].dtype
    extra = {"nonlinearity": nonlinearity} if mode == "rnn" else {}
    if cell_axes is not None:
        layer = _CELLS[mode](input_size, H, bias=bias, dtype=dtype, **extra)
        w = weights[0][0]
        values = {"weight_ih": w["ih"], "weight_hh": w["hh"]}
        if bias:
            values.update(bias_ih=w["b_ih"], bias_hh=w["b_hh"])
        _load(layer, values)
        squeeze = g.single_next(last.output[1], "Squeeze")
        if squeeze is None:
            raise g.bad(last, "expected the cell's new hidden state squeezed back to (N, H)")
        return layer, squeeze.output[0], nodes + [squeeze]
    layer = _LAYERS[mode](input_size, H, num_layers=len(weights), bias=bias,
                          batch_first=batch_first, bidirectional=D == 2, dtype=dtype, **extra)
    values = {}
    for k, per_layer in enumerate(weights):
        for d, w in enumerate(per_layer):
            s = "_reverse" if d else ""
            values[f"weight_ih_l{k}{s}"], values[f"weight_hh_l{k}{s}"] = w["ih"], w["hh"]
            if bias:
                values[f"bias_ih_l{k}{s}"], values[f"bias_hh_l{k}{s}"] = w["b_ih"], w["b_hh"]
    _load(layer, values)
    if seq is None:  # the output sequence unused: a classifier on the last hidden state
        return _last_state(g, layer, last, nodes)
    if batch_first:
        back = g.single_next(seq, "Transpose")
        if back is None:
            raise g.bad(first, "expected the output transposed back to batch-first")
        return layer, back.output[0], nodes + [back]
    if unbatched:
        back = g.single_next(seq, "Squeeze")
        if back is None:
            raise g.bad(first, "expected the unbatched output squeezed back to (T, F)")
        return layer, back.output[0], nodes + [back]
    return layer, seq, nodes


def _load(layer: Layer, values: dict[str, np.ndarray]) -> None:
    layer.load_state_dict({**layer.state_dict(), **values})


def _last_state(g, layer, last, nodes) -> tuple[Any, str, list]:
    """``Y_h`` [Concat] -> Slice (the last layer) -> Transpose -> Reshape (N, D*H)."""
    tensor, taken = last.output[1], []
    concat = g.single_next(tensor, "Concat")
    if concat is not None:
        taken.append(concat)
        tensor = concat.output[0]
    chain = []
    for op in ("Slice", "Transpose", "Reshape"):
        nxt = g.single_next(tensor, op)
        if nxt is None:
            raise g.bad(last, "the output sequence is unused, and the final state is not "
                              "reshaped to the (N, D*H) features of a classifier")
        chain.append(nxt)
        tensor = nxt.output[0]
    return [layer, Pooling("last")], tensor, nodes + taken + chain


def sequence_model(layers: list[Layer], stateful: bool) -> Layer | None:
    """A ``SequenceClassifier`` or ``CharLM`` when the layers are one, else None."""
    kinds = [type(layer) for layer in layers]
    if Pooling in kinds:
        body = layers[1:] if kinds[0] is Embedding else layers
        if len(body) != 3 or type(body[0]) not in (LSTM, GRU) or not isinstance(body[2], Linear):
            return None
        rnn, pooling, head = body
        emb = layers[0] if kinds[0] is Embedding else None
        sizes = ({"vocab_size": emb.num_embeddings, "embedding_dim": emb.embedding_dim}
                 if emb is not None else {"input_size": rnn.input_size})
        model = SequenceClassifier(hidden_size=rnn.hidden_size, num_classes=head.out_features,
                                   cell=rnn.mode, num_layers=rnn.num_layers,
                                   bidirectional=rnn.bidirectional, pooling=pooling.kind,
                                   dtype=rnn.dtype, **sizes)
    elif stateful and kinds[:1] == [Embedding] and len(layers) == 3 and \
            kinds[1] in (LSTM, GRU) and kinds[2] is Linear and layers[1].batch_first \
            and not layers[1].bidirectional:
        emb, rnn, head = layers
        model = CharLM(emb.num_embeddings, emb.embedding_dim, rnn.hidden_size, rnn.num_layers,
                       cell=rnn.mode, dtype=rnn.dtype)
    else:
        return None
    if emb is not None:
        model.embedding.load_state_dict(emb.state_dict())
    model.rnn.load_state_dict(rnn.state_dict())
    model.head.load_state_dict(head.state_dict())
    return model
