"""Tests for handgrad.training: fit/evaluate/predict and the callbacks."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest

import handgrad as hg
from handgrad.data import DataLoader
from handgrad.layer import Layer
from handgrad.losses import CrossEntropyLoss, MSELoss
from handgrad.optim import SGD, Adam
from handgrad.training.callbacks import Callback, CSVLogger, EarlyStopping, ModelCheckpoint
from handgrad.training.fit import (
    CheckpointMismatchError,
    History,
    accuracy_counts,
    evaluate,
    find_non_finite,
    fit,
    load_checkpoint,
    predict,
)


def blobs(n=96, seed=0, dtype=np.float32):
    """Three well separated Gaussian blobs in 4-D: an easy 3-class problem."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[2, 0, 0, 1], [-2, 1, 0, 0], [0, -2, 2, 0]], dtype=np.float64)
    x = centers[y] + 0.5 * rng.standard_normal((n, 4))
    return x.astype(dtype), y.astype(np.int64)


def small_mlp(seed=0, dtype=np.float32, dropout=0.0):
    layers = [hg.Linear(4, 8, dtype=dtype, rng=seed), hg.Tanh()]
    if dropout:
        layers.append(hg.Dropout(dropout, rng=seed + 100))
    layers.append(hg.Linear(8, 3, dtype=dtype, rng=seed + 1))
    return hg.Sequential(*layers)


# ---------------------------------------------------------------------------- fit basics
def test_fit_reduces_loss_and_records_history():
    x, y = blobs()
    model = small_mlp()
    history = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.2), (x, y), epochs=4,
                  batch_size=16, val_data=blobs(48, seed=1), rng=0, progress=False)
    assert isinstance(history, History)
    assert history.epoch == [1, 2, 3, 4]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"):
        assert len(history.history[key]) == 4, key
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["val_accuracy"][-1] > 0.9
    assert history["lr"] == [0.2] * 4
    assert all(t > 0 for t in history["time"])
    assert history.layer_types == {"0": "Linear", "2": "Linear"}
    assert all(len(v) == 4 and all(n > 0 for n in v) for v in history.grad_norms.values())
    assert History.from_json(history.to_json()).history == history.history


def test_fit_accepts_dataloader_and_list_of_batches():
    x, y = blobs()
    model = small_mlp()
    loader = DataLoader((x, y), batch_size=32, shuffle=True, rng=0)
    h1 = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), loader, epochs=2,
             progress=False)
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, len(x), 32)]
    h2 = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), batches, epochs=2,
             progress=False)
    assert len(h1) == len(h2) == 2


def test_fit_rejects_one_shot_iterators_and_bare_tuples():
    x, y = blobs(32)
    model = small_mlp()
    opt = SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="iterator"):
        fit(model, CrossEntropyLoss(), opt, iter([(x, y)]), epochs=2)
    with pytest.raises(ValueError, match="batch_size"):
        fit(model, CrossEntropyLoss(), opt, (x, y))
    with pytest.raises(ValueError, match="accumulate"):
        fit(model, CrossEntropyLoss(), opt, (x, y), batch_size=8, accumulate=0)


def test_progress_is_quiet_when_stdout_is_not_a_terminal(capsys):
    x, y = blobs(32)
    model = small_mlp()
    fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), (x, y), epochs=1,
        batch_size=8, progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_evaluate_and_predict_use_eval_mode_and_restore_it():
    x, y = blobs(40)
    model = small_mlp(dropout=0.5)
    model.train()
    out1 = predict(model, x, batch_size=7)
    out2 = predict(model, (x, y), batch_size=64)
    assert out1.shape == (40, 3) and out1.dtype == np.float32
    np.testing.assert_array_equal(out1, out2)  # dropout off in eval mode
    assert model.training
    result = evaluate(model, (x, y), CrossEntropyLoss(), batch_size=16)
    assert set(result) == {"loss", "accuracy"}
    expected = np.mean(out1.argmax(1) == y)
    assert result["accuracy"] == pytest.approx(expected)
    assert model.training


def test_accuracy_counts_for_several_target_layouts():
    pred = np.array([[0.1, 2.0], [3.0, 0.0], [0.0, 1.0]])
    assert accuracy_counts(pred, np.array([1, 0, 0])) == (2, 3)
    seq = np.zeros((2, 3, 4))  # (N, T, C) with class index targets (N, T)
    seq[..., 2] = 1.0
    assert accuracy_counts(seq, np.full((2, 3), 2)) == (6, 6)
    logits = np.array([[-1.0], [2.0]])
    assert accuracy_counts(logits, np.array([[0.0], [0.0]])) == (1, 2)
    assert accuracy_counts(np.zeros((3, 2)), np.zeros((3, 5))) is None


