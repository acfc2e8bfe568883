"""Converters of the 1-d and 3-d convolutions and pools and of the padding layers (main
added them after the 2-d ones; ONNX's Conv, MaxPool, AveragePool and Pad take any rank)."""

from __future__ import annotations

import numpy as np

from ..layers import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool3d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool3d,
    AvgPool1d,
    AvgPool3d,
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
    Fold,
    LPPool1d,
    LPPool2d,
    LPPool3d,
    MaxPool1d,
    MaxPool3d,
    ReflectionPad1d,
    ReflectionPad2d,
    ReflectionPad3d,
    ReplicationPad1d,
    ReplicationPad2d,
    ReplicationPad3d,
    Unfold,
    Upsample,
    UpsamplingBilinear2d,
    UpsamplingNearest2d,
    ZeroPad1d,
    ZeroPad2d,
    ZeroPad3d,
)
from ._graph import ExportContext, Tensor, converter

# handgrad's padding modes as ONNX Pad's ('wrap' exists from opset 19)
PAD_MODES = {"zeros": "constant", "constant": "constant", "reflect": "reflect",
             "replicate": "edge", "circular": "wrap"}


def pad(ctx: ExportContext, layer, x: str, pads: list[tuple[int, int]], mode: str, rank: int,
        value: float = 0.0, dtype=np.float32) -> str:
    """``Pad`` of the last ``len(pads)`` axes of a rank-``rank`` tensor."""
    onnx_mode = PAD_MODES[mode]
    ctx.ensure(onnx_mode != "wrap" or ctx.opset >= 19, layer,
               "circular padding needs opset 19 or newer (Pad's 'wrap' mode)")
    lead = rank - len(pads)
    begins = [0] * lead + [b for b, _ in pads]
    ends = [0] * lead + [e for _, e in pads]
    inputs = [x, ctx.ints(begins + ends, "pads")]
    if onnx_mode == "constant":
        inputs.append(ctx.const(np.asarray(value, dtype), "pad_value"))
    return ctx.node("Pad", inputs, mode=onnx_mode)[0]


def _batched(ctx: ExportContext, x: Tensor, dims: int) -> tuple[str, bool]:
    """The input with a batch axis (unbatched inputs get one), and whether it was added."""
    if x.value.ndim == dims + 1:
        return ctx.node("Unsqueeze", [x, ctx.ints([0], "axis0")])[0], True
    return x.name, False


def _unbatched(ctx: ExportContext, name: str, added: bool, y: np.ndarray) -> Tensor:
    return ctx.op("Squeeze", [name, ctx.ints([0], "axis0")], y) if added else Tensor(name, y)


@converter(Conv1d, Conv3d)
def conv_nd(ctx: ExportContext, layer, x: Tensor) -> Tensor:
    y = ctx.run(layer, x.value)
    dims = len(layer.kernel_size)
    h, added = _batched(ctx, x, dims)
    pads = [tuple(p) for p in layer._pads][-dims:]
    if layer.padding_mode != "zeros":  # the layer pads explicitly, then convolves unpadded
        h = pad(ctx, layer, h, pads, layer.padding_mode, dims + 2)
        pads = [(0, 0)] * dims
    inputs = [h, ctx.param(layer, "weight")]
    if layer.bias is not None:
        inputs.append(ctx.param(layer, "bias"))
    out = ctx.node("Conv", inputs, kernel_shape=list(layer.kernel_size),
                   strides=list(layer.stride), dilations=list(layer.dilation),
                   pads=[b for b, _ in pads] + [e for _, e in pads], group=layer.groups)[0]
    return _unbatched(ctx, out, added, y)


def _pool_pads(layer, x: np.ndarray, dims: int) -> list[tuple[int, int]]:
    """Padding incl. ceil_mode's trailing extra, from the layer's own geometry."""
    xb = x if x.ndim == dims + 2 else x[None]
    if dims == 1:  # the 1-d pools work on the height-1 view (N, C, 1, L)
        return [tuple(layer._geometry(xb[:, :, None])[1][1])]
    return [tuple(p) for p in layer._geometry(xb)[1]]


