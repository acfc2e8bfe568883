"""NAdam, RAdam, Adamax, Adadelta, ASGD, Rprop and LBFGS against torch.optim (float64,
compared after every step), and every flag combination torch allows on the older ones."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import handgrad
from handgrad import optim

torch = pytest.importorskip("torch")

from .test_optimizers_parity import ATOL, RTOL, run_pair  # noqa: E402


@pytest.fixture(autouse=True)
def torch_float64_scalars():
    """torch keeps scalar state (NAdam's mu_product, ASGD's eta and mu, the step count) in
    its default dtype; handgrad keeps Python floats. Comparing digits needs float64."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


CASES = [
    ("NAdam", dict()),
    ("NAdam", dict(lr=0.05, betas=(0.3, 0.9), momentum_decay=0.01, weight_decay=0.1)),
    ("NAdam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", dict()),
    ("RAdam", dict(lr=0.05, betas=(0.5, 0.5), weight_decay=0.1, maximize=True)),
    ("RAdam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True)),
    ("Adamax", dict()),
    ("Adamax", dict(lr=0.05, betas=(0.2, 0.9), eps=1e-3, weight_decay=0.1, maximize=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.5, eps=1e-4, weight_decay=0.1, maximize=True)),
    ("ASGD", dict()),
    ("ASGD", dict(lr=0.05, lambd=0.1, alpha=0.5, t0=3, weight_decay=0.1, maximize=True)),
    ("Rprop", dict()),
    ("Rprop", dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-3, 0.2), maximize=True)),
]


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
@pytest.mark.parametrize("groups", [False, True])
def test_trajectory_matches_torch(name, kwargs, groups):
    run_pair(name, kwargs, steps=15, groups=groups)


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_state_and_groups_match_torch(name, kwargs):
    """Same state names and values, same param_groups keys and values as torch's."""
    opt, topt = run_pair(name, kwargs, steps=5)
    ours, theirs = opt.state_dict(), topt.state_dict()
    assert set(ours["state"]) == set(theirs["state"])
    for index, values in theirs["state"].items():
        assert set(ours["state"][index]) == set(values)
        for key, value in values.items():
            np.testing.assert_allclose(ours["state"][index][key], value.numpy(), rtol=RTOL,
                                       atol=ATOL, err_msg=key)
    for g, tg in zip(ours["param_groups"], theirs["param_groups"]):
        assert set(g) == set(tg)
        for key in g:
            assert g[key] == tg[key], key


def test_defaults_match_torch():
    p = [handgrad.Parameter(np.zeros(2))]
    tp = [torch.nn.Parameter(torch.zeros(2))]
    for name in ["NAdam", "RAdam", "Adamax", "Adadelta", "ASGD", "Rprop", "LBFGS", "Adam",
                 "AdamW", "SGD", "RMSprop", "Adagrad"]:
        ours = {k: v for k, v in getattr(optim, name)(p).param_groups[0].items() if k != "params"}
        theirs = {k: v for k, v in getattr(torch.optim, name)(tp).param_groups[0].items()
                  if k != "params"}
        assert ours == theirs, name


betas = st.tuples(st.floats(0.0, 0.95), st.floats(0.5, 0.999))
weight_decays = st.sampled_from([0.0, 0.01, 0.3])


@given(lr=st.floats(1e-4, 0.1), betas=betas, eps=st.sampled_from([1e-8, 1e-4]),
       weight_decay=weight_decays, momentum_decay=st.sampled_from([0.0, 4e-3, 0.1]),
       decoupled=st.booleans(), maximize=st.booleans())
def test_nadam_random_hyperparameters(lr, betas, eps, weight_decay, momentum_decay, decoupled,
                                      maximize):
    run_pair("NAdam", dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                           momentum_decay=momentum_decay, decoupled_weight_decay=decoupled,
                           maximize=maximize), steps=10)


@given(lr=st.floats(1e-4, 0.1), betas=betas, eps=st.sampled_from([1e-8, 1e-4]),
       weight_decay=weight_decays, decoupled=st.booleans(), maximize=st.booleans())
