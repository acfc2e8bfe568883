"""NAdam and RAdam (PyTorch's formulations, with decoupled weight decay and maximize)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

import numpy as np

from ..parameter import Parameter
from ._checks import _check_betas, _check_flag, _check_nonnegative
from ._elementwise import ElementwiseOptimizer, lerp_
from ._updates import _effective_grad


class _AdamFamily(ElementwiseOptimizer):
    """The checks and the first steps NAdam and RAdam share."""

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        name = type(self).__name__
        _check_nonnegative(name, group, "eps", "epsilon value")
        _check_betas(name, group)
        _check_nonnegative(name, group, "weight_decay", "weight_decay value")
        for key in ("maximize", "decoupled_weight_decay"):
            _check_flag(name, group, key)

    def _array_state(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq")


class _Hyper:
    """A group's hyperparameters as Python floats (NumPy scalars would upcast float32)."""

    def __init__(self, group: dict[str, Any]):
        self.lr = float(group["lr"])
        self.beta1, self.beta2 = (float(b) for b in group["betas"])
        self.eps = float(group["eps"])
        weight_decay = float(group["weight_decay"])
        decoupled = bool(group["decoupled_weight_decay"])
        self.decay_factor = 1.0 - self.lr * weight_decay if decoupled else 1.0
        self.l2 = 0.0 if decoupled else weight_decay
        self.maximize = bool(group["maximize"])


