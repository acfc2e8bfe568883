"""Importers: one function per ONNX operator that starts a handgrad layer (dense,
element-wise, shapes, lookups, the recurrent entry points here; normalization and pooling in
``_import_norm_pool.py``), and the assembly of the layers found into one model.

``fn(g, node, x)`` gets the graph view, the node and the tensor it reads, and returns a
``Match``: the layer, the tensor after it and the nodes it took (``MatMul`` + ``Add`` for a
``Linear``; ``Reshape`` + ``InstanceNormalization`` + ``Reshape`` [+ ``Mul`` + ``Add``] for a
``GroupNorm``). Weights come from the folded constants (``g.const``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..layer import Layer
from ..layers import (
    ELU,
    GELU,
    AdaptiveAvgPool2d,
    Bilinear,
    ChannelShuffle,
    CircularPad1d,
    CircularPad2d,
    CircularPad3d,
    ConstantPad1d,
    ConstantPad2d,
    ConstantPad3d,
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
    Dropout,
    Embedding,
    EmbeddingBag,
    Flatten,
    Identity,
    LeakyReLU,
    Linear,
    LogSoftmax,
    PairwiseDistance,
    PixelShuffle,
    PixelUnshuffle,
    ReflectionPad1d,
    ReflectionPad2d,
    ReflectionPad3d,
    ReLU,
    ReplicationPad1d,
    ReplicationPad2d,
    ReplicationPad3d,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
    Unflatten,
)
from ..layers.adaptive_pooling import _averaging_matrix
from . import _import_activations  # noqa: F401  (registers its importers)
from ._graph import UnsupportedGraphError
from ._import_base import (
    IMPORTERS,
    Match,
    axes_of,
    const_input,
    importer,
    match,
    optional_input,
    set_values,
)
from ._import_norm_pool import group_norm, lrn, unbatched_instance_norm
from ._import_recurrent import Pooling, recurrent, sequence_model

__all__ = ["Match", "UnsupportedGraphError", "IMPORTERS", "importer", "match", "assemble",
           "mark_side_outputs"]

# ---------------------------------------------------------------------------- dense
@importer("Gemm")
def gemm(g, node, x) -> Match:
    a = g.attrs(node)
    if node.input[0] != x or a.get("transA", 0):
        raise g.bad(node, "expected Gemm(x, W) with x not transposed")
    w = const_input(g, node, 1, "the weight") * a.get("alpha", 1.0)
    w = w if a.get("transB", 0) else w.T  # (out, in)
    b = optional_input(g, node, 2)
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


_CONVS = {3: Conv1d, 4: Conv2d, 5: Conv3d}


@importer("Conv")
def conv(g, node, x) -> Match:
    """Conv of any rank (1-3 spatial dims); a Pad before it with a non-constant mode becomes
    the layer's padding_mode (see ``pad``)."""
    a = g.attrs(node)
    w = const_input(g, node, 1, "the weight")
    b = optional_input(g, node, 2)
    if w.ndim not in _CONVS or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise g.bad(node, f"expected a 1-3-d convolution with explicit pads, got weight "
                          f"{w.shape}")
    dims = w.ndim - 2
    kernel = tuple(int(k) for k in w.shape[2:])
    stride = tuple(a.get("strides", [1] * dims))
    dilation = tuple(a.get("dilations", [1] * dims))
    pads = list(a.get("pads", [0] * 2 * dims))
    begins, ends = tuple(pads[:dims]), tuple(pads[dims:])
    cls = _CONVS[w.ndim]
    padding: Any = begins if dims > 1 else begins[0]
    groups = a.get("group", 1)

    def build(pad_arg):
        return cls(w.shape[1] * groups, w.shape[0], kernel if dims > 1 else kernel[0],
                   stride if dims > 1 else stride[0], pad_arg,
                   dilation if dims > 1 else dilation[0], groups, bias=b is not None,
                   dtype=w.dtype)

    if begins != ends:  # PyTorch's 'same' (stride 1) pads the extra pixel after
        layer = build("same") if set(stride) == {1} else None
        want = [(p, q) for p, q in zip(begins, ends)]
        if layer is None or [tuple(p) for p in layer._pads][-dims:] != want:
            raise g.bad(node, f"asymmetric pads {pads} other than padding='same' have no "
                              f"{cls.__name__}")
    else:
        layer = build(padding)
    values = {"weight": w} if b is None else {"weight": w, "bias": b}
    return Match(set_values(layer, **values), node.output[0], [node])


