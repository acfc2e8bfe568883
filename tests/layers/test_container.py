"""Sequential and Residual: gradient checks, the layer contract, indexing, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import handgrad as hg
from tests.helpers import arrays, check_layer_contract


def mlp(n_in, hidden, n_out, act=hg.Tanh, dtype=np.float64):
    return hg.Sequential(hg.Linear(n_in, hidden, dtype=dtype, rng=0), act(),
                         hg.Linear(hidden, n_out, dtype=dtype, rng=1))


@given(n=st.integers(1, 3), n_in=st.integers(1, 4), hidden=st.integers(1, 4),
       n_out=st.integers(1, 3), act=st.sampled_from([hg.Tanh, hg.Sigmoid, hg.GELU]),
       data=st.data())
def test_sequential_gradients(check_gradients, n, n_in, hidden, n_out, act, data):
    model = mlp(n_in, hidden, n_out, act)
    report = check_gradients(model, data.draw(arrays((n, n_in))))
    assert [r.name for r in report.rows] == ["input", "0.weight", "0.bias", "2.weight", "2.bias"]


@given(n=st.integers(1, 3), d=st.integers(1, 4), projection=st.booleans(), data=st.data())
def test_residual_gradients(check_gradients, n, d, projection, data):
    body = mlp(d, 3, d + projection)
    shortcut = hg.Linear(d, d + 1, dtype=np.float64, rng=2) if projection else None
    report = check_gradients(hg.Residual(body, shortcut), data.draw(arrays((n, d))))
    names = [r.name for r in report.rows]
    assert ("shortcut.weight" in names) == projection and "body.0.weight" in names


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_contracts(dtype):
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(dtype)
    check_layer_contract(lambda: mlp(3, 5, 2, hg.ReLU, dtype), x)
    check_layer_contract(lambda: hg.Residual(mlp(3, 4, 3, dtype=dtype)), x)
    check_layer_contract(
        lambda: hg.Residual(mlp(3, 4, 2, dtype=dtype), hg.Linear(3, 2, dtype=dtype, rng=5)), x)


def test_sequential_indexing_len_iteration_append():
    model = mlp(2, 3, 1)
    assert len(model) == 3
    assert isinstance(model[0], hg.Linear) and isinstance(model[-1], hg.Linear)
    assert [type(m).__name__ for m in model] == ["Linear", "Tanh", "Linear"]
    head = model[:2]
    assert isinstance(head, hg.Sequential) and len(head) == 2 and head[0] is model[0]
    model.append(hg.Sigmoid())
    assert len(model) == 4 and [n for n, _ in model.named_children()][-1] == "3"
    model.extend([hg.Identity()])
    assert len(model) == 5
    with pytest.raises(IndexError, match="Sequential: index 9 out of range for 5 layers"):
        model[9]


def test_residual_identity_value_and_names():
    body = hg.Linear(2, 2, dtype=np.float64)
    body.weight.data[...] = 0.0
    body.bias.data[...] = 1.0
    res = hg.Residual(body)
    np.testing.assert_array_equal(res(np.array([[1.0, 2.0]])), [[2.0, 3.0]])
    # body gradient W^T g = 0, plus the identity shortcut's g
    np.testing.assert_array_equal(res.backward(np.ones((1, 2))), [[1.0, 1.0]])
    assert res.shortcut is None
    assert [n for n, _ in res.named_parameters()] == ["body.weight", "body.bias"]


def test_bad_input():
    with pytest.raises(TypeError, match="Sequential: expected a Layer for child 1, got int"):
        hg.Sequential(hg.ReLU(), 3)
    with pytest.raises(TypeError, match="Residual: expected a Layer for body, got str"):
        hg.Residual("body")
    res = hg.Residual(hg.Linear(3, 2, dtype=np.float64))
    with pytest.raises(ValueError, match=r"Residual: body output of shape \(4, 2\) and shortcut "
                                         r"output of shape \(4, 3\) cannot be added"):
        res(np.ones((4, 3)))
