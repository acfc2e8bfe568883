"""The MPI world of a data-parallel run: ``init``, ``rank``, ``world_size`` and the guards.

Nothing here imports ``mpi4py`` until a run really has more than one process: a process
started by ``mpiexec -n K`` (K > 1) sees the launcher's environment (``PMI_SIZE`` from MPICH's
Hydra or Slurm's PMI, ``OMPI_COMM_WORLD_SIZE`` from Open MPI) and initialises MPI on first
use; a plain ``python`` process (or ``mpiexec -n 1``) stays on the single-process path, where
``rank() == 0`` and ``world_size() == 1``.

Two guards make a broken run end instead of hanging in a collective operation:

* an **abort hook**: an exception that escapes on any rank prints its traceback with the
  rank and calls ``MPI_Abort``, which ends every rank of the job (as ``python -m mpi4py``
  does);
* a **watchdog**: a collective that waits longer than ``timeout`` seconds (a rank died
  without an exception, or the ranks took different code paths) prints which operation
  waited and aborts the job. ``init(timeout=...)``, else the ``HANDGRAD_MPI_TIMEOUT``
  environment variable, else :data:`DEFAULT_TIMEOUT`; ``0`` switches it off.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from typing import Any

import numpy as np

from .._runtime.threads import launcher_world_size

DEFAULT_TIMEOUT = 1800.0  # seconds a collective may wait (data loading on rank 0 included)

_world: Communicator | None = None


class Communicator:
    """The collective operations handgrad uses, over an ``mpi4py`` communicator.

    Array operations work in place on contiguous NumPy arrays of the arrays' own dtype; each
    call is timed by the watchdog and counted in ``stats`` (``calls``, ``bytes``, ``seconds``
    per operation name).
    """

    def __init__(self, comm: Any, mpi: Any, timeout: float):
        self.comm = comm
        self.mpi = mpi
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.timeout = float(timeout)
        self.stats: dict[str, list[float]] = {}
        self._waiting: tuple[str, float] | None = None
        if self.timeout > 0 and self.size > 1:
            threading.Thread(target=self._watch, name="handgrad-mpi-watchdog",
                             daemon=True).start()

    # ------------------------------------------------------------------ guards
    @contextmanager
    def _collective(self, name: str, nbytes: int = 0):
        started = time.perf_counter()
        self._waiting = (name, started)
        try:
            yield
        finally:
            self._waiting = None
            entry = self.stats.setdefault(name, [0, 0, 0.0])
            entry[0] += 1
            entry[1] += nbytes
            entry[2] += time.perf_counter() - started

    def _watch(self) -> None:
        while True:
            time.sleep(min(1.0, self.timeout / 4))
            waiting = self._waiting
            if waiting is not None and time.perf_counter() - waiting[1] > self.timeout:
                print(f"handgrad.distributed: rank {self.rank} waited more than "
                      f"{self.timeout:g} s in {waiting[0]}: another rank died or took another "
                      f"code path (different data sizes or models); aborting all "
                      f"{self.size} ranks", file=sys.stderr, flush=True)
                self.abort(3)

    def abort(self, code: int = 1) -> None:
        """End every rank of the job now (``MPI_Abort``)."""
        sys.stdout.flush()
        sys.stderr.flush()
        # mpiexec forwards each rank's output asynchronously and drops what it has not
        # forwarded when the job is aborted: give it a moment to pass on the error message.
        time.sleep(0.25)
        self.comm.Abort(code)

    # ------------------------------------------------------------------ collectives
    def allreduce_(self, array: np.ndarray, name: str = "Allreduce") -> np.ndarray:
        """Sum ``array`` over the ranks, in place (``MPI_IN_PLACE``); returns it."""
        with self._collective(name, array.nbytes):
            self.comm.Allreduce(self.mpi.IN_PLACE, array, op=self.mpi.SUM)
        return array

    def allgather(self, array: np.ndarray, name: str = "Allgather") -> np.ndarray:
        """The arrays of every rank stacked: ``(size, *array.shape)`` (same shape on all)."""
        array = np.ascontiguousarray(array)
        out = np.empty((self.size, *array.shape), array.dtype)
        with self._collective(name, array.nbytes):
            self.comm.Allgather(array, out)
        return out

    def bcast_(self, array: np.ndarray, root: int = 0, name: str = "Bcast") -> np.ndarray:
        """Overwrite ``array`` with rank ``root``'s values, in place; returns it."""
        with self._collective(name, array.nbytes):
            self.comm.Bcast(array, root=root)
        return array

    def bcast_object(self, value: Any, root: int = 0) -> Any:
        """A small Python object (pickled by mpi4py) from rank ``root`` to every rank."""
        with self._collective("bcast"):
            return self.comm.bcast(value, root=root)

    def allgather_object(self, value: Any) -> list[Any]:
        """A small Python object from every rank, in rank order."""
        with self._collective("allgather"):
            return self.comm.allgather(value)

    def barrier(self) -> None:
        with self._collective("Barrier"):
            self.comm.Barrier()


