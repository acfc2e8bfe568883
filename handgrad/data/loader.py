"""Datasets over arrays, the DataLoader that batches them, and splitting helpers.

``DataLoader`` has two paths:

* **fast path** — the dataset is an array, a tuple of arrays, a ``TensorDataset`` or a
  ``Subset`` of one: each batch is taken by indexing whole arrays with the batch's indices
  (one NumPy gather per array, no per-sample Python loop);
* **generic path** — any object with ``__len__`` and ``__getitem__`` returning a sample
  (an array, a number or a tuple of them): samples are fetched one by one and stacked.

Either way the loader yields tuples of arrays, one per field (``(x, y)`` for a pair).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..random import resolve_rng, rng_state, set_rng_state, spawn_rng

__all__ = ["TensorDataset", "Subset", "DataLoader", "random_split", "train_val_split"]


class TensorDataset:
    """Pairs arrays sample by sample: ``dataset[i] == (a[i], b[i], ...)``.

    Args:
        *arrays: arrays (or array-likes) with the same first dimension N.

    Shape: each array ``(N, *)``; a sample is the tuple of rows ``(*)``.
    """

    def __init__(self, *arrays: Any):
        if not arrays:
            raise ValueError("TensorDataset: expected at least one array, got none")
        self.arrays: tuple[NDArray, ...] = tuple(np.asarray(a) for a in arrays)
        for i, a in enumerate(self.arrays):
            if a.ndim == 0:
                raise ValueError(
                    f"TensorDataset: array {i} is a scalar; expected arrays of shape (N, ...)"
                )
        sizes = [a.shape[0] for a in self.arrays]
        if len(set(sizes)) != 1:
            shapes = ", ".join(str(a.shape) for a in self.arrays)
            raise ValueError(
                f"TensorDataset: expected arrays with the same first dimension, got shapes "
                f"{shapes}"
            )

    def __len__(self) -> int:
        return int(self.arrays[0].shape[0])

    def __getitem__(self, index: Any) -> tuple[NDArray, ...]:
        return tuple(a[index] for a in self.arrays)

    def __repr__(self) -> str:
        shapes = ", ".join(str(a.shape) for a in self.arrays)
        return f"TensorDataset({shapes})"


class Subset:
    """The samples of ``dataset`` at ``indices`` (what ``random_split`` returns)."""

    def __init__(self, dataset: Any, indices: Sequence[int] | NDArray):
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(f"Subset: expected a dataset with __len__ and __getitem__, got "
                            f"{type(dataset).__name__}")
        self.dataset = dataset
        try:
            indices = np.asarray(indices)
        except ValueError as err:  # ragged nested lists
            raise TypeError(f"Subset: expected integer indices, got {err}") from None
        if indices.size and indices.dtype.kind not in "iu":
            raise TypeError(f"Subset: expected integer indices, got dtype {indices.dtype}")
        self.indices = indices.astype(np.int64, copy=False)
        n = len(dataset)
        if self.indices.ndim != 1:
            raise ValueError(f"Subset: expected 1-D indices, got shape {self.indices.shape}")
        if self.indices.size and (self.indices.min() < -n or self.indices.max() >= n):
            raise ValueError(f"Subset: indices out of range for a dataset of {n} samples")

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, index: Any) -> Any:
        picked = self.indices[index]
        if np.ndim(picked) == 0:
            return self.dataset[int(picked)]
        return self.dataset[picked]

    def __repr__(self) -> str:
        return f"Subset({len(self)} of {self.dataset!r})"


def _as_dataset(data: Any, owner: str = "DataLoader") -> Any:
    """Arrays become a TensorDataset; anything indexable is used as it is."""
    if isinstance(data, np.ndarray):
        return TensorDataset(data)
    if isinstance(data, tuple) and data and all(
            isinstance(a, (np.ndarray, np.generic, list)) for a in data):
        return TensorDataset(*data)  # (x, y) given as arrays or nested lists
    if isinstance(data, (str, bytes, Mapping)) or not (
            hasattr(data, "__len__") and hasattr(data, "__getitem__")):
        raise TypeError(
            f"{owner}: expected an array, a tuple of arrays or a dataset with __len__ and "
            f"__getitem__, got {type(data).__name__}"
        )
    return data


def _fast_arrays(dataset: Any) -> tuple[tuple[NDArray, ...], NDArray | None] | None:
    """``(arrays, index_map)`` when batches can be gathered from whole arrays, else None."""
    if isinstance(dataset, TensorDataset):
        return dataset.arrays, None
    if isinstance(dataset, Subset):
        inner = _fast_arrays(dataset.dataset)
        if inner is None:
            return None
        arrays, index_map = inner
        indices = dataset.indices if index_map is None else index_map[dataset.indices]
        return arrays, indices
    return None


def _collate(samples: list[Any]) -> tuple[NDArray, ...]:
    """Stack a list of samples (tuples of fields, or single fields) into batch arrays."""
    first = samples[0]
    if isinstance(first, (tuple, list)):
        width = len(first)
        for s in samples:
            if not isinstance(s, (tuple, list)) or len(s) != width:
                raise ValueError(
                    f"DataLoader: samples have different structures: {width} fields in the "
                    f"first sample, got {s!r:.80}"
                )
        return tuple(_stack([s[k] for s in samples]) for k in range(width))
    return (_stack(samples),)


def _stack(fields: list[Any]) -> NDArray:
    try:
        return np.stack([np.asarray(f) for f in fields])
    except ValueError as err:  # samples of different shapes
        shapes = sorted({np.shape(f) for f in fields})
        raise ValueError(f"DataLoader: cannot batch samples of different shapes {shapes[:4]} "
                         f"({err}); for arrays x and y pass the tuple (x, y), not a list") from None


class DataLoader:
    """Iterate over a dataset in (shuffled) mini-batches of arrays.

    Args:
        dataset: an array, a tuple of arrays, a ``TensorDataset``/``Subset``, or any object
            with ``__len__`` and ``__getitem__`` returning a sample.
        batch_size: samples per batch (the last batch may be smaller unless ``drop_last``).
        shuffle: draw a new order every epoch from ``rng``.
        drop_last: drop the final incomplete batch.
        rng: ``numpy.random.Generator`` or integer seed for shuffling; the loader keeps it
            as ``loader.rng`` (save ``loader.rng.bit_generator.state`` to resume a run
            exactly). ``None`` takes a child of handgrad's default generator.
        transform: a callable applied to the *first* field of every batch (the inputs),
            e.g. ``transforms.Compose([...])``.
        sampler: keyword-only; an iterable of dataset indices with ``len`` (e.g. a
            ``DistributedSampler``) giving each epoch's order instead of ``shuffle``.

    Yields tuples of arrays, one per field: ``for x, y in DataLoader((x, y), 32): ...``.
    Batches are copies; modifying them never changes the dataset.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        rng: np.random.Generator | int | None = None,
        transform: Callable[[NDArray], NDArray] | None = None,
        *,
        sampler: Any = None,
    ):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or (
            batch_size <= 0
        ):
            raise ValueError(f"DataLoader: expected a positive integer batch_size, got "
                             f"{batch_size!r}")
        if transform is not None and not callable(transform):
            raise TypeError(
                f"DataLoader: expected a callable transform, got {type(transform).__name__}"
            )
        for arg, value in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"DataLoader: expected {arg} True or False, got {value!r}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle "
                             "(the sampler decides the order; DistributedSampler shuffles)")
        if sampler is not None and not hasattr(sampler, "__len__"):
            raise TypeError(f"DataLoader: expected a sampler with __len__ and __iter__, got "
                            f"{type(sampler).__name__}")
        self.sampler = sampler
        self.dataset = _as_dataset(dataset)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        try:
            self.rng = spawn_rng(rng)
        except TypeError as err:
            raise TypeError(f"DataLoader: {err}") from None
        self.transform = transform
        self._fast = _fast_arrays(self.dataset)

    def __len__(self) -> int:
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        if self.drop_last:
            return n // self.batch_size
        return math.ceil(n / self.batch_size)

    def _order(self) -> NDArray | None:
        n = len(self.dataset)
        if self.sampler is not None:
            indices = getattr(self.sampler, "indices", None)
            order = indices() if callable(indices) else list(self.sampler)
            return np.asarray(order, dtype=np.int64).reshape(-1)
        if self.shuffle:
            return self.rng.permutation(n)
        return None

    def __iter__(self) -> Iterator[tuple[NDArray, ...]]:
        order = self._order()
        n = len(self.dataset) if order is None else len(order)
        for b in range(len(self)):
            start = b * self.batch_size
            stop = min(start + self.batch_size, n)
            batch = self._fetch(order, start, stop)
            if self.transform is not None:
                batch = (self.transform(batch[0]), *batch[1:])
            yield batch

    def _fetch(self, order: NDArray | None, start: int, stop: int) -> tuple[NDArray, ...]:
        if self._fast is not None:
            arrays, index_map = self._fast
            if order is None and index_map is None:
                return tuple(a[start:stop].copy() for a in arrays)
            idx = np.arange(start, stop) if order is None else order[start:stop]
            if index_map is not None:
                idx = index_map[idx]
            return tuple(a[idx] for a in arrays)
        idx = range(start, stop) if order is None else order[start:stop]
        return _collate([self.dataset[int(i)] for i in idx])

    def _generators(self) -> list[np.random.Generator]:
        """The loader's generator, then those of its (composed) random transforms."""
        found = [self.rng]
        pending = [self.transform]
        while pending:
            t = pending.pop(0)
            if t is None:
                continue
            if isinstance(getattr(t, "rng", None), np.random.Generator):
                found.append(t.rng)
            pending.extend(getattr(t, "transforms", ()))
        return found

    def state_dict(self) -> dict[str, Any]:
        """The shuffling/augmentation generator states (JSON-able), to resume a run exactly.

        Saved at an epoch boundary and restored with ``load_state_dict``, the next epochs
        draw the same orders and augmentations as an uninterrupted run.
        """
        return {"generators": [rng_state(g) for g in self._generators()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        generators = self._generators()
        saved = state.get("generators") if isinstance(state, dict) else None
        if not isinstance(saved, list) or len(saved) != len(generators):
            raise ValueError(
                f"DataLoader.load_state_dict: expected {len(generators)} generator states "
                f"(the loader's and its random transforms'), got "
                f"{len(saved) if isinstance(saved, list) else type(saved).__name__}"
            )
        for generator, generator_state in zip(generators, saved):
            set_rng_state(generator, generator_state)

    def __repr__(self) -> str:
        sampler = f", sampler={self.sampler!r}" if self.sampler is not None else ""
        return (f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}{sampler})")


def random_split(
    dataset: Any,
    lengths_or_fractions: Sequence[int | float],
    rng: np.random.Generator | int | None = None,
) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random ``Subset``\\ s.

    ``lengths_or_fractions`` is either integer lengths summing to ``len(dataset)`` or
    fractions summing to 1 (as in PyTorch: each length is ``floor(fraction * N)`` and the
    remaining samples go one each to the first subsets).
    """
    dataset = _as_dataset(dataset, "random_split")
    n = len(dataset)
    if isinstance(lengths_or_fractions, (str, bytes)) or not hasattr(lengths_or_fractions,
                                                                     "__iter__"):
        raise TypeError(f"random_split: expected a list of lengths or fractions, got "
                        f"{lengths_or_fractions!r}")
    values = list(lengths_or_fractions)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"random_split: expected integer lengths or float fractions, got "
                            f"{v!r}")
    if not values:
        raise ValueError("random_split: expected at least one length or fraction")
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        lengths = [int(v) for v in values]
        if any(v < 0 for v in lengths) or sum(lengths) != n:
            raise ValueError(
                f"random_split: lengths {lengths} must be non-negative and sum to the "
                f"dataset size {n}"
            )
    else:
        fractions = [float(v) for v in values]
        if any(f < 0 or f > 1 for f in fractions) or not math.isclose(sum(fractions), 1.0,
                                                                      abs_tol=1e-6):
            raise ValueError(
                f"random_split: fractions {fractions} must lie in [0, 1] and sum to 1"
            )
        lengths = [math.floor(f * n) for f in fractions]
        for i in range(n - sum(lengths)):
            lengths[i % len(lengths)] += 1
    order = resolve_rng(rng).permutation(n)
    bounds = np.cumsum([0, *lengths])
    return [Subset(dataset, order[bounds[i]:bounds[i + 1]]) for i in range(len(lengths))]


def _stratified_val_indices(
    y: NDArray, n_val: int, gen: np.random.Generator
) -> NDArray:
    """Pick ``n_val`` indices so that each class keeps its share (largest remainder)."""
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    quotas = counts * (n_val / y.shape[0])
    take = np.floor(quotas).astype(np.int64)
    short = n_val - int(take.sum())
    if short > 0:
        take[np.argsort(-(quotas - take), kind="stable")[:short]] += 1
    picked = []
    for c in range(classes.shape[0]):
        members = np.flatnonzero(inverse == c)
        picked.append(gen.permutation(members)[: take[c]])
    return gen.permutation(np.concatenate(picked))


def train_val_split(
    x: Any,
    y: Any,
    val_fraction: float,
    rng: np.random.Generator | int | None = None,
    stratify: bool = False,
) -> tuple[tuple[NDArray, NDArray], tuple[NDArray, NDArray]]:
    """Randomly hold out ``val_fraction`` of the samples: ``(x_tr, y_tr), (x_val, y_val)``.

    The validation size is ``round(val_fraction * N)`` (at least 1, at most N - 1). With
    ``stratify=True`` each class of ``y`` keeps (up to rounding) its share in both parts.
    Both parts come out in random order.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"train_val_split: expected x and y with the same first dimension, got shapes "
            f"{x.shape} and {y.shape}"
        )
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float, np.floating)
                                                        ) or not (0.0 < val_fraction < 1.0):
        raise ValueError(f"train_val_split: expected val_fraction in (0, 1), got "
                         f"{val_fraction!r}")
    n = x.shape[0]
    n_val = int(round(float(val_fraction) * n))
    if not 1 <= n_val <= n - 1:
        raise ValueError(
            f"train_val_split: val_fraction={val_fraction} of {n} samples leaves "
            f"{n_val} for validation and {n - n_val} for training; both need at least one"
        )
    gen = resolve_rng(rng)
    if stratify and y.ndim != 1:
        raise ValueError(f"train_val_split: stratify=True needs 1-D class labels y, got shape "
                         f"{y.shape}")
    if stratify:
        val_idx = _stratified_val_indices(y, n_val, gen)
        is_val = np.zeros(n, dtype=bool)
        is_val[val_idx] = True
        train_idx = gen.permutation(np.flatnonzero(~is_val))
    else:
        order = gen.permutation(n)
        val_idx, train_idx = order[:n_val], order[n_val:]
    return (x[train_idx], y[train_idx]), (x[val_idx], y[val_idx])
