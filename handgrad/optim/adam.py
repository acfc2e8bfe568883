"""Adam and AdamW (PyTorch's formulation, including amsgrad and maximize)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

import numpy as np

from ..ops.backend import kernels
from ..parameter import Parameter
from . import _flat
from ._checks import _check_betas, _check_flag, _check_nonnegative
from ._updates import _effective_grad, _flat_effective_grad
from .optimizer import Optimizer


class Adam(Optimizer):
    r"""Adam (Kingma & Ba), with PyTorch's bias correction and epsilon placement.

    For each parameter ``p`` with gradient ``g``, at step ``t`` (starting at 1)::

        g = -g                                   if maximize
        p = p * (1 - lr * weight_decay)          if decoupled_weight_decay (AdamW)
        g = g + weight_decay * p                 otherwise (L2 penalty), if weight_decay != 0
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
        foreach, fused: torch's implementation switches, accepted (None, True or False)
            without effect (the flat path below plays their part).
        maximize: maximize the objective instead of minimizing it.
        capturable, differentiable: must be False (CUDA graphs, autograd through the
            step: nothing handgrad could honour); True raises ValueError.
        decoupled_weight_decay: decay the parameter directly, as :class:`AdamW` does.

    State per parameter: ``step`` (float), ``exp_avg`` (m), ``exp_avg_sq`` (v) and
    ``max_exp_avg_sq`` (v_max, with amsgrad). Created at the parameter's first update.

    Speed: tensors with more than ``_flat.FLAT_MAX_SIZE`` (16384) elements are updated
    one at a time in place, in chunks of at most ``_flat.CHUNK_SIZE`` (131072) elements
    (two reusable scratch arrays per thread). Smaller ones sharing a dtype and step count
    keep their moments in flat buffers (``state[p]`` holds views) and are updated with one
    NumPy call per operation for a run of them. Steps of at least
    ``_flat.PARALLEL_MIN_SIZE`` (524288) elements share these chunks and runs between threads
    (``handgrad.set_num_threads``). Every element sees the same operations in the same
    order on every path, so the results are bit-identical to a plain per-tensor loop.
    """

    _state_keys = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *,
                 foreach: bool | None = None, maximize: bool = False,
                 capturable: bool = False, differentiable: bool = False,
                 fused: bool | None = None, decoupled_weight_decay: bool = False):
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas,
                        eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
                        foreach=foreach, capturable=capturable, differentiable=differentiable,
                        fused=fused, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        name = type(self).__name__
        _check_nonnegative(name, group, "eps", "epsilon value")
        _check_betas(name, group)
        _check_nonnegative(name, group, "weight_decay", "weight_decay value")
        for key in ("amsgrad", "maximize", "decoupled_weight_decay"):
            _check_flag(name, group, key)

    def _update_group(self, group: dict) -> None:
        hp = _Hyper(group, bool(group["decoupled_weight_decay"]))
        # Small tensors with the same dtype and step count are updated together (flat path).
        batches: dict[tuple, list[Parameter]] = {}
        tasks: list[Callable[..., None]] = []
        total = 0
        for p in self._active(group):
            total += p.data.size
            if p.data.size <= _flat.FLAT_MAX_SIZE:
                step = self._state_of(p, hp.amsgrad)["step"]
                batches.setdefault((p.data.dtype, step), []).append(p)
            else:
                tasks += self._tensor_tasks(p, hp)
        for params in batches.values():
            if len(params) == 1:
                tasks += self._tensor_tasks(params[0], hp)
            else:
                tasks += self._flat_tasks(params, hp, group)
        self._run_tasks(tasks, total)

    def _state_of(self, p: Parameter, amsgrad: bool) -> dict:
        """The parameter's state, created (zeros, step 0) at its first update."""
        state = self.state.get(p)
        if state is None:
            state = self.state[p] = {
                "step": 0.0,
                "exp_avg": np.zeros_like(p.data),
                "exp_avg_sq": np.zeros_like(p.data),
            }
        if amsgrad and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = np.zeros_like(p.data)
        return state

    def _tensor_tasks(self, p: Parameter, hp: _Hyper) -> list[Callable[..., None]]:
        """The plain path, one parameter at a time: counts the step and returns the
        update as tasks over chunks of at most ``_flat.CHUNK_SIZE`` elements."""
        state = self._state_of(p, hp.amsgrad)
        step = state["step"] = state["step"] + 1.0
        arrays = [p.data, p.grad, state["exp_avg"], state["exp_avg_sq"]]
        if hp.amsgrad:
            arrays.append(state["max_exp_avg_sq"])
        return [partial(self._update_chunk, hp, step, *chunk)
                for chunk in _flat.chunks(arrays, _flat.CHUNK_SIZE)]

    def _update_chunk(self, hp: _Hyper, step: float, data: np.ndarray, grad: np.ndarray,
                      m: np.ndarray, v: np.ndarray, v_max: np.ndarray | None = None, *,
                      worker: int) -> None:
        """Update (a chunk of) one parameter in place, with the worker's scratch arrays."""
        a, b = self._scratch(data, worker=worker)
        if hp.decay_factor != 1.0:
            data *= hp.decay_factor
        grad = _effective_grad(data, grad, a, hp.l2, hp.maximize)
        if _adam_kernel(grad, m, v, v_max, b, hp, step):
            data -= b

    def _flat_tasks(self, params: list[Parameter], hp: _Hyper,
                    group: dict) -> list[Callable[..., None]]:
        """The fast path for many small tensors: the same element-wise operations, in the
        same order (so bit-identical results), on one flat buffer per state, as tasks over
        runs of parameters of at most ``_flat.CHUNK_SIZE`` elements.

        The moments of these parameters live in flat arrays and ``state[p]`` holds views of
        them; gradients are gathered with one copy and updates scattered back per tensor.
        (Callers pass parameters that share a dtype and a step count.)
        """
        states = [self.state[p] for p in params]
        step = states[0]["step"] + 1.0
        names = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if hp.amsgrad else ())
        bucket = self._flat_bucket(group, params, states, names)
        for s in states:
            s["step"] = step
        return [partial(_update_flat_run, bucket, params, i, j, hp, step)
                for i, j in bucket.segments(_flat.CHUNK_SIZE)]


