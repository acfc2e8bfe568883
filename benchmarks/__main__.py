"""``python -m benchmarks``: handgrad vs PyTorch, one table.

``python -m benchmarks distributed [...]``: data-parallel scaling over MPI
(``benchmarks/distributed.py``)."""

import sys

if len(sys.argv) > 1 and sys.argv[1] == "distributed":
    from .distributed import main as distributed_main

    sys.exit(distributed_main(sys.argv[2:]))

from .harness import main  # noqa: E402

sys.exit(main())
