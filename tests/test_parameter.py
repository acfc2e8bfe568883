"""Parameter: data, grad accumulation, zero_grad, requires_grad."""

from __future__ import annotations

import numpy as np
import pytest

from handgrad import Parameter


def test_copies_data_and_keeps_dtype():
    source = np.ones((2, 3), dtype=np.float32)
    p = Parameter(source)
    source[0, 0] = 5.0
    assert p.data[0, 0] == 1.0
    assert p.shape == (2, 3) and p.dtype == np.float32 and p.size == 6
    assert p.grad is None and p.requires_grad
    assert repr(p) == "Parameter(shape=(2, 3), dtype=float32)"


def test_rejects_integer_data():
    with pytest.raises(TypeError, match="Parameter: expected floating-point data, got dtype int64"):
        Parameter(np.arange(3))


def test_accumulate_adds_and_copies_on_first_use():
    p = Parameter(np.zeros(3))
    g = np.array([1.0, 2.0, 3.0])
    p.accumulate_grad(g)
    g[0] = 100.0  # the parameter must hold its own copy
    p.accumulate_grad(np.ones(3))
    np.testing.assert_array_equal(p.grad, [2.0, 3.0, 4.0])


def test_fresh_grad_is_stored_without_copy():
    p = Parameter(np.zeros(3))
    g = np.ones(3)
    p.accumulate_grad(g, fresh=True)
    assert p.grad is g


def test_first_grad_is_cast_to_parameter_dtype():
    p = Parameter(np.zeros(3, dtype=np.float32))
    p.accumulate_grad(np.ones(3, dtype=np.float64), fresh=True)
    assert p.grad.dtype == np.float32


def test_requires_grad_false_skips_accumulation():
    p = Parameter(np.zeros(2), requires_grad=False)
    p.accumulate_grad(np.ones(2))
    assert p.grad is None
    assert p.requires_grad_(True) is p and p.requires_grad


def test_zero_grad_to_none_or_zeros():
    p = Parameter(np.zeros(2))
    p.accumulate_grad(np.ones(2))
    p.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad, [0.0, 0.0])
    p.zero_grad()
    assert p.grad is None
