"""ReduceLROnPlateau: lower the learning rate when a metric stops improving.

Imported into :mod:`handgrad.optim.lr_scheduler`; use it from there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ._scheduler_base import (
    LRScheduler,
    _per_group,
    check_int,
    check_optimizer,
    check_real,
)
from .optimizer import Optimizer


class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by ``factor`` when a metric has stopped improving.

    ``step(metric)``: the metric is better when ``metric < best * (1 - threshold)``
    (mode 'min', threshold_mode 'rel'), ``metric < best - threshold`` ('min', 'abs'),
    ``metric > best * (1 + threshold)`` ('max', 'rel') or ``metric > best + threshold``
    ('max', 'abs'). After more than ``patience`` steps without improvement each group's
    lr becomes ``max(lr * factor, min_lr)`` (if that changes it by more than ``eps``),
    followed by ``cooldown`` steps during which bad steps are not counted.
    """

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr: float | Sequence[float] = 0, eps: float = 1e-8):
        name = "ReduceLROnPlateau"
        check_optimizer(name, optimizer)
        if check_real(name, "factor", factor, 0.0) >= 1.0:
            raise ValueError(f"{name}: factor should be < 1.0, got {factor}")
        if mode not in ("min", "max"):
            raise ValueError(f"{name}: mode {mode!r} is unknown! (expected 'min' or 'max')")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{name}: threshold mode {threshold_mode!r} is unknown! "
                             "(expected 'rel' or 'abs')")
        check_int(name, "patience", patience, 0)
        check_int(name, "cooldown", cooldown, 0)
        check_real(name, "threshold", threshold, 0.0)
        check_real(name, "eps", eps, 0.0)
        self.optimizer = optimizer
        self.factor = factor
        if isinstance(min_lr, (list, tuple)):
            self.default_min_lr = None
            self.min_lrs = _per_group("min_lr", optimizer, min_lr, name, 0.0)
        else:
            check_real(name, "min_lr", min_lr, 0.0)
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * len(optimizer.param_groups)
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = self._group_lrs()
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def is_better(self, current: float, best: float) -> bool:
        if self.mode == "min" and self.threshold_mode == "rel":
            return current < best * (1.0 - self.threshold)
        if self.mode == "min":
            return current < best - self.threshold
        if self.threshold_mode == "rel":
            return current > best * (self.threshold + 1.0)
        return current > best + self.threshold

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def step(self, metrics: float, epoch: int | None = None) -> None:  # type: ignore[override]
        if isinstance(metrics, (str, bytes)) or metrics is None or np.size(metrics) != 1:
            raise TypeError(f"ReduceLROnPlateau.step: expected the metric as a number, got "
                            f"{metrics!r}")
        current = float(np.asarray(metrics).reshape(-1)[0])
        if epoch is not None:
            check_int("ReduceLROnPlateau.step", "epoch", epoch, 0)
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._group_lrs()

    def _reduce_lr(self) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(f"The number of param groups in the optimizer ({len(groups)})"
                                   " differs from when ReduceLROnPlateau was initialized "
                                   f"({len(self.min_lrs)}); set `min_lrs` to match")
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, min_lr in zip(groups, self.min_lrs, strict=True):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, min_lr)
            if old_lr - new_lr > self.eps:
                group["lr"] = new_lr
