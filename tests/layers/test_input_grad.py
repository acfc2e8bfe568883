"""``needs_input_grad = False``: no input gradient, the same parameter gradients."""

import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import handgrad as hg
from handgrad.models import cifar_resnet
from handgrad.training.fit import fit


def grads(model):
    return {name: p.grad.copy() for name, p in model.named_parameters() if p.grad is not None}


def backward_both_ways(model, x, grad_out=None):
    """(input grad, param grads) with the input gradient wanted, then not wanted."""
    full, lean = model, copy.deepcopy(model)
    lean.needs_input_grad = False
    results = []
    for m in (full, lean):
        m.zero_grad()
        y = m(x)
        g = np.random.default_rng(5).standard_normal(y.shape) if grad_out is None else grad_out
        results.append((m.backward(g.astype(y.dtype)), grads(m)))
    return results


def assert_same_param_grads(a, b):
    assert a.keys() == b.keys() and a
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-12, atol=1e-12, err_msg=name)


def test_linear_skips_the_input_gradient():
    layer = hg.Linear(5, 3, dtype=np.float64, rng=0)
    x = np.random.default_rng(1).standard_normal((4, 5))
    (gx, full), (none, lean) = backward_both_ways(layer, x)
    assert gx.shape == x.shape and none is None
    assert_same_param_grads(full, lean)


@given(stride=st.integers(1, 2), padding=st.integers(0, 2), groups=st.sampled_from([1, 2]),
       bias=st.booleans(), out_ratio=st.integers(1, 2))
def test_conv2d_skips_the_input_gradient(stride, padding, groups, bias, out_ratio):
    layer = hg.Conv2d(4, 2 * out_ratio, 3, stride=stride, padding=padding, groups=groups,
                      bias=bias, dtype=np.float64, rng=0)
    x = np.random.default_rng(2).standard_normal((3, 4, 7, 6))
    (gx, full), (none, lean) = backward_both_ways(layer, x)
    assert gx.shape == x.shape and none is None
    assert_same_param_grads(full, lean)


def test_sequential_passes_it_to_leading_children_only():
    model = hg.Sequential(hg.Flatten(), hg.Linear(12, 6), hg.ReLU(), hg.Linear(6, 2))
    model.needs_input_grad = False
    assert [child.needs_input_grad for child in model] == [False, False, True, True]
    model.needs_input_grad = True
    assert all(child.needs_input_grad for child in model)


def test_sequential_param_grads_unchanged_and_returns_none():
    model = hg.Sequential(hg.Flatten(), hg.Linear(12, 6, dtype=np.float64, rng=0), hg.Tanh(),
                          hg.Linear(6, 2, dtype=np.float64, rng=1))
    x = np.random.default_rng(3).standard_normal((5, 3, 4))
    (gx, full), (none, lean) = backward_both_ways(model, x)
    assert gx.shape == x.shape and none is None
    assert_same_param_grads(full, lean)


def test_unfreezing_a_leading_layer_after_the_setting_still_gives_its_gradients():
    first = hg.Linear(4, 4, dtype=np.float64, rng=0)
    model = hg.Sequential(first, hg.Linear(4, 2, dtype=np.float64, rng=1))
    first.requires_grad_(False)
    model.needs_input_grad = False
    assert not model[1].needs_input_grad  # nothing before it trains
    first.requires_grad_(True)
    x = np.random.default_rng(4).standard_normal((3, 4))
    model.zero_grad()
    model(x)
    assert model.backward(np.ones((3, 2))) is None
    reference = copy.deepcopy(model)
    reference.needs_input_grad = True
    reference.zero_grad()
    reference(x)
    reference.backward(np.ones((3, 2)))
    assert_same_param_grads(grads(reference), grads(model))


def test_resnet_param_grads_unchanged():
    model = cifar_resnet(8, num_classes=3, width=4, dtype=np.float64, rng=0)
    x = np.random.default_rng(6).standard_normal((2, 3, 8, 8))
    (gx, full), (none, lean) = backward_both_ways(model, x)
    assert gx.shape == x.shape and none is None
    assert_same_param_grads(full, lean)
    model.needs_input_grad = False
    assert not model.conv1.needs_input_grad and model.layer1.needs_input_grad


def test_residual_returns_none_when_not_needed():
    block = hg.Residual(hg.Sequential(hg.Linear(3, 3, dtype=np.float64, rng=0), hg.Tanh()))
    x = np.random.default_rng(7).standard_normal((2, 3))
    (gx, full), (none, lean) = backward_both_ways(block, x)
    assert gx.shape == x.shape and none is None
    assert_same_param_grads(full, lean)


def test_gradcheck_still_checks_the_input():
    layer = hg.Linear(3, 2, dtype=np.float64, rng=0)
    layer.needs_input_grad = False
    report = hg.gradcheck(layer, np.random.default_rng(8).standard_normal((2, 3)))
    assert report.passed
    assert any(row.name == "input" for row in report.rows)
    assert not layer.needs_input_grad  # the checked copy was changed, not the layer


def test_fit_skips_the_input_gradient_and_restores_the_setting():
    model = hg.Sequential(hg.Linear(4, 8, rng=0), hg.ReLU(), hg.Linear(8, 3, rng=1))
    seen = []
    original = model[0].backward

    def spy(grad_out):
        result = original(grad_out)
        seen.append(result)
        return result

    object.__setattr__(model[0], "backward", spy)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    fit(model, hg.losses.CrossEntropyLoss(), hg.optim.SGD(model.parameters(), lr=0.1),
           (x, y), epochs=1, batch_size=16, progress=False)
    assert seen and all(g is None for g in seen)
    assert model.needs_input_grad and model[0].needs_input_grad


@pytest.mark.parametrize("value", [False, True])
def test_setting_is_not_saved_in_state_dict(value):
    model = hg.Sequential(hg.Linear(2, 2))
    model.needs_input_grad = value
    assert set(model.state_dict()) == {"0.weight", "0.bias"}
