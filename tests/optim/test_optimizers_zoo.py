"""The new optimizers' own semantics (formulas by hand, LBFGS's state and closure, bad
arguments) and issue 21's checks: gradients of the wrong shape or dtype, and argument
errors that name the optimizer and the argument."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

import handgrad
from handgrad import Parameter, optim
from handgrad.optim import ASGD, LBFGS, NAdam, RAdam, Rprop

from .test_optimizers import make_params, set_grads, to_npz_and_json

NAMES = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "NAdam", "RAdam", "Adamax", "Adadelta",
         "ASGD", "Rprop", "LBFGS"]


def quadratic_closure(params):
    """A closure for LBFGS: loss sum(0.5 * p^2 + p), gradients set on the params."""
    def closure():
        loss = 0.0
        for p in params:
            p.grad = p.data + 1.0
            loss += float(np.sum(0.5 * p.data ** 2 + p.data))
        return loss
    return closure


def step_with(opt, params):
    if isinstance(opt, LBFGS):
        return opt.step(quadratic_closure(params))
    return opt.step()


# ------------------------------------------------------- issue 21: bad gradients
@pytest.mark.parametrize("name", NAMES)
def test_gradient_of_the_wrong_shape_names_optimizer_parameter_and_shapes(name):
    params = make_params()
    params[2].name = "conv.weight"
    opt = getattr(optim, name)(params)
    set_grads(params, 0)
    before = [p.data.copy() for p in params]
    if name == "LBFGS":
        def closure():
            set_grads(params, 0)
            params[2].grad = np.ones((2, 6))
            return 1.0
        with pytest.raises(ValueError, match=re.escape(
                "LBFGS.step: the gradient of parameter 2 ('conv.weight') of param group 0 has "
                "shape (2, 6), expected the parameter's shape (3, 2, 2)")):
            opt.step(closure)
    else:
        params[2].grad = np.ones((2, 6))
        with pytest.raises(ValueError, match=re.escape(
                f"{name}.step: the gradient of parameter 2 ('conv.weight') of param group 0 "
                "has shape (2, 6), expected the parameter's shape (3, 2, 2)")):
            opt.step()
    for p, b in zip(params, before):  # checked before anything is updated
        np.testing.assert_array_equal(p.data, b)


def test_wrong_shape_in_a_later_group_without_a_name():
    a, b, c = make_params()
    opt = optim.Adam([{"params": [a]}, {"params": [b, c]}])
    a.grad, b.grad, c.grad = np.ones((5, 4)), np.ones((4,)), np.ones((3, 2, 1))
    with pytest.raises(ValueError, match=re.escape(
            "Adam.step: the gradient of parameter 1 of param group 1 has shape (3, 2, 1), "
            "expected the parameter's shape (3, 2, 2)")):
        opt.step()
    c.grad = np.ones((12,))  # same size, other shape: also refused (no silent reshape)
    with pytest.raises(ValueError, match="has shape \\(12,\\)"):
        opt.step()


@pytest.mark.parametrize("name", NAMES)
def test_gradient_of_another_dtype_is_refused_and_float32_stays(name):
    params = make_params(np.float32)
    opt = getattr(optim, name)(params)
    before = [p.data.copy() for p in params]

    def float64_grads():
        set_grads(params, 0, np.float32)
        params[1].grad = params[1].grad.astype(np.float64)
        return 1.0

    float64_grads()
    with pytest.raises(TypeError, match=re.escape(
            f"{name}.step: the gradient of parameter 1 of param group 0 has dtype float64, "
            "expected the parameter's dtype float32")):
        opt.step(float64_grads) if name == "LBFGS" else opt.step()
    for p, b in zip(params, before):
        assert p.data.dtype == np.float32
        np.testing.assert_array_equal(p.data, b)


def test_gradient_that_is_not_an_array():
    p = Parameter(np.zeros(3))
    opt = optim.SGD([p], lr=0.1)
    p.grad = [1.0, 2.0, 3.0]
    with pytest.raises(TypeError, match="gradient of parameter 0 of param group 0 is a list, "
                                        "expected a NumPy array of shape \\(3,\\)"):
        opt.step()


def test_frozen_parameter_with_a_bad_gradient_is_skipped_not_checked():
    a, b = Parameter(np.zeros(3)), Parameter(np.zeros(2))
    b.requires_grad = False
    b.grad = np.ones(7)  # never used by step
    a.grad = np.ones(3)
    optim.NAdam([a, b]).step()
    assert not np.array_equal(a.data, np.zeros(3))


# ----------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("make,error,message", [
    (lambda ps: NAdam(ps, lr=-0.1), ValueError,
     "NAdam: invalid learning rate lr=-0.1 (expected >= 0)"),
    (lambda ps: NAdam(ps, momentum_decay=-1.0), ValueError,
     "NAdam: invalid momentum_decay value momentum_decay=-1.0 (expected >= 0)"),
    (lambda ps: NAdam(ps, betas=(0.9, 1.0)), ValueError,
     "NAdam: invalid beta parameter at index 1: betas[1]=1.0 (expected 0 <= beta < 1)"),
    (lambda ps: RAdam(ps, eps=-1.0), ValueError, "RAdam: invalid epsilon value eps=-1.0"),
    (lambda ps: RAdam(ps, weight_decay=-0.1), ValueError,
     "RAdam: invalid weight_decay value weight_decay=-0.1"),
    (lambda ps: optim.Adamax(ps, betas=(-0.1, 0.9)), ValueError,
     "Adamax: invalid beta parameter at index 0: betas[0]=-0.1"),
    (lambda ps: optim.Adadelta(ps, rho=1.5), ValueError,
     "Adadelta: invalid rho value rho=1.5 (expected 0 <= rho <= 1)"),
    (lambda ps: optim.Adadelta(ps, lr=float("nan")), ValueError,
     "Adadelta: invalid learning rate lr=nan (expected >= 0)"),
    (lambda ps: ASGD(ps, weight_decay=-1), ValueError,
     "ASGD: invalid weight_decay value weight_decay=-1"),
    (lambda ps: ASGD(ps, t0="soon"), TypeError,
     "ASGD: invalid t0 value t0='soon' (expected a real number, got str)"),
    (lambda ps: Rprop(ps, etas=(1.5, 1.2)), ValueError,
     "Rprop: invalid eta values etas=(1.5, 1.2) (expected 0 < etaminus < 1 < etaplus)"),
    (lambda ps: Rprop(ps, step_sizes=(1e-6,)), ValueError,
     "Rprop: invalid step_sizes=(1e-06,) (expected a pair of real numbers)"),
    (lambda ps: RAdam(ps, decoupled_weight_decay="yes"), TypeError,
     "RAdam: invalid decoupled_weight_decay='yes' (expected True or False)"),
    (lambda ps: NAdam(ps, capturable=True), ValueError,
     "NAdam: capturable=True is not supported"),
    (lambda ps: optim.Adamax(ps, differentiable=True), ValueError,
     "Adamax: differentiable=True is not supported"),
    (lambda ps: ASGD(ps, foreach="fast"), TypeError,
     "ASGD: invalid foreach='fast' (expected None, True or False)"),
    (lambda ps: LBFGS(ps, lr=-1), ValueError, "LBFGS: invalid learning rate lr=-1"),
    (lambda ps: LBFGS(ps, line_search_fn="armijo"), ValueError,
     "LBFGS: invalid line_search_fn='armijo' (expected None or 'strong_wolfe')"),
    (lambda ps: LBFGS(ps, max_iter=0), ValueError,
     "LBFGS: invalid max_iter=0 (expected an integer >= 1)"),
    (lambda ps: LBFGS(ps, history_size=2.5), ValueError, "LBFGS: invalid history_size=2.5"),
    (lambda ps: LBFGS(ps, tolerance_grad=-1.0), ValueError,
     "LBFGS: invalid tolerance tolerance_grad=-1.0"),
    (lambda ps: LBFGS([{"params": ps[:1]}, {"params": ps[1:]}]), ValueError,
     "LBFGS: doesn't support per-parameter options (parameter groups)"),
    (lambda ps: LBFGS([]), ValueError, "LBFGS: optimizer got an empty parameter list"),
    (lambda ps: Rprop([ps[0], "weight"]), TypeError,
     "Rprop: can only optimize Parameters, but params[1] is str"),
])
def test_bad_arguments(make, error, message):
    with pytest.raises(error, match=re.escape(message)):
        make(make_params())


SWITCHES = [(name, key) for name in NAMES[:-1] for key in ("foreach", "fused")
            if key in inspect.signature(getattr(optim, name)).parameters]


@pytest.mark.parametrize("name,key", SWITCHES)
def test_implementation_switches_are_accepted(name, key):
    """foreach and fused only choose torch's implementation: accepted, same results."""
    cls = getattr(optim, name)
    plain, switched = make_params(), make_params()
    opt_plain, opt_switched = cls(plain), cls(switched, **{key: True})
    assert opt_switched.param_groups[0][key] is True
    for step in range(3):
        set_grads(plain, step)
        set_grads(switched, step)
        opt_plain.step()
        opt_switched.step()
    for p, q in zip(plain, switched):
        np.testing.assert_array_equal(p.data, q.data)


