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
from typing import Any

from .optimizer import Optimizer

# Attributes that are never part of a scheduler's state dict.
_NOT_SAVED = ("optimizer", "lr_lambdas", "_schedulers", "_scale_fn_custom")


class LRScheduler:
    """Base class: subclasses implement ``get_lr()`` (the next value per group).

    Subclasses whose PyTorch counterpart updates the learning rate multiplicatively
    ("chainable" form: new lr from the group's current lr) do the same, so that several
    schedulers stepping the same optimizer (``ChainedScheduler``) compose as in PyTorch;
    they also give the closed form ``_get_closed_form_lr()`` of the same schedule, used by
    ``step(epoch)``.
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] "
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
        expected = {k for k in self.__dict__ if k not in _NOT_SAVED}
        unknown = set(state_dict) - expected
        if unknown:
            raise ValueError(f"{type(self).__name__}.load_state_dict: unknown keys "
                             f"{sorted(unknown)}; expected keys among {sorted(expected)}")
        self.__dict__.update(copy.deepcopy(dict(state_dict)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self._last_lr})"


def _per_group(name: str, optimizer: Optimizer, value: Any) -> list:
    """A value per parameter group: a list/tuple of the right length, or one value repeated."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(f"{name} must have the same length as optimizer.param_groups. "
                             f"{name} has {len(value)} values, param_groups has "
                             f"{len(optimizer.param_groups)}.")
        return list(value)
    return [value] * len(optimizer.param_groups)
