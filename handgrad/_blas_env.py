"""Let OpenBLAS's idle threads go to sleep soon after a multiply instead of spinning.

After a multi-threaded multiply, OpenBLAS keeps its worker threads busy-waiting for the next
one for ``2**OPENBLAS_THREAD_TIMEOUT`` CPU cycles (2**28 by default: about 0.1 s). While they
spin they occupy cores. handgrad's own thread pool (``handgrad.ops.parallel``) runs element-wise
work and single-threaded BLAS calls right after such multiplies, so with the default its
threads share a core with a spinning BLAS thread: measured on 2 cores, a LeNet-5 training
step took 15.6 ms with the default and 11.6 ms with a timeout of 2**18 cycles (about 0.1 ms),
with LSTM, RNN and ResNet-20 steps unchanged within noise (back-to-back multiplies still find
the threads awake).

OpenBLAS reads the variable once, when NumPy loads it, so this only works if handgrad is
imported before NumPy: ``import handgrad`` then sets ``OPENBLAS_THREAD_TIMEOUT`` to
:data:`THREAD_TIMEOUT` unless the variable is already set (your value wins) or
``HANDGRAD_NO_BLAS_TIMEOUT=1`` is set. This module imports nothing heavy, so that it can run
first. Other BLAS libraries ignore the variable. :func:`blas_settings` reports what was done.
"""

from __future__ import annotations

import os
import sys

VARIABLE = "OPENBLAS_THREAD_TIMEOUT"
THREAD_TIMEOUT = 18  # 2**18 cycles, ~0.1 ms at 2.5 GHz
ENV_VAR = "HANDGRAD_NO_BLAS_TIMEOUT"

_settings: dict = {}


def _apply() -> dict:
    current = os.environ.get(VARIABLE)
    settings = {"applied": False, "reason": "", "thread_timeout": current}
    if os.environ.get(ENV_VAR, "").strip() not in ("", "0"):
        settings["reason"] = f"disabled by {ENV_VAR}"
    elif current is not None:
        settings["reason"] = f"{VARIABLE} was already set"
    elif "numpy" in sys.modules:
        settings["reason"] = (f"NumPy was imported before handgrad (import handgrad first, or "
                              f"set {VARIABLE}={THREAD_TIMEOUT} in the environment)")
    else:
        os.environ[VARIABLE] = str(THREAD_TIMEOUT)
        settings.update(applied=True, reason="ok", thread_timeout=str(THREAD_TIMEOUT))
    return settings


def blas_settings() -> dict:
    """What the import did: ``applied`` (bool: handgrad set the variable), ``reason`` (str)
    and ``thread_timeout``, the value of ``OPENBLAS_THREAD_TIMEOUT`` NumPy will see (a str,
    or ``None`` when unset)."""
    return dict(_settings)


_settings.update(_apply())