def test_checkpoint_without_the_newer_group_keys_loads():
    """A state dict saved before the torch switches were group keys still loads."""
    params = make_params()
    opt = optim.AdamW(params)
    set_grads(params, 0)
    opt.step()
    saved = opt.state_dict()
    for group in saved["param_groups"]:
        for key in ("foreach", "capturable", "differentiable", "fused",
                    "decoupled_weight_decay"):
            del group[key]
    fresh = optim.AdamW(make_params())
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["decoupled_weight_decay"] is True
    assert fresh.param_groups[0]["foreach"] is None


# ------------------------------------------------------------- formulas by hand
def test_rprop_by_hand():
    p = Parameter(np.array([0.0, 0.0, 0.0]))
    opt = Rprop([p], lr=0.1, etas=(0.5, 2.0), step_sizes=(0.01, 0.3))
    x = np.zeros(3)
    for g, expected_step in [
        (np.array([1.0, -1.0, 0.0]), np.array([0.1, 0.1, 0.1])),   # first step: size lr
        (np.array([2.0, 1.0, 0.0]), np.array([0.2, 0.05, 0.1])),   # same sign / flip / zero
        (np.array([3.0, 1.0, 1.0]), np.array([0.3, 0.05, 0.1])),   # clamped at 0.3; after a
    ]:                                                             # flip prev = 0: factor 1
        p.grad = g
        opt.step()
        np.testing.assert_allclose(opt.state[p]["step_size"], expected_step)
        skipped = np.array([False, True, False]) if g[1] == 1.0 and g[0] == 2.0 else False
        x = x - np.where(skipped, 0.0, np.sign(g) * expected_step)
        np.testing.assert_allclose(p.data, x)


