"""Adamax and Adadelta (PyTorch's formulations)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from numbers import Real
from typing import Any

import numpy as np

from ..parameter import Parameter
from ._checks import _check_betas, _check_flag, _check_nonnegative
from ._elementwise import ElementwiseOptimizer, lerp_
from ._updates import _effective_grad


class Adamax(ElementwiseOptimizer):
    r"""Adamax: Adam with the infinity norm (Kingma & Ba), as ``torch.optim.Adamax``.

    For each parameter ``p`` with gradient ``g``, at step ``t`` (starting at 1)::

        g = -g                                       if maximize
        g = g + weight_decay * p                     if weight_decay != 0
        m = m + (1 - beta1) * (g - m)
        u = max(beta2 * u, |g| + eps)
        p = p - lr / (1 - beta1 ** t) * m / u

    Args:
        params: Parameters or parameter groups (dicts).
        lr: learning rate (default 2e-3).
        betas: (beta1, beta2) (default (0.9, 0.999)).
        eps: added to ``|g|`` (default 1e-8).
        weight_decay: L2 penalty (default 0).
        foreach: torch's implementation switch, accepted without effect.
        maximize: maximize the objective instead of minimizing it.
        differentiable, capturable: must be False; True raises ValueError.

    State per parameter: ``step`` (float), ``exp_avg`` (m), ``exp_inf`` (u). Created at
    the first update.
    """

    _state_keys = ("step", "exp_avg", "exp_inf")

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], lr: float = 2e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, foreach: bool | None = None, *,
                 maximize: bool = False, differentiable: bool = False,
                 capturable: bool = False):
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas,
                        eps=eps, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        name = type(self).__name__
        _check_nonnegative(name, group, "eps", "epsilon value")
        _check_betas(name, group)
        _check_nonnegative(name, group, "weight_decay", "weight_decay value")
        _check_flag(name, group, "maximize")

    def _array_state(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("exp_avg", "exp_inf")

    def _new_state(self, p: Parameter, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": 0.0, "exp_avg": np.zeros_like(p.data),
                "exp_inf": np.zeros_like(p.data)}

    def _advance(self, group: dict[str, Any], state: dict[str, Any]) -> tuple:
        state["step"] += 1.0
        return (state["step"],)

    def _kernel(self, group: dict[str, Any], scalars: tuple):
        beta1, beta2 = (float(b) for b in group["betas"])
        clr = float(group["lr"]) / (1.0 - beta1 ** scalars[0])
        return partial(_adamax_kernel, beta1, beta2, float(group["eps"]),
                       float(group["weight_decay"]), bool(group["maximize"]), clr)


def _adamax_kernel(beta1: float, beta2: float, eps: float, weight_decay: float,
                   maximize: bool, clr: float, data: np.ndarray, grad: np.ndarray,
                   m: np.ndarray, u: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    grad = _effective_grad(data, grad, a, weight_decay, maximize)
    lerp_(m, grad, 1.0 - beta1, b)
    u *= beta2
    np.abs(grad, out=b)
    b += eps
    np.maximum(u, b, out=u)
    np.divide(m, u, out=b)
    b *= -clr
    data += b


class Adadelta(ElementwiseOptimizer):
    r"""Adadelta (Zeiler), as ``torch.optim.Adadelta``.

    For each parameter ``p`` with gradient ``g``::

        g = -g                                       if maximize
        g = g + weight_decay * p                     if weight_decay != 0
        v = rho * v + (1 - rho) * g * g
        delta = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta * delta
        p = p - lr * delta

    Args:
        params: Parameters or parameter groups (dicts).
        lr: scale of the update (default 1.0).
        rho: decay rate of both running averages, in [0, 1] (default 0.9).
        eps: added inside the square roots (default 1e-6).
        weight_decay: L2 penalty (default 0).
        foreach: torch's implementation switch, accepted without effect.
        capturable, differentiable: must be False; True raises ValueError.
        maximize: maximize the objective instead of minimizing it.

    State per parameter: ``step`` (float), ``square_avg`` (v), ``acc_delta`` (u). Created
    at the first update.
    """

    _state_keys = ("step", "square_avg", "acc_delta")
    _scratch_count = 3

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], lr: float = 1.0,
                 rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0,
                 foreach: bool | None = None, *, capturable: bool = False,
                 maximize: bool = False, differentiable: bool = False):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        capturable=capturable, foreach=foreach, differentiable=differentiable)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        name = type(self).__name__
        rho = group["rho"]
        if isinstance(rho, bool) or not isinstance(rho, Real) or not 0.0 <= rho <= 1.0:
            raise ValueError(f"{name}: invalid rho value rho={rho!r} (expected 0 <= rho <= 1)")
        _check_nonnegative(name, group, "eps", "epsilon value")
        _check_nonnegative(name, group, "weight_decay", "weight_decay value")
        _check_flag(name, group, "maximize")

    def _array_state(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("square_avg", "acc_delta")

    def _new_state(self, p: Parameter, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": 0.0, "square_avg": np.zeros_like(p.data),
                "acc_delta": np.zeros_like(p.data)}

    def _advance(self, group: dict[str, Any], state: dict[str, Any]) -> tuple:
        state["step"] += 1.0
        return ()

    def _kernel(self, group: dict[str, Any], scalars: tuple):
        return partial(_adadelta_kernel, float(group["lr"]), float(group["rho"]),
                       float(group["eps"]), float(group["weight_decay"]),
                       bool(group["maximize"]))


def _adadelta_kernel(lr: float, rho: float, eps: float, weight_decay: float, maximize: bool,
                     data: np.ndarray, grad: np.ndarray, v: np.ndarray, u: np.ndarray,
                     a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    grad = _effective_grad(data, grad, a, weight_decay, maximize)
    v *= rho
    np.multiply(grad, grad, out=b)
    b *= 1.0 - rho
    v += b
    np.add(v, eps, out=b)
    np.sqrt(b, out=b)  # std
    np.add(u, eps, out=c)
    np.sqrt(c, out=c)
    c /= b
    c *= grad  # delta
    u *= rho
    np.multiply(c, c, out=b)
    b *= 1.0 - rho
    u += b
    c *= -lr
    data += c
