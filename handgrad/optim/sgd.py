"""Stochastic gradient descent with momentum (PyTorch's formulation)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

import numpy as np

from ..ops.backend import kernels
from ..parameter import Parameter
from . import _flat
from ._checks import _check_flag, _check_nonnegative
from ._updates import _effective_grad, _flat_effective_grad
from .optimizer import Optimizer


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
        foreach, fused: torch's implementation switches, accepted without effect.
        differentiable: must be False (no autograd through the step); True raises.

    State per parameter: ``momentum_buffer`` (only when momentum != 0).

    Speed: updates are in place (two reusable scratch arrays per thread), in chunks of at
    most ``_flat.CHUNK_SIZE`` elements. With momentum, tensors of at most
    ``_flat.FLAT_MAX_SIZE`` elements keep their buffers in one flat array (``state[p]`` holds
    views) and are updated together. Large steps share the chunks between threads (see
    :class:`Adam`). Results are bit-identical to a plain per-tensor loop.
    """

    _state_keys = ("momentum_buffer",)

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], lr: float = 1e-3,
                 momentum: float = 0, dampening: float = 0, weight_decay: float = 0,
                 nesterov: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, differentiable: bool = False,
                 fused: bool | None = None):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        foreach=foreach, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        name = type(self).__name__
        _check_nonnegative(name, group, "momentum", "momentum value")
        _check_nonnegative(name, group, "weight_decay", "weight_decay value")
        _check_nonnegative(name, group, "dampening", "dampening value")
        _check_flag(name, group, "nesterov")
        _check_flag(name, group, "maximize")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"{name}: Nesterov momentum (nesterov=True) requires a momentum "
                             f"and zero dampening (got momentum={group['momentum']}, "
                             f"dampening={group['dampening']})")

    def _update_group(self, group: dict) -> None:
        hp = _Hyper(group)
        batches: dict[np.dtype, list[Parameter]] = {}
        tasks: list[Callable[..., None]] = []
        total = 0
        for p in self._active(group):
            total += p.data.size
            state = self.state.get(p)
            # the flat path needs existing momentum buffers (the first step copies the grad)
            if (hp.momentum != 0 and p.data.size <= _flat.FLAT_MAX_SIZE and state is not None
                    and state.get("momentum_buffer") is not None):
                batches.setdefault(p.data.dtype, []).append(p)
            else:
                tasks += self._tensor_tasks(p, hp)
        for params in batches.values():
            if len(params) == 1:
                tasks += self._tensor_tasks(params[0], hp)
            else:
                tasks += self._flat_tasks(params, hp, group)
        self._run_tasks(tasks, total)

    def _tensor_tasks(self, p: Parameter, hp: _Hyper) -> list[Callable[..., None]]:
        """The plain path, one parameter at a time, as tasks over chunks of at most
        ``_flat.CHUNK_SIZE`` elements (a new momentum buffer is filled by them)."""
        arrays = [p.data, p.grad]
        first = False
        if hp.momentum != 0:
            state = self.state.setdefault(p, {})
            buf = state.get("momentum_buffer")
            if buf is None:
                state["momentum_buffer"] = buf = np.empty(p.data.shape, p.data.dtype)
                first = True
            arrays.append(buf)
        return [partial(self._update_chunk, hp, first, *chunk)
                for chunk in _flat.chunks(arrays, _flat.CHUNK_SIZE)]

    def _update_chunk(self, hp: _Hyper, first: bool, data: np.ndarray, grad: np.ndarray,
                      buf: np.ndarray | None = None, *, worker: int) -> None:
        """Update (a chunk of) one parameter in place, with the worker's scratch arrays."""
        a, b = self._scratch(data, worker=worker)
        grad = _effective_grad(data, grad, a, hp.weight_decay, hp.maximize)
        if buf is not None:
            if first:
                np.copyto(buf, grad)
            else:
                _momentum_kernel(buf, grad, b, hp)
            grad = _direction(buf, grad, b, hp)
        data += np.multiply(grad, -hp.lr, out=b)

    def _flat_tasks(self, params: list[Parameter], hp: _Hyper,
                    group: dict) -> list[Callable[..., None]]:
        """Many small tensors at once (see ``_flat.py``): bit-identical to the plain path,
        as tasks over runs of parameters of at most ``_flat.CHUNK_SIZE`` elements."""
        states = [self.state[p] for p in params]
        bucket = self._flat_bucket(group, params, states, ("momentum_buffer",))
        return [partial(_update_flat_run, bucket, params, i, j, hp)
                for i, j in bucket.segments(_flat.CHUNK_SIZE)]


def _update_flat_run(bucket: _flat.FlatBucket, params: list[Parameter], i: int, j: int,
                     hp: _Hyper, *, worker: int) -> None:
    """Update ``params[i:j]`` of a flat bucket (their slice of its buffers)."""
    lo, hi = bucket.bounds[i], bucket.bounds[j]
    grad = _flat_effective_grad(bucket, params, i, j, hp.weight_decay, hp.maximize)
    b = bucket.scratch[lo:hi]
    buf = bucket.flat["momentum_buffer"][lo:hi]
    _momentum_kernel(buf, grad, b, hp)
    np.multiply(_direction(buf, grad, b, hp), -hp.lr, out=b)
    for p, update in zip(params[i:j], bucket.scratch_views[i:j]):
        p.data += update


class _Hyper:
    """A group's hyperparameters as Python floats (NumPy scalars would upcast float32)."""

    def __init__(self, group: dict):
        self.lr = float(group["lr"])
        self.momentum = float(group["momentum"])
        self.dampening = float(group["dampening"])
        self.weight_decay = float(group["weight_decay"])
        self.nesterov = bool(group["nesterov"])
        self.maximize = bool(group["maximize"])


def _momentum_kernel(buf: np.ndarray, grad: np.ndarray, b: np.ndarray, hp: _Hyper) -> None:
    """buf <- momentum * buf + (1 - dampening) * grad, in place (``b`` is scratch)."""
    fused = kernels()  # the Numba backend: one pass (ops/numba_optim.py), same numbers
    if fused is not None and fused.momentum_update(buf, grad, hp):
        return
    buf *= hp.momentum
    if hp.dampening == 0:
        buf += grad
    else:
        buf += np.multiply(grad, 1.0 - hp.dampening, out=b)


def _direction(buf: np.ndarray, grad: np.ndarray, b: np.ndarray, hp: _Hyper) -> np.ndarray:
    """The step direction: grad + momentum * buf (Nesterov, written into ``b``) or buf."""
    if hp.nesterov:
        np.multiply(buf, hp.momentum, out=b)
        return np.add(grad, b, out=b)
    return buf
