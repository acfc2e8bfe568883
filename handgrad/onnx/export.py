"""``export(model, example_input, path)``: a handgrad model as an ONNX file.

The model is walked in eval mode with the example input: each layer's converter (the table
in ``_graph.py``; the layers' converters in ``_layers.py``, ``_pool_norm.py`` and
``_recurrent.py``, the containers' here) writes its nodes and sees the example values, so
sizes that ONNX needs statically (an adaptive pool's input H and W) are known. Parameters
and buffers become initializers named by their state_dict keys. The file is checked with
``onnx.checker.check_model`` before it is written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..layer import Layer
from ..layers import (
    GRU,
    LSTM,
    RNN,
    GRUCell,
    LSTMCell,
    Residual,
    RNNCell,
    Sequential,
    TransformerDecoder,
    TransformerEncoder,
)
from ..models import BasicBlock, CharLM, ResNet
from . import (  # noqa: F401
    _activations,
    _attention,
    _conv_nd,
    _layers,
    _pool_norm,
    _recurrent,
    _unpool,
)
from ._graph import OUTPUT_NAMES, ExportContext, Tensor, converter, prune, value_info

__all__ = ["export", "DEFAULT_OPSET", "MIN_OPSET"]

DEFAULT_OPSET = 17  # LayerNormalization's first opset; read by every current runtime
MIN_OPSET = 17


def _require_onnx():
    try:
        import onnx
    except ImportError:  # pragma: no cover - the extra is installed in CI
        raise ImportError("handgrad.onnx needs the onnx package: pip install handgrad[onnx]"
                          ) from None
    return onnx


def _check_opset(opset: Any) -> int:
    onnx = _require_onnx()
    highest = onnx.defs.onnx_opset_version()
    if opset is None:
        return DEFAULT_OPSET
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) \
            or not MIN_OPSET <= opset <= highest:
        raise ValueError(f"handgrad.onnx.export: expected opset an int in [{MIN_OPSET}, "
                         f"{highest}] (the installed onnx's newest), got {opset!r}")
    return int(opset)


def _first_leaf(model: Layer) -> Layer:
    while isinstance(model, (Sequential, Residual)) and not isinstance(model, BasicBlock):
        children = [c for c in model.children()]
        if not children:
            break
        model = children[0] if isinstance(model, Sequential) else model.body
    return model


def _batch_axis(model: Layer, x: np.ndarray) -> int | None:
    leaf = _first_leaf(model)
    if isinstance(leaf, (TransformerEncoder, TransformerDecoder)) and len(leaf.layers):
        leaf = leaf.layers[0]  # the stack's layout is its layers'
    if isinstance(leaf, (RNN, LSTM, GRU)) or hasattr(leaf, "batch_first"):
        if x.ndim == 2:
            return None  # unbatched sequence (T, F)
        return 0 if leaf.batch_first else 1  # also attention and the Transformer layers
    if isinstance(leaf, (RNNCell, LSTMCell, GRUCell)) and x.ndim == 1:
        return None  # one unbatched step (F,)
    if isinstance(leaf, CharLM) and x.ndim == 1:
        return None
    return 0 if x.ndim >= 1 else None


def _has_state(model: Layer) -> bool:
    """Whether forward's second argument is a recurrent state (named h_0, c_0)."""
    return isinstance(model, (RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell, CharLM))


def is_static(arg: Any) -> bool:
    """Whether a further forward argument is a tuple of ints (an unpool's ``output_size``),
    which the graph takes as a constant rather than as an input."""
    return isinstance(arg, (tuple, list)) and len(arg) > 0 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in arg)


def _as_array(value: Any, what: str) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"handgrad.onnx.export: expected {what} as a numpy array, got "
                        f"{type(value).__name__}")
    if np.issubdtype(value.dtype, np.integer):
        return value.astype(np.int64)
    if value.dtype not in (np.float32, np.float64):
        raise TypeError(f"handgrad.onnx.export: expected {what} of dtype float32, float64 or "
                        f"an integer dtype, got {value.dtype}")
    return value


