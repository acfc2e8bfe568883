"""bptt_profile: per-step gradients against a brute-force computation, RNN vs LSTM, truncation."""

from __future__ import annotations

import numpy as np
import pytest

import handgrad as hg
from handgrad.inspect import bptt_profile, plot_bptt


def open_lstm(F, H, seed=1):
    lstm = hg.LSTM(F, H, dtype=np.float64, rng=seed)
    lstm.bias_ih_l0.data[H:2 * H] = 3.0  # forget gate open: the LSTM's cure
    lstm.bias_hh_l0.data[H:2 * H] = 0.0
    return lstm


def test_rnn_gradient_dies_faster_than_the_lstms(tmp_path):
    x = np.random.default_rng(0).standard_normal((60, 3, 4))
    rnn = bptt_profile(hg.RNN(4, 16, dtype=np.float64, rng=1), x, truncations=(5, 20))
    lstm = bptt_profile(open_lstm(4, 16), x, truncations=(5, 20))
    assert rnn.grad_norms[-1] == pytest.approx(lstm.grad_norms[-1])  # the same |v|
    assert rnn.grad_norms[0] < 1e-6 * lstm.grad_norms[0]
    assert rnn.reach() < 20 <= lstm.reach()
    # the RNN barely needs long BPTT; the LSTM's gradient changes when truncated
    assert dict(rnn.truncation)[20] > 0.999 and dict(lstm.truncation)[5] < 0.99
    assert set(lstm.saturation) == {"i", "f", "g", "o"} and lstm.saturation["f"].shape == (60,)
    assert lstm.cell_grad_norms is not None and rnn.cell_grad_norms is None
    assert "cosine to full BPTT" in str(lstm)
    assert plot_bptt({"RNN": rnn, "LSTM": lstm}, tmp_path / "b.png").stat().st_size > 1000


@pytest.mark.parametrize("cls", [hg.RNN, hg.GRU, hg.LSTM])
@pytest.mark.parametrize("batch_first", [False, True])
def test_grad_norms_match_a_perturbation_of_the_state(cls, batch_first):
    """|dL/dh_t| equals the gradient of L with respect to a state injected after step t."""
    T, N, F, H = 6, 2, 3, 4
    layer = cls(F, H, num_layers=2, batch_first=batch_first, dtype=np.float64, rng=0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, T, F) if batch_first else (T, N, F))
    g = rng.standard_normal(layer(x).shape)
    profile = bptt_profile(layer, x, g, truncations=())
    t = 2
    axis = 1 if batch_first else 0
    head, tail = np.split(x, [t + 1], axis=axis)
    g_head, g_tail = np.split(g, [t + 1], axis=axis)
    layer(head)
    state = layer.final_state
    layer(tail, state)
    layer.backward(g_tail)
    carried = layer.grad_initial_state
    carried = carried[0] if isinstance(carried, tuple) else carried
    direct = np.take(g_head, t, axis=axis)
    expected = carried.copy()
    expected[-1] += direct
    assert profile.grad_norms[t] == pytest.approx(np.linalg.norm(expected))


def test_truncation_at_full_length_is_full_bptt_and_state_is_restored():
    layer = hg.GRU(3, 5, dtype=np.float64, rng=0)
    x = np.random.default_rng(2).standard_normal((8, 2, 3))
    layer.train()
    layer.weight_ih_l0.grad = np.ones_like(layer.weight_ih_l0.data)
    profile = bptt_profile(layer, x, truncations=(1, 7, 8))
    assert [k for k, _ in profile.truncation] == [1, 7]
    assert profile.truncation[1][1] > profile.truncation[0][1]
    assert layer.training
    np.testing.assert_array_equal(layer.weight_ih_l0.grad, 1.0)


def test_bad_arguments():
    with pytest.raises(TypeError, match="RNN, LSTM or GRU"):
        bptt_profile(hg.Linear(2, 2), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="bidirectional"):
        bptt_profile(hg.GRU(2, 2, bidirectional=True), np.zeros((3, 1, 2)))
    with pytest.raises(ValueError, match="grad_output"):
        bptt_profile(hg.RNN(2, 2), np.zeros((3, 1, 2)), np.zeros((2, 1, 2)))
