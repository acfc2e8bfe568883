"""handgrad.gradcheck and numerical_gradient as public features."""

from __future__ import annotations

import numpy as np
import pytest

import handgrad as hg
from handgrad import GradcheckError, gradcheck, numerical_gradient


class WrongLinear(hg.Linear):
    """Linear with a deliberately wrong weight gradient (transposition-free but scaled)."""

    def backward(self, grad_out):
        grad_x = super().backward(grad_out)
        self.weight.grad *= 1.5
        return grad_x


def test_report_rows_and_table():
    rng = np.random.default_rng(0)
    report = gradcheck(hg.Linear(3, 2, rng=0), rng.standard_normal((4, 3)))
    assert report.passed and bool(report)
    assert [row.name for row in report.rows] == ["input", "weight", "bias"]
    assert report["weight"].shape == (2, 3)
    assert report["input"].max_abs_err < 1e-7
    assert report["bias"].atol == 1e-5 and report["bias"].rtol == 1e-4
    table = str(report)
    assert table.splitlines()[0].startswith(
        "gradcheck Linear(in_features=3, out_features=2, bias=True): passed")
    header = table.splitlines()[1]
    for column in ("tensor", "shape", "max abs err", "max rel err", "worst index", "tolerance",
                   "result"):
        assert column in header
    assert table.count(" ok") == 3
    with pytest.raises(KeyError):
        report["nothing"]


def test_detects_a_wrong_backward_and_names_the_tensor():
    x = np.random.default_rng(1).standard_normal((4, 3))
    report = gradcheck(WrongLinear(3, 2, rng=0), x)
    assert not report.passed
    assert report["weight"].passed is False
    assert report["input"].passed and report["bias"].passed
    assert report["weight"].max_rel_err == pytest.approx(1 / 3, rel=1e-3)
    assert "FAIL" in str(report)
    with pytest.raises(GradcheckError, match=r"(?s)FAILED.*weight.*FAIL"):
        gradcheck(WrongLinear(3, 2, rng=0), x, raise_exception=True)


def test_layer_is_left_untouched_and_float32_is_fine():
    layer = hg.Linear(3, 2, rng=0)
    before = layer.state_dict()
    report = gradcheck(layer, np.ones((2, 3), dtype=np.float32))
    assert report.passed
    assert layer.weight.grad is None and layer.weight.data.dtype == np.float32
    np.testing.assert_array_equal(layer.weight.data, before["weight"])


def test_check_params_false_and_grad_output():
    x = np.random.default_rng(2).standard_normal((2, 3))
    report = gradcheck(hg.Linear(3, 2), x, check_params=False, grad_output=np.ones((2, 2)))
    assert [row.name for row in report.rows] == ["input"]
    with pytest.raises(ValueError, match=r"grad_output of shape \(3,\) does not match"):
        gradcheck(hg.Linear(3, 2), x, grad_output=np.ones(3))


def test_gradcheck_of_a_loss_with_targets():
    rng = np.random.default_rng(3)
    report = gradcheck(hg.losses.CrossEntropyLoss(), rng.standard_normal((3, 4)),
                       np.array([0, 3, 1]))
    assert report.passed and [row.name for row in report.rows] == ["input"]


def test_bad_arguments():
    with pytest.raises(TypeError, match="gradcheck: expected a Layer, got function"):
        gradcheck(lambda x: x, np.ones(2))
    with pytest.raises(TypeError, match="expected a floating-point input"):
        gradcheck(hg.ReLU(), np.ones(2, dtype=np.int64))


def test_numerical_gradient():
    x = np.array([1.0, -2.0, 3.0])
    grad = numerical_gradient(lambda a: float((a ** 3).sum()), x)
    np.testing.assert_allclose(grad, 3 * x ** 2, rtol=1e-6)
    np.testing.assert_array_equal(x, [1.0, -2.0, 3.0])  # restored
    with pytest.raises(ValueError, match="expected eps > 0"):
        numerical_gradient(lambda a: 0.0, x, eps=0.0)
    with pytest.raises(TypeError, match="expected a floating-point numpy array"):
        numerical_gradient(lambda a: 0.0, [1.0, 2.0])


def test_dropout_randomness_is_replayed():
    x = np.random.default_rng(4).standard_normal((4, 6)) + 3.0
    model = hg.Sequential(hg.Linear(6, 5, rng=0), hg.Dropout(0.5, rng=1), hg.Tanh())
    report = gradcheck(model, x, raise_exception=True)
    assert report.passed and len(report.rows) == 3
