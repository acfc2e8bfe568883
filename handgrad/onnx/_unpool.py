"""Converters of MaxUnpool1d, MaxUnpool2d and MaxUnpool3d: ONNX's ``MaxUnpool``.

handgrad (as PyTorch) takes the indices of ``MaxPool*d(return_indices=True)``: positions
flat over each (n, c) plane of the output, ``h*W + w`` in 2-d. ONNX's ``MaxUnpool`` wants
positions flat over the whole output tensor, ``((n*C + c)*H + h)*W + w``. The graph adds
the plane offsets ``(n*C + c) * H*W`` to the indices (a graph input) itself, from the
indices' runtime shape (``Shape``, ``Range``, ``Reshape``, ``Add``), so any batch size runs::

    nc      = Shape(indices)[0:2]                         # [N, C]
    offsets = Reshape(Range(0, N*C*S, S), [N, C, 1, ...])  # S = H*W, the output plane size
    y       = MaxUnpool(x, indices + offsets, Concat(nc, output_size))

``output_size`` (forward's third argument) is a constant of the graph: the exported
``output_shape`` input is ``[N, C, *output_size]`` (N, C from the runtime shape). Without
it, ONNX's default size is the layer's, ``(L_in - 1)*s - 2p + k``. The spatial sizes are
the example's (S is a constant), the batch and channel counts are free.
"""

from __future__ import annotations

import math

import numpy as np

from ..layers import MaxUnpool1d, MaxUnpool2d, MaxUnpool3d
from ._graph import ExportContext, Tensor, converter

__all__ = ["max_unpool"]


def _batched(ctx: ExportContext, x: Tensor, dims: int) -> tuple[str, bool]:
    if x.value.ndim == dims + 1:
        return ctx.node("Unsqueeze", [x, ctx.ints([0], "axis0")])[0], True
    return x.name, False


def _whole_tensor_indices(ctx: ExportContext, indices: str, nc: str, plane: int,
                          dims: int) -> str:
    """``indices + (n*C + c) * plane``: per-plane positions made flat over the tensor."""
    count = ctx.node("ReduceProd", [nc], keepdims=0)[0]  # N*C, a scalar
    step = ctx.const(np.asarray(plane, np.int64), "plane_size")
    limit = ctx.node("Mul", [count, step])[0]
    starts = ctx.node("Range", [ctx.const(np.asarray(0, np.int64), "zero"), limit, step])[0]
    shape = ctx.node("Concat", [nc, ctx.ints([1] * dims, "ones")], axis=0)[0]
    offsets = ctx.node("Reshape", [starts, shape])[0]  # (N, C, 1, ...)
    return ctx.node("Add", [indices, offsets])[0]


@converter(MaxUnpool1d, MaxUnpool2d, MaxUnpool3d)
def max_unpool(ctx: ExportContext, layer, x: Tensor, indices: Tensor | None = None,
               output_size=None) -> Tensor:
    """``MaxUnpool`` of ``(x, indices[, output_size])``; the indices are a graph input."""
    ctx.ensure(isinstance(indices, Tensor), layer,
               "expected the indices as forward's second argument (an example (x, indices) "
               "or (x, indices, output_size)), got none")
    ctx.ensure(np.issubdtype(indices.value.dtype, np.integer), layer,
               f"expected integer indices, got dtype {indices.value.dtype}")
    y = ctx.run(layer, x.value, indices.value, output_size)
    dims = layer._dims
    xb, added = _batched(ctx, x, dims)
    ib, _ = _batched(ctx, indices, dims)
    out = layer._out_size(x.value.shape[-dims:], output_size)
    nc = ctx.node("Slice", [ctx.node("Shape", [ib])[0], ctx.ints([0], "start"),
                            ctx.ints([2], "end")])[0]  # [N, C] at run time
    inputs = [xb, _whole_tensor_indices(ctx, ib, nc, math.prod(out), dims)]
    if output_size is not None:
        inputs.append(ctx.node("Concat", [nc, ctx.ints(out, "output_size")], axis=0)[0])
    h = ctx.node("MaxUnpool", inputs, kernel_shape=list(layer.kernel_size),
                 strides=list(layer.stride), pads=list(layer.padding) * 2)[0]
    if added:
        return ctx.op("Squeeze", [h, ctx.ints([0], "axis0")], y)
    return Tensor(h, y)
