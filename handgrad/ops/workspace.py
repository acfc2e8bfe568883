"""Reusable scratch arrays for large temporaries that live only inside one kernel call.

Allocating a fresh multi-megabyte temporary on every call costs more than the arithmetic
on this kind of machine (the allocator returns big blocks to the OS and every page is
faulted in again). ``scratch(key, shape, dtype)`` hands out one array per ``(key, dtype)``,
grown as needed and reused by every caller with that key. Its contents are valid only until
the next ``scratch`` call with the same key, so use it for temporaries consumed within one
call (never for anything returned or cached). Not thread-safe: two threads running
backward passes at the same time must not share a process (or call ``clear_scratch``).
"""

from __future__ import annotations

import math
import threading

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .window import ColumnFrame, Pair

_pool: dict[tuple[str, np.dtype], NDArray] = {}
_frames: dict[tuple, ColumnFrame] = {}  # in order of use, the most recent last
_frames_lock = threading.Lock()
_MAX_FRAMES = 16


def scratch(key: str, shape: tuple[int, ...], dtype: DTypeLike) -> NDArray:
    """An uninitialised C-contiguous array of ``shape``, shared by all users of ``key``."""
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    buf = _pool.get((key, dtype))
    if buf is None or buf.size < size:
        buf = np.empty(size, dtype=dtype)
        _pool[(key, dtype)] = buf
    return buf[:size].reshape(shape)


def column_frame(key: str, channels: int, padded_hw: Pair, kernel_size: Pair,
                 dilation: Pair, dtype: DTypeLike) -> ColumnFrame:
    """A :class:`~handgrad.ops.window.ColumnFrame` of this geometry shared by all users of
    ``key`` (its zero gaps are made once; its columns are valid until the next call).

    Frames are kept per key and geometry, at most 16 of them (the least recently used is
    dropped; a caller keeps using the frame object it was given). Safe to call from the
    threads of ``run_chunks`` (one key per thread).
    """
    geometry = (key, channels, tuple(padded_hw), tuple(kernel_size), tuple(dilation),
                np.dtype(dtype))
    with _frames_lock:
        frame = _frames.pop(geometry, None)
        if frame is None:
            if len(_frames) >= _MAX_FRAMES:
                del _frames[next(iter(_frames))]
            frame = ColumnFrame(channels, padded_hw, kernel_size, dilation, dtype)
        _frames[geometry] = frame  # (re)inserted last: the most recently used
    return frame


def clear_scratch() -> None:
    """Release every scratch array and column frame (they are re-created on demand)."""
    _pool.clear()
    with _frames_lock:
        _frames.clear()
