"""Training: the ``fit`` loop and ``evaluate``/``predict``, ``History``, callbacks, the
non-finite search ``fit`` runs when a loss turns NaN, and checkpoints (``save``/``load``,
atomic, without pickle)."""

from . import callbacks
from .callbacks import Callback, CSVLogger, EarlyStopping, EpochPrinter, ModelCheckpoint
from .checkpoint import load, load_into, save
from .fit import (
    ArrayBatches,
    CheckpointMismatchError,
    FitRun,
    evaluate,
    find_non_finite,
    fit,
    load_checkpoint,
    predict,
)
from .history import History, accuracy_counts

__all__ = [
    "fit", "evaluate", "predict", "History", "accuracy_counts", "ArrayBatches", "FitRun",
    "CheckpointMismatchError", "find_non_finite", "load_checkpoint", "save", "load",
    "load_into", "callbacks", "Callback", "EarlyStopping", "ModelCheckpoint", "CSVLogger",
    "EpochPrinter",
]
