"""The optimizers' element-wise updates as compiled loops (the Numba backend).

The NumPy twins are ``handgrad.optim.adam._adam_kernel`` and
``handgrad.optim.sgd._momentum_kernel``: the same arguments, the same operations in the same
order and in the array's dtype (the Python-float hyperparameters are converted to it first,
as NumPy does with a Python float), so the results are bit-identical to the NumPy path; the
moments, the maximum and the update are written in ONE pass instead of eight to ten. They
work on the flat buffers of ``handgrad.optim._flat`` as well as on one tensor's chunk.
"""

from __future__ import annotations

import math

from ._jit import kernel

__all__ = ["adam_update", "momentum_update"]


@kernel
def adam_step(grad, m, v, v_max, out, one_minus_beta1, beta2, one_minus_beta2, amsgrad,
              inv_scale, eps_scaled, apply):
    """Adam's moments in place and the amount to subtract from p into ``out``:

        m = m + (1 - beta1) (g - m);   v = beta2 v + (1 - beta2) g^2;   v_max = max(v_max, v)
        out = m / (sqrt(v_hat) * inv_scale + eps_scaled)      (v_hat = v_max or v)

    with ``inv_scale = 1 / (sqrt(1 - beta2^t) * step_size)`` and ``eps_scaled = eps /
    step_size`` (see ``optim.adam``); ``out`` is left alone when ``apply`` is False.
    """
    for k in range(grad.size):
        g = grad[k]
        m[k] += (g - m[k]) * one_minus_beta1
        v[k] = v[k] * beta2 + (g * g) * one_minus_beta2
        v_hat = v[k]
        if amsgrad:
            largest = v_max[k]
            if v_hat > largest or v_hat != v_hat:  # np.maximum: NaN wins
                largest = v_hat
            v_max[k] = largest
            v_hat = largest
        if apply:
            out[k] = m[k] / (math.sqrt(v_hat) * inv_scale + eps_scaled)


@kernel
def momentum_step(buf, grad, momentum, one_minus_dampening, dampening):
    """SGD's momentum buffer in place: ``buf = momentum * buf + (1 - dampening) * g``."""
    for k in range(grad.size):
        if dampening:
            buf[k] = buf[k] * momentum + grad[k] * one_minus_dampening
        else:
            buf[k] = buf[k] * momentum + grad[k]


def _flat(*arrays):
    """1-d views of C-contiguous arrays, or None when one is not (a copy would lose the
    writes): the caller then takes the NumPy path."""
    if not all(a.flags.c_contiguous for a in arrays):
        return None
    return [a.reshape(-1) for a in arrays]


def adam_update(grad, m, v, v_max, out, hp, step: float) -> bool | None:
    """``optim.adam._adam_kernel`` in one pass; None when the arrays are not contiguous."""
    arrays = _flat(grad, m, v, out, m if v_max is None else v_max)
    if arrays is None:
        return None
    grad, m, v, out, v_max = arrays
    dtype = m.dtype.type
    step_size = hp.lr / (1.0 - hp.beta1 ** step)
    apply = step_size != 0.0
    inv_scale = eps_scaled = 0.0
    if apply:
        inv_scale = 1.0 / ((1.0 - hp.beta2 ** step) ** 0.5 * step_size)
        eps_scaled = hp.eps / step_size
    adam_step(grad, m, v, v_max, out, dtype(1.0 - hp.beta1), dtype(hp.beta2),
              dtype(1.0 - hp.beta2), hp.amsgrad, dtype(inv_scale), dtype(eps_scaled), apply)
    return apply


def momentum_update(buf, grad, hp) -> bool:
    """``optim.sgd._momentum_kernel`` in one pass; False when the arrays are not contiguous."""
    arrays = _flat(buf, grad)
    if arrays is None:
        return False
    buf, grad = arrays
    dtype = buf.dtype.type
    momentum_step(buf, grad, dtype(hp.momentum), dtype(1.0 - hp.dampening),
                  hp.dampening != 0)
    return True