def test_asgd_averages_after_t0_by_hand():
    p = Parameter(np.array([1.0]))
    opt = ASGD([p], lr=0.1, lambd=0.0, alpha=0.75, t0=2)
    iterates = []
    x = 1.0
    for _ in range(5):
        p.grad = np.array([2.0 * x])
        opt.step()
        x = x - 0.1 * 2.0 * x  # lambd = 0: eta stays lr
        iterates.append(x)
    # step t uses mu = 1 / max(1, (t - 1) - t0): ax follows p up to t = t0 + 2 = 4, then
    # averages the iterates from there on
    np.testing.assert_allclose(opt.state[p]["ax"], [np.mean(iterates[3:])], rtol=1e-12)
    np.testing.assert_allclose(p.data, [x], rtol=1e-12)


def test_nadam_state_by_hand():
    p = Parameter(np.array([1.0]))
    opt = NAdam([p], betas=(0.9, 0.999), momentum_decay=4e-3)
    for _ in range(3):
        p.grad = np.array([0.5])
        opt.step()
    mus = [0.9 * (1 - 0.5 * 0.96 ** (t * 4e-3)) for t in (1, 2, 3)]
    assert opt.state[p]["mu_product"] == pytest.approx(np.prod(mus), rel=1e-15)
    assert opt.state[p]["step"] == 3.0


