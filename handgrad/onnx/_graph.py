"""The graph being written and the table of converters, one function per layer class.

A converter turns one handgrad layer into ONNX nodes::

    @converter(ReLU)
    def relu(ctx: ExportContext, layer: ReLU, x: Tensor) -> Tensor:
        return ctx.op("Relu", [x], ctx.run(layer, x))

It receives the context, the layer and its input ``Tensor`` (a graph name and the example
value that flows there, so a converter can read static sizes such as an image's H and W),
adds nodes with ``ctx.op`` / ``ctx.node``, registers parameters with ``ctx.param`` (the
initializer is named by the parameter's state_dict key) and returns the output ``Tensor``
(a recurrent layer returns ``(output, h_n[, c_n])``). Containers call ``ctx.convert`` on
their children. Lookup is by exact class: a subclass (which may compute something else)
needs its own entry, else export names it as unsupported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..layer import Layer

__all__ = ["Tensor", "ExportContext", "converter", "register_converter", "CONVERTERS",
           "OUTPUT_NAMES",
           "UnsupportedLayerError", "UnsupportedGraphError"]


class UnsupportedLayerError(TypeError):
    """A layer (or a setting of one) that ``handgrad.onnx.export`` cannot convert."""


class UnsupportedGraphError(ValueError):
    """An ONNX graph (or a node of it) that ``handgrad.onnx.load`` cannot map to layers."""


@dataclass(frozen=True)
class Tensor:
    """A value in the graph: its name and the example array computed there."""

    name: str
    value: NDArray


Converter = Callable[..., Any]
CONVERTERS: dict[type, Converter] = {}
# names of the graph outputs when a layer of that class is the exported model
OUTPUT_NAMES: dict[type, tuple[str, ...]] = {}


def register_converter(cls: type, fn: Converter,
                       output_names: Sequence[str] | None = None) -> None:
    """Make ``fn(ctx, layer, x, *rest)`` the converter of layers of exactly class ``cls``.

    ``output_names`` name the graph outputs when such a layer is the exported model
    (default ``output``, then ``h_n``, ``c_n`` for further results).
    """
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise TypeError(f"register_converter: expected a Layer class, got {cls!r}")
    if not callable(fn):
        raise TypeError(f"register_converter: expected a callable converter, got {fn!r}")
    CONVERTERS[cls] = fn
    if output_names is not None:
        OUTPUT_NAMES[cls] = tuple(output_names)


def converter(*classes: type, output_names: Sequence[str] | None = None
              ) -> Callable[[Converter], Converter]:
    """Decorator form of ``register_converter`` for one or more classes."""
    def register(fn: Converter) -> Converter:
        for cls in classes:
            register_converter(cls, fn, output_names)
        return fn
    return register


def tensor_type(dtype: np.dtype) -> int:
    """ONNX's TensorProto element type of a NumPy dtype."""
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


