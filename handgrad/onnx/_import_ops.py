"""Importers: one function per ONNX operator that starts a handgrad layer.

``fn(g, node, x)`` gets the graph view, the node and the tensor it reads, and returns a
``Match``: the layer, the tensor after it and the nodes it took (``MatMul`` + ``Add`` for a
``Linear``; ``Reshape`` + ``InstanceNormalization`` + ``Reshape`` [+ ``Mul`` + ``Add``] for a
``GroupNorm``). Weights come from the folded constants (``g.const``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..layer import Layer
from ..layers import (
    ELU,
    GELU,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    Bilinear,
    Conv2d,
    Dropout,
    Embedding,
    EmbeddingBag,
    Flatten,
    GroupNorm,
    Identity,
    InstanceNorm1d,
    InstanceNorm2d,
    InstanceNorm3d,
    LayerNorm,
    LeakyReLU,
    Linear,
    LocalResponseNorm,
    LogSoftmax,
    MaxPool2d,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
    Unflatten,
)
from ..layers.pooling import _averaging_matrix
from ..ops.window import resolve_padding
from ._graph import UnsupportedGraphError
from ._import_recurrent import Pooling, recurrent, sequence_model

__all__ = ["Match", "UnsupportedGraphError", "IMPORTERS", "importer", "match", "assemble",
           "mark_side_outputs"]


@dataclass
class Match:
    layer: Layer | list[Layer]
    output: str
    nodes: list = field(default_factory=list)


Importer = Callable[[Any, Any, str], Match]
IMPORTERS: dict[str, Importer] = {}


def importer(*ops: str) -> Callable[[Importer], Importer]:
    def register(fn: Importer) -> Importer:
        for op in ops:
            IMPORTERS[op] = fn
        return fn
    return register


def match(g: Any, node: Any, x: str) -> Match:
    fn = IMPORTERS.get(node.op_type)
    if fn is None:
        raise g.bad(node, f"no handgrad layer for the ONNX operator {node.op_type}")
    return fn(g, node, x)


def set_values(layer: Layer, **values: np.ndarray) -> Layer:
    """Copy arrays into the layer's parameters and buffers of those names."""
    own = dict(layer.state_dict())
    for name, value in values.items():
        own[name] = np.broadcast_to(np.asarray(value, own[name].dtype), own[name].shape).copy()
    layer.load_state_dict(own)
    return layer


def epsilon(attrs: dict) -> float:
    """The node's epsilon (a float32 attribute) as the decimal it was written from."""
    return float(f"{attrs.get('epsilon', 1e-5):.6g}")


def _const(g: Any, node: Any, index: int, what: str) -> np.ndarray:
    value = g.const(node.input[index]) if len(node.input) > index else None
    if value is None:
        raise g.bad(node, f"expected {what} to be a constant")
    return value


def _optional(g: Any, node: Any, index: int) -> np.ndarray | None:
    return g.const(node.input[index]) if len(node.input) > index and node.input[index] else None


# ---------------------------------------------------------------------------- dense
@importer("Gemm")
def gemm(g, node, x) -> Match:
    a = g.attrs(node)
    if node.input[0] != x or a.get("transA", 0):
        raise g.bad(node, "expected Gemm(x, W) with x not transposed")
    w = _const(g, node, 1, "the weight") * a.get("alpha", 1.0)
    w = w if a.get("transB", 0) else w.T  # (out, in)
    b = _optional(g, node, 2)
    layer = Linear(w.shape[1], w.shape[0], bias=b is not None, dtype=w.dtype)
    values = {"weight": w}
    if b is not None:
        values["bias"] = (b * a.get("beta", 1.0)).reshape(-1)
    return Match(set_values(layer, **values), node.output[0], [node])


@importer("MatMul")
def matmul(g, node, x) -> Match:
    w = g.const(node.input[1])
    if node.input[0] != x or w is None or w.ndim != 2:
        raise g.bad(node, "expected MatMul(x, W) with a constant 2-D W")
    second = g.single_next(node.output[0], "MatMul")
    if second is not None and g.const(second.input[0]) is not None and g.rank(x) == 4:
        return _adaptive_avg(g, node, second, w)
    layer_nodes, out, bias = [node], node.output[0], None
    add = g.single_next(out, "Add")
    if add is not None:
        other = add.input[1] if add.input[0] == out else add.input[0]
        bias = g.const(other)
        if bias is not None and bias.size == w.shape[1]:
            layer_nodes.append(add)
            out = add.output[0]
        else:
            bias = None
    layer = Linear(w.shape[0], w.shape[1], bias=bias is not None, dtype=w.dtype)
    values = {"weight": w.T} if bias is None else {"weight": w.T, "bias": bias.reshape(-1)}
    return Match(set_values(layer, **values), out, layer_nodes)


