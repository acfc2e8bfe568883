"""LSTM ``proj_size`` and variable-length sequences (``lengths=``) for RNN, LSTM and GRU:
gradient checks under hypothesis, PyTorch parity (projections; ``pack_padded_sequence``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import handgrad as hg


class _WithState(hg.Layer):
    """Output sequence and final state side by side, so gradcheck checks both paths."""

    def __init__(self, rnn, lengths=None):
        super().__init__()
        self.rnn = rnn
        self.lengths = lengths

    def forward(self, x):
        y = self.rnn(x, lengths=self.lengths)
        state = self.rnn.final_state
        parts = state if isinstance(state, tuple) else (state,)
        self._shapes = [y.shape] + [p.shape for p in parts]
        return np.concatenate([y.reshape(-1)] + [p.reshape(-1) for p in parts])

    def backward(self, grad):
        sizes = [int(np.prod(s)) for s in self._shapes]
        pieces = np.split(grad, np.cumsum(sizes)[:-1])
        shaped = [p.reshape(s) for p, s in zip(pieces, self._shapes)]
        final = tuple(shaped[1:]) if len(shaped) > 2 else shaped[1]
        return self.rnn.backward(shaped[0], final)


@given(layers=st.integers(1, 2), bidirectional=st.booleans(), proj=st.integers(1, 3),
       batch_first=st.booleans(), seed=st.integers(0, 2**16))
def test_lstm_projection_gradients(check_gradients, layers, bidirectional, proj, batch_first,
                                   seed):
    lstm = hg.LSTM(3, 4, num_layers=layers, bidirectional=bidirectional, proj_size=proj,
                   batch_first=batch_first, dtype=np.float64, rng=seed)
    x = np.random.default_rng(seed).standard_normal((2, 3, 3))
    check_gradients(_WithState(lstm), x)


@given(mode=st.sampled_from(["RNN", "LSTM", "GRU"]), layers=st.integers(1, 2),
       bidirectional=st.booleans(), seed=st.integers(0, 2**16))
def test_variable_length_gradients(check_gradients, mode, layers, bidirectional, seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 5, size=3)
    rnn = getattr(hg, mode)(2, 3, num_layers=layers, bidirectional=bidirectional,
                            dtype=np.float64, rng=seed)
    check_gradients(_WithState(rnn, lengths), rng.standard_normal((4, 3, 2)))


def test_projection_shapes_and_errors():
    lstm = hg.LSTM(5, 8, num_layers=2, bidirectional=True, proj_size=3)
    names = {k: v.shape for k, v in lstm.state_dict().items()}
    assert names["weight_hh_l0"] == (32, 3) and names["weight_hr_l0"] == (3, 8)
    assert names["weight_ih_l1"] == (32, 6) and names["weight_hr_l1_reverse"] == (3, 8)
    y = lstm(np.zeros((4, 2, 5), np.float32))
    h, c = lstm.final_state
    assert y.shape == (4, 2, 6) and h.shape == (4, 2, 3) and c.shape == (4, 2, 8)
    assert "proj_size=3" in repr(lstm)
    assert hg.LSTM(5, 8, proj_size=0).proj_size == 0
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        hg.LSTM(5, 8, proj_size=8)
    with pytest.raises(ValueError, match="non-negative integer proj_size"):
        hg.LSTM(5, 8, proj_size=-1)
    with pytest.raises(ValueError, match=r"expected h_0 of shape \(4, 2, 3\)"):
        lstm(np.zeros((4, 2, 5), np.float32), (np.zeros((4, 2, 8), np.float32),
                                               np.zeros((4, 2, 8), np.float32)))


def test_variable_lengths_match_separate_runs():
    """Each sequence with lengths= equals that sequence run alone, cut to its length."""
    rng = np.random.default_rng(0)
    gru = hg.GRU(2, 3, bidirectional=True, batch_first=True, dtype=np.float64, rng=0)
    x = rng.standard_normal((3, 5, 2))
    lengths = np.array([2, 5, 3])
    y = gru(x, lengths=lengths)
    final = gru.final_state
    for n, length in enumerate(lengths):
        alone = gru(x[n:n + 1, :length])
        np.testing.assert_allclose(y[n, :length], alone[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(y[n, length:], 0)
        np.testing.assert_allclose(final[:, n], gru.final_state[:, 0], rtol=1e-12, atol=1e-14)


def test_bad_lengths_name_the_layer():
    rnn = hg.RNN(2, 3)
    x = np.zeros((4, 2, 2), np.float32)
    with pytest.raises(ValueError, match=r"RNN\(2, 3\): expected lengths in \[1, 4\]"):
        rnn(x, lengths=[0, 3])
    with pytest.raises(ValueError, match=r"expected lengths as 2 integers"):
        rnn(x, lengths=[1, 2, 3])
    with pytest.raises(ValueError, match=r"expected lengths as 2 integers"):
        rnn(x, lengths=[1.5, 2.0])


# ---------------------------------------------------------------- PyTorch parity
def _load(layer, tlayer, torch):
    tlayer.double()
    tlayer.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                            layer.state_dict().items()})


@pytest.mark.parametrize("layers, bidirectional, batch_first",
                         [(1, False, False), (2, True, True), (3, False, True)])
def test_lstm_projection_parity(layers, bidirectional, batch_first):
    torch = pytest.importorskip("torch")
    lstm = hg.LSTM(3, 5, num_layers=layers, bidirectional=bidirectional, proj_size=2,
                   batch_first=batch_first, dtype=np.float64, rng=1)
    tlstm = torch.nn.LSTM(3, 5, num_layers=layers, bidirectional=bidirectional, proj_size=2,
                          batch_first=batch_first)
    _load(lstm, tlstm, torch)
    rng = np.random.default_rng(2)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((4, 3, 3))
    n = x.shape[0] if batch_first else x.shape[1]
    h0 = rng.standard_normal((layers * D, n, 2))
    c0 = rng.standard_normal((layers * D, n, 5))
    tx, th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    ty, (th, tc) = tlstm(tx, (th0, tc0))
    g, gh, gc = (rng.standard_normal(t.shape) for t in (ty, th, tc))
    ((ty * torch.tensor(g)).sum() + (th * torch.tensor(gh)).sum()
     + (tc * torch.tensor(gc)).sum()).backward()
    y = lstm(x, (h0, c0))
    gx = lstm.backward(g, (gh, gc))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lstm.final_state[0], th.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lstm.final_state[1], tc.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lstm.grad_initial_state[0], th0.grad.numpy(), rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(lstm.grad_initial_state[1], tc0.grad.numpy(), rtol=1e-10,
                               atol=1e-12)
    tparams = dict(tlstm.named_parameters())
    for name, p in lstm.named_parameters():
        np.testing.assert_allclose(p.grad, tparams[name].grad.numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=name)


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True)])
def test_variable_lengths_parity_with_packed_sequences(mode, layers, bidirectional):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    rnn = getattr(hg, mode)(3, 4, num_layers=layers, bidirectional=bidirectional,
                            dtype=np.float64, rng=3)
    trnn = getattr(torch.nn, mode)(3, 4, num_layers=layers, bidirectional=bidirectional)
    _load(rnn, trnn, torch)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 4, 3))
    lengths = np.array([3, 5, 1, 3])
    tx = torch.tensor(x, requires_grad=True)
    packed = pack_padded_sequence(tx, torch.tensor(lengths), enforce_sorted=False)
    tout, tfinal = trnn(packed)
    ty, _ = pad_packed_sequence(tout, total_length=5)
    tparts = tfinal if isinstance(tfinal, tuple) else (tfinal,)
    g = rng.standard_normal(ty.shape)
    gfinal = [rng.standard_normal(t.shape) for t in tparts]
    loss = (ty * torch.tensor(g)).sum()
    for t, gf in zip(tparts, gfinal):
        loss = loss + (t * torch.tensor(gf)).sum()
    loss.backward()
    y = rnn(x, lengths=lengths)
    parts = rnn.final_state if isinstance(rnn.final_state, tuple) else (rnn.final_state,)
    gx = rnn.backward(g, tuple(gfinal) if mode == "LSTM" else gfinal[0])
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    for mine, theirs in zip(parts, tparts):
        np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    tparams = dict(trnn.named_parameters())
    for name, p in rnn.named_parameters():
        np.testing.assert_allclose(p.grad, tparams[name].grad.numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=name)