# ---------------------------------------------------------------------------- accumulation
@pytest.mark.parametrize("sizes", [(4, 4), (3, 5)])
def test_accumulation_equals_one_big_batch(sizes):
    x, y = blobs(8, dtype=np.float64)
    bounds = np.cumsum([0, *sizes])
    small = [(x[a:b], y[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

    big_model = small_mlp(dtype=np.float64)
    acc_model = small_mlp(dtype=np.float64)
    fit(big_model, CrossEntropyLoss(), SGD(big_model.parameters(), lr=0.5), [(x, y)],
        epochs=3, progress=False)
    fit(acc_model, CrossEntropyLoss(), SGD(acc_model.parameters(), lr=0.5), small, epochs=3,
        accumulate=2, progress=False)
    for (name, p), q in zip(big_model.named_parameters(), acc_model.parameters()):
        np.testing.assert_allclose(q.data, p.data, rtol=1e-12, atol=1e-13, err_msg=name)


def test_accumulation_with_sum_loss_and_incomplete_last_window():
    x, y = blobs(12, dtype=np.float64)
    target = np.eye(3)[y]
    big = small_mlp(dtype=np.float64)
    acc = small_mlp(dtype=np.float64)
    fit(big, MSELoss(reduction="sum"), SGD(big.parameters(), lr=0.01),
        [(x[:8], target[:8]), (x[8:], target[8:])], epochs=1, metrics=(), progress=False)
    # accumulate=2 over 3 batches: steps after batches 2 and 3 (the last window is incomplete)
    fit(acc, MSELoss(reduction="sum"), SGD(acc.parameters(), lr=0.01),
        [(x[:4], target[:4]), (x[4:8], target[4:8]), (x[8:], target[8:])], epochs=1,
        accumulate=2, metrics=(), progress=False)
    for p, q in zip(big.parameters(), acc.parameters()):
        np.testing.assert_allclose(q.data, p.data, rtol=1e-12, atol=1e-13)


def test_clip_grad_norm_limits_each_step():
    x, y = blobs(16, dtype=np.float64)
    model = small_mlp(dtype=np.float64)
    before = [p.data.copy() for p in model.parameters()]
    fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=1.0), [(x, y)], epochs=1,
        clip_grad_norm=1e-3, progress=False)
    moved = np.sqrt(sum(np.sum((p.data - b) ** 2) for p, b in zip(model.parameters(), before)))
    assert 0 < moved <= 1e-3 * (1 + 1e-6)


# ---------------------------------------------------------------------------- NaN guard
def test_nan_loss_names_the_layer_whose_output_overflowed():
    x, y = blobs(16)
    model = hg.Sequential(hg.Linear(4, 8, rng=0), hg.ReLU(), hg.Linear(8, 8, rng=1),
                          hg.Linear(8, 3, rng=2))
    model[2].weight.data[:] = 3e38  # the third layer overflows float32
    with pytest.raises(FloatingPointError) as info:
        with np.errstate(all="ignore"):
            fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), (x * 100, y),
                batch_size=8, progress=False)
    message = str(info.value)
    assert "epoch 1, batch 1" in message
    assert "output of layer '2' Linear(in_features=8, out_features=8" in message


class _BadBackward(Layer):
    """Identity forward; backward returns NaN (a broken hand-written gradient)."""

    def forward(self, x):
        self._cache = x.shape if self.caching else None
        return x

    def backward(self, grad_out):
        return np.full(self._saved(self._cache), np.nan, dtype=grad_out.dtype)


def test_nan_gradient_names_the_layer_whose_backward_broke():
    x, y = blobs(16)
    model = hg.Sequential(hg.Linear(4, 8, rng=0), _BadBackward(), hg.Linear(8, 3, rng=1))
    with pytest.raises(FloatingPointError) as info:
        fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), (x, y), batch_size=8,
            progress=False)
    message = str(info.value)
    assert "gradient of layer '0'" in message
    assert "input gradient returned by backward of layer '1' _BadBackward" in message


def test_find_non_finite_reports_bad_input_and_bad_parameters():
    x, y = blobs(4)
    model = small_mlp()
    bad = x.copy()
    bad[0, 0] = np.nan
    assert "input batch" in find_non_finite(model, CrossEntropyLoss(), bad, y)
    model[2].bias.data[1] = np.inf
    assert "parameter '2.bias'" in find_non_finite(model, CrossEntropyLoss(), x, y)
    # the traced wrappers are removed afterwards
    assert all("forward" not in vars(m) for m in model.modules())


# ---------------------------------------------------------------------------- schedulers
class _Recorder:
    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.calls = []

    def step(self, *args):
        self.calls.append(args)

    def state_dict(self):
        return {}


