"""Embedding and EmbeddingBag: lookup tables of learned vectors indexed by integer ids.

Forward is a row lookup ``weight[ids]`` (EmbeddingBag then sums, averages or takes the
maximum of each bag of rows). Backward adds each looked-up row's upstream gradient into
the row of ``weight.grad`` it came from; several lookups of one id add up. That scatter-add
is done without ``np.add.at``: the ids are sorted once and each run of equal ids is summed
with one ``np.add.reduceat`` (:func:`_rows_by_id`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validation import as_array, as_float_input, check_grad, check_positive_int
from ..init import normal_
from ..layer import Layer
from ..parameter import Parameter
from ..random import resolve_rng

__all__ = ["Embedding", "EmbeddingBag"]


def _rows_by_id(ids: NDArray, rows: NDArray, num_embeddings: int) -> NDArray:
    """``out[i] = sum of rows[k] over k with ids[k] == i`` for a (num_embeddings, D) out."""
    out = np.zeros((num_embeddings, rows.shape[1]), dtype=rows.dtype)
    if ids.size:
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
        out[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return out


def _check_padding_idx(name: str, padding_idx, num_embeddings: int) -> int | None:
    if padding_idx is None:
        return None
    if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)) \
            or not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(f"{name}: expected padding_idx in [-{num_embeddings}, "
                         f"{num_embeddings}), got {padding_idx!r}")
    return int(padding_idx) % num_embeddings


class _Table(Layer):
    """The table, its initialisation, id checks and ``max_norm`` shared by both layers."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx, max_norm,
                 norm_type: float, scale_grad_by_freq: bool, sparse: bool, _weight, _freeze,
                 dtype, rng):
        super().__init__()
        name = type(self).__name__
        self.num_embeddings = check_positive_int(name, "num_embeddings", num_embeddings)
        self.embedding_dim = check_positive_int(name, "embedding_dim", embedding_dim)
        self.padding_idx = _check_padding_idx(name, padding_idx, num_embeddings)
        if max_norm is not None and not max_norm > 0:
            raise ValueError(f"{name}: expected a positive max_norm or None, got {max_norm!r}")
        self.max_norm = None if max_norm is None else float(max_norm)
        self.norm_type = float(norm_type)
        self.scale_grad_by_freq = bool(scale_grad_by_freq)
        self.sparse = bool(sparse)  # accepted; gradients are always dense arrays
        shape = (num_embeddings, embedding_dim)
        if _weight is not None:
            weight = np.array(_weight, dtype=dtype, copy=True)
            if weight.shape != shape:
                raise ValueError(f"{name}: expected _weight of shape {shape}, got "
                                 f"{weight.shape}")
            self.weight = Parameter(weight, requires_grad=not _freeze)
        else:
            self.weight = Parameter(np.empty(shape, dtype=dtype), requires_grad=not _freeze)
            self.reset_parameters(rng)

    def reset_parameters(self, rng=None) -> None:
        normal_(self.weight, 0.0, 1.0, resolve_rng(rng))
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def _check_ids(self, x) -> NDArray:
        ids = as_array(self, x, "ids")
        if ids.dtype.kind not in "iu":
            raise TypeError(f"{self.describe()}: expected integer ids, got dtype {ids.dtype}")
        if ids.size:
            low, high = int(ids.min()), int(ids.max())
            bad = low if low < 0 else high if high >= self.num_embeddings else None
            if bad is not None:
                raise ValueError(
                    f"{self.describe()}: id {bad} is out of range [0, {self.num_embeddings})"
                )
        return ids

    def _renorm(self, ids: NDArray) -> None:
        """``max_norm``: rescale, in place, the looked-up rows whose norm exceeds it (as
        PyTorch's ``embedding_renorm_``: ``w *= max_norm / (norm + 1e-7)``, no gradient)."""
        if self.max_norm is None or not ids.size:
            return
        rows = np.unique(ids)
        w = self.weight.data
        norms = np.linalg.norm(w[rows], ord=self.norm_type, axis=1)
        big = norms > self.max_norm
        if big.any():
            scale = (self.max_norm / (norms[big] + 1e-7)).astype(w.dtype)
            w[rows[big]] *= scale[:, None]

    def _weight_grad(self, ids: NDArray, rows: NDArray) -> None:
        """Add the per-lookup gradient ``rows`` (M, D) of the ``ids`` (M,) into weight.grad."""
        if self.scale_grad_by_freq and ids.size:
            _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
            rows = rows / counts[inverse].astype(rows.dtype)[:, None]
        grad = _rows_by_id(ids, rows, self.num_embeddings)
        if self.padding_idx is not None:
            grad[self.padding_idx] = 0
        self.weight.accumulate_grad(grad, fresh=True)

    def extra_repr(self) -> str:
        parts = [str(self.num_embeddings), str(self.embedding_dim)]
        if self.padding_idx is not None:
            parts.append(f"padding_idx={self.padding_idx}")
        if self.max_norm is not None:
            parts.append(f"max_norm={self.max_norm}")
        if self.scale_grad_by_freq:
            parts.append("scale_grad_by_freq=True")
        return ", ".join(parts)


