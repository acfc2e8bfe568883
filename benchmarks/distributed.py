"""``python -m benchmarks distributed``: data-parallel scaling on this machine over MPI.

For K = 1 and 2 ranks (``--ranks``), one thread per rank, every workload trains a few epochs
through ``handgrad.fit`` with ``DistributedDataParallel`` on the same global batch, and rank 0
reports:

* the median time per epoch (the first epoch, which warms up, is left out) and the scaling
  efficiency ``T_1 / (K * T_K)`` (strong scaling: the global batch is fixed);
* the time per step outside the gradient reduction (``rest``: forward, backward, optimizer,
  data), the bytes reduced per step (the flat gradient buffer) and the time per step spent
  in that ``Allreduce`` inside training (which includes waiting for the slowest rank), next
  to the time of the same ``Allreduce`` alone in a loop (the pure communication cost).

Timings on a shared machine are noisy (other jobs take cores): the table prints the load
average before and after, and ``--repeats`` reruns each point and keeps the fastest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {
    # name: (what, samples per epoch, global batch)
    "mlp": ("Linear 784-256-256-10, ReLU (269k parameters)", 2048, 128),
    "lenet": ("LeNet-5 on 28x28 images (61.7k parameters)", 1024, 64),
}


# ---------------------------------------------------------------------------- one rank
def _build(name: str, rng):
    from handgrad.models.cnn import lenet5
    from handgrad.models.mlp import mlp

    return mlp(rng=rng) if name == "mlp" else lenet5(rng=rng)


def worker(name: str, epochs: int) -> None:
    import numpy as np

    import handgrad as hg
    from handgrad import distributed as dist

    what, samples, batch = WORKLOADS[name]
    comm = dist.world()
    k, r = (1, 0) if comm is None else (comm.size, comm.rank)
    rng = np.random.default_rng(0)
    shape = (samples, 784) if name == "mlp" else (samples, 1, 28, 28)
    x = rng.normal(size=shape).astype(np.float32)
    y = rng.integers(0, 10, size=samples)
    model = dist.DistributedDataParallel(_build(name, rng))
    sampler = hg.data.DistributedSampler(x, k, r, seed=1, pad=False)
    loader = hg.data.DataLoader((x, y), batch_size=batch // k, sampler=sampler)
    optimizer = hg.optim.Adam(model.parameters(), lr=1e-3)
    history = hg.fit(model, hg.losses.CrossEntropyLoss(), optimizer, loader, epochs=epochs,
                     progress=False)
    times = sorted(history["time"][1:])
    steps = len(loader) * epochs
    reduced = sum(flat.buffer.nbytes for flat in model._flat.values())
    alone = 0.0
    if comm is not None:
        buffer = next(iter(model._flat.values())).buffer.copy()
        comm.barrier()
        started = time.perf_counter()
        for _ in range(50):
            comm.allreduce_(buffer)
        alone = (time.perf_counter() - started) / 50
    if r == 0:
        print("RESULT " + json.dumps({
            "workload": name, "ranks": k, "epoch_s": times[len(times) // 2],
            "steps_per_epoch": len(loader), "bytes_per_step": reduced if comm else 0,
            "allreduce_ms_in_training": 1e3 * model.stats["seconds"] / steps if comm else 0.0,
            "allreduce_ms_alone": 1e3 * alone,
            "threads": hg.get_num_threads()}), flush=True)


# ---------------------------------------------------------------------------- launcher
def _loadavg() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "?"


def _run(name: str, ranks: int, epochs: int, mpiexec: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                     "HANDGRAD_NUM_THREADS"):
        env[variable] = "1"  # one thread per rank, also for K = 1
    command = [sys.executable, "-m", "benchmarks.distributed", "--worker", name,
               "--epochs", str(epochs)]
    if ranks > 1:
        command = [mpiexec, "-n", str(ranks), *command]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900,
                          cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[0][len("RESULT "):])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks distributed",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--workloads", nargs="+", choices=sorted(WORKLOADS),
                        default=sorted(WORKLOADS))
    parser.add_argument("--epochs", type=int, default=4, help="per run; the first is warm-up")
    parser.add_argument("--repeats", type=int, default=1, help="keep the fastest of n runs")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.worker:
        worker(opts.worker, opts.epochs)
        return 0
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None or any(k > 1 for k in opts.ranks) and _missing_mpi4py():
        print("python -m benchmarks distributed needs mpi4py and mpiexec: "
              "pip install handgrad[mpi]")
        return 1
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
          f"1 thread per rank, load average {_loadavg()} (1, 5, 15 min)")
    header = (f"{'workload':<8} {'ranks':>5} {'epoch s':>8} {'speedup':>8} {'efficiency':>10} "
              f"{'steps':>6} {'rest ms/step':>12} {'MB/step':>8} {'allreduce ms/step':>18} "
              f"{'alone ms':>9}")
    print(header)
    print("-" * len(header))
    for name in opts.workloads:
        base = None
        for ranks in opts.ranks:
            runs = [_run(name, ranks, opts.epochs, mpiexec) for _ in range(opts.repeats)]
            point = min(runs, key=lambda p: p["epoch_s"])
            if base is None:
                base = point["epoch_s"] * ranks if ranks == 1 else None
            speedup = base / point["epoch_s"] if base else float("nan")
            step_ms = 1e3 * point["epoch_s"] / point["steps_per_epoch"]
            rest = step_ms - point["allreduce_ms_in_training"]
            print(f"{name:<8} {ranks:>5} {point['epoch_s']:>8.3f} {speedup:>8.2f} "
                  f"{speedup / ranks:>10.2f} {point['steps_per_epoch']:>6} {rest:>12.2f} "
                  f"{point['bytes_per_step'] / 1e6:>8.3f} "
                  f"{point['allreduce_ms_in_training']:>18.3f} "
                  f"{point['allreduce_ms_alone']:>9.3f}", flush=True)
    for name in opts.workloads:
        print(f"  {name}: {WORKLOADS[name][0]}, {WORKLOADS[name][1]} samples per epoch, "
              f"global batch {WORKLOADS[name][2]}, Adam, float32")
    print(f"load average at the end {_loadavg()}; the machine is shared, so treat single "
          f"runs as noisy (--repeats N keeps the fastest)")
    return 0


def _missing_mpi4py() -> bool:
    import importlib.util

    return importlib.util.find_spec("mpi4py") is None


if __name__ == "__main__":
    sys.exit(main())
