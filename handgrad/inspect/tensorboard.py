"""``TensorBoardLogger``: a ``GradientMonitor``'s numbers as TensorBoard event files.

    logger = TensorBoardLogger(model, "runs/exp1", every=10)
    hg.fit(model, loss_fn, opt, data, callbacks=[logger])
    # then: tensorboard --logdir runs

Written with tensorboardX (the optional ``tensorboard`` extra: ``pip install
'handgrad[tensorboard]'``), never by hand. Scalars, per recorded step (the monitor's step
counter, one per batch): ``activation_mean/<layer>``, ``activation_std/<layer>``,
``dead_share/<layer>``, ``grad_out_norm/<layer>``, ``grad_in_norm/<layer>``,
``grad_norm/<param>``, ``update_ratio/<param>``; per epoch: the epoch logs (``epoch/loss``,
``epoch/val_accuracy``, ...). Histograms: ``activation/<layer>`` and ``grad/<param>``.
"""

from __future__ import annotations

import math
import os
from typing import Any

from ..layer import Layer
from ..training.callbacks import Callback
from .monitor import GradientMonitor

_LAYER_SCALARS = (("act_mean", "activation_mean"), ("act_std", "activation_std"),
                  ("zeros", "dead_share"), ("grad_out_norm", "grad_out_norm"),
                  ("grad_in_norm", "grad_in_norm"))


def _summary_writer():
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ImportError("TensorBoardLogger needs tensorboardX, which is not installed; "
                          "install it with `pip install tensorboardX` (or the extra "
                          "`pip install -e \".[tensorboard]\"`)") from None
    return SummaryWriter


class TensorBoardLogger(Callback):
    """A ``fit`` callback (also usable by hand) writing a ``GradientMonitor`` to ``logdir``.

    Args:
        model: the model to watch (or pass ``monitor=`` to reuse a monitor).
        logdir: the folder for the event files.
        every, kwargs: passed to the ``GradientMonitor`` it creates.

    By hand: after every optimizer step call ``logger.end_step()``; ``close()`` at the end.
    """

    def __init__(self, model: Layer | None = None, logdir: str | os.PathLike = "runs",
                 every: int = 1, *, monitor: GradientMonitor | None = None, **kwargs: Any):
        if monitor is None:
            if model is None:
                raise ValueError("TensorBoardLogger: give a model or a monitor")
            monitor = GradientMonitor(model, every, **kwargs)
        self.monitor = monitor
        self.writer = _summary_writer()(logdir=str(logdir))
        self._written = (0, 0, 0)  # records, param records, histograms already written

    def end_step(self) -> None:
        self.monitor.end_step()
        self.write_new()

    def write_new(self) -> None:
        """Write what the monitor recorded since the last call."""
        m, w = self.monitor, self.writer
        r0, p0, h0 = self._written
        for r in m.records[r0:]:
            for key, tag in _LAYER_SCALARS:
                if math.isfinite(r[key]):
                    w.add_scalar(f"{tag}/{r['layer']}", r[key], r["step"])
        for r in m.param_records[p0:]:
            for key in ("grad_norm", "update_ratio"):
                if math.isfinite(r[key]):
                    w.add_scalar(f"{key}/{r['param']}", r[key], r["step"])
        for h in m.histograms[h0:]:
            w.add_histogram_raw(h["tag"], min=h["min"], max=h["max"], num=h["num"],
                                sum=h["sum"], sum_squares=h["sum_squares"],
                                bucket_limits=h["edges"][1:].tolist(),
                                bucket_counts=h["counts"].tolist(), global_step=h["step"])
        self._written = (len(m.records), len(m.param_records), len(m.histograms))

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()

    # ------------------------------------------------------------------ Callback
    def on_train_begin(self, logs: dict | None = None) -> None:
        self.monitor.attach()

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.end_step()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for key, value in (logs or {}).items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(f"epoch/{key}", value, epoch)
        self.writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        self.monitor.detach()
        self.close()


__all__ = ["TensorBoardLogger"]
