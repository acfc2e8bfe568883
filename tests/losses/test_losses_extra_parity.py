"""PyTorch parity of the added losses: values and the gradient of every differentiable input,
float64 at rtol 1e-9, for every reduction; unbatched and empty inputs."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn as tnn  # noqa: E402

import handgrad as hg  # noqa: E402
from handgrad import losses  # noqa: E402

REDUCTIONS = ["mean", "sum", "none"]


def _compare(ours, theirs, args, diff, rtol=1e-9, atol=1e-12):
    """Value and gradients of the arguments at indices ``diff`` (``grad_inputs`` order)."""
    args = [np.asarray(a) if isinstance(a, np.generic) else a for a in args]
    value = ours(*args)
    upstream = np.random.default_rng(7).standard_normal(np.shape(value))
    g = upstream if ours.reduction == "none" else 1.7
    first = ours.backward(g)
    grads = ours.grad_inputs if len(diff) > 1 else (first,)
    targs = [torch.tensor(a) if isinstance(a, np.ndarray) else a for a in args]
    for i in diff:
        targs[i] = targs[i].clone().requires_grad_(True)
    expected = theirs(*targs)
    expected.backward(torch.tensor(g, dtype=torch.float64))
    np.testing.assert_allclose(value, expected.detach().numpy(), rtol=rtol, atol=atol)
    for i, grad in zip(diff, grads):
        np.testing.assert_allclose(grad, targs[i].grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"argument {i}")


@pytest.mark.parametrize("reduction", REDUCTIONS + ["batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4), (4,), ()])
@pytest.mark.filterwarnings("ignore:reduction")  # PyTorch's note on 'mean'
def test_kl_div_parity(reduction, log_target, shape):
    rng = np.random.default_rng(0)
    x = np.log(rng.dirichlet(np.ones(3), size=shape).reshape(shape + (3,))[..., 0])
    t = rng.uniform(0, 1, shape)
    if t.size:
        t.flat[0] = 0.0
    t = np.log(t + 0.1) if log_target else t
    _compare(losses.KLDivLoss(reduction=reduction, log_target=log_target),
             tnn.KLDivLoss(reduction=reduction, log_target=log_target), [x, t], [0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("log_input", [True, False])
@pytest.mark.parametrize("full", [False, True])
def test_poisson_nll_parity(reduction, log_input, full):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 3)) if log_input else rng.uniform(0, 3, (6, 3))
    x.flat[0] = x.flat[0] if log_input else 0.0  # a zero rate: eps keeps log finite
    target = rng.poisson(2.0, (6, 3)).astype(np.float64)
    _compare(losses.PoissonNLLLoss(log_input, full, eps=1e-8, reduction=reduction),
             tnn.PoissonNLLLoss(log_input, full, eps=1e-8, reduction=reduction),
             [x, target], [0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("var_shape", [(4, 3), (4, 1), (4,), (1, 3), "float"])
def test_gaussian_nll_parity(reduction, full, var_shape):
    rng = np.random.default_rng(2)
    x, target = rng.standard_normal((2, 4, 3))
    ours = losses.GaussianNLLLoss(full=full, eps=1e-6, reduction=reduction)
    theirs = tnn.GaussianNLLLoss(full=full, eps=1e-6, reduction=reduction)
    if var_shape == "float":
        _compare(ours, theirs, [x, target, 0.8], [0])
        return
    var = rng.uniform(0.1, 2, var_shape)
    var.flat[0] = 1e-9  # below eps: clamped, the gradient still reaches it (as PyTorch)
    _compare(ours, theirs, [x, target, var], [0, 2])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.5])
@pytest.mark.parametrize("shape", [(7,), (3, 4), ()])
def test_margin_ranking_parity(reduction, margin, shape):
    rng = np.random.default_rng(3)
    x1, x2 = rng.standard_normal((2,) + shape)
    y = rng.choice([-1.0, 1.0], shape)
    if x1.size:  # one pair exactly on the kink: PyTorch's gradient there is the slope
        x1.flat[0] = x2.flat[0] + margin * y.flat[0]
    _compare(losses.MarginRankingLoss(margin, reduction=reduction),
             tnn.MarginRankingLoss(margin, reduction=reduction), [x1, x2, y], [0, 1])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [1.0, 0.3])
def test_hinge_embedding_parity(reduction, margin):
    rng = np.random.default_rng(4)
    x = rng.uniform(-2, 3, (5, 4))
    y = rng.choice([-1.0, 1.0], (5, 4))
    x[0, 0], y[0, 0] = margin, -1.0  # on the kink
    y[0, 1] = 0.5  # neither label: both terms, as PyTorch
    _compare(losses.HingeEmbeddingLoss(margin, reduction=reduction),
             tnn.HingeEmbeddingLoss(margin, reduction=reduction), [x, y], [0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_soft_margin_parity(reduction):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 4)) * 3
    x[0, 0] = 800.0  # no overflow
    y = rng.choice([-1.0, 1.0], (5, 4))
    _compare(losses.SoftMarginLoss(reduction=reduction), tnn.SoftMarginLoss(reduction=reduction),
             [x, y], [0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(5, 4), (4,), (2, 3, 4)])
def test_multilabel_soft_margin_parity(reduction, weighted, shape):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape) * 2
    y = rng.integers(0, 2, shape).astype(np.float64)
    w = rng.uniform(0.5, 2, shape[-1]) if weighted else None
    _compare(losses.MultiLabelSoftMarginLoss(w, reduction=reduction),
             tnn.MultiLabelSoftMarginLoss(None if w is None else torch.tensor(w),
                                          reduction=reduction), [x, y], [0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("unbatched", [False, True])
def test_multi_margin_parity(reduction, p, weighted, unbatched):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 4))
    t = rng.integers(0, 4, 6)
    x[0, (t[0] + 1) % 4] = x[0, t[0]] - 0.8  # a hinge exactly at its kink
    if unbatched:
        x, t = x[1], t[1]
    w = rng.uniform(0.5, 2, 4) if weighted else None
    _compare(losses.MultiMarginLoss(p, 0.8, w, reduction=reduction),
             tnn.MultiMarginLoss(p, 0.8, None if w is None else torch.tensor(w),
                                 reduction=reduction), [x, t], [0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.4, -0.5])
@pytest.mark.parametrize("unbatched", [False, True])
def test_cosine_embedding_parity(reduction, margin, unbatched):
    rng = np.random.default_rng(8)
    x1, x2 = rng.standard_normal((2, 6, 3))
    y = rng.choice([-1.0, 1.0], 6)
    if unbatched:
        x1, x2, y = x1[0], x2[0], y[0]
    _compare(losses.CosineEmbeddingLoss(margin, reduction=reduction),
             tnn.CosineEmbeddingLoss(margin, reduction=reduction), [x1, x2, y], [0, 1])


def test_cosine_embedding_zero_vector_parity():
    """A zero vector: PyTorch's 1e-12 in each squared norm keeps the loss finite. Its
    gradient is then about |x1| / 1e-6 (huge and ill-conditioned), so it is compared to
    the precision of its own magnitude; the other rows at the usual tolerance."""
    rng = np.random.default_rng(8)
    x1, x2 = rng.standard_normal((2, 3, 3))
    x2[1] = 0.0
    y = np.array([1.0, 1.0, -1.0])
    ours = losses.CosineEmbeddingLoss(0.1, reduction="sum")
    value = ours(x1, x2, y)
    ours.backward()
    a, b = torch.tensor(x1, requires_grad=True), torch.tensor(x2, requires_grad=True)
    expected = tnn.CosineEmbeddingLoss(0.1, reduction="sum")(a, b, torch.tensor(y))
    expected.backward()
    np.testing.assert_allclose(value, expected.item(), rtol=1e-12)
    grad_x1, grad_x2 = ours.grad_inputs
    np.testing.assert_allclose(grad_x1, a.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grad_x2[[0, 2]], b.grad.numpy()[[0, 2]], rtol=1e-9)
    big = b.grad.numpy()[1]
    assert np.abs(big).min() > 1e3  # the zero vector's gradient is ~1e5
    np.testing.assert_allclose(grad_x2[1], big, rtol=1e-8)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", [2.0, 1.0, 3.0])
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("shape", [(6, 3), (3,), (2, 3, 4)])
def test_triplet_margin_parity(reduction, p, swap, shape):
    rng = np.random.default_rng(9)
    a, pos, neg = rng.standard_normal((3,) + shape)
    _compare(losses.TripletMarginLoss(0.7, p, 1e-6, swap, reduction=reduction),
             tnn.TripletMarginLoss(0.7, p, 1e-6, swap, reduction=reduction), [a, pos, neg],
             [0, 1, 2])


def _ctc_inputs(rng, t_max=7, n=4, c=5, s_max=3):
    logits = rng.standard_normal((t_max, n, c))
    targets = rng.integers(1, c, (n, s_max))
    targets[0, 1] = targets[0, 0]  # a repeated label
    input_lengths = np.array([t_max, t_max - 1, 3, t_max])[:n]
    target_lengths = np.array([s_max, 2, 0, 1])[:n]
    return logits, targets, input_lengths, target_lengths


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("concatenated", [False, True])
@pytest.mark.parametrize("blank", [0, 4])
def test_ctc_parity_through_log_softmax(reduction, concatenated, blank):
    """Logits -> LogSoftmax -> CTCLoss: the logit gradients agree with PyTorch's."""
    rng = np.random.default_rng(10)
    logits, targets, il, tl = _ctc_inputs(rng)
    if blank:
        targets = targets - 1  # classes 0..3, blank 4
    if concatenated:
        targets = np.concatenate([targets[i, :k] for i, k in enumerate(tl)])
    log_softmax = hg.LogSoftmax(dim=2)
    ours = losses.CTCLoss(blank, reduction)
    value = ours(log_softmax(logits), targets, il, tl)
    g = np.random.default_rng(3).standard_normal(np.shape(value))
    grad = log_softmax.backward(ours.backward(g if reduction == "none" else 1.3))
    x = torch.tensor(logits, requires_grad=True)
    expected = tnn.CTCLoss(blank, reduction)(x.log_softmax(2), torch.tensor(targets),
                                            torch.tensor(il), torch.tensor(tl))
    expected.backward(torch.tensor(g if reduction == "none" else 1.3, dtype=torch.float64))
    np.testing.assert_allclose(value, expected.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(grad, x.grad.numpy(), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ctc_log_probs_gradient_is_pytorchs_minus_exp_log_probs(reduction):
    """PyTorch's CPU gradient with respect to log_probs is ``exp(log_probs) +`` the exact
    one (for ``t < input_length``, scaled like the loss); handgrad returns the exact one."""
    rng = np.random.default_rng(11)
    logits, targets, il, tl = _ctc_inputs(rng)
    log_probs = logits - np.log(np.exp(logits).sum(axis=2, keepdims=True))
    ours = losses.CTCLoss(reduction=reduction)
    value = ours(log_probs, targets, il, tl)
    g = np.random.default_rng(3).standard_normal(np.shape(value))
    grad = ours.backward(g if reduction == "none" else 1.0)
    x = torch.tensor(log_probs, requires_grad=True)
    tnn.CTCLoss(reduction=reduction)(x, torch.tensor(targets), torch.tensor(il),
                                     torch.tensor(tl)).backward(torch.tensor(
                                         g if reduction == "none" else 1.0))
    per_sample = {"none": g, "sum": np.ones(4), "mean": 1 / (4 * np.maximum(tl, 1))}[reduction]
    inside = np.arange(7)[:, None] < il  # (T, N)
    extra = np.exp(log_probs) * (inside * per_sample)[..., None]
    np.testing.assert_allclose(grad + extra, x.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("zero_infinity", [False, True])
def test_ctc_unbatched_and_impossible_parity(zero_infinity):
    rng = np.random.default_rng(12)
    log_probs = np.log(rng.dirichlet(np.ones(4), size=5))  # (T, C) unbatched
    for targets, length in [(np.array([1, 2, 2]), 3), (np.array([1, 1, 1]), 3),
                            (np.array([3, 3, 3, 3]), 4)]:  # the last: impossible in 5 frames
        value = losses.CTCLoss(reduction="sum", zero_infinity=zero_infinity)(
            log_probs, targets, 5, length)
        expected = tnn.CTCLoss(reduction="sum", zero_infinity=zero_infinity)(
            torch.tensor(log_probs), torch.tensor(targets), torch.tensor(5),
            torch.tensor(length))
        np.testing.assert_allclose(value, expected.numpy(), rtol=1e-10)
    # an impossible alignment in a batch: NaN gradients in its frames only, as PyTorch
    log_probs = np.log(rng.dirichlet(np.ones(3), size=(4, 2)))  # (T, N, C)
    targets, il, tl = np.array([[1, 1, 1], [1, 2, 0]]), np.array([3, 4]), np.array([3, 2])
    ours = losses.CTCLoss(reduction="sum", zero_infinity=zero_infinity)
    ours(log_probs, targets, il, tl)
    grad = ours.backward()
    x = torch.tensor(log_probs, requires_grad=True)
    tnn.CTCLoss(reduction="sum", zero_infinity=zero_infinity)(
        x, torch.tensor(targets), torch.tensor(il), torch.tensor(tl)).backward()
    theirs = x.grad.numpy()
    np.testing.assert_array_equal(np.isnan(grad), np.isnan(theirs))
    fine = ~np.isnan(theirs)
    extra = np.exp(log_probs) * (np.arange(4)[:, None] < il)[..., None]
    if zero_infinity:
        extra[:, 0] = 0.0  # PyTorch zeroes the whole gradient of an infinite loss
    np.testing.assert_allclose((grad + extra)[fine], theirs[fine], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_empty_batch_parity(reduction):
    empty = np.zeros((0, 3))
    cases = [
        (losses.KLDivLoss(reduction=reduction), tnn.KLDivLoss(reduction=reduction),
         [empty, empty], [0]),
        (losses.PoissonNLLLoss(reduction=reduction), tnn.PoissonNLLLoss(reduction=reduction),
         [empty, empty], [0]),
        (losses.GaussianNLLLoss(reduction=reduction), tnn.GaussianNLLLoss(reduction=reduction),
         [empty, empty, empty], [0, 2]),
        (losses.SoftMarginLoss(reduction=reduction), tnn.SoftMarginLoss(reduction=reduction),
         [empty, empty], [0]),
        (losses.MultiLabelSoftMarginLoss(reduction=reduction),
         tnn.MultiLabelSoftMarginLoss(reduction=reduction), [empty, empty], [0]),
        (losses.TripletMarginLoss(reduction=reduction),
         tnn.TripletMarginLoss(reduction=reduction), [empty, empty, empty], [0, 1, 2]),
        (losses.CosineEmbeddingLoss(reduction=reduction),
         tnn.CosineEmbeddingLoss(reduction=reduction), [empty, empty, np.zeros(0)], [0, 1]),
    ]
    for ours, theirs, args, diff in cases:
        _compare(ours, theirs, args, diff)