def export(model: Layer, example_input: Any, path: str | os.PathLike, opset: int | None = None,
           dynamic_batch: bool = True, *, dynamic_axes: Mapping[int, str] | None = None):
    """Write ``model`` (run in eval mode) to the ONNX file ``path``; return the ModelProto.

    Args:
        model: a handgrad layer or model (every layer in ``handgrad.layers`` and the models
            in ``handgrad.models`` convert; see ``register_converter`` for others).
        example_input: an array (the input), or a tuple of forward's positional arguments:
            ``(x, state)`` for a recurrent layer or ``CharLM``, ``state`` an array ``h_0`` or
            a pair ``(h_0, c_0)`` (or None), ``(x, state, lengths)`` for padded sequences,
            ``(x, indices[, output_size])`` for a ``MaxUnpool*d``. Integer ids and indices
            are exported as int64; a tuple of ints (``output_size``) is a constant of the
            graph, not an input.
        path: the file to write.
        opset: ONNX opset (default 17; at least 17).
        dynamic_batch: make the batch axis symbolic (``N``), so any batch size runs.
        dynamic_axes: more symbolic axes of the first input, e.g. ``{1: "T"}`` for the
            sequence length of a batch-first recurrent model.

    Graph inputs are ``input`` (and ``h_0``, ``c_0`` for a given state, ``lengths`` for a
    recurrent layer's padded sequences, ``input_k`` for other arguments); outputs are
    ``output`` (and ``h_n``, ``c_n`` for a recurrent layer or ``CharLM``). Raises
    ``UnsupportedLayerError`` (a ``TypeError``) naming the class and path of a layer
    without a converter, ``TypeError``/``ValueError`` for bad arguments.
    """
    onnx = _require_onnx()
    if not isinstance(model, Layer):
        raise TypeError(f"handgrad.onnx.export: expected a handgrad Layer, got "
                        f"{type(model).__name__}")
    opset = _check_opset(opset)
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    if not args:
        raise ValueError("handgrad.onnx.export: expected an example input, got ()")
    x = _as_array(args[0], "example_input")
    batch_axis = _batch_axis(model, x) if dynamic_batch else None
    symbolic = {} if batch_axis is None else {batch_axis: "N"}
    for axis, name in (dynamic_axes or {}).items():
        if not -x.ndim <= axis < x.ndim:
            raise ValueError(f"handgrad.onnx.export: dynamic axis {axis} is out of range for "
                             f"an example input of shape {x.shape}")
        symbolic[axis % x.ndim] = str(name)
    ctx = ExportContext(opset)
    graph_inputs, converted_args = _graph_inputs(ctx, model, args, x, symbolic, batch_axis)
    modes = [(m, m.training, m._eval_backward) for m in model.modules()]
    model.eval()
    try:
        outputs = ctx.convert(model, "", *converted_args)
    finally:
        for m, training, eval_backward in modes:
            object.__setattr__(m, "training", training)
            object.__setattr__(m, "_eval_backward", eval_backward)
    out_names = list(OUTPUT_NAMES.get(type(model), ("output", "h_n", "c_n")))
    out_names += [f"output_{k}" for k in range(len(out_names), len(outputs))]
    graph_outputs = []
    for name, tensor in zip(out_names, outputs):
        ctx.node("Identity", [tensor], [ctx.reserve(name)])
        graph_outputs.append(value_info(name, tensor.value.dtype, [None] * tensor.value.ndim))
    nodes, initializers = prune(ctx.nodes, ctx.initializers, out_names[:len(outputs)])
    graph = onnx.helper.make_graph(nodes, type(model).__name__, graph_inputs, graph_outputs,
                                   initializer=initializers)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)],
                                   producer_name="handgrad")
    # the oldest IR version that has this opset: readable by the oldest runtimes that can
    proto.ir_version = onnx.helper.find_min_ir_version_for(list(proto.opset_import))
    proto = onnx.shape_inference.infer_shapes(proto)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, os.fspath(path))
    return proto


def _graph_inputs(ctx: ExportContext, model: Layer, args: tuple, x: np.ndarray,
                  symbolic: dict[int, str], batch_axis: int | None) -> tuple[list, list]:
    """The graph inputs (value infos) and forward's arguments as ``Tensor``s (None kept)."""
    dynamic = batch_axis is not None
    graph_inputs = [value_info(ctx.reserve("input"), x.dtype,
                               [symbolic.get(a, d) for a, d in enumerate(x.shape)])]
    converted: list[Any] = [Tensor("input", x)]
    stateful = _has_state(model)
    for k, arg in enumerate(args[1:], start=1):
        if is_static(arg):  # an unpool's output_size: a constant of the graph
            converted.append(tuple(int(v) for v in arg))
            continue
        parts = arg if isinstance(arg, (tuple, list)) else (arg,)
        if stateful and k <= 2:
            names = ["h_0", "c_0"] if k == 1 else ["lengths"]
        else:
            names = [f"input_{k}"] if len(parts) == 1 else \
                [f"input_{k}_{j}" for j in range(len(parts))]
        tensors = []
        for name, part in zip(names, parts):
            if part is None:
                tensors.append(None)
                continue
            part = _as_array(part, f"example argument {name}")
            shape: list[int | str] = list(part.shape)
            if dynamic and name == "lengths":
                shape[0] = "N"  # one length per sequence
            elif dynamic and stateful and part.ndim in (2, 3):
                shape[part.ndim - 2] = "N"  # (L*D, N, H), or a cell's (N, H)
            elif dynamic and not stateful and part.ndim == x.ndim:
                shape[batch_axis] = "N"  # another batched input (Bilinear's second, a key)
            graph_inputs.append(value_info(ctx.reserve(name), part.dtype, shape))
            tensors.append(Tensor(name, part))
        converted.append(tuple(tensors) if isinstance(arg, (tuple, list)) else tensors[0])
    return graph_inputs, converted


# ---------------------------------------------------------------------------- containers
@converter(Sequential, ResNet)
def _sequential(ctx: ExportContext, layer: Sequential, x: Tensor) -> Tensor:
    for name, child in layer.named_children():
        x = ctx.convert(child, name, x)[0]
    return x


def _residual_sum(ctx: ExportContext, layer: Residual, x: Tensor) -> Tensor:
    y = ctx.convert(layer.body, "body", x)[0]
    skip = x if layer.shortcut is None else ctx.convert(layer.shortcut, "shortcut", x)[0]
    ctx.ensure(y.value.shape == skip.value.shape, layer,
               f"body output {y.value.shape} and shortcut output {skip.value.shape} differ")
    return ctx.op("Add", [y, skip], y.value + skip.value)


@converter(Residual)
def _residual(ctx: ExportContext, layer: Residual, x: Tensor) -> Tensor:
    return _residual_sum(ctx, layer, x)


@converter(BasicBlock)
def _basic_block(ctx: ExportContext, layer: BasicBlock, x: Tensor) -> Tensor:
    y = _residual_sum(ctx, layer, x)
    return ctx.op("Relu", [y], np.maximum(y.value, 0))


