"""Dropout: statistics, mask reuse in backward, eval identity, seeding, contract."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import handgrad as hg
from tests.helpers import arrays, check_layer_contract


@given(p=st.sampled_from([0.0, 0.2, 0.5, 0.9]), n=st.integers(1, 4), data=st.data())
def test_dropout_gradients(check_gradients, p, n, data):
    check_gradients(hg.Dropout(p, rng=1), data.draw(arrays((n, 5))))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_contract(dtype):
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(dtype)
    # p=0: two training passes must give equal gradients, which a random mask would not
    check_layer_contract(lambda: hg.Dropout(0.0, rng=0), x)
    # p>0: the eval-mode parts of the contract (identity, no cache, eval(backward=True))
    layer = hg.Dropout(0.3, rng=0).eval()
    layer(x)
    with pytest.raises(RuntimeError, match="eval mode"):
        layer.backward(x)
    layer.eval(backward=True)
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer.backward(2 * x), 2 * x)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_statistics(p):
    x = np.ones((400, 500))
    y = hg.Dropout(p, rng=0)(x)
    kept = y != 0
    assert kept.mean() == pytest.approx(1 - p, abs=0.005)
    np.testing.assert_allclose(y[kept], 1 / (1 - p))
    assert y.mean() == pytest.approx(1.0, abs=0.01)  # the expectation is preserved


def test_backward_uses_the_forward_mask():
    layer = hg.Dropout(0.5, rng=3)
    y = layer(np.ones((5, 7)))
    np.testing.assert_array_equal(layer.backward(np.ones((5, 7))), y)


def test_eval_is_identity_and_p_edges():
    x = np.random.default_rng(0).standard_normal((3, 3)).astype(np.float32)
    layer = hg.Dropout(0.5).eval()
    assert layer(x) is x
    np.testing.assert_array_equal(hg.Dropout(1.0)(x), np.zeros_like(x))
    np.testing.assert_array_equal(hg.Dropout(0.0)(x), x)
    assert hg.Dropout(0.5)(x).dtype == np.float32


def test_seeded_layers_repeat_and_masks_change_between_calls():
    x = np.ones((10, 10))
    a, b = hg.Dropout(0.5, rng=7), hg.Dropout(0.5, rng=7)
    first = a(x)
    np.testing.assert_array_equal(first, b(x))
    assert not np.array_equal(first, a(x))
    hg.manual_seed(11)
    c = hg.Dropout(0.5)(x)
    hg.manual_seed(11)
    np.testing.assert_array_equal(c, hg.Dropout(0.5)(x))


def test_bad_p_and_repr():
    with pytest.raises(ValueError, match=r"Dropout: expected p in \[0, 1\], got 1.5"):
        hg.Dropout(1.5)
    assert repr(hg.Dropout(0.25)) == "Dropout(p=0.25)"
