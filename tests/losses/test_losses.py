"""Losses: hypothesis gradient checks for every loss and reduction, and bad-input messages."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handgrad.losses import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)

REDUCTIONS = ["mean", "sum", "none"]
shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)
class_shapes = st.tuples(st.integers(1, 4), st.integers(2, 5)).flatmap(
    lambda nc: st.lists(st.integers(1, 3), max_size=2).map(lambda d: nc + tuple(d))
)
seeds = st.integers(0, 2**32 - 1)


def _away_from(diff: np.ndarray, points, margin: float = 0.05) -> np.ndarray:
    """Move ``diff`` off the kinks at ``+-points`` (and 0) of piecewise losses."""
    diff = diff.copy()
    for p in points:
        for sign in (1, -1):
            near = np.abs(diff - sign * p) < margin
            diff[near] = sign * p + margin * np.where(diff[near] >= sign * p, 1, -1)
    return diff


def _class_targets(rng, shape, ignore_index=None):
    n, c = shape[0], shape[1]
    target = rng.integers(0, c, size=(n,) + shape[2:])
    if ignore_index is not None and target.size > 1:
        target.flat[0] = ignore_index
    return target


# ---------------------------------------------------------------- gradient checks

@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(shape=shapes, seed=seeds, which=st.sampled_from(["mse", "l1", "huber", "smoothl1"]),
       width=st.sampled_from([0.5, 1.0, 2.0]))
def test_regression_gradients(check_gradients, reduction, shape, seed, which, width):
    rng = np.random.default_rng(seed)
    loss = {"mse": MSELoss(reduction=reduction), "l1": L1Loss(reduction=reduction),
            "huber": HuberLoss(reduction, delta=width),
            "smoothl1": SmoothL1Loss(reduction=reduction, beta=width)}[which]
    target = rng.standard_normal(shape)
    diff = _away_from(rng.uniform(-3, 3, shape), [0.0, width])
    check_gradients(loss, target + diff, target)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_smooth_l1_beta_zero_is_l1(check_gradients, reduction):
    rng = np.random.default_rng(3)
    pred, target = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    a, b = SmoothL1Loss(reduction=reduction, beta=0.0), L1Loss(reduction=reduction)
    np.testing.assert_allclose(a(pred, target), b(pred, target))
    np.testing.assert_allclose(a.backward(), b.backward())
    check_gradients(a, pred, target)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(shape=class_shapes, seed=seeds, smoothing=st.sampled_from([0.0, 0.1, 0.5]),
       weighted=st.booleans(), ignore=st.booleans())
def test_cross_entropy_gradients(check_gradients, reduction, shape, seed, smoothing, weighted,
                                 ignore):
    rng = np.random.default_rng(seed)
    weight = rng.uniform(0.5, 2.0, shape[1]) if weighted else None
    loss = CrossEntropyLoss(weight, ignore_index=-1, reduction=reduction,
                            label_smoothing=smoothing)
    target = _class_targets(rng, shape, -1 if ignore else None)
    check_gradients(loss, rng.standard_normal(shape) * 2, target)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(shape=class_shapes, seed=seeds, smoothing=st.sampled_from([0.0, 0.2]),
       weighted=st.booleans())
def test_cross_entropy_probability_target_gradients(check_gradients, reduction, shape, seed,
                                                    smoothing, weighted):
    rng = np.random.default_rng(seed)
    weight = rng.uniform(0.5, 2.0, shape[1]) if weighted else None
    loss = CrossEntropyLoss(weight, reduction=reduction, label_smoothing=smoothing)
    probs = rng.dirichlet(np.ones(shape[1]), size=(shape[0],) + shape[2:])  # (N, *d, C)
    check_gradients(loss, rng.standard_normal(shape), np.moveaxis(probs, -1, 1))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(shape=class_shapes, seed=seeds, weighted=st.booleans(), ignore=st.booleans())
def test_nll_gradients(check_gradients, reduction, shape, seed, weighted, ignore):
    rng = np.random.default_rng(seed)
    weight = rng.uniform(0.5, 2.0, shape[1]) if weighted else None
    loss = NLLLoss(weight, ignore_index=-100, reduction=reduction)
    target = _class_targets(rng, shape, -100 if ignore else None)
    check_gradients(loss, rng.standard_normal(shape), target)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(n=st.integers(1, 4), c=st.integers(1, 4), seed=seeds, weighted=st.booleans(),
       pos_weighted=st.booleans())
def test_bce_with_logits_gradients(check_gradients, reduction, n, c, seed, weighted,
                                   pos_weighted):
    rng = np.random.default_rng(seed)
    loss = BCEWithLogitsLoss(rng.uniform(0.5, 2, (n, c)) if weighted else None,
                             reduction=reduction,
                             pos_weight=rng.uniform(0.5, 3, c) if pos_weighted else None)
    check_gradients(loss, rng.standard_normal((n, c)) * 3, rng.uniform(0, 1, (n, c)))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(shape=shapes, seed=seeds, weighted=st.booleans())
def test_bce_gradients(check_gradients, reduction, shape, seed, weighted):
    rng = np.random.default_rng(seed)
    loss = BCELoss(rng.uniform(0.5, 2, shape[-1]) if weighted else None, reduction=reduction)
    check_gradients(loss, rng.uniform(0.05, 0.95, shape), rng.uniform(0, 1, shape))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_unbatched_cross_entropy_and_nll(check_gradients, reduction):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(5)
    for loss in (CrossEntropyLoss(reduction=reduction, label_smoothing=0.1),
                 NLLLoss(reduction=reduction)):
        batched = type(loss)(reduction=reduction)
        if isinstance(loss, CrossEntropyLoss):
            batched.label_smoothing = 0.1
        np.testing.assert_allclose(loss(x, np.int64(3)), np.squeeze(batched(x[None], [3])))
        assert loss.backward().shape == (5,)
        check_gradients(loss, x, np.int64(3))
    soft = CrossEntropyLoss(reduction=reduction)
    check_gradients(soft, x, rng.dirichlet(np.ones(5)))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(shape=st.one_of(class_shapes, st.integers(2, 6).map(lambda c: (c,))), seed=seeds,
       dtype=st.sampled_from([np.float32, np.float64]), big=st.booleans(),
       smoothing=st.sampled_from([0.0, 0.0, 0.1, 0.7]), ignore=st.sampled_from([0, 1, 2]))
def test_cross_entropy_fused_path_matches_general_path(reduction, shape, seed, dtype, big,
                                                       smoothing, ignore):
    """Index targets without class weights take the fused path; weight=ones takes the
    general one. ``ignore``: 0 none, 1 some, 2 every target ignored."""
    rng = np.random.default_rng(seed)
    c = shape[0] if len(shape) == 1 else shape[1]
    x = (rng.standard_normal(shape) * (30 if big else 2)).astype(dtype)
    target = (np.int64(rng.integers(0, c)) if len(shape) == 1
              else _class_targets(rng, shape, -1 if ignore == 1 else None))
    if ignore == 2:
        target = np.full_like(target, -1)
    x_before = x.copy()
    fused, general = (CrossEntropyLoss(w, ignore_index=-1, reduction=reduction,
                                       label_smoothing=smoothing) for w in (None, np.ones(c)))
    value, expected = fused(x, target), general(x, target)
    upstream = rng.standard_normal(np.shape(value)) if reduction == "none" else 1.3
    grad = fused.backward(upstream)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(value, expected, rtol=rtol, atol=rtol, equal_nan=True)
    np.testing.assert_allclose(grad, general.backward(upstream), rtol=rtol, atol=rtol)
    assert grad.dtype == dtype and grad.shape == x.shape
    np.testing.assert_array_equal(x, x_before)  # the fused path never writes into the input
    # a second backward of the same forward (the first overwrote the cached exponentials)
    kept = grad.copy()
    np.testing.assert_allclose(fused.backward(upstream), kept, rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(grad, kept)  # and leaves the first result alone


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing,ignore", [(0.0, False), (0.2, True)])
def test_cross_entropy_fused_path_split_over_threads(monkeypatch, reduction, smoothing,
                                                     ignore):
    """Row blocks shared by worker threads give the single-thread result (to rounding: the
    shift by the row maximum is chosen per block); so do F-ordered inputs."""
    from handgrad.losses import _softmax_ce
    from handgrad.ops import parallel

    rng = np.random.default_rng(5)
    x = rng.standard_normal((64, 30)).astype(np.float32)
    x[40:] *= 40  # beyond the unshifted limit: these row blocks take the shifted path
    target = rng.integers(0, 30, 64)
    if ignore:
        target[::7] = -100
    upstream = rng.standard_normal(64) if reduction == "none" else 0.7
    monkeypatch.setattr(parallel, "_requested", 1)  # as handgrad.set_num_threads(1)
    loss = CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing)
    expected = loss(x, target), loss.backward(upstream)
    monkeypatch.setattr(parallel, "_requested", 3)
    monkeypatch.setattr(_softmax_ce, "PARALLEL_MIN_SIZE", 1)
    monkeypatch.setattr(_softmax_ce, "BLOCK_SIZE", 200)  # 9 blocks for 3 threads
    for pred in (x, np.asfortranarray(x)):
        np.testing.assert_allclose(loss(pred, target), expected[0], rtol=1e-6)
        np.testing.assert_allclose(loss.backward(upstream), expected[1], rtol=1e-6, atol=1e-8)
    x[50, 3] = np.nan  # found by the thread that takes that block
    with pytest.raises(ValueError, match="CrossEntropyLoss: prediction contains NaN"):
        loss(x, target)


@pytest.mark.parametrize("dtype", [np.uint64, np.uint8, np.int32, np.int16])
@pytest.mark.parametrize("make", [CrossEntropyLoss, lambda: CrossEntropyLoss(np.ones(3)),
                                  NLLLoss])
def test_class_index_loss_accepts_any_integer_target_dtype(dtype, make):
    rng = np.random.default_rng(2)
    x, target = rng.standard_normal((5, 3)), np.array([0, 2, 1, 1, 2])
    loss, reference = make(), make()
    np.testing.assert_allclose(loss(x, target.astype(dtype)), reference(x, target))
    np.testing.assert_allclose(loss.backward(), reference.backward())


def test_cross_entropy_fused_path_is_stable_for_huge_logits():
    x = np.array([[1e4, -1e4, 0.0], [-3e4, -3e4 + 5.0, -3e4 + 1.0]], dtype=np.float32)
    loss = CrossEntropyLoss(reduction="none")
    np.testing.assert_allclose(loss(x, np.array([1, 1])), [2e4, np.log1p(np.exp(-4.0) +
                               np.exp(-5.0))], rtol=1e-5)
    grad = loss.backward()
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad[0], [1.0, -1.0, 0.0], atol=1e-7)


# ---------------------------------------------------------------- values and behaviour

def test_values_by_hand():
    pred, target = np.array([1.0, -2.0, 0.5]), np.array([0.0, 0.0, 2.5])
    assert MSELoss()(pred, target) == pytest.approx((1 + 4 + 4) / 3)
    assert L1Loss(reduction="sum")(pred, target) == pytest.approx(5.0)
    np.testing.assert_allclose(HuberLoss("none", delta=1.5)(pred, target),
                               [0.5, 1.5 * (2 - 0.75), 1.5 * (2 - 0.75)])
    np.testing.assert_allclose(SmoothL1Loss(reduction="none", beta=2.0)(pred, target),
                               [0.25, 2 - 1, 2 - 1])
    logits = np.array([[1.0, 2.0, 3.0]])
    expected = -np.log(np.exp(1.0) / np.exp(logits).sum())
    assert CrossEntropyLoss()(logits, np.array([0])) == pytest.approx(expected)
    assert BCEWithLogitsLoss()(np.array([0.0]), np.array([1.0])) == pytest.approx(np.log(2))


def test_weighted_mean_divides_by_target_weights():
    logits = np.zeros((3, 2))
    loss = CrossEntropyLoss(weight=np.array([1.0, 3.0]))
    # each row's loss is w[y] * log 2; the mean divides by w[0] + w[1] + w[1] = 7
    assert loss(logits, np.array([0, 1, 1])) == pytest.approx(np.log(2))
    loss = NLLLoss(weight=np.array([1.0, 3.0]), ignore_index=0)
    assert loss(np.array([[-1.0, -2.0], [-5.0, -4.0]]), np.array([0, 1])) == pytest.approx(4.0)


def test_all_ignored_mean_is_nan_with_zero_gradient():
    loss = CrossEntropyLoss()
    assert np.isnan(loss(np.ones((2, 3)), np.array([-100, -100])))
    np.testing.assert_array_equal(loss.backward(), np.zeros((2, 3)))


def test_bce_with_logits_is_stable_for_huge_logits():
    x = np.array([1e4, -1e4, 1e4, -1e4])
    y = np.array([1.0, 0.0, 0.0, 1.0])
    loss = BCEWithLogitsLoss(reduction="none")
    np.testing.assert_allclose(loss(x, y), [0.0, 0.0, 1e4, 1e4])
    np.testing.assert_allclose(loss.backward(), [0.0, 0.0, 1.0, -1.0])
    ce = CrossEntropyLoss()
    value = ce(np.array([[1e4, -1e4, 0.0]]), np.array([1]))
    assert value == pytest.approx(2e4)
    assert np.all(np.isfinite(ce.backward()))


def test_bce_clamps_log_like_pytorch():
    loss = BCELoss(reduction="none")
    np.testing.assert_allclose(loss(np.array([0.0, 1.0]), np.array([1.0, 0.0])), [100.0, 100.0])
    assert np.all(np.isfinite(loss.backward()))


@pytest.mark.parametrize("make", [
    MSELoss, L1Loss, HuberLoss, SmoothL1Loss, BCEWithLogitsLoss, CrossEntropyLoss,
    lambda: BCELoss(), lambda: CrossEntropyLoss(np.ones(3), label_smoothing=0.1),
    lambda: NLLLoss(np.ones(3)),
])
def test_float32_stays_float32(make):
    rng = np.random.default_rng(0)
    loss = make()
    x = rng.uniform(0.1, 0.9, (4, 3)).astype(np.float32)
    if isinstance(loss, (CrossEntropyLoss, NLLLoss)):
        target = np.array([0, 2, 1, 1])
    else:
        target = rng.uniform(0, 1, (4, 3))  # float64 target must not upcast
    loss(x, target)
    assert loss.backward().dtype == np.float32
    assert loss.reduction == "mean"
    loss.reduction = "none"
    assert loss(x, target).dtype == np.float32
    assert loss.backward(np.ones(loss(x, target).shape)).dtype == np.float32


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_backward_scales_by_grad_output(reduction):
    rng = np.random.default_rng(0)
    loss = CrossEntropyLoss(reduction=reduction)
    loss(rng.standard_normal((3, 4)), np.array([0, 1, 2]))
    np.testing.assert_allclose(loss.backward(2.5), 2.5 * loss.backward())


def test_eval_mode_caches_nothing():
    loss = MSELoss().eval()
    loss(np.ones(3), np.zeros(3))
    with pytest.raises(RuntimeError, match="MSELoss"):
        loss.backward()


def test_weights_are_buffers_and_follow_dtype():
    loss = BCEWithLogitsLoss(weight=np.ones(3), pos_weight=np.full(3, 2.0))
    assert set(loss.state_dict()) == {"weight", "pos_weight"}
    assert set(CrossEntropyLoss(np.ones(4)).state_dict()) == {"weight"}
    assert loss.float().weight.dtype == np.float32
    assert "label_smoothing=0.1" in repr(CrossEntropyLoss(label_smoothing=0.1))


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("make", [MSELoss, L1Loss, HuberLoss, SmoothL1Loss, BCEWithLogitsLoss,
                                  BCELoss])
def test_mismatched_shapes(make):
    name = make.__name__
    with pytest.raises(ValueError, match=rf"{name}: expected target of shape \(4, 3\).*got \(4,\)"):
        make()(np.full((4, 3), 0.5), np.zeros(4))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("make,target", [
    (MSELoss, np.zeros((0, 3))), (L1Loss, np.zeros((0, 3))), (HuberLoss, np.zeros((0, 3))),
    (SmoothL1Loss, np.zeros((0, 3))), (CrossEntropyLoss, np.zeros(0, np.int64)),
    (CrossEntropyLoss, np.zeros((0, 3))), (NLLLoss, np.zeros(0, np.int64)),
    (BCEWithLogitsLoss, np.zeros((0, 3))), (BCELoss, np.zeros((0, 3)))])
def test_empty_batch(make, target, reduction):
    """N = 0 as in PyTorch: NaN for 'mean', 0 for 'sum', an empty array for 'none'; the
    gradient is empty and keeps the dtype (these refused N = 0 before)."""
    loss = make(reduction=reduction)
    value = loss(np.zeros((0, 3), np.float32), target.astype(np.float32)
                 if target.dtype.kind == "f" else target)
    if reduction == "none":
        per_row = make in (CrossEntropyLoss, NLLLoss)
        assert np.shape(value) == ((0,) if per_row else (0, 3))
    elif reduction == "sum":
        assert value == 0.0
    else:
        assert np.isnan(value)
    grad = loss.backward()
    assert grad.shape == (0, 3) and grad.dtype == np.float32


@pytest.mark.parametrize("make", [MSELoss, CrossEntropyLoss, BCEWithLogitsLoss])
def test_nan_prediction(make):
    x = np.ones((2, 3))
    x[1, 1] = np.nan
    target = np.zeros(2, dtype=np.int64) if make is CrossEntropyLoss else np.zeros((2, 3))
    with pytest.raises(ValueError, match=rf"{make.__name__}: prediction contains NaN"):
        make()(x, target)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("weight", [None, np.ones(3)])  # fused and general path
@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 2), (400, 3, 120)])
def test_cross_entropy_rejects_non_finite_prediction(bad, weight, shape):
    x = np.ones(shape, dtype=np.float32)
    x.flat[-4] = bad
    target = np.zeros((shape[0],) + shape[2:], dtype=np.int64)
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: prediction contains NaN or "
                                         r"infinite values \(1 of"):
        CrossEntropyLoss(weight)(x, target)


def test_integer_prediction_is_a_type_error():
    with pytest.raises(TypeError, match="MSELoss: expected a floating-point prediction"):
        MSELoss()(np.ones(3, dtype=np.int64), np.ones(3))


@pytest.mark.parametrize("make", [CrossEntropyLoss, NLLLoss])
def test_float_targets_of_wrong_shape(make):
    with pytest.raises(TypeError, match=rf"{make.__name__}: expected integer class indices of "
                                        r"shape \(4,\).*float64 target of shape \(4,\)"):
        make()(np.zeros((4, 3)), np.array([0.0, 1.0, 2.0, 1.0]))


def test_nll_rejects_probability_targets():
    with pytest.raises(TypeError, match="NLLLoss: expected integer class indices"):
        NLLLoss()(np.zeros((2, 3)), np.full((2, 3), 1 / 3))


@pytest.mark.parametrize("make", [CrossEntropyLoss, NLLLoss])
def test_class_index_out_of_range(make):
    with pytest.raises(ValueError, match=rf"{make.__name__}: class index 7 is out of range for "
                                         r"3 classes"):
        make()(np.zeros((3, 3)), np.array([0, 7, 1]))
    with pytest.raises(ValueError, match="class index -2 is out of range"):
        make()(np.zeros((3, 3)), np.array([0, -2, 1]))


def test_class_target_shape_and_weight_shape():
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: expected target of shape \(2, 5\) "
                                         r"for input of shape \(2, 3, 5\), got \(2,\)"):
        CrossEntropyLoss()(np.zeros((2, 3, 5)), np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match=r"weight of shape \(4,\).*expected weight of shape \(3"):
        CrossEntropyLoss(np.ones(4))(np.zeros((2, 3)), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"BCEWithLogitsLoss: pos_weight of shape \(4,\) does not"):
        BCEWithLogitsLoss(pos_weight=np.ones(4))(np.zeros((2, 3)), np.zeros((2, 3)))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="MSELoss: expected reduction 'mean', 'sum' or 'none'"):
        MSELoss(reduction="avg")
    with pytest.raises(ValueError, match="HuberLoss: expected delta > 0"):
        HuberLoss(delta=0.0)
    with pytest.raises(ValueError, match="SmoothL1Loss: expected beta >= 0"):
        SmoothL1Loss(beta=-1.0)
    with pytest.raises(ValueError, match="label_smoothing in"):
        CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"expected a 1-d weight of shape \(C,\)"):
        NLLLoss(np.ones((2, 2)))


def test_bce_rejects_values_outside_unit_interval():
    with pytest.raises(ValueError, match=r"BCELoss: expected input probabilities in \[0, 1\]"):
        BCELoss()(np.array([0.5, 1.5]), np.array([0.0, 1.0]))


def test_bad_grad_output():
    loss = MSELoss(reduction="none")
    loss(np.ones((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"MSELoss: expected grad_output of shape \(2, 3\)"):
        loss.backward(np.ones(3))
    loss = MSELoss()
    loss(np.ones((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="expected a scalar grad_output"):
        loss.backward(np.ones(3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_log1p_helper_matches_numpy(dtype):
    """BCEWithLogitsLoss's log1p (log with a correction term) stays within a few ulps."""
    from handgrad.losses.classification import _log1p

    t = np.concatenate([np.logspace(-40, 0, 2000), np.linspace(0, 1, 2001)]).astype(dtype)
    got = _log1p(t, t + 1)
    assert got.dtype == dtype
    np.testing.assert_array_less(np.abs(got - np.log1p(t)), 4 * np.spacing(np.log1p(t)) + 1e-45)
    assert np.all(got[t < 1e-30] == t[t < 1e-30])  # tiny t: log1p(t) = t, not log(1) = 0
