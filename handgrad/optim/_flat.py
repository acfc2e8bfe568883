"""Flat state buffers shared by many small parameters (the optimizers' fast path).

NumPy pays a few microseconds per call, which dominates an update of many small tensors
(biases, normalization weights, small convolutions). For those, an optimizer keeps each
kind of state in one flat array per group and dtype, with ``state[p][name]`` a view of its
slice, gathers the gradients with one copy, runs each element-wise operation once for all
of them and scatters the updates back. The operations and their order are those of the
per-tensor loop, so the results are bit-identical to it.
"""

from __future__ import annotations

import numpy as np

from ..parameter import Parameter

# Tensors with at most this many elements take the flat path (larger ones already amortize
# NumPy's per-call cost and stay cache-resident one at a time).
FLAT_MAX_SIZE = 16384


class FlatBucket:
    """Flat state buffers for a list of same-dtype parameters, with per-parameter views."""

    def __init__(self, params: list[Parameter], states: list[dict], names: tuple[str, ...]):
        dtype = params[0].data.dtype
        sizes = [p.data.size for p in params]
        bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()
        total = bounds[-1]
        self.params = list(params)
        self.names = tuple(names)
        self.flat = {name: np.empty(total, dtype) for name in names}
        self.views: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for p, state, lo, hi in zip(params, states, bounds[:-1], bounds[1:]):
            for name in names:
                view = self.flat[name][lo:hi].reshape(p.data.shape)
                view[...] = state[name]  # keep the values the parameter already has
                state[name] = view
                self.views[name].append(view)
        self.grad = np.empty(total, dtype)
        self.params_buffer = np.empty(total, dtype)
        self.scratch = np.empty(total, dtype)
        self.scratch_views = [self.scratch[lo:hi].reshape(p.data.shape)
                              for p, lo, hi in zip(params, bounds[:-1], bounds[1:])]

    def holds(self, params: list[Parameter], states: list[dict], names: tuple[str, ...]) -> bool:
        """True while the same parameters are active and their state still lives here."""
        if names != self.names or len(params) != len(self.params):
            return False
        if any(p is not q for p, q in zip(params, self.params)):
            return False
        return all(state[name] is views[i]
                   for name, views in self.views.items() for i, state in enumerate(states))

    def gather_grads(self, params: list[Parameter]) -> np.ndarray:
        """All gradients, concatenated into the bucket's own buffer (free to modify)."""
        return np.concatenate([p.grad.ravel() for p in params], out=self.grad)

    def gather_params(self, params: list[Parameter]) -> np.ndarray:
        """All parameter values, concatenated into the bucket's own buffer."""
        return np.concatenate([p.data.ravel() for p in params], out=self.params_buffer)