def _adaptive_avg(g, first, second, a_w_t) -> Match:
    a_h = g.const(second.input[0])
    oh, ow = a_h.shape[0], a_w_t.shape[1]
    H, W = a_h.shape[1], a_w_t.shape[0]
    if not (np.allclose(a_h, _averaging_matrix(H, oh, a_h.dtype))
            and np.allclose(a_w_t, _averaging_matrix(W, ow, a_w_t.dtype).T)):
        raise g.bad(first, "expected the averaging matrices of an adaptive average pool")
    return Match(AdaptiveAvgPool2d((oh, ow)), second.output[0], [first, second])


@importer("Conv")
def conv(g, node, x) -> Match:
    a = g.attrs(node)
    w = _const(g, node, 1, "the weight")
    b = _optional(g, node, 2)
    if w.ndim != 4 or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise g.bad(node, f"expected a 2-D convolution with explicit pads, got weight "
                          f"{w.shape}")
    kernel = tuple(w.shape[2:])
    stride = tuple(a.get("strides", [1, 1]))
    dilation = tuple(a.get("dilations", [1, 1]))
    top, left, bottom, right = a.get("pads", [0, 0, 0, 0])
    padding: Any = (top, left)
    if (top, left) != (bottom, right):
        same = resolve_padding("same", kernel, (1, 1), dilation) if stride == (1, 1) else None
        if same != ((top, bottom), (left, right)):
            raise g.bad(node, f"asymmetric pads {[top, left, bottom, right]} other than "
                              f"padding='same' have no Conv2d")
        padding = "same"
    groups = a.get("group", 1)
    layer = Conv2d(w.shape[1] * groups, w.shape[0], kernel, stride, padding, dilation, groups,
                   bias=b is not None, dtype=w.dtype)
    values = {"weight": w} if b is None else {"weight": w, "bias": b}
    return Match(set_values(layer, **values), node.output[0], [node])


# ---------------------------------------------------------------------------- normalization
@importer("BatchNormalization")
def batch_norm(g, node, x) -> Match:
    a = g.attrs(node)
    if a.get("training_mode", 0):
        raise g.bad(node, "expected an inference-mode BatchNormalization")
    scale, shift, mean, var = (_const(g, node, k, what) for k, what in
                               enumerate(["the scale", "the bias", "the mean", "the variance"],
                                         start=1))
    rank = g.rank(x)
    cls = {2: BatchNorm1d, 3: BatchNorm1d, 4: BatchNorm2d, 5: BatchNorm3d}.get(rank)
    if cls is None:
        raise g.bad(node, f"expected an input of rank 2 to 5, got {rank}")
    layer = cls(scale.size, eps=epsilon(a), momentum=1 - a.get("momentum", 0.9),
                dtype=scale.dtype)
    set_values(layer, weight=scale, bias=shift, running_mean=mean, running_var=var)
    return Match(layer, node.output[0], [node])


@importer("LayerNormalization")
def layer_norm(g, node, x) -> Match:
    a = g.attrs(node)
    scale = _const(g, node, 1, "the scale")
    bias = _optional(g, node, 2)
    layer = LayerNorm(scale.shape, eps=epsilon(a), bias=bias is not None,
                      dtype=scale.dtype)
    values = {"weight": scale} if bias is None else {"weight": scale, "bias": bias}
    return Match(set_values(layer, **values), node.output[0], [node])


def _group_norm(g, node, groups: int) -> Match:
    norm = g.single_next(node.output[0], "InstanceNormalization")
    back = g.single_next(norm.output[0], "Reshape")
    scale, shift = _const(g, norm, 1, "the scale"), _const(g, norm, 2, "the bias")
    shape = None if back is None else g.const(back.input[1])
    if back is None or shape is None or len(shape) < 2 or not np.all(scale == 1) \
            or not np.all(shift == 0):
        raise g.bad(node, "expected Reshape, InstanceNormalization (scale 1, bias 0), "
                          "Reshape: a GroupNorm")
    channels = int(shape[1])
    nodes, out = [node, norm, back], back.output[0]
    weight = bias = None
    mul = g.single_next(out, "Mul")
    if mul is not None and (weight := g.const(mul.input[1])) is not None \
            and weight.size == channels:
        nodes.append(mul)
        out = mul.output[0]
        add = g.single_next(out, "Add")
        if add is not None and (bias := g.const(add.input[1])) is not None \
                and bias.size == channels:
            nodes.append(add)
            out = add.output[0]
        else:
            bias = np.zeros(channels, weight.dtype)
    affine = weight is not None
    layer = GroupNorm(groups, channels, eps=epsilon(g.attrs(norm)), affine=affine,
                      dtype=scale.dtype)
    if affine:
        set_values(layer, weight=weight.reshape(-1), bias=bias.reshape(-1))
    return Match(layer, out, nodes)


