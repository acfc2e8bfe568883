"""Optimizer base class: parameter groups, per-parameter state, state_dict.

Semantics follow ``torch.optim.Optimizer``:

- ``params`` is an iterable of :class:`~handgrad.Parameter` or of dicts (parameter groups),
  each dict holding ``"params"`` and any hyperparameter that overrides the defaults.
- ``step()`` updates every parameter that has a gradient and ``requires_grad``; the others
  are skipped and keep no state.
- ``state`` maps each parameter to its dict of state (``"step"``, momentum buffers, moments).

State dict structure (no pickle: only NumPy arrays and JSON-able scalars)::

    {
        "state": {                       # only parameters that have state
            0: {"step": 3.0,             # Python float (PyTorch keeps a float tensor)
                "exp_avg": ndarray,      # copies, in the parameter's shape and dtype
                "exp_avg_sq": ndarray},
            ...
        },
        "param_groups": [
            {"lr": 0.001, "betas": (0.9, 0.999), ...,   # every hyperparameter of the group
             "params": [0, 1, 2]},                      # integer indices, counted over all
            ...                                          # groups in order
        ],
    }

``load_state_dict`` also accepts what a JSON round trip makes of this: string keys
(``"0"``) in ``"state"``, lists where tuples were (``betas``), ints where floats were.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import numpy as np

from ..ops.parallel import get_num_threads, run_chunks
from ..parameter import Parameter
from . import _flat
from ._checks import _OPTIONAL_GROUP_KEYS, _check_backend, _check_nonnegative, _raise_bad_grad
from ._flat import FlatBucket


class Optimizer:
    """Base class of all optimizers.

    Args:
        params: an iterable of Parameters, or of dicts defining parameter groups.
        defaults: the default hyperparameters (used by groups that don't set them).

    Subclasses implement ``_check_group(group)`` (raise on bad hyperparameters) and
    ``_update_group(group)`` (the in-place update of one group), and list the names of
    their per-parameter state in ``_state_keys`` (those in ``_scalar_state_keys`` are
    Python floats, the others arrays shaped like the parameter).

    ``step()`` first checks, once per call and without touching the elements, that every
    gradient it will use is an array of its parameter's shape and dtype (ValueError /
    TypeError naming the optimizer, the group, the parameter's index and name).
    """

    _state_keys: tuple[str, ...] = ()
    _scalar_state_keys: tuple[str, ...] = ("step",)

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        self.state: dict[Parameter, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        self._scratch_flat: dict[tuple, np.ndarray] = {}
        self._scratch_views: dict[tuple, tuple[np.ndarray, ...]] = {}
        self._flat_buckets: dict[tuple, FlatBucket] = {}
        self._live_buckets: set[tuple] = set()
        name = type(self).__name__
        if isinstance(params, (Parameter, np.ndarray)):
            raise TypeError(
                f"{name}: params argument given to the optimizer should be an iterable of "
                f"Parameters or dicts, but got {type(params).__name__}"
            )
        if isinstance(params, (set, frozenset)):
            raise TypeError(
                f"{name}: optimizer parameters need to be organized in ordered collections, "
                "but the ordering of a set is not deterministic; use a list"
            )
        if hasattr(params, "parameters") and callable(params.parameters):
            raise TypeError(f"{name}: params argument should be an iterable of Parameters or "
                            f"dicts, but got a {type(params).__name__}; pass "
                            "model.parameters()")
        if isinstance(params, (str, bytes, dict)) or not hasattr(params, "__iter__"):
            raise TypeError(f"{name}: params argument should be an iterable of Parameters or "
                            f"dicts, but got {type(params).__name__}")
        groups = list(params)
        if len(groups) == 0:
            raise ValueError(f"{name}: optimizer got an empty parameter list (params=[]; "
                             "expected at least one Parameter)")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (missing ones = defaults)."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: param_group must be a dict, but got "
                            f"{type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise ValueError(f"{name}: param_group must have a 'params' entry")
        if isinstance(params, Parameter):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                f"{name}: optimizer parameters need to be organized in ordered collections, "
                "but the ordering of a set is not deterministic; use a list"
            )
        else:
            params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(
                    f"{name}: can only optimize Parameters, but params[{i}] is "
                    f"{type(p).__name__}"
                )
        if len(params) == 0:
            raise ValueError(f"{name}: optimizer got an empty parameter list (params=[]; "
                             "expected at least one Parameter)")
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{name}: optimizer parameter group contains the same parameter "
                             "twice")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError(f"{name}: some parameters appear in more than one parameter "
                             "group")
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group: dict[str, Any]) -> None:
        """Raise ValueError/TypeError on a bad hyperparameter (subclasses extend this)."""
        name = type(self).__name__
        _check_nonnegative(name, group, "lr", "learning rate")
        if group["lr"] == float("inf"):
            raise ValueError(f"{name}: invalid learning rate lr={group['lr']!r} (expected a "
                             "finite value >= 0)")
        _check_backend(name, group)

    # ------------------------------------------------------------------- steps
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients: to None (default) or to zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                p.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Update every parameter that has a gradient; returns ``closure()`` if given."""
        loss = closure() if closure is not None else None
        self._check_grads()
        for group in self.param_groups:
            self._live_buckets = set()
            self._update_group(group)
            for key in [k for k in self._flat_buckets
                        if k[0] == id(group) and k not in self._live_buckets]:
                del self._flat_buckets[key]  # parameters that took another path this step
        return loss

    def _update_group(self, group: dict[str, Any]) -> None:
        raise NotImplementedError

    def _check_grads(self) -> None:
        """Raise unless every gradient step() will use is an array of its parameter's shape
        and dtype (a few attribute comparisons per parameter, no per-element work)."""
        for g, group in enumerate(self.param_groups):
            for i, p in enumerate(group["params"]):
                grad = p.grad
                if grad is None or not p.requires_grad:
                    continue
                if (isinstance(grad, np.ndarray) and grad.shape == p.data.shape
                        and grad.dtype == p.data.dtype):
                    continue
                _raise_bad_grad(type(self).__name__, g, i, p)

    @staticmethod
    def _active(group: dict[str, Any]) -> list[Parameter]:
        """The parameters of a group that step() updates (gradient present, not frozen)."""
        return [p for p in group["params"] if p.grad is not None and p.requires_grad]

    @staticmethod
    def _run_tasks(tasks: list[Callable[..., None]], total: int) -> None:
        """Run update tasks (each called as ``task(worker=i)``), shared between threads
        when the step updates at least ``_flat.PARALLEL_MIN_SIZE`` elements in all."""
        threads = get_num_threads() if total >= _flat.PARALLEL_MIN_SIZE else 1
        if threads > 1 and len(tasks) > 1:
            run_chunks(_run_task, tasks, threads)
        else:
            for task in tasks:
                task(worker=0)

    def _increment_tasks(self, p: Parameter, states: list[np.ndarray],
                         increment: Callable[..., None]) -> list[Callable[..., None]]:
        """Tasks updating ``p`` in chunks of at most ``_flat.CHUNK_SIZE`` elements:
        ``increment(data, grad, *states, a, b)`` updates the state chunks in place and
        writes into ``b`` what is added to the data (``a``, ``b``: the worker's scratch)."""
        arrays = [p.data, p.grad, *states]
        return [partial(self._increment_chunk, increment, chunk)
                for chunk in _flat.chunks(arrays, _flat.CHUNK_SIZE)]

    def _increment_chunk(self, increment: Callable[..., None], chunk: tuple, *,
                         worker: int) -> None:
        data = chunk[0]
        a, b = self._scratch(data, worker=worker)
        increment(*chunk, a, b)
        data += b

    @staticmethod
    def _flat_increment_tasks(bucket: FlatBucket, params: list[Parameter],
                              names: tuple[str, ...], with_data: bool,
                              increment: Callable[..., None]) -> list[Callable[..., None]]:
        """The same over runs of a flat bucket's parameters: ``data`` is their gathered
        values when ``with_data`` (else None), ``a`` the bucket's parameter buffer (``data``
        itself), ``b`` its scratch; each increment is then added to its parameter."""
        return [partial(_flat_increment_run, bucket, params, i, j, names, with_data,
                        increment) for i, j in bucket.segments(_flat.CHUNK_SIZE)]

    def _flat_bucket(self, group: dict[str, Any], params: list[Parameter],
                     states: list[dict], names: tuple[str, ...]) -> FlatBucket:
        """The flat buffers (see ``_flat.py``) for these parameters of a group, built or
        rebuilt (copying their current state in) when the set of parameters changes."""
        key = (id(group), params[0].data.dtype, id(params[0]))
        bucket = self._flat_buckets.get(key)
        if bucket is None or not bucket.holds(params, states, names):
            bucket = self._flat_buckets[key] = FlatBucket(params, states, names)
        self._live_buckets.add(key)
        return bucket

    def _scratch(self, data: np.ndarray, count: int = 2,
                 worker: int = 0) -> tuple[np.ndarray, ...]:
        """``count`` scratch arrays shaped like ``data``, reused across steps (not state);
        each thread of a parallel step (``worker``, see ``handgrad.ops.parallel``) has its
        own."""
        key = (worker, data.dtype, data.shape, count)
        views = self._scratch_views.get(key)
        if views is None:
            n = data.size
            flat = self._scratch_flat.get((worker, data.dtype))
            if flat is None or flat.size < n * count:
                flat = np.empty(max(n * count, 1), dtype=data.dtype)
                self._scratch_flat[(worker, data.dtype)] = flat
                self._scratch_views = {
                    k: v for k, v in self._scratch_views.items() if k[:2] != key[:2]
                }
            views = tuple(flat[i * n:(i + 1) * n].reshape(data.shape) for i in range(count))
            self._scratch_views[key] = views
        return views

    # -------------------------------------------------------------- state dict
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state (see the module docstring for the structure)."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            saved = {k: v for k, v in group.items() if k != "params"}
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            saved["params"] = ids
            groups.append(saved)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state:
                    state[index[id(p)]] = {
                        k: (v.copy() if isinstance(v, np.ndarray) else v)
                        for k, v in self.state[p].items()
                    }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (arrays are copied into the params' dtype).

        Raises ValueError when the groups, the parameter counts, a state key or an array
        shape don't match this optimizer.
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict):
            raise TypeError(f"{name}.load_state_dict: expected a dict, got "
                            f"{type(state_dict).__name__}")
        unknown = set(state_dict) - {"state", "param_groups"}
        missing = {"state", "param_groups"} - set(state_dict)
        if unknown or missing:
            raise ValueError(f"{name}.load_state_dict: expected keys 'state' and 'param_groups', "
                             f"unknown {sorted(map(str, unknown))}, missing {sorted(missing)}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: loaded state dict has a different "
                             f"number of parameter groups ({len(saved_groups)}) than the "
                             "optimizer "
                             f"({len(self.param_groups)})")
        params: list[Parameter] = []
        new_groups = []
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: loaded state dict contains a parameter group "
                    f"{i} with {len(saved['params'])} parameters that doesn't match the size of "
                    f"optimizer's group ({len(group['params'])} parameters)")
            # keys newer than the checkpoint (torch's backend flags) take their defaults
            missing_keys = set(self.defaults) - set(saved) - set(_OPTIONAL_GROUP_KEYS)
            if missing_keys:
                raise ValueError(f"{name}.load_state_dict: parameter group {i} lacks "
                                 f"{sorted(missing_keys)}")
            restored = {}
            for key, value in saved.items():
                if key == "params":
                    continue
                if isinstance(self.defaults.get(key), tuple) and isinstance(value, list):
                    value = tuple(value)
                restored[key] = value
            for key in _OPTIONAL_GROUP_KEYS:
                if key in self.defaults and key not in restored:
                    restored[key] = self.defaults[key]
            restored["params"] = group["params"]
            self._check_group(restored)
            new_groups.append(restored)
            params.extend(group["params"])
        by_index = {}
        for i, p in zip((j for g in saved_groups for j in g["params"]), params):
            by_index[int(i)] = p
        new_state: dict[Parameter, dict[str, Any]] = {}
        for key, values in state_dict["state"].items():
            try:
                p = by_index[int(key)]
            except (KeyError, ValueError):
                raise ValueError(f"{name}.load_state_dict: state refers to parameter {key!r}, "
                                 "which is in no parameter group") from None
            new_state[p] = self._load_param_state(p, key, values)
        self.param_groups = new_groups
        self.state = new_state
        self._flat_buckets.clear()  # the loaded arrays replace the flat buffers' views

    def _load_param_state(self, p: Parameter, key: Any, values: dict) -> dict[str, Any]:
        name = type(self).__name__
        unknown = set(values) - set(self._state_keys)
        if unknown:
            raise ValueError(f"{name}.load_state_dict: unknown state {sorted(unknown)} for "
                             f"parameter {key}; expected keys among {list(self._state_keys)}")
        restored: dict[str, Any] = {}
        for k, v in values.items():
            if k in self._scalar_state_keys:
                restored[k] = float(v)
                continue
            array = np.asarray(v)
            if array.shape != p.data.shape:
                raise ValueError(f"{name}.load_state_dict: state {k!r} of parameter {key} has "
                                 f"shape {array.shape}, expected {p.data.shape}")
            restored[k] = np.array(array, dtype=p.data.dtype, copy=True)
        return restored

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def _run_task(worker: int, task: Callable[..., None]) -> None:
    task(worker=worker)


def _flat_increment_run(bucket: FlatBucket, params: list[Parameter], i: int, j: int,
                        names: tuple[str, ...], with_data: bool,
                        increment: Callable[..., None], *, worker: int) -> None:
    """One run ``params[i:j]`` of :meth:`Optimizer._flat_increment_tasks`."""
    lo, hi = bucket.bounds[i], bucket.bounds[j]
    grad = bucket.gather_grads(params, i, j)
    data = bucket.gather_params(params, i, j) if with_data else None
    increment(data, grad, *(bucket.flat[name][lo:hi] for name in names),
              bucket.params_buffer[lo:hi], bucket.scratch[lo:hi])
    for p, update in zip(params[i:j], bucket.scratch_views[i:j]):
        p.data += update
