"""The Layer base class: registration, names, buffers, state_dict, modes, dtype, repr."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import handgrad as hg
from handgrad import Layer, Parameter


class Scale(Layer):
    """A tiny layer with a parameter, an optional parameter and a buffer."""

    def __init__(self, n=3, bias=True):
        super().__init__()
        self.weight = Parameter(np.ones(n))
        self.bias = Parameter(np.zeros(n)) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        self.register_buffer("count", np.zeros(1))
        self._x = None

    def forward(self, x):
        self._x = x if self.caching else None
        self.count = self.count + 1
        y = x * self.weight.data
        return y + self.bias.data if self.bias is not None else y

    def backward(self, grad_out):
        x = self._saved(self._x)
        self.weight.accumulate_grad((grad_out * x).sum(axis=0), fresh=True)
        if self.bias is not None:
            self.bias.accumulate_grad(grad_out.sum(axis=0), fresh=True)
        return grad_out * self.weight.data

    def extra_repr(self):
        return f"n={self.weight.shape[0]}"


class Net(Layer):
    def __init__(self):
        super().__init__()
        self.first = Scale(3)
        self.body = hg.Sequential(Scale(3, bias=False), hg.ReLU(), Scale(3))

    def forward(self, x):
        return self.body(self.first(x))

    def backward(self, grad_out):
        return self.first.backward(self.body.backward(grad_out))


def test_attribute_assignment_registers_parameters_children_and_buffers():
    net = Net()
    assert list(net._children) == ["first", "body"]
    assert list(net.first._parameters) == ["weight", "bias"]
    assert net.first.count.shape == (1,)
    assert [name for name, _ in net.named_buffers()] == ["first.count", "body.0.count",
                                                         "body.2.count"]


def test_named_parameters_use_pytorch_dotted_names():
    names = [name for name, _ in Net().named_parameters()]
    assert names == ["first.weight", "first.bias", "body.0.weight", "body.2.weight",
                     "body.2.bias"]
    assert len(list(Net().parameters())) == 5
    assert [n for n, _ in Net().named_parameters(recurse=False)] == []
    assert [n for n, _ in Net().named_modules()] == ["", "first", "body", "body.0", "body.1",
                                                     "body.2"]


def test_shared_parameter_is_listed_once():
    net = Net()
    net.body[2].weight = net.first.weight
    assert [n for n, _ in net.named_parameters()].count("body.2.weight") == 0
    assert len(list(net.parameters())) == 4


def test_assigning_a_buffer_updates_it_and_reassignment_replaces_registration():
    layer = Scale()
    layer.count = np.array([5.0])
    assert layer.state_dict()["count"][0] == 5.0
    layer.weight = Parameter(np.full(3, 2.0))
    assert layer.state_dict()["weight"][0] == 2.0
    with pytest.raises(TypeError, match="Scale: cannot assign ndarray to 'weight'"):
        layer.weight = np.ones(3)


def test_setattr_before_init_is_a_clear_error():
    class Broken(Layer):
        def __init__(self):
            self.weight = Parameter(np.ones(1))

    with pytest.raises(RuntimeError, match=r"Broken: call super\(\).__init__\(\)"):
        Broken()


def test_state_dict_has_copies_of_parameters_and_buffers():
    net = Net()
    state = net.state_dict()
    assert list(state) == ["first.weight", "first.bias", "first.count", "body.0.weight",
                           "body.0.count", "body.2.weight", "body.2.bias", "body.2.count"]
    state["first.weight"][0] = 99.0
    assert net.first.weight.data[0] == 1.0


def test_load_state_dict_round_trip_and_dtype():
    a, b = Net(), Net().double()
    for i, p in enumerate(a.parameters()):
        p.data[...] = i + 0.5
    result = b.load_state_dict(a.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.data, pb.data, err_msg=name)
        assert pb.data.dtype == np.float64


def test_load_state_dict_reports_every_problem_by_name_and_changes_nothing():
    net = Net()
    before = net.state_dict()
    bad = net.state_dict()
    bad["first.weight"] = np.full(3, 7.0)  # valid: must not be applied either
    bad["body.0.weight"] = np.ones(4)
    del bad["first.bias"]
    bad["extra.thing"] = np.ones(1)
    with pytest.raises(ValueError) as info:
        net.load_state_dict(bad)
    message = str(info.value)
    assert "Net.load_state_dict" in message
    assert "body.0.weight: expected shape (3,), got (4,)" in message
    assert "missing keys: first.bias" in message
    assert "unexpected keys: extra.thing" in message
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def test_load_state_dict_non_strict_returns_the_keys():
    net = Net()
    state = net.state_dict()
    del state["first.bias"]
    state["other"] = np.ones(2)
    state["first.weight"] = np.full(3, 4.0)
    result = net.load_state_dict(state, strict=False)
    assert result.missing_keys == ["first.bias"] and result.unexpected_keys == ["other"]
    assert net.first.weight.data[0] == 4.0
    with pytest.raises(ValueError, match="wrongly shaped"):  # shapes are checked even then
        net.load_state_dict({"first.weight": np.ones(2)}, strict=False)
    with pytest.raises(TypeError, match="expected a mapping"):
        net.load_state_dict([1, 2])


def test_train_eval_and_caching():
    net = Net()
    assert net.training and all(m.training for m in net.modules())
    net.eval()
    assert not any(m.training for m in net.modules())
    net(np.ones((2, 3)))
    with pytest.raises(RuntimeError, match="eval mode, which caches nothing"):
        net.backward(np.ones((2, 3)))
    net.eval(backward=True)
    assert not net.training and net.caching
    net(np.ones((2, 3)))
    assert net.backward(np.ones((2, 3))).shape == (2, 3)
    net.train()
    assert net.training and all(m.training for m in net.modules())


def test_backward_without_forward_names_the_layer():
    with pytest.raises(RuntimeError, match=r"Scale\(n=3\): backward called with no forward"):
        Scale().backward(np.ones((1, 3)))


def test_zero_grad_and_accumulation():
    net = Net()
    x = np.random.default_rng(0).standard_normal((4, 3))
    net(x)
    net.backward(np.ones((4, 3)))
    first = net.first.weight.grad.copy()
    net(x)
    net.backward(np.ones((4, 3)))
    np.testing.assert_allclose(net.first.weight.grad, 2 * first)
    net.zero_grad(set_to_none=False)
    assert all(np.all(p.grad == 0) for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_requires_grad_false_freezes():
    net = Net().requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_to_float_double_cast_parameters_grads_and_buffers():
    net = Net()
    net(np.ones((1, 3)))
    net.backward(np.ones((1, 3)))
    assert net.double() is net
    assert all(p.data.dtype == np.float64 and p.grad.dtype == np.float64
               for p in net.parameters())
    net.float()
    assert all(p.data.dtype == np.float32 and p.grad.dtype == np.float32
               for p in net.parameters())
    assert all(b.dtype == np.float32 for b in net.buffers())
    assert net.dtype == np.float32
    assert hg.ReLU().dtype is None
    with pytest.raises(TypeError, match="expected a floating dtype"):
        net.to(np.int32)


def test_repr_like_pytorch():
    model = hg.Sequential(hg.Linear(3, 2), hg.ReLU(), hg.Sequential(hg.Linear(2, 1)))
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Linear(in_features=3, out_features=2, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Sequential(\n"
        "    (0): Linear(in_features=2, out_features=1, bias=True)\n"
        "  )\n"
        ")"
    )


def test_sequential_with_names_apply_and_register_errors():
    model = hg.Sequential(OrderedDict(fc=hg.Linear(2, 2), act=hg.Tanh()))
    assert [n for n, _ in model.named_parameters()] == ["fc.weight", "fc.bias"]
    seen = []
    model.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "Tanh", "Sequential"]
    with pytest.raises(TypeError, match="register_buffer: expected a numpy array"):
        model.register_buffer("b", [1, 2])
    with pytest.raises(TypeError, match="register_parameter: expected a Parameter"):
        model.register_parameter("p", np.ones(1))
    with pytest.raises(TypeError, match="add_module: expected a Layer"):
        model.add_module("m", 3)
    with pytest.raises(AttributeError, match="'Sequential' object has no attribute 'nothing'"):
        model.nothing  # noqa: B018


def test_dtype_is_the_first_parameter_in_parameters_order():
    first = hg.Sequential(hg.ReLU(), hg.Sequential(hg.Flatten(), hg.Linear(2, 2).double()),
                          hg.Linear(2, 2))
    assert first.dtype == np.float64 == next(iter(first.parameters())).data.dtype
    assert hg.Sequential(hg.ReLU(), hg.Sequential(hg.Tanh())).dtype is None
    block = hg.Residual(hg.Linear(2, 2), shortcut=hg.Linear(2, 2).double())
    assert block.dtype == np.float32


def test_load_state_dict_refuses_values_it_cannot_copy_and_names_them():
    layer = hg.Linear(2, 3)
    good = layer.state_dict()
    for bad, what in [(np.array([["a", "b"]] * 3), "<U1"), (good["weight"] + 1j, "complex64"),
                      (np.empty((3, 2), dtype=object), "object")]:
        with pytest.raises(ValueError, match=rf"weight: expected float32 values, got {what}"):
            layer.load_state_dict({**good, "weight": bad})
    with pytest.raises(ValueError, match="unexpected keys: 7"):
        layer.load_state_dict({**good, 7: np.zeros(1)})
    layer.load_state_dict({**good, "weight": np.ones((3, 2), dtype=np.int64)})  # ints convert
    np.testing.assert_array_equal(layer.weight.data, 1)