def _as_list(value, dims: int) -> list[int]:
    return list(value) if isinstance(value, (tuple, list)) else [int(value)] * dims


@converter(MaxPool1d, MaxPool3d)
def max_pool_nd(ctx: ExportContext, layer, x: Tensor) -> Tensor:
    y = ctx.run(layer, x.value)
    dims = 1 if isinstance(layer, MaxPool1d) else 3
    h, added = _batched(ctx, x, dims)
    pads = _pool_pads(layer, x.value, dims)
    out = ctx.node("MaxPool", [h], kernel_shape=_as_list(layer.kernel_size, dims),
                   strides=_as_list(layer.stride, dims),
                   dilations=_as_list(layer.dilation, dims),
                   pads=[b for b, _ in pads] + [e for _, e in pads])[0]
    return _unbatched(ctx, out, added, y)


@converter(AvgPool1d, AvgPool3d)
def avg_pool_nd(ctx: ExportContext, layer, x: Tensor) -> Tensor:
    """Plain settings only (no ceil extra with padding counted, no divisor_override)."""
    y = ctx.run(layer, x.value)
    dims = 1 if isinstance(layer, AvgPool1d) else 3
    pads = _pool_pads(layer, x.value, dims)
    ctx.ensure(all(b == e for b, e in pads) and getattr(layer, "divisor_override", None) is None,
               layer, "ceil_mode windows and divisor_override are exported for AvgPool2d only")
    h, added = _batched(ctx, x, dims)
    out = ctx.node("AveragePool", [h], kernel_shape=_as_list(layer.kernel_size, dims),
                   strides=_as_list(layer.stride, dims),
                   pads=[b for b, _ in pads] + [e for _, e in pads],
                   count_include_pad=int(layer.count_include_pad))[0]
    return _unbatched(ctx, out, added, y)


@converter(ConstantPad1d, ConstantPad2d, ConstantPad3d, ZeroPad1d, ZeroPad2d, ZeroPad3d,
           ReflectionPad1d, ReflectionPad2d, ReflectionPad3d, ReplicationPad1d,
           ReplicationPad2d, ReplicationPad3d, CircularPad1d, CircularPad2d, CircularPad3d)
def padding(ctx: ExportContext, layer, x: Tensor) -> Tensor:
    y = ctx.run(layer, x.value)
    out = pad(ctx, layer, x.name, [tuple(p) for p in layer._pads], layer.mode, x.value.ndim,
              layer.value, x.value.dtype)
    return Tensor(out, y)


@converter(Conv2d)
def conv2d(ctx: ExportContext, layer: Conv2d, x: Tensor) -> Tensor:
    """Any padding_mode; unbatched (C, H, W) inputs too."""
    return conv_nd(ctx, layer, x)


@converter(ConvTranspose1d, ConvTranspose2d, ConvTranspose3d)
def conv_transpose(ctx: ExportContext, layer, x: Tensor) -> Tensor:
    """ONNX's ConvTranspose has PyTorch's weight layout (C, O/groups, *k) and arithmetic."""
    y = ctx.run(layer, x.value)
    dims = len(layer.kernel_size)
    h, added = _batched(ctx, x, dims)
    inputs = [h, ctx.param(layer, "weight")]
    if layer.bias is not None:
        inputs.append(ctx.param(layer, "bias"))
    out = ctx.node("ConvTranspose", inputs, kernel_shape=list(layer.kernel_size),
                   strides=list(layer.stride), dilations=list(layer.dilation),
                   pads=list(layer.padding) * 2, output_padding=list(layer.output_padding),
                   group=layer.groups)[0]
    return _unbatched(ctx, out, added, y)


