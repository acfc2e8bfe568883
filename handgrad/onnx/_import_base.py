"""What every importer shares: the ``Match`` it returns, the table, and constant helpers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..layer import Layer

__all__ = ["Match", "IMPORTERS", "importer", "match", "set_values", "epsilon", "const_input",
           "optional_input", "axes_of"]


@dataclass
class Match:
    layer: Layer | list[Layer]
    output: str
    nodes: list = field(default_factory=list)


Importer = Callable[[Any, Any, str], Match]
IMPORTERS: dict[str, Importer] = {}


def importer(*ops: str) -> Callable[[Importer], Importer]:
    def register(fn: Importer) -> Importer:
        for op in ops:
            IMPORTERS[op] = fn
        return fn
    return register


def match(g: Any, node: Any, x: str) -> Match:
    fn = IMPORTERS.get(node.op_type)
    if fn is None:
        raise g.bad(node, f"no handgrad layer for the ONNX operator {node.op_type}")
    return fn(g, node, x)


def set_values(layer: Layer, **values: np.ndarray) -> Layer:
    """Copy arrays into the layer's parameters and buffers of those names."""
    own = dict(layer.state_dict())
    for name, value in values.items():
        own[name] = np.broadcast_to(np.asarray(value, own[name].dtype), own[name].shape).copy()
    layer.load_state_dict(own)
    return layer


def epsilon(attrs: dict) -> float:
    """The node's epsilon (a float32 attribute) as the decimal it was written from."""
    return float(f"{attrs.get('epsilon', 1e-5):.6g}")


def const_input(g: Any, node: Any, index: int, what: str) -> np.ndarray:
    value = g.const(node.input[index]) if len(node.input) > index else None
    if value is None:
        raise g.bad(node, f"expected {what} to be a constant")
    return value


def optional_input(g: Any, node: Any, index: int) -> np.ndarray | None:
    return g.const(node.input[index]) if len(node.input) > index and node.input[index] else None


def axes_of(g, node) -> list[int] | None:
    a = g.attrs(node)
    if "axes" in a:
        return list(a["axes"])
    value = g.const(node.input[1]) if len(node.input) > 1 else None
    return None if value is None else [int(v) for v in np.ravel(value)]

