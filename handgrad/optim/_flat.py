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

# Updates work through the data in pieces of at most this many elements (a few arrays of
# it stay in the CPU caches), which threads share (``handgrad.ops.parallel``) once a step
# has at least PARALLEL_MIN_SIZE elements (a hand-off costs ~0.1 ms; measured: 1M elements
# 2.6 -> 1.6 ms with 2 threads, while ~270k-element models gained nothing reliably).
CHUNK_SIZE = 1 << 17
PARALLEL_MIN_SIZE = 1 << 19


def chunks(arrays: list[np.ndarray], size: int) -> list[tuple[np.ndarray, ...]]:
    """Same-shape arrays as aligned flat pieces of at most ``size`` elements (views), or
    whole when one of them is not C-contiguous (a flat view of it would be a copy)."""
    n = arrays[0].size
    if n <= size or not all(a.flags.c_contiguous for a in arrays):
        return [tuple(arrays)]
    flat = [a.reshape(-1) for a in arrays]
    return [tuple(a[lo:lo + size] for a in flat) for lo in range(0, n, size)]


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
        self.bounds = bounds  # params[i] owns elements bounds[i]:bounds[i + 1]
        self.grad = np.empty(total, dtype)
        self.params_buffer = np.empty(total, dtype)
        self.scratch = np.empty(total, dtype)
        self.scratch_views = [self.scratch[lo:hi].reshape(p.data.shape)
                              for p, lo, hi in zip(params, bounds[:-1], bounds[1:])]
        self._segments: dict[int, list[tuple[int, int]]] = {}

    def holds(self, params: list[Parameter], states: list[dict], names: tuple[str, ...]) -> bool:
        """True while the same parameters are active and their state still lives here."""
        if names != self.names or len(params) != len(self.params):
            return False
        if any(p is not q for p, q in zip(params, self.params)):
            return False
        return all(state[name] is views[i]
                   for name, views in self.views.items() for i, state in enumerate(states))

    def segments(self, size: int) -> list[tuple[int, int]]:
        """Runs ``(i, j)`` of consecutive parameters ``params[i:j]``, each run holding at
        most ``size`` elements (or one parameter), for updates in cache-sized pieces."""
        runs = self._segments.get(size)
        if runs is None:
            runs, i = [], 0
            for j in range(1, len(self.params) + 1):
                if j == len(self.params) or self.bounds[j + 1] - self.bounds[i] > size:
                    runs.append((i, j))
                    i = j
            self._segments[size] = runs
        return runs

    def gather_grads(self, params: list[Parameter], i: int = 0, j: int | None = None
                     ) -> np.ndarray:
        """The gradients of ``params[i:j]`` (all by default), concatenated into the
        bucket's own buffer (free to modify)."""
        j = len(params) if j is None else j
        out = self.grad[self.bounds[i]:self.bounds[j]]
        return np.concatenate([p.grad.ravel() for p in params[i:j]], out=out)

    def gather_params(self, params: list[Parameter], i: int = 0, j: int | None = None
                      ) -> np.ndarray:
        """The values of ``params[i:j]`` (all by default), concatenated into the bucket's
        own buffer."""
        j = len(params) if j is None else j
        out = self.params_buffer[self.bounds[i]:self.bounds[j]]
        return np.concatenate([p.data.ravel() for p in params[i:j]], out=out)