@converter(LPPool1d, LPPool2d, LPPool3d)
def lp_pool(ctx: ExportContext, layer, x: Tensor) -> Tensor:
    """``(K * avgpool(x^p))^(1/p)`` with the layer's own average pool (K: window size)."""
    from ._pool_norm import avg_pool2d

    y = ctx.run(layer, x.value)
    dtype, p = x.value.dtype, layer.norm_type
    # (the example value only gives the pool its input's shape)
    powered = Tensor(ctx.node("Pow", [x, ctx.const(np.asarray(p, dtype), "p")])[0],
                     np.abs(x.value))
    mean = (avg_pool2d if isinstance(layer, LPPool2d) else avg_pool_nd)(ctx, layer, powered)
    total = ctx.node("Mul", [mean, ctx.const(np.asarray(layer._window_size(), dtype), "K")])
    return ctx.op("Pow", [total[0], ctx.const(np.asarray(1.0 / p, dtype), "inverse_p")], y)


# PyTorch's modes as Resize's (mode, coordinate transformation, nearest rounding)
_RESIZE = {"nearest": ("nearest", "asymmetric", "floor"),
           "nearest-exact": ("nearest", "half_pixel", "round_prefer_ceil"),
           "linear": ("linear", "half_pixel", None), "bilinear": ("linear", "half_pixel", None),
           "trilinear": ("linear", "half_pixel", None), "bicubic": ("cubic", "half_pixel", None)}


@converter(Upsample, UpsamplingNearest2d, UpsamplingBilinear2d)
def upsample(ctx: ExportContext, layer, x: Tensor) -> Tensor:
    """Resize: by the scale factors when the layer uses them (PyTorch's source rule then uses
    1/scale), else to the output size (batch and channels copied from the input)."""
    y = ctx.run(layer, x.value)
    ctx.ensure(layer.mode in _RESIZE, layer, f"mode {layer.mode!r} is not exported")
    mode, transform, rounding = _RESIZE[layer.mode]
    if layer.align_corners and mode != "nearest":
        transform = "align_corners"
    in_size = x.value.shape[2:]
    out_size, scales = layer._sizes(in_size)
    attrs = dict(mode=mode, coordinate_transformation_mode=transform, nearest_mode=rounding)
    if mode == "cubic":
        attrs["cubic_coeff_a"] = -0.75
    if all(s is not None for s in scales):
        factors = ctx.const(np.asarray([1.0, 1.0, *scales], np.float32), "scales")
        return ctx.op("Resize", [x, None, factors], y, **attrs)
    lead = ctx.node("Slice", [ctx.node("Shape", [x])[0], ctx.ints([0], "start"),
                              ctx.ints([2], "end")])[0]
    sizes = ctx.node("Concat", [lead, ctx.ints(list(out_size), "spatial")], axis=0)[0]
    return ctx.op("Resize", [x, None, None, sizes], y, **attrs)


