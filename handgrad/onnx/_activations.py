"""Converters of the activations: one ONNX operator where ONNX has PyTorch's function,
else the formula (``Softplus`` with beta and threshold, ``GLU``, ``Threshold``, ...)."""

from __future__ import annotations

import math

import numpy as np

from ..layers import (
    CELU,
    ELU,
    GELU,
    GLU,
    SELU,
    Hardshrink,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LeakyReLU,
    LogSigmoid,
    LogSoftmax,
    Mish,
    PReLU,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Softmax2d,
    Softmin,
    Softplus,
    Softshrink,
    Softsign,
    Tanh,
    Tanhshrink,
    Threshold,
)
from ._graph import ExportContext, Tensor, converter


def _scalar(ctx: ExportContext, value: float, x: Tensor, hint: str) -> str:
    return ctx.const(np.asarray(value, x.value.dtype), hint)


# ---------------------------------------------------------------------------- activations
def _simple(op: str):
    def convert(ctx: ExportContext, layer, x: Tensor) -> Tensor:
        return ctx.op(op, [x], ctx.run(layer, x.value))
    return convert


converter(ReLU)(_simple("Relu"))
converter(Sigmoid)(_simple("Sigmoid"))
converter(Tanh)(_simple("Tanh"))


@converter(LeakyReLU)
def leaky_relu(ctx: ExportContext, layer: LeakyReLU, x: Tensor) -> Tensor:
    return ctx.op("LeakyRelu", [x], ctx.run(layer, x.value), alpha=layer.negative_slope)


@converter(ELU)
def elu(ctx: ExportContext, layer: ELU, x: Tensor) -> Tensor:
    return ctx.op("Elu", [x], ctx.run(layer, x.value), alpha=layer.alpha)


@converter(SiLU)
def silu(ctx: ExportContext, layer: SiLU, x: Tensor) -> Tensor:
    s = ctx.node("Sigmoid", [x])[0]
    return ctx.op("Mul", [x, s], ctx.run(layer, x.value))


@converter(GELU)
def gelu(ctx: ExportContext, layer: GELU, x: Tensor) -> Tensor:
    y = ctx.run(layer, x.value)
    if ctx.opset >= 20:
        return ctx.op("Gelu", [x], y, approximate=layer.approximate)
    dtype = x.value.dtype

    def c(v: float, hint: str) -> str:
        return ctx.const(np.asarray(v, dtype=dtype), hint)

    if layer.approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = ctx.node("Pow", [x, c(3.0, "three")])[0]
        inner = ctx.node("Add", [x, ctx.node("Mul", [cube, c(0.044715, "k")])[0]])[0]
        t = ctx.node("Tanh", [ctx.node("Mul", [inner, c(math.sqrt(2 / math.pi), "s")])[0]])[0]
    else:  # 0.5 x (1 + erf(x / sqrt 2))
        t = ctx.node("Erf", [ctx.node("Div", [x, c(math.sqrt(2.0), "sqrt2")])[0]])[0]
    half_x = ctx.node("Mul", [x, c(0.5, "half")])[0]
    return ctx.op("Mul", [half_x, ctx.node("Add", [t, c(1.0, "one")])[0]], y)


@converter(Softmax, Softmax2d)
def softmax(ctx: ExportContext, layer: Softmax, x: Tensor) -> Tensor:
    # the axis the layer normalises for this input (dim=None: PyTorch's implicit choice)
    return ctx.op("Softmax", [x], ctx.run(layer, x.value), axis=layer._axis(x.value))


@converter(LogSoftmax)
def log_softmax(ctx: ExportContext, layer: LogSoftmax, x: Tensor) -> Tensor:
    return ctx.op("LogSoftmax", [x], ctx.run(layer, x.value), axis=layer._axis(x.value))


@converter(Softmin)
def softmin(ctx: ExportContext, layer: Softmin, x: Tensor) -> Tensor:
    return ctx.op("Softmax", [ctx.node("Neg", [x])[0]], ctx.run(layer, x.value),
                  axis=layer._axis(x.value))


# ---------------------------------------------------------------------------- piecewise
@converter(Hardtanh, ReLU6)
def hardtanh(ctx: ExportContext, layer: Hardtanh, x: Tensor) -> Tensor:
    return ctx.op("Clip", [x, _scalar(ctx, layer.min_val, x, "min"),
                           _scalar(ctx, layer.max_val, x, "max")], ctx.run(layer, x.value))


@converter(Hardsigmoid)
def hardsigmoid(ctx: ExportContext, layer: Hardsigmoid, x: Tensor) -> Tensor:
    return ctx.op("HardSigmoid", [x], ctx.run(layer, x.value), alpha=1 / 6, beta=0.5)


@converter(Hardswish)
def hardswish(ctx: ExportContext, layer: Hardswish, x: Tensor) -> Tensor:
    return ctx.op("HardSwish", [x], ctx.run(layer, x.value))


