"""RNN, LSTM, GRU and their cells: gradients against central differences, contract, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from handgrad import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, numerical_gradient
from tests.helpers import check_layer_contract


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Tiny shapes: one BLAS thread is fastest and avoids contention on a busy CPU."""
    with threadpool_limits(1):
        yield


LAYERS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
CELLS = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}
TOL = {"rtol": 1e-4, "atol": 1e-5}


def _parts(state):
    return list(state) if isinstance(state, tuple) else [state]


def _pack(parts, like_lstm):
    return tuple(parts) if like_lstm else parts[0]


def check_recurrent_gradients(layer, x, state=None, grad_final=True, seed=0):
    """Input, initial-state and parameter gradients of a float64 recurrent layer.

    Objective: sum(y * g) + sum(final_state * g_final) with random g, g_final (the part a
    plain ``check_gradients`` cannot express: state inputs and a gradient on the final state).
    """
    rng = np.random.default_rng(seed)
    lstm = isinstance(layer, LSTM)
    x = np.array(x, dtype=np.float64)
    state_parts = None if state is None else [np.array(s, dtype=np.float64) for s in _parts(state)]

    def run():
        st_ = None if state_parts is None else _pack(state_parts, lstm)
        return layer(x, st_)

    y = run()
    g = rng.standard_normal(y.shape)
    final_parts = _parts(layer.final_state)
    g_final = [rng.standard_normal(f.shape) for f in final_parts] if grad_final else None

    def objective(_):
        y_ = run()
        total = float(np.sum(y_ * g))
        if g_final is not None:
            total += sum(float(np.sum(f * gf)) for f, gf in zip(_parts(layer.final_state), g_final))
        return total

    layer.zero_grad()
    run()
    grad_x = layer.backward(g, None if g_final is None else _pack(g_final, lstm))
    grad_init = [a.copy() for a in _parts(layer.grad_initial_state)]
    analytic = {n: p.grad.copy() for n, p in layer.named_parameters()}
    np.testing.assert_allclose(grad_x, numerical_gradient(objective, x), **TOL, err_msg="input")
    if state_parts is not None:
        for i, part in enumerate(state_parts):
            np.testing.assert_allclose(grad_init[i], numerical_gradient(objective, part), **TOL,
                                       err_msg=f"initial state part {i}")
    for name, param in layer.named_parameters():
        np.testing.assert_allclose(analytic[name], numerical_gradient(objective, param.data),
                                   **TOL, err_msg=name)


@settings(max_examples=12)
@given(mode=st.sampled_from(["rnn", "lstm", "gru"]), T=st.integers(1, 12),
       N=st.integers(1, 2), I=st.integers(1, 2), H=st.integers(1, 2),
       num_layers=st.integers(1, 2), bidirectional=st.booleans(), batch_first=st.booleans(),
       with_state=st.booleans(), grad_final=st.booleans(), bias=st.booleans(),
       seed=st.integers(0, 2**16))
@example(mode="lstm", T=12, N=2, I=2, H=2, num_layers=2, bidirectional=True, batch_first=True,
         with_state=True, grad_final=True, bias=True, seed=1)
@example(mode="gru", T=12, N=2, I=2, H=2, num_layers=2, bidirectional=True, batch_first=False,
         with_state=True, grad_final=True, bias=True, seed=2)
@example(mode="rnn", T=12, N=2, I=2, H=2, num_layers=2, bidirectional=True, batch_first=True,
         with_state=True, grad_final=True, bias=True, seed=3)
