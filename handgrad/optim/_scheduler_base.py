"""LRScheduler base class (PyTorch's ``torch.optim.lr_scheduler.LRScheduler`` semantics).

- Construction records ``group["initial_lr"]`` (when ``last_epoch == -1``), sets
  ``base_lrs`` from it and performs the initial step, so ``last_epoch`` becomes 0 and the
  group's ``lr`` holds the schedule's first value.
- ``step()`` advances ``last_epoch`` by one and writes the new learning rates into the
  optimizer's groups. Nothing wraps or patches ``optimizer.step``.
- ``state_dict()`` holds only JSON-able values (numbers, strings, lists, bools, None); the
  optimizer and user functions (lambdas, custom scale functions) are not saved.
"""

from __future__ import annotations

import copy
from numbers import Integral, Real
from typing import Any

from .optimizer import Optimizer

# Attributes that are never part of a scheduler's state dict.
_NOT_SAVED = ("optimizer", "lr_lambdas", "_schedulers", "_scale_fn_custom")


class SchedulerResumeError(KeyError, ValueError):
    """Resuming (``last_epoch >= 0``) an optimizer without ``initial_lr``: a KeyError, as in
    PyTorch, that is also a ValueError; its message is printed without quotes."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def check_optimizer(owner: str, optimizer: Any) -> None:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{owner}: {type(optimizer).__name__} is not an Optimizer (expected a "
                        "handgrad.optim optimizer as the first argument)")


def check_real(owner: str, arg: str, value: Any, minimum: float | None = None,
               strict: bool = False) -> float:
    """``value`` as a float: TypeError unless a real number, ValueError below ``minimum``
    (or at it, if ``strict``) or NaN."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{owner}: expected a real number {arg}, got {value!r}")
    if value != value or (minimum is not None and (value <= minimum if strict
                                                    else value < minimum)):
        bound = f"> {minimum}" if strict else f">= {minimum}"
        raise ValueError(f"{owner}: expected {arg} {bound}, got {value!r}")
    return float(value)


def check_int(owner: str, arg: str, value: Any, minimum: int) -> int:
    """``value`` as an int: TypeError unless an integer, ValueError below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{owner}: expected an integer {arg}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}: expected {arg} >= {minimum}, got {value!r}")
    return int(value)


def check_flag(owner: str, arg: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{owner}: expected {arg} True or False, got {value!r}")
    return value


class LRScheduler:
    """Base class: subclasses implement ``get_lr()`` (the next value per group).

    Subclasses whose PyTorch counterpart updates the learning rate multiplicatively
    ("chainable" form: new lr from the group's current lr) do the same, so that several
    schedulers stepping the same optimizer (``ChainedScheduler``) compose as in PyTorch;
    they also give the closed form ``_get_closed_form_lr()`` of the same schedule, used by
    ``step(epoch)``.
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        name = type(self).__name__
        check_optimizer(name, optimizer)
        check_int(name, "last_epoch", last_epoch, -1)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise SchedulerResumeError(
                        f"{name}: param 'initial_lr' is not specified in param_groups[{i}] "
                        "when resuming a scheduler with last_epoch >= 0")
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        raise NotImplementedError

    def get_last_lr(self) -> list[float]:
        """The learning rates the last step set, one per parameter group."""
        return list(self._last_lr)

    def step(self, epoch: int | None = None) -> None:
        """Advance the schedule by one step (or jump to ``epoch``, PyTorch's deprecated form)."""
        if epoch is not None:
            check_int(type(self).__name__, "epoch", epoch, 0)
        self._step_count += 1
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None) -> None:
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed_form = getattr(self, "_get_closed_form_lr", None)
            values = closed_form() if closed_form is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _group_lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    # -------------------------------------------------------------- state dict
    def state_dict(self) -> dict[str, Any]:
        """Every attribute except the optimizer and user functions (JSON-able values)."""
        return {k: copy.deepcopy(v) for k, v in self.__dict__.items() if k not in _NOT_SAVED}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore attributes saved by :meth:`state_dict` (unknown keys raise ValueError)."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"{type(self).__name__}.load_state_dict: expected a dict (from "
                            f"state_dict()), got {type(state_dict).__name__}")
        expected = {k for k in self.__dict__ if k not in _NOT_SAVED}
        unknown = set(state_dict) - expected
        if unknown:
            raise ValueError(f"{type(self).__name__}.load_state_dict: unknown keys "
                             f"{sorted(unknown)}; expected keys among {sorted(expected)}")
        self.__dict__.update(copy.deepcopy(dict(state_dict)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self._last_lr})"


def _per_group(name: str, optimizer: Optimizer, value: Any, owner: str = "",
               minimum: float | None = None) -> list:
    """A value per parameter group: a list/tuple of the right length, or one value repeated;
    with ``owner``, each value is checked to be a real number >= ``minimum``."""
    prefix = f"{owner}: " if owner else ""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(f"{prefix}{name} must have the same length as "
                             f"optimizer.param_groups. {name} has {len(value)} values, "
                             f"param_groups has {len(optimizer.param_groups)}.")
        values = list(value)
    else:
        values = [value] * len(optimizer.param_groups)
    if owner:
        for v in values:
            check_real(owner, name, v, minimum)
    return values
