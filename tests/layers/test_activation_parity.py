"""PyTorch parity of every activation: outputs and input gradients in float64 (breakpoints
included), PReLU's weight gradient and state-dict names, unbatched, 0-dim and empty inputs."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn as tnn  # noqa: E402

import handgrad as hg  # noqa: E402
from tests.helpers import to_torch_state  # noqa: E402

# PyTorch warns on dim=None (its legacy implicit choice, which these tests exercise)
pytestmark = pytest.mark.filterwarnings("ignore:Implicit dimension choice")

CASES = [
    ("ReLU", {}), ("ReLU", {"inplace": True}), ("LeakyReLU", {"negative_slope": 0.2}),
    ("ELU", {"alpha": 0.7}), ("SiLU", {}), ("ReLU6", {}), ("ReLU6", {"inplace": True}),
    ("Hardtanh", {}), ("Hardtanh", {"min_val": -0.5, "max_val": 2.0}), ("Hardswish", {}),
    ("Hardsigmoid", {}), ("Softplus", {}), ("Softplus", {"beta": 2.0, "threshold": 3.0}),
    ("Softplus", {"beta": -1.5, "threshold": 2.0}), ("Softsign", {}), ("Mish", {}),
    ("SELU", {}), ("CELU", {}), ("CELU", {"alpha": 0.5}), ("LogSigmoid", {}),
    ("Threshold", {"threshold": 0.5, "value": -2.0}), ("Tanhshrink", {}), ("Softshrink", {}),
    ("Softshrink", {"lambd": 1.0}), ("Hardshrink", {}), ("Hardshrink", {"lambd": 1.0}),
    ("Softmin", {"dim": 1}), ("Softmin", {"dim": None}), ("Softmax", {"dim": 0}),
    ("Softmax", {"dim": None}), ("LogSoftmax", {"dim": None}), ("GLU", {}),
    ("GLU", {"dim": 0}), ("Softmax2d", {}),
]
# every breakpoint used above, and values around them
BREAKPOINTS = np.array([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 6.0, -30.0, 30.0])


def _compare(ours, theirs, x, rtol=1e-10, atol=1e-12):
    if isinstance(ours, hg.Hardsigmoid):
        # PyTorch's Hardsigmoid backward multiplies by the float32 constant 1/6 even in
        # float64 (relative error 3e-8); handgrad uses 1/6 in the input's dtype
        rtol = 1e-7
    g = np.random.default_rng(5).standard_normal(ours(x).shape)
    y = ours(x)
    dx = ours.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt.clone())  # the clone: in-place torch modules may not modify a leaf
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{k}" for n, k in CASES])
@pytest.mark.parametrize("shape", [(2, 4, 3, 2), (4, 6), (6,)])
def test_parity(name, kwargs, shape):
    rng = np.random.default_rng(0)
    x = rng.uniform(-8, 8, shape)
    x.flat[: min(x.size, BREAKPOINTS.size)] = BREAKPOINTS[: x.size]  # the kinks exactly
    ours = getattr(hg, name)(**kwargs)
    theirs = getattr(tnn, name)(**kwargs)
    assert repr(ours) == repr(theirs)
    try:
        theirs(torch.tensor(x))
    except (RuntimeError, IndexError, ValueError):  # Softmin(dim=1) on (6,), Softmax2d on 2-D
        with pytest.raises(ValueError):
            ours(x)
        return
    _compare(ours, theirs, x)


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{k}" for n, k in CASES])
@pytest.mark.parametrize("shape", [(0, 4), (4, 0), ()])
def test_parity_on_empty_and_0_dim_inputs(name, kwargs, shape):
    ours = getattr(hg, name)(**kwargs)
    theirs = getattr(tnn, name)(**kwargs)
    x = np.random.default_rng(1).standard_normal(shape)
    try:
        theirs(torch.tensor(x))
    except (RuntimeError, IndexError, ValueError):
        with pytest.raises(ValueError):
            ours(x)
        return
    _compare(ours, theirs, x)


@pytest.mark.parametrize("shape,num_parameters", [((3, 4, 2, 2), 4), ((5, 3), 3), ((2, 3, 4), 3),
                                                  ((6,), 1), ((), 1), ((3, 4, 2), 1),
                                                  ((0, 3), 3)])
def test_prelu_parity(shape, num_parameters):
    rng = np.random.default_rng(2)
    ours = hg.PReLU(num_parameters, dtype=np.float64)
    ours.weight.data[:] = rng.uniform(-1, 1, num_parameters)
    theirs = tnn.PReLU(num_parameters, dtype=torch.float64)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    to_torch_state(ours, theirs)
    x = rng.standard_normal(shape)
    if x.size:
        x.flat[0] = 0.0  # the kink: slope weight, as in PyTorch
    g = rng.standard_normal(shape)
    y = ours(x)
    dx = ours.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-12,
                               atol=1e-14)


def test_prelu_loads_a_torch_state_dict():
    theirs = tnn.PReLU(5, init=0.1)
    ours = hg.PReLU(5)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    np.testing.assert_array_equal(ours.weight.data, theirs.weight.detach().numpy())
    assert ours.weight.dtype == np.float32


def test_float32_parity():
    x = np.random.default_rng(3).uniform(-5, 5, (4, 6)).astype(np.float32)
    for name, kwargs in CASES:
        if name == "Softmax2d":
            continue
        ours = getattr(hg, name)(**kwargs)
        y = ours(x)
        assert y.dtype == np.float32, name
        expected = getattr(tnn, name)(**kwargs)(torch.tensor(x)).numpy()
        np.testing.assert_allclose(y, expected, rtol=2e-6, atol=2e-6, err_msg=name)
