"""``python -m benchmarks``: handgrad vs PyTorch, one table."""

import sys

from .harness import main

sys.exit(main())
