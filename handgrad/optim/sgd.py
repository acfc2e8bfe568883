"""Stochastic gradient descent with momentum (PyTorch's formulation)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..parameter import Parameter
from .optimizer import Optimizer, _check_nonnegative


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum.

    For each parameter ``p`` with gradient ``g`` (PyTorch's ``torch.optim.SGD``)::

        g = -g                          if maximize
        g = g + weight_decay * p        if weight_decay != 0
        if momentum != 0:
            b = g                                          on the first step
            b = momentum * b + (1 - dampening) * g         afterwards
            g = g + momentum * b        if nesterov
            g = b                       otherwise
        p = p - lr * g

    Args:
        params: Parameters or parameter groups (dicts).
        lr: learning rate (default 1e-3).
        momentum: momentum factor (default 0).
        dampening: dampening of the momentum (default 0).
        weight_decay: L2 penalty added to the gradient (default 0).
        nesterov: Nesterov momentum (needs momentum > 0 and dampening 0).
        maximize: maximize the objective instead of minimizing it.

    State per parameter: ``momentum_buffer`` (only when momentum != 0).
    """

    _state_keys = ("momentum_buffer",)

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], lr: float = 1e-3,
                 momentum: float = 0, dampening: float = 0, weight_decay: float = 0,
                 nesterov: bool = False, maximize: bool = False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        _check_nonnegative(group, "momentum", "Invalid momentum value")
        _check_nonnegative(group, "weight_decay", "Invalid weight_decay value")
        _check_nonnegative(group, "dampening", "Invalid dampening value")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening "
                             f"(got momentum={group['momentum']}, "
                             f"dampening={group['dampening']})")

    def _update_group(self, group: dict) -> None:
        # Python floats keep float32 arrays float32 (NumPy scalars would promote them).
        lr = float(group["lr"])
        momentum = float(group["momentum"])
        dampening = float(group["dampening"])
        weight_decay = float(group["weight_decay"])
        nesterov = bool(group["nesterov"])
        maximize = bool(group["maximize"])
        for p in self._active(group):
            grad = p.grad
            a, b = self._scratch(p.data)
            if weight_decay != 0:
                np.multiply(p.data, weight_decay, out=a)
                if maximize:
                    a -= grad
                else:
                    a += grad
                grad = a
            elif maximize:
                grad = np.negative(grad, out=a)
            if momentum != 0:
                state = self.state.setdefault(p, {})
                buf = state.get("momentum_buffer")
                if buf is None:
                    state["momentum_buffer"] = buf = grad.copy()
                else:
                    buf *= momentum
                    if dampening == 0:
                        buf += grad
                    else:
                        buf += np.multiply(grad, 1.0 - dampening, out=b)
                if nesterov:
                    np.multiply(buf, momentum, out=b)
                    grad = np.add(grad, b, out=b)
                else:
                    grad = buf
            p.data += np.multiply(grad, -lr, out=b)
