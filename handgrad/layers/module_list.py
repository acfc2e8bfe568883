"""ModuleList and ModuleDict: hold child layers for a model's own forward and backward.

They register their children (so parameters, state dicts, ``train()``/``eval()`` and
``.to()`` reach them, under PyTorch's names ``0``, ``1``, ... or the dict keys) but run
nothing themselves: a model that keeps its blocks in a ModuleList loops over them in its
``forward`` and over ``reversed(...)`` in its ``backward``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from ..layer import Layer

__all__ = ["ModuleList", "ModuleDict"]


def _check(owner: str, layer, name) -> Layer:
    if not isinstance(layer, Layer):
        raise TypeError(f"{owner}: expected a Layer for {name!r}, got {type(layer).__name__}")
    return layer


class ModuleList(Layer):
    """A list of layers, as ``torch.nn.ModuleList``; children are named ``0``, ``1``, ...

    Supports indexing (negative too) and slicing (a new ModuleList), ``len``, iteration,
    ``append``, ``extend``, ``insert``, ``del``, ``+=`` and assignment to an index. It has
    no forward or backward of its own.
    """

    def __init__(self, modules: Iterable[Layer] | None = None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _index(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"ModuleList: index {i} is out of range for {n} layers")
        return i % n

    def _renumber(self, layers: list[Layer]) -> None:
        self._children.clear()
        for i, layer in enumerate(layers):
            self._children[str(i)] = layer

    def __getitem__(self, i):
        layers = list(self._children.values())
        if isinstance(i, slice):
            return ModuleList(layers[i])
        return layers[self._index(i)]

    def __setitem__(self, i: int, layer: Layer) -> None:
        self._children[str(self._index(i))] = _check("ModuleList", layer, i)

    def __delitem__(self, i) -> None:
        layers = list(self._children.values())
        del layers[i if isinstance(i, slice) else self._index(i)]
        self._renumber(layers)

    def __len__(self) -> int:
        return len(self._children)

    def __iter__(self) -> Iterator[Layer]:
        return iter(list(self._children.values()))

    def __iadd__(self, modules: Iterable[Layer]) -> ModuleList:
        return self.extend(modules)

    def append(self, layer: Layer) -> ModuleList:
        self._children[str(len(self))] = _check("ModuleList", layer, len(self))
        return self

    def extend(self, modules: Iterable[Layer]) -> ModuleList:
        for layer in modules:
            self.append(layer)
        return self

    def insert(self, index: int, layer: Layer) -> None:
        layers = list(self._children.values())
        layers.insert(index, _check("ModuleList", layer, index))
        self._renumber(layers)


class ModuleDict(Layer):
    """An ordered dict of layers, as ``torch.nn.ModuleDict``; children are named by key.

    Supports ``d[key]``, ``d[key] = layer``, ``del d[key]``, ``in``, ``len``, iteration over
    the keys, ``keys()``, ``values()``, ``items()``, ``update()``, ``pop()`` and ``clear()``.
    It has no forward or backward of its own.
    """

    def __init__(self, modules: Mapping[str, Layer] | Iterable[tuple[str, Layer]] | None = None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Layer:
        return self._children[key]

    def __setitem__(self, key: str, layer: Layer) -> None:
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"ModuleDict: expected a non-empty key without '.', got {key!r}")
        self._children[key] = _check("ModuleDict", layer, key)

    def __delitem__(self, key: str) -> None:
        del self._children[key]

    def __contains__(self, key: str) -> bool:
        return key in self._children

    def __len__(self) -> int:
        return len(self._children)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._children))

    def keys(self):
        return self._children.keys()

    def values(self):
        return self._children.values()

    def items(self):
        return self._children.items()

    def update(self, modules) -> None:
        pairs = modules.items() if isinstance(modules, Mapping) else modules
        for key, layer in pairs:
            self[key] = layer

    def pop(self, key: str) -> Layer:
        return self._children.pop(key)

    def clear(self) -> None:
        self._children.clear()
