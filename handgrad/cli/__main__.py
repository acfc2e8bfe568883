"""``python -m handgrad.cli``: the same as the ``handgrad`` command."""

import sys

from .main import main

sys.exit(main())