class OneCycleLR(_Recorder):
    pass


class ReduceLROnPlateau(_Recorder):
    pass


class StepLR(_Recorder):
    pass


@pytest.mark.parametrize("cls, expected", [(OneCycleLR, 3 * 4), (StepLR, 3),
                                           (ReduceLROnPlateau, 3)])
def test_scheduler_stepped_by_type(cls, expected):
    x, y = blobs(32)
    model = small_mlp()
    opt = SGD(model.parameters(), lr=0.1)
    sched = cls(opt)
    history = fit(model, CrossEntropyLoss(), opt, (x, y), epochs=3, batch_size=8,
                  val_data=blobs(16, seed=2), scheduler=sched, progress=False)
    assert len(sched.calls) == expected
    if cls is ReduceLROnPlateau:  # stepped with the validation loss
        assert [c[0] for c in sched.calls] == pytest.approx(history["val_loss"])
    else:
        assert all(c == () for c in sched.calls)


def test_real_step_scheduler_changes_recorded_lr():
    lr_scheduler = pytest.importorskip("handgrad.optim.lr_scheduler")
    x, y = blobs(32)
    model = small_mlp()
    opt = SGD(model.parameters(), lr=0.1)
    sched = lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    history = fit(model, CrossEntropyLoss(), opt, (x, y), epochs=3, batch_size=16,
                  scheduler=sched, progress=False)
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])


# ---------------------------------------------------------------------------- callbacks
def test_early_stopping_stops_and_restores_best_weights():
    x, y = blobs(32)
    model = small_mlp()
    snapshots = {}

    class Snapshot(Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots[epoch] = self.run.model.state_dict()

    # The training loss falls every epoch, so with mode="max" epoch 1 stays the best.
    stopper = EarlyStopping(monitor="loss", mode="max", patience=2, restore_best_weights=True)
    history = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.2), (x, y),
                  epochs=10, batch_size=8, callbacks=[Snapshot(), stopper], progress=False)
    assert len(history) == 3 and stopper.stopped_epoch == 3 and stopper.best_epoch == 1
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, snapshots[1][key])


def test_early_stopping_min_delta_and_bad_arguments():
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="up")
    x, y = blobs(32)
    model = small_mlp()
    stopper = EarlyStopping(monitor="loss", min_delta=10.0, patience=1)
    history = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), (x, y),
                  epochs=5, batch_size=8, callbacks=[stopper], progress=False)
    assert len(history) == 2  # no change of 10 or more: stop after one epoch of patience


def test_model_checkpoint_best_and_last_and_csv_log(tmp_path):
    x, y = blobs(48)
    model = small_mlp()
    ckpt = ModelCheckpoint(tmp_path / "ckpt", monitor="val_accuracy")
    log = CSVLogger(tmp_path / "log.csv")
    history = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), (x, y),
                  epochs=3, batch_size=16, val_data=blobs(24, seed=3),
                  callbacks=[ckpt, log], progress=False)
    last = load_checkpoint(ckpt.last_path)
    best = load_checkpoint(ckpt.best_path)
    assert int(last["epoch"]) == 3
    best_epoch = 1 + int(np.argmax(history["val_accuracy"]))
    assert int(best["epoch"]) == best_epoch == ckpt.best_epoch
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(last["model"][key], value)
    with open(tmp_path / "log.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][:5] == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert [r[0] for r in rows[1:]] == ["1", "2", "3"]
    assert float(rows[3][1]) == pytest.approx(history["loss"][2], rel=1e-5)


# ---------------------------------------------------------------------------- resume
def _resume_setup(seed):
    x, y = blobs(64)
    model = small_mlp(seed=seed, dropout=0.2)
    model[2].rng = np.random.default_rng(seed + 7)  # the dropout generator
    opt = Adam(model.parameters(), lr=0.01)
    loader = DataLoader((x, y), batch_size=16, shuffle=True, rng=seed + 3)
    return model, opt, loader


def test_resume_continues_exactly(tmp_path):
    model, opt, loader = _resume_setup(0)
    fit(model, CrossEntropyLoss(), opt, loader, epochs=4, val_data=blobs(16, seed=5),
        progress=False)

    first, opt1, loader1 = _resume_setup(0)
    ckpt = ModelCheckpoint(tmp_path, monitor="val_loss")
    fit(first, CrossEntropyLoss(), opt1, loader1, epochs=2, val_data=blobs(16, seed=5),
        callbacks=[ckpt, CSVLogger(tmp_path / "log.csv")], progress=False)

    # Built with other seeds: everything must come from the checkpoint.
    resumed, opt2, loader2 = _resume_setup(11)
    ckpt2 = ModelCheckpoint(tmp_path / "again", monitor="val_loss")
    history = fit(resumed, CrossEntropyLoss(), opt2, loader2, epochs=4,
                  val_data=blobs(16, seed=5), callbacks=[ckpt2, CSVLogger(tmp_path / "log.csv")],
                  progress=False, resume_from=ckpt.last_path)
    assert history.epoch == [1, 2, 3, 4]
    with open(tmp_path / "log.csv", newline="") as f:
        assert [row[0] for row in csv.reader(f)] == ["epoch", "1", "2", "3", "4"]
    assert ckpt2.best == pytest.approx(min(history["val_loss"]))
    for (name, p), q in zip(model.named_parameters(), resumed.parameters()):
        np.testing.assert_array_equal(q.data, p.data, err_msg=name)


def test_resume_from_other_architecture_names_keys_and_shapes(tmp_path):
    x, y = blobs(16)
    model = small_mlp()
    fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), (x, y), batch_size=8,
        callbacks=[ModelCheckpoint(tmp_path, monitor="loss")], progress=False)
    other = hg.Sequential(hg.Linear(4, 5), hg.Tanh(), hg.Linear(5, 3))
    with pytest.raises(CheckpointMismatchError) as info:
        fit(other, CrossEntropyLoss(), SGD(other.parameters(), lr=0.1), (x, y), batch_size=8,
            epochs=2, progress=False, resume_from=tmp_path / "last.npz")
    assert re.search(r"0\.weight: expected shape \(5, 4\), got \(8, 4\)", str(info.value))


