"""Layer and Parameter hooks: PyTorch's order and arrays, replacement values, removal, no cost."""

from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import pytest

import handgrad as hg


def record(model, log, framework):
    """Register every kind of hook on every layer and parameter; events go to ``log``."""
    handles = []

    def to_np(a):
        if isinstance(a, tuple):  # torch's LSTM returns (output, (h_n, c_n))
            a = a[0]
        if a is None:
            return None
        return a.detach().numpy().copy() if framework == "torch" else np.array(a, copy=True)

    def named(name):
        def fpre(layer, args):
            log.append(("forward_pre", name, to_np(args[0])))

        def fwd(layer, args, out):
            log.append(("forward", name, to_np(out)))

        def bpre(layer, grad_output):
            log.append(("backward_pre", name, to_np(grad_output[0])))

        def bwd(layer, grad_input, grad_output):
            log.append(("backward", name, to_np(grad_input[0]), to_np(grad_output[0])))

        return fpre, fwd, bpre, bwd

    for name, module in model.named_modules():
        fpre, fwd, bpre, bwd = named(name or "(model)")
        handles += [module.register_forward_pre_hook(fpre), module.register_forward_hook(fwd),
                    module.register_full_backward_pre_hook(bpre),
                    module.register_full_backward_hook(bwd)]
    for pname, param in model.named_parameters():
        handles.append(param.register_hook(
            lambda g, pname=pname: log.append(("param", pname, to_np(g)))))
    return handles


def normalized(log):
    """Sort each run of consecutive parameter events by name (PyTorch accumulates a layer's
    bias before its weight; the order inside one layer's backward is not part of the
    contract)."""
    out, run = [], []
    for event in log + [("end",)]:
        if event[0] == "param":
            run.append(event)
            continue
        out += sorted(run, key=lambda e: e[1])
        run = []
        out.append(event)
    return out[:-1]


def compare(ours, theirs):
    ours, theirs = normalized(ours), normalized(theirs)
    assert [e[:2] for e in ours] == [e[:2] for e in theirs]
    for a, b in zip(ours, theirs):
        for x, y in zip(a[2:], b[2:]):
            if x is None or y is None:
                assert x is None and y is None, a[:2]
            else:
                np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12, err_msg=str(a[:2]))


def run_both(model, torch_model, x, grad_out, torch):
    ours, theirs = [], []
    record(model, ours, "handgrad")
    record(torch_model, theirs, "torch")
    y = model(x)
    model.backward(grad_out)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch_model(tx)
    ty.backward(torch.tensor(grad_out))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10)
    compare(ours, theirs)
    return ours


def test_hooks_on_mlp_match_torch():
    torch = pytest.importorskip("torch")
    from tests.helpers import to_torch_state

    model = hg.models.mlp(5, (4, 3), 2, dtype=np.float64, rng=0)
    tmodel = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3),
                                 torch.nn.ReLU(), torch.nn.Linear(3, 2)).double()
    to_torch_state(model, tmodel)
    rng = np.random.default_rng(1)
    log = run_both(model, tmodel, rng.standard_normal((6, 5)), rng.standard_normal((6, 2)),
                   torch)
    kinds = [e[0] for e in log]
    assert kinds.count("param") == 6 and kinds.count("backward") == 6


def test_hooks_on_residual_match_torch():
    torch = pytest.importorskip("torch")
    from tests.helpers import to_torch_state

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh(),
                                            torch.nn.Linear(4, 4))

        def forward(self, x):
            return self.body(x) + x

    body = hg.Sequential(hg.Linear(4, 4, dtype=np.float64, rng=0), hg.Tanh(),
                         hg.Linear(4, 4, dtype=np.float64, rng=1))
    model = hg.Sequential(hg.Residual(body), hg.Linear(4, 2, dtype=np.float64, rng=2))
    tmodel = torch.nn.Sequential(Block(), torch.nn.Linear(4, 2)).double()
    to_torch_state(model, tmodel)
    rng = np.random.default_rng(2)
    log = run_both(model, tmodel, rng.standard_normal((3, 4)), rng.standard_normal((3, 2)),
                   torch)
    names = [e[1] for e in log if e[0] == "backward"]
    assert names == ["1", "0.body.2", "0.body.1", "0.body.0", "0.body", "0", "(model)"]


def test_hooks_on_lstm_match_torch():
    torch = pytest.importorskip("torch")
    from tests.helpers import to_torch_state

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(3, 4)
            self.head = torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.rnn(x)[0])

    model = hg.Sequential(OrderedDict(rnn=hg.LSTM(3, 4, dtype=np.float64, rng=0),
                                      head=hg.Linear(4, 2, dtype=np.float64, rng=1)))
    tmodel = Net().double()
    to_torch_state(model, tmodel)
    rng = np.random.default_rng(3)
    log = run_both(model, tmodel, rng.standard_normal((5, 2, 3)),
                   rng.standard_normal((5, 2, 2)), torch)
    params = {e[1] for e in log if e[0] == "param"}
    assert params == {"rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0",
                      "rnn.bias_hh_l0", "head.weight", "head.bias"}


