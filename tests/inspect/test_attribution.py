"""Attribution: completeness of integrated gradients, the other methods' formulas, plots."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import handgrad as hg
from handgrad.inspect import (
    input_x_gradient,
    integrated_gradients,
    saliency,
    smoothgrad,
)


def tanh_net(seed=0):
    return hg.Sequential(hg.Linear(6, 8, dtype=np.float64, rng=seed), hg.Tanh(),
                         hg.Linear(8, 3, dtype=np.float64, rng=seed + 1))


@settings(deadline=None)
@given(seed=st.integers(0, 1000), target=st.integers(0, 2))
def test_integrated_gradients_completeness(seed, target):
    model = tanh_net(seed)
    rng = np.random.default_rng(seed)
    x, baseline = rng.standard_normal((3, 6)), rng.standard_normal(6) * 0.1
    a = integrated_gradients(model, x, target, baseline=baseline, steps=64)
    f = lambda z: model(z)[:, target]  # noqa: E731
    np.testing.assert_allclose(a.output, f(x))
    np.testing.assert_allclose(a.baseline_output, f(np.broadcast_to(baseline, x.shape)))
    gap = f(x) - a.baseline_output
    np.testing.assert_allclose(a.values.sum(axis=1) - gap, a.delta, atol=1e-12)
    assert a.completeness_error < 1e-3 * max(1.0, np.abs(gap).max())


def test_completeness_error_shrinks_like_the_midpoint_rule():
    model, x = tanh_net(), np.random.default_rng(0).standard_normal((4, 6))
    coarse = integrated_gradients(model, x, steps=8).completeness_error
    fine = integrated_gradients(model, x, steps=32).completeness_error
    assert fine < coarse / 8  # O(1/steps^2)


def test_saliency_and_input_x_gradient_are_the_input_gradient():
    model, x = tanh_net(), np.random.default_rng(1).standard_normal((2, 6))
    model.train()
    out = model(x)
    g = np.zeros_like(out)
    g[:, 2] = 1
    grad = model.backward(g)
    model.zero_grad()
    s = saliency(model, x, target=2)
    np.testing.assert_allclose(s.values, np.abs(grad))
    np.testing.assert_allclose(input_x_gradient(model, x, 2).values, x * grad)
    assert model.training and all(p.grad is None for p in model.parameters())
    np.testing.assert_array_equal(saliency(model, x).target, out.argmax(axis=1))


def test_smoothgrad_is_seeded_and_differs_from_saliency():
    model, x = tanh_net(), np.random.default_rng(2).standard_normal((2, 6))
    a = smoothgrad(model, x, 1, n_samples=8, rng=0)
    np.testing.assert_array_equal(a.values, smoothgrad(model, x, 1, n_samples=8, rng=0).values)
    assert not np.allclose(a.values, saliency(model, x, 1).values)
    assert np.all(a.values >= 0)


def test_sequence_model_per_token(tmp_path):
    model = hg.models.SequenceClassifier(vocab_size=10, embedding_dim=5, hidden_size=7,
                                         num_classes=2, dtype=np.float64, rng=0)
    ids = np.random.default_rng(3).integers(0, 10, (3, 6))
    a = integrated_gradients(model, ids, layer=model.embedding, steps=64)
    assert a.values.shape == (3, 6, 5) and a.per_token.shape == (3, 6)
    assert a.completeness_error < 1e-4
    np.testing.assert_allclose(a.inputs, model.embedding.weight.data[ids])
    s = saliency(model, ids, 0, layer=model.embedding)
    assert s.per_token.shape == (3, 6) and np.all(s.per_token >= 0)
    tokens = [[str(i) for i in row] for row in ids]
    assert a.plot(tmp_path / "tokens.png", tokens=tokens).stat().st_size > 1000
    with pytest.raises(ValueError, match="layer=model.embedding"):
        saliency(model, ids)


def test_image_model_heatmap(tmp_path):
    model = hg.models.digits_cnn(rng=0)
    x = np.random.default_rng(4).standard_normal((2, 1, 8, 8)).astype(np.float32)
    a = saliency(model, x)
    assert a.values.shape == x.shape and a.values.dtype == np.float32
    assert a.heatmap.shape == (2, 8, 8)
    assert a.plot(tmp_path / "saliency.png").stat().st_size > 1000


def test_bad_arguments():
    model = tanh_net()
    x = np.zeros((2, 6))
    with pytest.raises(ValueError, match="steps >= 1"):
        integrated_gradients(model, x, steps=0)
    with pytest.raises(ValueError, match="target"):
        saliency(model, x, target=[1, 2, 0])
    with pytest.raises(ValueError, match="not part of the model"):
        saliency(model, x, layer=hg.Linear(2, 2))
