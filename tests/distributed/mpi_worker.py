"""What the tests in this folder run under ``mpiexec -n K``: ``python mpi_worker.py SCENARIO``.

Rank 0 prints one JSON line ``RESULT {...}`` with what the test asserts on. Scenarios:

* ``train DTYPE MODEL N B [DIR]``: K ranks train MODEL (``cnn``: conv, BatchNorm converted
  to SyncBatchNorm, dropout; ``lstm``: a 2-layer CharLM with dropout between the layers)
  data-parallel on N samples with global batch B (callbacks write to DIR); rank 0 then
  trains the same model alone (plain BatchNorm) and reports the largest relative difference
  of every parameter and buffer, and of the epoch losses;
* ``syncbn DTYPE N``: one SyncBatchNorm forward/backward on each rank's rows of a global batch
  (mean 1e4) against BatchNorm2d on the whole batch;
* ``raise`` / ``hang`` / ``nan``: rank 1 raises (or sleeps, or gets NaN data) in training;
* ``mismatch``: rank 1 builds a wider model.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

import handgrad as hg
from handgrad import distributed as dist
from handgrad.data import DataLoader, DistributedSampler
from handgrad.losses import CrossEntropyLoss
from handgrad.training import Callback, CSVLogger, ModelCheckpoint

EPOCHS = 3


def cnn(dtype, seed, width=4):
    rng = np.random.default_rng(seed)
    return hg.Sequential(
        hg.Conv2d(1, width, 3, padding=1, bias=False, dtype=dtype, rng=rng),
        hg.BatchNorm2d(width, dtype=dtype), hg.ReLU(), hg.MaxPool2d(2), hg.Flatten(),
        hg.Dropout(0.3, rng=seed + 100), hg.Linear(width * 4 * 4, 3, dtype=dtype, rng=rng),
    )


def data(kind, n, dtype):
    rng = np.random.default_rng(7)
    if kind == "cnn":
        x = rng.normal(size=(n, 1, 8, 8)).astype(dtype)
        y = (x[:, 0, :4].sum(axis=(1, 2)) > 0).astype(np.int64) + (x[:, 0, 0, 0] > 1)
        return x, y
    ids = rng.integers(0, 6, size=(n, 6))
    return ids, np.roll(ids, -1, axis=1)


def build(kind, dtype, seed):
    if kind == "cnn":
        return cnn(dtype, seed)
    return hg.models.CharLM(6, embedding_dim=4, hidden_size=5, num_layers=2, dropout=0.25,
                            dtype=dtype, rng=seed)


def train(model, x, y, batch, replicas, rank, callbacks=()):
    sampler = DistributedSampler(x, replicas, rank, shuffle=True, seed=3, pad=False)
    loader = DataLoader((x, y), batch_size=batch // replicas, sampler=sampler)
    if isinstance(model, dist.DistributedDataParallel):
        kind = "lstm" if isinstance(model.module, hg.models.CharLM) else "cnn"
    else:
        kind = "lstm" if isinstance(model, hg.models.CharLM) else "cnn"
    # The LSTM trains with SGD: under Adam, one process alone with each batch's rows in
    # reverse order ends 9e-11 (relative) away in the output bias, whose gradient is small by
    # cancellation (softmax - one-hot summed over tokens) and which Adam divides by its own
    # size; SGD keeps round-off at round-off (measured: 0 and 1e-16 for the same check).
    if kind == "cnn":
        optimizer = hg.optim.Adam(model.parameters(), lr=0.01)
    else:
        optimizer = hg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    history = hg.fit(model, CrossEntropyLoss(), optimizer, loader, epochs=EPOCHS,
                     val_data=(x[:10], y[:10]), progress=False, callbacks=callbacks)
    return history["loss"] + history["val_loss"]


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)) if a.size else 0.0


def scenario_train(dtype, kind, n, batch, folder=None):
    comm = dist.init()
    dtype = np.dtype(dtype)
    x, y = data(kind, n, dtype)
    model = build(kind, dtype, seed=comm.rank)  # rank 0's weights must win the broadcast
    ddp = dist.DistributedDataParallel(dist.convert_sync_batchnorm(model))
    callbacks = []
    if folder:  # every rank is given the callbacks; rank 0 alone must write
        callbacks = [CSVLogger(f"{folder}/log{comm.rank}.csv"),
                     ModelCheckpoint(f"{folder}/ckpt{comm.rank}")]
    losses = train(ddp, x, y, batch, comm.size, comm.rank, callbacks)
    comm.barrier()
    state = ddp.state_dict()
    shard = len(DistributedSampler(x, comm.size, comm.rank, pad=False))
    shards = comm.allgather_object(shard)
    if comm.rank == 0:
        alone = build(kind, dtype, seed=0)
        single = train(alone, x, y, batch, 1, 0)
        diffs = {k: rel(state[k], v) for k, v in alone.state_dict().items()}
        written = sorted(p.name for p in Path(folder).iterdir()) if folder else []
        report(diffs=diffs, loss_diff=rel(losses, single), shards=shards, written=written,
               dtypes=sorted({str(v.dtype) for v in state.values()}),
               moved=rel(state[next(iter(state))], build(kind, dtype, 0).state_dict()[
                   next(iter(state))]))


def scenario_syncbn(dtype, n):
    comm = dist.init()
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(0)
    x = (1e4 + rng.normal(size=(n, 3, 2, 2))).astype(dtype)
    grad = rng.normal(size=x.shape).astype(dtype)
    rows = np.arange(comm.rank, n, comm.size)
    share = len(rows) / n
    sync = dist.SyncBatchNorm(3, dtype=dtype)
    sync.weight.data[:] = [1.0, 2.0, -0.5]
    y_local = sync(x[rows])
    gx_local = sync.backward(grad[rows] / len(rows)) * share  # local mean loss, weight c_r
    y_all = np.concatenate(comm.allgather_object(y_local))
    gx_all = np.concatenate(comm.allgather_object(gx_local))
    order = np.concatenate(comm.allgather_object(rows))
    pgrads = [ddp_sum(comm, p.grad * share) for p in (sync.weight, sync.bias)]
    if comm.rank == 0:
        bn = hg.BatchNorm2d(3, dtype=dtype)
        bn.weight.data[:] = sync.weight.data
        y = bn(x)
        gx = bn.backward(grad / n)
        report(y=rel(y_all, y[order]), gx=rel(gx_all, gx[order]),
               weight=rel(pgrads[0], bn.weight.grad), bias=rel(pgrads[1], bn.bias.grad),
               running_mean=rel(sync.running_mean, bn.running_mean),
               running_var=rel(sync.running_var, bn.running_var),
               var_positive=bool(np.all(sync.running_var > 0)), dtype=str(y_local.dtype))


def ddp_sum(comm, array):
    return comm.allreduce_(np.array(array, dtype=np.float64))


class Fail(Callback):
    def __init__(self, rank, how):
        super().__init__()
        self.rank, self.how = rank, how

    def on_batch_end(self, batch, logs):
        if self.rank == 1 and batch == 2:
            if self.how == "raise":
                raise RuntimeError("rank 1 fails on purpose")
            time.sleep(600)


def scenario_fail(how):
    comm = dist.init()
    x, y = data("cnn", 64, np.float32)
    if how == "nan" and comm.rank == 1:
        x[:] = np.nan  # rank 1's loss is NaN at its first batch
    ddp = dist.DistributedDataParallel(dist.convert_sync_batchnorm(cnn(np.float32, 0)))
    loader = DataLoader((x, y), batch_size=4, sampler=DistributedSampler(x, seed=1))
    hg.fit(ddp, CrossEntropyLoss(), hg.optim.SGD(ddp.parameters(), lr=0.1), loader,
           epochs=50, progress=False, callbacks=[Fail(comm.rank, how)])
    report(finished=True)


def scenario_mismatch():
    comm = dist.init()
    dist.DistributedDataParallel(cnn(np.float32, 0, width=4 + comm.rank))
    report(finished=True)


def report(**values):
    print("RESULT " + json.dumps(values), flush=True)


if __name__ == "__main__":
    name, *args = sys.argv[1:]
    if name == "train":
        scenario_train(args[0], args[1], int(args[2]), int(args[3]), *args[4:])
    elif name == "syncbn":
        scenario_syncbn(args[0], int(args[1]))
    elif name in ("raise", "hang", "nan"):
        scenario_fail(name)
    else:
        scenario_mismatch()