_INSTANCE = {3: InstanceNorm1d, 4: InstanceNorm2d, 5: InstanceNorm3d}


@importer("InstanceNormalization")
def instance_norm(g, node, x) -> Match:
    rank = g.rank(x)
    if rank not in _INSTANCE:
        raise g.bad(node, f"expected an input of rank 3 to 5, got {rank}")
    return _instance(g, node, _INSTANCE[rank], node.output[0], [node])


def _instance(g, node, cls, out: str, nodes: list) -> Match:
    scale, shift = _const(g, node, 1, "the scale"), _const(g, node, 2, "the bias")
    affine = not (np.all(scale == 1) and np.all(shift == 0))
    layer = cls(scale.size, eps=epsilon(g.attrs(node)), affine=affine, dtype=scale.dtype)
    if affine:
        set_values(layer, weight=scale, bias=shift)
    return Match(layer, out, nodes)


def unbatched_instance_norm(g, node, x) -> Match | None:
    """Unsqueeze(0) -> InstanceNormalization -> Squeeze(0): an InstanceNorm of one sample."""
    norm = g.single_next(node.output[0], "InstanceNormalization")
    back = None if norm is None else g.single_next(norm.output[0], "Squeeze")
    rank = g.rank(x)
    if back is None or rank is None or rank + 1 not in _INSTANCE:
        return None
    return _instance(g, norm, _INSTANCE[rank + 1], back.output[0], [node, norm, back])


@importer("LRN")
def lrn(g, node, x) -> Match:
    a = g.attrs(node)
    layer = LocalResponseNorm(a["size"], a.get("alpha", 1e-4), a.get("beta", 0.75),
                              a.get("bias", 1.0))
    return Match(layer, node.output[0], [node])


@importer("Einsum")
def einsum(g, node, x) -> Match:
    equation = g.attrs(node).get("equation", b"")
    equation = (equation.decode() if isinstance(equation, bytes) else equation).replace(" ", "")
    w = g.const(node.input[1]) if len(node.input) == 3 else None
    if equation != "...i,oij,...j->...o" or w is None or node.input[0] != x:
        raise g.bad(node, f"only the Einsum of a Bilinear (...i,oij,...j->...o with a "
                          f"constant weight) is a handgrad layer, got {equation!r}")
    nodes, out, bias = [node], node.output[0], None
    add = g.single_next(out, "Add")
    if add is not None and (bias := g.const(add.input[1])) is not None:
        nodes.append(add)
        out = add.output[0]
    layer = Bilinear(w.shape[1], w.shape[2], w.shape[0], bias=bias is not None, dtype=w.dtype)
    values = {"weight": w} if bias is None else {"weight": w, "bias": bias}
    return Match(set_values(layer, **values), out, nodes)


# ---------------------------------------------------------------------------- element-wise
_SIMPLE = {"Relu": ReLU, "Sigmoid": Sigmoid, "Tanh": Tanh, "Identity": Identity}


@importer(*_SIMPLE)
def simple(g, node, x) -> Match:
    return Match(_SIMPLE[node.op_type](), node.output[0], [node])


@importer("LeakyRelu")
def leaky_relu(g, node, x) -> Match:
    return Match(LeakyReLU(g.attrs(node).get("alpha", 0.01)), node.output[0], [node])


@importer("Elu")
def elu(g, node, x) -> Match:
    return Match(ELU(g.attrs(node).get("alpha", 1.0)), node.output[0], [node])


@importer("Gelu")
def gelu(g, node, x) -> Match:
    approximate = g.attrs(node).get("approximate", b"none")
    approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
    return Match(GELU(approximate), node.output[0], [node])


@importer("Softmax", "LogSoftmax")
def softmax(g, node, x) -> Match:
    cls = Softmax if node.op_type == "Softmax" else LogSoftmax
    return Match(cls(g.attrs(node).get("axis", -1)), node.output[0], [node])


