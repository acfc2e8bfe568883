"""ASGD and Rprop (PyTorch's formulations)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from numbers import Real
from typing import Any

import numpy as np

from ..parameter import Parameter
from ._checks import _check_flag, _check_nonnegative
from ._elementwise import ElementwiseOptimizer
from ._updates import _effective_grad


class ASGD(ElementwiseOptimizer):
    r"""Averaged stochastic gradient descent (Polyak & Juditsky), as ``torch.optim.ASGD``.

    For each parameter ``p`` with gradient ``g``, at step ``t`` (starting at 1), with
    ``eta`` starting at ``lr`` and ``mu`` at 1::

        g = -g                                       if maximize
        g = g + weight_decay * p                     if weight_decay != 0
        p = p * (1 - lambd * eta)
        p = p - eta * g
        ax = ax + mu * (p - ax)                      (ax = p while mu == 1)
        eta = lr / (1 + lambd * lr * t) ** alpha
        mu = 1 / max(1, t - t0)

    ``ax`` is the running average of the iterates, which ASGD is about: copy it into the
    parameters to evaluate the averaged model.

    Args:
        params: Parameters or parameter groups (dicts).
        lr: learning rate (default 1e-2).
        lambd: decay term (default 1e-4).
        alpha: power of the eta schedule (default 0.75).
        t0: the step after which averaging starts (default 1e6).
        weight_decay: L2 penalty (default 0).
        foreach: torch's implementation switch, accepted without effect.
        maximize: maximize the objective instead of minimizing it.
        differentiable, capturable: must be False; True raises ValueError.

    State per parameter: ``step``, ``eta``, ``mu`` (Python floats; torch keeps them as
    tensors of its default dtype) and ``ax`` (the average). Created at the first update.
    """

    _state_keys = ("step", "eta", "mu", "ax")
    _scalar_state_keys = ("step", "eta", "mu")

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], lr: float = 1e-2,
                 lambd: float = 1e-4, alpha: float = 0.75, t0: float = 1e6,
                 weight_decay: float = 0, foreach: bool | None = None,
                 maximize: bool = False, differentiable: bool = False,
                 capturable: bool = False):
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
                        foreach=foreach, maximize=maximize, differentiable=differentiable,
                        capturable=capturable)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        name = type(self).__name__
        _check_nonnegative(name, group, "weight_decay", "weight_decay value")
        for key in ("lambd", "alpha", "t0"):  # torch checks only their type; < 0 diverges
            _check_nonnegative(name, group, key, f"{key} value")
        _check_flag(name, group, "maximize")

    def _array_state(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("ax",)

    def _new_state(self, p: Parameter, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": 0.0, "eta": float(group["lr"]), "mu": 1.0,
                "ax": np.zeros_like(p.data)}

    def _advance(self, group: dict[str, Any], state: dict[str, Any]) -> tuple:
        """The eta and mu this step uses; the state gets those of the next step."""
        lr, lambd = float(group["lr"]), float(group["lambd"])
        eta, mu = state["eta"], state["mu"]
        step = state["step"] = state["step"] + 1.0
        state["eta"] = lr / ((1.0 + lambd * lr * step) ** float(group["alpha"]))
        state["mu"] = 1.0 / max(1.0, step - float(group["t0"]))
        return eta, mu

    def _kernel(self, group: dict[str, Any], scalars: tuple):
        return partial(_asgd_kernel, float(group["lambd"]), float(group["weight_decay"]),
                       bool(group["maximize"]), *scalars)


def _asgd_kernel(lambd: float, weight_decay: float, maximize: bool, eta: float, mu: float,
                 data: np.ndarray, grad: np.ndarray, ax: np.ndarray, a: np.ndarray,
                 b: np.ndarray) -> None:
    grad = _effective_grad(data, grad, a, weight_decay, maximize)
    data *= 1.0 - lambd * eta
    np.multiply(grad, -eta, out=b)
    data += b
    if mu != 1.0:
        np.subtract(data, ax, out=b)
        b *= mu
        ax += b
    else:
        np.copyto(ax, data)


class Rprop(ElementwiseOptimizer):
    r"""Resilient backpropagation (Riedmiller & Braun), as ``torch.optim.Rprop``.

    Each element has its own step size ``s`` (starting at ``lr``) and remembers its
    previous gradient ``prev`` (starting at 0). For each parameter ``p`` with gradient
    ``g``, element-wise::

        g = -g                                       if maximize
        f = etaplus    where g * prev > 0            (same sign: speed up)
            etaminus   where g * prev < 0            (sign change: slow down ...)
            1          where g * prev == 0
        s = clamp(s * f, step_size_min, step_size_max)
        g = 0          where f == etaminus           (... and skip this step)
        p = p - sign(g) * s
        prev = g

    Args:
        params: Parameters or parameter groups (dicts).
        lr: initial step size (default 1e-2).
        etas: (etaminus, etaplus), with 0 < etaminus < 1 < etaplus (default (0.5, 1.2)).
        step_sizes: (step_size_min, step_size_max) (default (1e-6, 50)).
        capturable, differentiable: must be False; True raises ValueError.
        foreach: torch's implementation switch, accepted without effect.
        maximize: maximize the objective instead of minimizing it.

    State per parameter: ``step`` (float), ``prev`` and ``step_size``. Created at the
    first update. (No ``weight_decay``: PyTorch's Rprop has none.)
    """

    _state_keys = ("step", "prev", "step_size")

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], lr: float = 1e-2,
                 etas: tuple[float, float] = (0.5, 1.2),
                 step_sizes: tuple[float, float] = (1e-6, 50), *, capturable: bool = False,
                 foreach: bool | None = None, maximize: bool = False,
                 differentiable: bool = False):
        defaults = dict(lr=lr, etas=tuple(etas) if isinstance(etas, list) else etas,
                        step_sizes=(tuple(step_sizes) if isinstance(step_sizes, list)
                                    else step_sizes),
                        foreach=foreach, maximize=maximize, differentiable=differentiable,
                        capturable=capturable)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        name = type(self).__name__
        for key in ("etas", "step_sizes"):
            pair = group[key]
            if (not isinstance(pair, (tuple, list)) or len(pair) != 2
                    or any(isinstance(x, bool) or not isinstance(x, Real) for x in pair)):
                raise ValueError(f"{name}: invalid {key}={pair!r} (expected a pair of real "
                                 "numbers)")
        step_min, step_max = group["step_sizes"]
        if not 0.0 <= step_min <= step_max:
            raise ValueError(f"{name}: invalid step_sizes=({step_min}, {step_max}) (expected "
                             "0 <= min_step <= max_step)")
        etaminus, etaplus = group["etas"]
        if not 0.0 < etaminus < 1.0 < etaplus:
            raise ValueError(f"{name}: invalid eta values etas=({etaminus}, {etaplus}) "
                             "(expected 0 < etaminus < 1 < etaplus)")
        _check_flag(name, group, "maximize")

    def _array_state(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("prev", "step_size")

    def _new_state(self, p: Parameter, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": 0.0, "prev": np.zeros_like(p.data),
                "step_size": np.full_like(p.data, float(group["lr"]))}

    def _advance(self, group: dict[str, Any], state: dict[str, Any]) -> tuple:
        state["step"] += 1.0
        return ()

    def _kernel(self, group: dict[str, Any], scalars: tuple):
        etaminus, etaplus = (float(x) for x in group["etas"])
        size_min, size_max = (float(x) for x in group["step_sizes"])
        return partial(_rprop_kernel, etaminus, etaplus, size_min, size_max,
                       bool(group["maximize"]))


def _rprop_kernel(etaminus: float, etaplus: float, size_min: float, size_max: float,
                  maximize: bool, data: np.ndarray, grad: np.ndarray, prev: np.ndarray,
                  step_size: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    if maximize:
        np.negative(grad, out=a)
    else:
        np.copyto(a, grad)
    np.multiply(a, prev, out=b)
    np.sign(b, out=b)  # then the factor f (NaN stays NaN, as in torch)
    np.copyto(b, etaplus, where=b > 0)
    np.copyto(b, etaminus, where=b < 0)
    np.copyto(b, 1.0, where=b == 0)
    step_size *= b
    np.clip(step_size, size_min, size_max, out=step_size)
    np.copyto(a, 0.0, where=b == etaminus)
    np.sign(a, out=b)
    b *= step_size
    data -= b
    np.copyto(prev, a)
