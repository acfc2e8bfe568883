"""RNN, LSTM, GRU and cells against PyTorch (float64, rtol 1e-6), weights loaded both ways."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from handgrad import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny shapes: one thread in both frameworks is fastest and avoids contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


PAIRS = {"rnn": (RNN, "RNN"), "lstm": (LSTM, "LSTM"), "gru": (GRU, "GRU")}
TOL = {"rtol": 1e-6, "atol": 1e-10}


def _torch_state(layer):
    return {k: torch.from_numpy(np.array(v)) for k, v in layer.state_dict().items()}


@pytest.mark.parametrize(
    "mode,num_layers,bidirectional,batch_first,with_state",
    list(itertools.product(["rnn", "lstm", "gru"], [1, 2], [False, True], [False, True],
                           [False, True])),
)
def test_layer_parity(mode, num_layers, bidirectional, batch_first, with_state):
    T, N, I, H = 5, 3, 4, 6
    D = 2 if bidirectional else 1
    cls, torch_name = PAIRS[mode]
    ours = cls(I, H, num_layers=num_layers, bidirectional=bidirectional,
               batch_first=batch_first, dtype=np.float64, rng=0)
    theirs = getattr(torch.nn, torch_name)(I, H, num_layers=num_layers,
                                           bidirectional=bidirectional,
                                           batch_first=batch_first).double()
    theirs.load_state_dict(_torch_state(ours))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, T, I) if batch_first else (T, N, I))
    lstm = mode == "lstm"
    state_parts = [rng.standard_normal((num_layers * D, N, H)) for _ in range(2 if lstm else 1)]
    state = (tuple(state_parts) if lstm else state_parts[0]) if with_state else None

    x_t = torch.tensor(x, requires_grad=True)
    state_t = [torch.tensor(s, requires_grad=True) for s in state_parts]
    if with_state:
        y_t, final_t = theirs(x_t, tuple(state_t) if lstm else state_t[0])
    else:
        y_t, final_t = theirs(x_t)
    final_t = list(final_t) if lstm else [final_t]
    y = ours(x, state)
    final = list(ours.final_state) if lstm else [ours.final_state]

    g = rng.standard_normal(y.shape)
    g_final = [rng.standard_normal(f.shape) for f in final]
    loss = (y_t * torch.from_numpy(g)).sum()
    loss = loss + sum((f * torch.from_numpy(gf)).sum() for f, gf in zip(final_t, g_final))
    loss.backward()
    grad_x = ours.backward(g, tuple(g_final) if lstm else g_final[0])

    np.testing.assert_allclose(y, y_t.detach().numpy(), **TOL)
    for a, b in zip(final, final_t):
        np.testing.assert_allclose(a, b.detach().numpy(), **TOL)
    np.testing.assert_allclose(grad_x, x_t.grad.numpy(), **TOL)
    if with_state:
        grad_init = list(ours.grad_initial_state) if lstm else [ours.grad_initial_state]
        for a, b in zip(grad_init, state_t):
            np.testing.assert_allclose(a, b.grad.numpy(), **TOL)
    torch_params = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        np.testing.assert_allclose(param.grad, torch_params[name].grad.numpy(), **TOL,
                                   err_msg=name)


@pytest.mark.parametrize("mode", ["rnn_relu", "lstm", "gru"])
def test_parity_without_bias_and_relu(mode):
    x = np.random.default_rng(2).standard_normal((4, 2, 3))
    if mode == "rnn_relu":
        ours = RNN(3, 5, num_layers=2, nonlinearity="relu", bidirectional=True,
                   dtype=np.float64, rng=3)
        theirs = torch.nn.RNN(3, 5, num_layers=2, nonlinearity="relu", bidirectional=True)
    else:
        cls, name = PAIRS[mode]
        ours = cls(3, 5, num_layers=2, bias=False, dtype=np.float64, rng=3)
        theirs = getattr(torch.nn, name)(3, 5, num_layers=2, bias=False)
    theirs = theirs.double()
    theirs.load_state_dict(_torch_state(ours))
    x_t = torch.tensor(x, requires_grad=True)
    y_t, _ = theirs(x_t)
    y = ours(x)
    g = np.random.default_rng(4).standard_normal(y.shape)
    (y_t * torch.from_numpy(g)).sum().backward()
    np.testing.assert_allclose(y, y_t.detach().numpy(), **TOL)
    np.testing.assert_allclose(ours.backward(g), x_t.grad.numpy(), **TOL)
    for name, param in theirs.named_parameters():
        np.testing.assert_allclose(ours._parameters[name].grad, param.grad.numpy(), **TOL)


def test_torch_state_dict_loads_unchanged():
    theirs = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    ours = LSTM(3, 4, num_layers=2, bidirectional=True)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(5).standard_normal((6, 2, 3)).astype(np.float32)
    y_t, _ = theirs(torch.from_numpy(x))
    np.testing.assert_allclose(ours(x), y_t.detach().numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_cell_parity(mode):
    cls = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}[mode]
    torch_cls = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[mode]
    ours = cls(3, 4, dtype=np.float64, rng=6)
    theirs = torch_cls(3, 4).double()
    theirs.load_state_dict(_torch_state(ours))
    rng = np.random.default_rng(7)
    x, h, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    x_t, h_t, c_t = (torch.tensor(a, requires_grad=True) for a in (x, h, c))
    g_h, g_c = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    if mode == "lstm":
        h1_t, c1_t = theirs(x_t, (h_t, c_t))
        ((h1_t * torch.from_numpy(g_h)).sum() + (c1_t * torch.from_numpy(g_c)).sum()).backward()
        h1, c1 = ours(x, (h, c))
        np.testing.assert_allclose(c1, c1_t.detach().numpy(), **TOL)
        grad_x = ours.backward(g_h, g_c)
        np.testing.assert_allclose(ours.grad_state[1], c_t.grad.numpy(), **TOL)
        grad_h = ours.grad_state[0]
    else:
        h1_t = theirs(x_t, h_t)
        (h1_t * torch.from_numpy(g_h)).sum().backward()
        h1 = ours(x, h)
        grad_x = ours.backward(g_h)
        grad_h = ours.grad_state
    np.testing.assert_allclose(h1, h1_t.detach().numpy(), **TOL)
    np.testing.assert_allclose(grad_x, x_t.grad.numpy(), **TOL)
    np.testing.assert_allclose(grad_h, h_t.grad.numpy(), **TOL)
    for name, param in theirs.named_parameters():
        np.testing.assert_allclose(ours._parameters[name].grad, param.grad.numpy(), **TOL)
