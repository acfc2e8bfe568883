"""handgrad: a deep-learning framework on NumPy in which every gradient is written by hand.

The package, top down: ``cli`` (the ``handgrad`` command) → ``inspect`` (gradient checks,
summaries, plots) → ``training`` (``fit``, callbacks, checkpoints) → ``models`` → ``layers``,
``losses``, ``optim``, ``data`` → ``layer``, ``parameter``, ``init``, ``random`` (the
contract) → ``ops`` (array kernels) → NumPy. ``_runtime`` holds the process-wide settings
applied at import.
"""

# _runtime.threads and _runtime.blas must run before anything imports NumPy (see their
# docstrings): threads per MPI rank, OpenBLAS's thread timeout.
from ._runtime.threads import thread_settings as thread_settings  # noqa: I001
from ._runtime.blas import blas_settings as blas_settings
from . import data, init, layers, losses, models, ops, optim
from ._runtime.malloc import malloc_settings as malloc_settings  # HANDGRAD_NO_MALLOPT=1: off
from . import inspect, training
from .inspect import GradcheckError, GradcheckReport, gradcheck, numerical_gradient, summary
from .layer import Layer
from .layers import *  # noqa: F403
from .layers import __all__ as _layer_names
from .ops.backend import backend, set_backend  # "numpy" | "numba" (HANDGRAD_BACKEND)
from .ops.parallel import get_num_threads, set_num_threads
from .parameter import Parameter
from .random import default_generator, manual_seed
from .training import History, evaluate, fit, load, load_into, predict, save

__version__ = "0.1.0"

__all__ = [
    "Layer", "Parameter", "gradcheck", "numerical_gradient", "GradcheckReport",
    "GradcheckError", "summary", "manual_seed", "default_generator", "init", "layers",
    "losses", "optim", "models", "data", "ops", "training", "inspect",
    "fit", "evaluate", "predict", "History",
    "save", "load", "load_into", "set_num_threads", "get_num_threads",
    *_layer_names,
]
__all__ += ["set_backend", "backend"]
