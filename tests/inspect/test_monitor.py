"""GradientMonitor and gradient_flow: per-layer numbers, warnings, cleanliness."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import handgrad as hg
from handgrad.inspect import GradientMonitor, GradientWarning, gradient_flow

from .lessons import batch, deep_net


def train_steps(model, monitor, steps=3, lr=0.1):
    x, y = batch()
    loss_fn = hg.losses.CrossEntropyLoss()
    opt = hg.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        opt.step()
        opt.zero_grad()
        monitor.end_step()


def test_sigmoid_net_warns_vanishing_once_naming_the_first_layer():
    model = deep_net("sigmoid")
    monitor = GradientMonitor(model)
    with pytest.warns(GradientWarning, match=r"vanishing gradient: the first layer '0'") as got:
        train_steps(model, monitor)
    assert len([w for w in got if issubclass(w.category, GradientWarning)]) == 1
    assert "ReLU" in monitor.warnings[0] and "residual" in monitor.warnings[0]
    assert monitor.table().first_to_last < 1e-3


@pytest.mark.parametrize("kind", ["relu_he", "batchnorm", "residual"])
def test_cured_nets_do_not_warn(kind):
    model = deep_net(kind)
    monitor = GradientMonitor(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GradientWarning)
        train_steps(model, monitor)
    assert monitor.warnings == []
    assert monitor.table().first_to_last > 1e-3


def test_exploding_warns_with_the_layer():
    model = deep_net("relu_he", depth=4)
    for p in model.parameters():
        p.data *= 30
    monitor = GradientMonitor(model, explode_threshold=1e3)
    with pytest.warns(GradientWarning, match="exploding gradient.*layer '.*clipping"):
        train_steps(model, monitor, steps=1, lr=0.0)


def test_non_finite_gradient_warns():
    model = deep_net("relu_he", depth=3)
    model[0].weight.register_hook(lambda g: np.full_like(g, np.nan))
    monitor = GradientMonitor(model)
    with pytest.warns(GradientWarning, match=r"'0\.weight'.*norm nan"):
        train_steps(model, monitor, steps=1, lr=0.0)


def test_records_match_hand_computed_numbers():
    model = deep_net("relu_he", depth=3)
    x, y = batch()
    monitor = GradientMonitor(model, warn=False)
    loss_fn = hg.losses.CrossEntropyLoss()
    opt = hg.optim.SGD(model.parameters(), lr=0.05)
    h = model[1](model[0](x))
    w_before = model[2].weight.data.copy()
    loss_fn(model(x), y)
    g = loss_fn.backward()
    model.backward(g)
    grad_w = model[2].weight.grad.copy()
    opt.step()
    monitor.end_step()
    table = monitor.table()
    assert table["1"].zeros == pytest.approx(np.mean(h == 0))
    assert table["1"].act_mean == pytest.approx(h.mean())
    assert table["4"].grad_out_norm == pytest.approx(np.linalg.norm(g))
    rec = {r["param"]: r for r in monitor.param_records}
    assert rec["2.weight"]["grad_norm"] == pytest.approx(np.linalg.norm(grad_w))
    assert rec["2.weight"]["update_ratio"] == pytest.approx(
        np.linalg.norm(0.05 * grad_w) / np.linalg.norm(w_before))
    tags = {h["tag"] for h in monitor.histograms}
    assert {"activation/1", "grad/2.weight"} <= tags
    assert all(h["counts"].sum() == h["num"] for h in monitor.histograms)


def test_every_n_steps_and_fit_callback_detaches():
    model = deep_net("relu_he", depth=3)
    x, y = batch(n=40)
    monitor = GradientMonitor(model, every=2)
    hg.fit(model, hg.losses.CrossEntropyLoss(), hg.optim.SGD(model.parameters(), lr=0.01),
           (x, y), batch_size=8, epochs=1, callbacks=[monitor], progress=False)
    assert monitor.steps == [0, 2, 4]
    assert not monitor.attached
    assert all("forward" not in m.__dict__ and "backward" not in m.__dict__
               for m in model.modules())
    _, ratios = monitor.series("0.weight", "update_ratio")
    assert len(ratios) == 3 and all(0 < r < 1 for r in ratios)


def test_monitor_plot(tmp_path):
    model = deep_net("relu_he", depth=3)
    monitor = GradientMonitor(model)
    train_steps(model, monitor, steps=3)
    assert monitor.plot(tmp_path / "monitor.png").stat().st_size > 1000


def test_gradient_flow_leaves_the_model_unchanged(tmp_path):
    model = deep_net("batchnorm", depth=4)
    x, y = batch()
    model.eval()
    stats = {k: v.copy() for k, v in model.named_buffers()}
    model[0].weight.grad = np.ones_like(model[0].weight.data)
    table = gradient_flow(model, hg.losses.CrossEntropyLoss(), x, y)
    assert not model.training and not model.caching
    np.testing.assert_array_equal(model[0].weight.grad, 1.0)
    for k, v in model.named_buffers():
        np.testing.assert_array_equal(v, stats[k])
    assert [r.layer for r in table.rows][:3] == ["0", "1", "2"]
    assert math.isnan(table["0"].update_ratio) and table["0"].param_grad_norm > 0
    assert "|dL/dout|" in str(table) and "BatchNorm1d" in str(table)
    assert table.plot(tmp_path / "flow.png").stat().st_size > 1000


def test_bad_arguments():
    with pytest.raises(TypeError, match="expected a Layer"):
        GradientMonitor("model")
    with pytest.raises(ValueError, match="every >= 1"):
        GradientMonitor(hg.Linear(2, 2), every=0)
    with pytest.raises(ValueError, match="nothing recorded"):
        GradientMonitor(hg.Linear(2, 2)).table()