def _update_flat_run(bucket: _flat.FlatBucket, params: list[Parameter], i: int, j: int,
                     hp: _Hyper, step: float, *, worker: int) -> None:
    """Update ``params[i:j]`` of a flat bucket (their slice of its buffers)."""
    lo, hi = bucket.bounds[i], bucket.bounds[j]
    grad = _flat_effective_grad(bucket, params, i, j, hp.l2, hp.maximize)
    v_max = bucket.flat.get("max_exp_avg_sq")
    apply = _adam_kernel(grad, bucket.flat["exp_avg"][lo:hi], bucket.flat["exp_avg_sq"][lo:hi],
                         None if v_max is None else v_max[lo:hi], bucket.scratch[lo:hi], hp,
                         step)
    for p, update in zip(params[i:j], bucket.scratch_views[i:j]):
        if hp.decay_factor != 1.0:
            p.data *= hp.decay_factor
        if apply:
            p.data -= update


class _Hyper:
    """A group's hyperparameters as Python floats (NumPy scalars would upcast float32)."""

    def __init__(self, group: dict, decoupled: bool):
        self.lr = float(group["lr"])
        self.beta1, self.beta2 = (float(b) for b in group["betas"])
        self.eps = float(group["eps"])
        weight_decay = float(group["weight_decay"])
        self.decay_factor = 1.0 - self.lr * weight_decay if decoupled else 1.0
        self.l2 = 0.0 if decoupled else weight_decay
        self.amsgrad = bool(group["amsgrad"])
        self.maximize = bool(group["maximize"])


def _adam_kernel(grad: np.ndarray, m: np.ndarray, v: np.ndarray, v_max: np.ndarray | None,
                 b: np.ndarray, hp: _Hyper, step: float) -> bool:
    """Update the moments in place and write the amount to subtract from p into ``b``.

    Returns False when the step size is 0 (nothing to subtract).
    """
    fused = kernels()  # the Numba backend: one pass (ops/numba_optim.py), same numbers
    if fused is not None:
        done = fused.adam_update(grad, m, v, v_max, b, hp, step)
        if done is not None:
            return done
    # m <- m + (1 - beta1) (g - m)
    np.subtract(grad, m, out=b)
    b *= 1.0 - hp.beta1
    m += b
    # v <- beta2 v + (1 - beta2) g^2
    v *= hp.beta2
    np.multiply(grad, grad, out=b)
    b *= 1.0 - hp.beta2
    v += b
    if v_max is not None:
        v = np.maximum(v_max, v, out=v_max)
    step_size = hp.lr / (1.0 - hp.beta1 ** step)
    if step_size == 0.0:
        return False
    bias_correction2_sqrt = (1.0 - hp.beta2 ** step) ** 0.5
    # update = m / (sqrt(v) / (sqrt(bc2) step_size) + eps / step_size)
    np.sqrt(v, out=b)
    b *= 1.0 / (bias_correction2_sqrt * step_size)
    b += hp.eps / step_size
    np.divide(m, b, out=b)
    return True


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's ``AdamW``.

    Same update as :class:`Adam` except that the decay is applied to the parameter
    directly, before the moments are updated, and not added to the gradient::

        p = p * (1 - lr * weight_decay)

    Default ``weight_decay=1e-2``. Same arguments and state as :class:`Adam` (its groups
    hold ``decoupled_weight_decay=True``, as PyTorch's do).
    """

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False, foreach: bool | None = None,
                 capturable: bool = False, differentiable: bool = False,
                 fused: bool | None = None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)
