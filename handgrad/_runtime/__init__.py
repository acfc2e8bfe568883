"""Process-wide settings applied at ``import handgrad``, in one place: OpenBLAS's thread
timeout (``blas``, which must run before NumPy loads) and glibc's malloc thresholds
(``malloc``). Neither module imports NumPy at the top."""
