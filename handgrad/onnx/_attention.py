"""Converters of MultiheadAttention, the Transformer layers and stacks, and CharTransformer.

Attention is written out: the three projections (slices of the packed ``in_proj_weight``,
folded by the runtime), heads split by ``Reshape`` + ``Transpose``, ``softmax(q k^T / sqrt(D)
+ mask) v``, heads merged, ``out_proj``. Batch and sequence lengths stay symbolic
(``Reshape`` copies them with 0). Masks: an additive float mask from the graph (the causal
mask of ``CharTransformer``, cut from a constant ``(max_len, max_len)`` one to the input's
length); ``key_padding_mask``, ``bias_k``/``bias_v`` and ``add_zero_attn`` are not exported.
"""

from __future__ import annotations

import math

import numpy as np

from ..layers import (
    MultiheadAttention,
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)
from ..models.transformer import CharTransformer
from ._graph import ExportContext, Tensor, converter


def _linear(ctx: ExportContext, x: str, weight: str, bias: str | None) -> str:
    """``x W^T + b`` for (..., F) inputs."""
    out = ctx.node("MatMul", [x, ctx.node("Transpose", [weight], perm=[1, 0])[0]])[0]
    return out if bias is None else ctx.node("Add", [out, bias])[0]


def _projections(ctx: ExportContext, layer: MultiheadAttention) -> list[tuple[str, str | None]]:
    """(weight, bias) graph names of the query, key and value projections."""
    E = layer.embed_dim
    result = []
    for i in range(3):
        if layer.in_proj_weight is not None:
            packed = ctx.param(layer, "in_proj_weight")
            weight = ctx.node("Slice", [packed, ctx.ints([i * E], "start"),
                                        ctx.ints([(i + 1) * E], "end"),
                                        ctx.ints([0], "axis0")])[0]
        else:
            weight = ctx.param(layer, ("q_proj_weight", "k_proj_weight", "v_proj_weight")[i])
        bias = None
        if layer.in_proj_bias is not None:
            bias = ctx.node("Slice", [ctx.param(layer, "in_proj_bias"),
                                      ctx.ints([i * E], "start"),
                                      ctx.ints([(i + 1) * E], "end"),
                                      ctx.ints([0], "axis0")])[0]
        result.append((weight, bias))
    return result


def attention(ctx: ExportContext, layer: MultiheadAttention, query: Tensor, key: Tensor,
              value: Tensor, mask: Tensor | None = None, weights: bool = False):
    """The attention output (and the head-averaged weights) in the layer's layout."""
    ctx.ensure(layer.bias_k is None and not layer.add_zero_attn, layer,
               "add_bias_kv and add_zero_attn are not exported")
    batched = query.value.ndim == 3
    H, D, E = layer.num_heads, layer.head_dim, layer.embed_dim

    def internal(t: Tensor) -> str:  # the user's layout -> (N, L, F)
        if not batched:
            return ctx.node("Unsqueeze", [t, ctx.ints([0], "axis0")])[0]
        return t.name if layer.batch_first else ctx.node("Transpose", [t], perm=[1, 0, 2])[0]

    heads = []
    for t, (weight, bias) in zip((query, key, value), _projections(ctx, layer)):
        p = _linear(ctx, internal(t), weight, bias)  # (N, L, E)
        p = ctx.node("Reshape", [p, ctx.ints([0, 0, H, D], "heads")])[0]
        heads.append(ctx.node("Transpose", [p], perm=[0, 2, 1, 3])[0])  # (N, H, L, D)
    q, k, v = heads
    scores = ctx.node("MatMul", [q, ctx.node("Transpose", [k], perm=[0, 1, 3, 2])[0]])[0]
    scale = ctx.const(np.asarray(1.0 / math.sqrt(D), query.value.dtype), "scale")
    scores = ctx.node("Mul", [scores, scale])[0]  # (N, H, L, S)
    if mask is not None:
        scores = ctx.node("Add", [scores, mask])[0]
    probs = ctx.node("Softmax", [scores], axis=-1)[0]
    y = ctx.node("MatMul", [probs, v])[0]  # (N, H, L, D)
    y = ctx.node("Transpose", [y], perm=[0, 2, 1, 3])[0]
    y = ctx.node("Reshape", [y, ctx.ints([0, 0, E], "merged")])[0]  # (N, L, E)
    with ctx.scope("out_proj"):
        out_bias = ctx.param(layer.out_proj, "bias") if layer.out_proj.bias is not None \
            else None
        y = _linear(ctx, y, ctx.param(layer.out_proj, "weight"), out_bias)
    if not batched:
        y = ctx.node("Squeeze", [y, ctx.ints([0], "axis0")])[0]
    elif not layer.batch_first:
        y = ctx.node("Transpose", [y], perm=[1, 0, 2])[0]
    if not weights:
        return y, None
    mean = ctx.node("ReduceMean", [probs, ctx.ints([1], "axis1")] if ctx.opset >= 18
                    else [probs], keepdims=0, **({} if ctx.opset >= 18 else {"axes": [1]}))[0]
    if not batched:
        mean = ctx.node("Squeeze", [mean, ctx.ints([0], "axis0")])[0]
    return y, mean


@converter(MultiheadAttention, output_names=("output", "attn_weights"))
def multihead_attention(ctx: ExportContext, layer: MultiheadAttention, query: Tensor,
                        key: Tensor, value: Tensor) -> tuple[Tensor, ...]:
    """forward(query, key, value) with its defaults: the output and the averaged weights."""
    out, weights = layer(query.value, key.value, value.value)
    y, mean = attention(ctx, layer, query, key, value, weights=True)
    return Tensor(y, out), Tensor(mean, weights)