def _moments(hp: _Hyper, data: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray,
             a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The steps both share: the effective gradient (returned, ``grad`` or ``a``), the
    decoupled decay of ``data``, then m <- lerp(m, g, 1 - beta1), v <- beta2 v + (1 - beta2) g^2."""
    grad = _effective_grad(data, grad, a, hp.l2, hp.maximize)
    if hp.decay_factor != 1.0:
        data *= hp.decay_factor
    lerp_(m, grad, 1.0 - hp.beta1, b)
    v *= hp.beta2
    np.multiply(grad, grad, out=b)
    b *= 1.0 - hp.beta2
    v += b
    return grad


class NAdam(_AdamFamily):
    r"""NAdam: Adam with Nesterov momentum (Dozat), as ``torch.optim.NAdam``.

    For each parameter ``p`` with gradient ``g``, at step ``t`` (starting at 1)::

        g = -g                                       if maximize
        p = p * (1 - lr * weight_decay)              if decoupled_weight_decay
        g = g + weight_decay * p                     otherwise, if weight_decay != 0
        mu_t      = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next   = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        mu_product = mu_product * mu_t               (starts at 1)
        m = m + (1 - beta1) * (g - m)
        v = beta2 * v + (1 - beta2) * g * g
        denom = sqrt(v / (1 - beta2 ** t)) + eps
        p = p - lr * (1 - mu_t) / (1 - mu_product) * g / denom
        p = p - lr * mu_next / (1 - mu_product * mu_next) * m / denom

    Args:
        params: Parameters or parameter groups (dicts).
        lr: learning rate (default 2e-3).
        betas: (beta1, beta2) (default (0.9, 0.999)).
        eps: added to the denominator (default 1e-8).
        weight_decay: L2 penalty, or decoupled decay rate (default 0).
        momentum_decay: the momentum schedule's decay psi (default 4e-3).
        decoupled_weight_decay: decay the parameter directly (NAdamW) instead of adding
            an L2 term to the gradient.
        foreach: torch's implementation switch, accepted without effect.
        maximize: maximize the objective instead of minimizing it.
        capturable, differentiable: must be False (CUDA graphs, autograd through the
            step); True raises ValueError.

    State per parameter: ``step`` and ``mu_product`` (Python floats; torch keeps them as
    tensors of its default dtype, so set ``torch.set_default_dtype(torch.float64)`` to
    compare digits), ``exp_avg`` (m), ``exp_avg_sq`` (v). Created at the first update.
    """

    _state_keys = ("step", "mu_product", "exp_avg", "exp_avg_sq")
    _scalar_state_keys = ("step", "mu_product")

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], lr: float = 2e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, foreach: bool | None = None,
                 maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False):
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas,
                        eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                        foreach=foreach, capturable=capturable, differentiable=differentiable)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        _check_nonnegative(type(self).__name__, group, "momentum_decay", "momentum_decay value")

    def _new_state(self, p: Parameter, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": 0.0, "mu_product": 1.0, "exp_avg": np.zeros_like(p.data),
                "exp_avg_sq": np.zeros_like(p.data)}

    def _advance(self, group: dict[str, Any], state: dict[str, Any]) -> tuple:
        beta1 = float(group["betas"][0])
        psi = float(group["momentum_decay"])
        step = state["step"] = state["step"] + 1.0
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * psi))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1.0) * psi))
        mu_product = state["mu_product"] = state["mu_product"] * mu
        return step, mu, mu_next, mu_product

    def _kernel(self, group: dict[str, Any], scalars: tuple):
        return partial(_nadam_kernel, _Hyper(group), *scalars)


def _nadam_kernel(hp: _Hyper, step: float, mu: float, mu_next: float, mu_product: float,
                  data: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray,
                  a: np.ndarray, b: np.ndarray) -> None:
    grad = _moments(hp, data, grad, m, v, a, b)
    # denom = sqrt(v / bias_correction2) + eps
    np.divide(v, 1.0 - hp.beta2 ** step, out=b)
    np.sqrt(b, out=b)
    b += hp.eps
    np.divide(grad, b, out=a)
    a *= -hp.lr * (1.0 - mu) / (1.0 - mu_product)
    data += a
    np.divide(m, b, out=a)
    a *= (-hp.lr * mu_next) / (1.0 - mu_product * mu_next)
    data += a


class RAdam(_AdamFamily):
    r"""RAdam: Adam with a rectified adaptive learning rate (Liu et al.), as
    ``torch.optim.RAdam``.

    For each parameter ``p`` with gradient ``g``, at step ``t`` (starting at 1)::

        g = -g                                       if maximize
        p = p * (1 - lr * weight_decay)              if decoupled_weight_decay
        g = g + weight_decay * p                     otherwise, if weight_decay != 0
        m = m + (1 - beta1) * (g - m)
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1 ** t)
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * t * beta2 ** t / (1 - beta2 ** t)
        if rho_t > 5:
            rect = sqrt((rho_t - 4) (rho_t - 2) rho_inf / ((rho_inf - 4) (rho_inf - 2) rho_t))
            adaptive = sqrt(1 - beta2 ** t) / (sqrt(v) + eps)
            p = p - m_hat * lr * adaptive * rect
        else:
            p = p - m_hat * lr

    Args:
        params: Parameters or parameter groups (dicts).
        lr: learning rate (default 1e-3).
        betas: (beta1, beta2) (default (0.9, 0.999)).
        eps: added to the denominator (default 1e-8).
        weight_decay: L2 penalty, or decoupled decay rate (default 0).
        decoupled_weight_decay: decay the parameter directly (RAdamW).
        foreach: torch's implementation switch, accepted without effect.
        maximize: maximize the objective instead of minimizing it.
        capturable, differentiable: must be False; True raises ValueError.

    State per parameter: ``step`` (float), ``exp_avg`` (m), ``exp_avg_sq`` (v). Created at
    the first update.
    """

    _state_keys = ("step", "exp_avg", "exp_avg_sq")

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, decoupled_weight_decay: bool = False, *,
                 foreach: bool | None = None, maximize: bool = False,
                 capturable: bool = False, differentiable: bool = False):
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas,
                        eps=eps, weight_decay=weight_decay, maximize=maximize,
                        foreach=foreach, capturable=capturable,
                        decoupled_weight_decay=decoupled_weight_decay,
                        differentiable=differentiable)
        super().__init__(params, defaults)

    def _new_state(self, p: Parameter, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": 0.0, "exp_avg": np.zeros_like(p.data),
                "exp_avg_sq": np.zeros_like(p.data)}

    def _advance(self, group: dict[str, Any], state: dict[str, Any]) -> tuple:
        state["step"] += 1.0
        return (state["step"],)

    def _kernel(self, group: dict[str, Any], scalars: tuple):
        return partial(_radam_kernel, _Hyper(group), *scalars)


def _radam_kernel(hp: _Hyper, step: float, data: np.ndarray, grad: np.ndarray, m: np.ndarray,
                  v: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    _moments(hp, data, grad, m, v, a, b)
    bias_correction1 = 1.0 - hp.beta1 ** step
    bias_correction2 = 1.0 - hp.beta2 ** step
    rho_inf = 2.0 / (1.0 - hp.beta2) - 1.0
    rho_t = rho_inf - 2.0 * step * (hp.beta2 ** step) / bias_correction2
    np.divide(m, bias_correction1, out=a)  # m_hat
    a *= hp.lr
    if rho_t > 5.0:
        rect = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)) ** 0.5
        np.sqrt(v, out=b)
        b += hp.eps
        np.divide(bias_correction2 ** 0.5, b, out=b)
        a *= b
        a *= rect
    data -= a
