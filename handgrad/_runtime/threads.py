"""Threads per process when an MPI launcher starts several handgrad processes on one machine.

Every process of ``mpiexec -n K`` would otherwise start as many BLAS threads (and handgrad
worker threads) as the machine has cores: K times too many. Measured on 2 cores: two ranks
with default BLAS threads ran a training step 17x slower than one rank. So at
``import handgrad``, when the launcher's environment says that ``L > 1`` ranks share this
machine, each process limits itself to ``max(1, cores // L)`` threads (or to the cores the
launcher bound it to, when that is fewer than the machine's):

* ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` are set in the
  environment before NumPy loads its BLAS (``how == "environment"``), or, when NumPy was
  imported first, the loaded BLAS is limited through threadpoolctl (``how == "runtime"``);
* handgrad's own thread count follows BLAS's (``handgrad.ops.parallel``).

A variable the user already set wins (set ``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS``
yourself to choose), and ``HANDGRAD_NO_THREAD_LIMIT=1`` switches this off. The launchers
read: MPICH's Hydra (``MPI_LOCALNRANKS``, ``PMI_SIZE``), Open MPI
(``OMPI_COMM_WORLD_LOCAL_SIZE``, ``OMPI_COMM_WORLD_SIZE``) and Slurm's ``srun``
(``SLURM_NTASKS_PER_NODE``, ``SLURM_NTASKS``). :func:`thread_settings` reports what was
done. Nothing heavy is imported at the top (this runs before NumPy).
"""

from __future__ import annotations

import os
import sys

ENV_VAR = "HANDGRAD_NO_THREAD_LIMIT"
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
WORLD_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS", "PMIX_SIZE")
LOCAL_SIZE_VARIABLES = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE",
                        "SLURM_NTASKS_PER_NODE")

_settings: dict = {}


def _first_int(names: tuple[str, ...]) -> int | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            try:
                return int(value.split("(")[0].split(",")[0])  # Slurm: "2(x3)" or "2,1"
            except ValueError:
                continue
    return None


def launcher_world_size() -> int:
    """The number of processes the MPI launcher started (1 when not launched by one)."""
    return max(1, _first_int(WORLD_SIZE_VARIABLES) or 1)


def local_world_size() -> int:
    """How many of them run on this machine (falls back to the world size)."""
    return max(1, _first_int(LOCAL_SIZE_VARIABLES) or launcher_world_size())


def cores() -> int:
    """The cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def threads_per_rank(local: int) -> int:
    """``cores // local``; a process the launcher already bound to fewer cores than the
    machine has (``srun --cpus-per-task``, ``mpiexec --bind-to``) takes all of its own."""
    own, machine = cores(), os.cpu_count() or 1
    return own if own < machine else max(1, machine // local)


def _apply() -> dict:
    local = local_world_size()
    threads = threads_per_rank(local)
    settings = {"applied": False, "how": None, "threads": None, "local_ranks": local,
                "reason": ""}
    if local <= 1:
        settings["reason"] = "not one of several MPI ranks on this machine"
        return settings
    if os.environ.get(ENV_VAR, "").strip() not in ("", "0"):
        settings["reason"] = f"disabled by {ENV_VAR}"
        return settings
    chosen = [name for name in THREAD_VARIABLES if os.environ.get(name, "").strip()]
    if chosen:
        settings["reason"] = f"{chosen[0]} was already set"
        return settings
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    settings.update(applied=True, threads=threads, reason="ok")
    if "numpy" not in sys.modules:
        settings["how"] = "environment"
        return settings
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)
        settings["how"] = "runtime"
    except Exception as error:  # noqa: BLE001 - no threadpoolctl, or it cannot see the BLAS
        settings.update(applied=False, reason=f"NumPy was imported before handgrad and its "
                                              f"BLAS cannot be limited ({type(error).__name__})")
    return settings


def thread_settings() -> dict:
    """What the import did: ``applied``, ``how`` (``"environment"``/``"runtime"``/None),
    ``threads`` (per process), ``local_ranks`` and ``reason``."""
    return dict(_settings)


_settings.update(_apply())
