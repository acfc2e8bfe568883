"""handgrad.optim: optimizers, learning-rate schedulers and gradient clipping.

Every optimizer follows ``torch.optim`` step for step (same formulas, defaults, parameter
groups, state and state_dict structure); see each class's docstring for its update.
"""

from . import lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adadelta, Adamax
from .asgd import ASGD, Rprop
from .clip import clip_grad_norm_, clip_grad_value_
from .lbfgs import LBFGS
from .nadam import NAdam, RAdam
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "NAdam", "RAdam", "Adamax",
    "Adadelta", "ASGD", "Rprop", "LBFGS", "lr_scheduler", "clip_grad_norm_",
    "clip_grad_value_",
]
