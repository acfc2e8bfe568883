"""Samplers: the order in which a ``DataLoader`` visits a dataset's indices.

``DistributedSampler`` gives each process of a data-parallel run its own shard, with
PyTorch's semantics (``torch.utils.data.DistributedSampler``): every epoch the indices are
permuted with a generator seeded by ``seed + epoch`` (the same on every rank, so the shards
stay disjoint), then dealt out like cards: rank ``r`` takes positions ``r, r + K, r + 2K, ...``
of the permuted list. So the ``b``-th batches of size ``B / K`` on the K ranks hold exactly
the ``b``-th batch of size ``B`` that one process would take from the same permutation.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["DistributedSampler"]


def _mpi_world() -> tuple[int, int]:
    """``(rank, size)`` of an MPI world that is already initialised, else ``(0, 1)``.

    Reads ``mpi4py`` only if the program has imported and initialised it (this module never
    imports it, and ``handgrad.data`` sits below ``handgrad.distributed``).
    """
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None or not mpi.Is_initialized() or mpi.Is_finalized():
        return 0, 1
    return mpi.COMM_WORLD.Get_rank(), mpi.COMM_WORLD.Get_size()


def _check_index(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or (
        high is not None and value >= high
    ):
        bound = f"in [{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"DistributedSampler: expected {name} {bound}, got {value!r}")
    return int(value)


class DistributedSampler:
    """The indices of one rank's shard of a dataset, reshuffled every epoch.

    Args:
        dataset: anything with ``len``.
        num_replicas: the number of processes K (default: the MPI world size when mpi4py is
            initialised, else 1; ``handgrad.distributed.world_size()`` gives it).
        rank: this process's rank in ``[0, K)`` (default: the MPI rank, else 0).
        shuffle: permute the indices every epoch with ``default_rng(seed + epoch)``.
        seed: the shared seed (must be the same on every rank).
        drop_last: drop the tail so that every rank gets ``N // K`` indices; otherwise the
            list is padded by repeating its first indices up to a multiple of K.
        pad: keyword-only, not in PyTorch. ``pad=False`` neither pads nor drops: the shards
            are uneven (sizes differ by at most one) and every index appears exactly once,
            which exact evaluation and runs equal to one process need.

    Call ``set_epoch(epoch)`` before each epoch (``fit`` does it for a ``DataLoader``'s
    sampler); otherwise every epoch has the order of epoch 0.

    Shape: ``len(sampler)`` indices per epoch: ``ceil(N / K)`` (padding), ``N // K``
    (``drop_last``), or ``len(range(rank, N, K))`` (``pad=False``).
    """

    def __init__(self, dataset: Any, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False, *,
                 pad: bool = True):
        world_rank, world_size = _mpi_world()
        self.num_replicas = _check_index(
            "num_replicas", world_size if num_replicas is None else num_replicas, 1)
        self.rank = _check_index("rank", world_rank if rank is None else rank, 0,
                                 self.num_replicas)
        self.dataset = dataset
        self.shuffle = bool(shuffle)
        self.seed = _check_index("seed", seed, 0)
        self.drop_last = bool(drop_last)
        self.pad = bool(pad)
        self.epoch = 0
        n, k = len(dataset), self.num_replicas
        if self.drop_last:
            self.total_size = n - n % k
        elif self.pad:
            self.total_size = math.ceil(n / k) * k
        else:
            self.total_size = n
        if self.drop_last and self.total_size == 0:
            raise ValueError(f"DistributedSampler: drop_last=True leaves no sample of the "
                             f"dataset's {n} for each of {k} replicas")

    def set_epoch(self, epoch: int) -> None:
        """Use the order of this epoch (``seed + epoch`` seeds the permutation)."""
        self.epoch = _check_index("epoch", epoch, 0)

    def indices(self) -> NDArray:
        """This rank's indices for the current epoch (an int64 array)."""
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            order = np.arange(n)
        if self.total_size > n:  # padding: repeat the start of the list (as often as needed)
            order = np.resize(order, self.total_size)
        else:
            order = order[:self.total_size]
        return order[self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return len(range(self.rank, self.total_size, self.num_replicas))

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seed = _check_index("seed", state.get("seed", self.seed), 0)
        self.set_epoch(state.get("epoch", self.epoch))

    def __repr__(self) -> str:
        return (f"DistributedSampler(num_replicas={self.num_replicas}, rank={self.rank}, "
                f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last}, "
                f"pad={self.pad})")
