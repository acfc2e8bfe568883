"""PyTorch parity of the dense layers: outputs, input grads and parameter grads, float64."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn as tnn  # noqa: E402

import handgrad as hg  # noqa: E402
from tests.helpers import to_torch_state  # noqa: E402

RTOL = 1e-6


def _compare(ours, theirs, x):
    """Same input and upstream gradient into both; compare y, dx and every parameter grad."""
    y = ours(x)
    grad_out = np.random.default_rng(1).standard_normal(y.shape)
    grad_x = ours.backward(grad_out)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.tensor(grad_out))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=RTOL, atol=1e-12)
    theirs_params = dict(theirs.named_parameters())
    assert [n for n, _ in ours.named_parameters()] == list(theirs_params)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, theirs_params[name].grad.numpy(), rtol=RTOL,
                                   atol=1e-12, err_msg=name)


@pytest.mark.parametrize("lead", [(5,), (2, 3), (2, 1, 4), ()])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(lead, bias):
    ours = hg.Linear(4, 3, bias=bias, dtype=np.float64, rng=0)
    theirs = tnn.Linear(4, 3, bias=bias).double()
    to_torch_state(ours, theirs)
    _compare(ours, theirs, np.random.default_rng(2).standard_normal(lead + (4,)))


ACTIVATIONS = [
    (hg.ReLU, tnn.ReLU, {}), (hg.LeakyReLU, tnn.LeakyReLU, {"negative_slope": 0.2}),
    (hg.Sigmoid, tnn.Sigmoid, {}), (hg.Tanh, tnn.Tanh, {}), (hg.GELU, tnn.GELU, {}),
    (hg.GELU, tnn.GELU, {"approximate": "tanh"}), (hg.SiLU, tnn.SiLU, {}),
    (hg.ELU, tnn.ELU, {"alpha": 0.7}),
]


@pytest.mark.parametrize("ours,theirs,kwargs", ACTIVATIONS)
def test_activations(ours, theirs, kwargs):
    x = np.random.default_rng(3).standard_normal((4, 5, 3)) * 3
    _compare(ours(**kwargs), theirs(**kwargs), x)


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
@pytest.mark.parametrize("log", [False, True])
def test_softmax_dims(dim, log):
    x = np.random.default_rng(4).standard_normal((3, 4, 5)) * 4
    ours = hg.LogSoftmax(dim) if log else hg.Softmax(dim)
    _compare(ours, tnn.LogSoftmax(dim) if log else tnn.Softmax(dim), x)


@pytest.mark.parametrize("start,end", [(1, -1), (0, -1), (1, 2), (2, 3)])
def test_flatten(start, end):
    x = np.random.default_rng(5).standard_normal((2, 3, 4, 5))
    _compare(hg.Flatten(start, end), tnn.Flatten(start, end), x)


def test_sequential_mlp_with_loaded_state_dict():
    theirs = tnn.Sequential(tnn.Linear(6, 8), tnn.ReLU(), tnn.Linear(8, 8), tnn.Tanh(),
                            tnn.Linear(8, 3), tnn.LogSoftmax(dim=1)).double()
    ours = hg.Sequential(hg.Linear(6, 8), hg.ReLU(), hg.Linear(8, 8), hg.Tanh(),
                         hg.Linear(8, 3), hg.LogSoftmax(dim=1)).double()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    _compare(ours, theirs, np.random.default_rng(6).standard_normal((7, 6)))


def test_dropout_statistics_match_pytorchs_definition():
    """Not parity (different generators): both zero with probability p and scale by 1/(1-p)."""
    p = 0.3
    x = np.ones((300, 300))
    ours = hg.Dropout(p, rng=0)(x)
    theirs = tnn.Dropout(p)(torch.tensor(x)).numpy()
    for y in (ours, theirs):
        assert (y == 0).mean() == pytest.approx(p, abs=0.01)
        np.testing.assert_allclose(np.unique(y[y != 0]), [1 / (1 - p)])
    assert hg.Dropout(p).eval()(x) is x
