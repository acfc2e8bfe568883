"""TensorBoardLogger: the event files read back with TensorBoard's own reader."""

from __future__ import annotations

import numpy as np
import pytest

import handgrad as hg

from .lessons import batch, deep_net

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def read(logdir):
    acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={"scalars": 0,
                                                                         "histograms": 0})
    acc.Reload()
    return acc


def test_fit_writes_scalars_and_histograms(tmp_path):
    from handgrad.inspect import TensorBoardLogger

    model = deep_net("relu_he", depth=3)
    x, y = batch(n=32)
    logger = TensorBoardLogger(model, tmp_path, every=1)
    hg.fit(model, hg.losses.CrossEntropyLoss(), hg.optim.SGD(model.parameters(), lr=0.01),
           (x, y), batch_size=8, epochs=2, callbacks=[logger], progress=False)
    acc = read(tmp_path)
    tags = acc.Tags()
    assert {"grad_norm/0.weight", "update_ratio/2.weight", "activation_std/1",
            "grad_out_norm/4", "epoch/loss"} <= set(tags["scalars"])
    assert {"activation/1", "grad/0.weight"} <= set(tags["histograms"])
    events = acc.Scalars("grad_norm/0.weight")
    assert [e.step for e in events] == list(range(8))  # 4 batches x 2 epochs
    ours = [r["grad_norm"] for r in logger.monitor.param_records if r["param"] == "0.weight"]
    np.testing.assert_allclose([e.value for e in events], ours, rtol=1e-6)
    hist = acc.Histograms("grad/0.weight")[0].histogram_value
    assert hist.num == model[0].weight.size
    assert not logger.monitor.attached
