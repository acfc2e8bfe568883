"""Adam and AdamW (PyTorch's formulation, including amsgrad and maximize)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..parameter import Parameter
from .optimizer import Optimizer, _check_betas, _check_nonnegative


class Adam(Optimizer):
    r"""Adam (Kingma & Ba), with PyTorch's bias correction and epsilon placement.

    For each parameter ``p`` with gradient ``g``, at step ``t`` (starting at 1)::

        g = -g                                   if maximize
        p = p * (1 - lr * weight_decay)          AdamW (decoupled weight decay)
        g = g + weight_decay * p                 Adam (L2 penalty), if weight_decay != 0
        m = m + (1 - beta1) * (g - m)            (= beta1 * m + (1 - beta1) * g, torch's lerp)
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v);  v_hat = v_max    if amsgrad, else v_hat = v
        bias_correction1 = 1 - beta1 ** t
        bias_correction2 = 1 - beta2 ** t
        step_size = lr / bias_correction1
        denom = sqrt(v_hat) / sqrt(bias_correction2) + eps
        p = p - step_size * m / denom

    The last two lines are evaluated as ``p -= m / (sqrt(v_hat) / (sqrt(bc2) * step_size)
    + eps / step_size)`` (the same number up to rounding, one pass less; PyTorch's
    ``capturable`` path uses this form too).

    Args:
        params: Parameters or parameter groups (dicts).
        lr: learning rate (default 1e-3).
        betas: (beta1, beta2), decay rates of the moment estimates (default (0.9, 0.999)).
        eps: added to the denominator (default 1e-8).
        weight_decay: L2 penalty (Adam) or decoupled decay rate (AdamW).
        amsgrad: use the running maximum of ``v`` (AMSGrad).
        maximize: maximize the objective instead of minimizing it.

    State per parameter: ``step`` (float), ``exp_avg`` (m), ``exp_avg_sq`` (v) and
    ``max_exp_avg_sq`` (v_max, with amsgrad). Created at the parameter's first update.
    """

    _state_keys = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _decoupled = False

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, maximize: bool = False):
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas,
                        eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        _check_nonnegative(group, "eps", "Invalid epsilon value")
        _check_betas(group)
        _check_nonnegative(group, "weight_decay", "Invalid weight_decay value")

    def _update_group(self, group: dict) -> None:
        lr = float(group["lr"])
        beta1, beta2 = (float(b) for b in group["betas"])
        eps = float(group["eps"])
        weight_decay = float(group["weight_decay"])
        amsgrad = bool(group["amsgrad"])
        maximize = bool(group["maximize"])
        for p in self._active(group):
            state = self.state.get(p)
            if state is None:
                state = self.state[p] = {
                    "step": 0.0,
                    "exp_avg": np.zeros_like(p.data),
                    "exp_avg_sq": np.zeros_like(p.data),
                }
            if amsgrad and "max_exp_avg_sq" not in state:
                state["max_exp_avg_sq"] = np.zeros_like(p.data)
            step = state["step"] = state["step"] + 1.0
            m, v = state["exp_avg"], state["exp_avg_sq"]
            a, b = self._scratch(p.data)
            grad = p.grad
            if weight_decay != 0 and self._decoupled:
                p.data *= 1.0 - lr * weight_decay
            if weight_decay != 0 and not self._decoupled:
                np.multiply(p.data, weight_decay, out=a)
                if maximize:
                    a -= grad
                else:
                    a += grad
                grad = a
            elif maximize:
                grad = np.negative(grad, out=a)
            # m <- m + (1 - beta1) (g - m)
            np.subtract(grad, m, out=b)
            b *= 1.0 - beta1
            m += b
            # v <- beta2 v + (1 - beta2) g^2
            v *= beta2
            np.multiply(grad, grad, out=b)
            b *= 1.0 - beta2
            v += b
            if amsgrad:
                v = np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            step_size = lr / (1.0 - beta1 ** step)
            if step_size == 0.0:
                continue
            bias_correction2_sqrt = (1.0 - beta2 ** step) ** 0.5
            # p <- p - m / (sqrt(v) / (sqrt(bc2) step_size) + eps / step_size)
            np.sqrt(v, out=b)
            b *= 1.0 / (bias_correction2_sqrt * step_size)
            b += eps / step_size
            p.data -= np.divide(m, b, out=b)


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's ``AdamW``.

    Same update as :class:`Adam` except that the decay is applied to the parameter
    directly, before the moments are updated, and not added to the gradient::

        p = p * (1 - lr * weight_decay)

    Default ``weight_decay=1e-2``. Same arguments and state as :class:`Adam`.
    """

    _decoupled = True

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, maximize: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)
