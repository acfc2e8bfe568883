"""Keep freed memory in the process: raise glibc's mmap and trim thresholds at import.

A training step allocates and frees the same large temporaries (activations, gradients,
im2col columns) every step. With glibc's defaults, blocks above ``M_MMAP_THRESHOLD`` are
``mmap``-ed and handed back to the operating system when freed, and a heap top above
``M_TRIM_THRESHOLD`` is trimmed; either way the next step touches fresh pages and pays one
page fault per 4 KiB, which on small models costs more than the arithmetic.

At ``import handgrad`` this module calls ``mallopt`` (Linux with glibc only; silently
skipped elsewhere) so that blocks up to :data:`MMAP_THRESHOLD` come from the heap and up to
:data:`TRIM_THRESHOLD` of free heap is kept for reuse. This changes only *when* memory goes
back to the system, never results. Set the environment variable ``HANDGRAD_NO_MALLOPT=1``
before importing handgrad to keep glibc's defaults. :func:`malloc_settings` reports what
was done.
"""

from __future__ import annotations

import ctypes
import os
import sys

# glibc's mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# glibc refuses mmap thresholds above HEAP_MAX_SIZE / 2 (32 MiB on 64-bit systems).
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 512 * 1024 * 1024

ENV_VAR = "HANDGRAD_NO_MALLOPT"

_settings: dict = {}


def _apply() -> dict:
    settings = {"applied": False, "reason": "", "mmap_threshold": None, "trim_threshold": None}
    if os.environ.get(ENV_VAR, "").strip() not in ("", "0"):
        settings["reason"] = f"disabled by {ENV_VAR}"
        return settings
    if not sys.platform.startswith("linux"):
        settings["reason"] = f"not Linux ({sys.platform})"
        return settings
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
        if not hasattr(libc, "gnu_get_libc_version"):
            settings["reason"] = "libc is not glibc"
            return settings
    except (OSError, AttributeError):
        settings["reason"] = "glibc not found"
        return settings
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok_mmap = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok_trim = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    settings["applied"] = ok_mmap and ok_trim
    settings["mmap_threshold"] = MMAP_THRESHOLD if ok_mmap else None
    settings["trim_threshold"] = TRIM_THRESHOLD if ok_trim else None
    settings["reason"] = "ok" if settings["applied"] else "mallopt refused a setting"
    return settings


def malloc_settings() -> dict:
    """What the import did: ``applied`` (bool), ``reason`` (str) and the two thresholds
    in bytes (``None`` when not set)."""
    return dict(_settings)


_settings.update(_apply())
