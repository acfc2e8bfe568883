"""Containers: Sequential and Residual."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from numpy.typing import NDArray

from ..layer import Layer


class Sequential(Layer):
    """Runs its children in order; backward runs them in reverse.

    ``Sequential(a, b, c)`` names the children ``0``, ``1``, ``2`` (as PyTorch does);
    ``Sequential(OrderedDict(name=layer, ...))`` keeps the given names.

    Shape: input of the first child, output of the last. Caches nothing itself.
    """

    def __init__(self, *layers: Layer | OrderedDict):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], OrderedDict):
            for name, layer in layers[0].items():
                self._check(layer, name)
                self.add_module(str(name), layer)
        else:
            for i, layer in enumerate(layers):
                self._check(layer, i)
                self.add_module(str(i), layer)

    @staticmethod
    def _check(layer, name) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(
                f"Sequential: expected a Layer for child {name}, got {type(layer).__name__}"
            )

    def forward(self, x: NDArray) -> NDArray:
        for layer in self._children.values():
            x = layer(x)
        return x

    def backward(self, grad_out: NDArray) -> NDArray | None:
        if not self.needs_input_grad:
            self._set_needs_input_grad(False)  # parameters may have been (un)frozen since
        for layer in reversed(self._children.values()):
            grad_out = layer.backward(grad_out)
            if grad_out is None:  # a leading child whose input gradient nobody needs
                return None
        return grad_out

    def _set_needs_input_grad(self, needed: bool) -> None:
        # A child's input gradient is needed if ours is or if an earlier child trains.
        super()._set_needs_input_grad(needed)
        for layer in self._children.values():
            if layer.needs_input_grad != needed:
                layer.needs_input_grad = needed
            needed = needed or _trains(layer)

    def __len__(self) -> int:
        return len(self._children)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self._children.values())

    def __getitem__(self, index: int | slice) -> Layer:
        items = list(self._children.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        try:
            return items[index][1]
        except (IndexError, TypeError):
            raise IndexError(
                f"Sequential: index {index!r} out of range for {len(items)} layers"
            ) from None

    def append(self, layer: Layer) -> Sequential:
        self._check(layer, len(self))
        self.add_module(str(len(self)), layer)
        return self

    def extend(self, layers) -> Sequential:
        for layer in layers:
            self.append(layer)
        return self


def _trains(layer: Layer) -> bool:
    return any(p.requires_grad for p in layer.parameters())


class Residual(Layer):
    """``y = body(x) + shortcut(x)``, with an identity shortcut when none is given.

    Backward sums the two input gradients. Children are named ``body`` and ``shortcut``.

    Shape: input of ``body``; ``body(x)`` and ``shortcut(x)`` must have the same shape.
    Caches nothing itself.
    """

    def __init__(self, body: Layer, shortcut: Layer | None = None):
        super().__init__()
        if not isinstance(body, Layer):
            raise TypeError(f"Residual: expected a Layer for body, got {type(body).__name__}")
        if shortcut is not None and not isinstance(shortcut, Layer):
            raise TypeError(
                f"Residual: expected a Layer or None for shortcut, got {type(shortcut).__name__}"
            )
        self.body = body
        self.shortcut = shortcut
        if shortcut is None:
            self.add_module("shortcut", None)

    def forward(self, x: NDArray) -> NDArray:
        y = self.body(x)
        skip = x if self.shortcut is None else self.shortcut(x)
        if y.shape != skip.shape:
            raise ValueError(
                f"Residual: body output of shape {y.shape} and shortcut output of shape "
                f"{skip.shape} cannot be added; give a shortcut that maps {x.shape} to {y.shape}"
            )
        return y + skip

    def backward(self, grad_out: NDArray) -> NDArray | None:
        grad_x = self.body.backward(grad_out)
        grad_skip = grad_out if self.shortcut is None else self.shortcut.backward(grad_out)
        if not self.needs_input_grad:
            return None
        # A new array: body.backward may return a view of grad_out.
        return grad_x + grad_skip

    def _set_needs_input_grad(self, needed: bool) -> None:
        super()._set_needs_input_grad(needed)
        for layer in self.children():
            layer.needs_input_grad = needed
