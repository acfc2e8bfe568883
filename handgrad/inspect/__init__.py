"""Looking at gradients: ``gradcheck`` (one layer against central differences),
``check_all`` (every public layer and loss), ``summary`` (a model's layers, shapes and
cache sizes), the non-finite search, the training plots, and watching backprop:
``GradientMonitor`` and ``gradient_flow`` (per-layer gradient statistics, vanishing and
exploding warnings), attribution (``saliency``, ``input_x_gradient``,
``integrated_gradients``, ``smoothgrad``), ``bptt_profile`` (gradients through time),
``check_model`` (every layer checked in place) and ``TensorBoardLogger``."""

from ..training.anomaly import find_non_finite
from .attribution import (
    Attribution,
    input_x_gradient,
    integrated_gradients,
    saliency,
    smoothgrad,
)
from .bptt import BPTTProfile, bptt_profile, plot_bptt
from .gradcheck import GradcheckError, GradcheckReport, gradcheck, numerical_gradient
from .modelcheck import ModelCheckReport, ModelCheckRow, check_model
from .monitor import FlowRow, FlowTable, GradientMonitor, GradientWarning, gradient_flow
from .plot import plot_grad_norms, plot_history
from .selfcheck import check_all
from .summary import Summary, SummaryRow, cached_bytes, summary
from .tensorboard import TensorBoardLogger

__all__ = [
    "gradcheck", "numerical_gradient", "GradcheckReport", "GradcheckError", "check_all",
    "summary", "Summary", "SummaryRow", "cached_bytes", "find_non_finite", "plot_history",
    "plot_grad_norms", "GradientMonitor", "GradientWarning", "gradient_flow", "FlowTable",
    "FlowRow", "Attribution", "saliency", "input_x_gradient", "integrated_gradients",
    "smoothgrad", "bptt_profile", "BPTTProfile", "plot_bptt", "check_model",
    "ModelCheckReport", "ModelCheckRow", "TensorBoardLogger",
]