def test_layer_gradients(mode, T, N, I, H, num_layers, bidirectional, batch_first, with_state,
                         grad_final, bias, seed):
    rng = np.random.default_rng(seed)
    layer = LAYERS[mode](I, H, num_layers=num_layers, bidirectional=bidirectional,
                         batch_first=batch_first, bias=bias, dtype=np.float64, rng=seed)
    x = rng.standard_normal((N, T, I) if batch_first else (T, N, I))
    state = None
    if with_state:
        shape = (num_layers * (2 if bidirectional else 1), N, H)
        state = rng.standard_normal(shape)
        if mode == "lstm":
            state = (state, rng.standard_normal(shape))
    check_recurrent_gradients(layer, x, state, grad_final, seed)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_gradients_with_shared_fixture(check_gradients, mode):
    layer = LAYERS[mode](2, 3, num_layers=2, dropout=0.3, bidirectional=True, rng=1,
                         dtype=np.float64)
    x = np.random.default_rng(2).standard_normal((5, 2, 2))
    check_gradients(layer, x)  # dropout masks replayed by gradcheck


def test_relu_rnn_and_unbatched_gradients():
    rng = np.random.default_rng(3)
    layer = RNN(2, 3, nonlinearity="relu", dtype=np.float64, rng=3)
    check_recurrent_gradients(layer, rng.standard_normal((6, 2, 2)), rng.standard_normal((1, 2, 3)))
    lstm = LSTM(2, 3, num_layers=2, dtype=np.float64, rng=4)
    x = rng.standard_normal((4, 2))  # unbatched (T, F)
    y = lstm(x)
    assert y.shape == (4, 3) and lstm.final_state[0].shape == (2, 3)
    check_recurrent_gradients(lstm, x, (rng.standard_normal((2, 3)), rng.standard_normal((2, 3))))