_PAD_LAYERS = {
    ("constant", 1): ConstantPad1d, ("constant", 2): ConstantPad2d, ("constant", 3): ConstantPad3d,
    ("reflect", 1): ReflectionPad1d, ("reflect", 2): ReflectionPad2d,
    ("reflect", 3): ReflectionPad3d, ("edge", 1): ReplicationPad1d, ("edge", 2): ReplicationPad2d,
    ("edge", 3): ReplicationPad3d, ("wrap", 1): CircularPad1d, ("wrap", 2): CircularPad2d,
    ("wrap", 3): CircularPad3d,
}


@importer("Pad")
def pad(g, node, x) -> Match:
    """Pad of the spatial axes of (N, C, *): the padding layer of that mode and rank."""
    mode = g.attrs(node).get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    pads = const_input(g, node, 1, "the pads")
    rank = g.rank(x)
    if rank is None or len(node.input) > 3 and node.input[3]:
        raise g.bad(node, "expected a Pad of all axes of an input of known rank")
    begins, ends = [int(p) for p in pads[:rank]], [int(p) for p in pads[rank:]]
    dims = rank - 2
    cls = _PAD_LAYERS.get((mode, dims))
    if cls is None or any(begins[:2]) or any(ends[:2]):
        raise g.bad(node, f"a {mode} Pad of a rank-{rank} input other than its spatial axes")
    padding = tuple(v for b, e in reversed(list(zip(begins[2:], ends[2:]))) for v in (b, e))
    if mode == "constant":
        value = optional_input(g, node, 2)
        layer = cls(padding, 0.0 if value is None else float(value))
    else:
        layer = cls(padding)
    return Match(layer, node.output[0], [node])


_TRANSPOSED = {3: ConvTranspose1d, 4: ConvTranspose2d, 5: ConvTranspose3d}


@importer("ConvTranspose")
def conv_transpose(g, node, x) -> Match:
    a = g.attrs(node)
    w = const_input(g, node, 1, "the weight")
    b = optional_input(g, node, 2)
    dims = w.ndim - 2
    pads = list(a.get("pads", [0] * 2 * dims))
    if w.ndim not in _TRANSPOSED or pads[:dims] != pads[dims:] or "output_shape" in a \
            or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise g.bad(node, "expected a 1-3-d ConvTranspose with symmetric explicit pads")
    groups = a.get("group", 1)

    def arg(name: str, default: int):
        values = tuple(a.get(name, [default] * dims))
        return values if dims > 1 else values[0]

    kernel = tuple(int(k) for k in w.shape[2:])
    layer = _TRANSPOSED[w.ndim](
        w.shape[0], w.shape[1] * groups, kernel if dims > 1 else kernel[0], arg("strides", 1),
        tuple(pads[:dims]) if dims > 1 else pads[0], arg("output_padding", 0), groups,
        bias=b is not None, dilation=arg("dilations", 1), dtype=w.dtype)
    values = {"weight": w} if b is None else {"weight": w, "bias": b}
    return Match(set_values(layer, **values), node.output[0], [node])


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
    ratio = optional_input(g, node, 1)
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
    permutation = _rearrangement(g, node, shape)
    if permutation is not None:
        return permutation
    nxt = g.single_next(node.output[0], "InstanceNormalization")
    if nxt is not None and len(shape) == 3 and shape[0] == 0 and shape[2] == -1:
        return group_norm(g, node, shape[1])
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


