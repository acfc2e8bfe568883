"""The added losses (KLDivLoss ... CTCLoss): float64 gradient checks of every differentiable
input against ``handgrad.numerical_gradient`` under hypothesis-drawn shapes and
hyperparameters, with a random upstream gradient; empty and unbatched inputs; bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import handgrad as hg
from handgrad.losses import (
    CosineEmbeddingLoss,
    CTCLoss,
    GaussianNLLLoss,
    HingeEmbeddingLoss,
    KLDivLoss,
    MarginRankingLoss,
    MultiLabelSoftMarginLoss,
    MultiMarginLoss,
    PoissonNLLLoss,
    SoftMarginLoss,
    TripletMarginLoss,
)

REDUCTIONS = ["mean", "sum", "none"]
shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)
seeds = st.integers(0, 2**32 - 1)


def check_loss(make_loss, args, diff, rng, atol=1e-5, rtol=1e-4):
    """``backward`` (and ``grad_inputs``) against central differences of
    ``sum(g * loss(*args))`` for each argument index in ``diff``, ``g`` random."""
    loss = make_loss()
    value = loss(*args)
    g = rng.standard_normal(np.shape(value))
    first = loss.backward(g if loss.reduction == "none" else float(g))
    grads = loss.grad_inputs if len(diff) > 1 else (first,)
    assert grads[0] is first
    assert len(grads) == len(diff)
    for i, analytic in zip(diff, grads):
        point = np.array(args[i], dtype=np.float64, copy=True)

        def objective(z, i=i):
            values = list(args)
            values[i] = z
            return float(np.sum(np.asarray(make_loss()(*values)) * g))

        numeric = hg.numerical_gradient(objective, point)
        assert np.shape(analytic) == np.shape(args[i])
        np.testing.assert_allclose(analytic, numeric, atol=atol, rtol=rtol, err_msg=f"arg {i}")
    return value


@pytest.mark.parametrize("reduction", REDUCTIONS + ["batchmean"])
@given(shape=shapes, seed=seeds, log_target=st.booleans())
def test_kl_div_gradients(reduction, shape, seed, log_target):
    rng = np.random.default_rng(seed)
    target = rng.uniform(0.01, 1, shape)
    target.flat[0] = 0.0 if not log_target else target.flat[0]  # a zero probability
    target = np.log(target) if log_target else target
    check_loss(lambda: KLDivLoss(reduction=reduction, log_target=log_target),
               [rng.standard_normal(shape), target],
               [0], rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(shape=shapes, seed=seeds, log_input=st.booleans(), full=st.booleans(),
       eps=st.sampled_from([1e-8, 0.1]))
def test_poisson_nll_gradients(reduction, shape, seed, log_input, full, eps):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) if log_input else rng.uniform(0.1, 3, shape)
    target = rng.poisson(2.0, shape).astype(np.float64)
    check_loss(lambda: PoissonNLLLoss(log_input, full, eps=eps, reduction=reduction),
               [x, target], [0], rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(shape=shapes, seed=seeds, full=st.booleans(),
       var_form=st.sampled_from(["same", "one", "last", "float"]))
def test_gaussian_nll_gradients(reduction, shape, seed, full, var_form):
    rng = np.random.default_rng(seed)
    x, target = rng.standard_normal(shape), rng.standard_normal(shape)
    if var_form == "float":
        loss = GaussianNLLLoss(full=full, reduction=reduction)
        loss(x, target, 0.7)
        loss.backward(np.ones(shape) if reduction == "none" else 1.0)
        assert isinstance(loss.grad_var, float)
        check_loss(lambda: GaussianNLLLoss(full=full, reduction=reduction), [x, target, 0.7],
                   [0], rng)
        return
    var_shape = {"same": shape, "last": shape[:-1],
                 "one": shape[:-1] + (1,)}[var_form]
    var = rng.uniform(0.1, 2.0, var_shape)
    check_loss(lambda: GaussianNLLLoss(full=full, reduction=reduction), [x, target, var],
               [0, 2], rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(shape=shapes, seed=seeds, margin=st.sampled_from([0.0, 0.5, -0.3]))
def test_margin_ranking_gradients(reduction, shape, seed, margin):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.standard_normal(shape), rng.standard_normal(shape)
    y = rng.choice([-1.0, 1.0], shape)
    near = np.abs(-y * (x1 - x2) + margin) < 0.05  # off the kink: z moves up by 0.1
    x1[near] -= 0.1 * y[near]
    check_loss(lambda: MarginRankingLoss(margin, reduction=reduction), [x1, x2, y], [0, 1], rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(shape=shapes, seed=seeds, margin=st.sampled_from([1.0, 0.3, 2.0]))
def test_hinge_embedding_gradients(reduction, shape, seed, margin):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, shape)
    x[np.abs(margin - x) < 0.05] -= 0.1
    y = rng.choice([-1.0, 1.0], shape)
    check_loss(lambda: HingeEmbeddingLoss(margin, reduction=reduction), [x, y], [0], rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(shape=shapes, seed=seeds)
def test_soft_margin_gradients(reduction, shape, seed):
    rng = np.random.default_rng(seed)
    check_loss(lambda: SoftMarginLoss(reduction=reduction),
               [rng.standard_normal(shape) * 2, rng.choice([-1.0, 1.0], shape)], [0], rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(n=st.integers(1, 4), c=st.integers(1, 5), seed=seeds, weighted=st.booleans(),
       unbatched=st.booleans())
def test_multilabel_soft_margin_gradients(reduction, n, c, seed, weighted, unbatched):
    rng = np.random.default_rng(seed)
    shape = (c,) if unbatched else (n, c)
    weight = rng.uniform(0.5, 2, c) if weighted else None
    check_loss(lambda: MultiLabelSoftMarginLoss(weight, reduction=reduction),
               [rng.standard_normal(shape), rng.integers(0, 2, shape).astype(float)], [0], rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(n=st.integers(1, 4), c=st.integers(1, 5), seed=seeds, p=st.sampled_from([1, 2]),
       margin=st.sampled_from([1.0, 0.5]), weighted=st.booleans(), unbatched=st.booleans())
def test_multi_margin_gradients(reduction, n, c, seed, p, margin, weighted, unbatched):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c))
    t = rng.integers(0, c, n)
    z = margin - x[np.arange(n), t][:, None] + x
    z[np.arange(n), t] = 1.0
    assume(np.all(np.abs(z) > 1e-3))  # off the hinges' kinks
    if unbatched:
        x, t = x[0], t[0]
    weight = rng.uniform(0.5, 2, c) if weighted else None
    check_loss(lambda: MultiMarginLoss(p, margin, weight, reduction=reduction), [x, t], [0], rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(n=st.integers(1, 4), d=st.integers(1, 4), seed=seeds,
       margin=st.sampled_from([0.0, 0.5, -0.5]), unbatched=st.booleans())
def test_cosine_embedding_gradients(reduction, n, d, seed, margin, unbatched):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.standard_normal((2, n, d))
    y = rng.choice([-1.0, 1.0], n)
    cos = (x1 * x2).sum(1) / np.sqrt((x1 * x1).sum(1) * (x2 * x2).sum(1))
    assume(np.all(np.abs(cos - margin) > 1e-3))
    if unbatched:
        x1, x2, y = x1[0], x2[0], y[0]
    check_loss(lambda: CosineEmbeddingLoss(margin, reduction=reduction), [x1, x2, y], [0, 1], rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple), seed=seeds,
       margin=st.sampled_from([1.0, 0.5, 3.0]), p=st.sampled_from([2.0, 1.0, 3.0, 1.5]),
       swap=st.booleans())
def test_triplet_margin_gradients(reduction, shape, seed, margin, p, swap):
    rng = np.random.default_rng(seed)
    a, pos, neg = rng.standard_normal((3,) + shape)
    eps = 1e-6

    def dist(u, v):
        return (np.abs(u - v + eps) ** p).sum(-1) ** (1 / p)

    d_ap, d_an, d_pn = dist(a, pos), dist(a, neg), dist(pos, neg)
    d_neg = np.minimum(d_an, d_pn) if swap else d_an
    assume(np.all(np.abs(d_ap - d_neg + margin) > 1e-3))
    assume(not swap or np.all(np.abs(d_an - d_pn) > 1e-3))
    if p < 2:  # |d|^(p-1) has a kink where a coordinate difference is 0
        assume(np.all(np.abs(np.stack([a - pos, a - neg, pos - neg]) + eps) > 1e-3))
    check_loss(lambda: TripletMarginLoss(margin, p, eps, swap, reduction=reduction), [a, pos, neg],
               [0, 1, 2], rng)


def ctc_case(rng, t_max, n, c, s_max, concatenated):
    logits = rng.standard_normal((t_max, n, c))
    log_probs = logits - np.log(np.exp(logits).sum(axis=2, keepdims=True))
    target_lengths = rng.integers(0, s_max + 1, n)
    input_lengths = rng.integers(0, t_max + 1, n)
    input_lengths[0] = t_max
    targets = rng.integers(1, c, (n, s_max)) if c > 1 else np.zeros((n, s_max), np.int64)
    if s_max >= 2:
        targets[0, 1] = targets[0, 0]  # a repeated label: the blank between is required
    if concatenated:
        targets = np.concatenate([targets[i, :k] for i, k in enumerate(target_lengths)])
    return log_probs, targets, input_lengths, target_lengths


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(t_max=st.integers(1, 6), n=st.integers(1, 3), c=st.integers(2, 4),
       s_max=st.integers(0, 3), seed=seeds, concatenated=st.booleans(),
       zero_infinity=st.booleans(), blank_last=st.booleans())
def test_ctc_gradients(reduction, t_max, n, c, s_max, seed, concatenated, zero_infinity,
                       blank_last):
    rng = np.random.default_rng(seed)
    log_probs, targets, il, tl = ctc_case(rng, t_max, n, c, s_max, concatenated)
    blank = 0
    if blank_last:  # the same problem with the blank as the last class
        blank = c - 1
        log_probs = np.roll(log_probs, -1, axis=2)
        targets = targets - 1
    loss = CTCLoss(blank, reduction, zero_infinity)
    value = loss(log_probs, targets, il, tl)
    finite = np.isfinite(value).all()
    assume(finite or zero_infinity)  # an infinite loss has NaN gradients, as in PyTorch
    check_loss(lambda: CTCLoss(blank, reduction, zero_infinity),
               [log_probs, targets, il, tl], [0], rng)


def test_ctc_unbatched_is_a_batch_of_one(check_gradients):
    rng = np.random.default_rng(4)
    log_probs, targets, il, tl = ctc_case(rng, 5, 1, 4, 2, True)
    batched = CTCLoss(reduction="none")
    single = CTCLoss(reduction="none")
    expected = batched(log_probs, targets, il, tl)
    value = single(log_probs[:, 0], targets, int(il[0]), int(tl[0]))
    assert np.shape(value) == ()
    np.testing.assert_allclose(value, expected[0])
    np.testing.assert_allclose(single.backward(2.0), batched.backward(np.array([2.0]))[:, 0])
    check_gradients(CTCLoss(), log_probs[:, 0], targets, il, tl)


def test_ctc_values():
    # one frame, one label: p = probability of that label
    log_probs = np.log(np.array([[[0.3, 0.7]]]))
    assert CTCLoss()(log_probs, np.array([[1]]), [1], [1]) == pytest.approx(-np.log(0.7))
    # two frames, label "1": paths 1-1, 0-1, 1-0
    p = np.array([[0.4, 0.6], [0.2, 0.8]])
    value = CTCLoss(reduction="sum")(np.log(p)[:, None], np.array([1]), [2], [1])
    assert value == pytest.approx(-np.log(0.6 * 0.8 + 0.4 * 0.8 + 0.6 * 0.2))
    # an impossible alignment (label "1 1" needs 3 frames)
    loss = CTCLoss(reduction="none")
    assert np.isinf(loss(np.log(p)[:, None], np.array([[1, 1]]), [2], [2]))[0]
    zero = CTCLoss(reduction="sum", zero_infinity=True)
    assert zero(np.log(p)[:, None], np.array([[1, 1]]), [2], [2]) == 0.0
    np.testing.assert_array_equal(zero.backward(), np.zeros((2, 1, 2)))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_empty_batches(reduction):
    empty = np.zeros((0, 3))
    cases = [
        (KLDivLoss(reduction=reduction), [empty, empty]),
        (KLDivLoss(reduction="batchmean" if reduction == "mean" else reduction), [empty, empty]),
        (PoissonNLLLoss(reduction=reduction), [empty, empty]),
        (GaussianNLLLoss(reduction=reduction), [empty, empty, empty]),
        (MarginRankingLoss(reduction=reduction), [empty, empty, empty]),
        (HingeEmbeddingLoss(reduction=reduction), [empty, empty]),
        (SoftMarginLoss(reduction=reduction), [empty, empty]),
        (MultiLabelSoftMarginLoss(reduction=reduction), [empty, empty]),
        (MultiMarginLoss(reduction=reduction), [empty, np.zeros(0, np.int64)]),
        (CosineEmbeddingLoss(reduction=reduction), [empty, empty, np.zeros(0)]),
        (TripletMarginLoss(reduction=reduction), [empty, empty, empty]),
    ]
    for loss, args in cases:
        value = loss(*args)
        name = type(loss).__name__
        if reduction == "mean":
            assert np.isnan(value), name
        elif reduction == "sum":
            assert value == 0.0, name
        else:
            assert np.shape(value) == ((0, 3) if np.ndim(value) == 2 else (0,)), name
        grad = loss.backward(np.zeros(np.shape(value)) if reduction == "none" else 1.0)
        assert grad.shape == (0, 3), name


def test_multi_input_convention():
    rng = np.random.default_rng(1)
    x1, x2, x3 = rng.standard_normal((3, 4, 2))
    ranking = MarginRankingLoss(0.5)
    ranking(x1, x2, np.ones((4, 2)))
    grad = ranking.backward()
    assert len(ranking.grad_inputs) == 2 and ranking.grad_inputs[0] is grad
    np.testing.assert_array_equal(ranking.grad_inputs[1], -grad)
    triplet = TripletMarginLoss()
    triplet(x1, x2, x3)
    assert triplet.backward() is triplet.grad_inputs[0] and len(triplet.grad_inputs) == 3
    gauss = GaussianNLLLoss()
    gauss(x1, x2, np.ones(4))  # one variance per sample: var of shape (N,)
    gauss.backward()
    assert gauss.grad_var.shape == (4,) and gauss.grad_inputs[1] is gauss.grad_var


def test_float32_stays_float32():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((2, 3, 4)).astype(np.float32)
    sign = np.sign(y)
    for loss, args in [(KLDivLoss(), [x, np.abs(y)]), (PoissonNLLLoss(), [x, np.abs(y)]),
                       (GaussianNLLLoss(), [x, y, np.abs(y)]), (SoftMarginLoss(), [x, sign]),
                       (MarginRankingLoss(), [x, y, sign]), (HingeEmbeddingLoss(), [x, sign]),
                       (MultiLabelSoftMarginLoss(), [x, (sign > 0).astype(np.float32)]),
                       (MultiMarginLoss(), [x, np.array([0, 1, 3])]),
                       (CosineEmbeddingLoss(), [x, y, np.array([1, -1, 1])]),
                       (TripletMarginLoss(), [x, y, -y])]:
        loss(*args)
        assert loss.backward().dtype == np.float32, type(loss).__name__
    log_probs = np.log(np.full((4, 2, 3), 1 / 3, np.float32))
    ctc = CTCLoss()
    assert np.isfinite(ctc(log_probs, np.array([[1, 2], [2, 0]]), [4, 3], [2, 1]))
    assert ctc.backward().dtype == np.float32


def test_bad_input():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="KLDivLoss: expected reduction 'mean', 'batchmean'"):
        KLDivLoss(reduction="avg")
    with pytest.raises(ValueError, match=r"KLDivLoss: expected target of shape \(2, 3\)"):
        KLDivLoss()(x, np.zeros(3))
    with pytest.raises(TypeError, match="PoissonNLLLoss: expected a floating-point prediction"):
        PoissonNLLLoss()(np.zeros((2, 3), int), x)
    with pytest.raises(ValueError, match="GaussianNLLLoss: expected a non-negative var"):
        GaussianNLLLoss()(x, x, -np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"GaussianNLLLoss: expected var of the input's shape "
                                         r"\(2, 3\), that shape with one dimension of size 1"):
        GaussianNLLLoss()(x, x, np.ones((3, 2)))
    with pytest.raises(TypeError):
        GaussianNLLLoss(True)  # keyword-only, as in PyTorch
    with pytest.raises(ValueError, match=r"MarginRankingLoss: expected input x2 of shape "
                                         r"\(2, 3\)"):
        MarginRankingLoss()(x, np.zeros(3), x)
    with pytest.raises(ValueError, match=r"MultiMarginLoss: expected class indices in \[0, 3\)"):
        MultiMarginLoss()(x, np.array([0, 3]))
    with pytest.raises(ValueError, match="MultiMarginLoss: expected p 1 or 2, got 3"):
        MultiMarginLoss(p=3)
    with pytest.raises(TypeError, match="MultiMarginLoss: expected integer class indices"):
        MultiMarginLoss()(x, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"CosineEmbeddingLoss: expected target of shape \(2,\)"):
        CosineEmbeddingLoss()(x, x, np.ones(3))
    with pytest.raises(ValueError, match="TripletMarginLoss: expected margin > 0"):
        TripletMarginLoss(margin=0.0)
    with pytest.raises(ValueError, match=r"TripletMarginLoss: expected negative of shape"):
        TripletMarginLoss()(x, x, np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"MultiLabelSoftMarginLoss: weight of shape \(4,\) "
                                         r"does not broadcast"):
        MultiLabelSoftMarginLoss(np.ones(4))(x, x)


def test_ctc_bad_input():
    lp = np.log(np.full((4, 2, 3), 1 / 3))
    targets = np.array([[1, 2], [2, 1]])
    ctc = CTCLoss()
    with pytest.raises(ValueError, match=r"CTCLoss: expected input_lengths <= 4"):
        ctc(lp, targets, [5, 4], [2, 2])
    with pytest.raises(ValueError, match=r"CTCLoss: expected target_lengths >= 0"):
        ctc(lp, targets, [4, 4], [2, -1])
    with pytest.raises(ValueError, match=r"CTCLoss: expected padded targets of shape \(2, S\) "
                                         r"with S >= 3"):
        ctc(lp, targets, [4, 4], [3, 2])
    with pytest.raises(ValueError, match=r"CTCLoss: expected concatenated targets of length 3"):
        ctc(lp, np.array([1, 2, 1, 1]), [4, 4], [2, 1])
    with pytest.raises(ValueError, match=r"CTCLoss: expected target classes in \[0, 3\)"):
        ctc(lp, np.array([[1, 7], [1, 1]]), [4, 4], [2, 2])
    with pytest.raises(ValueError, match=r"CTCLoss: expected blank in \[0, 3\)"):
        CTCLoss(blank=3)(lp, targets, [4, 4], [2, 2])
    with pytest.raises(ValueError, match=r"CTCLoss: expected input_lengths of shape \(2,\)"):
        ctc(lp, targets, [4], [2, 2])
    with pytest.raises(ValueError, match="CTCLoss: expected non-empty log_probs"):
        ctc(np.zeros((4, 0, 3)), np.zeros((0, 2), np.int64), [], [])
    with pytest.raises(ValueError, match=r"CTCLoss: expected log_probs of shape \(T, N, C\)"):
        ctc(np.zeros(4), targets, [4, 4], [2, 2])
    with pytest.raises(ValueError, match="CTCLoss: log_probs contains NaN"):
        ctc(np.full((4, 2, 3), np.nan), targets, [4, 4], [2, 2])
    with pytest.raises(TypeError, match="CTCLoss: expected integer targets"):
        ctc(lp, targets.astype(float), [4, 4], [2, 2])
    with pytest.raises(RuntimeError, match="backward called with no forward"):
        CTCLoss().backward()
