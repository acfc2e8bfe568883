"""``handgrad.summary(model, input_shape)``: per-layer output shapes, parameters, caches.

The summary runs one training-mode forward pass on a private deep copy of the model (so
the model's running statistics, dropout generators and caches are untouched), recording
for every *leaf* layer (and every layer holding its own parameters) the shape of its first
output, its parameter count and the bytes it keeps for backward.

**How cached bytes are measured** (generic, no per-layer code): after the forward, for
each layer, every instance attribute whose name starts with ``_`` is searched (through
nested tuples, lists, dicts and plain objects' attributes, up to 8 levels) for NumPy
arrays; the ``nbytes`` of each distinct array is summed, leaving out the layer's own
parameters, gradients and buffers.
An array held by two layers (a ReLU output that the next Linear keeps as its input) is
counted in each, so the total is the sum of what every layer retains, an upper bound on
the unique memory. A layer called several times in one forward shows its last call's cache.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from ..layer import Layer

__all__ = ["summary", "Summary", "SummaryRow", "cached_bytes"]

_STRUCTURAL = {"_parameters", "_buffers", "_children", "_eval_backward"}


@dataclass
class SummaryRow:
    name: str
    type: str
    output_shape: str
    params: int
    trainable: int
    cached_bytes: int
    calls: int


def _arrays_in(value: Any, depth: int = 0) -> list[NDArray]:
    if isinstance(value, np.ndarray):
        return [value]
    if depth >= 8:
        return []
    if isinstance(value, (tuple, list)):
        return [a for v in value for a in _arrays_in(v, depth + 1)]
    if isinstance(value, dict):
        return [a for v in value.values() for a in _arrays_in(v, depth + 1)]
    if hasattr(value, "__dict__") and not isinstance(value, (Layer, type)):
        return _arrays_in(vars(value), depth + 1)  # a plain object holding arrays
    return []


def cached_bytes(layer: Layer) -> int:
    """Bytes of the arrays ``layer`` keeps in its ``_``-prefixed attributes (see module doc)."""
    own = {id(p.data) for p in layer._parameters.values() if p is not None}
    own |= {id(p.grad) for p in layer._parameters.values() if p is not None and p.grad is not None}
    own |= {id(b) for b in layer._buffers.values() if b is not None}
    seen: set[int] = set()
    total = 0
    for name, value in vars(layer).items():
        if not name.startswith("_") or name in _STRUCTURAL:
            continue
        for array in _arrays_in(value):
            if id(array) in own or id(array) in seen:
                continue
            seen.add(id(array))
            total += array.nbytes
    return total


def _describe(out: Any) -> str:
    if isinstance(out, np.ndarray):
        return str(tuple(out.shape))
    if isinstance(out, (tuple, list)):
        return "[" + ", ".join(_describe(o) for o in out) + "]"
    if isinstance(out, (int, float)):
        return type(out).__name__
    return type(out).__name__


def _format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{int(n)} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class Summary:
    """The result of ``summary(model, ...)``: ``rows`` plus totals; ``str()`` is the table."""

    def __init__(self, model_name: str, rows: list[SummaryRow], input_desc: str,
                 output_desc: str, param_bytes: int):
        self.model_name = model_name
        self.rows = rows
        self.input_shape = input_desc
        self.output_shape = output_desc
        self.total_params = sum(r.params for r in rows)
        self.trainable_params = sum(r.trainable for r in rows)
        self.param_bytes = param_bytes
        self.cached_bytes = sum(r.cached_bytes for r in rows)

    def __str__(self) -> str:
        headers = ("Layer (type)", "Output shape", "Params", "Cached for backward")
        body = [(f"{r.name} ({r.type})" if r.name else r.type, r.output_shape,
                 f"{r.params:,}", _format_bytes(r.cached_bytes)) for r in self.rows]
        widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h)
                  for i, h in enumerate(headers)]

        def line(cells):
            return "  ".join([cells[0].ljust(widths[0]), cells[1].ljust(widths[1]),
                              cells[2].rjust(widths[2]), cells[3].rjust(widths[3])])

        rule = "-" * (sum(widths) + 6)
        lines = [f"{self.model_name} summary", rule, line(headers), rule]
        lines += [line(row) for row in body]
        lines += [
            rule,
            f"Input {self.input_shape} -> output {self.output_shape}",
            f"Total params: {self.total_params:,} ({_format_bytes(self.param_bytes)}), "
            f"trainable: {self.trainable_params:,}",
            f"Cached for backward (training-mode forward, this batch): "
            f"{_format_bytes(self.cached_bytes)}",
        ]
        return "\n".join(lines)

    __repr__ = __str__


def summary(model: Layer, input_shape: tuple[int, ...] | None = None,
            dtype: DTypeLike | None = None, *, x: NDArray | None = None, args: tuple = (),
            rng: np.random.Generator | int | None = 0) -> Summary:
    """Run one forward on a copy of ``model`` and tabulate its layers.

    Args:
        model: any Layer.
        input_shape: the full input shape *including the batch dimension* (cached bytes
            grow with the batch), e.g. ``(32, 1, 28, 28)``.
        dtype: input dtype; None means the model's dtype (float32 for a model without
            parameters). Float inputs are small random normal values (a fixed seed,
            ``rng``); integer inputs (token ids for an Embedding) are zeros.
        x: an actual input to use instead of ``input_shape``/``dtype``.
        args: extra positional arguments for the model's forward (e.g. an initial state).

    Returns a ``Summary`` (print it for the table).
    """
    if not isinstance(model, Layer):
        raise TypeError(f"summary: expected a Layer, got {type(model).__name__}")
    if x is None:
        if input_shape is None:
            raise ValueError("summary: give input_shape (including the batch dimension) or x")
        try:
            shape = tuple(int(d) for d in input_shape)
        except TypeError:
            raise TypeError(f"summary: expected input_shape as a tuple of ints, got "
                            f"{input_shape!r}") from None
        if any(d <= 0 for d in shape):
            raise ValueError(f"summary: expected positive dimensions, got {shape}")
        dtype = np.dtype(dtype if dtype is not None else (model.dtype or np.float32))
        if np.issubdtype(dtype, np.floating):
            x = np.random.default_rng(rng).standard_normal(shape).astype(dtype)
        else:
            x = np.zeros(shape, dtype=dtype)
    x = np.asarray(x)

    clone = copy.deepcopy(model)
    clone.train()
    records: dict[str, dict[str, Any]] = {}
    tracked: list[tuple[str, Layer]] = []
    for name, module in clone.named_modules():
        is_leaf = not any(True for _ in module.named_children())
        if is_leaf or any(p is not None for p in module._parameters.values()):
            tracked.append((name, module))
            _instrument(module, name, records)

    try:
        out = clone(x, *args)
    except Exception as err:
        cls = type(err) if type(err) in (ValueError, TypeError, RuntimeError) else RuntimeError
        raise cls(
            f"summary: forward of {type(model).__name__} on an input of shape {x.shape} and "
            f"dtype {x.dtype} failed: {err}"
        ) from err

    rows = []
    for name, module in tracked:
        own = [p for p in module._parameters.values() if p is not None]
        record = records.get(name, {"calls": 0, "out": "(not called)"})
        rows.append(SummaryRow(
            name=name, type=type(module).__name__, output_shape=record["out"],
            params=sum(p.size for p in own),
            trainable=sum(p.size for p in own if p.requires_grad),
            cached_bytes=cached_bytes(module), calls=record["calls"],
        ))
    param_bytes = sum(p.data.nbytes for p in model.parameters())
    return Summary(type(model).__name__, rows, f"{tuple(x.shape)} {x.dtype}", _describe(out),
                   param_bytes)


def _instrument(module: Layer, name: str, records: dict[str, dict[str, Any]]) -> None:
    """Wrap the forward of ``module`` (a private copy) to record its output's shape."""
    forward = module.forward

    def recording_forward(*args: Any, **kwargs: Any) -> Any:
        out = forward(*args, **kwargs)
        record = records.setdefault(name, {"calls": 0, "out": _describe(out)})
        record["calls"] += 1
        return out

    object.__setattr__(module, "forward", recording_forward)