def _abort_hook(communicator: Communicator, previous: Any):
    def hook(kind, value, tb):
        # One write with the message in it: the rank that aborts first may end this process
        # before a multi-line traceback is out.
        sys.stderr.write(f"handgrad.distributed: rank {communicator.rank} of "
                         f"{communicator.size} raised {kind.__name__}; aborting every rank: "
                         f"{value}\n")
        sys.stderr.flush()
        traceback.print_exception(kind, value, tb, file=sys.stderr)
        if communicator.size > 1 and not issubclass(kind, KeyboardInterrupt):
            communicator.abort(1)
        previous(kind, value, tb)

    return hook


def _timeout_from_environment() -> float:
    value = os.environ.get("HANDGRAD_MPI_TIMEOUT", "").strip()
    if not value:
        return DEFAULT_TIMEOUT
    try:
        timeout = float(value)
    except ValueError:
        raise ValueError(f"HANDGRAD_MPI_TIMEOUT: expected seconds (0: no timeout), got "
                         f"{value!r}") from None
    if timeout < 0:
        raise ValueError(f"HANDGRAD_MPI_TIMEOUT: expected seconds >= 0, got {value!r}")
    return timeout


def init(timeout: float | None = None, abort_on_error: bool = True) -> Communicator:
    """Initialise MPI (importing ``mpi4py``) and return the world communicator.

    Safe to call more than once (later calls return the same communicator). With
    ``abort_on_error`` an exception escaping on any rank ends all ranks (``MPI_Abort``).

    Raises:
        ImportError: mpi4py is not installed (``pip install handgrad[mpi]``).
    """
    global _world
    if _world is not None:
        return _world
    if timeout is None:
        timeout = _timeout_from_environment()
    elif isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise ValueError(f"init: expected timeout in seconds >= 0 (0: none), got {timeout!r}")
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(
            "handgrad.distributed needs mpi4py and an MPI library: pip install handgrad[mpi] "
            f"(mpi4py and the mpich wheel); {error}"
        ) from None
    _world = Communicator(MPI.COMM_WORLD, MPI, timeout)
    if abort_on_error:
        sys.excepthook = _abort_hook(_world, sys.excepthook)
    return _world


def world() -> Communicator | None:
    """The communicator when this run has several processes (initialising MPI if the
    launcher started more than one), else ``None``: the single-process path."""
    if _world is not None:
        return _world if _world.size > 1 else None
    mpi = sys.modules.get("mpi4py.MPI")
    if (mpi is not None and mpi.Is_initialized()) or launcher_world_size() > 1:
        communicator = init()
        return communicator if communicator.size > 1 else None
    return None


def rank() -> int:
    """This process's rank (0 without MPI)."""
    communicator = world()
    return 0 if communicator is None else communicator.rank


def world_size() -> int:
    """The number of processes in the run (1 without MPI)."""
    communicator = world()
    return 1 if communicator is None else communicator.size


def is_main_process() -> bool:
    """True on rank 0, which writes checkpoints and logs."""
    return rank() == 0


__all__ = ["Communicator", "init", "world", "rank", "world_size", "is_main_process",
           "DEFAULT_TIMEOUT"]
