"""``load(path)``: the handgrad model equivalent to an ONNX graph of supported operators.

The graph is read from its input forward. Constant subgraphs (initializers, ``Constant``
nodes and what is computed only from them, such as the exporter's gate reordering) are
evaluated first, so every weight arrives as one array. Then, at each tensor:

* one consumer: the importer of that operator (the table in ``_import_ops.py``) matches it,
  with the nodes that belong to the same layer after it (``MatMul`` + ``Add`` is one
  ``Linear``), and gives the layer and the tensor after it;
* several consumers: the region up to where the branches meet again is one layer — an
  ``Add`` of two branches is a ``Residual`` (each branch imported the same way), a few fixed
  shapes are activations (``x * sigmoid(x)`` is a ``SiLU``) or a pooling.

The layers found in a row make a ``Sequential`` (one layer alone is returned as it is).
Anything else raises ``UnsupportedGraphError`` naming the node.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import numpy as np

from ..layer import Layer
from ..layers import Residual, Sequential
from . import _import_ops
from ._graph import UnsupportedGraphError
from ._import_base import Match
from ._import_ops import assemble
from ._import_regions import classify_region

__all__ = ["load", "load_weights", "UnsupportedGraphError"]


class GraphView:
    """The graph with its constants folded, consumers indexed and shapes inferred."""

    def __init__(self, proto: Any):
        from onnx import numpy_helper

        graph = proto.graph
        self.opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                          None)
        if self.opset is None or self.opset < 13:
            raise UnsupportedGraphError(f"handgrad.onnx.load: expected a graph of the default "
                                        f"domain with opset >= 13, got {self.opset}")
        self.consts: dict[str, np.ndarray] = {
            t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.shapes: dict[str, list] = {}
        for info in [*graph.input, *graph.value_info, *graph.output]:
            dims = info.type.tensor_type.shape.dim
            if info.type.tensor_type.HasField("shape"):
                self.shapes[info.name] = [d.dim_value if d.HasField("dim_value") else
                                          (d.dim_param or None) for d in dims]
        self.inputs = [i.name for i in graph.input if i.name not in self.consts]
        self.outputs = [o.name for o in graph.output]
        self.nodes = []
        for node in graph.node:
            if node.domain not in ("", "ai.onnx"):
                raise UnsupportedGraphError(f"handgrad.onnx.load: node {node.name!r} is of "
                                            f"domain {node.domain!r}, not ONNX's own")
            if node.op_type == "Constant" or all(not i or i in self.consts for i in node.input):
                self._fold(node)
            else:
                self.nodes.append(node)
        self._drop_zero_states()
        self.consumers: dict[str, list] = {}
        for node in self.nodes:
            for name in node.input:
                if name and name not in self.consts:
                    self.consumers.setdefault(name, []).append(node)
        self.producer = {out: node for node in self.nodes for out in node.output}
        self.order = {id(node): k for k, node in enumerate(self.nodes)}
        self.used: set[int] = set()

    def _drop_zero_states(self) -> None:
        """A recurrent node's initial state that is zeros broadcast to the input's batch (what
        torch.onnx writes for a missing state) is no state; the nodes computing it go."""
        producer = {out: n for n in self.nodes for out in n.output}
        changed = False
        for node in self.nodes:
            if node.op_type not in ("LSTM", "GRU", "RNN"):
                continue
            for k in (5, 6):
                if len(node.input) <= k or not node.input[k]:
                    continue
                source = producer.get(node.input[k])
                data = None if source is None else self.const(source.input[0])
                zero_fill = source is not None and (
                    (source.op_type == "Expand" and data is not None and not np.any(data))
                    or (source.op_type == "ConstantOfShape" and not np.any(
                        self._fill_value(source))))
                if zero_fill:
                    node.input[k] = ""
                    changed = True
        while changed:  # drop the nodes nothing reads any more
            read = {name for n in self.nodes for name in n.input} | {
                o for o in self.outputs}
            kept = [n for n in self.nodes if any(out in read for out in n.output)]
            changed = len(kept) != len(self.nodes)
            self.nodes = kept

    def _fill_value(self, node: Any) -> np.ndarray:
        from onnx import numpy_helper

        value = self.attrs(node).get("value")
        return np.zeros(1) if value is None else numpy_helper.to_array(value)

    def _fold(self, node: Any) -> None:
        from onnx.reference import ReferenceEvaluator

        feeds = {name: self.consts[name] for name in node.input if name}
        values = ReferenceEvaluator(node).run(None, feeds)
        for name, value in zip(node.output, values):
            if name:
                self.consts[name] = np.asarray(value)

    # ------------------------------------------------------------------ queries
    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name) if name else None

    def attrs(self, node: Any) -> dict[str, Any]:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def next_nodes(self, tensor: str) -> list:
        return [n for n in self.consumers.get(tensor, []) if id(n) not in self.used]

    def single_next(self, tensor: str, op: str | None = None) -> Any:
        """The one consumer of ``tensor`` (of type ``op`` if given), else None."""
        nodes = self.consumers.get(tensor, [])
        if len(nodes) != 1 or tensor in self.outputs:
            return None
        return nodes[0] if op is None or nodes[0].op_type == op else None

    def rank(self, name: str) -> int | None:
        shape = self.shapes.get(name)
        return None if shape is None else len(shape)

    def shape(self, name: str) -> list | None:
        return self.shapes.get(name)

    def bad(self, node: Any, what: str) -> UnsupportedGraphError:
        return UnsupportedGraphError(
            f"handgrad.onnx.load: node {node.name or node.op_type!r} ({node.op_type}): {what}")


def load(path: str | os.PathLike | Any) -> Layer:
    """The handgrad model that computes what the ONNX graph at ``path`` computes.

    ``path`` is a file or an ``onnx.ModelProto``. Supports the graphs ``export`` writes and
    those of the same operators written by other tools (``torch.onnx.export`` of an
    equivalent ``nn.Sequential`` MLP or CNN, or of ``nn.LSTM``/``GRU``/``RNN``). Weights keep
    their dtype. Extra graph inputs are forward's further arguments: the initial state and
    the lengths of a recurrent layer, the second input of a ``Bilinear`` or a distance.
    The result computes the same function; its structure may be flatter than the exported
    model's (a ``BasicBlock`` comes back as ``Residual`` + ``ReLU``) and its parameter names
    are its own.
    Raises ``UnsupportedGraphError`` (a ``ValueError``) naming the first node it cannot map.
    """
    import onnx
    from google.protobuf.message import DecodeError

    where = "the model" if isinstance(path, onnx.ModelProto) else os.fspath(path)
    try:
        proto = path if isinstance(path, onnx.ModelProto) else onnx.load(where)
        onnx.checker.check_model(proto)
        proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError,
            DecodeError) as error:
        raise UnsupportedGraphError(f"handgrad.onnx.load: {where} is not a valid ONNX model: "
                                    f"{error}") from None
    g = GraphView(proto)
    unpool = next((n for n in g.nodes if n.op_type == "MaxUnpool"), None)
    if unpool is not None:  # its indices arrive as a second input and flat over the tensor
        raise g.bad(unpool, "MaxUnpool graphs are not imported (export only): build the "
                            "model in code and pass the indices to MaxUnpool1d/2d/3d")
    if not g.inputs:
        raise UnsupportedGraphError("handgrad.onnx.load: the graph has no input")
    layers, end = walk(g, g.inputs[0])
    if end not in g.outputs:
        raise UnsupportedGraphError(f"handgrad.onnx.load: the chain of layers ends at "
                                    f"{end!r}, which is not a graph output")
    _import_ops.mark_side_outputs(g)
    left = [n for n in g.nodes if id(n) not in g.used]
    if left:
        raise g.bad(left[0], "not part of a chain of layers from the input to the output")
    if not layers:  # the output is the input
        from ..layers import Identity

        return Identity()
    return assemble(g, layers)


def load_weights(model: Layer, path: str | os.PathLike | Any, strict: bool = True):
    """Copy the initializers named like ``model``'s state_dict keys into ``model``.

    For a file written by ``export``, whose initializers keep the state_dict names and
    layouts: rebuild the architecture in code, then take its weights from the file. Entries
    that ``export`` does not write (BatchNorm's ``num_batches_tracked``) keep the model's
    values. ``strict``: every parameter and running statistic must be in the file. Returns
    ``load_state_dict``'s missing and unexpected keys.
    """
    import onnx
    from onnx import numpy_helper

    proto = path if isinstance(path, onnx.ModelProto) else onnx.load(os.fspath(path))
    state = dict(model.state_dict())
    found = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer
             if t.name in state}
    missing = [k for k in state if k not in found and not k.endswith("num_batches_tracked")]
    if strict and missing:
        raise ValueError(f"handgrad.onnx.load_weights: the file has no initializer for "
                         f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} (was "
                         f"it written by handgrad.onnx.export from this architecture?)")
    state.update(found)
    return model.load_state_dict(state, strict=strict)


def walk(g: GraphView, tensor: str, first: list | None = None, stop: Any = None
         ) -> tuple[list[Layer], str]:
    """Import layers from ``tensor`` on (starting at the nodes ``first`` if given) until
    ``stop``; return them and the tensor they end at."""
    layers: list[Layer] = []
    while True:
        if first is not None:
            nodes, first = first, None
        else:
            nodes = g.next_nodes(tensor)
        if stop is not None and nodes == [stop]:
            return layers, tensor
        if not nodes:
            return layers, tensor
        if len(nodes) == 1:
            node = nodes[0]
            if node.op_type == "Identity" and node.output[0] in g.outputs:
                g.used.add(id(node))
                return layers, node.output[0]
            match = _import_ops.match(g, node, tensor)
        else:
            match = _region(g, tensor, nodes)
        g.used.update(id(n) for n in match.nodes)
        layers.extend(match.layer if isinstance(match.layer, list) else [match.layer])
        tensor = match.output


def _region(g: GraphView, tensor: str, heads: list) -> Match:
    """The layer made by the branches from ``tensor`` up to the node where they meet."""
    # Visit the reachable nodes in graph order, keeping the tensors that still wait for a
    # consumer: the region ends at the node after which only its own output waits.
    open_ = {tensor: len(heads)}
    queue = {id(n): n for n in heads}
    seen: list = []
    while queue:
        node = queue.pop(min(queue, key=lambda k: g.order[k]))
        seen.append(node)
        for name in node.input:
            if name in open_:
                open_[name] -= 1
                if open_[name] == 0:
                    del open_[name]
        for out in node.output:
            nexts = g.next_nodes(out) if out else []
            if nexts or out in g.outputs:
                open_[out] = len(nexts)
            queue.update((id(n), n) for n in nexts)
        if len(open_) <= 1 and (not open_ or node.output[0] in open_):
            break
    merge = seen[-1]
    ops = Counter(n.op_type for n in seen)
    found = classify_region(g, ops, seen, merge)  # fixed shapes first (CELU ends in an Add)
    if found is not None:
        return found
    if merge.op_type == "Add" and len([i for i in merge.input if i not in g.consts]) == 2:
        return _residual(g, tensor, heads, merge)
    raise g.bad(heads[0], f"the branches from {tensor!r} ({', '.join(sorted(ops))}) are no "
                          "handgrad layer")


def _reaches(g: GraphView, node: Any, target: str, merge: Any) -> bool:
    """Whether ``target`` is computed from ``node`` (without passing through ``merge``)."""
    stack, seen = [node], set()
    while stack:
        n = stack.pop()
        if id(n) in seen or n is merge:
            continue
        seen.add(id(n))
        if target in n.output:
            return True
        for out in n.output:
            stack.extend(g.next_nodes(out) if out else [])
    return False


def _residual(g: GraphView, tensor: str, heads: list, merge: Any) -> Match:
    """``Add(body(x), shortcut(x))``: each of the Add's inputs is one branch from ``x``."""
    parts = []
    for name in merge.input:
        if name == tensor:
            parts.append(None)  # the identity shortcut
            continue
        own = [h for h in heads if h is not merge and _reaches(g, h, name, merge)]
        if not own:
            raise g.bad(merge, f"expected it to add two branches from {tensor!r}")
        layers, end = walk(g, tensor, first=own, stop=merge)
        if end != name:
            raise g.bad(merge, f"expected it to add the branches from {tensor!r}")
        parts.append(layers[0] if len(layers) == 1 else Sequential(*layers))
    real = [p for p in parts if p is not None]
    if len(real) == 0:
        raise g.bad(merge, f"x + x of {tensor!r} is no handgrad layer")
    body, shortcut = real[0], (real[1] if len(real) == 2 else None)
    return Match(Residual(body, shortcut), merge.output[0], [merge])
