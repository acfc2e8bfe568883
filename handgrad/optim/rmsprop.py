"""RMSprop (PyTorch's formulation: epsilon outside the square root, optional centering)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..parameter import Parameter
from .optimizer import Optimizer, _check_nonnegative


class RMSprop(Optimizer):
    r"""RMSprop (Hinton), as ``torch.optim.RMSprop``.

    For each parameter ``p`` with gradient ``g``::

        g = -g                                       if maximize
        g = g + weight_decay * p                     if weight_decay != 0
        v = alpha * v + (1 - alpha) * g * g
        if centered:
            g_avg = g_avg + (1 - alpha) * (g - g_avg)
            denom = sqrt(v - g_avg * g_avg) + eps
        else:
            denom = sqrt(v) + eps
        if momentum > 0:
            b = momentum * b + g / denom
            p = p - lr * b
        else:
            p = p - lr * g / denom

    Args:
        params: Parameters or parameter groups (dicts).
        lr: learning rate (default 1e-2).
        alpha: smoothing constant of the squared-gradient average (default 0.99).
        eps: added to the denominator (default 1e-8).
        weight_decay: L2 penalty (default 0).
        momentum: momentum factor (default 0).
        centered: divide by the estimated variance instead of the raw second moment.
        maximize: maximize the objective instead of minimizing it.

    State per parameter: ``step``, ``square_avg`` (v), ``momentum_buffer`` (if
    momentum > 0), ``grad_avg`` (if centered); all start at zero.
    """

    _state_keys = ("step", "square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], lr: float = 1e-2,
                 alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0,
                 momentum: float = 0, centered: bool = False, maximize: bool = False):
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        _check_nonnegative(group, "eps", "Invalid epsilon value")
        _check_nonnegative(group, "momentum", "Invalid momentum value")
        _check_nonnegative(group, "weight_decay", "Invalid weight_decay value")
        _check_nonnegative(group, "alpha", "Invalid alpha value")

    def _update_group(self, group: dict) -> None:
        lr = float(group["lr"])
        alpha = float(group["alpha"])
        eps = float(group["eps"])
        weight_decay = float(group["weight_decay"])
        momentum = float(group["momentum"])
        centered = bool(group["centered"])
        maximize = bool(group["maximize"])
        for p in self._active(group):
            state = self.state.get(p)
            if state is None:
                state = self.state[p] = {"step": 0.0, "square_avg": np.zeros_like(p.data)}
            if momentum > 0 and "momentum_buffer" not in state:
                state["momentum_buffer"] = np.zeros_like(p.data)
            if centered and "grad_avg" not in state:
                state["grad_avg"] = np.zeros_like(p.data)
            state["step"] += 1.0
            a, b = self._scratch(p.data)
            grad = p.grad
            if weight_decay != 0:
                np.multiply(p.data, weight_decay, out=a)
                if maximize:
                    a -= grad
                else:
                    a += grad
                grad = a
            elif maximize:
                grad = np.negative(grad, out=a)
            v = state["square_avg"]
            v *= alpha
            np.multiply(grad, grad, out=b)
            b *= 1.0 - alpha
            v += b
            if centered:
                g_avg = state["grad_avg"]
                np.subtract(grad, g_avg, out=b)
                b *= 1.0 - alpha
                g_avg += b
                np.multiply(g_avg, g_avg, out=b)
                np.subtract(v, b, out=b)
                np.sqrt(b, out=b)
            else:
                np.sqrt(v, out=b)
            b += eps
            np.divide(grad, b, out=b)
            if momentum > 0:
                buf = state["momentum_buffer"]
                buf *= momentum
                buf += b
                np.multiply(buf, -lr, out=b)
            else:
                b *= -lr
            p.data += b
