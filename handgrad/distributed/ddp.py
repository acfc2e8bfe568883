"""DistributedDataParallel: one model replica per process, gradients averaged over MPI.

Each rank runs forward and backward on its own shard of the global batch; before the
optimizer step the gradients of all ranks are combined with **one** ``MPI_Allreduce`` (or
one per bucket of ``bucket_cap_mb``) over a flat buffer per dtype, in place and in the
gradients' dtype. Rank ``r`` with ``n_r`` samples holds the gradient ``g_r`` of its mean loss;
the buffer carries ``n_r * g_r`` and, in a last slot, ``n_r``; after the sum every rank holds

    g = sum_r n_r g_r / sum_r n_r,

the gradient of the mean loss over the whole global batch, also when the shards are uneven
(a mean of the ranks' means would weight the samples of a small shard more).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..layer import Layer
from ..layers import Dropout
from ..layers.recurrent import _RNNBase
from ..random import rng_state, set_rng_state
from .comm import Communicator, world


def _signature(module: Layer) -> list[str]:
    rows = [f"parameter {name} {tuple(p.shape)} {p.dtype} requires_grad={p.requires_grad}"
            for name, p in module.named_parameters()]
    rows += [f"buffer {name} {tuple(b.shape)} {b.dtype}" for name, b in module.named_buffers()
             if b is not None]
    rows += [f"layer {name or '(model)'} {type(m).__name__}" for name, m in module.named_modules()]
    return rows


def _generators(module: Layer) -> list[np.random.Generator]:
    """The generators layers keep as attributes (dropout masks), in module order."""
    return [value for m in module.modules() for value in vars(m).values()
            if isinstance(value, np.random.Generator)]


def _sharded(layer: Layer) -> bool:
    """Layers that draw random masks per sample and take a ``shard`` (Dropout; RNN, LSTM and
    GRU with dropout between layers)."""
    if isinstance(layer, _RNNBase):
        return layer.dropout > 0 and layer.num_layers > 1
    return isinstance(layer, Dropout)


class _FlatGradients:
    """One dtype's gradients in one flat buffer: ``[grads..., has-grad flags..., count]``."""

    def __init__(self, params: list, bucket_elements: int | None):
        dtype = params[0].data.dtype
        sizes = [p.size for p in params]
        bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()
        self.params = params
        self.size = bounds[-1]
        self.buffer = np.zeros(self.size + len(params) + 1, dtype)
        self.views = [self.buffer[lo:hi].reshape(p.shape)
                      for p, lo, hi in zip(params, bounds[:-1], bounds[1:])]
        self.flags = self.buffer[self.size:self.size + len(params)]
        n = self.buffer.size
        step = n if not bucket_elements else max(1, bucket_elements)
        self.buckets = [(lo, min(lo + step, n)) for lo in range(0, n, step)]

    def holds(self, params: list) -> bool:
        return len(params) == len(self.params) and all(
            p is q for p, q in zip(params, self.params))


