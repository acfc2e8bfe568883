"""Embedding: a lookup table of learned vectors indexed by integer ids."""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validation import check_grad, check_positive_int
from ..init import normal_
from ..layer import Layer
from ..parameter import Parameter
from ..random import resolve_rng

__all__ = ["Embedding"]


class Embedding(Layer):
    """Look up ``weight[ids]``: ``y[..., :] = weight[x[...], :]``.

    Args:
        num_embeddings: size of the table (ids are in ``[0, num_embeddings)``).
        embedding_dim: size of each vector.
        padding_idx: an id whose row is initialised to zero and never receives a gradient
            (negative values count from the end, as in PyTorch).
        dtype: parameter dtype (float32 by default).
        rng: generator or seed for the initial weights.

    Shape:
        - input: ``(*)`` integer ids
        - output: ``(*, embedding_dim)``
        - weight: ``(num_embeddings, embedding_dim)``, initialised N(0, 1)

    ``backward(grad_out)`` adds the rows of ``grad_out`` into the rows of ``weight.grad`` they
    were looked up from (ids sorted once, then one segment sum per distinct id) and returns
    ``None``: integer ids have no gradient. Forward caches the ids.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 dtype: DTypeLike = np.float32, rng=None):
        super().__init__()
        self.num_embeddings = check_positive_int("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = check_positive_int("Embedding", "embedding_dim", embedding_dim)
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)) \
                    or not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(
                    f"Embedding: expected padding_idx in [-{num_embeddings}, {num_embeddings}), "
                    f"got {padding_idx!r}"
                )
            padding_idx = int(padding_idx) % num_embeddings
        self.padding_idx = padding_idx
        self.weight = Parameter(np.empty((num_embeddings, embedding_dim), dtype=dtype))
        self.reset_parameters(rng)
        self._ids = None

    def reset_parameters(self, rng=None) -> None:
        normal_(self.weight, 0.0, 1.0, resolve_rng(rng))
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, x: NDArray) -> NDArray:
        ids = np.asarray(x)
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"{self.describe()}: expected integer ids, got dtype {ids.dtype}")
        if ids.size:
            low, high = int(ids.min()), int(ids.max())
            bad = low if low < 0 else high if high >= self.num_embeddings else None
            if bad is not None:
                raise ValueError(
                    f"{self.describe()}: id {bad} is out of range [0, {self.num_embeddings})"
                )
        y = self.weight.data.take(ids, axis=0)  # (*, D)
        self._ids = ids if self.caching else None
        return y

    def backward(self, grad_out: NDArray) -> None:
        ids = self._saved(self._ids)
        grad_out = check_grad(self, grad_out, ids.shape + (self.embedding_dim,))
        if not self.weight.requires_grad:
            return None
        flat = ids.reshape(-1)
        g = grad_out.reshape(-1, self.embedding_dim)
        grad = np.zeros_like(self.weight.data)
        if flat.size:
            # sort the ids, then sum each run of equal ids in one np.add.reduceat call
            order = np.argsort(flat, kind="stable")
            sorted_ids = flat[order]
            starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
            grad[sorted_ids[starts]] = np.add.reduceat(g[order], starts, axis=0)
        if self.padding_idx is not None:
            grad[self.padding_idx] = 0
        self.weight.accumulate_grad(grad, fresh=True)
        return None

    def extra_repr(self) -> str:
        extra = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{extra}"
