"""Process-wide settings applied at ``import handgrad``, in one place: threads per process
under an MPI launcher (``threads``) and OpenBLAS's thread timeout (``blas``), which must both
run before NumPy loads, and glibc's malloc thresholds (``malloc``). None of them imports
NumPy at the top."""
