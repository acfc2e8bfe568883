"""Bad arguments to every optimizer and scheduler: clean errors that name the class.

Each case raised, before this audit, an error from inside Python (AttributeError,
KeyError, ZeroDivisionError, "'NoneType' object is not iterable"), an error that did not
say where it came from, or nothing at all for a value that makes the learning rate
negative or infinite.
"""

from __future__ import annotations

import numpy as np
import pytest

import handgrad
from handgrad import optim
from handgrad.optim import lr_scheduler as S

OPTIMIZERS = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "NAdam", "RAdam", "Adamax",
              "Adadelta", "ASGD", "Rprop", "LBFGS"]


def params():
    return list(handgrad.Linear(3, 2).parameters())


def sgd():
    return optim.SGD(params(), lr=0.1, momentum=0.9)


def assert_names(error_type, prefix, call):
    with pytest.raises(error_type) as info:
        call()
    assert str(info.value).startswith(prefix), str(info.value)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_params_junk(name):
    cls = getattr(optim, name)
    assert_names(TypeError, name, lambda: cls(None))
    assert_names(TypeError, f"{name}: params argument should be an iterable",
                 lambda: cls(handgrad.Linear(3, 2)))  # the model instead of .parameters()
    assert_names(TypeError, name, lambda: cls("weights"))
    assert_names(TypeError, name, lambda: cls([np.zeros(3)]))
    assert_names(ValueError, name, lambda: cls([]))
    assert_names(ValueError, f"{name}: invalid learning rate", lambda: cls(params(), lr=-1.0))
    assert_names(ValueError, f"{name}: invalid learning rate",
                 lambda: cls(params(), lr=float("inf")))
    assert_names(TypeError, name, lambda: cls(params(), lr="0.1"))


@pytest.mark.parametrize("key", ["lambd", "alpha", "t0"])
def test_asgd_negative_hyperparameters(key):
    assert_names(ValueError, f"ASGD: invalid {key} value", lambda: optim.ASGD(params(),
                                                                            **{key: -1.0}))


def test_rprop_step_sizes_in_order():
    assert_names(ValueError, "Rprop: invalid step_sizes=(1.0, 0.1)",
                 lambda: optim.Rprop(params(), step_sizes=(1.0, 0.1)))
    assert_names(ValueError, "Rprop: invalid step_sizes",
                 lambda: optim.Rprop(params(), step_sizes=(-1.0, 1.0)))


SCHEDULERS = {
    "StepLR": dict(step_size=2), "MultiStepLR": dict(milestones=[2, 4]),
    "ExponentialLR": dict(gamma=0.9), "CosineAnnealingLR": dict(T_max=5),
    "LambdaLR": dict(lr_lambda=lambda e: 0.9 ** e),
    "MultiplicativeLR": dict(lr_lambda=lambda e: 0.9), "LinearLR": {}, "ConstantLR": {},
    "CyclicLR": dict(base_lr=0.01, max_lr=0.1), "PolynomialLR": {},
    "OneCycleLR": dict(max_lr=0.1, total_steps=10), "CosineAnnealingWarmRestarts": dict(T_0=3),
    "ReduceLROnPlateau": {},
}


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_scheduler_junk(name):
    cls, kwargs = getattr(S, name), SCHEDULERS[name]
    assert_names(TypeError, f"{name}: NoneType is not an Optimizer", lambda: cls(None, **kwargs))
    assert_names(TypeError, f"{name}: list is not an Optimizer", lambda: cls([1], **kwargs))
    sched = cls(sgd(), **kwargs)
    assert_names(TypeError, name, lambda: sched.load_state_dict(None))
    assert_names(TypeError, name, lambda: sched.load_state_dict([]))
    assert_names(TypeError, name, lambda: sched.step("x"))
    if name != "ReduceLROnPlateau":
        assert_names(TypeError, f"{name}: expected an integer last_epoch",
                     lambda: cls(sgd(), last_epoch="x", **kwargs))
        # resuming without initial_lr: a KeyError as in torch, also a ValueError here
        for error in (KeyError, ValueError):
            assert_names(error, f"{name}: param 'initial_lr' is not specified",
                         lambda: cls(sgd(), last_epoch=3, **kwargs))


