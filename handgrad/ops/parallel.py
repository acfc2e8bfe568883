"""Run independent chunks of a kernel side by side on a few threads.

A convolution works through the batch in cache-sized chunks; each chunk is an im2col copy,
one matrix multiply and a strided copy out, and NumPy releases the GIL for all three. Run
one after another, only the multiply uses more than one core (BLAS's own threads, on
operands too small to split well) while every copy runs on one core. ``run_chunks`` instead
hands whole chunks to each thread and makes BLAS single-threaded while they run (restoring
its thread count afterwards), so every core works on every part of the kernel.

How many threads: ``set_num_threads(n)`` (as ``torch.set_num_threads``), else the
``HANDGRAD_NUM_THREADS`` environment variable, else as many as BLAS may use at the moment of
the call. So ``OPENBLAS_NUM_THREADS=1``, ``threadpoolctl.threadpool_limits(1)`` and
``handgrad train --threads 1`` make handgrad serial too. BLAS's thread count is read and
set through threadpoolctl; without it everything runs serially.

Like the scratch buffers, this assumes one thread drives handgrad at a time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TypeVar

import numpy as np

__all__ = ["get_num_threads", "set_num_threads", "run_chunks", "split", "PARALLEL_BYTES",
           "GIL_FREE_SIZE", "ones", "matmul", "channel_sum", "even_ranges"]

# Below this much data a kernel runs on the calling thread (a hand-off costs ~10-25 us).
PARALLEL_BYTES = 1 << 20

# NumPy releases the GIL in gufunc loops (np.matmul, np.vecdot) and reductions only when the
# result has at least this many elements; below it, such a call holds the GIL for all its
# work and threads calling it run one at a time (measured: a (6, L) @ (L, 83) product in two
# threads took 2.1x one thread's time, (6, L) @ (L, 84) 1.1x). np.dot always releases it.
GIL_FREE_SIZE = 500

Chunk = TypeVar("Chunk")

_requested: int | None = None
_blas: list | None = None  # _BlasThreads of the loaded BLAS libraries
_workers: list[_Worker] = []  # this process's worker threads (a forked child has none)
_workers_lock = threading.Lock()  # held while a run_chunks call uses the workers
_local = threading.local()


def _from_environment() -> int | None:
    value = os.environ.get("HANDGRAD_NUM_THREADS", "").strip()
    if not value:
        return None
    try:
        n = int(value)
    except ValueError:
        raise ValueError(
            f"HANDGRAD_NUM_THREADS: expected a positive integer, got {value!r}"
        ) from None
    if n < 1:
        raise ValueError(f"HANDGRAD_NUM_THREADS: expected a positive integer, got {value!r}")
    return n


def set_num_threads(n: int | None) -> None:
    """Use ``n`` threads for chunked kernels (``None``: follow BLAS's thread count again)."""
    global _requested
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"set_num_threads: expected a positive int or None, got {n!r}")
    _requested = n


class _BlasThreads:
    """Read and set one BLAS library's thread count.

    threadpoolctl finds the libraries; for OpenBLAS the two C functions are then called
    directly (threadpoolctl looks their symbols up again on every call, ~1.5 us each,
    eight times per ``run_chunks``). Other libraries go through the controller.
    """

    def __init__(self, controller):
        self.controller = controller
        self._get = self._set = None
        if getattr(controller, "internal_api", None) == "openblas":
            self._get = self._symbol("openblas_get_num_threads")
            self._set = self._symbol("openblas_set_num_threads")
            if self._get is None or self._set is None:
                self._get = self._set = None

    def _symbol(self, name: str):
        library = getattr(self.controller, "dynlib", None)
        # scipy-openblas builds rename their symbols; the renamed forms are tried first so
        # that a plain name cannot be found in another library this one depends on.
        for prefix in ("scipy_", ""):
            for suffix in ("64_", "_64", ""):
                function = getattr(library, prefix + name + suffix, None)
                if function is not None:
                    return function
        return None

    def get(self) -> int:
        if self._get is not None:
            return int(self._get())
        return int(self.controller.num_threads or 1)

    def set(self, n: int) -> None:
        if self._set is not None:
            self._set(n)
        else:
            self.controller.set_num_threads(n)


def _blas_controllers() -> list[_BlasThreads]:
    global _blas
    if _blas is None:
        try:
            import numpy  # noqa: F401  (its BLAS must be loaded to be found)
            from threadpoolctl import ThreadpoolController
            controllers = ThreadpoolController().select(user_api="blas").lib_controllers
            _blas = [_BlasThreads(c) for c in controllers]
        except Exception:  # noqa: BLE001 - no threadpoolctl, or it cannot see the BLAS
            _blas = []
    return _blas


def get_num_threads() -> int:
    """Threads a chunked kernel started now would use (1 inside a running chunk)."""
    if getattr(_local, "busy", False):
        return 1
    blas = _blas_controllers()
    if not blas:
        return 1  # BLAS's threads cannot be limited: chunks on threads would oversubscribe
    requested = _requested if _requested is not None else _from_environment()
    if requested is not None:
        return requested
    return max(1, max(c.get() for c in blas))


