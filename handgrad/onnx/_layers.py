"""Converters of the dense, convolution, activation, shape and lookup layers."""

from __future__ import annotations

import numpy as np

from ..layers import (
    AlphaDropout,
    Bilinear,
    ChannelShuffle,
    CosineSimilarity,
    Dropout,
    Dropout1d,
    Dropout2d,
    Dropout3d,
    Embedding,
    EmbeddingBag,
    FeatureAlphaDropout,
    Flatten,
    Identity,
    Linear,
    PairwiseDistance,
    PixelShuffle,
    PixelUnshuffle,
    Unflatten,
)
from ._graph import ExportContext, Tensor, converter, tensor_type
from ._pool_norm import reduce


# ---------------------------------------------------------------------------- dense
@converter(Linear)
def linear(ctx: ExportContext, layer: Linear, x: Tensor) -> Tensor:
    y = ctx.run(layer, x.value)
    weight = ctx.param(layer, "weight")
    bias = ctx.param(layer, "bias") if layer.bias is not None else None
    if x.value.ndim == 2:  # y = x W^T + b, what torch.onnx writes too
        return ctx.op("Gemm", [x, weight, bias], y, transB=1)
    weight_t = ctx.node("Transpose", [weight], perm=[1, 0])[0]  # (in, out)
    xw = ctx.op("MatMul", [x, weight_t], y)
    return xw if bias is None else ctx.op("Add", [xw, bias], y)


@converter(Bilinear)
def bilinear(ctx: ExportContext, layer: Bilinear, x1: Tensor, x2: Tensor) -> Tensor:
    """``y[..., o] = sum_ij x1[..., i] W[o, i, j] x2[..., j] + b[o]``: one Einsum."""
    y = ctx.run(layer, x1.value, x2.value)
    out = ctx.op("Einsum", [x1, ctx.param(layer, "weight"), x2], y, equation="...i,oij,...j->...o")
    return out if layer.bias is None else ctx.op("Add", [out, ctx.param(layer, "bias")], y)


@converter(Identity)
def identity(ctx: ExportContext, layer: Identity, x: Tensor) -> Tensor:
    return ctx.op("Identity", [x], x.value)


@converter(Dropout, Dropout1d, Dropout2d, Dropout3d, AlphaDropout, FeatureAlphaDropout)
def dropout(ctx: ExportContext, layer, x: Tensor) -> Tensor:
    # Inference-mode Dropout is the identity; the ratio is kept for handgrad.onnx.load.
    ratio = ctx.const(np.asarray(layer.p, dtype=x.value.dtype), "ratio")
    return ctx.op("Dropout", [x, ratio], x.value)


# ---------------------------------------------------------------------------- shapes
@converter(Flatten)
def flatten(ctx: ExportContext, layer: Flatten, x: Tensor) -> Tensor:
    y = ctx.run(layer, x.value)
    ndim = max(x.value.ndim, 1)
    start, end = layer.start_dim % ndim, layer.end_dim % ndim
    if start == 1 and end == ndim - 1:
        return ctx.op("Flatten", [x], y, axis=1)  # (N, rest): ONNX's own Flatten
    # Leading dimensions copied (0: the input's size there, so a symbolic batch stays
    # symbolic), the flattened run inferred (-1), trailing dimensions as in the example.
    shape = [0] * start + [-1] + list(x.value.shape[end + 1:])
    return ctx.op("Reshape", [x, ctx.ints(shape)], y)


@converter(Unflatten)
def unflatten(ctx: ExportContext, layer: Unflatten, x: Tensor) -> Tensor:
    y = ctx.run(layer, x.value)
    d = layer.dim % x.value.ndim
    # leading axes copied (0), the new sizes, trailing axes as in the example
    shape = [0] * d + list(layer.unflattened_size) + list(x.value.shape[d + 1:])
    return ctx.op("Reshape", [x, ctx.ints(shape)], y)


