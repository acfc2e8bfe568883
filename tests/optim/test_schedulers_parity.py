"""Scheduler trajectories against torch.optim.lr_scheduler (lr, momentum and parameters)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from handgrad import optim
from handgrad.optim import lr_scheduler as hs
from tests.optim.test_optimizers_parity import Twin

torch = pytest.importorskip("torch")
ts = torch.optim.lr_scheduler

RTOL = 1e-7


def _lambda(epoch):
    return 0.95 ** epoch + 0.01 * (epoch % 3)


def _mult(epoch):
    return 0.9 if epoch % 2 else 1.05


# name -> (optimizer name, optimizer kwargs, function(module, optimizer) -> scheduler, steps)
SCHEDULERS = {
    "StepLR": ("SGD", {}, lambda m, o: m.StepLR(o, step_size=3, gamma=0.5), 12),
    "MultiStepLR": ("SGD", {}, lambda m, o: m.MultiStepLR(o, [2, 5, 5, 9], gamma=0.3), 12),
    "ExponentialLR": ("Adam", {}, lambda m, o: m.ExponentialLR(o, gamma=0.8), 12),
    "CosineAnnealingLR": ("SGD", {}, lambda m, o: m.CosineAnnealingLR(o, T_max=5, eta_min=0.01),
                          24),
    "CosineAnnealingWarmRestarts": (
        "SGD", {}, lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=1e-3),
        20),
    "LambdaLR": ("Adam", {}, lambda m, o: m.LambdaLR(o, [_lambda, lambda e: 1 / (1 + e)]), 12),
    "MultiplicativeLR": ("SGD", {}, lambda m, o: m.MultiplicativeLR(o, _mult), 12),
    "LinearLR": ("SGD", {}, lambda m, o: m.LinearLR(o, start_factor=0.1, total_iters=6), 12),
    "ConstantLR": ("RMSprop", {}, lambda m, o: m.ConstantLR(o, factor=0.25, total_iters=4), 12),
    "PolynomialLR": ("SGD", {}, lambda m, o: m.PolynomialLR(o, total_iters=7, power=2.0), 12),
    "OneCycleLR-cos-sgd": ("SGD", {"momentum": 0.9},
                           lambda m, o: m.OneCycleLR(o, max_lr=[0.5, 0.2], total_steps=15), 14),
    "OneCycleLR-linear-three-adam": (
        "Adam", {}, lambda m, o: m.OneCycleLR(o, max_lr=0.3, epochs=2, steps_per_epoch=8,
                                              anneal_strategy="linear", three_phase=True,
                                              pct_start=0.25), 15),
    "OneCycleLR-no-momentum": (
        "Adagrad", {}, lambda m, o: m.OneCycleLR(o, max_lr=0.3, total_steps=12,
                                                 cycle_momentum=False, div_factor=10.0), 12),
    "CyclicLR-triangular-sgd": (
        "SGD", {"momentum": 0.9},
        lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3, step_size_down=5),
        20),
    "CyclicLR-triangular2-adam": (
        "Adam", {}, lambda m, o: m.CyclicLR(o, base_lr=[0.01, 0.02], max_lr=0.1, step_size_up=2,
                                            mode="triangular2"), 16),
    "CyclicLR-exp-range": (
        "SGD", {"momentum": 0.5},
        lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.2, step_size_up=4, mode="exp_range",
                                gamma=0.9, base_momentum=0.4, max_momentum=0.6), 16),
    "SequentialLR": (
        "SGD", {"momentum": 0.9},
        lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.2, total_iters=3),
                                        m.ExponentialLR(o, gamma=0.9),
                                        m.CosineAnnealingLR(o, T_max=4)], milestones=[3, 7]),
        14),
    "ChainedScheduler": (
        "Adam", {},
        lambda m, o: m.ChainedScheduler([m.ConstantLR(o, factor=0.5, total_iters=3),
                                         m.ExponentialLR(o, gamma=0.9),
                                         m.CosineAnnealingLR(o, T_max=6, eta_min=1e-3)]),
        14),
}


def _groups(params, lr):
    return [{"params": params[:2]}, {"params": params[2:], "lr": lr * 0.5}]


def _compare_groups(opt, topt, step):
    for g, tg in zip(opt.param_groups, topt.param_groups):
        for key in ("lr", "momentum", "betas"):
            if key in tg:
                np.testing.assert_allclose(g[key], tg[key], rtol=RTOL,
                                           err_msg=f"step {step}: {key}")


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_scheduler_matches_torch(name):
    opt_name, opt_kwargs, make, steps = SCHEDULERS[name]
    lr = 0.05
    twin = Twin(1)
    opt = getattr(optim, opt_name)(_groups(twin.params, lr), lr=lr, **opt_kwargs)
    topt = getattr(torch.optim, opt_name)(_groups(twin.tparams, lr), lr=lr, **opt_kwargs)
    sched = make(hs, opt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about the step order on construction
        tsched = make(ts, topt)
    np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=RTOL)
    _compare_groups(opt, topt, -1)
    for step in range(steps):
        twin.set_grads()
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        twin.assert_close(step)
        np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=RTOL,
                                   err_msg=f"step {step}")
        _compare_groups(opt, topt, step)


@pytest.mark.parametrize("kwargs", [
    dict(mode="min", factor=0.5, patience=2),
    dict(mode="max", factor=0.3, patience=1, threshold=0.1, threshold_mode="abs", cooldown=2),
    dict(mode="min", factor=0.5, patience=0, cooldown=1, min_lr=[0.01, 0.004]),
    dict(mode="max", patience=1, threshold_mode="rel", threshold=0.05, eps=1e-3),
])
def test_reduce_on_plateau_matches_torch(kwargs):
    rng = np.random.default_rng(7)
    metrics = np.concatenate([np.linspace(1.0, 0.8, 4), 0.8 + 0.01 * rng.standard_normal(16),
                              np.linspace(0.8, 1.2, 5)])
    twin = Twin(2)
    opt = optim.SGD(_groups(twin.params, 0.1), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(_groups(twin.tparams, 0.1), lr=0.1, momentum=0.9)
    sched = hs.ReduceLROnPlateau(opt, **kwargs)
    tsched = ts.ReduceLROnPlateau(topt, **kwargs)
    for step, metric in enumerate(metrics):
        twin.set_grads()
        opt.step()
        topt.step()
        sched.step(float(metric))
        tsched.step(float(metric))
        twin.assert_close(step)
        np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=RTOL)
        assert sched.num_bad_epochs == tsched.num_bad_epochs
        assert sched.cooldown_counter == tsched.cooldown_counter


@pytest.mark.parametrize("name", ["StepLR", "CosineAnnealingLR", "OneCycleLR-cos-sgd",
                                  "CyclicLR-exp-range", "SequentialLR", "ChainedScheduler"])
def test_state_dict_resume_matches_torch(name):
    """A scheduler rebuilt from its state dict mid-run continues torch's trajectory."""
    opt_name, opt_kwargs, make, steps = SCHEDULERS[name]
    twin = Twin(4)
    opt = getattr(optim, opt_name)(_groups(twin.params, 0.05), lr=0.05, **opt_kwargs)
    topt = getattr(torch.optim, opt_name)(_groups(twin.tparams, 0.05), lr=0.05, **opt_kwargs)
    sched = make(hs, opt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tsched = make(ts, topt)
    topt.step()  # no gradients: only marks the optimizer as stepped for torch's order check
    for _ in range(steps // 2):
        sched.step()
        tsched.step()
    saved = json.loads(json.dumps(sched.state_dict()))  # checkpoints store it as JSON
    opt2 = getattr(optim, opt_name)(_groups(twin.params, 0.05), lr=0.05, **opt_kwargs)
    opt2.load_state_dict(opt.state_dict())
    sched2 = make(hs, opt2)
    sched2.load_state_dict(saved)
    opt2.load_state_dict(opt.state_dict())
    for step in range(steps - steps // 2):
        sched2.step()
        tsched.step()
        np.testing.assert_allclose(sched2.get_last_lr(), tsched.get_last_lr(), rtol=RTOL,
                                   err_msg=f"step {step}")