@converter(Threshold)
def threshold(ctx: ExportContext, layer: Threshold, x: Tensor) -> Tensor:
    above = ctx.node("Greater", [x, _scalar(ctx, layer.threshold, x, "threshold")])[0]
    return ctx.op("Where", [above, x, _scalar(ctx, layer.value, x, "value")],
                  ctx.run(layer, x.value))


@converter(Softshrink, Hardshrink)
def shrink(ctx: ExportContext, layer: Softshrink, x: Tensor) -> Tensor:
    bias = 0.0 if isinstance(layer, Hardshrink) else layer.lambd
    return ctx.op("Shrink", [x], ctx.run(layer, x.value), lambd=layer.lambd, bias=bias)


@converter(PReLU)
def prelu(ctx: ExportContext, layer: PReLU, x: Tensor) -> Tensor:
    """A slope per channel (dim 1), or one slope, broadcast as the layer does."""
    shape = [] if layer.num_parameters == 1 or x.value.ndim < 2 else \
        [-1] + [1] * (x.value.ndim - 2)
    slope = ctx.node("Reshape", [ctx.param(layer, "weight"), ctx.ints(shape)])[0]
    return ctx.op("PRelu", [x, slope], ctx.run(layer, x.value))


# ---------------------------------------------------------------------------- smooth
@converter(Softplus)
def softplus(ctx: ExportContext, layer: Softplus, x: Tensor) -> Tensor:
    """``log(1 + exp(beta x)) / beta``, and ``x`` where ``beta x > threshold``."""
    z = ctx.node("Mul", [x, _scalar(ctx, layer.beta, x, "beta")])[0]
    smooth = ctx.node("Div", [ctx.node("Softplus", [z])[0],
                              _scalar(ctx, layer.beta, x, "beta")])[0]
    above = ctx.node("Greater", [z, _scalar(ctx, layer.threshold, x, "threshold")])[0]
    return ctx.op("Where", [above, x, smooth], ctx.run(layer, x.value))


@converter(Softsign)
def softsign(ctx: ExportContext, layer: Softsign, x: Tensor) -> Tensor:
    return ctx.op("Softsign", [x], ctx.run(layer, x.value))


@converter(Mish)
def mish(ctx: ExportContext, layer: Mish, x: Tensor) -> Tensor:
    y = ctx.run(layer, x.value)
    if ctx.opset >= 18:
        return ctx.op("Mish", [x], y)
    t = ctx.node("Tanh", [ctx.node("Softplus", [x])[0]])[0]
    return ctx.op("Mul", [x, t], y)


@converter(CELU, SELU)
def celu(ctx: ExportContext, layer: CELU, x: Tensor) -> Tensor:
    y = ctx.run(layer, x.value)
    if isinstance(layer, SELU):
        return ctx.op("Selu", [x], y, alpha=SELU.ALPHA, gamma=SELU.SCALE)
    if x.value.dtype == np.float32:  # ONNX's Celu is float32 only
        return ctx.op("Celu", [x], y, alpha=layer.alpha)
    # max(0, x) + min(0, alpha (exp(x / alpha) - 1))
    inner = ctx.node("Exp", [ctx.node("Div", [x, _scalar(ctx, layer.alpha, x, "alpha")])[0]])
    negative = ctx.node("Mul", [ctx.node("Sub", [inner[0], _scalar(ctx, 1.0, x, "one")])[0],
                                _scalar(ctx, layer.alpha, x, "alpha")])[0]
    zero = _scalar(ctx, 0.0, x, "zero")
    return ctx.op("Add", [ctx.node("Max", [x, zero])[0],
                          ctx.node("Min", [negative, zero])[0]], y)


@converter(LogSigmoid)
def log_sigmoid(ctx: ExportContext, layer: LogSigmoid, x: Tensor) -> Tensor:
    """``-softplus(-x)``."""
    soft = ctx.node("Softplus", [ctx.node("Neg", [x])[0]])[0]
    return ctx.op("Neg", [soft], ctx.run(layer, x.value))


@converter(Tanhshrink)
def tanhshrink(ctx: ExportContext, layer: Tanhshrink, x: Tensor) -> Tensor:
    return ctx.op("Sub", [x, ctx.node("Tanh", [x])[0]], ctx.run(layer, x.value))


@converter(GLU)
def glu(ctx: ExportContext, layer: GLU, x: Tensor) -> Tensor:
    """``a * sigmoid(b)`` with ``a, b`` the halves along dim."""
    a, b = ctx.node("Split", [x], 2, axis=layer.dim, num_outputs=2) if ctx.opset >= 18 else \
        ctx.node("Split", [x], 2, axis=layer.dim)
    return ctx.op("Mul", [a, ctx.node("Sigmoid", [b])[0]], ctx.run(layer, x.value))

