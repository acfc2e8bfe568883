"""Let OpenBLAS's idle threads go to sleep soon after a multiply instead of spinning.

After a multi-threaded multiply, OpenBLAS keeps its worker threads busy-waiting for the next
one for ``2**OPENBLAS_THREAD_TIMEOUT`` CPU cycles (2**28 by default: about 0.1 s). While they
spin they occupy cores. handgrad's own thread pool (``handgrad.ops.parallel``) runs element-wise
work and single-threaded BLAS calls right after such multiplies, so with the default its
threads share a core with a spinning BLAS thread. Measured on 2 cores: a LeNet-5 training
step 15.6 ms with the default, 11.6 ms with a timeout of 2**18 cycles (about 0.1 ms);
Conv2d(16, 16, 3) forward on 32 CIFAR images 3.6-4.7 ms -> 2.7-2.8 ms; LSTM, RNN and ResNet-20
steps unchanged within noise (back-to-back multiplies still find the threads awake).

At ``import handgrad`` (unless ``HANDGRAD_NO_BLAS_TIMEOUT=1`` is set, or the user has set
``OPENBLAS_THREAD_TIMEOUT`` themselves: their value wins):

* if NumPy is not loaded yet, ``OPENBLAS_THREAD_TIMEOUT`` is set to :data:`THREAD_TIMEOUT` in
  the environment, where OpenBLAS reads it when NumPy loads it (``how == "environment"``);
* if NumPy is already loaded with an OpenBLAS that uses its own pthreads server, the variable
  is set, OpenBLAS is asked to re-read its environment (``openblas_read_env``) and its worker
  threads are stopped (``blas_thread_shutdown_``, what OpenBLAS itself does before every
  ``fork``); the next multi-threaded multiply starts them again with the short timeout
  (``how == "runtime"``). This needs those two OpenBLAS functions, found through
  threadpoolctl; OpenBLAS copies without them or built with OpenMP threads are left as they
  are, and when none can be tuned (or the BLAS is not OpenBLAS) ``reason`` says why. Do not
  import handgrad for the first time while another thread is inside BLAS.

:func:`blas_settings` reports what was done. This module imports nothing heavy at the top, so
that it can run before NumPy is loaded.
"""

from __future__ import annotations

import os
import sys

VARIABLE = "OPENBLAS_THREAD_TIMEOUT"
THREAD_TIMEOUT = 18  # 2**18 cycles, ~0.1 ms at 2.5 GHz
ENV_VAR = "HANDGRAD_NO_BLAS_TIMEOUT"

_settings: dict = {}


def _restart_openblas_threads() -> str:
    """Apply the timeout to an OpenBLAS that is already loaded; return "" or why not."""
    try:
        import ctypes

        from threadpoolctl import ThreadpoolController
        controllers = ThreadpoolController().select(internal_api="openblas").lib_controllers
    except Exception as err:  # noqa: BLE001 - no threadpoolctl, or it cannot inspect
        return f"cannot inspect the loaded BLAS ({type(err).__name__})"
    if not controllers:
        return "NumPy's BLAS is not OpenBLAS"
    libraries, skipped = [], []
    for controller in controllers:
        layer = getattr(controller, "threading_layer", None)
        if layer != "pthreads":  # an OpenMP build: its threads do not use this timeout
            skipped.append(f"an OpenBLAS uses the {layer!r} threading layer")
            continue
        try:
            library = ctypes.CDLL(controller.filepath)
            functions = (library.openblas_read_env, library.blas_thread_shutdown_,
                         library.openblas_thread_timeout)
        except (OSError, AttributeError):
            skipped.append("an OpenBLAS does not export openblas_read_env / "
                           "blas_thread_shutdown_")
            continue
        libraries.append(functions)
    if not libraries:
        return "; ".join(skipped)
    os.environ[VARIABLE] = str(THREAD_TIMEOUT)
    for read_env, shutdown, timeout in libraries:
        read_env()
        if timeout() != THREAD_TIMEOUT:
            return "OpenBLAS did not take the new timeout"
        shutdown()  # the threads restart, with the new timeout, at the next threaded call
    return ""


def _apply() -> dict:
    current = os.environ.get(VARIABLE)
    settings = {"applied": False, "how": None, "reason": "", "thread_timeout": current}
    if os.environ.get(ENV_VAR, "").strip() not in ("", "0"):
        settings["reason"] = f"disabled by {ENV_VAR}"
    elif current is not None:
        settings["reason"] = f"{VARIABLE} was already set"
    elif "numpy" not in sys.modules:
        os.environ[VARIABLE] = str(THREAD_TIMEOUT)
        settings.update(applied=True, how="environment", reason="ok",
                        thread_timeout=str(THREAD_TIMEOUT))
    else:
        why_not = _restart_openblas_threads()
        if why_not:
            os.environ.pop(VARIABLE, None)
            settings["reason"] = (f"NumPy was imported before handgrad and {why_not}; import "
                                  f"handgrad first or set {VARIABLE}={THREAD_TIMEOUT}")
        else:
            settings.update(applied=True, how="runtime", reason="ok",
                            thread_timeout=str(THREAD_TIMEOUT))
    return settings


def blas_settings() -> dict:
    """What the import did: ``applied`` (bool), ``how`` (``"environment"``, ``"runtime"`` or
    None), ``reason`` (str) and ``thread_timeout``, the value of ``OPENBLAS_THREAD_TIMEOUT``
    in effect for handgrad (a str, or ``None`` when unset)."""
    return dict(_settings)


_settings.update(_apply())