def _rearrangement(g, node, shape: list[int]) -> Match | None:
    """Reshape -> Transpose -> Reshape as export writes PixelShuffle, PixelUnshuffle and
    ChannelShuffle; None if the nodes are not one of them."""
    transpose = g.single_next(node.output[0], "Transpose")
    back = None if transpose is None else g.single_next(transpose.output[0], "Reshape")
    if back is None:
        return None
    lead = next((k for k, s in enumerate(shape) if s != 0), len(shape))
    perm = [p - lead for p in g.attrs(transpose)["perm"][lead:]]
    nodes, out = [node, transpose, back], back.output[0]
    if len(shape) - lead == 5 and perm == [0, 3, 1, 4, 2] and shape[lead + 1] == shape[lead + 2]:
        return Match(PixelShuffle(shape[lead + 1]), out, nodes)
    if len(shape) - lead == 5 and perm == [0, 2, 4, 1, 3] and shape[lead + 2] == shape[lead + 4]:
        return Match(PixelUnshuffle(shape[lead + 2]), out, nodes)
    if lead == 1 and perm[:2] == [1, 0] and perm[2:] == list(range(2, len(perm))):
        return Match(ChannelShuffle(shape[1]), out, nodes)
    return None


@importer("DepthToSpace")
def depth_to_space(g, node, x) -> Match:
    a = g.attrs(node)
    mode = a.get("mode", b"DCR")
    if (mode.decode() if isinstance(mode, bytes) else mode) != "CRD":
        raise g.bad(node, "DepthToSpace in DCR order is no handgrad layer (PixelShuffle is "
                          "CRD)")
    return Match(PixelShuffle(a["blocksize"]), node.output[0], [node])


@importer("Sub")
def pairwise_distance(g, node, x) -> Match:
    """Sub -> Add(eps) -> Abs -> [Pow(p)] -> ReduceSum/ReduceMax -> [Sqrt | Pow(1/p)]."""
    if node.input[0] != x or node.input[1] not in g.inputs:
        raise g.bad(node, "only x1 - x2 of two graph inputs (a PairwiseDistance) is imported")
    chain, tensor = [node], node.output[0]
    for op in ("Add", "Abs"):
        nxt = g.single_next(tensor, op)
        if nxt is None:
            raise g.bad(node, "expected x1 - x2 + eps, its absolute value and a p-norm")
        chain.append(nxt)
        tensor = nxt.output[0]
    eps = float(np.ravel(g.const(chain[1].input[1]))[0])
    p = 1.0
    power = g.single_next(tensor, "Pow")
    if power is not None:
        p = float(g.const(power.input[1]))
        chain.append(power)
        tensor = power.output[0]
    total = g.single_next(tensor)
    if total is None or total.op_type not in ("ReduceSum", "ReduceMax") \
            or axes_of(g, total) != [-1]:
        raise g.bad(node, "expected a reduction over the last axis: a PairwiseDistance")
    chain.append(total)
    tensor = total.output[0]
    if total.op_type == "ReduceMax":
        p = float("inf")
    elif p != 1:
        root = g.single_next(tensor)
        if root is None or root.op_type not in ("Sqrt", "Pow"):
            raise g.bad(total, "expected the p-th root of the sum")
        chain.append(root)
        tensor = root.output[0]
    layer = PairwiseDistance(p, eps=float(f"{eps:.6g}"),
                             keepdim=bool(g.attrs(total).get("keepdims", 1)))
    return Match(layer, tensor, chain)


@importer("Gather")
def gather(g, node, x) -> Match:
    weight = g.const(node.input[0])
    if weight is None or node.input[1] != x or g.attrs(node).get("axis", 0) != 0 \
            or weight.ndim != 2:
        raise g.bad(node, "expected Gather(table, ids) of a constant 2-D table: an Embedding")
    for op, mode in (("ReduceSum", "sum"), ("ReduceMean", "mean"), ("ReduceMax", "max")):
        pool = g.single_next(node.output[0], op)
        if pool is not None and g.rank(x) == 2 and axes_of(g, pool) == [1] \
                and g.attrs(pool).get("keepdims", 1) == 0:  # fixed-length bags
            bag = EmbeddingBag(weight.shape[0], weight.shape[1], mode=mode, dtype=weight.dtype)
            return Match(set_values(bag, weight=weight), pool.output[0], [node, pool])
    layer = Embedding(weight.shape[0], weight.shape[1], dtype=weight.dtype)
    return Match(set_values(layer, weight=weight), node.output[0], [node])


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
    axes = axes_of(g, node)
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