@importer("Dropout")
def dropout(g, node, x) -> Match:
    ratio = _optional(g, node, 1)
    p = float(ratio) if ratio is not None else float(g.attrs(node).get("ratio", 0.5))
    return Match(Dropout(p), node.output[0], [node])


# ---------------------------------------------------------------------------- shapes
@importer("Flatten")
def flatten(g, node, x) -> Match:
    axis, rank = g.attrs(node).get("axis", 1), g.rank(x)
    if axis != 1 and not (rank is not None and axis - rank == -1 and rank == 2):
        raise g.bad(node, f"Flatten with axis={axis} gives a 2-D shape that no handgrad "
                          f"Flatten gives (only axis=1 does)")
    return Match(Flatten(), node.output[0], [node])


@importer("Reshape")
def reshape(g, node, x) -> Match:
    shape = g.const(node.input[1])
    rank = g.rank(x)
    if shape is None or rank is None:
        raise g.bad(node, "expected a constant target shape and an input of known rank")
    shape = [int(s) for s in shape]
    nxt = g.single_next(node.output[0], "InstanceNormalization")
    if nxt is not None and len(shape) == 3 and shape[0] == 0 and shape[2] == -1:
        return _group_norm(g, node, shape[1])
    norm = g.single_next(node.output[0], "LRN")
    if norm is not None and shape == [0, 0, -1, 1]:  # an LRN of a non-4-D input
        back = g.single_next(norm.output[0], "Reshape")
        if back is not None:
            return Match(lrn(g, norm, x).layer, back.output[0], [node, norm, back])
    lead = next((k for k, s in enumerate(shape) if s != 0), len(shape))
    if shape.count(-1) == 1 and shape.index(-1) == lead:  # [0]*start, -1, trailing sizes
        end = rank - (len(shape) - lead - 1) - 1
        return Match(Flatten(lead, end), node.output[0], [node])
    if -1 not in shape and len(shape) > rank:  # [0]*d, new sizes, trailing sizes
        sizes = shape[lead:lead + len(shape) - rank + 1]
        return Match(Unflatten(lead, tuple(sizes)), node.output[0], [node])
    raise g.bad(node, f"a Reshape to {shape} is neither a Flatten nor an Unflatten")


@importer("Gather")
def gather(g, node, x) -> Match:
    weight = g.const(node.input[0])
    if weight is None or node.input[1] != x or g.attrs(node).get("axis", 0) != 0 \
            or weight.ndim != 2:
        raise g.bad(node, "expected Gather(table, ids) of a constant 2-D table: an Embedding")
    for op, mode in (("ReduceSum", "sum"), ("ReduceMean", "mean"), ("ReduceMax", "max")):
        pool = g.single_next(node.output[0], op)
        if pool is not None and g.rank(x) == 2 and _axes(g, pool) == [1] \
                and g.attrs(pool).get("keepdims", 1) == 0:  # fixed-length bags
            bag = EmbeddingBag(weight.shape[0], weight.shape[1], mode=mode, dtype=weight.dtype)
            return Match(set_values(bag, weight=weight), pool.output[0], [node, pool])
    layer = Embedding(weight.shape[0], weight.shape[1], dtype=weight.dtype)
    return Match(set_values(layer, weight=weight), node.output[0], [node])


def _axes(g, node) -> list[int] | None:
    a = g.attrs(node)
    if "axes" in a:
        return list(a["axes"])
    value = g.const(node.input[1]) if len(node.input) > 1 else None
    return None if value is None else [int(v) for v in np.ravel(value)]


# ---------------------------------------------------------------------------- pooling
def _window(g, node) -> tuple[tuple, tuple, tuple, list]:
    a = g.attrs(node)
    kernel = tuple(a["kernel_shape"])
    if len(kernel) != 2 or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise g.bad(node, f"expected a 2-D window with explicit pads, got {kernel}")
    stride = tuple(a.get("strides", [1, 1]))
    dilation = tuple(a.get("dilations", [1, 1]))
    return kernel, stride, dilation, list(a.get("pads", [0, 0, 0, 0]))


def _pool_geometry(g, node, x, make) -> Layer:
    """The pool layer (``make(padding, ceil_mode)``) whose padding the node's pads are."""
    top, left, bottom, right = _window(g, node)[3]
    ceil = bool(g.attrs(node).get("ceil_mode", 0))
    layer = make((top, left), ceil)
    if (top, left) == (bottom, right):
        return layer
    shape = g.shape(x)
    if shape is None or not all(isinstance(d, int) for d in shape[2:]):
        raise g.bad(node, "asymmetric pads need the input's static H and W")
    candidate = make((top, left), True)
    probe = np.zeros((1, 1, *shape[2:]), np.float32)
    if candidate._geometry(probe)[1] != ((top, bottom), (left, right)):
        raise g.bad(node, f"pads {[top, left, bottom, right]} are not PyTorch's ceil_mode")
    return candidate