def test_real_onecycle_and_plateau_schedulers():
    from handgrad.optim import lr_scheduler

    x, y = blobs(32)
    model = small_mlp()
    opt = SGD(model.parameters(), lr=0.1)
    # OneCycleLR raises if stepped more than total_steps times: per batch is exactly right.
    sched = lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=3 * 4)
    fit(model, CrossEntropyLoss(), opt, (x, y), epochs=3, batch_size=8, scheduler=sched,
        progress=False)
    assert sched.last_epoch == 12

    opt = SGD(model.parameters(), lr=0.1)
    # mode="max" on a falling validation loss: no improvement after epoch 1, so with
    # patience 0 the rate halves after epoch 2.
    plateau = lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=0)
    history = fit(model, CrossEntropyLoss(), opt, (x, y), epochs=3, batch_size=8,
                  val_data=(x, y), scheduler=plateau, progress=False)
    assert history["val_loss"][1] < history["val_loss"][0]
    assert history["lr"] == pytest.approx([0.1, 0.1, 0.05])


def test_resumed_early_stopping_stops_at_the_same_epoch(tmp_path):
    def run(epochs, resume=None):
        x, y = blobs(32)
        model = small_mlp()
        # The checkpoint comes first: it must still save the stopper's update of the epoch.
        callbacks = [ModelCheckpoint(tmp_path, monitor="loss"),
                     EarlyStopping(monitor="loss", mode="max", patience=2)]
        history = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.2), (x, y),
                      epochs=epochs, batch_size=8, callbacks=callbacks, progress=False,
                      resume_from=resume)
        return history, callbacks[1]

    full, stopper = run(10)
    assert stopper.stopped_epoch == 3
    run(2)
    resumed, stopper = run(10, resume=tmp_path / "last.npz")
    assert stopper.stopped_epoch == 3 and resumed.epoch == [1, 2, 3]


def test_resume_with_another_optimizer_is_refused_and_leaves_the_model(tmp_path):
    x, y = blobs(16)
    model = small_mlp()
    fit(model, CrossEntropyLoss(), Adam(model.parameters()), (x, y), batch_size=8,
        callbacks=[ModelCheckpoint(tmp_path, monitor="loss")], progress=False)
    other = small_mlp(seed=5)
    before = other.state_dict()
    with pytest.raises(CheckpointMismatchError, match="optimizer/scheduler state"):
        fit(other, CrossEntropyLoss(), SGD(other.parameters(), lr=0.1, momentum=0.9), (x, y),
            batch_size=8, epochs=2, progress=False, resume_from=tmp_path / "last.npz")
    for key, value in other.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_bad_fit_arguments_are_reported_by_fit():
    model = hg.Linear(2, 2)
    loss, opt = MSELoss(), SGD(model.parameters(), lr=0.1)
    x = np.ones((4, 2), np.float32)
    with pytest.raises(ValueError, match=r"^fit: train_data: expected batch_size >= 1, got 0"):
        hg.fit(model, loss, opt, (x, x), batch_size=0, progress=False)
    with pytest.raises(TypeError, match=r"^fit: expected callbacks as a list of Callback"):
        hg.fit(model, loss, opt, (x, x), batch_size=2, callbacks=5, progress=False)
