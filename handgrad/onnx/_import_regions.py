"""Layers whose ONNX form forks from their input and meets again: recognised by the
operators of the region (``load``'s ``_region`` finds it), one small function each.

``REGIONS`` maps the operator counts of a region to ``fn(g, seen, merge) -> Match``;
``seen`` are the region's nodes in graph order, ``merge`` the last one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from ..layers import (
    CELU,
    GELU,
    AdaptiveMaxPool2d,
    CosineSimilarity,
    LocalResponseNorm,
    Mish,
    RMSNorm,
    SiLU,
    Softplus,
    Tanhshrink,
    Threshold,
)
from ._import_base import Match, axes_of, set_values

__all__ = ["REGIONS", "classify_region"]

Region = Callable[[Any, list, Any], Match]
REGIONS: dict[frozenset, Region] = {}


def region(**ops: int) -> Callable[[Region], Region]:
    def register(fn: Region) -> Region:
        REGIONS[frozenset(ops.items())] = fn
        return fn
    return register


def classify_region(g: Any, ops: Counter, seen: list, merge: Any) -> Match | None:
    fn = REGIONS.get(frozenset(ops.items()))
    if fn is not None:
        return fn(g, seen, merge)
    if set(ops) == {"Slice", "ReduceMax", "Concat"} and merge.op_type == "Concat":
        rows = len(merge.input)  # one Slice + ReduceMax per adaptive bin
        cols = len(g.producer[merge.input[0]].input)
        return Match(AdaptiveMaxPool2d((rows, cols)), merge.output[0], seen)
    return None


def scalar(g: Any, node: Any) -> float:
    """The node's one scalar constant input, as the decimal it was written from."""
    value = next((g.const(i) for i in node.input if g.const(i) is not None), None)
    if value is None or value.size != 1:
        raise g.bad(node, "expected a scalar constant")
    return float(f"{float(value.reshape(())):.7g}")


def _first(seen: list, op: str, skip: Any = None) -> Any:
    return next(n for n in seen if n.op_type == op and n is not skip)


def _whole(layer) -> Callable[[Any, list, Any], Match]:
    return lambda g, seen, merge: Match(layer(), merge.output[0], seen)


region(Sigmoid=1, Mul=1)(_whole(SiLU))  # x * sigmoid(x)
region(Div=1, Erf=1, Add=1, Mul=2)(_whole(GELU))  # 0.5 x (1 + erf(x / sqrt 2))
region(Pow=1, Mul=4, Add=2, Tanh=1)(_whole(lambda: GELU("tanh")))
region(Softplus=1, Tanh=1, Mul=1)(_whole(Mish))  # x tanh(softplus(x)), before opset 18
region(Tanh=1, Sub=1)(_whole(Tanhshrink))  # x - tanh(x)


@region(Mul=1, Greater=1, Softplus=1, Div=1, Where=1)
def softplus(g, seen, merge) -> Match:
    """Where(beta x > threshold, x, softplus(beta x) / beta)."""
    layer = Softplus(scalar(g, _first(seen, "Mul")), scalar(g, _first(seen, "Greater")))
    return Match(layer, merge.output[0], seen)


@region(Greater=1, Where=1)
def threshold(g, seen, merge) -> Match:
    """Where(x > threshold, x, value)."""
    layer = Threshold(scalar(g, _first(seen, "Greater")), scalar(g, merge))
    return Match(layer, merge.output[0], seen)


@region(Div=1, Exp=1, Sub=1, Mul=1, Max=1, Min=1, Add=1)
def celu(g, seen, merge) -> Match:
    """max(0, x) + min(0, alpha (exp(x / alpha) - 1)), export's float64 CELU."""
    return Match(CELU(scalar(g, _first(seen, "Div"))), merge.output[0], seen)


@region(Pow=1, ReduceMean=1, Add=1, Sqrt=1, Div=1)
def rms_norm(g, seen, merge) -> Match:
    """x / sqrt(mean(x^2) + eps) [* weight]."""
    mean, add = _first(seen, "ReduceMean"), _first(seen, "Add")
    axes = axes_of(g, mean)
    rank = g.rank(mean.input[0])
    shape = g.shape(merge.output[0])
    if axes is None or rank is None or shape is None or \
            sorted(a % rank for a in axes) != list(range(rank - len(axes), rank)):
        raise g.bad(mean, "expected a mean over the trailing axes: an RMSNorm")
    normalized = tuple(int(d) for d in shape[rank - len(axes):])
    nodes, out = list(seen), merge.output[0]
    mul = g.single_next(out, "Mul")
    weight = None if mul is None else g.const(mul.input[1])
    if weight is not None and weight.shape == normalized:
        nodes.append(mul)
        out = mul.output[0]
    else:
        weight = None
    dtype = next(g.const(i) for i in add.input if g.const(i) is not None).dtype
    layer = RMSNorm(normalized, eps=scalar(g, add), elementwise_affine=weight is not None,
                    dtype=dtype)
    if weight is not None:
        set_values(layer, weight=weight)
    return Match(layer, out, nodes)


@region(Pow=2, Reshape=2, AveragePool=1, Mul=2, Add=1)
def even_lrn(g, seen, merge) -> Match:
    """x * (k + alpha * avgpool(x^2 over channels))^(-beta), export's even-size LRN."""
    pool = _first(seen, "AveragePool")
    power = next(n for n in seen if n.op_type == "Pow" and g.const(n.input[1]) is not None
                 and float(g.const(n.input[1])) < 0)
    layer = LocalResponseNorm(int(g.attrs(pool)["kernel_shape"][0]),
                              alpha=scalar(g, _first(seen, "Mul", skip=merge)),
                              beta=-scalar(g, power), k=scalar(g, _first(seen, "Add")))
    return Match(layer, merge.output[0], seen)


@region(Mul=4, Shape=1, Expand=2, ReduceSum=3, Sqrt=2, Max=2, Div=1)
def cosine_similarity(g, seen, merge) -> Match:
    """sum(a b) / (max(|a|, eps) max(|b|, eps)) along dim."""
    layer = CosineSimilarity(dim=axes_of(g, _first(seen, "ReduceSum"))[0],
                             eps=scalar(g, _first(seen, "Max")))
    return Match(layer, merge.output[0], seen)


