"""RNN, LSTM, GRU and the cells: gate order, linear_before_reset, layers, directions, states."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import handgrad as hg
import handgrad.onnx
from handgrad.onnx._recurrent import from_onnx_gates, to_onnx_gates

from .roundtrip import check_roundtrip, onnx, run_onnxruntime

CLASSES = {"rnn": hg.RNN, "lstm": hg.LSTM, "gru": hg.GRU}
F, H = 3, 4


def _state(rng, mode, LD, N, unbatched=False):
    shape = (LD, H) if unbatched else (LD, N, H)
    h = rng.standard_normal(shape, dtype=np.float32)
    if mode == "lstm":
        return h, rng.standard_normal(shape, dtype=np.float32)
    return h


def test_gate_blocks_go_to_onnx_order_and_back():
    H2 = 2
    for mode, onnx_order in [("lstm", "iofg"), ("gru", "zrn")]:
        torch_order = "ifgo" if mode == "lstm" else "rzn"
        # each block filled with the index of its gate letter in PyTorch's order
        packed = np.repeat(np.arange(len(torch_order)), H2)[:, None] * np.ones((1, 3))
        onnx_blocks = to_onnx_gates(packed, mode)[::H2, 0]
        assert "".join(torch_order[int(k)] for k in onnx_blocks) == onnx_order
        np.testing.assert_array_equal(from_onnx_gates(to_onnx_gates(packed, mode), mode), packed)


CONFIGS = list(itertools.product(["rnn", "lstm", "gru"], [1, 2], [False, True], [False, True],
                                 [False, True]))


@pytest.mark.parametrize("mode, layers, bidirectional, batch_first, with_state", CONFIGS,
                         ids=[f"{m}-L{n}-{'bi' if b else 'uni'}-{'bf' if f else 'tf'}"
                              f"{'-state' if s else ''}" for m, n, b, f, s in CONFIGS])
def test_recurrent_layer(mode, layers, bidirectional, batch_first, with_state, tmp_path):
    rng = np.random.default_rng(hash((mode, layers, bidirectional, batch_first)) % 2**32)
    layer = CLASSES[mode](F, H, num_layers=layers, bidirectional=bidirectional,
                          batch_first=batch_first, dropout=0.3 if layers > 1 else 0.0, rng=1)
    LD = layers * (2 if bidirectional else 1)

    def args(N, T):
        x = rng.standard_normal((N, T, F) if batch_first else (T, N, F), dtype=np.float32)
        return (x, _state(rng, mode, LD, N)) if with_state else (x,)

    loaded = check_roundtrip(layer, args(2, 5), tmp_path, [args(3, 5), args(1, 5)])
    assert type(loaded) is type(layer)
    assert set(loaded.state_dict()) == set(layer.state_dict())


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_variants_relu_no_bias_unbatched_time(mode, tmp_path):
    rng = np.random.default_rng(7)
    extra = {"nonlinearity": "relu"} if mode == "rnn" else {}
    layer = CLASSES[mode](F, H, num_layers=2, bias=False, batch_first=True, rng=2, **extra)
    x = rng.standard_normal((2, 5, F), dtype=np.float32)
    # dynamic time too: any batch size and any sequence length
    check_roundtrip(layer, x, tmp_path, [rng.standard_normal((3, 8, F), dtype=np.float32)],
                    dynamic_axes={1: "T"})
    unbatched = CLASSES[mode](F, H, bidirectional=True, rng=3, **extra)
    x = rng.standard_normal((6, F), dtype=np.float32)
    check_roundtrip(unbatched, (x, _state(rng, mode, 2, 1, unbatched=True)), tmp_path / "..")


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("with_state", [False, True])
def test_cells(mode, with_state, tmp_path):
    rng = np.random.default_rng(8)
    cls = {"rnn": hg.RNNCell, "lstm": hg.LSTMCell, "gru": hg.GRUCell}[mode]
    cell = cls(F, H, rng=4)

    def args(N):
        x = rng.standard_normal((N, F), dtype=np.float32)
        if not with_state:
            return (x,)
        state = _state(rng, mode, N, 1)  # (N, H): a cell's state has no layer axis
        state = tuple(s.reshape(N, H) for s in state) if mode == "lstm" else state.reshape(N, H)
        return (x, state)

    loaded = check_roundtrip(cell, args(2), tmp_path, [args(4)])
    assert type(loaded) is cls
    unbatched = cls(F, H, bias=False, rng=5)
    check_roundtrip(unbatched, rng.standard_normal(F, dtype=np.float32), tmp_path / "..")


def test_gru_needs_linear_before_reset(tmp_path):
    """PyTorch's GRU is ONNX's linear_before_reset=1: with 0 the outputs differ (the attribute
    is converted, not left at ONNX's default), and load refuses such a graph."""
    rng = np.random.default_rng(9)
    gru = hg.GRU(F, H, rng=6)
    x = rng.standard_normal((5, 2, F), dtype=np.float32)
    path = tmp_path / "gru.onnx"
    check_roundtrip(gru, x, tmp_path)
    hg.onnx.export(gru, x, path)
    proto = onnx.load(str(path))
    node = next(n for n in proto.graph.node if n.op_type == "GRU")
    attr = next(a for a in node.attribute if a.name == "linear_before_reset")
    assert attr.i == 1
    attr.i = 0
    onnx.save(proto, str(path))
    gru.eval()
    changed = run_onnxruntime(path, (x,))[0]
    assert np.abs(changed - gru(x)).max() > 1e-3
    with pytest.raises(ValueError, match="linear_before_reset=0"):
        hg.onnx.load(path)


def test_lstm_state_outputs_are_named(tmp_path):
    rng = np.random.default_rng(10)
    lstm = hg.LSTM(F, H, num_layers=2)
    x = rng.standard_normal((4, 2, F), dtype=np.float32)
    proto = hg.onnx.export(lstm, (x, _state(rng, "lstm", 2, 2)), tmp_path / "lstm.onnx")
    assert [i.name for i in proto.graph.input] == ["input", "h_0", "c_0"]
    assert [o.name for o in proto.graph.output] == ["output", "h_n", "c_n"]


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padded_sequences_with_lengths(mode, bidirectional, tmp_path):
    """lengths become sequence_lens: zero outputs past each length, the final state after
    each sequence's own last step, the reverse direction starting there."""
    rng = np.random.default_rng(11)
    layer = CLASSES[mode](F, H, num_layers=2, bidirectional=bidirectional, batch_first=True,
                          rng=7)
    LD = 2 * (2 if bidirectional else 1)

    def args(lengths, with_state):
        N = len(lengths)
        x = rng.standard_normal((N, 6, F), dtype=np.float32)
        state = _state(rng, mode, LD, N) if with_state else None
        return (x, state, np.asarray(lengths))

    loaded = check_roundtrip(layer, args([6, 2, 4], False), tmp_path,
                             [args([1, 6, 3, 3, 5], False)])
    assert type(loaded) is type(layer)
    check_roundtrip(layer, args([3, 6], True), tmp_path / "..", [args([5, 1, 2], True)])