@pytest.mark.parametrize("name,kwargs,error,message", [
    ("StepLR", dict(step_size=2, gamma="x"), TypeError, "expected a real number gamma"),
    ("StepLR", dict(step_size=2, gamma=-0.1), ValueError, "expected gamma >= 0.0"),
    ("MultiStepLR", dict(milestones=5), TypeError, "expected milestones as a list"),
    ("MultiStepLR", dict(milestones=[1.5]), TypeError, "expected an integer milestone"),
    ("ExponentialLR", dict(gamma=None), TypeError, "expected a real number gamma"),
    ("CosineAnnealingLR", dict(T_max=5, eta_min=-1.0), ValueError, "expected eta_min >= 0"),
    ("LinearLR", dict(total_iters=-1), ValueError, "expected total_iters >= 1"),
    ("LinearLR", dict(start_factor=0.0), ValueError, "starting multiplicative factor"),
    ("ConstantLR", dict(total_iters=0.5), TypeError, "expected an integer total_iters"),
    ("PolynomialLR", dict(power=-1.0), ValueError, "expected power >= 0"),
    ("PolynomialLR", dict(total_iters=0), ValueError, "expected total_iters >= 1"),
    ("CyclicLR", dict(base_lr=0.01, max_lr=-1.0), ValueError, "expected max_lr >= 0"),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, cycle_momentum="x"), TypeError,
     "expected cycle_momentum True or False"),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, mode="x"), ValueError, "mode 'x' is invalid"),
    ("OneCycleLR", dict(max_lr=0.1, total_steps=10, div_factor=0), ValueError,
     "expected div_factor > 0"),  # was a ZeroDivisionError
    ("OneCycleLR", dict(max_lr=-1.0, total_steps=10), ValueError, "expected max_lr >= 0"),
    ("CosineAnnealingWarmRestarts", dict(T_0=3, eta_min=-1.0), ValueError,
     "expected eta_min >= 0"),
    ("ReduceLROnPlateau", dict(patience=-1), ValueError, "expected patience >= 0"),
    ("ReduceLROnPlateau", dict(cooldown=-1), ValueError, "expected cooldown >= 0"),
    ("ReduceLROnPlateau", dict(min_lr=-1.0), ValueError, "expected min_lr >= 0"),
    ("ReduceLROnPlateau", dict(factor=1.5), ValueError, "factor should be < 1.0"),
])
def test_scheduler_bad_arguments(name, kwargs, error, message):
    assert_names(error, f"{name}: {message}", lambda: getattr(S, name)(sgd(), **kwargs))


def test_scheduler_steps_still_follow_torch():
    opt = sgd()
    sched = S.StepLR(opt, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    assert lrs == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    plateau = S.ReduceLROnPlateau(opt, patience=0)
    plateau.step(np.float32(1.0))
    plateau.step(np.array([2.0]))  # a one-element array, as torch's float(tensor)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0025)


def test_clip_grad_arguments():
    ps = params()
    for p in ps:
        p.grad = np.ones_like(p.data)
    assert_names(ValueError, "clip_grad_norm_: expected max_norm >= 0",
                 lambda: optim.clip_grad_norm_(ps, -1.0))  # flipped every gradient's sign
    assert np.all(ps[0].grad == 1.0)
    assert_names(TypeError, "clip_grad_norm_: expected a real number max_norm",
                 lambda: optim.clip_grad_norm_(ps, "x"))
    assert_names(TypeError, "clip_grad_norm_: expected a real number norm_type",
                 lambda: optim.clip_grad_norm_(ps, 1.0, norm_type=None))
    assert_names(TypeError, "clip_grad_norm_: expected a Parameter or an iterable",
                 lambda: optim.clip_grad_norm_(None, 1.0))
    assert_names(TypeError, "clip_grad_value_: expected Parameters",
                 lambda: optim.clip_grad_value_([np.zeros(2)], 1.0))
    assert_names(TypeError, "clip_grad_value_: expected a real number clip_value",
                 lambda: optim.clip_grad_value_(ps, None))
    total = optim.clip_grad_norm_(ps, 1.0, norm_type="inf")  # torch accepts the string too
    assert total == pytest.approx(1.0)
