"""Converters of the pooling and normalization layers."""

from __future__ import annotations

import numpy as np

from ..layers import (
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    GlobalAvgPool2d,
    GroupNorm,
    InstanceNorm1d,
    InstanceNorm2d,
    InstanceNorm3d,
    LayerNorm,
    LocalResponseNorm,
    MaxPool2d,
    RMSNorm,
)
from ..layers.adaptive_pooling import _averaging_matrix, adaptive_bins
from ._graph import ExportContext, Tensor, converter


def reduce(ctx: ExportContext, op: str, x: Tensor | str, axes: list[int], value: np.ndarray,
           keepdims: int = 1) -> Tensor:
    """``ReduceMean``/``ReduceMax``/... over ``axes``: an attribute before opset 18 (13 for
    ``ReduceSum``), an input from then on."""
    if ctx.opset >= (13 if op == "ReduceSum" else 18):
        return ctx.op(op, [x, ctx.ints(axes, "axes")], value, keepdims=keepdims)
    return ctx.op(op, [x], value, axes=axes, keepdims=keepdims)


def _onnx_pads(pads) -> list[int]:
    (top, bottom), (left, right) = pads
    return [top, left, bottom, right]


# ---------------------------------------------------------------------------- pooling
@converter(MaxPool2d)
def max_pool2d(ctx: ExportContext, layer: MaxPool2d, x: Tensor) -> Tensor:
    # ceil_mode's trailing extra is written as explicit padding (MaxPool pads with -inf),
    # so the output size is PyTorch's in every runtime, whatever its ceil rule.
    _, pads = layer._geometry(x.value)
    return ctx.op("MaxPool", [x], ctx.run(layer, x.value), kernel_shape=list(layer.kernel_size),
                  strides=list(layer.stride), dilations=list(layer.dilation),
                  pads=_onnx_pads(pads))


@converter(AvgPool2d)
def avg_pool2d(ctx: ExportContext, layer: AvgPool2d, x: Tensor) -> Tensor:
    y = ctx.run(layer, x.value)
    out_hw, pads = layer._geometry(x.value)
    plain = pads[0][0] == pads[0][1] and pads[1][0] == pads[1][1] \
        and layer.divisor_override is None
    attrs = dict(kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                 pads=_onnx_pads(pads))
    if plain:
        return ctx.op("AveragePool", [x], y, count_include_pad=int(layer.count_include_pad),
                      **attrs)
    # Window sums (an average over every padded position, times kh*kw) divided by
    # handgrad's divisor, a number or an (OH, OW) map: exact for ceil_mode and
    # divisor_override, which ONNX's AveragePool does not express.
    mean = ctx.node("AveragePool", [x], count_include_pad=1, **attrs)[0]
    scale = np.prod(layer.kernel_size) / np.asarray(layer._divisor(x.value, out_hw))
    return ctx.op("Mul", [mean, ctx.const(scale.astype(x.value.dtype), "window_scale")], y)