@settings(max_examples=12)
@given(mode=st.sampled_from(["rnn", "lstm", "gru"]), T=st.integers(1, 6),
       N=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_cell_loop_gradients(mode, T, N, seed):
    """A hand-written loop over one cell backpropagates like central differences."""
    rng = np.random.default_rng(seed)
    cell = CELLS[mode](2, 3, dtype=np.float64, rng=seed)
    lstm = mode == "lstm"
    x = rng.standard_normal((T, N, 2))
    h0 = rng.standard_normal((N, 3))
    c0 = rng.standard_normal((N, 3))
    g = rng.standard_normal((T, N, 3))

    def run():
        state = (h0, c0) if lstm else h0
        hs = []
        for t in range(T):
            state = cell(x[t], state)
            hs.append(state[0] if lstm else state)
        return np.stack(hs)

    def objective(_):
        out = run()
        cell.clear_cache()
        return float(np.sum(out * g))

    cell.zero_grad()
    run()
    grad_x = np.empty_like(x)
    grad_h_next = np.zeros((N, 3))
    grad_c_next = np.zeros((N, 3)) if lstm else None
    for t in reversed(range(T)):
        if lstm:
            grad_x[t] = cell.backward(g[t] + grad_h_next, grad_c_next)
            grad_h_next, grad_c_next = cell.grad_state
        else:
            grad_x[t] = cell.backward(g[t] + grad_h_next)
            grad_h_next = cell.grad_state
    assert cell.pending == 0
    analytic = {n: p.grad.copy() for n, p in cell.named_parameters()}
    np.testing.assert_allclose(grad_x, numerical_gradient(objective, x), **TOL)
    np.testing.assert_allclose(grad_h_next, numerical_gradient(objective, h0), **TOL)
    if lstm:
        np.testing.assert_allclose(grad_c_next, numerical_gradient(objective, c0), **TOL)
    for name, param in cell.named_parameters():
        np.testing.assert_allclose(analytic[name], numerical_gradient(objective, param.data),
                                   **TOL, err_msg=name)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_cell_loop_matches_layer(mode):
    layer = LAYERS[mode](3, 4, dtype=np.float64, rng=5)
    cell = CELLS[mode](3, 4, dtype=np.float64, rng=6)
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    x = np.random.default_rng(7).standard_normal((5, 2, 3))
    g = np.random.default_rng(8).standard_normal((5, 2, 4))
    y = layer(x)
    grad_x = layer.backward(g)
    state, hs = None, []
    for t in range(5):
        state = cell(x[t], state)
        hs.append(state[0] if mode == "lstm" else state)
    np.testing.assert_allclose(np.stack(hs), y, rtol=1e-12, atol=1e-12)
    grad_h, grad_c = np.zeros((2, 4)), None
    for t in reversed(range(5)):
        args = (g[t] + grad_h, grad_c) if mode == "lstm" else (g[t] + grad_h,)
        gx = cell.backward(*args)
        np.testing.assert_allclose(gx, grad_x[t], rtol=1e-10, atol=1e-12)
        grad_h, grad_c = cell.grad_state if mode == "lstm" else (cell.grad_state, None)
    for name, param in cell.named_parameters():
        np.testing.assert_allclose(param.grad, layer._parameters[name + "_l0"].grad,
                                   rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("frozen", [("weight_ih",), ("weight_hh",), ("bias_ih", "bias_hh"),
                                    ("bias_ih",), ("weight_ih", "bias_hh"),
                                    ("weight_ih", "weight_hh")])
@pytest.mark.parametrize("bias", [True, False])
def test_frozen_parameters_keep_the_other_gradients(mode, frozen, bias):
    """requires_grad=False skips a parameter (grad stays None) and changes no other gradient
    (the weight gradients share matmuls, so every combination takes another path)."""
    x = np.random.default_rng(10).standard_normal((5, 2, 3))
    g = np.random.default_rng(11).standard_normal((5, 2, 4))
    full = LAYERS[mode](3, 4, bias=bias, dtype=np.float64, rng=12)
    part = LAYERS[mode](3, 4, bias=bias, dtype=np.float64, rng=12)
    for name, param in part.named_parameters():
        param.requires_grad = not name.startswith(frozen)
    full(x)
    grad_x = full.backward(g)
    part(x)
    np.testing.assert_allclose(part.backward(g), grad_x, rtol=1e-12, atol=1e-12)
    for name, param in part.named_parameters():
        if name.startswith(frozen):
            assert param.grad is None, name
        else:
            np.testing.assert_allclose(param.grad, full._parameters[name].grad, rtol=1e-12,
                                       atol=1e-12, err_msg=name)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_truncated_bptt_equals_full_bptt_up_to_the_cut_gradient(mode):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((8, 2, 3))
    g = rng.standard_normal((8, 2, 4))
    full = LAYERS[mode](3, 4, num_layers=2, dtype=np.float64, rng=10)
    y_full = full(x)
    grad_x_full = full.backward(g)

    first = LAYERS[mode](3, 4, num_layers=2, dtype=np.float64, rng=10)
    second = LAYERS[mode](3, 4, num_layers=2, dtype=np.float64, rng=10)
    y1 = first(x[:4])
    y2 = second(x[4:], first.final_state)  # values carry on
    np.testing.assert_allclose(np.concatenate([y1, y2]), y_full, rtol=1e-12, atol=1e-12)
    grad_x2 = second.backward(g[4:])
    cut = second.grad_initial_state  # the gradient truncated BPTT drops at the boundary
    grad_x1 = first.backward(g[:4])  # truncated: nothing arrives at the final state
    np.testing.assert_allclose(grad_x2, grad_x_full[4:], rtol=1e-10, atol=1e-12)
    assert not np.allclose(grad_x1, grad_x_full[:4])

    cut_only = LAYERS[mode](3, 4, num_layers=2, dtype=np.float64, rng=10)
    cut_only(x[:4])
    grad_x_cut = cut_only.backward(None, cut)  # what flows back from the cut alone
    np.testing.assert_allclose(grad_x1 + grad_x_cut, grad_x_full[:4], rtol=1e-10, atol=1e-12)
    for name, p in full.named_parameters():
        truncated = first._parameters[name].grad + second._parameters[name].grad
        np.testing.assert_allclose(truncated + cut_only._parameters[name].grad, p.grad,
                                   rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_layer_contract_and_float32(mode):
    x = np.random.default_rng(11).standard_normal((5, 2, 3)).astype(np.float32)
    layer = check_layer_contract(
        lambda: LAYERS[mode](3, 4, num_layers=2, bidirectional=True, rng=12), x)
    y = layer(x)
    assert y.dtype == np.float32 and y.shape == (5, 2, 8)
    assert all(s.dtype == np.float32 for s in _parts(layer.final_state))
    assert layer.backward(np.ones_like(y)).dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in layer.parameters())


@pytest.mark.parametrize("mode", ["rnn", "gru"])
def test_cell_contract(mode):
    x = np.random.default_rng(13).standard_normal((2, 3)).astype(np.float32)
    check_layer_contract(lambda: CELLS[mode](3, 4, rng=14), x)


def test_parameter_names_shapes_and_init():
    lstm = LSTM(3, 5, num_layers=2, bidirectional=True, rng=0)
    names = [n for n, _ in lstm.named_parameters()]
    assert names[:4] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert "weight_ih_l1_reverse" in names and len(names) == 16
    assert lstm.weight_ih_l1.shape == (20, 10) and lstm.weight_hh_l0_reverse.shape == (20, 5)
    bound = 1 / np.sqrt(5)
    assert all(np.abs(p.data).max() <= bound for p in lstm.parameters())
    assert GRU(3, 5, bias=False).weight_hh_l0.shape == (15, 5)
    assert len(list(GRU(3, 5, bias=False).parameters())) == 2
    assert repr(LSTM(3, 5, num_layers=2, batch_first=True)) == \
        "LSTM(3, 5, num_layers=2, batch_first=True)"


def test_dropout_only_in_training():
    x = np.random.default_rng(15).standard_normal((4, 2, 3)).astype(np.float32)
    layer = LSTM(3, 4, num_layers=2, dropout=0.5, rng=16)
    plain = LSTM(3, 4, num_layers=2, rng=16)
    assert not np.allclose(layer(x), plain(x))
    layer.eval()
    np.testing.assert_array_equal(layer(x), plain.eval()(x))


def test_bad_input_messages():
    lstm = LSTM(3, 4, num_layers=2)
    x = np.zeros((5, 2, 3), np.float32)
    with pytest.raises(ValueError, match=r"LSTM\(3, 4, num_layers=2\).*\(T, N, 3\).*\(5, 2, 7\)"):
        lstm(np.zeros((5, 2, 7), np.float32))
    with pytest.raises(ValueError, match="expected input of shape"):
        lstm(np.zeros((5, 2, 3, 1), np.float32))
    with pytest.raises(ValueError, match=r"h_0 of shape \(2, 2, 4\), got \(1, 2, 4\)"):
        lstm(x, (np.zeros((1, 2, 4), np.float32), np.zeros((2, 2, 4), np.float32)))
    with pytest.raises(ValueError, match=r"tuple \(h, c\)"):
        lstm(x, np.zeros((2, 2, 4), np.float32))
    with pytest.raises(ValueError, match=r"h_0 of shape \(1, 2, 4\)"):
        GRU(3, 4)(x, np.zeros((1, 3, 4), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        lstm(x.astype(np.float64))
    with pytest.raises(RuntimeError, match="no forward"):
        RNN(3, 4).backward(np.zeros((5, 2, 4)))
    lstm(x)
    with pytest.raises(ValueError, match=r"grad_out of shape \(5, 2, 4\)"):
        lstm.backward(np.zeros((5, 2, 5), np.float32))
    with pytest.raises(ValueError, match="grad_h_n"):
        lstm.backward(np.zeros((5, 2, 4), np.float32), (np.zeros((1, 2, 4), np.float32), None))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3\)"):
        LSTMCell(3, 4)(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="nonlinearity"):
        RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="hidden_size"):
        GRU(3, 0)


@pytest.fixture
def row_blocks_always(monkeypatch):
    """Make the recurrent kernels split every batch into row blocks for threads, however small, and
    restore handgrad's thread count after the test."""
    from handgrad.ops import parallel
    from handgrad.ops import recurrent as kernels
    monkeypatch.setattr(kernels, "_MIN_ROWS", 1)
    monkeypatch.setattr(kernels, "_MIN_BLOCK_WORK", 0)
    monkeypatch.setattr(kernels, "_MIN_STEPS", 1)
    yield parallel.set_num_threads
    parallel.set_num_threads(None)


def _run(layer, x, state, g, g_final, threads, set_threads):
    set_threads(threads)
    layer.zero_grad()
    y = layer(x, state)
    final = [f.copy() for f in _parts(layer.final_state)]
    grad_x = layer.backward(g, g_final)
    grads = {n: p.grad.copy() for n, p in layer.named_parameters()}
    return [y, *final, grad_x, *_parts(layer.grad_initial_state)], grads


@given(mode=st.sampled_from(["rnn", "lstm", "gru"]), T=st.integers(1, 6), N=st.integers(1, 9),
       H=st.integers(1, 4), threads=st.integers(2, 3), num_layers=st.integers(1, 2),
       bidirectional=st.booleans(), batch_first=st.booleans(), with_state=st.booleans(),
       grad_final=st.booleans(), seed=st.integers(0, 2**16))
def test_row_blocks_on_threads_equal_one_block(row_blocks_always, mode, T, N, H, threads,
                                               num_layers, bidirectional, batch_first,
                                               with_state, grad_final, seed):
    rng = np.random.default_rng(seed)
    extra = {"nonlinearity": "relu"} if mode == "rnn" and seed % 2 else {}
    layer = LAYERS[mode](3, H, num_layers=num_layers, bidirectional=bidirectional,
                         batch_first=batch_first, dtype=np.float64, rng=seed, **extra)
    x = rng.standard_normal((N, T, 3) if batch_first else (T, N, 3))
    shape = (num_layers * (2 if bidirectional else 1), N, H)
    parts = 2 if mode == "lstm" else 1
    state = _pack([rng.standard_normal(shape) for _ in range(parts)], mode == "lstm") \
        if with_state else None
    g = rng.standard_normal((N, T, (2 if bidirectional else 1) * H) if batch_first
                            else (T, N, (2 if bidirectional else 1) * H))
    g_final = _pack([rng.standard_normal(shape) for _ in range(parts)], mode == "lstm") \
        if grad_final else None
    serial, serial_grads = _run(layer, x, state, g, g_final, 1, row_blocks_always)
    threaded, threaded_grads = _run(layer, x, state, g, g_final, threads, row_blocks_always)
    for a, b in zip(threaded, serial):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    for name in serial_grads:
        np.testing.assert_allclose(threaded_grads[name], serial_grads[name], rtol=1e-12,
                                   atol=1e-12, err_msg=name)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_row_blocks_gradients(row_blocks_always, mode):
    row_blocks_always(2)
    rng = np.random.default_rng(5)
    layer = LAYERS[mode](2, 3, num_layers=2, bidirectional=True, dtype=np.float64, rng=5)
    x = rng.standard_normal((5, 4, 2))
    parts = [rng.standard_normal((4, 4, 3)) for _ in range(2 if mode == "lstm" else 1)]
    check_recurrent_gradients(layer, x, _pack(parts, mode == "lstm"))


def test_row_blocks_only_for_large_enough_work():
    from handgrad.ops import parallel
    from handgrad.ops import recurrent as kernels
    parallel.set_num_threads(2)
    try:
        assert kernels._row_blocks(64, 32, 256) == [(0, 16), (16, 32)]
        assert kernels._row_blocks(1, 32, 256) == [(0, 32)]  # a cell's single step
        assert kernels._row_blocks(64, 8, 256) == [(0, 8)]  # too few rows for two blocks
        assert kernels._row_blocks(64, 32, 16) == [(0, 32)]  # too little work per step
        parallel.set_num_threads(1)
        assert kernels._row_blocks(64, 32, 256) == [(0, 32)]
    finally:
        parallel.set_num_threads(None)
