"""PyTorch parity of every loss: value and gradient in float64 at rtol 1e-6."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn as tnn  # noqa: E402

from handgrad import losses  # noqa: E402

REDUCTIONS = ["mean", "sum", "none"]


def _compare(ours, theirs, pred, target, torch_target=None):
    value = ours(pred, target)
    upstream = np.random.default_rng(7).standard_normal(np.shape(value))
    grad = ours.backward(upstream if ours.reduction == "none" else 1.7)
    x = torch.tensor(pred, requires_grad=True)
    t = torch.tensor(target) if torch_target is None else torch_target
    expected = theirs(x, t)
    expected.backward(torch.tensor(upstream) if ours.reduction == "none"
                      else torch.tensor(1.7, dtype=torch.float64))
    np.testing.assert_allclose(value, expected.detach().numpy(), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(grad, x.grad.numpy(), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,kwargs", [
    ("MSELoss", {}), ("L1Loss", {}), ("HuberLoss", {}), ("HuberLoss", {"delta": 0.4}),
    ("SmoothL1Loss", {}), ("SmoothL1Loss", {"beta": 2.5}), ("SmoothL1Loss", {"beta": 0.0}),
])
def test_regression_parity(reduction, name, kwargs):
    rng = np.random.default_rng(0)
    pred, target = rng.standard_normal((6, 3, 2)) * 2, rng.standard_normal((6, 3, 2))
    _compare(getattr(losses, name)(reduction=reduction, **kwargs),
             getattr(tnn, name)(reduction=reduction, **kwargs), pred, target)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(7, 5), (3, 4, 2, 3), (5,)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_cross_entropy_index_parity(reduction, shape, weighted, smoothing, ignore_index):
    rng = np.random.default_rng(1)
    c = shape[0] if len(shape) == 1 else shape[1]
    pred = rng.standard_normal(shape) * 3
    target = (np.int64(rng.integers(0, c)) if len(shape) == 1
              else rng.integers(0, c, size=(shape[0],) + shape[2:]))
    if np.ndim(target):
        target.flat[0] = ignore_index  # at least one ignored entry
    weight = rng.uniform(0.2, 3.0, c) if weighted else None
    ours = losses.CrossEntropyLoss(weight, ignore_index=ignore_index, reduction=reduction,
                                   label_smoothing=smoothing)
    theirs = tnn.CrossEntropyLoss(None if weight is None else torch.tensor(weight),
                                  ignore_index=ignore_index, reduction=reduction,
                                  label_smoothing=smoothing)
    _compare(ours, theirs, pred, target)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(7, 5), (3, 4, 2, 3), (300, 1000)])
def test_cross_entropy_fused_path_parity(reduction, shape):
    """Plain class indices, nothing ignored: the fused path (large enough to be split)."""
    rng = np.random.default_rng(6)
    c = shape[1]
    pred = rng.standard_normal(shape) * 3
    target = rng.integers(0, c, size=(shape[0],) + shape[2:])
    _compare(losses.CrossEntropyLoss(reduction=reduction),
             tnn.CrossEntropyLoss(reduction=reduction), pred, target)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(6, 4), (2, 3, 4)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_probability_parity(reduction, shape, weighted, smoothing):
    rng = np.random.default_rng(2)
    c = shape[1]
    pred = rng.standard_normal(shape)
    probs = np.moveaxis(rng.dirichlet(np.ones(c), size=(shape[0],) + shape[2:]), -1, 1)
    weight = rng.uniform(0.2, 3.0, c) if weighted else None
    ours = losses.CrossEntropyLoss(weight, reduction=reduction, label_smoothing=smoothing)
    theirs = tnn.CrossEntropyLoss(None if weight is None else torch.tensor(weight),
                                  reduction=reduction, label_smoothing=smoothing)
    _compare(ours, theirs, pred, np.ascontiguousarray(probs))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(7, 5), (3, 4, 2, 3)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 1])
def test_nll_parity(reduction, shape, weighted, ignore_index):
    rng = np.random.default_rng(3)
    c = shape[1]
    pred = rng.standard_normal(shape)
    target = rng.integers(0, c, size=(shape[0],) + shape[2:])
    target.flat[0] = ignore_index
    weight = rng.uniform(0.2, 3.0, c) if weighted else None
    ours = losses.NLLLoss(weight, ignore_index=ignore_index, reduction=reduction)
    theirs = tnn.NLLLoss(None if weight is None else torch.tensor(weight),
                         ignore_index=ignore_index, reduction=reduction)
    _compare(ours, theirs, pred, target)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("pos_weighted", [False, True])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_bce_with_logits_parity(reduction, weighted, pos_weighted, scale):
    rng = np.random.default_rng(4)
    pred = rng.standard_normal((5, 3)) * scale
    target = rng.uniform(0, 1, (5, 3))
    weight = rng.uniform(0.2, 3.0, (5, 1)) if weighted else None
    pos_weight = rng.uniform(0.2, 3.0, 3) if pos_weighted else None
    ours = losses.BCEWithLogitsLoss(weight, reduction=reduction, pos_weight=pos_weight)
    theirs = tnn.BCEWithLogitsLoss(
        None if weight is None else torch.tensor(weight), reduction=reduction,
        pos_weight=None if pos_weight is None else torch.tensor(pos_weight))
    _compare(ours, theirs, pred, target)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_bce_parity(reduction, weighted):
    rng = np.random.default_rng(5)
    pred = rng.uniform(0.01, 0.99, (5, 3))
    target = rng.uniform(0, 1, (5, 3))
    weight = rng.uniform(0.2, 3.0, 3) if weighted else None
    ours = losses.BCELoss(weight, reduction=reduction)
    theirs = tnn.BCELoss(None if weight is None else torch.tensor(weight), reduction=reduction)
    _compare(ours, theirs, pred, target)