def test_recurrent_backward_hook_sees_the_state_gradient():
    lstm = hg.LSTM(2, 3, dtype=np.float64, rng=0)
    seen = []
    lstm.register_full_backward_hook(lambda m, gi, go: seen.append(go))
    x = np.random.default_rng(0).standard_normal((4, 1, 2))
    lstm(x)
    grad_h = np.ones((1, 1, 3))
    lstm.backward(np.zeros((4, 1, 3)), (grad_h, None))
    assert len(seen[0]) == 2 and seen[0][1][0] is grad_h


def test_replacements_change_what_flows():
    model = hg.Sequential(hg.Linear(3, 2, dtype=np.float64, rng=0), hg.Tanh())
    x = np.random.default_rng(0).standard_normal((4, 3))
    base = model(x)
    h = model[0].register_forward_pre_hook(lambda m, args: 2 * args[0])  # a bare value
    np.testing.assert_allclose(model(x), np.tanh(
        2 * x @ model[0].weight.data.T + model[0].bias.data))
    h.remove()
    h = model[0].register_forward_hook(lambda m, args, out: np.zeros_like(out))
    np.testing.assert_array_equal(model(x), np.zeros_like(base))
    h.remove()
    np.testing.assert_array_equal(model(x), base)

    g = np.ones_like(base)
    gx = model.backward(g)
    with model[1].register_full_backward_hook(lambda m, gi, go: (3 * gi[0],)):
        model(x)
        gx3 = model.backward(g)
    np.testing.assert_allclose(gx3, 3 * gx)
    model.zero_grad()
    with model[0].weight.register_hook(lambda grad: np.full_like(grad, 7.0)):
        model(x)
        model.backward(g)
    np.testing.assert_array_equal(model[0].weight.grad, np.full((2, 3), 7.0))
    model.zero_grad()
    model(x)
    model.backward(g)
    assert not np.allclose(model[0].weight.grad, 7.0)


def test_backward_pre_hook_replaces_grad_output():
    layer = hg.Linear(3, 2, dtype=np.float64, rng=0)
    x = np.ones((1, 3))
    layer(x)
    plain = layer.backward(np.ones((1, 2)))
    layer.register_full_backward_pre_hook(lambda m, go: (np.zeros_like(go[0]),))
    layer(x)
    np.testing.assert_array_equal(layer.backward(np.ones((1, 2))), np.zeros_like(plain))


def test_wrong_replacement_length_raises():
    layer = hg.Tanh()
    layer.register_full_backward_hook(lambda m, gi, go: (gi[0], gi[0]))
    layer(np.ones((2, 2)))
    with pytest.raises(ValueError, match="returned 2 values"):
        layer.backward(np.ones((2, 2)))


def test_non_callable_hook_raises():
    with pytest.raises(TypeError, match="callable"):
        hg.Tanh().register_forward_hook(3)
    with pytest.raises(TypeError, match="callable"):
        hg.Parameter(np.zeros(2)).register_hook("x")


def test_prepend_runs_first():
    layer, order = hg.Tanh(), []
    layer.register_forward_hook(lambda *a: order.append("a"))
    layer.register_forward_hook(lambda *a: order.append("b"), prepend=True)
    layer(np.zeros(2))
    assert order == ["b", "a"]


def test_no_hook_means_the_class_methods_run_directly():
    model = hg.models.mlp(4, (3,), 2, rng=0)
    layers = list(model.modules())

    def direct():
        return all("forward" not in m.__dict__ and "backward" not in m.__dict__
                   and m.forward.__func__ is type(m).forward
                   and m.backward.__func__ is type(m).backward for m in layers)

    assert direct()
    handles = [m.register_forward_hook(lambda *a: None) for m in layers]
    handles += [m.register_full_backward_hook(lambda *a: None) for m in layers]
    assert not direct()
    for handle in handles:
        handle.remove()
        handle.remove()  # twice is harmless
    assert direct()
    assert all(not p._hooks for p in model.parameters())


def test_deepcopy_of_a_hooked_model_hooks_the_copy():
    model = hg.Sequential(hg.Linear(2, 2, rng=0))
    seen = []
    model[0].register_forward_hook(lambda m, args, out: seen.append(m))
    clone = copy.deepcopy(model)
    clone(np.ones((1, 2), np.float32))
    assert seen == [clone[0]]
    np.testing.assert_array_equal(clone(np.ones((1, 2), np.float32)),
                                  model(np.ones((1, 2), np.float32)))


def test_hooks_survive_the_non_finite_search():
    from handgrad.training.anomaly import find_non_finite

    model = hg.Sequential(hg.Linear(2, 2, dtype=np.float64, rng=0), hg.Tanh())
    calls = []
    model[0].register_forward_hook(lambda *a: calls.append("fwd"))
    x, y = np.ones((3, 2)), np.zeros((3, 2))
    find_non_finite(model, hg.losses.MSELoss(), x, y)
    assert calls == ["fwd"]  # the hook fired during the traced pass ...
    model(x)
    assert calls == ["fwd", "fwd"]  # ... and is still there after it
