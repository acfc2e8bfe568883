"""handgrad vs PyTorch benchmarks: ``python -m benchmarks`` (see ``--help``)."""
