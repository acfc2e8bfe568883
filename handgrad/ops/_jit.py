"""The one way handgrad compiles a kernel with Numba (imported only by the Numba backend).

``kernel``: nopython, cached on disk (the second process loads the machine code instead of
compiling it), releases the GIL (handgrad's threads run kernels side by side) and keeps
IEEE arithmetic (``fastmath=False``: no reordered sums, no flushed denormals), so a kernel
gives the NumPy path's numbers up to the rounding of its own operation order.
"""

from __future__ import annotations

from numba import njit

__all__ = ["kernel", "parallel_kernel"]

kernel = njit(cache=True, nogil=True, fastmath=False)
parallel_kernel = njit(cache=True, nogil=True, fastmath=False, parallel=True)