# ---------------------------------------------------------------------------- lookup
@converter(Embedding)
def embedding(ctx: ExportContext, layer: Embedding, ids: Tensor) -> Tensor:
    ctx.ensure(layer.max_norm is None, layer, "max_norm (rows renormalized at lookup) is not "
               "exported")
    return ctx.op("Gather", [ctx.param(layer, "weight"), ids], ctx.run(layer, ids.value), axis=0)


@converter(EmbeddingBag)
def embedding_bag(ctx: ExportContext, layer: EmbeddingBag, ids: Tensor, offsets=None,
                  per_sample_weights: Tensor | None = None) -> Tensor:
    """Fixed-length bags (B, L): Gather, then a sum, mean or max over L. Padding ids are
    masked out of the sum and the count (an empty bag gives zeros)."""
    ctx.ensure(ids.value.ndim == 2 and offsets is None, layer,
               "only fixed-length bags (a 2-d input without offsets) are exported")
    ctx.ensure(layer.max_norm is None, layer, "max_norm is not exported")
    ctx.ensure(layer.padding_idx is None or layer.mode != "max", layer,
               "padding_idx with mode='max' is not exported")
    weights = None if per_sample_weights is None else per_sample_weights.value
    y = layer(ids.value, None, weights)
    rows = ctx.node("Gather", [ctx.param(layer, "weight"), ids], axis=0)[0]  # (B, L, D)
    dtype = y.dtype
    if layer.mode == "max":
        return reduce(ctx, "ReduceMax", rows, [1], y, keepdims=0)
    mask = None
    if layer.padding_idx is not None:  # (B, L, 1): 1 for real ids, 0 for padding
        same = ctx.node("Equal", [ids, ctx.const(np.asarray(layer.padding_idx), "padding")])[0]
        mask = ctx.node("Cast", [ctx.node("Not", [same])[0]],
                        to=tensor_type(dtype))[0]
    factor = mask
    if per_sample_weights is not None:
        factor = per_sample_weights.name if mask is None else \
            ctx.node("Mul", [per_sample_weights, mask])[0]
    if factor is not None:
        rows = ctx.node("Mul", [rows, ctx.node("Unsqueeze", [factor, ctx.ints([2], "axis2")])[0]]
                        )[0]
    total = reduce(ctx, "ReduceSum", rows, [1], y, keepdims=0)
    if layer.mode == "sum":
        return total
    if mask is None:
        return reduce(ctx, "ReduceMean", ctx.node("Gather", [ctx.param(layer, "weight"), ids],
                                                  axis=0)[0], [1], y, keepdims=0)
    count = reduce(ctx, "ReduceSum", mask, [1], y, keepdims=1)  # (B, 1)
    count = ctx.node("Max", [count, ctx.const(np.asarray(1, dtype), "one")])[0]
    return ctx.op("Div", [total, count], y)


# ---------------------------------------------------------------------------- rearranging
def _permute(ctx: ExportContext, x: Tensor, split: list[int], perm_tail: list[int],
             merged: list[int], y: np.ndarray) -> Tensor:
    """Reshape the last axes to ``split``, permute them, reshape to ``merged``; leading axes
    (``0``: copied, so a symbolic batch stays symbolic) untouched."""
    lead = x.value.ndim - 3 if len(merged) == 3 else 1
    h = ctx.node("Reshape", [x, ctx.ints([0] * lead + split)])[0]
    h = ctx.node("Transpose", [h], perm=list(range(lead)) + [lead + k for k in perm_tail])[0]
    return ctx.op("Reshape", [h, ctx.ints([0] * lead + merged)], y)


