"""RMSprop (PyTorch's formulation: epsilon outside the square root, optional centering)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

import numpy as np

from ..parameter import Parameter
from ._checks import _check_flag, _check_nonnegative
from ._updates import _batch_by_step, _effective_grad
from .optimizer import Optimizer


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
        capturable, differentiable: must be False (CUDA graphs, autograd through the
            step); True raises ValueError.
        foreach: torch's implementation switch, accepted without effect.
        maximize: maximize the objective instead of minimizing it.

    State per parameter: ``step``, ``square_avg`` (v), ``momentum_buffer`` (if
    momentum > 0), ``grad_avg`` (if centered); all start at zero.
    """

    _state_keys = ("step", "square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], lr: float = 1e-2,
                 alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0,
                 momentum: float = 0, centered: bool = False, capturable: bool = False,
                 foreach: bool | None = None, maximize: bool = False,
                 differentiable: bool = False):
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach,
                        maximize=maximize, differentiable=differentiable)
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        name = type(self).__name__
        _check_nonnegative(name, group, "eps", "epsilon value")
        _check_nonnegative(name, group, "momentum", "momentum value")
        _check_nonnegative(name, group, "weight_decay", "weight_decay value")
        _check_nonnegative(name, group, "alpha", "alpha value")
        _check_flag(name, group, "centered")
        _check_flag(name, group, "maximize")

    def _update_group(self, group: dict) -> None:
        hp = _Hyper(group)
        params = self._active(group)
        states = [self._state_of(p, hp) for p in params]
        large, batches = _batch_by_step(params, states)
        names = (("square_avg",) + (("momentum_buffer",) if hp.momentum > 0 else ())
                 + (("grad_avg",) if hp.centered else ()))
        increment = partial(_rmsprop_increment, hp, names)
        tasks: list[Callable[..., None]] = []
        for p in large:
            state = self.state[p]
            state["step"] += 1.0
            tasks += self._increment_tasks(p, [state[name] for name in names], increment)
        for batch in batches:  # many small tensors at once (see _flat.py), bit-identical
            batch_states = [self.state[p] for p in batch]
            bucket = self._flat_bucket(group, batch, batch_states, names)
            step = batch_states[0]["step"] + 1.0
            for state in batch_states:
                state["step"] = step
            tasks += self._flat_increment_tasks(bucket, batch, names, hp.weight_decay != 0,
                                                increment)
        self._run_tasks(tasks, sum(p.data.size for p in params))

    def _state_of(self, p: Parameter, hp: _Hyper) -> dict:
        """The parameter's state, created (zeros, step 0) at its first update."""
        state = self.state.get(p)
        if state is None:
            state = self.state[p] = {"step": 0.0, "square_avg": np.zeros_like(p.data)}
        if hp.momentum > 0 and "momentum_buffer" not in state:
            state["momentum_buffer"] = np.zeros_like(p.data)
        if hp.centered and "grad_avg" not in state:
            state["grad_avg"] = np.zeros_like(p.data)
        return state


class _Hyper:
    """A group's hyperparameters as Python floats (NumPy scalars would upcast float32)."""

    def __init__(self, group: dict):
        self.lr = float(group["lr"])
        self.alpha = float(group["alpha"])
        self.eps = float(group["eps"])
        self.weight_decay = float(group["weight_decay"])
        self.momentum = float(group["momentum"])
        self.centered = bool(group["centered"])
        self.maximize = bool(group["maximize"])


def _rmsprop_increment(hp: _Hyper, names: tuple[str, ...], data: np.ndarray | None,
                       grad: np.ndarray, *rest: np.ndarray) -> None:
    """The effective gradient, then the kernel (``rest``: the states named ``names``, then
    the scratch arrays ``a`` and ``b``)."""
    states, a, b = dict(zip(names, rest[:-2])), rest[-2], rest[-1]
    grad = _effective_grad(data, grad, a, hp.weight_decay, hp.maximize)
    _rmsprop_kernel(grad, states["square_avg"], states.get("grad_avg"),
                    states.get("momentum_buffer"), b, hp)


def _rmsprop_kernel(grad: np.ndarray, v: np.ndarray, g_avg: np.ndarray | None,
                    buf: np.ndarray | None, b: np.ndarray, hp: _Hyper) -> None:
    """Update the state in place and write the amount to add to p into ``b``."""
    v *= hp.alpha
    np.multiply(grad, grad, out=b)
    b *= 1.0 - hp.alpha
    v += b
    if hp.centered:
        np.subtract(grad, g_avg, out=b)
        b *= 1.0 - hp.alpha
        g_avg += b
        np.multiply(g_avg, g_avg, out=b)
        np.subtract(v, b, out=b)
        np.sqrt(b, out=b)
    else:
        np.sqrt(v, out=b)
    b += hp.eps
    np.divide(grad, b, out=b)
    if hp.momentum > 0:
        buf *= hp.momentum
        buf += b
        np.multiply(buf, -hp.lr, out=b)
    else:
        b *= -hp.lr