@importer("MaxPool")
def max_pool(g, node, x) -> Match:
    kernel, stride, dilation, _ = _window(g, node)
    layer = _pool_geometry(g, node, x, lambda pad, ceil: MaxPool2d(kernel, stride, pad,
                                                                   dilation, ceil))
    return Match(layer, node.output[0], [node])


@importer("AveragePool")
def avg_pool(g, node, x) -> Match:
    kernel, stride, _, pads = _window(g, node)
    include = bool(g.attrs(node).get("count_include_pad", 0))
    mul = g.single_next(node.output[0], "Mul")
    scale = None if mul is None else g.const(mul.input[1])
    if scale is None:
        layer = _pool_geometry(g, node, x, lambda pad, ceil: AvgPool2d(
            kernel, stride, pad, ceil, include))
        return Match(layer, node.output[0], [node])
    # the exporter's window sums / divisor: find the settings that give this divisor
    shape = g.shape(x)
    probe = np.zeros((1, 1, *shape[2:]), np.float32)
    count = int(np.prod(kernel))
    pad = (pads[0], pads[1])
    candidates = [AvgPool2d(kernel, stride, pad, ceil, inc, div)
                  for ceil in (False, True) for inc in (True, False)
                  for div in {None, int(round(count / float(np.ravel(scale)[0])))}]
    for layer in candidates:
        out_hw, geometry = layer._geometry(probe)
        if [geometry[0][0], geometry[1][0], geometry[0][1], geometry[1][1]] == pads and \
                np.allclose(count / np.asarray(layer._divisor(probe, out_hw)), scale):
            return Match(layer, mul.output[0], [node, mul])
    raise g.bad(node, "AveragePool times a constant that no AvgPool2d setting gives")


@importer("GlobalAveragePool", "GlobalMaxPool")
def global_pool(g, node, x) -> Match:
    cls = AdaptiveAvgPool2d if node.op_type == "GlobalAveragePool" else AdaptiveMaxPool2d
    return Match(cls(1), node.output[0], [node])


# ---------------------------------------------------------------------------- recurrent
@importer("LSTM", "GRU", "RNN", "Transpose", "Unsqueeze")
def recurrent_layer(g, node, x) -> Match:
    if node.op_type == "Unsqueeze":
        instance = unbatched_instance_norm(g, node, x)
        if instance is not None:
            return instance
    layer, out, nodes = recurrent(g, node, x)
    return Match(layer, out, nodes)


@importer("ReduceMean")
def mean_over_time(g, node, x) -> Match:
    a = g.attrs(node)
    axes = _axes(g, node)
    if axes != [1] or a.get("keepdims", 1) != 0:
        raise g.bad(node, f"ReduceMean over axes {axes} is no handgrad layer (only the mean "
                          "over time of a SequenceClassifier is)")
    return Match(Pooling("mean"), node.output[0], [node])


_SIDE_OPS = {"Slice", "Concat", "Squeeze", "Unsqueeze", "Identity", "Cast"}


def mark_side_outputs(g: Any) -> None:
    """Take the state plumbing: slicing state inputs, concatenating final states."""
    available = set(g.consts) | set(g.inputs)
    for node in g.nodes:
        if id(node) in g.used:
            available.update(node.output)
    changed = True
    while changed:
        changed = False
        for node in g.nodes:
            if id(node) in g.used or node.op_type not in _SIDE_OPS:
                continue
            if all(not name or name in available for name in node.input):
                g.used.add(id(node))
                available.update(node.output)
                changed = True


def assemble(g: Any, layers: list[Layer]) -> Layer:
    """One layer, a recurrent model, or a Sequential of the layers in a row."""
    model = sequence_model(layers, stateful=len(g.inputs) > 1 or len(g.outputs) > 1)
    if model is not None:
        return model
    if any(isinstance(layer, Pooling) for layer in layers):
        raise UnsupportedGraphError("handgrad.onnx.load: a pooling over time outside an "
                                    "[Embedding ->] LSTM/GRU -> pooling -> Linear classifier")
    return layers[0] if len(layers) == 1 else Sequential(*layers)