@converter(AdaptiveAvgPool1d, AdaptiveMaxPool1d, AdaptiveAvgPool3d, AdaptiveMaxPool3d)
def adaptive_pool_nd(ctx: ExportContext, layer, x: Tensor) -> Tensor:
    """Global pools (size 1), plain pools (bins that tile the input), else the averaging
    matrices along each axis (average) or one ReduceMax per bin (1-d maximum)."""
    from ..layers.adaptive_pooling import _averaging_matrix, adaptive_bins
    from ._pool_norm import reduce

    y = ctx.run(layer, x.value)
    is_max = isinstance(layer, (AdaptiveMaxPool1d, AdaptiveMaxPool3d))
    dims = 1 if isinstance(layer, (AdaptiveAvgPool1d, AdaptiveMaxPool1d)) else 3
    h, added = _batched(ctx, x, dims)
    sizes, outs = x.value.shape[-dims:], y.shape[-dims:]
    if all(o == 1 for o in outs):
        out = ctx.node("GlobalMaxPool" if is_max else "GlobalAveragePool", [h])[0]
    elif all(n % o == 0 for n, o in zip(sizes, outs)):
        kernel = [n // o for n, o in zip(sizes, outs)]
        out = ctx.node("MaxPool" if is_max else "AveragePool", [h], kernel_shape=kernel,
                       strides=kernel)[0]
    elif not is_max:  # y = x averaged along each axis by its (out, in) matrix
        out, rank = h, dims + 2
        for a, (n, o) in enumerate(zip(sizes, outs)):
            axis = rank - dims + a
            perm = list(range(rank))
            perm[axis], perm[-1] = perm[-1], perm[axis]
            moved = out if axis == rank - 1 else ctx.node("Transpose", [out], perm=perm)[0]
            matrix = ctx.const(_averaging_matrix(n, o, x.value.dtype).T, "averaging")
            out = ctx.node("MatMul", [moved, matrix])[0]
            if axis != rank - 1:
                out = ctx.node("Transpose", [out], perm=perm)[0]
    else:
        ctx.ensure(dims == 1, layer, "uneven bins of a 3-d adaptive max pool are not exported")
        cells = []
        for start, end in adaptive_bins(sizes[0], outs[0]):
            window = ctx.node("Slice", [h, ctx.ints([start], "start"), ctx.ints([end], "end"),
                                        ctx.ints([2], "axis2")])[0]
            cells.append(reduce(ctx, "ReduceMax", window, [2], y).name)
        out = ctx.node("Concat", cells, axis=2)[0]
    return _unbatched(ctx, out, added, y)


def _one_hot_kernel(channels: int, kernel: tuple[int, int], dtype) -> np.ndarray:
    """(C*kh*kw, 1, kh, kw): output channel c*kh*kw + i*kw + j picks window offset (i, j)."""
    kh, kw = kernel
    eye = np.eye(kh * kw, dtype=dtype).reshape(kh * kw, 1, kh, kw)
    return np.tile(eye, (channels, 1, 1, 1))


@converter(Unfold)
def unfold(ctx: ExportContext, layer, x: Tensor) -> Tensor:
    """im2col as a grouped convolution with one-hot kernels (exact: products with 1 and 0),
    then (N, C*kh*kw, OH, OW) -> (N, C*kh*kw, L)."""
    y = ctx.run(layer, x.value)
    h, added = _batched(ctx, x, 2)
    C = x.value.shape[-3]
    weight = ctx.const(_one_hot_kernel(C, layer._kernel, x.value.dtype), "one_hot")
    (ph, pw) = layer._padding
    cols = ctx.node("Conv", [h, weight], kernel_shape=list(layer._kernel),
                    strides=list(layer._stride), dilations=list(layer._dilation),
                    pads=[ph, pw, ph, pw], group=C)[0]
    out = ctx.node("Reshape", [cols, ctx.ints([0, 0, -1], "columns")])[0]
    return _unbatched(ctx, out, added, y)


@converter(Fold)
def fold(ctx: ExportContext, layer, x: Tensor) -> Tensor:
    """col2im: the columns as (N, C*kh*kw, OH, OW) through the transposed one-hot
    convolution (overlapping windows add), sized to output_size by output_padding."""
    y = ctx.run(layer, x.value)
    h, added = _batched(ctx, x, 1)
    kh, kw = layer._kernel
    C = x.value.shape[-2] // (kh * kw)
    (H, W), (ph, pw) = layer._output_size, layer._padding
    (sh, sw), (dh, dw) = layer._stride, layer._dilation
    oh = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    grid = ctx.node("Reshape", [h, ctx.ints([0, C * kh * kw, oh, ow], "grid")])[0]
    extra = [H - ((oh - 1) * sh - 2 * ph + dh * (kh - 1) + 1),
             W - ((ow - 1) * sw - 2 * pw + dw * (kw - 1) + 1)]
    weight = ctx.const(_one_hot_kernel(C, layer._kernel, x.value.dtype), "one_hot")
    out = ctx.node("ConvTranspose", [grid, weight], kernel_shape=[kh, kw], strides=[sh, sw],
                   dilations=[dh, dw], pads=[ph, pw, ph, pw], output_padding=extra,
                   group=C)[0]
    return _unbatched(ctx, out, added, y)
