"""Data-parallel training over MPI (``mpi4py``): ``mpiexec -n K python train.py``.

    import handgrad as hg
    from handgrad import distributed as dist

    model = dist.convert_sync_batchnorm(build_model())   # optional: global BatchNorm stats
    ddp = dist.DistributedDataParallel(model)            # rank 0's weights on every rank
    sampler = hg.data.DistributedSampler(train_set, dist.world_size(), dist.rank())
    loader = hg.data.DataLoader(train_set, batch_size=global_batch // dist.world_size(),
                                sampler=sampler)
    hg.fit(ddp, loss, optimizer, loader, epochs=10,
           callbacks=[checkpoint] if dist.is_main_process() else [])

Without an MPI launcher (or with one process) everything runs on the single-process path and
mpi4py is never imported. See ``docs/distributed.md``.
"""

from .comm import Communicator, init, is_main_process, rank, world, world_size
from .ddp import DistributedDataParallel
from .sync_batchnorm import SyncBatchNorm, convert_sync_batchnorm

__all__ = ["init", "rank", "world_size", "world", "is_main_process", "Communicator",
           "DistributedDataParallel", "SyncBatchNorm", "convert_sync_batchnorm"]
