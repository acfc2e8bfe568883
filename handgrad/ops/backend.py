"""Which kernels run: the NumPy reference path or the compiled Numba kernels.

``set_backend("numpy" | "numba")`` picks, ``backend()`` says which is active. The default
comes from the ``HANDGRAD_BACKEND`` environment variable, else it is ``"numba"`` when Numba
is installed (``pip install handgrad[fast]``) and ``"numpy"`` otherwise. Finding out whether
Numba is installed does not import it: Numba (about 0.5 s) and the kernels
(``handgrad.ops.fused_numba``) are imported at the first call of a fused kernel, so with the
NumPy backend Numba is never imported.

The NumPy path is the reference: every layer keeps it unchanged, and a kernel of
``fused_numba`` replaces a piece of it only where a layer asks :func:`kernels` for it.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from types import ModuleType

__all__ = ["set_backend", "backend", "numba_available", "kernels"]

BACKENDS = ("numpy", "numba")

_active: str = "numpy"
_kernels: ModuleType | None = None


def numba_available() -> bool:
    """True when Numba can be imported (checked without importing it)."""
    return importlib.util.find_spec("numba") is not None


def _check_name(name: object, source: str) -> str:
    if not isinstance(name, str) or name.strip().lower() not in BACKENDS:
        raise ValueError(f"{source}: expected one of {BACKENDS}, got {name!r}")
    return name.strip().lower()


def set_backend(name: str) -> None:
    """Use the ``"numpy"`` kernels (the reference) or the compiled ``"numba"`` ones.

    Raises ``ValueError`` for another name and ``ImportError`` for ``"numba"`` when Numba is
    not installed.
    """
    global _active
    name = _check_name(name, "set_backend")
    if name == "numba" and not numba_available():
        raise ImportError("set_backend('numba'): numba is not installed; "
                          "pip install handgrad[fast] (or pip install numba)")
    _active = name


def backend() -> str:
    """The active backend: ``"numpy"`` or ``"numba"``."""
    return _active


def kernels() -> ModuleType | None:
    """The compiled kernels module when the Numba backend is active, else None.

    Layers call this at the top of a function: ``k = kernels(); if k is not None: ...``.
    """
    global _kernels
    if _active != "numba":
        return None
    if _kernels is None:
        from . import fused_numba  # imports numba (once)

        _kernels = fused_numba
    return _kernels


def _from_environment() -> str:
    value = os.environ.get("HANDGRAD_BACKEND", "").strip()
    if not value:
        return "numba" if numba_available() else "numpy"
    name = _check_name(value, "HANDGRAD_BACKEND")
    if name == "numba" and not numba_available():
        warnings.warn("HANDGRAD_BACKEND=numba but numba is not installed; using the NumPy "
                      "backend (pip install handgrad[fast])", RuntimeWarning, stacklevel=2)
        return "numpy"
    return name


_active = _from_environment()