@converter(PixelShuffle)
def pixel_shuffle(ctx: ExportContext, layer: PixelShuffle, x: Tensor) -> Tensor:
    """(*, C r^2, H, W) -> (*, C, H r, W r): DepthToSpace in CRD order for 4-D inputs."""
    y, r = ctx.run(layer, x.value), layer.upscale_factor
    if x.value.ndim == 4:
        return ctx.op("DepthToSpace", [x], y, blocksize=r, mode="CRD")
    c, h, w = x.value.shape[-3:]
    return _permute(ctx, x, [c // (r * r), r, r, h, w], [0, 3, 1, 4, 2],
                    [c // (r * r), h * r, w * r], y)


@converter(PixelUnshuffle)
def pixel_unshuffle(ctx: ExportContext, layer: PixelUnshuffle, x: Tensor) -> Tensor:
    """(*, C, H r, W r) -> (*, C r^2, H, W) (ONNX's SpaceToDepth orders the channels
    otherwise): Reshape, Transpose, Reshape."""
    y, r = ctx.run(layer, x.value), layer.downscale_factor
    c, h, w = x.value.shape[-3:]
    return _permute(ctx, x, [c, h // r, r, w // r, r], [0, 2, 4, 1, 3],
                    [c * r * r, h // r, w // r], y)


@converter(ChannelShuffle)
def channel_shuffle(ctx: ExportContext, layer: ChannelShuffle, x: Tensor) -> Tensor:
    """(N, C, *) as (N, g, C/g, *), the group axes swapped, back to (N, C, *)."""
    y, g = ctx.run(layer, x.value), layer.groups
    rest = list(x.value.shape[2:])
    c = x.value.shape[1]
    h = ctx.node("Reshape", [x, ctx.ints([0, g, c // g] + rest)])[0]
    h = ctx.node("Transpose", [h], perm=[0, 2, 1] + list(range(3, 3 + len(rest))))[0]
    return ctx.op("Reshape", [h, ctx.ints([0, c] + rest)], y)


# ---------------------------------------------------------------------------- distances
@converter(CosineSimilarity)
def cosine_similarity(ctx: ExportContext, layer: CosineSimilarity, x1: Tensor,
                      x2: Tensor) -> Tensor:
    """``sum(a b) / (max(|a|, eps) max(|b|, eps))`` along dim, a and b broadcast together."""
    y = ctx.run(layer, x1.value, x2.value)
    dtype = y.dtype
    prod = ctx.node("Mul", [x1, x2])[0]
    shape = ctx.node("Shape", [prod])[0]
    eps = ctx.const(np.asarray(layer.eps, dtype), "eps")
    norms = []
    for x in (x1, x2):
        full = ctx.node("Expand", [x, shape])[0]
        square = ctx.node("Mul", [full, full])[0]
        total = reduce(ctx, "ReduceSum", square, [layer.dim], y, keepdims=0).name
        norms.append(ctx.node("Max", [ctx.node("Sqrt", [total])[0], eps])[0])
    dot = reduce(ctx, "ReduceSum", prod, [layer.dim], y, keepdims=0).name
    return ctx.op("Div", [dot, ctx.node("Mul", norms)[0]], y)


@converter(PairwiseDistance)
def pairwise_distance(ctx: ExportContext, layer: PairwiseDistance, x1: Tensor,
                      x2: Tensor) -> Tensor:
    """``|x1 - x2 + eps|_p`` over the last axis (p = 1, 2, inf or any other p > 0)."""
    y = ctx.run(layer, x1.value, x2.value)
    dtype, p, keep = y.dtype, layer.norm, int(layer.keepdim)
    diff = ctx.node("Add", [ctx.node("Sub", [x1, x2])[0],
                            ctx.const(np.asarray(layer.eps, dtype), "eps")])[0]
    size = ctx.node("Abs", [diff])[0]
    if np.isinf(p):
        return reduce(ctx, "ReduceMax", size, [-1], y, keepdims=keep)
    if p == 1:
        return reduce(ctx, "ReduceSum", size, [-1], y, keepdims=keep)
    powered = ctx.node("Pow", [size, ctx.const(np.asarray(p, dtype), "p")])[0]
    if p == 2:
        return ctx.op("Sqrt", [reduce(ctx, "ReduceSum", powered, [-1], y, keep)], y)
    total = reduce(ctx, "ReduceSum", powered, [-1], y, keepdims=keep)
    return ctx.op("Pow", [total, ctx.const(np.asarray(1 / p, dtype), "inverse_p")], y)
