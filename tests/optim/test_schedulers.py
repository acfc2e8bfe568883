"""Each scheduler's learning-rate sequence against its closed form (no torch needed)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import handgrad
from handgrad.optim import SGD, Adam
from handgrad.optim import lr_scheduler as S

BASE = 0.1


def make_opt(lr=BASE, cls=SGD, **kwargs):
    return cls([handgrad.Parameter(np.zeros(3))], lr=lr, **kwargs)


def lrs_of(sched, steps):
    """lr at epochs 0..steps (construction gives epoch 0)."""
    out = [sched.get_last_lr()[0]]
    for _ in range(steps):
        sched.optimizer.step()
        sched.step()
        out.append(sched.get_last_lr()[0])
        assert sched.optimizer.param_groups[0]["lr"] == out[-1]
    return np.array(out)


def cosine(base, eta_min, t, period):
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / period)) / 2


CLOSED_FORMS = {
    "StepLR": (lambda o: S.StepLR(o, step_size=4, gamma=0.5),
               lambda t: BASE * 0.5 ** (t // 4)),
    "MultiStepLR": (lambda o: S.MultiStepLR(o, milestones=[3, 7, 7], gamma=0.1),
                    lambda t: BASE * 0.1 ** ((t >= 3) + 2 * (t >= 7))),
    "ExponentialLR": (lambda o: S.ExponentialLR(o, gamma=0.9), lambda t: BASE * 0.9 ** t),
    "CosineAnnealingLR": (lambda o: S.CosineAnnealingLR(o, T_max=6, eta_min=0.01),
                          lambda t: cosine(BASE, 0.01, t, 6)),
    "LambdaLR": (lambda o: S.LambdaLR(o, lambda e: 1.0 / (1 + e)), lambda t: BASE / (1 + t)),
    "MultiplicativeLR": (lambda o: S.MultiplicativeLR(o, lambda e: 0.9),
                         lambda t: BASE * 0.9 ** t),
    "LinearLR": (lambda o: S.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=4),
                 lambda t: BASE * (0.25 + 0.75 * min(t, 4) / 4)),
    "ConstantLR": (lambda o: S.ConstantLR(o, factor=0.5, total_iters=3),
                   lambda t: BASE * (0.5 if t < 3 else 1.0)),
    "PolynomialLR": (lambda o: S.PolynomialLR(o, total_iters=5, power=2.0),
                     lambda t: BASE * (1 - min(t, 5) / 5) ** 2),
    "CosineAnnealingWarmRestarts": (
        lambda o: S.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2, eta_min=0.0),
        # restarts at 2, 2+4=6, 6+8=14
        lambda t: cosine(BASE, 0.0, *((t, 2) if t < 2 else (t - 2, 4) if t < 6
                                      else (t - 6, 8) if t < 14 else (t - 14, 16)))),
    "CyclicLR": (
        lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.05, step_size_up=3),
        lambda t: 0.01 + 0.04 * max(0.0, 1 - abs(t / 3 - 2 * math.floor(1 + t / 6) + 1))),
    "CyclicLR-triangular2": (
        lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.05, step_size_up=2, mode="triangular2"),
        lambda t: 0.01 + 0.04 * max(0.0, 1 - abs(t / 2 - 2 * math.floor(1 + t / 4) + 1))
        / 2 ** (math.floor(1 + t / 4) - 1)),
    "OneCycleLR": (
        lambda o: S.OneCycleLR(o, max_lr=1.0, total_steps=11, pct_start=0.5,
                               anneal_strategy="linear", div_factor=10.0,
                               final_div_factor=100.0),
        # 0.1 -> 1.0 over steps 0..4.5, then -> 0.001 over 4.5..10
        lambda t: 0.1 + 0.9 * t / 4.5 if t <= 4.5 else 1.0 + (0.001 - 1.0) * (t - 4.5) / 5.5),
    "SequentialLR": (
        lambda o: S.SequentialLR(o, [S.ConstantLR(o, factor=0.5, total_iters=10),
                                     S.ExponentialLR(o, gamma=0.5)], milestones=[3]),
        lambda t: BASE * 0.5 if t < 3 else BASE * 0.5 ** (t - 3)),
    "ChainedScheduler": (
        lambda o: S.ChainedScheduler([S.ConstantLR(o, factor=0.5, total_iters=3),
                                      S.ExponentialLR(o, gamma=0.9)]),
        lambda t: BASE * 0.9 ** t * (0.5 if t < 3 else 1.0)),
}


@pytest.mark.parametrize("name", list(CLOSED_FORMS))
def test_lr_sequence_matches_closed_form(name):
    make, closed = CLOSED_FORMS[name]
    steps = 10 if name == "OneCycleLR" else 20
    got = lrs_of(make(make_opt()), steps)
    expected = np.array([closed(t) for t in range(steps + 1)])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
                                  "LinearLR", "ConstantLR", "PolynomialLR"])
def test_step_with_epoch_uses_closed_form(name):
    make, closed = CLOSED_FORMS[name]
    sched = make(make_opt())
    for epoch in [5, 2, 11, 0]:
        sched.step(epoch)
        assert sched.last_epoch == epoch
        assert sched.get_last_lr()[0] == pytest.approx(closed(epoch), rel=1e-12)


@pytest.mark.parametrize("name", list(CLOSED_FORMS))
def test_state_dict_is_json_and_resumes(name):
    make, closed = CLOSED_FORMS[name]
    opt = make_opt()
    sched = make(opt)
    lrs_of(sched, 4)
    saved = json.loads(json.dumps(sched.state_dict()))
    opt2 = make_opt()
    sched2 = make(opt2)
    sched2.load_state_dict(saved)
    opt2.load_state_dict(json.loads(json.dumps(opt.state_dict())))
    np.testing.assert_allclose(lrs_of(sched2, 5)[1:], [closed(t) for t in range(5, 10)],
                               rtol=1e-12)


def test_construction_performs_first_step_and_records_initial_lr():
    opt = make_opt(lr=0.2)
    sched = S.LinearLR(opt, start_factor=0.5, total_iters=2)
    assert sched.last_epoch == 0
    assert opt.param_groups[0]["initial_lr"] == 0.2
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    assert sched.base_lrs == [0.2]
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(make_opt(), step_size=2, last_epoch=3)


def test_per_group_lambdas():
    p, q = handgrad.Parameter(np.zeros(2)), handgrad.Parameter(np.zeros(2))
    opt = SGD([{"params": [p]}, {"params": [q], "lr": 1.0}], lr=0.1)
    sched = S.LambdaLR(opt, [lambda e: 0.5 ** e, lambda e: e + 1])
    sched.step()
    assert sched.get_last_lr() == pytest.approx([0.05, 2.0])
    with pytest.raises(ValueError, match="LambdaLR: expected 2 lr_lambdas, but got 1"):
        S.LambdaLR(opt, [lambda e: 1.0])
    assert sched.state_dict()["lr_lambdas"] == [None, None]


def test_one_cycle_cycles_momentum_and_beta1():
    opt = make_opt(momentum=0.9)
    sched = S.OneCycleLR(opt, max_lr=0.5, total_steps=10, base_momentum=0.8, max_momentum=0.9)
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.9)  # max while lr is lowest
    momenta = [opt.param_groups[0]["momentum"]]
    for _ in range(9):
        sched.step()
        momenta.append(opt.param_groups[0]["momentum"])
    assert min(momenta) == pytest.approx(0.8, abs=0.02)
    assert momenta[-1] == pytest.approx(0.9)
    with pytest.raises(ValueError, match="Tried to step 11 times"):
        sched.step()
        sched.step()
    adam = make_opt(cls=Adam)
    S.OneCycleLR(adam, max_lr=0.5, total_steps=10)
    assert adam.param_groups[0]["betas"] == (0.95, 0.999)


def test_reduce_on_plateau_sequence():
    opt = make_opt(lr=1.0)
    sched = S.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=1, cooldown=1,
                                min_lr=0.2)
    metrics = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]
    expected = [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2]
    got = []
    for metric in metrics:
        sched.step(metric)
        got.append(sched.get_last_lr()[0])
    np.testing.assert_allclose(got, expected)
    assert sched.best == 0.9
    state = json.loads(json.dumps(sched.state_dict()))
    sched2 = S.ReduceLROnPlateau(make_opt(lr=1.0))
    sched2.load_state_dict(state)
    assert sched2.best == 0.9 and sched2.min_lrs == [0.2]


@pytest.mark.parametrize("make,message", [
    (lambda o: S.ConstantLR(o, factor=1.5), "between 0 and 1, got 1.5"),
    (lambda o: S.LinearLR(o, start_factor=0.0), "got 0.0"),
    (lambda o: S.StepLR(o, step_size=0), "step_size, got 0"),
    (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=0), "T_0, but got 0"),
    (lambda o: S.OneCycleLR(o, max_lr=0.1), "total_steps OR"),
    (lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=10, pct_start=1.5), "got 1.5"),
    (lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=10, anneal_strategy="cosine"),
     "instead got cosine"),
    (lambda o: S.CyclicLR(o, 0.1, 1.0, mode="sawtooth"), "'sawtooth' is invalid"),
    (lambda o: S.ReduceLROnPlateau(o, factor=1.0), "got 1.0"),
    (lambda o: S.ReduceLROnPlateau(o, mode="up"), "'up' is unknown"),
    (lambda o: S.MultiStepLR(o, [2]).load_state_dict({"gamma": 0.1, "bogus": 1}), "bogus"),
    (lambda o: S.SequentialLR(o, [S.StepLR(o, 2), S.StepLR(o, 3)], milestones=[]),
     "number of milestones"),
])
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make(make_opt())


def test_scheduler_needs_an_optimizer_and_momentum():
    with pytest.raises(TypeError, match="is not an Optimizer"):
        S.StepLR(object(), step_size=2)
    opt = handgrad.optim.Adagrad([handgrad.Parameter(np.zeros(2))])
    with pytest.raises(ValueError, match="momentum or beta1"):
        S.CyclicLR(opt, 0.1, 1.0)
    other = make_opt()
    with pytest.raises(ValueError, match="same optimizer"):
        S.ChainedScheduler([S.StepLR(make_opt(), 2), S.StepLR(other, 2)])
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        S.ChainedScheduler([S.ReduceLROnPlateau(other)])
