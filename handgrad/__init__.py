"""handgrad: a deep-learning framework on NumPy in which every gradient is written by hand."""

# _blas_env must run before anything imports NumPy (see its docstring).
from ._blas_env import blas_settings as blas_settings  # noqa: I001
from . import data, init, layers, losses, models, ops, optim
from ._malloc import malloc_settings as malloc_settings  # HANDGRAD_NO_MALLOPT=1: off
from .checkpoint import load, load_into, save
from .gradcheck import GradcheckError, GradcheckReport, gradcheck, numerical_gradient
from .layer import Layer
from .layers import *  # noqa: F403
from .layers import __all__ as _layer_names
from .ops.backend import backend, set_backend  # "numpy" | "numba" (HANDGRAD_BACKEND)
from .ops.parallel import get_num_threads, set_num_threads
from .parameter import Parameter
from .random import default_generator, manual_seed

__version__ = "0.1.0"

__all__ = [
    "Layer", "Parameter", "gradcheck", "numerical_gradient", "GradcheckReport",
    "GradcheckError", "manual_seed", "default_generator", "init", "layers", "losses",
    "optim", "models", "data", "ops",
    "save", "load", "load_into", "set_num_threads", "get_num_threads",
    *_layer_names,
]
__all__ += ["set_backend", "backend"]