@converter(AdaptiveAvgPool2d, GlobalAvgPool2d)
def adaptive_avg_pool2d(ctx: ExportContext, layer: AdaptiveAvgPool2d, x: Tensor) -> Tensor:
    y = ctx.run(layer, x.value)
    H, W = x.value.shape[2:]
    oh, ow = layer._out_hw(x.value)
    if (oh, ow) == (1, 1):
        pooled = ctx.node("GlobalAveragePool", [x])[0]
        if isinstance(layer, GlobalAvgPool2d) and layer.flatten:
            return ctx.op("Flatten", [pooled], y, axis=1)
        return Tensor(pooled, y)
    if H % oh == 0 and W % ow == 0:
        kernel = [H // oh, W // ow]
        return ctx.op("AveragePool", [x], y, kernel_shape=kernel, strides=kernel)
    # uneven bins: y = A_h @ x @ A_w^T with the (OH, H) and (OW, W) averaging matrices
    a_w_t = ctx.const(_averaging_matrix(W, ow, x.value.dtype).T, "avg_cols")
    a_h = ctx.const(_averaging_matrix(H, oh, x.value.dtype), "avg_rows")
    cols = ctx.node("MatMul", [x, a_w_t])[0]  # (N, C, H, OW)
    return ctx.op("MatMul", [a_h, cols], y)


@converter(AdaptiveMaxPool2d)
def adaptive_max_pool2d(ctx: ExportContext, layer: AdaptiveMaxPool2d, x: Tensor) -> Tensor:
    y = ctx.run(layer, x.value)
    H, W = x.value.shape[2:]
    oh, ow = layer._out_hw(x.value)
    if (oh, ow) == (1, 1):
        return ctx.op("GlobalMaxPool", [x], y)
    if H % oh == 0 and W % ow == 0:
        kernel = [H // oh, W // ow]
        return ctx.op("MaxPool", [x], y, kernel_shape=kernel, strides=kernel)
    # uneven bins: one Slice + ReduceMax per bin, concatenated back into the (OH, OW) grid
    rows = []
    for h0, h1 in adaptive_bins(H, oh):
        cells = []
        for w0, w1 in adaptive_bins(W, ow):
            window = ctx.node("Slice", [x, ctx.ints([h0, w0], "starts"),
                                        ctx.ints([h1, w1], "ends"), ctx.ints([2, 3], "axes")])
            cells.append(reduce(ctx, "ReduceMax", window[0], [2, 3], y[:, :, :1, :1]).name)
        rows.append(ctx.node("Concat", cells, axis=3)[0])
    return ctx.op("Concat", rows, y, axis=2)


# ---------------------------------------------------------------------------- normalization
def _channel_shaped(ctx: ExportContext, name: str, channels: int, ndim: int) -> str:
    """``name`` (a (C,) vector) reshaped to (C, 1, ..., 1) to broadcast over (N, C, *)."""
    if ndim <= 2:
        return name
    return ctx.node("Reshape", [name, ctx.ints([channels] + [1] * (ndim - 2))])[0]


def _affine(ctx: ExportContext, layer, x: Tensor | str, y: np.ndarray, channels: int) -> Tensor:
    name = x.name if isinstance(x, Tensor) else x
    if layer.weight is None:
        return Tensor(name, y)
    scaled = ctx.node("Mul", [name, _channel_shaped(ctx, ctx.param(layer, "weight"), channels,
                                                    y.ndim)])[0]
    if getattr(layer, "bias", None) is None:
        return Tensor(scaled, y)
    return ctx.op("Add", [scaled, _channel_shaped(ctx, ctx.param(layer, "bias"), channels,
                                                  y.ndim)], y)


def _scale_shift(ctx: ExportContext, layer, channels: int, dtype) -> tuple[str, str]:
    """The layer's weight and bias initializers, or constant ones and zeros for missing ones."""
    scale = ctx.param(layer, "weight") if layer.weight is not None else \
        ctx.const(np.ones(channels, dtype), "scale")
    shift = ctx.param(layer, "bias") if getattr(layer, "bias", None) is not None else \
        ctx.const(np.zeros(channels, dtype), "shift")
    return scale, shift


@converter(BatchNorm1d, BatchNorm2d, BatchNorm3d)
def batch_norm(ctx: ExportContext, layer, x: Tensor) -> Tensor:
    y = ctx.run(layer, x.value)
    C, dtype = layer.num_features, x.value.dtype
    if not layer.track_running_stats:  # eval mode still normalizes with the batch statistics
        axes = [0] + list(range(2, x.value.ndim))
        mean = reduce(ctx, "ReduceMean", x, axes, y)
        centered = ctx.node("Sub", [x, mean])[0]
        var = reduce(ctx, "ReduceMean", ctx.node("Mul", [centered, centered])[0], axes, y)
        std = ctx.node("Sqrt", [ctx.node("Add", [var, ctx.const(
            np.asarray(layer.eps, dtype), "eps")])[0]])[0]
        return _affine(ctx, layer, ctx.node("Div", [centered, std])[0], y, C)
    scale, shift = _scale_shift(ctx, layer, C, dtype)
    return ctx.op("BatchNormalization", [x, scale, shift, ctx.param(layer, "running_mean"),
                                         ctx.param(layer, "running_var")], y,
                  epsilon=layer.eps)


@converter(LayerNorm)
def layer_norm(ctx: ExportContext, layer: LayerNorm, x: Tensor) -> Tensor:
    shape = layer.normalized_shape
    if layer.weight is not None:
        scale = ctx.param(layer, "weight")
    else:
        scale = ctx.const(np.ones(shape, x.value.dtype), "scale")
    if layer.bias is not None:
        bias = ctx.param(layer, "bias")
    else:  # an explicit zero bias: onnxruntime 1.32 crashes on a LayerNormalization without
        bias = ctx.const(np.zeros(shape, x.value.dtype), "zero_bias")
    return ctx.op("LayerNormalization", [x, scale, bias], ctx.run(layer, x.value),
                  axis=-len(shape), epsilon=layer.eps)


@converter(GroupNorm)
def group_norm(ctx: ExportContext, layer: GroupNorm, x: Tensor) -> Tensor:
    # (N, C, *) -> (N, G, C/G * S): InstanceNormalization normalizes each (n, g) row; then
    # back to (N, C, *) (the batch copied, the other sizes as in the example)
    y = ctx.run(layer, x.value)
    G, dtype = layer.num_groups, x.value.dtype
    grouped = ctx.node("Reshape", [x, ctx.ints([0, G, -1])])[0]
    normed = ctx.node("InstanceNormalization", [grouped, ctx.const(np.ones(G, dtype), "ones"),
                                                ctx.const(np.zeros(G, dtype), "zeros")],
                      epsilon=layer.eps)[0]
    back = ctx.node("Reshape", [normed, ctx.ints([0] + list(x.value.shape[1:]))])[0]
    return _affine(ctx, layer, back, y, layer.num_channels)


@converter(InstanceNorm1d, InstanceNorm2d, InstanceNorm3d)
def instance_norm(ctx: ExportContext, layer, x: Tensor) -> Tensor:
    """Batch statistics: InstanceNormalization; running statistics (eval): BatchNormalization."""
    y = ctx.run(layer, x.value)
    unbatched = x.value.ndim == layer._rank
    axis0 = ctx.ints([0], "axis0") if unbatched else None
    xb = ctx.node("Unsqueeze", [x, axis0])[0] if unbatched else x.name
    channels = x.value.shape[0 if unbatched else 1]
    scale, shift = _scale_shift(ctx, layer, channels, x.value.dtype)
    if layer.track_running_stats:
        out = ctx.node("BatchNormalization", [xb, scale, shift, ctx.param(layer, "running_mean"),
                                              ctx.param(layer, "running_var")],
                       epsilon=layer.eps)[0]
    else:
        out = ctx.node("InstanceNormalization", [xb, scale, shift], epsilon=layer.eps)[0]
    return ctx.op("Squeeze", [out, axis0], y) if unbatched else Tensor(out, y)


@converter(RMSNorm)
def rms_norm(ctx: ExportContext, layer: RMSNorm, x: Tensor) -> Tensor:
    """``x / sqrt(mean(x^2) + eps) * weight`` over the trailing normalized_shape axes."""
    y = ctx.run(layer, x.value)
    dtype = x.value.dtype
    eps = np.finfo(dtype).eps if layer.eps is None else layer.eps
    axes = list(range(-len(layer.normalized_shape), 0))
    square = ctx.node("Pow", [x, ctx.const(np.asarray(2, dtype), "two")])[0]
    mean = reduce(ctx, "ReduceMean", square, axes, y)
    rms = ctx.node("Sqrt", [ctx.node("Add", [mean, ctx.const(np.asarray(eps, dtype), "eps")])[0]])
    normed = ctx.node("Div", [x, rms[0]])[0]
    if layer.weight is None:
        return Tensor(normed, y)
    return ctx.op("Mul", [normed, ctx.param(layer, "weight")], y)


@converter(LocalResponseNorm)
def local_response_norm(ctx: ExportContext, layer: LocalResponseNorm, x: Tensor) -> Tensor:
    """Odd sizes: ONNX's LRN (its window is PyTorch's then). Even sizes, which ONNX Runtime's
    LRN refuses and where ONNX's window differs (``[c - (size-1)//2, c + size//2]``): the
    formula, with the channel-window sum of x^2 as an average pool over (N, 1, C, S)."""
    y = ctx.run(layer, x.value)
    ndim, dtype, size = x.value.ndim, x.value.dtype, layer.size
    if size % 2:
        h = x.name if ndim == 4 else ctx.node("Reshape", [x, ctx.ints([0, 0, -1, 1])])[0]
        h = ctx.node("LRN", [h], size=size, alpha=layer.alpha, beta=layer.beta,
                     bias=layer.k)[0]
        if ndim != 4:
            h = ctx.node("Reshape", [h, ctx.ints([0] + list(x.value.shape[1:]))])[0]
        return Tensor(h, y)
    square = ctx.node("Pow", [x, ctx.const(np.asarray(2, dtype), "two")])[0]
    stacked = ctx.node("Reshape", [square, ctx.ints([0, 1, x.value.shape[1], -1])])[0]
    mean = ctx.node("AveragePool", [stacked], kernel_shape=[size, 1], count_include_pad=1,
                    pads=[size // 2, 0, (size - 1) // 2, 0])[0]  # window sum / size
    mean = ctx.node("Reshape", [mean, ctx.ints([0] + list(x.value.shape[1:]))])[0]
    d = ctx.node("Add", [ctx.node("Mul", [mean, ctx.const(np.asarray(layer.alpha, dtype),
                                                          "alpha")])[0],
                         ctx.const(np.asarray(layer.k, dtype), "k")])[0]
    scale = ctx.node("Pow", [d, ctx.const(np.asarray(-layer.beta, dtype), "minus_beta")])[0]
    return ctx.op("Mul", [x, scale], y)