def _self_attention(ctx: ExportContext, block, x: Tensor, mask: Tensor | None) -> Tensor:
    mask_value = None if mask is None else mask.value
    value = block.self_attn(x.value, x.value, x.value, attn_mask=mask_value,
                            need_weights=False)[0]
    with ctx.scope("self_attn"):
        y, _ = attention(ctx, block.self_attn, x, x, x, mask)
    return Tensor(y, value)


def _cross_attention(ctx: ExportContext, block, x: Tensor, memory: Tensor) -> Tensor:
    value = block.multihead_attn(x.value, memory.value, memory.value, need_weights=False)[0]
    with ctx.scope("multihead_attn"):
        y, _ = attention(ctx, block.multihead_attn, x, memory, memory)
    return Tensor(y, value)


def _feed_forward(ctx: ExportContext, block, x: Tensor) -> Tensor:
    h = ctx.convert(block.linear1, "linear1", x)[0]
    h = ctx.convert(block.activation, "activation", h)[0]
    return ctx.convert(block.linear2, "linear2", h)[0]


def _add(ctx: ExportContext, a: Tensor, b: Tensor) -> Tensor:
    return ctx.op("Add", [a, b], a.value + b.value)


def _residual_steps(ctx: ExportContext, block, x: Tensor, steps) -> Tensor:
    """``x = x + f(norm(x))`` (norm_first) or ``x = norm(x + f(x))`` for each (norm, f)."""
    for norm_name, step in steps:
        norm = getattr(block, norm_name)
        if block.norm_first:
            x = _add(ctx, x, step(ctx.convert(norm, norm_name, x)[0]))
        else:
            x = ctx.convert(norm, norm_name, _add(ctx, x, step(x)))[0]
    return x


@converter(TransformerEncoderLayer)
def encoder_layer(ctx: ExportContext, block: TransformerEncoderLayer, x: Tensor,
                  mask: Tensor | None = None) -> Tensor:
    # the dropouts are the identity in eval mode
    return _residual_steps(ctx, block, x, [
        ("norm1", lambda t: _self_attention(ctx, block, t, mask)),
        ("norm2", lambda t: _feed_forward(ctx, block, t)),
    ])


@converter(TransformerDecoderLayer)
def decoder_layer(ctx: ExportContext, block: TransformerDecoderLayer, x: Tensor,
                  memory: Tensor, mask: Tensor | None = None) -> Tensor:
    return _residual_steps(ctx, block, x, [
        ("norm1", lambda t: _self_attention(ctx, block, t, mask)),
        ("norm2", lambda t: _cross_attention(ctx, block, t, memory)),
        ("norm3", lambda t: _feed_forward(ctx, block, t)),
    ])


@converter(TransformerEncoder)
def encoder(ctx: ExportContext, stack: TransformerEncoder, x: Tensor,
            mask: Tensor | None = None) -> Tensor:
    with ctx.scope("layers"):
        for i, block in enumerate(stack.layers):
            x = ctx.convert(block, str(i), x, mask)[0]
    return x if stack.norm is None else ctx.convert(stack.norm, "norm", x)[0]


@converter(TransformerDecoder)
def decoder(ctx: ExportContext, stack: TransformerDecoder, x: Tensor, memory: Tensor,
            mask: Tensor | None = None) -> Tensor:
    with ctx.scope("layers"):
        for i, block in enumerate(stack.layers):
            x = ctx.convert(block, str(i), x, memory, mask)[0]
    return x if stack.norm is None else ctx.convert(stack.norm, "norm", x)[0]


@converter(Transformer)
def transformer(ctx: ExportContext, model: Transformer, src: Tensor, tgt: Tensor) -> Tensor:
    """forward(src, tgt) without masks: the encoder's memory, then the decoder."""
    memory = ctx.convert(model.encoder, "encoder", src)[0]
    return ctx.convert(model.decoder, "decoder", tgt, memory)[0]


@converter(CharTransformer)
def char_transformer(ctx: ExportContext, model: CharTransformer, ids: Tensor) -> Tensor:
    """Embedding + positions [:T], the causal mask [:T, :T] of a constant (max_len, max_len)
    one, the encoder, the head; T is read from the input, so any length <= max_len runs."""
    ctx.ensure(ids.value.ndim == 2, model, "only batched ids (N, T) are exported")
    T = ids.value.shape[-1]
    dtype = model.embedding.weight.data.dtype
    vectors = ctx.convert(model.embedding, "embedding", ids)[0]
    length = ctx.node("Slice", [ctx.node("Shape", [ids])[0], ctx.ints([1], "start"),
                                ctx.ints([2], "end")])[0]  # [T]
    zero = ctx.ints([0], "zero")
    with ctx.scope("pos_embedding"):
        positions = ctx.node("Slice", [ctx.param(model.pos_embedding, "weight"), zero, length,
                                       zero])[0]  # (T, E)
    x = ctx.op("Add", [vectors, positions],
               vectors.value + model.pos_embedding.weight.data[:T])
    causal = Transformer.generate_square_subsequent_mask(model.max_len, dtype)
    mask_value = causal[:T, :T]
    square = ctx.node("Concat", [length, length], axis=0)[0]
    mask = ctx.node("Slice", [ctx.const(causal, "causal_mask"), ctx.ints([0, 0], "starts"),
                              square, ctx.ints([0, 1], "axes")])[0]
    h = ctx.convert(model.encoder, "encoder", x, Tensor(mask, mask_value))[0]
    return ctx.convert(model.head, "head", h)[0]