def test_radam_random_hyperparameters(lr, betas, eps, weight_decay, decoupled, maximize):
    # betas[1] down to 0.5 makes rho_t cross 5 within the 10 steps (both branches run)
    run_pair("RAdam", dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                           decoupled_weight_decay=decoupled, maximize=maximize), steps=10)


@given(lr=st.floats(1e-4, 0.1), betas=betas, eps=st.sampled_from([1e-8, 1e-2]),
       weight_decay=weight_decays, maximize=st.booleans())
def test_adamax_random_hyperparameters(lr, betas, eps, weight_decay, maximize):
    run_pair("Adamax", dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                            maximize=maximize), steps=10)


@given(lr=st.floats(1e-3, 2.0), rho=st.floats(0.0, 1.0), eps=st.sampled_from([1e-6, 1e-3]),
       weight_decay=weight_decays, maximize=st.booleans())
def test_adadelta_random_hyperparameters(lr, rho, eps, weight_decay, maximize):
    run_pair("Adadelta", dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                              maximize=maximize), steps=10)


@given(lr=st.floats(1e-4, 0.1), lambd=st.sampled_from([0.0, 1e-4, 0.1]),
       alpha=st.floats(0.1, 1.0), t0=st.sampled_from([0.0, 3.0, 1e6]),
       weight_decay=weight_decays, maximize=st.booleans())
def test_asgd_random_hyperparameters(lr, lambd, alpha, t0, weight_decay, maximize):
    opt, topt = run_pair("ASGD", dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0,
                                      weight_decay=weight_decay, maximize=maximize), steps=10)
    for p, tp in zip(opt.param_groups[0]["params"], topt.param_groups[0]["params"]):
        np.testing.assert_allclose(opt.state[p]["ax"], topt.state[tp]["ax"].numpy(),
                                   rtol=RTOL, atol=ATOL)


@given(lr=st.floats(1e-4, 0.2), etaminus=st.floats(0.1, 0.9), etaplus=st.floats(1.1, 2.0),
       size_min=st.sampled_from([1e-6, 1e-2]), size_max=st.sampled_from([0.05, 50.0]),
       maximize=st.booleans())
def test_rprop_random_hyperparameters(lr, etaminus, etaplus, size_min, size_max, maximize):
    run_pair("Rprop", dict(lr=lr, etas=(etaminus, etaplus), step_sizes=(size_min, size_max),
                           maximize=maximize), steps=10)


# ------------------------------------------------ Adam, AdamW, SGD, RMSprop, Adagrad
def _combinations(**choices):
    keys = list(choices)
    return [dict(zip(keys, values)) for values in itertools.product(*choices.values())]


FLAG_CASES = (
    [("Adam", dict(lr=0.05, **kw)) for kw in _combinations(
        amsgrad=[False, True], maximize=[False, True], weight_decay=[0.0, 0.1],
        decoupled_weight_decay=[False, True])]
    + [("AdamW", dict(lr=0.05, **kw)) for kw in _combinations(
        amsgrad=[False, True], maximize=[False, True], weight_decay=[0.0, 0.1])]
    + [("SGD", dict(lr=0.05, **kw)) for kw in _combinations(
        momentum=[0.0, 0.9], dampening=[0.0, 0.3], nesterov=[False, True],
        maximize=[False, True], weight_decay=[0.0, 0.1])
       if not kw["nesterov"] or (kw["momentum"] > 0 and kw["dampening"] == 0)]
    + [("RMSprop", dict(lr=0.01, **kw)) for kw in _combinations(
        momentum=[0.0, 0.5], centered=[False, True], maximize=[False, True],
        weight_decay=[0.0, 0.1])]
    + [("Adagrad", dict(lr=0.1, **kw)) for kw in _combinations(
        lr_decay=[0.0, 0.05], maximize=[False, True], weight_decay=[0.0, 0.1])]
)


@pytest.mark.parametrize("name,kwargs", FLAG_CASES,
                         ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items() if k != 'lr')}"
                              for n, kw in FLAG_CASES])
