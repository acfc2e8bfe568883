"""Callbacks for ``handgrad.fit``: early stopping, checkpoints, a CSV log.

A callback receives the running fit through ``self.run`` (set before ``on_train_begin``):
``run.model``, ``run.optimizer``, ``run.scheduler``, ``run.history``, ``run.epoch`` and
``run.stop_training`` (set it to True to stop after the current epoch). ``logs`` is the
dict of this epoch's numbers: ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``,
``lr``, ``time`` (whichever exist).

Callbacks with state that matters for resuming (the best value so far, a patience
counter) implement ``state_dict``/``load_state_dict``; ``ModelCheckpoint`` saves them with
the training state, so a resumed run stops and checkpoints exactly as an uninterrupted one.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from pathlib import Path
from typing import Any


class Callback:
    """Base class: override any of the hooks; all do nothing by default."""

    run: Any = None

    def set_run(self, run: Any) -> None:
        self.run = run

    def on_train_begin(self, logs: dict | None = None) -> None:
        pass

    def on_train_end(self, logs: dict | None = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        pass

    def after_epoch(self, epoch: int, logs: dict | None = None) -> None:
        """Called after every callback's ``on_epoch_end`` (where checkpoints are written)."""

    @property
    def writes(self) -> bool:
        """False on the ranks other than 0 of a data-parallel run: files and printing are
        left to rank 0 (every rank sees the same logs)."""
        return getattr(self.run, "is_main_process", True)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def _resolve_mode(name: str, monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{name}: expected mode 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


class _Monitor:
    """Tracks the best value of one logged quantity ('min' or 'max' is better)."""

    def __init__(self, owner: str, monitor: str, mode: str, min_delta: float = 0.0):
        if min_delta < 0:
            raise ValueError(f"{owner}: expected min_delta >= 0, got {min_delta!r}")
        self.owner = owner
        self.monitor = monitor
        self.mode = _resolve_mode(owner, monitor, mode)
        self.min_delta = float(min_delta)
        self.best = math.inf if self.mode == "min" else -math.inf
        self._warned = False

    def value(self, logs: dict | None) -> float | None:
        logs = logs or {}
        if self.monitor in logs:
            return float(logs[self.monitor])
        # Without validation data fall back from val_x to x, once, with a warning.
        fallback = self.monitor[4:] if self.monitor.startswith("val_") else None
        if fallback and fallback in logs:
            if not self._warned:
                warnings.warn(
                    f"{self.owner}: '{self.monitor}' is not logged (no validation data?); "
                    f"monitoring '{fallback}' instead", stacklevel=3,
                )
                self._warned = True
            return float(logs[fallback])
        raise KeyError(
            f"{self.owner}: monitored quantity '{self.monitor}' is not in the logs "
            f"(available: {', '.join(sorted(logs))})"
        )

    def improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    Args:
        monitor: a key of the epoch logs (``val_loss`` falls back to ``loss`` when there is
            no validation data).
        patience: epochs without improvement before stopping.
        min_delta: smallest change that counts as an improvement.
        mode: ``'min'``, ``'max'`` or ``'auto'`` (max for names containing "acc").
        restore_best_weights: at the end of training load the parameters of the best epoch
            back into the model (whether or not training stopped early).

    After training, ``stopped_epoch`` is the epoch (1-based) at which it stopped, or 0.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False):
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: expected patience >= 0, got {patience!r}")
        self._monitor = _Monitor("EarlyStopping", monitor, mode, min_delta)
        self.patience = patience
        self.restore_best_weights = restore_best_weights
        self.wait = 0
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best_weights = None

    @property
    def best(self) -> float:
        return self._monitor.best

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = self._monitor.value(logs)
        if self._monitor.improved(value):
            self._monitor.best = value
            self.best_epoch = epoch
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = self.run.model.state_dict()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.run.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.run.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict:
        state = {"best": self._monitor.best, "wait": self.wait, "best_epoch": self.best_epoch}
        if self.best_weights is not None:
            state["best_weights"] = dict(self.best_weights)
        return state

    def load_state_dict(self, state: dict) -> None:
        self._monitor.best = float(state["best"])
        self.wait = int(state["wait"])
        self.best_epoch = int(state["best_epoch"])
        if "best_weights" in state:
            self.best_weights = dict(state["best_weights"])