class _Worker:
    """A thread that runs one share of a ``run_chunks`` call each time it is started.

    Started and awaited through two plain locks (one futex wake each way): with a
    ``ThreadPoolExecutor`` hand-off (future, condition, work queue) the second thread began
    23-30 us after each call, with the locks 15-25 us.
    """

    def __init__(self, index: int):
        self.index = index
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._job: tuple | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._loop, name=f"handgrad-{index}", daemon=True).start()

    def _loop(self) -> None:
        while True:
            self._go.acquire()
            work, queue = self._job
            try:
                _run_share(work, self.index, queue)
            except BaseException as err:  # noqa: BLE001 - handed to the caller in wait()
                self._error = err
            finally:
                self._job = None
                self._done.release()

    def start(self, work: Callable, queue: _Queue) -> None:
        self._job, self._error = (work, queue), None
        self._go.release()

    def wait(self) -> BaseException | None:
        """Block until the share is done; return the exception it raised, if any."""
        self._done.acquire()
        error, self._error = self._error, None
        return error


def _started_workers(count: int) -> list[_Worker]:
    """``count`` workers of this process, started on first use."""
    while len(_workers) < count:
        _workers.append(_Worker(len(_workers) + 1))
    return _workers[:count]


def _forget_workers() -> None:
    """In a forked child: the parent's threads do not exist there (and the lock may have
    been held by one of them); start afresh."""
    global _workers, _workers_lock
    _workers, _workers_lock = [], threading.Lock()


os.register_at_fork(after_in_child=_forget_workers)


class _Queue:
    """The chunks, handed out one at a time to whichever thread asks first."""

    def __init__(self, chunks: list):
        self._next = iter(chunks)
        self._lock = threading.Lock()
        self.failed = False

    def take(self):
        with self._lock:
            return None if self.failed else next(self._next, None)


def _run_share(work: Callable[[int, Chunk], None], worker: int, queue: _Queue) -> None:
    _local.busy = True
    try:
        while (item := queue.take()) is not None:
            work(worker, item[0])
    except BaseException:
        queue.failed = True  # the other threads stop after their current chunk
        raise
    finally:
        _local.busy = False


def run_chunks(work: Callable[[int, Chunk], None], chunks: Sequence[Chunk],
               threads: int | None = None) -> int:
    """Call ``work(worker, chunk)`` for every chunk; return the number of threads used.

    Each thread takes the next chunk when it is done with one (a thread slowed down by
    other processes does less). ``worker`` is the thread's number (0 is the calling
    thread), so it can key per-thread scratch buffers and partial sums. ``threads``
    defaults to :func:`get_num_threads`. An exception in a chunk stops the others after
    their current chunk and is raised here once all threads have stopped.
    """
    chunks = list(chunks)
    if len(chunks) <= 1:  # nothing to share: no queue, no BLAS thread changes
        for chunk in chunks:
            work(0, chunk)
        return 1
    queue = _Queue([(chunk,) for chunk in chunks])  # (chunk,): a chunk may itself be None
    threads = min(get_num_threads() if threads is None else threads, len(chunks))
    if threads <= 1 or not _blas_controllers():
        _run_share(work, 0, queue)
        return 1
    if not _workers_lock.acquire(blocking=False):  # another thread is using the workers
        _run_share(work, 0, queue)
        return 1
    try:
        blas = _blas_controllers()
        saved = [c.get() for c in blas]
        try:
            for c in blas:
                c.set(1)
            workers = _started_workers(threads - 1)
            for worker in workers:
                worker.start(work, queue)
            try:
                _run_share(work, 0, queue)
            finally:
                errors = [worker.wait() for worker in workers]
            for error in errors:
                if error is not None:
                    raise error
        finally:
            for c, n in zip(blas, saved):
                c.set(n)
    finally:
        _workers_lock.release()
    return threads


def split(n: int, nbytes: int) -> list[tuple[int, int]]:
    """``[0, n)`` as one ``(start, stop)`` range per thread when the kernel touches at least
    :data:`PARALLEL_BYTES` (``nbytes``), else as a single range."""
    parts = max(1, min(n, get_num_threads())) if nbytes >= PARALLEL_BYTES else 1
    return even_ranges(n, parts)


def even_ranges(n: int, parts: int) -> list[tuple[int, int]]:
    """``[0, n)`` as ``parts`` ``(start, stop)`` ranges whose lengths differ by at most one
    (empty ones left out; ``[(0, n)]`` when there is nothing to split)."""
    bounds = [n * i // parts for i in range(parts + 1)]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a] or [(0, n)]


@lru_cache(maxsize=64)
def ones(n: int, dtype: np.dtype) -> np.ndarray:
    """A cached read-only vector of ``n`` ones (sums as matrix-vector products)."""
    vector = np.ones(n, dtype=dtype)
    vector.flags.writeable = False
    return vector


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for 2-d operands or 3-d stacks, with the GIL released while BLAS works
    however small the result (see :data:`GIL_FREE_SIZE`): for kernels run by threads."""
    if a.ndim == 2:
        return np.dot(a, b)
    if a.shape[0] * a.shape[1] * b.shape[2] >= GIL_FREE_SIZE:
        return np.matmul(a, b)
    return np.stack([np.dot(x, y) for x, y in zip(a, b)])


def channel_sum(a: np.ndarray) -> np.ndarray:
    """Sums of an ``(N, C, ...)`` array over every axis but 1, as two matrix-vector products
    (np.dot releases the GIL and is much faster than ``sum`` over small axes)."""
    n, c = a.shape[:2]
    per_cs = np.dot(ones(n, a.dtype), a.reshape(n, -1))  # (C*S,)
    return np.dot(per_cs.reshape(c, -1), ones(per_cs.size // c, a.dtype))  # (C,)
