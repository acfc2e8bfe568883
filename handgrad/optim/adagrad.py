"""Adagrad (PyTorch's formulation, with learning-rate decay)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

import numpy as np

from ..parameter import Parameter
from ._checks import _check_flag, _check_nonnegative
from ._updates import _batch_by_step, _effective_grad
from .optimizer import Optimizer


class Adagrad(Optimizer):
    r"""Adagrad (Duchi et al.), as ``torch.optim.Adagrad``.

    For each parameter ``p`` with gradient ``g``, at step ``t`` (starting at 1)::

        g = -g                                   if maximize
        g = g + weight_decay * p                 if weight_decay != 0
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        p = p - clr * g / (sqrt(s) + eps)

    Args:
        params: Parameters or parameter groups (dicts).
        lr: learning rate (default 1e-2).
        lr_decay: learning-rate decay (default 0).
        weight_decay: L2 penalty (default 0).
        initial_accumulator_value: start value of ``s`` (default 0).
        eps: added to the denominator (default 1e-10).
        foreach, fused: torch's implementation switches, accepted without effect.
        maximize: maximize the objective instead of minimizing it.
        differentiable: must be False (no autograd through the step); True raises.

    State per parameter: ``step`` and ``sum`` (s). As in PyTorch, they are created when
    the optimizer is constructed (so ``state_dict()`` lists them before the first step).
    """

    _state_keys = ("step", "sum")

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], lr: float = 1e-2,
                 lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10,
                 foreach: bool | None = None, *, maximize: bool = False,
                 differentiable: bool = False, fused: bool | None = None):
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for p in group["params"]:
            self._init_state(p, group)

    def _init_state(self, p: Parameter, group: dict) -> dict:
        value = float(group["initial_accumulator_value"])
        state = self.state[p] = {"step": 0.0, "sum": np.full_like(p.data, value)}
        return state

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        name = type(self).__name__
        _check_nonnegative(name, group, "lr_decay", "lr_decay value")
        _check_nonnegative(name, group, "weight_decay", "weight_decay value")
        _check_nonnegative(name, group, "initial_accumulator_value",
                           "initial_accumulator_value value")
        _check_nonnegative(name, group, "eps", "epsilon value")
        _check_flag(name, group, "maximize")

    def _update_group(self, group: dict) -> None:
        lr = float(group["lr"])
        lr_decay = float(group["lr_decay"])
        eps = float(group["eps"])
        weight_decay = float(group["weight_decay"])
        maximize = bool(group["maximize"])
        params = self._active(group)
        states = [self.state.get(p) or self._init_state(p, group) for p in params]
        large, batches = _batch_by_step(params, states)
        tasks: list[Callable[..., None]] = []
        for p in large:
            state = self.state[p]
            step = state["step"] = state["step"] + 1.0
            clr = lr / (1.0 + (step - 1.0) * lr_decay)
            increment = partial(_adagrad_increment, weight_decay, maximize, clr, eps)
            tasks += self._increment_tasks(p, [state["sum"]], increment)
        for batch in batches:  # many small tensors at once (see _flat.py), bit-identical
            batch_states = [self.state[p] for p in batch]
            bucket = self._flat_bucket(group, batch, batch_states, ("sum",))
            step = batch_states[0]["step"] + 1.0
            for state in batch_states:
                state["step"] = step
            clr = lr / (1.0 + (step - 1.0) * lr_decay)
            increment = partial(_adagrad_increment, weight_decay, maximize, clr, eps)
            tasks += self._flat_increment_tasks(bucket, batch, ("sum",), weight_decay != 0,
                                                increment)
        self._run_tasks(tasks, sum(p.data.size for p in params))


def _adagrad_increment(weight_decay: float, maximize: bool, clr: float, eps: float,
                       data: np.ndarray | None, grad: np.ndarray, s: np.ndarray,
                       a: np.ndarray, b: np.ndarray) -> None:
    grad = _effective_grad(data, grad, a, weight_decay, maximize)
    _adagrad_kernel(grad, s, b, clr, eps)


def _adagrad_kernel(grad: np.ndarray, s: np.ndarray, b: np.ndarray, clr: float,
                    eps: float) -> None:
    """s <- s + g^2 in place; b <- -clr * g / (sqrt(s) + eps)."""
    s += np.multiply(grad, grad, out=b)
    np.sqrt(s, out=b)
    b += eps
    np.divide(grad, b, out=b)
    b *= -clr
