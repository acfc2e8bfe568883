"""Importers of the activations that are one ONNX operator (or a short chain from one)."""

from __future__ import annotations

import numpy as np

from ..layers import (
    CELU,
    GLU,
    SELU,
    Hardshrink,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LogSigmoid,
    Mish,
    PReLU,
    ReLU6,
    Softmin,
    Softshrink,
    Softsign,
)
from ._import_base import Match, const_input, importer, optional_input, set_values

_ONE_OP = {"HardSwish": Hardswish, "Softsign": Softsign, "Mish": Mish}


@importer(*_ONE_OP)
def one_op(g, node, x) -> Match:
    return Match(_ONE_OP[node.op_type](), node.output[0], [node])


@importer("HardSigmoid")
def hard_sigmoid(g, node, x) -> Match:
    a = g.attrs(node)
    if not (np.isclose(a.get("alpha", 0.2), 1 / 6) and np.isclose(a.get("beta", 0.5), 0.5)):
        raise g.bad(node, "only HardSigmoid(alpha=1/6, beta=1/2) is PyTorch's Hardsigmoid")
    return Match(Hardsigmoid(), node.output[0], [node])


@importer("Clip")
def clip(g, node, x) -> Match:
    low, high = optional_input(g, node, 1), optional_input(g, node, 2)
    if low is None or high is None:
        raise g.bad(node, "expected constant min and max: a Hardtanh")
    low, high = float(low), float(high)
    layer = ReLU6() if (low, high) == (0.0, 6.0) else Hardtanh(low, high)
    return Match(layer, node.output[0], [node])


@importer("PRelu")
def prelu(g, node, x) -> Match:
    slope = const_input(g, node, 1, "the slope")
    layer = PReLU(slope.size, dtype=slope.dtype)
    return Match(set_values(layer, weight=slope.reshape(-1)), node.output[0], [node])


@importer("Selu")
def selu(g, node, x) -> Match:
    a = g.attrs(node)
    if not (np.isclose(a.get("alpha", SELU.ALPHA), SELU.ALPHA)
            and np.isclose(a.get("gamma", SELU.SCALE), SELU.SCALE)):
        raise g.bad(node, "only Selu with PyTorch's alpha and gamma is a SELU")
    return Match(SELU(), node.output[0], [node])


@importer("Celu")
def celu(g, node, x) -> Match:
    return Match(CELU(float(f"{g.attrs(node).get('alpha', 1.0):.7g}")), node.output[0], [node])


@importer("Shrink")
def shrink(g, node, x) -> Match:
    a = g.attrs(node)
    lambd, bias = float(f"{a.get('lambd', 0.5):.7g}"), float(f"{a.get('bias', 0.0):.7g}")
    if bias == 0:
        return Match(Hardshrink(lambd), node.output[0], [node])
    if bias != lambd:
        raise g.bad(node, f"Shrink with bias {bias} other than 0 or lambd {lambd}")
    return Match(Softshrink(lambd), node.output[0], [node])


@importer("Split")
def glu(g, node, x) -> Match:
    """Split in two -> Sigmoid of the second -> Mul with the first: a GLU."""
    if len(node.output) != 2:
        raise g.bad(node, "only a Split in two halves (a GLU) is imported")
    first, second = node.output
    gate = g.single_next(second, "Sigmoid")
    mul = None if gate is None else g.single_next(gate.output[0], "Mul")
    if mul is None or first not in mul.input:
        raise g.bad(node, "expected a * sigmoid(b) of the two halves: a GLU")
    return Match(GLU(g.attrs(node).get("axis", 0)), mul.output[0], [node, gate, mul])


@importer("Neg")
def negated(g, node, x) -> Match:
    """Neg -> Softmax is a Softmin; Neg -> Softplus -> Neg a LogSigmoid."""
    nxt = g.single_next(node.output[0])
    if nxt is not None and nxt.op_type == "Softmax":
        return Match(Softmin(g.attrs(nxt).get("axis", -1)), nxt.output[0], [node, nxt])
    back = None if nxt is None or nxt.op_type != "Softplus" else \
        g.single_next(nxt.output[0], "Neg")
    if back is None:
        raise g.bad(node, "a Neg is imported only as part of a Softmin or a LogSigmoid")
    return Match(LogSigmoid(), back.output[0], [node, nxt, back])