class Embedding(_Table):
    """Look up ``weight[ids]``: ``y[..., :] = weight[x[...], :]``, as ``torch.nn.Embedding``.

    Args:
        num_embeddings: size of the table (ids are in ``[0, num_embeddings)``).
        embedding_dim: size of each vector.
        padding_idx: an id whose row is initialised to zero and never receives a gradient
            (negative values count from the end, as in PyTorch).
        max_norm: rows looked up whose ``norm_type``-norm exceeds it are rescaled to it, in
            place, before the lookup (as PyTorch; no gradient flows through the rescaling).
        norm_type: the p of the p-norm for ``max_norm`` (default 2).
        scale_grad_by_freq: divide each id's gradient by its count in the mini-batch.
        sparse: accepted for compatibility; the gradient is a dense array.
        _weight, _freeze: an initial table, and whether it is frozen (``from_pretrained``).
        dtype: parameter dtype (float32 by default).
        rng: generator or seed for the initial weights.

    Shape:
        - input: ``(*)`` integer ids
        - output: ``(*, embedding_dim)``
        - weight: ``(num_embeddings, embedding_dim)``, initialised N(0, 1)

    ``backward(grad_out)`` adds the rows of ``grad_out`` into the rows of ``weight.grad`` they
    were looked up from and returns ``None``: integer ids have no gradient. Forward caches
    the ids.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0,
                 scale_grad_by_freq: bool = False, sparse: bool = False, _weight=None,
                 _freeze: bool = False, dtype: DTypeLike = np.float32, rng=None):
        super().__init__(num_embeddings, embedding_dim, padding_idx, max_norm, norm_type,
                         scale_grad_by_freq, sparse, _weight, _freeze, dtype, rng)
        self._ids = None

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx: int | None = None,
                        max_norm: float | None = None, norm_type: float = 2.0,
                        scale_grad_by_freq: bool = False, sparse: bool = False):
        """An Embedding whose table is a copy of ``embeddings`` (2-d; frozen by default)."""
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: expected a 2-d table, got shape "
                             f"{embeddings.shape}")
        dtype = embeddings.dtype if embeddings.dtype.kind == "f" else np.float32
        return cls(*embeddings.shape, padding_idx=padding_idx, max_norm=max_norm,
                   norm_type=norm_type, scale_grad_by_freq=scale_grad_by_freq, sparse=sparse,
                   _weight=embeddings, _freeze=freeze, dtype=dtype)

    def forward(self, x: NDArray) -> NDArray:
        ids = self._check_ids(x)
        self._renorm(ids)
        y = self.weight.data.take(ids, axis=0)  # (*, D)
        self._ids = ids if self.caching else None
        return y

    def backward(self, grad_out: NDArray) -> None:
        ids = self._saved(self._ids)
        grad_out = check_grad(self, grad_out, ids.shape + (self.embedding_dim,))
        if self.weight.requires_grad:
            self._weight_grad(ids.reshape(-1), grad_out.reshape(-1, self.embedding_dim))
        return None


class EmbeddingBag(_Table):
    """Sums, means or maxima of bags of embeddings, as ``torch.nn.EmbeddingBag``.

    Bag b holds the ids ``input[offsets[b]:offsets[b + 1]]`` (1-d input with ``offsets``)
    or row b of a 2-d input (fixed-length bags). With ``mode='sum'``:
    ``y[b] = sum_{k in b} w_k * weight[ids_k]`` (``w_k = per_sample_weights[k]``, else 1);
    ``'mean'`` divides by the bag's number of ids; ``'max'`` takes the element-wise
    maximum. Ids equal to ``padding_idx`` are left out of their bag (and of its count); an
    empty bag gives zeros.

    Backward: ``'sum'``/``'mean'`` add ``w_k * grad_out[b]`` (divided by the count for the
    mean) into the row of each id of bag b; ``'max'`` sends each ``grad_out[b, d]`` to the
    first id of the bag that attained the maximum in dimension d.
    ``per_sample_weights`` gets ``dot(grad_out[b], weight[ids_k])``, left in
    ``layer.grad_per_sample_weights``.

    Args:
        num_embeddings: size of the table; the other table arguments (embedding_dim,
            max_norm, norm_type, scale_grad_by_freq, sparse, padding_idx, _weight) are as
            ``Embedding``'s, in PyTorch's order.
        mode: ``'mean'`` (default), ``'sum'`` or ``'max'``.
        include_last_offset: ``offsets`` has B + 1 entries, the last one the end of the
            last bag (CSR style).
        dtype: parameter dtype (float32 by default).
        rng: generator or seed for the initial weights.

    Shape:
        - input: ``(B, L)`` ids, or ``(M,)`` ids with ``offsets`` ``(B,)`` (``(B + 1,)``)
        - per_sample_weights: the input's shape (``mode='sum'`` only)
        - output: ``(B, embedding_dim)``; weight: ``(num_embeddings, embedding_dim)``

    Forward caches the flat ids, the bag of each id, the per-id weights and for ``'max'``
    the position of each maximum.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, max_norm: float | None = None,
                 norm_type: float = 2.0, scale_grad_by_freq: bool = False, mode: str = "mean",
                 sparse: bool = False, _weight=None, include_last_offset: bool = False,
                 padding_idx: int | None = None, dtype: DTypeLike = np.float32, rng=None):
        if mode not in ("sum", "mean", "max"):
            raise ValueError(f"EmbeddingBag: expected mode 'sum', 'mean' or 'max', got {mode!r}")
        super().__init__(num_embeddings, embedding_dim, padding_idx, max_norm, norm_type,
                         scale_grad_by_freq, sparse, _weight, False, dtype, rng)
        self.mode = mode
        self.include_last_offset = bool(include_last_offset)
        self._cache = None
        self.grad_per_sample_weights = None

    def _bags(self, ids: NDArray, offsets) -> tuple[NDArray, NDArray]:
        """The flat ids and the B + 1 bag boundaries (bag b is ``flat[bounds[b]:bounds[b+1]]``)."""
        if ids.ndim == 2:
            if offsets is not None:
                raise ValueError(f"{self.describe()}: offsets must be None for a 2-d input "
                                 f"(each row is a bag), got offsets")
            b, length = ids.shape
            return ids.reshape(-1), np.arange(b + 1, dtype=np.int64) * length
        if ids.ndim != 1 or offsets is None:
            raise ValueError(f"{self.describe()}: expected a 2-d input (B, L), or a 1-d input "
                             f"with offsets, got input of shape {ids.shape} and offsets "
                             f"{'None' if offsets is None else 'given'}")
        offsets = as_array(self, offsets, "offsets")
        if offsets.ndim != 1 or offsets.dtype.kind not in "iu" or (
                self.include_last_offset and offsets.size == 0):
            raise ValueError(f"{self.describe()}: expected 1-d integer offsets (at least one "
                             f"with include_last_offset), got {offsets.dtype} array of shape "
                             f"{offsets.shape}")
        bounds = offsets if self.include_last_offset else np.r_[offsets, ids.size]
        bounds = bounds.astype(np.int64)
        if bounds[0] != 0 or np.any(np.diff(bounds) < 0) or bounds[-1] > ids.size:
            raise ValueError(f"{self.describe()}: expected offsets starting at 0, "
                             f"non-decreasing and at most {ids.size}, got {offsets.tolist()}")
        return ids[:bounds[-1]], bounds

    def forward(self, x: NDArray, offsets=None, per_sample_weights=None) -> NDArray:
        ids = self._check_ids(x)
        flat, bounds = self._bags(ids, offsets)
        n_bags, dim = bounds.size - 1, self.embedding_dim
        weights = None
        if per_sample_weights is not None:
            if self.mode != "sum":
                raise ValueError(f"{self.describe()}: per_sample_weights is only supported "
                                 f"with mode='sum', got mode={self.mode!r}")
            weights = as_float_input(self, per_sample_weights, "per_sample_weights")
            if weights.shape != ids.shape:
                raise ValueError(f"{self.describe()}: expected per_sample_weights of the "
                                 f"input's shape {ids.shape}, got {weights.shape}")
            weights = weights.reshape(-1)[:flat.size]
        self._renorm(flat)
        sizes = np.diff(bounds)
        bag_of = np.repeat(np.arange(n_bags), sizes)  # (M,) the bag of each id
        keep = np.ones(flat.size, bool) if self.padding_idx is None else flat != self.padding_idx
        counts = np.bincount(bag_of[keep], minlength=n_bags)
        rows = self.weight.data.take(flat, axis=0)  # (M, D)
        coef = keep.astype(rows.dtype) if weights is None else weights * keep
        if self.mode == "mean":
            coef = coef / np.maximum(counts, 1)[bag_of].astype(rows.dtype)
        y = np.zeros((n_bags, dim), dtype=rows.dtype)
        first = np.full((n_bags, dim), -1, dtype=np.int64)  # 'max': where each maximum is
        if self.mode == "max":
            filled = counts > 0  # bags of padding only stay zero
            if filled.any():
                inside = np.flatnonzero(filled[bag_of])  # the ids of filled bags, in order
                sub = np.where(keep[inside, None], rows[inside], -np.inf)
                local_starts = np.r_[0, np.cumsum(sizes[filled])[:-1]]
                maxima = np.maximum.reduceat(sub, local_starts, axis=0)  # (B', D)
                y[filled] = maxima
                local_bag = np.repeat(np.arange(maxima.shape[0]), sizes[filled])
                position = np.where(sub == maxima[local_bag], inside[:, None], flat.size)
                first[filled] = np.minimum.reduceat(position, local_starts, axis=0)
        elif flat.size:
            nonempty = np.flatnonzero(sizes > 0)
            y[nonempty] = np.add.reduceat(rows * coef[:, None], bounds[:-1][nonempty], axis=0)
        self.grad_per_sample_weights = None
        self._cache = (flat, bag_of, coef, first, weights is not None, ids.shape, n_bags) \
            if self.caching else None
        return y

    def backward(self, grad_out: NDArray) -> None:
        flat, bag_of, coef, first, weighted, shape, n_bags = self._saved(self._cache)
        grad_out = check_grad(self, grad_out, (n_bags, self.embedding_dim))
        if self.mode == "max":
            per_lookup = np.zeros((flat.size, self.embedding_dim), dtype=grad_out.dtype)
            bags, dims = np.nonzero(first >= 0)
            per_lookup[first[bags, dims], dims] = grad_out[bags, dims]
        else:
            per_lookup = grad_out[bag_of] * coef[:, None]  # (M, D)
        if weighted:  # d y[b] / d w_k = weight[ids_k] (zero for padding ids)
            rows = self.weight.data.take(flat, axis=0)
            grad_w = np.zeros(int(np.prod(shape)), dtype=grad_out.dtype)
            grad_w[:flat.size] = np.einsum("md,md->m", grad_out[bag_of], rows)
            if self.padding_idx is not None:
                grad_w[:flat.size][flat == self.padding_idx] = 0
            self.grad_per_sample_weights = grad_w.reshape(shape)
        if self.weight.requires_grad:
            self._weight_grad(flat, per_lookup)
        return None

    def extra_repr(self) -> str:
        return super().extra_repr() + f", mode={self.mode!r}"
