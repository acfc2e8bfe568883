"""Optimizer trajectories against torch.optim (float64, compared after every step)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import handgrad
from handgrad import optim

torch = pytest.importorskip("torch")

RTOL = 1e-7
ATOL = 1e-12
SHAPES = [(4, 3), (3,), (2, 2, 2)]

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.3, weight_decay=0.1, maximize=True)),
    ("SGD", dict(lr=0.1, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.05, amsgrad=True, maximize=True)),
    ("Adam", dict(lr=0.05, amsgrad=True, weight_decay=0.05, betas=(0.3, 0.5))),
    ("AdamW", dict(lr=0.05)),
    ("AdamW", dict(lr=0.05, weight_decay=0.1, amsgrad=True, maximize=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True)),
    ("RMSprop", dict(lr=0.01, weight_decay=0.1, centered=True, maximize=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, eps=1e-4, weight_decay=0.01)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1,
                     initial_accumulator_value=0.1, eps=1e-8)),
    ("Adagrad", dict(lr=0.1, maximize=True)),
]


class Twin:
    """The same parameters in handgrad and torch, with a quadratic objective.

    f(p) = sum(0.5 * a * (p - c) ** 2) + noise . p, whose gradient depends on the current
    parameters (so a wrong update changes later gradients too) plus a fixed per-step noise.
    """

    def __init__(self, seed: int, shapes=SHAPES):
        rng = np.random.default_rng(seed)
        self.rng = rng
        inits = [rng.standard_normal(s) for s in shapes]
        self.curv = [rng.uniform(0.5, 2.0, s) for s in shapes]
        self.center = [rng.standard_normal(s) for s in shapes]
        self.params = [handgrad.Parameter(x, name=f"p{i}") for i, x in enumerate(inits)]
        self.tparams = [torch.nn.Parameter(torch.tensor(x)) for x in inits]

    def set_grads(self, skip: int | None = None) -> None:
        for i, (p, tp) in enumerate(zip(self.params, self.tparams)):
            noise = self.rng.standard_normal(p.shape)
            if i == skip:
                p.grad, tp.grad = None, None
                continue
            p.grad = self.curv[i] * (p.data - self.center[i]) + noise
            tp.grad = (torch.tensor(self.curv[i]) * (tp.detach() - torch.tensor(self.center[i]))
                       + torch.tensor(noise))

    def assert_close(self, step: int) -> None:
        for p, tp in zip(self.params, self.tparams):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=RTOL, atol=ATOL,
                                       err_msg=f"step {step}, {p.name}")


def run_pair(name, kwargs, steps=12, seed=0, groups=False):
    twin = Twin(seed)
    if groups:
        extra = dict(lr=kwargs.get("lr", 0.01) * 0.5)
        hg_params = [{"params": twin.params[:2]}, {"params": twin.params[2:], **extra}]
        t_params = [{"params": twin.tparams[:2]}, {"params": twin.tparams[2:], **extra}]
    else:
        hg_params, t_params = twin.params, twin.tparams
    opt = getattr(optim, name)(hg_params, **kwargs)
    topt = getattr(torch.optim, name)(t_params, **kwargs)
    for step in range(steps):
        # parameter 1 has no gradient on every third step: both must skip it
        twin.set_grads(skip=1 if step % 3 == 2 else None)
        opt.step()
        topt.step()
        twin.assert_close(step)
    return opt, topt


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{sorted(k)}" for n, k in CASES])
def test_trajectory_matches_torch(name, kwargs):
    run_pair(name, kwargs)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_param_groups_match_torch(name):
    kwargs = dict(lr=0.02, momentum=0.9) if name in ("SGD", "RMSprop") else dict(lr=0.02)
    run_pair(name, kwargs, groups=True)


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "Adagrad"])
def test_state_matches_torch(name):
    kwargs = dict(lr=0.02, momentum=0.9) if name in ("SGD", "RMSprop") else dict(lr=0.02)
    opt, topt = run_pair(name, kwargs, steps=5)
    ours, theirs = opt.state_dict(), topt.state_dict()
    assert set(ours["state"]) == set(theirs["state"])
    for index, values in theirs["state"].items():
        assert set(ours["state"][index]) == set(values)
        for key, value in values.items():
            np.testing.assert_allclose(ours["state"][index][key], value.numpy(), rtol=RTOL,
                                       atol=ATOL)
    for g, tg in zip(ours["param_groups"], theirs["param_groups"]):
        assert g["params"] == tg["params"]
        for key in g:
            assert g[key] == tg[key], key


@given(
    lr=st.floats(1e-4, 0.2), beta1=st.floats(0.0, 0.99), beta2=st.floats(0.5, 0.9999),
    eps=st.sampled_from([1e-8, 1e-6, 1e-3]), weight_decay=st.sampled_from([0.0, 0.01, 0.3]),
    amsgrad=st.booleans(), maximize=st.booleans(), decoupled=st.booleans(),
)
def test_adam_random_hyperparameters(lr, beta1, beta2, eps, weight_decay, amsgrad, maximize,
                                     decoupled):
    run_pair("AdamW" if decoupled else "Adam",
             dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay,
                  amsgrad=amsgrad, maximize=maximize), steps=10)


@given(
    lr=st.floats(1e-4, 0.2), momentum=st.sampled_from([0.0, 0.5, 0.9]),
    dampening=st.sampled_from([0.0, 0.1]), weight_decay=st.sampled_from([0.0, 0.01]),
    nesterov=st.booleans(), maximize=st.booleans(),
)
def test_sgd_random_hyperparameters(lr, momentum, dampening, weight_decay, nesterov, maximize):
    if nesterov and (momentum == 0 or dampening != 0):
        nesterov = False
    run_pair("SGD", dict(lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=nesterov, maximize=maximize),
             steps=10)


def test_clip_then_step_matches_torch():
    twin = Twin(3)
    opt = optim.SGD(twin.params, lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(twin.tparams, lr=0.1, momentum=0.9)
    for step in range(10):
        twin.set_grads()
        norm = optim.clip_grad_norm_(twin.params, max_norm=1.0)
        tnorm = torch.nn.utils.clip_grad_norm_(twin.tparams, max_norm=1.0)
        assert norm == pytest.approx(float(tnorm), rel=1e-12)
        opt.step()
        topt.step()
        twin.assert_close(step)


@pytest.mark.parametrize("name,kwargs,schedule", [
    ("Adam", dict(lr=0.01, weight_decay=0.01), lambda m, o: m.OneCycleLR(o, 0.05, total_steps=12)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True),
     lambda m, o: m.CosineAnnealingLR(o, T_max=5)),
    ("RMSprop", dict(lr=0.005, centered=True), lambda m, o: m.StepLR(o, 3, gamma=0.5)),
])
def test_mlp_training_matches_torch(name, kwargs, schedule):
    """A real handgrad model (Linear/Tanh/Linear, MSE) trained next to the same torch MLP."""
    from handgrad.losses import MSELoss
    from handgrad.optim import lr_scheduler

    rng = np.random.default_rng(11)
    model = handgrad.Sequential(handgrad.Linear(5, 7, rng=rng), handgrad.Tanh(),
                                handgrad.Linear(7, 2, rng=rng)).double()
    tmodel = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(),
                                 torch.nn.Linear(7, 2)).double()
    tmodel.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    opt = getattr(optim, name)(model.parameters(), **kwargs)
    topt = getattr(torch.optim, name)(tmodel.parameters(), **kwargs)
    sched = schedule(lr_scheduler, opt)
    tsched = schedule(torch.optim.lr_scheduler, topt)
    criterion = MSELoss()
    for step in range(12):
        x = rng.standard_normal((16, 5))
        y = rng.standard_normal((16, 2))
        opt.zero_grad()
        topt.zero_grad()
        loss = criterion(model(x), y)
        model.backward(criterion.backward())
        tloss = torch.nn.functional.mse_loss(tmodel(torch.tensor(x)), torch.tensor(y))
        tloss.backward()
        assert loss == pytest.approx(tloss.item(), rel=RTOL)
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        for (pname, p), tp in zip(model.named_parameters(), tmodel.parameters()):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=RTOL, atol=ATOL,
                                       err_msg=f"step {step}: {pname}")
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=RTOL)


@given(
    lr=st.floats(1e-4, 0.05), alpha=st.floats(0.5, 0.999), eps=st.sampled_from([1e-8, 1e-4]),
    weight_decay=st.sampled_from([0.0, 0.05]), momentum=st.sampled_from([0.0, 0.7]),
    centered=st.booleans(), maximize=st.booleans(),
)
def test_rmsprop_random_hyperparameters(lr, alpha, eps, weight_decay, momentum, centered,
                                        maximize):
    run_pair("RMSprop", dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                             momentum=momentum, centered=centered, maximize=maximize), steps=10)


@given(
    lr=st.floats(1e-4, 0.5), lr_decay=st.sampled_from([0.0, 0.1]),
    weight_decay=st.sampled_from([0.0, 0.05]),
    initial_accumulator_value=st.sampled_from([0.0, 0.5]), maximize=st.booleans(),
)
def test_adagrad_random_hyperparameters(lr, lr_decay, weight_decay, initial_accumulator_value,
                                        maximize):
    run_pair("Adagrad", dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                             initial_accumulator_value=initial_accumulator_value,
                             maximize=maximize), steps=10)
