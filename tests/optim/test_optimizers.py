"""Optimizer semantics: state dicts, parameter groups, skipping, dtypes, bad input."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest

import handgrad
from handgrad import Parameter
from handgrad.optim import (
    ASGD,
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    NAdam,
    Optimizer,
    RAdam,
    RMSprop,
    Rprop,
)

ALL = [
    (SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (SGD, dict(lr=0.1)),
    (Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.01)),
    (AdamW, dict(lr=0.01)),
    (RMSprop, dict(lr=0.01, momentum=0.9, centered=True)),
    (Adagrad, dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
    (Adam, dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    (NAdam, dict(lr=0.01, weight_decay=0.01)),
    (NAdam, dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    (RAdam, dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    (RAdam, dict(lr=0.01, betas=(0.5, 0.6), maximize=True)),
    (Adamax, dict(lr=0.01, weight_decay=0.1, maximize=True)),
    (Adadelta, dict(lr=0.5, rho=0.8, weight_decay=0.1)),
    (ASGD, dict(lr=0.05, lambd=0.01, t0=2, weight_decay=0.1, maximize=True)),
    (Rprop, dict(lr=0.05, etas=(0.4, 1.3), step_sizes=(1e-3, 0.5))),
]
IDS = [f"{cls.__name__}-{i}" for i, (cls, kw) in enumerate(ALL)]
# the element-wise optimizers (handgrad/optim/_elementwise.py) with options that reach
# every branch of their kernels, for the fast-path and threading tests below
ELEMENTWISE = [
    (NAdam, dict(lr=0.01, weight_decay=0.1, maximize=True)),
    (NAdam, dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    (RAdam, dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    (RAdam, dict(lr=0.01, weight_decay=0.1, betas=(0.2, 0.5))),
    (Adamax, dict(lr=0.01, weight_decay=0.1, maximize=True)),
    (Adadelta, dict(lr=0.5, weight_decay=0.1, maximize=True)),
    (ASGD, dict(lr=0.05, lambd=0.01, t0=2, weight_decay=0.1, maximize=True)),
    (Rprop, dict(lr=0.05, maximize=True)),
]


def make_params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal(s).astype(dtype)) for s in [(5, 4), (4,), (3, 2, 2)]]


def set_grads(params, step, dtype=np.float64):
    rng = np.random.default_rng(1000 + step)
    for p in params:
        p.grad = (p.data * 0.5 + rng.standard_normal(p.shape)).astype(dtype)


def train(opt, params, steps, start=0):
    for step in range(start, start + steps):
        set_grads(params, step, params[0].dtype)
        opt.step()


def to_npz_and_json(state_dict):
    """What a checkpoint does: arrays into .npz, everything else into JSON (no pickle)."""
    arrays, scalars = {}, {}
    for index, values in state_dict["state"].items():
        for key, value in values.items():
            if isinstance(value, np.ndarray):
                arrays[f"{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    loaded = np.load(buffer, allow_pickle=False)
    meta = json.loads(json.dumps({"scalars": scalars, "param_groups": state_dict["param_groups"]}))
    state: dict[str, dict] = {}
    for name in loaded.files:
        index, key = name.split(".")
        state.setdefault(index, {})[key] = loaded[name]
    for name, value in meta["scalars"].items():
        index, key = name.split(".")
        state.setdefault(index, {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


@pytest.mark.parametrize("cls,kwargs", ALL, ids=IDS)
@pytest.mark.parametrize("split", [0, 3])
@pytest.mark.parametrize("through_files", [False, True])
def test_state_dict_resume_is_bit_identical(cls, kwargs, split, through_files):
    reference = make_params()
    opt = cls(reference, **kwargs)
    train(opt, reference, 6)

    params = make_params()
    first = cls(params, **kwargs)
    train(first, params, split)
    saved = first.state_dict()
    if through_files:
        saved = to_npz_and_json(saved)
    resumed_params = [Parameter(p.data) for p in params]
    resumed = cls(resumed_params, lr=123.0)  # hyperparameters come from the state dict
    resumed.load_state_dict(saved)
    train(resumed, resumed_params, 6 - split, start=split)
    for p, q in zip(reference, resumed_params):
        np.testing.assert_array_equal(p.data, q.data)


@pytest.mark.parametrize("cls,kwargs", ALL, ids=IDS)
def test_state_dict_is_a_copy_and_has_pytorch_structure(cls, kwargs):
    params = make_params()
    opt = cls(params, **kwargs)
    train(opt, params, 2)
    saved = opt.state_dict()
    assert set(saved) == {"state", "param_groups"}
    assert saved["param_groups"][0]["params"] == [0, 1, 2]
    assert saved["param_groups"][0]["lr"] == kwargs["lr"]
    for values in saved["state"].values():
        for value in values.values():
            assert isinstance(value, (np.ndarray, float))
    if saved["state"]:
        key = next(k for k, v in saved["state"][0].items() if isinstance(v, np.ndarray))
        before = saved["state"][0][key].copy()
        train(opt, params, 1, start=2)
        np.testing.assert_array_equal(saved["state"][0][key], before)


@pytest.mark.parametrize("cls,kwargs", ALL, ids=IDS)
def test_float32_stays_float32(cls, kwargs):
    params = make_params(np.float32)
    opt = cls(params, **kwargs)
    train(opt, params, 3)
    for p in params:
        assert p.data.dtype == np.float32
        for value in opt.state.get(p, {}).values():
            if isinstance(value, np.ndarray):
                assert value.dtype == np.float32
    opt.param_groups[0]["lr"] = np.float64(0.01)  # a NumPy scalar must not promote either
    train(opt, params, 1, start=3)
    assert all(p.data.dtype == np.float32 for p in params)


@pytest.mark.parametrize("cls,kwargs", ALL, ids=IDS)
def test_skips_missing_grads_and_frozen_params(cls, kwargs):
    params = make_params()
    frozen, no_grad, active = params
    frozen.requires_grad = False
    opt = cls(params, **kwargs)
    before = [p.data.copy() for p in params]
    set_grads(params, 0)
    no_grad.grad = None
    opt.step()
    np.testing.assert_array_equal(frozen.data, before[0])
    np.testing.assert_array_equal(no_grad.data, before[1])
    assert not np.array_equal(active.data, before[2])
    if cls is not Adagrad:  # Adagrad creates its state at construction, like PyTorch
        assert frozen not in opt.state and no_grad not in opt.state


def test_param_groups_and_add_param_group():
    a, b, c = make_params()
    opt = SGD([{"params": [a]}, {"params": b, "lr": 1.0}], lr=0.1, momentum=0.5)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 1.0]
    assert opt.param_groups[1]["momentum"] == 0.5
    opt.add_param_group({"params": [c], "momentum": 0.0})
    assert opt.param_groups[2]["lr"] == 0.1 and opt.param_groups[2]["momentum"] == 0.0
    for p in (a, b, c):
        p.grad = np.ones_like(p.data)
    before = [p.data.copy() for p in (a, b, c)]
    opt.step()
    np.testing.assert_allclose(a.data, before[0] - 0.1)
    np.testing.assert_allclose(b.data, before[1] - 1.0)
    np.testing.assert_allclose(c.data, before[2] - 0.1)
    assert c not in opt.state  # momentum 0 in that group: no buffer
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})


def test_zero_grad_and_closure():
    params = make_params()
    opt = Adam(params)
    set_grads(params, 0)
    opt.zero_grad(set_to_none=False)
    assert all(np.all(p.grad == 0) for p in params)
    opt.zero_grad()
    assert all(p.grad is None for p in params)

    def closure():
        set_grads(params, 1)
        return 3.5

    assert opt.step(closure) == 3.5
    assert all(opt.state[p]["step"] == 1.0 for p in params)


def test_sgd_momentum_formula_by_hand():
    p = Parameter(np.array([1.0, -2.0]))
    opt = SGD([p], lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.1)
    g1, g2 = np.array([0.5, 1.0]), np.array([-1.0, 2.0])
    p.grad = g1.copy()
    opt.step()
    d1 = g1 + 0.1 * np.array([1.0, -2.0])
    x1 = np.array([1.0, -2.0]) - 0.1 * d1  # first step: buffer = gradient
    np.testing.assert_allclose(p.data, x1)
    p.grad = g2.copy()
    opt.step()
    d2 = g2 + 0.1 * x1
    buf = 0.9 * d1 + 0.5 * d2
    np.testing.assert_allclose(p.data, x1 - 0.1 * buf)


def test_adam_formula_by_hand():
    p = Parameter(np.array([0.5]))
    opt = Adam([p], lr=0.1, betas=(0.9, 0.99), eps=1e-8)
    m = v = 0.0
    x = 0.5
    for t in range(1, 4):
        g = 2 * x
        p.grad = np.array([g])
        opt.step()
        m = 0.9 * m + 0.1 * g
        v = 0.99 * v + 0.01 * g * g
        x = x - 0.1 / (1 - 0.9 ** t) * m / (np.sqrt(v) / np.sqrt(1 - 0.99 ** t) + 1e-8)
        assert p.data[0] == pytest.approx(x, rel=1e-12)


@pytest.mark.parametrize("make,error,message", [
    (lambda ps: SGD(ps, lr=-0.1), ValueError, "SGD: invalid learning rate lr=-0.1 (expected >= 0)"),
    (lambda ps: SGD(ps, lr=0.1, momentum=-0.5), ValueError,
     "SGD: invalid momentum value momentum=-0.5 (expected >= 0)"),
    (lambda ps: SGD(ps, lr=0.1, weight_decay=-1), ValueError,
     "SGD: invalid weight_decay value weight_decay=-1 (expected >= 0)"),
    (lambda ps: SGD(ps, lr=0.1, nesterov=True), ValueError,
     "SGD: Nesterov momentum (nesterov=True) requires"),
    (lambda ps: SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError,
     "zero dampening"),
    (lambda ps: Adam(ps, betas=(1.0, 0.999)), ValueError,
     "Adam: invalid beta parameter at index 0: betas[0]=1.0 (expected 0 <= beta < 1)"),
    (lambda ps: Adam(ps, betas=(0.9, -0.1)), ValueError,
     "Adam: invalid beta parameter at index 1: betas[1]=-0.1"),
    (lambda ps: AdamW(ps, eps=-1e-8), ValueError,
     "AdamW: invalid epsilon value eps=-1e-08 (expected >= 0)"),
    (lambda ps: RMSprop(ps, alpha=-0.5), ValueError, "RMSprop: invalid alpha value alpha=-0.5"),
    (lambda ps: Adagrad(ps, lr_decay=-1.0), ValueError,
     "Adagrad: invalid lr_decay value lr_decay=-1.0"),
    (lambda ps: Adam(ps, lr="fast"), TypeError,
     "Adam: invalid learning rate lr='fast' (expected a real number, got str)"),
    (lambda ps: SGD([{"params": ps, "lr": -2.0}], lr=0.1), ValueError,
     "SGD: invalid learning rate lr=-2.0"),
    (lambda ps: SGD([], lr=0.1), ValueError, "SGD: optimizer got an empty parameter list"),
    (lambda ps: Adam([{"params": []}]), ValueError, "Adam: optimizer got an empty parameter list"),
    (lambda ps: SGD([ps[0], np.zeros(3)], lr=0.1), TypeError,
     "SGD: can only optimize Parameters, but params[1] is ndarray"),
    (lambda ps: SGD(ps[0], lr=0.1), TypeError, "SGD: params argument given to the optimizer"),
    (lambda ps: SGD(set(ps), lr=0.1), TypeError, "SGD: optimizer parameters need to be organized"),
    (lambda ps: SGD([{"params": ps[:2]}, {"params": ps[1:]}], lr=0.1), ValueError,
     "SGD: some parameters appear in more than one parameter group"),
    (lambda ps: Adam(ps, capturable=True), ValueError, "Adam: capturable=True is not supported"),
    (lambda ps: SGD(ps, differentiable=True), ValueError,
     "SGD: differentiable=True is not supported"),
    (lambda ps: Adam(ps, foreach=True, fused=True), ValueError,
     "Adam: fused=True and foreach=True cannot be set together"),
    (lambda ps: Adagrad(ps, fused="yes"), TypeError, "Adagrad: invalid fused='yes'"),
    (lambda ps: Adam(ps, amsgrad="no"), TypeError, "Adam: invalid amsgrad='no'"),
])
def test_bad_input(make, error, message):
    with pytest.raises(error, match=re.escape(message)):
        make(make_params())


def test_load_state_dict_rejects_mismatches():
    params = make_params()
    opt = Adam(params, lr=0.01)
    train(opt, params, 1)
    good = opt.state_dict()

    def modified(x):
        sd = opt.state_dict()
        x(sd)
        return sd

    bad_cases = [
        ({**good, "extra": 1}, "unknown \\['extra'\\]"),
        (modified(x=lambda sd: sd["state"][0].update(bogus=np.zeros(1))), "unknown state"),
        (modified(x=lambda sd: sd["state"][0].update(exp_avg=np.zeros((2, 2)))),
         "shape \\(2, 2\\), expected \\(5, 4\\)"),
        (modified(x=lambda sd: sd["param_groups"][0].update(params=[0, 1])),
         "doesn't match the size"),
        (modified(x=lambda sd: sd["param_groups"].append(dict(sd["param_groups"][0]))),
         "number of parameter groups"),
        (modified(x=lambda sd: sd["param_groups"][0].update(lr=-1.0)),
         "Adam: invalid learning rate lr=-1.0"),
        (modified(x=lambda sd: sd["state"].update({7: {}})), "parameter 7"),
    ]
    fresh = Adam(make_params(), lr=0.01)
    for bad, message in bad_cases:
        with pytest.raises(ValueError, match=message):
            fresh.load_state_dict(bad)
    fresh.load_state_dict(good)  # still loads after the rejected attempts


def test_subclassing_the_base():
    class SignSGD(Optimizer):
        def __init__(self, params, lr=0.1):
            super().__init__(params, dict(lr=lr))

        def _update_group(self, group):
            for p in self._active(group):
                p.data -= group["lr"] * np.sign(p.grad)

    p = Parameter(np.array([1.0, -1.0]))
    p.grad = np.array([3.0, -0.5])
    SignSGD([p]).step()
    np.testing.assert_allclose(p.data, [0.9, -0.9])


def test_works_with_a_real_model():
    rng = np.random.default_rng(0)
    model = handgrad.Sequential(handgrad.Linear(4, 8, rng=rng), handgrad.ReLU(),
                                handgrad.Linear(8, 1, rng=rng))
    opt = Adam(model.parameters(), lr=0.05)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        pred = model(x)
        losses.append(float(np.mean((pred - y) ** 2)))
        model.backward(2 * (pred - y) / len(x))
        opt.step()
    assert losses[-1] < 0.2 * losses[0]
    assert all(p.data.dtype == np.float32 for p in model.parameters())


@pytest.mark.parametrize("cls,kwargs", [
    (SGD, dict(lr=0.01, momentum=0.9)),
    (SGD, dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True)),
    (SGD, dict(lr=0.01, momentum=0.5, dampening=0.2, weight_decay=0.1)),
    (Adam, dict(lr=0.01)),
    (Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.1, maximize=True)),
    (AdamW, dict(lr=0.01, weight_decay=0.1)),
    (AdamW, dict(lr=0.0)),
    (RMSprop, dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.1)),
    (RMSprop, dict(lr=0.01, maximize=True)),
    (Adagrad, dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, maximize=True)),
    *ELEMENTWISE,
])
def test_flat_fast_path_equals_plain_path(cls, kwargs, monkeypatch):
    """Small tensors share flat buffers; the result must be bit-identical to the plain loop,
    also when the set of parameters with gradients changes and across a state-dict load."""
    import handgrad.optim._flat as flat_module

    def run(flat_max):
        monkeypatch.setattr(flat_module, "FLAT_MAX_SIZE", flat_max)
        params = make_params(np.float32) + make_params(np.float64, seed=5)[:1]
        opt = cls(params, **kwargs)
        for step in range(7):
            set_grads(params[:3], step, np.float32)
            set_grads(params[3:], step, np.float64)
            if step in (2, 3):
                params[1].grad = None  # changes the active set (and then its step count)
            if step == 4:
                opt.load_state_dict(opt.state_dict())
            opt.step()
        return params, opt

    flat_params, flat_opt = run(16384)
    plain_params, _ = run(0)
    assert flat_opt._flat_buckets  # the fast path was taken
    for p, q in zip(flat_params, plain_params):
        assert p.data.dtype == q.data.dtype
        np.testing.assert_array_equal(p.data, q.data)


@pytest.mark.parametrize("cls,kwargs", [
    (Adam, dict(lr=0.01)),
    (Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.1, maximize=True)),
    (AdamW, dict(lr=0.01, weight_decay=0.1, maximize=True)),
    (SGD, dict(lr=0.01)),
    (SGD, dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True)),
    (SGD, dict(lr=0.01, momentum=0.5, dampening=0.2)),
    (RMSprop, dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.1)),
    (RMSprop, dict(lr=0.01, maximize=True)),
    (Adagrad, dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, maximize=True)),
    *ELEMENTWISE,
])
def test_chunked_threaded_step_equals_plain_step(cls, kwargs, monkeypatch):
    """Chunks of large tensors and runs of small ones, shared between threads, give the
    same bits as one serial pass per tensor; also for an F-ordered (unchunkable) tensor."""
    import handgrad.optim._flat as flat_module
    from handgrad.ops import parallel

    def run(chunk, threads, flat_max):
        monkeypatch.setattr(flat_module, "CHUNK_SIZE", chunk)
        monkeypatch.setattr(flat_module, "PARALLEL_MIN_SIZE", 1)
        monkeypatch.setattr(flat_module, "FLAT_MAX_SIZE", flat_max)
        monkeypatch.setattr(parallel, "_requested", threads)
        rng = np.random.default_rng(3)
        shapes = [(40, 30), (7,), (5, 3), (300,), (2, 2), (9, 11)]
        params = [Parameter(rng.standard_normal(s).astype(np.float32)) for s in shapes]
        params.append(Parameter(np.asfortranarray(rng.standard_normal((13, 17)), np.float32)))
        opt = cls(params, **kwargs)
        for step in range(4):
            set_grads(params, step, np.float32)
            opt.step()
        return params

    plain = run(10**9, 1, 0)
    for p, q in zip(run(64, 3, 100), plain):  # chunks of 64 elements, runs of small tensors
        assert p.data.dtype == np.float32
        np.testing.assert_array_equal(p.data, q.data)