class ModelCheckpoint(Callback):
    """Save the full training state to ``directory/last.npz`` and ``directory/best.npz``.

    Each file holds the model's state_dict, the optimizer's and scheduler's state, the
    epoch, the history, every random generator state of the model and the data, and the
    callbacks' state: ``fit(..., resume_from=path)`` continues the run exactly. Files are
    written with ``handgrad.save`` (atomic: a crash mid-save keeps the previous file).

    Args:
        directory: created if missing.
        monitor, mode: what "best" means (see ``EarlyStopping``).
        save_best: write ``best.npz`` whenever ``monitor`` improves.
        save_last: write ``last.npz`` after every epoch.
    """

    def __init__(self, directory: str | os.PathLike, monitor: str = "val_loss",
                 save_best: bool = True, save_last: bool = True, mode: str = "auto"):
        self.directory = Path(directory)
        self._monitor = _Monitor("ModelCheckpoint", monitor, mode)
        self.save_best = save_best
        self.save_last = save_last
        self.best_epoch = 0

    @property
    def best_path(self) -> Path:
        return self.directory / "best.npz"

    @property
    def last_path(self) -> Path:
        return self.directory / "last.npz"

    @property
    def best(self) -> float:
        return self._monitor.best

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = self._monitor.value(logs)
        improved = self._monitor.improved(value)
        if improved:
            self._monitor.best = value
            self.best_epoch = epoch
        self._improved = improved

    def after_epoch(self, epoch: int, logs: dict | None = None) -> None:
        # Saved here, after every callback's on_epoch_end, so the checkpoint holds this
        # epoch's state of all of them (EarlyStopping's counter, this callback's best).
        from .checkpoint import save

        improved = getattr(self, "_improved", False)
        if not self.writes or not (self.save_last or (self.save_best and improved)):
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        state = self.run.training_state()
        if self.save_best and improved:
            save(state, self.best_path)
        if self.save_last:
            save(state, self.last_path)

    def state_dict(self) -> dict:
        return {"best": self._monitor.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self._monitor.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])


class CSVLogger(Callback):
    """Append one row per epoch (``epoch`` and every logged number) to a CSV file.

    The header is written when the file is new or empty; with ``append=False`` an existing
    file is replaced at the start of training. A resumed fit appends.
    """

    def __init__(self, path: str | os.PathLike, append: bool = False):
        self.path = Path(path)
        self.append = append
        self._keys: list[str] | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self.writes:
            return
        resuming = getattr(self.run, "start_epoch", 0) > 0
        if not (self.append or resuming) and self.path.exists():
            self.path.unlink()
        self._keys = None
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, newline="") as f:
                header = next(csv.reader(f), None)
            self._keys = header[1:] if header else None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self.writes:
            return
        logs = dict(logs or {})
        if self._keys is None:
            self._keys = list(logs)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(["epoch", *self._keys])
        with open(self.path, "a", newline="") as f:
            row = [epoch] + [_format(logs.get(k, "")) for k in self._keys]
            csv.writer(f).writerow(row)


def _format(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


class EpochPrinter(Callback):
    """Print one line per epoch (used by the command line when stdout is not a terminal)."""

    def __init__(self, total_epochs: int | None = None, print_fn=print):
        self.total_epochs = total_epochs
        self.print_fn = print_fn

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self.writes:
            return
        logs = logs or {}
        total = f"/{self.total_epochs}" if self.total_epochs else ""
        parts = [f"epoch {epoch}{total}"]
        for key, value in logs.items():
            if key == "time":
                parts.append(f"{value:.1f}s")
            elif key == "lr":
                parts.append(f"lr {value:.3g}")
            elif isinstance(value, float):
                parts.append(f"{key} {value:.4f}")
        self.print_fn("  ".join(parts), flush=True)


__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "CSVLogger", "EpochPrinter"]
