"""The shared machinery of optimizers whose update is element-wise (NAdam, RAdam, Adamax,
Adadelta, ASGD, Rprop).

A subclass says which array states it keeps (``_array_state``), how a parameter's state
starts (``_new_state``), how a step advances the scalar state (``_advance``, which returns
the scalars the kernel needs) and gives the kernel itself (``_kernel``): a function
``kernel(data, grad, *states, *scratch)`` that updates ``data`` and the states in place,
in the same operations and order as ``torch.optim``'s single-tensor loop. ``grad`` is
read-only; ``scratch`` are ``_scratch_count`` arrays of ``data``'s shape to write into.

The base runs that kernel as ``Adam`` runs its own: tensors larger than
``_flat.FLAT_MAX_SIZE`` in place, in chunks of at most ``_flat.CHUNK_SIZE`` elements;
smaller ones sharing a dtype and their scalar state keep their states in flat buffers
(``state[p]`` holds views), their values and gradients gathered once, the kernel run once
for a run of them and the new values copied back. Every element sees the same operations
on both paths, so the results are bit-identical; large steps share the work between
threads (``handgrad.set_num_threads``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from ..parameter import Parameter
from . import _flat
from ._updates import _batch_by_step
from .optimizer import Optimizer


class ElementwiseOptimizer(Optimizer):
    """Base of the element-wise optimizers (see the module docstring)."""

    _scratch_count = 2

    def _array_state(self, group: dict[str, Any]) -> tuple[str, ...]:
        """The names of the per-parameter array states, in the kernel's argument order."""
        raise NotImplementedError

    def _new_state(self, p: Parameter, group: dict[str, Any]) -> dict[str, Any]:
        """The state of a parameter at its first update."""
        raise NotImplementedError

    def _advance(self, group: dict[str, Any], state: dict[str, Any]) -> tuple:
        """Count the step in ``state`` (and update its other scalars); returns the scalars
        this step's kernel needs."""
        raise NotImplementedError

    def _kernel(self, group: dict[str, Any], scalars: tuple) -> Callable[..., None]:
        raise NotImplementedError

    def _update_group(self, group: dict[str, Any]) -> None:
        params = self._active(group)
        states = []
        for p in params:
            state = self.state.get(p)
            if not state:
                state = self.state[p] = self._new_state(p, group)
            states.append(state)
        names = self._array_state(group)
        large, batches = _batch_by_step(params, states, self._scalar_state_keys)
        tasks: list[Callable[..., None]] = []
        for p in large:
            state = self.state[p]
            kernel = self._kernel(group, self._advance(group, state))
            arrays = [p.data, p.grad, *(state[name] for name in names)]
            tasks += [partial(self._tensor_chunk, kernel, chunk)
                      for chunk in _flat.chunks(arrays, _flat.CHUNK_SIZE)]
        for batch in batches:
            batch_states = [self.state[p] for p in batch]
            bucket = self._flat_bucket(group, batch, batch_states, names)
            first = batch_states[0]
            kernel = self._kernel(group, self._advance(group, first))
            for state in batch_states[1:]:
                for key in self._scalar_state_keys:
                    state[key] = first[key]
            tasks += [partial(self._flat_run, kernel, bucket, batch, names, i, j)
                      for i, j in bucket.segments(_flat.CHUNK_SIZE)]
        self._run_tasks(tasks, sum(p.data.size for p in params))

    def _tensor_chunk(self, kernel: Callable[..., None], chunk: tuple, *, worker: int) -> None:
        """(A chunk of) one parameter, updated in place."""
        kernel(*chunk, *self._scratch(chunk[0], self._scratch_count, worker=worker))

    def _flat_run(self, kernel: Callable[..., None], bucket: _flat.FlatBucket,
                  params: list[Parameter], names: tuple[str, ...], i: int, j: int, *,
                  worker: int) -> None:
        """``params[i:j]`` of a flat bucket: gathered, updated together, copied back."""
        lo, hi = bucket.bounds[i], bucket.bounds[j]
        data = bucket.gather_params(params, i, j)
        grad = bucket.gather_grads(params, i, j)
        states = [bucket.flat[name][lo:hi] for name in names]
        kernel(data, grad, *states, *self._scratch(data, self._scratch_count, worker=worker))
        for p, a, b in zip(params[i:j], bucket.bounds[i:j], bucket.bounds[i + 1:j + 1]):
            np.copyto(p.data, data[a - lo:b - lo].reshape(p.data.shape))


def lerp_(start: np.ndarray, end: np.ndarray, weight: float, tmp: np.ndarray) -> None:
    """start <- start + weight * (end - start) in place, as ``torch.lerp_`` computes it:
    ``end - (end - start) * (1 - weight)`` when weight >= 0.5 (``tmp`` is scratch)."""
    np.subtract(end, start, out=tmp)
    if weight < 0.5:
        tmp *= weight
        start += tmp
    else:
        tmp *= 1.0 - weight
        np.subtract(end, tmp, out=start)