class ExportContext:
    """Collects nodes and initializers; hands out unique names; knows the opset."""

    def __init__(self, opset: int):
        self.opset = opset
        self.nodes: list = []
        self.initializers: dict[str, Any] = {}
        self._names: set[str] = set()
        self._path: list[str] = []

    # ------------------------------------------------------------------ names
    @property
    def path(self) -> str:
        """The state_dict prefix of the layer being converted ('' for the model itself)."""
        return ".".join(p for p in self._path if p)

    def where(self) -> str:
        return self.path or "(model)"

    @contextmanager
    def scope(self, name: str):
        """Inside, names (and ``param``'s initializers) are those of the child ``name``."""
        self._path.append(name)
        try:
            yield
        finally:
            self._path.pop()

    def fresh(self, hint: str) -> str:
        """A graph name not used before, ``path/hint`` (or ``hint`` at the top level)."""
        base = f"{self.path}/{hint}" if self.path else hint
        name, k = base, 1
        while name in self._names:
            name, k = f"{base}_{k}", k + 1
        self._names.add(name)
        return name

    def reserve(self, name: str) -> str:
        if name in self._names:
            raise ValueError(f"handgrad.onnx.export: graph name {name!r} is used twice")
        self._names.add(name)
        return name

    # ------------------------------------------------------------------ values
    def param(self, layer: Layer, attr: str) -> str:
        """The initializer of ``layer.attr`` (a parameter or buffer), named by its state key."""
        from onnx import numpy_helper

        value = getattr(layer, attr)
        array = value.data if hasattr(value, "data") and not isinstance(value, np.ndarray) \
            else value
        name = f"{self.path}.{attr}" if self.path else attr
        if name not in self.initializers:
            self.reserve(name)
            self.initializers[name] = numpy_helper.from_array(np.asarray(array), name)
        return name

    def const(self, value: Any, hint: str = "const", dtype: Any = None) -> str:
        """A constant initializer (``dtype`` default: int64 for ints, else the value's)."""
        from onnx import numpy_helper

        array = np.asarray(value, dtype=dtype)
        if dtype is None and np.issubdtype(array.dtype, np.integer):
            array = array.astype(np.int64)
        name = self.fresh(hint)
        self.initializers[name] = numpy_helper.from_array(array, name)
        return name

    def ints(self, values: Sequence[int], hint: str = "shape") -> str:
        return self.const(np.asarray(list(values), dtype=np.int64), hint)

    # ------------------------------------------------------------------ nodes
    def node(self, op: str, inputs: Sequence[str | Tensor | None], outputs: int | Sequence[str] = 1,
             **attrs: Any) -> list[str]:
        """Add one node; return its output names (``outputs``: a count or explicit names)."""
        from onnx import helper

        names = [i.name if isinstance(i, Tensor) else ("" if i is None else i) for i in inputs]
        if isinstance(outputs, int):
            outputs = [self.fresh(op if outputs == 1 else f"{op}_{k}") for k in range(outputs)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(helper.make_node(op, names, list(outputs), name=self.fresh(op),
                                           **attrs))
        return list(outputs)

    def op(self, op: str, inputs: Sequence[str | Tensor | None], value: NDArray,
           **attrs: Any) -> Tensor:
        """One node with one output whose example value is ``value``."""
        return Tensor(self.node(op, inputs, 1, **attrs)[0], value)

    def run(self, layer: Layer, *values: Any) -> NDArray:
        """The layer's eval output on the example values (for the next converter's sizes)."""
        return layer(*values)

    def ensure(self, condition: bool, layer: Layer, what: str) -> None:
        """Raise ``UnsupportedLayerError`` naming the layer and its path unless ``condition``."""
        if not condition:
            raise UnsupportedLayerError(
                f"handgrad.onnx.export: {layer.describe()} at {self.where()}: {what}"
            )

    # ------------------------------------------------------------------ recursion
    def convert(self, layer: Layer, name: str, x: Tensor, *rest: Any) -> tuple[Tensor, ...]:
        """Convert child ``layer`` (state_dict name ``name``); always returns a tuple."""
        self._path.append(name)
        try:
            fn = CONVERTERS.get(type(layer))
            if fn is None:
                raise UnsupportedLayerError(_unsupported(layer, self.where()))
            out = fn(self, layer, x, *rest)
        finally:
            self._path.pop()
        return out if isinstance(out, tuple) else (out,)


def _unsupported(layer: Layer, where: str) -> str:
    cls = type(layer)
    base = next((b for b in cls.__mro__[1:] if b in CONVERTERS), None)
    hint = (f" (a subclass of {base.__name__}, whose converter cannot know what the subclass "
            f"computes)" if base is not None else "")
    return (f"handgrad.onnx.export: no ONNX converter for {cls.__module__}.{cls.__qualname__} "
            f"at {where}{hint}; register one with "
            f"handgrad.onnx.register_converter({cls.__name__}, fn)")


def prune(nodes: list, initializers: dict, outputs: Sequence[str]) -> tuple[list, list]:
    """The nodes and initializers that the graph outputs depend on (in their order)."""
    needed = set(outputs)
    kept = []
    for node in reversed(nodes):
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(node.input)
    return kept[::-1], [t for name, t in initializers.items() if name in needed]


def value_info(name: str, dtype: Any, shape: Sequence[int | str]):
    from onnx import helper

    return helper.make_tensor_value_info(name, tensor_type(dtype), list(shape))
