"""The one way handgrad compiles a kernel with Numba (imported only by the Numba backend).

``kernel``: nopython, cached on disk (the second process loads the machine code instead of
compiling it), releases the GIL (handgrad's threads run kernels side by side) and keeps
IEEE arithmetic (``fastmath=False``: no reordered sums, no flushed denormals), so a kernel
gives the NumPy path's numbers up to the rounding of its own operation order.

No kernel uses ``parallel=True``: handgrad's own threads (``ops.parallel.run_chunks``) hand
out blocks of channels, rows or elements to GIL-free kernels, as they do for NumPy calls, so
there is one pool of threads on the machine rather than two competing ones (Numba's OpenMP
workers spin after each parallel region, like OpenBLAS's).
"""

from __future__ import annotations

from numba import njit

__all__ = ["kernel"]

# error_model="numpy": x / 0 gives inf or nan as in NumPy instead of raising
# ZeroDivisionError; without it every division carries a branch and no loop with a division
# is vectorised (measured: Adam's update of 131072 float32 values 310 us, 2x NumPy's 10
# passes).
# Numba keys its on-disk cache on each kernel's own source file, not on this one: after
# changing these options, delete handgrad/ops/__pycache__/*.nbi and *.nbc.
kernel = njit(cache=True, nogil=True, fastmath=False, error_model="numpy")