def test_every_flag_combination_matches_torch(name, kwargs):
    run_pair(name, kwargs, steps=8)


# ------------------------------------------------------------------------- LBFGS
def rosenbrock(x):
    """The Rosenbrock function of a vector and its gradient."""
    a, b = x[:-1], x[1:]
    f = float(np.sum(100.0 * (b - a * a) ** 2 + (1.0 - a) ** 2))
    g = np.zeros_like(x)
    g[:-1] = -400.0 * a * (b - a * a) - 2.0 * (1.0 - a)
    g[1:] += 200.0 * (b - a * a)
    return f, g


def least_squares(A, y):
    def objective(x):
        r = A @ x - y
        return 0.5 * float(r @ r), A.T @ r
    return objective


def lbfgs_pair(objective, x0, steps, **kwargs):
    """Run handgrad's and torch's LBFGS on the same objective (the same NumPy function
    gives both their losses and gradients, so only the optimizers can differ)."""
    p = handgrad.Parameter(x0.copy())
    tp = torch.nn.Parameter(torch.tensor(x0))
    opt = optim.LBFGS([p], **kwargs)
    topt = torch.optim.LBFGS([tp], **kwargs)

    def closure():
        p.grad = None
        f, g = objective(p.data)
        p.grad = g
        return f

    def tclosure():
        f, g = objective(tp.detach().numpy().copy())
        tp.grad = torch.tensor(g)
        return f

    for step in range(steps):
        assert opt.step(closure) == pytest.approx(topt.step(tclosure), rel=1e-10)
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=RTOL, atol=ATOL,
                                   err_msg=f"step {step}")
        ours, theirs = opt.state[p], topt.state[tp]
        assert ours["func_evals"] == theirs["func_evals"]
        assert ours["n_iter"] == theirs["n_iter"]
        assert len(ours["old_dirs"]) == len(theirs["old_dirs"])
    return p, opt


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
@pytest.mark.parametrize("history_size", [100, 3])
def test_lbfgs_rosenbrock_matches_torch(line_search_fn, history_size):
    lr = 1.0 if line_search_fn else 0.1
    p, _ = lbfgs_pair(rosenbrock, np.array([-1.2, 1.0, -0.5, 0.8]), 4, lr=lr, max_iter=10,
                      history_size=history_size, line_search_fn=line_search_fn)
    assert rosenbrock(p.data)[0] < 5.0  # from 281.7


@given(n=st.integers(2, 5), seed=st.integers(0, 100),
       line_search_fn=st.sampled_from([None, "strong_wolfe"]),
       history_size=st.sampled_from([2, 10]), max_iter=st.sampled_from([3, 6]))
def test_lbfgs_least_squares_matches_torch(n, seed, line_search_fn, history_size, max_iter):
    """A well-conditioned least-squares problem, compared while it is still converging
    (once the gradient is at rounding level, the two dot-product orders part ways)."""
    rng = np.random.default_rng(seed)
    A, y = rng.standard_normal((4 * n, n)), rng.standard_normal(4 * n)
    lr = 1.0 if line_search_fn else 0.3
    lbfgs_pair(least_squares(A, y), rng.standard_normal(n), 2, lr=lr, max_iter=max_iter,
               history_size=history_size, line_search_fn=line_search_fn)


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_solves_least_squares(line_search_fn):
    rng = np.random.default_rng(0)
    A, y = rng.standard_normal((12, 4)), rng.standard_normal(12)
    objective = least_squares(A, y)
    p = handgrad.Parameter(np.zeros(4))
    opt = optim.LBFGS([p], lr=1.0 if line_search_fn else 0.5, max_iter=100,
                      tolerance_grad=1e-10, tolerance_change=1e-14,
                      line_search_fn=line_search_fn)

    def closure():
        f, p.grad = objective(p.data)
        return f

    opt.step(closure)
    np.testing.assert_allclose(p.data, np.linalg.lstsq(A, y, rcond=None)[0], atol=1e-6)