class DistributedDataParallel(Layer):
    """Data-parallel training of ``module`` on every rank of an MPI run.

    At construction the parameters, buffers and layer generators (dropout) of rank 0 are
    broadcast to every rank, after a check that every rank built the same architecture
    (a clear ``ValueError`` naming the first difference otherwise). Then:

    * ``forward(x)`` runs the module on this rank's shard; in training it also gathers the
      ranks' batch sizes (one small ``Allgather``) so that ``Dropout`` layers (and the
      dropout between stacked RNN/LSTM/GRU layers) draw the mask of the whole global batch
      and keep their rows: K ranks draw exactly one process's masks when the data is dealt
      out like ``DistributedSampler`` does;
    * ``backward(g)`` runs the module's backward and then ``reduce_gradients()``, unless
      inside ``with ddp.no_sync():`` (gradient accumulation: the gradients add up locally
      and the next reducing backward combines them);
    * ``reduce_gradients(samples=None)``: the count-weighted average above (``samples``:
      the samples behind this rank's gradient; by default those of the training forwards
      since the last reduction).

    Args:
        module: the model (identical architecture on every rank).
        dim: the batch axis of the inputs (0; 1 for ``(T, N, F)`` sequences).
        broadcast_buffers: broadcast the buffers from rank 0 at construction. (PyTorch
            re-broadcasts them before every forward; handgrad does not, so a plain
            ``BatchNorm`` keeps per-rank running statistics: use ``convert_sync_batchnorm``.)
        process_group: a ``handgrad.distributed.Communicator`` (default: the MPI world; on a
            single process everything is local and nothing imports mpi4py).
        bucket_cap_mb: reduce in buckets of at most this many MB (default: one Allreduce
            per dtype for the whole model).

    ``state_dict``/``load_state_dict`` are the module's (no ``module.`` prefix), so
    checkpoints load with or without the wrapper. ``stats`` holds ``reductions``,
    ``bytes`` and ``seconds`` of the gradient reductions.

    Shape: those of ``module`` (this rank's shard of the batch along ``dim``).
    Caches what ``module`` caches and this rank's sample count.
    """

    def __init__(self, module: Layer, dim: int = 0, broadcast_buffers: bool = True,
                 process_group: Communicator | None = None, bucket_cap_mb: float | None = None):
        super().__init__()
        if not isinstance(module, Layer):
            raise TypeError(f"DistributedDataParallel: expected a handgrad Layer, got "
                            f"{type(module).__name__}")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
            raise ValueError(f"DistributedDataParallel: expected dim >= 0, got {dim!r}")
        if bucket_cap_mb is not None and not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: expected bucket_cap_mb > 0 or None, "
                             f"got {bucket_cap_mb!r}")
        self.module = module
        self.dim = dim
        self.bucket_cap_mb = bucket_cap_mb
        self.comm = process_group if process_group is not None else world()
        self.rank = 0 if self.comm is None else self.comm.rank
        self.world_size = 1 if self.comm is None else self.comm.size
        self.stats = {"reductions": 0, "bytes": 0, "seconds": 0.0}
        self._sync = True
        self._pending = 0
        self._total = 0
        self._flat: dict[np.dtype, _FlatGradients] = {}
        # No list of the dropout layers is kept: fit finds generators through attributes,
        # and the wrapper must not change their order in checkpoints.
        self._has_dropout = any(_sharded(m) for m in module.modules())
        if self.comm is not None:
            self._check_same_model()
            self._broadcast_state(broadcast_buffers)

    # ------------------------------------------------------------------ set-up
    def _check_same_model(self) -> None:
        rows = _signature(self.module)
        digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()
        digests = self.comm.allgather_object(digest)
        if len(set(digests)) == 1:
            return
        everyone = self.comm.allgather_object(rows)
        for r, other in enumerate(everyone):
            if other != everyone[0]:
                diff = next((f"rank 0 has '{a}', rank {r} has '{b}'"
                             for a, b in zip(everyone[0], other) if a != b),
                            f"rank 0 has {len(everyone[0])} entries, rank {r} {len(other)}")
                raise ValueError(f"DistributedDataParallel: the ranks built different models "
                                 f"({diff}); build the same architecture and dtype on "
                                 f"every rank")

    def _broadcast_state(self, buffers: bool) -> None:
        for p in self.module.parameters():
            self.comm.bcast_(p.data)
        if buffers:
            for b in self.module.buffers():
                if b is not None:
                    self.comm.bcast_(b)
        generators = _generators(self.module)
        states = self.comm.bcast_object([rng_state(g) for g in generators])
        for generator, state in zip(generators, states):
            set_rng_state(generator, state)

    # ------------------------------------------------------------------ state: the module's
    def state_dict(self):
        return self.module.state_dict()

    def load_state_dict(self, state_dict: Any, strict: bool = True):
        return self.module.load_state_dict(state_dict, strict=strict)

    def _set_needs_input_grad(self, needed: bool) -> None:
        super()._set_needs_input_grad(needed)
        self.module.needs_input_grad = needed

    # ------------------------------------------------------------------ forward/backward
    def forward(self, x: NDArray, *args: Any, **kwargs: Any) -> Any:
        if self.training:
            n = int(np.shape(x)[self.dim]) if np.ndim(x) > self.dim else 1
            self._pending += n
            if self.comm is not None and self._has_dropout:
                self._shard_dropouts(n)
        return self.module(x, *args, **kwargs)

    def _shard_dropouts(self, n: int) -> None:
        counts = self.comm.allgather(np.array([n], np.int64), name="Allgather(batch sizes)")
        counts = counts.reshape(-1)
        total, k, r = int(counts.sum()), self.world_size, self.rank
        if all(int(c) == len(range(i, total, k)) for i, c in enumerate(counts)):
            index = np.arange(r, total, k)  # dealt out like DistributedSampler
        else:
            start = int(counts[:r].sum())
            index = np.arange(start, start + n)
        for layer in self.module.modules():
            if _sharded(layer):
                layer.shard = (total, index)

    def backward(self, grad_out: NDArray, *args: Any, **kwargs: Any) -> Any:
        grad_x = self.module.backward(grad_out, *args, **kwargs)
        if self._sync:
            self.reduce_gradients()
        return grad_x

    @contextmanager
    def no_sync(self) -> Iterator[None]:
        """Backward passes inside add up gradients locally, without reducing them."""
        previous, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = previous

    # ------------------------------------------------------------------ the reduction
    def _flat_for(self, params: list) -> list[_FlatGradients]:
        by_dtype: dict[np.dtype, list] = {}
        for p in params:
            by_dtype.setdefault(p.data.dtype, []).append(p)
        out = []
        for dtype, group in by_dtype.items():
            flat = self._flat.get(dtype)
            if flat is None or not flat.holds(group):
                cap = None
                if self.bucket_cap_mb is not None:
                    cap = int(self.bucket_cap_mb * 2 ** 20) // dtype.itemsize
                flat = self._flat[dtype] = _FlatGradients(group, cap)
            out.append(flat)
        return out

    def reduce_gradients(self, samples: int | None = None, average: bool = True) -> int:
        """Combine the ranks' gradients in place; returns the total sample count.

        With ``average`` (a mean loss) every rank's gradient is weighted by its share of the
        samples; without it (a summed loss) the gradients are summed.
        """
        samples = self._pending if samples is None else int(samples)
        self._pending = 0
        if self.comm is None:
            return samples
        started = time.perf_counter()
        params = [p for p in self.module.parameters() if p.requires_grad]
        if not params:
            return samples
        for flat in self._flat_for(params):
            self._reduce(flat, samples, average)
        self.stats["reductions"] += 1
        self.stats["seconds"] += time.perf_counter() - started
        return self._total

    def _reduce(self, flat: _FlatGradients, samples: int, average: bool) -> None:
        scale = flat.buffer.dtype.type(samples if average else 1)
        for i, (p, view) in enumerate(zip(flat.params, flat.views)):
            if p.grad is None:
                view.fill(0)
                flat.flags[i] = 0
            else:
                if p.grad is not view:
                    np.copyto(view, p.grad)
                flat.flags[i] = 1
        if average:
            flat.buffer[:flat.size] *= scale
        flat.buffer[-1] = samples
        for lo, hi in flat.buckets:
            self.comm.allreduce_(flat.buffer[lo:hi], name="Allreduce(gradients)")
        self.stats["bytes"] += flat.buffer.nbytes
        total = float(flat.buffer[-1])
        if average:
            if total <= 0:
                raise ValueError("DistributedDataParallel: no rank had samples behind its "
                                 "gradient (reduce_gradients after no training forward)")
            flat.buffer[:flat.size] *= flat.buffer.dtype.type(1.0 / total)
        self._total = int(round(total))
        for i, (p, view) in enumerate(zip(flat.params, flat.views)):
            p.grad = view if flat.flags[i] > 0 else None

    # ------------------------------------------------------------------ helpers for fit
    def all_sum(self, values: NDArray) -> NDArray:
        """Element-wise sum over the ranks of a small float64 array (metrics, counts)."""
        values = np.array(values, dtype=np.float64)
        return values if self.comm is None else self.comm.allreduce_(values,
                                                                     name="Allreduce(metrics)")

    def check_same(self, value: int, what: str) -> None:
        """Raise ValueError on every rank unless all ranks pass the same ``value``."""
        if self.comm is None:
            return
        values = self.comm.allgather(np.array([value], np.int64)).reshape(-1).tolist()
        if len(set(values)) > 1:
            raise ValueError(
                f"DistributedDataParallel: the ranks disagree on {what}: "
                + ", ".join(f"rank {r} has {v}" for r, v in enumerate(values))
                + "; shard the data with DistributedSampler (padding or drop_last) so that "
                  "every rank runs the same number of steps")

    def extra_repr(self) -> str:
        return f"world_size={self.world_size}, rank={self.rank}, dim={self.dim}"


__all__ = ["DistributedDataParallel"]
