"""The training loop: ``fit``, ``evaluate``, ``predict`` and the ``History`` they record.

``fit`` runs epochs of forward, loss, backward and optimizer steps and handles what every
training script repeats:

* train/eval mode (``model.train()`` for training batches, ``model.eval()`` for validation);
* scheduler stepping, decided by the scheduler's type: ``OneCycleLR`` and ``CyclicLR`` step
  after every optimizer step; ``ReduceLROnPlateau`` steps once per epoch with the monitored
  value (the validation loss, or the training loss without validation data); every other
  scheduler steps once per epoch. A scheduler may override this with an ``interval``
  attribute of ``"batch"`` or ``"epoch"``;
* gradient accumulation: with ``accumulate=k`` the gradients of ``k`` batches are summed,
  each weighted by its share of the samples, so the step equals one step on the
  concatenated batch for a mean-reduced loss (a last, incomplete group is stepped too);
* gradient clipping (``clip_grad_norm``), applied to the accumulated gradient;
* a NaN/inf guard: when the loss or a gradient becomes non-finite, the batch is re-run once
  with every layer traced and ``FloatingPointError`` names the first layer whose output or
  gradient went non-finite;
* per-layer gradient norms (mean over the epoch's steps) for ``handgrad.inspect.plot_grad_norms``;
* a tqdm progress bar per epoch (loss, accuracy, samples/s) when stdout is a terminal (on
  rank 0 only in a data-parallel run, where ``ModelCheckpoint``, ``CSVLogger`` and
  ``EpochPrinter`` also write on rank 0 only: ``run.is_main_process``);
* callbacks (``handgrad.training.callbacks``) and exact resuming from a ``ModelCheckpoint`` file;
* a loader's sampler with ``set_epoch`` (``DistributedSampler``) gets ``set_epoch(epoch - 1)``
  before each epoch (epochs count from 1 here, from 0 in the sampler);
* data parallel: a model with ``reduce_gradients`` and ``no_sync``
  (``handgrad.distributed.DistributedDataParallel``) has its gradients reduced across the
  processes once per optimizer step (after accumulation, before the NaN check and
  clipping), and the loss and metrics of every epoch (and of ``evaluate``) are summed over
  the processes, so every rank reports the same numbers.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..layer import Layer
from ..random import default_generator, resolve_rng
from .anomaly import _non_finite, find_non_finite
from .callbacks import Callback
from .history import (
    History,
    _loss_weight,
    _metric_name,
    _MetricAccumulator,
    _num_samples,
    accuracy_counts,
)

PER_BATCH_SCHEDULERS = ("OneCycleLR", "CyclicLR")
CHECKPOINT_KIND = "handgrad.fit"


class CheckpointMismatchError(ValueError):
    """A checkpoint that does not fit the run being resumed (other architecture or setup)."""


def _data_parallel(model: Any) -> Any:
    """The model when it follows the data-parallel protocol (``reduce_gradients``,
    ``no_sync``, ``all_sum``, ``check_same``: ``DistributedDataParallel``), else None."""
    names = ("reduce_gradients", "no_sync", "all_sum", "check_same")
    return model if all(callable(getattr(model, n, None)) for n in names) else None


# ---------------------------------------------------------------------------- batches
class ArrayBatches:
    """Mini-batches ``(x[i:j], y[i:j])`` of two arrays, reshuffled every pass when ``shuffle``.

    What ``fit`` uses when given ``(x, y)`` and ``batch_size``. The permutation is drawn
    from ``rng`` (its state is saved in checkpoints, so a resumed run sees the same order).
    """

    def __init__(self, x: NDArray, y: NDArray, batch_size: int, shuffle: bool = False,
                 rng: np.random.Generator | int | None = None, drop_last: bool = False):
        x, y = np.asarray(x), np.asarray(y)
        if len(x) != len(y):
            raise ValueError(
                f"ArrayBatches: x and y must have the same length, got {len(x)} and {len(y)}"
            )
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"ArrayBatches: expected batch_size >= 1, got {batch_size!r}")
        self.x, self.y = x, y
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rng = resolve_rng(rng) if shuffle else None

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[NDArray, NDArray]]:
        n = len(self.x)
        order = self.rng.permutation(n) if self.shuffle else None
        for b in range(len(self)):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, n)
            if order is None:
                yield self.x[lo:hi], self.y[lo:hi]
            else:
                idx = order[lo:hi]
                yield self.x[idx], self.y[idx]


def _as_batches(data: Any, batch_size: int | None, shuffle: bool, rng: Any,
                what: str) -> Iterable:
    if isinstance(data, tuple) and len(data) == 2 and all(
        isinstance(a, np.ndarray) for a in data
    ):
        if batch_size is None:
            raise ValueError(
                f"fit: {what} is a tuple of arrays (x, y); pass batch_size= to split it "
                f"into mini-batches (or pass a handgrad.data.DataLoader)"
            )
        try:
            return ArrayBatches(data[0], data[1], batch_size, shuffle=shuffle, rng=rng)
        except (TypeError, ValueError) as error:  # name the caller, not the helper
            raise type(error)(f"fit: {what}: {str(error).removeprefix('ArrayBatches: ')}") \
                from None
    if isinstance(data, np.ndarray) or not isinstance(data, Iterable):
        raise TypeError(
            f"fit: expected {what} to be a DataLoader, an iterable of (x, y) batches or a "
            f"tuple of arrays (x, y), got {type(data).__name__}"
        )
    if iter(data) is data:
        raise TypeError(
            f"fit: {what} is an iterator, which can be consumed only once; pass something "
            f"that can be iterated every epoch (a DataLoader, a list of batches, or (x, y))"
        )
    return data


def _unpack(batch: Any, what: str) -> tuple[Any, Any]:
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise TypeError(
        f"fit: expected every {what} batch to be a pair (x, y), got {type(batch).__name__}"
        + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
    )


# ---------------------------------------------------------------------------- random state
def _find_generators(obj: Any, found: list, seen: set, depth: int = 6) -> None:
    """Collect every numpy Generator reachable from ``obj`` through attributes (in order)."""
    if depth < 0 or id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, np.random.Generator):
        found.append(obj)
        return
    if isinstance(obj, dict):
        values = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        values = list(obj) if len(obj) <= 32 else []
    elif isinstance(obj, (np.ndarray, np.generic, str, bytes, int, float, type,
                          types.FunctionType, types.MethodType, types.ModuleType)):
        return
    elif hasattr(obj, "__dict__"):
        values = list(vars(obj).values())
    else:
        return
    for value in values:
        _find_generators(value, found, seen, depth - 1)


def _generators(*objects: Any) -> list[np.random.Generator]:
    found: list[np.random.Generator] = []
    seen: set[int] = set()
    for obj in objects:
        if isinstance(obj, Layer):
            for module in obj.modules():  # each layer's own attributes; children come next
                for key, value in vars(module).items():
                    if key not in ("_parameters", "_buffers", "_children"):
                        _find_generators(value, found, seen, depth=2)
        elif obj is not None:
            _find_generators(obj, found, seen)
    _find_generators(default_generator(), found, seen)
    return found


# ---------------------------------------------------------------------------- the run
class FitRun:
    """The state of one ``fit`` call; callbacks see it as ``callback.run``."""

    def __init__(self, model, loss_fn, optimizer, scheduler, train_batches, val_batches,
                 callbacks, history):
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.train_batches = train_batches
        self.val_batches = val_batches
        self.callbacks = list(callbacks)
        self.history = history
        self.epoch = 0
        self.start_epoch = 0
        self.stop_training = False
        # Rank 0 of a data-parallel run (or a plain run): the one that prints and writes.
        self.is_main_process = getattr(_data_parallel(model), "rank", 0) == 0

    def generators(self) -> list[np.random.Generator]:
        return _generators(self.model, self.train_batches, self.val_batches, self.loss_fn)

    def training_state(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly (what ``ModelCheckpoint`` saves)."""
        return {
            "kind": CHECKPOINT_KIND,
            "epoch": self.epoch,
            "model": dict(self.model.state_dict()),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
            "history": self.history.to_json(),
            "rng": json.dumps([g.bit_generator.state for g in self.generators()]),
            "callbacks": {str(i): cb.state_dict() for i, cb in enumerate(self.callbacks)},
        }

    def restore(self, state: dict[str, Any], source: str = "checkpoint") -> None:
        kind = state.get("kind") if isinstance(state, dict) else type(state).__name__
        if kind != CHECKPOINT_KIND:
            raise CheckpointMismatchError(
                f"fit: {source} is not a training checkpoint written by ModelCheckpoint "
                f"(expected kind '{CHECKPOINT_KIND}', got {kind!r})"
            )
        before = self.model.state_dict()
        try:
            self.model.load_state_dict(state["model"])
        except ValueError as error:
            raise CheckpointMismatchError(
                f"fit: {source} was saved from a different architecture: {error}"
            ) from None
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None and state.get("scheduler"):
                self.scheduler.load_state_dict(state["scheduler"])
        except (ValueError, KeyError, TypeError) as error:
            self.model.load_state_dict(before)  # leave the model as it was
            raise CheckpointMismatchError(
                f"fit: {source} holds optimizer/scheduler state that does not fit this run "
                f"(build the same optimizer and scheduler as the saved run): {error}"
            ) from None
        self.history = History.from_json(state["history"])
        generators = self.generators()
        rng_states = json.loads(state["rng"])
        if len(rng_states) != len(generators):
            raise CheckpointMismatchError(
                f"fit: {source} holds {len(rng_states)} random generator states but this run "
                f"has {len(generators)} (model, data loaders and dropout layers must be built "
                f"the same way to resume exactly)"
            )
        for generator, rng_state in zip(generators, rng_states):
            generator.bit_generator.state = rng_state
        callback_states = state.get("callbacks", {})
        for i, cb in enumerate(self.callbacks):
            if str(i) in callback_states and callback_states[str(i)]:
                cb.load_state_dict(callback_states[str(i)])
        self.epoch = self.start_epoch = int(state["epoch"])

    # ------------------------------------------------------------------ one epoch
    def configure(self, *, accumulate: int, clip_grad_norm: float | None,
                  metrics: Sequence[str | Callable], show: bool, total_epochs: int) -> None:
        self.accumulate = accumulate
        self.clip_grad_norm = clip_grad_norm
        self.metrics = metrics
        self.show = show
        self.total_epochs = total_epochs
        self.interval = _scheduler_interval(self.scheduler) if self.scheduler is not None else None
        self.parameters = [p for p in self.model.parameters() if p.requires_grad]
        self.parallel = _data_parallel(self.model)
        inner = self.model.module if self.parallel is not None else self.model
        self.groups = _layer_groups(inner)
        modules = dict(inner.named_modules())
        for name, _ in self.groups:
            module = modules.get("" if name == "(model)" else name)
            if module is not None:
                self.history.layer_types[name] = type(module).__name__
        self.mean_loss = getattr(self.loss_fn, "reduction", "mean") == "mean"

    def _search_non_finite(self, x: Any, y: Any) -> Any:
        """The first layer with a non-finite output or gradient (a traced re-run), except in
        a data-parallel run: there the re-run's collective operations would not match the
        other ranks', so the error is raised at once (and ends every rank)."""
        if self.parallel is not None:
            return "not searched in a data-parallel run (re-run on one process to find it)"
        return find_non_finite(self.model, self.loss_fn, x, y)

    def _step(self, window_weight: int, norm_sums: dict[str, float], where: str,
              batch: tuple[Any, Any]) -> None:
        """One optimizer step on the accumulated gradient (averaged over the window)."""
        if self.accumulate > 1 and self.mean_loss and window_weight > 0:
            scale = 1.0 / window_weight
            for p in self.parameters:
                if p.grad is not None:
                    p.grad *= scale
        if self.parallel is not None:  # the gradients are now those of this rank's mean loss
            self.parallel.reduce_gradients(samples=window_weight, average=self.mean_loss)
        for name, params in self.groups:
            squares = sum(float(np.vdot(p.grad, p.grad)) for p in params if p.grad is not None)
            if not math.isfinite(squares):
                found = self._search_non_finite(*batch)
                raise FloatingPointError(
                    f"fit: the gradient of layer '{name}' became NaN or infinite at {where}. "
                    f"First non-finite value: {found}. Try a lower learning rate or gradient "
                    f"clipping (clip_grad_norm=...)."
                )
            norm_sums[name] += math.sqrt(squares)
        if self.clip_grad_norm is not None:
            _clip(self.parameters, self.clip_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.model.zero_grad()
        if self.interval == "batch":
            self.scheduler.step()

    def run_epoch(self, epoch: int) -> tuple[dict[str, float], dict[str, float]]:
        """Train one epoch, validate, step an epoch scheduler; return (logs, grad norms)."""
        model, loss_fn = self.model, self.loss_fn
        started = time.perf_counter()
        lr = float(self.optimizer.param_groups[0]["lr"])
        model.train()
        model.zero_grad()
        stats = _MetricAccumulator(self.metrics)
        norm_sums = dict.fromkeys((name for name, _ in self.groups), 0.0)
        steps = window_weight = in_window = 0
        sampler = getattr(self.train_batches, "sampler", None)
        if callable(getattr(sampler, "set_epoch", None)):
            sampler.set_epoch(epoch - 1)
        total = len(self.train_batches) if hasattr(self.train_batches, "__len__") else None
        parallel = self.parallel
        if parallel is not None and total is not None:
            parallel.check_same(total, "the number of training batches per epoch")
        bar = _progress_bar(total, f"epoch {epoch}/{self.total_epochs}", self.show)
        last_shown = 0.0
        batch_index = -1
        x = y = None
        try:
            for batch_index, batch in enumerate(self.train_batches):
                x, y = _unpack(batch, "train_data")
                where = f"epoch {epoch}, batch {batch_index + 1}"
                pred = model(x)
                # Checked before the loss, which may refuse non-finite predictions itself.
                loss = float(loss_fn(pred, y)) if not _non_finite(pred) else math.nan
                if not math.isfinite(loss):
                    found = self._search_non_finite(x, y)
                    what = f"became {loss}" if not _non_finite(pred) else "is not finite"
                    raise FloatingPointError(
                        f"fit: the loss {what} at {where}. First non-finite value: "
                        f"{found}. Try a lower learning rate, gradient clipping "
                        f"(clip_grad_norm=...), or check the data."
                    )
                grad = loss_fn.backward()
                weight = _loss_weight(y)
                if self.accumulate > 1 and self.mean_loss:
                    grad = grad * weight  # undone in _step: sum_i (w_i / W) grad_i
                if parallel is not None:
                    with parallel.no_sync():  # reduced once per step, in _step
                        model.backward(grad)
                else:
                    model.backward(grad)
                window_weight += weight
                in_window += 1
                stats.update(pred, y, loss, _num_samples(x))
                if in_window == self.accumulate:
                    self._step(window_weight, norm_sums, where, (x, y))
                    steps += 1
                    window_weight = in_window = 0
                for cb in self.callbacks:
                    cb.on_batch_end(batch_index, {"loss": loss})
                if bar is not None:
                    bar.update(1)
                    now = time.perf_counter()
                    if now - last_shown > 0.2:
                        last_shown = now
                        bar.set_postfix(_postfix(stats.result(), stats.samples / (now - started)),
                                        refresh=False)
            if batch_index < 0:
                raise ValueError(f"fit: train_data produced no batches in epoch {epoch}")
            if in_window:
                self._step(window_weight, norm_sums, f"the end of epoch {epoch}", (x, y))
                steps += 1
            if parallel is not None:
                stats.reduce(parallel.all_sum)
            logs = stats.result()
            if self.val_batches is not None:
                logs.update(evaluate(model, self.val_batches, loss_fn, self.metrics,
                                     prefix="val_"))
            if self.interval == "epoch":
                self.scheduler.step()
            elif self.interval == "plateau":
                self.scheduler.step(logs.get("val_loss", logs.get("loss")))
            elapsed = time.perf_counter() - started
            logs["lr"] = lr
            logs["time"] = elapsed
            if bar is not None:
                shown = {k: v for k, v in logs.items() if k not in ("lr", "time")}
                bar.set_postfix(_postfix(shown, None), refresh=True)
        finally:
            if bar is not None:
                bar.close()
        return logs, {name: total / max(steps, 1) for name, total in norm_sums.items()}


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``ModelCheckpoint`` file: a dict with ``model`` (a state_dict), ``optimizer``,
    ``scheduler``, ``epoch``, ``history`` (JSON), ``rng`` and ``callbacks``.

    To load only the weights: ``model.load_state_dict(load_checkpoint(path)["model"])``.
    To continue training exactly: ``fit(..., resume_from=path)``.
    """
    from .checkpoint import load

    return load(path)


def _scheduler_interval(scheduler: Any) -> str:
    interval = getattr(scheduler, "interval", None)
    if interval in ("batch", "epoch"):
        return interval
    name = type(scheduler).__name__
    if name == "ReduceLROnPlateau":
        return "plateau"
    return "batch" if name in PER_BATCH_SCHEDULERS else "epoch"


def _layer_groups(model: Layer) -> list[tuple[str, list]]:
    groups: dict[str, list] = {}
    for name, param in model.named_parameters():
        layer = name.rpartition(".")[0] or "(model)"
        groups.setdefault(layer, []).append(param)
    return list(groups.items())


def _clip(parameters: list, max_norm: float) -> None:
    try:
        from ..optim import clip_grad_norm_
    except ImportError:
        clip_grad_norm_ = None
    if clip_grad_norm_ is not None:
        clip_grad_norm_(parameters, max_norm)
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    total = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in grads:
            g *= scale


def _progress_bar(total: int | None, desc: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    # A terminal that reports a size of 0x0 (a bare pty) would hide the bar: fall back.
    size = shutil.get_terminal_size(fallback=(100, 24))
    return tqdm(total=total, desc=desc, unit="batch", file=sys.stdout, leave=True,
                ncols=max(size.columns, 60), nrows=max(size.lines, 10),
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                           "[{elapsed}<{remaining}{postfix}]")


def _postfix(logs: dict[str, float], samples_per_s: float | None) -> dict[str, str]:
    shown = {key.replace("accuracy", "acc"): f"{value:.4g}" for key, value in logs.items()}
    if samples_per_s is not None:  # left out of the final line, which shows validation
        shown["samples/s"] = f"{samples_per_s:.0f}"
    return shown


# ---------------------------------------------------------------------------- fit
def fit(
    model: Layer,
    loss_fn: Any,
    optimizer: Any,
    train_data: Any,
    epochs: int = 1,
    val_data: Any = None,
    scheduler: Any = None,
    clip_grad_norm: float | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    accumulate: int = 1,
    metrics: Sequence[str | Callable] = ("accuracy",),
    rng: np.random.Generator | int | None = None,
    *,
    batch_size: int | None = None,
    shuffle: bool = True,
    resume_from: str | os.PathLike | dict | None = None,
) -> History:
    """Train ``model`` for ``epochs`` epochs and return the ``History``.

    Args:
        model: a ``Layer``; ``model(x)`` gives predictions and ``model.backward(g)`` adds the
            parameter gradients.
        loss_fn: a loss (``loss = loss_fn(pred, y)``, ``g = loss_fn.backward()``).
        optimizer: an optimizer over the model's parameters (``step``, ``zero_grad``,
            ``param_groups``, ``state_dict``).
        train_data: a ``DataLoader``, any re-iterable of ``(x, y)`` batches, or a tuple of
            arrays ``(x, y)`` together with ``batch_size`` (shuffled each epoch with ``rng``
            when ``shuffle``).
        epochs: the total number of epochs (a resumed run continues up to this number).
        val_data: like ``train_data`` (a tuple is split into batches of ``batch_size``);
            evaluated in eval mode after every epoch.
        scheduler: a learning-rate scheduler, stepped as described in the module docstring.
        clip_grad_norm: clip the global gradient norm to this value before each step.
        callbacks: ``handgrad.training.Callback`` instances.
        progress: show a progress bar per epoch (only when stdout is a terminal).
        accumulate: number of batches whose gradients make one optimizer step.
        metrics: ``'accuracy'`` and/or functions ``f(pred, y) -> float``.
        rng: generator or seed for shuffling a tuple ``train_data``.
        resume_from: a ``ModelCheckpoint`` file (or the dict ``load_checkpoint`` read from
            one): loads model, optimizer, scheduler, history,
            random states and callback states, then continues after the saved epoch.

    Raises:
        CheckpointMismatchError: ``resume_from`` was written for another architecture (the
            message lists the mismatching keys and shapes) or another data/dropout setup.
        FloatingPointError: the loss or a gradient became NaN or infinite; the message says
            which layer first produced a non-finite output or gradient.
    """
    if not isinstance(model, Layer):
        raise TypeError(f"fit: expected model to be a handgrad Layer, got {type(model).__name__}")
    if not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"fit: expected epochs to be a non-negative integer, got {epochs!r}")
    if not isinstance(accumulate, (int, np.integer)) or accumulate < 1:
        raise ValueError(f"fit: expected accumulate >= 1, got {accumulate!r}")
    if clip_grad_norm is not None and not clip_grad_norm > 0:
        raise ValueError(f"fit: expected clip_grad_norm > 0 or None, got {clip_grad_norm!r}")
    if isinstance(callbacks, Callback) or not isinstance(callbacks, Iterable):
        raise TypeError(f"fit: expected callbacks as a list of Callback instances, got "
                        f"{type(callbacks).__name__}")
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"fit: expected Callback instances, got {type(cb).__name__}")
    [_metric_name(m) for m in metrics]

    train_batches = _as_batches(train_data, batch_size, shuffle, rng, "train_data")
    val_batches = None
    if val_data is not None:
        val_batches = _as_batches(val_data, batch_size or 256, False, None, "val_data")

    run = FitRun(model, loss_fn, optimizer, scheduler, train_batches, val_batches, callbacks,
                 History())
    if isinstance(resume_from, dict):
        run.restore(resume_from)
    elif resume_from is not None:
        run.restore(load_checkpoint(resume_from), source=f"checkpoint {os.fspath(resume_from)!r}")

    run.configure(accumulate=int(accumulate), clip_grad_norm=clip_grad_norm, metrics=metrics,
                  show=bool(progress) and sys.stdout.isatty() and run.is_main_process,
                  total_epochs=int(epochs))
    for cb in run.callbacks:
        cb.set_run(run)
    for cb in run.callbacks:
        cb.on_train_begin({})
    # The input batches are data: skip their gradient (the first Linear/Conv2d's input
    # gradient is a whole extra matrix multiply), as PyTorch does for inputs.
    needed = model.needs_input_grad
    model.needs_input_grad = False
    try:
        for epoch in range(run.start_epoch + 1, epochs + 1):
            run.epoch = epoch
            for cb in run.callbacks:
                cb.on_epoch_begin(epoch, {})
            logs, grad_norms = run.run_epoch(epoch)
            run.history.append(epoch, logs, grad_norms)
            for cb in run.callbacks:
                cb.on_epoch_end(epoch, logs)
            for cb in run.callbacks:
                cb.after_epoch(epoch, logs)
            if run.stop_training:
                break
    finally:
        model.needs_input_grad = needed

    for cb in run.callbacks:
        cb.on_train_end(run.history.last())
    return run.history


# ---------------------------------------------------------------------------- evaluate
def evaluate(model: Layer, data: Any, loss_fn: Any = None,
             metrics: Sequence[str | Callable] = ("accuracy",), *, batch_size: int = 256,
             prefix: str = "") -> dict[str, float]:
    """Mean loss and metrics of ``model`` on ``data``, in eval mode (no caches, no dropout).

    ``data`` is a DataLoader, an iterable of ``(x, y)`` batches or a tuple ``(x, y)`` (split
    into batches of ``batch_size``). For a ``DistributedDataParallel`` model the sums are
    taken over every rank's ``data`` (give each rank its shard). Returns e.g.
    ``{'loss': 0.12, 'accuracy': 0.97}`` (``prefix`` is put in front of each key). The
    model's train/eval mode is restored.
    """
    batches = _as_batches(data, batch_size, False, None, "data")
    was_training = model.training
    model.eval()
    stats = _MetricAccumulator(metrics)
    try:
        for batch in batches:
            x, y = _unpack(batch, "data")
            pred = model(x)
            loss = float(loss_fn(pred, y)) if loss_fn is not None else None
            stats.update(pred, y, loss, _num_samples(x))
    finally:
        if was_training:
            model.train()
    parallel = _data_parallel(model)
    if parallel is not None:  # every rank's shard (or the same data on every rank)
        stats.reduce(parallel.all_sum)
    return stats.result(prefix)


def predict(model: Layer, data: Any, *, batch_size: int = 256) -> NDArray:
    """Model outputs for every input, in eval mode, concatenated along the first axis.

    ``data`` is an array of inputs, a tuple ``(x, y)``, or an iterable of batches (each an
    input array or an ``(x, y)`` pair).
    """
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], np.ndarray):
        data = data[0]
    if isinstance(data, np.ndarray):
        batches: Iterable = (data[i:i + batch_size] for i in range(0, len(data), batch_size))
    else:
        batches = data
    was_training = model.training
    model.eval()
    outputs = []
    try:
        for batch in batches:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            outputs.append(np.asarray(model(x)))
    finally:
        if was_training:
            model.train()
    if not outputs:
        raise ValueError("predict: data produced no batches")
    return np.concatenate(outputs, axis=0)


__all__ = ["fit", "evaluate", "predict", "History", "CheckpointMismatchError", "ArrayBatches",
           "FitRun", "find_non_finite", "load_checkpoint", "accuracy_counts",
           "PER_BATCH_SCHEDULERS"]