# ------------------------------------------------------------------------- LBFGS
def test_lbfgs_needs_a_closure():
    opt = LBFGS(make_params())
    with pytest.raises(TypeError, match="LBFGS.step: expected a closure"):
        opt.step()
    with pytest.raises(ValueError, match="add_param_group is not available"):
        opt.add_param_group({"params": [Parameter(np.zeros(2))]})


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
@pytest.mark.parametrize("through_files", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lbfgs_state_dict_resume_is_bit_identical(line_search_fn, through_files, dtype):
    kwargs = dict(lr=0.5, max_iter=3, history_size=4, line_search_fn=line_search_fn)
    reference = make_params(dtype)
    opt = LBFGS(reference, **kwargs)
    for _ in range(4):
        opt.step(quadratic_closure(reference))

    params = make_params(dtype)
    first = LBFGS(params, **kwargs)
    for _ in range(2):
        first.step(quadratic_closure(params))
    saved = first.state_dict()
    if through_files:  # the history lists become arrays in an npz: still loads
        state = saved["state"][0]
        for key in ("old_dirs", "old_stps"):
            state[key] = np.stack(state[key])
        saved = {"state": {"0": state}, "param_groups": to_npz_and_json(saved)["param_groups"]}
    resumed_params = [Parameter(p.data) for p in params]
    resumed = LBFGS(resumed_params, lr=9.0)
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["lr"] == 0.5
    for _ in range(2):
        resumed.step(quadratic_closure(resumed_params))
    for p, q in zip(reference, resumed_params):
        np.testing.assert_array_equal(p.data, q.data)
    assert resumed.state[resumed_params[0]]["func_evals"] == opt.state[reference[0]]["func_evals"]


def test_lbfgs_state_dict_is_a_copy_and_checks_shapes():
    params = make_params()
    opt = LBFGS(params, max_iter=3)
    opt.step(quadratic_closure(params))
    saved = opt.state_dict()
    before = saved["state"][0]["old_dirs"][0].copy()
    opt.step(quadratic_closure(params))
    np.testing.assert_array_equal(saved["state"][0]["old_dirs"][0], before)
    saved["state"][0]["d"] = np.zeros(5)
    with pytest.raises(ValueError, match=re.escape(
            "LBFGS.load_state_dict: state 'd' has shape (5,), expected (36,)")):
        LBFGS(make_params()).load_state_dict(saved)


def test_lbfgs_float32_and_missing_gradients():
    params = make_params(np.float32)
    opt = LBFGS(params, max_iter=5, line_search_fn="strong_wolfe")
    frozen_value = params[1].data.copy()

    def closure():
        loss = quadratic_closure([params[0], params[2]])()
        params[1].grad = None  # no gradient: counts as zeros, never moves
        return loss

    loss = opt.step(closure)
    assert isinstance(loss, float)
    assert closure() < loss
    for p in params:
        assert p.data.dtype == np.float32
    state = opt.state[params[0]]
    assert state["d"].dtype == np.float32 and state["prev_flat_grad"].dtype == np.float32
    np.testing.assert_array_equal(params[1].data, frozen_value)


def test_lbfgs_trains_a_model():
    rng = np.random.default_rng(0)
    model = handgrad.Sequential(handgrad.Linear(3, 8, rng=rng), handgrad.Tanh(),
                                handgrad.Linear(8, 1, rng=rng)).double()
    x = rng.standard_normal((32, 3))
    y = np.sin(x.sum(axis=1, keepdims=True))
    opt = LBFGS(model.parameters(), line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        pred = model(x)
        model.backward(2 * (pred - y) / len(x))
        return float(np.mean((pred - y) ** 2))

    first = opt.step(closure)
    for _ in range(4):
        opt.step(closure)
    assert closure() < 0.1 * first
