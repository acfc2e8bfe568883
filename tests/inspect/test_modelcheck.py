"""check_model: finds a broken layer inside a model, reports kinks instead of failing."""

from __future__ import annotations

import numpy as np

import handgrad as hg
from handgrad.inspect import check_model


class LeakyBias(hg.Linear):
    """A deliberately broken Linear: its bias gradient is 10% too large."""

    def backward(self, grad_out):
        grad_x = super().backward(grad_out)
        if self.bias.grad is not None:
            self.bias.grad *= 1.1
        return grad_x


def test_finds_the_broken_layer_inside_a_residual_block():
    model = hg.Sequential(hg.Linear(5, 4, rng=0), hg.Tanh(),
                          hg.Residual(hg.Sequential(LeakyBias(4, 4, rng=1), hg.Tanh())),
                          hg.Linear(4, 3, rng=2))
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    report = check_model(model, x)
    assert not report.passed
    assert report.first_failure == "2.body.0"
    assert report["2.body.0"].status == "FAIL" and "bias" in report["2.body.0"].detail
    assert report["0"].status == "ok" and report["3"].status == "ok"
    assert report["2.body.0"].input_shape == (2, 4)  # samples=2
    assert "first layer whose backward disagrees: 2.body.0" in str(report)


def test_healthy_cnn_passes():
    model = hg.models.digits_cnn(rng=0)
    x = np.random.default_rng(1).standard_normal((4, 1, 8, 8)).astype(np.float32)
    report = check_model(model, x, max_checks=16)
    assert report.passed and report.first_failure is None
    assert [r.layer for r in report.rows][:3] == ["(model)", "0", "1"]
    assert all(r.status == "ok" for r in report.rows)


def test_kinks_are_reported_not_failed():
    relu_net = hg.Sequential(hg.Linear(3, 4, dtype=np.float64, rng=0), hg.ReLU(),
                             hg.Linear(4, 2, dtype=np.float64, rng=1))
    relu_net[0].weight.data[1] = 0.0  # unit 1 is exactly 0: ReLU sits at its kink
    relu_net[0].bias.data[1] = 0.0
    report = check_model(relu_net, np.random.default_rng(2).standard_normal((2, 3)))
    assert report["1"].status == "kink" and "left slope 0" in report["1"].detail
    assert report.passed
    tie = check_model(hg.Sequential(hg.MaxPool2d(2)), np.ones((1, 1, 4, 4)))
    assert tie["0"].status == "kink" and tie.passed


def test_integer_inputs_are_skipped_and_the_model_is_unchanged():
    model = hg.models.SequenceClassifier(vocab_size=6, embedding_dim=3, hidden_size=4,
                                         num_classes=2, rng=0)
    before = model.state_dict()
    ids = np.random.default_rng(3).integers(0, 6, (2, 5))
    report = check_model(model, ids, max_checks=8)
    assert report["(model)"].status == "skipped" and report["embedding"].status == "skipped"
    assert report["rnn"].status == "ok" and report["head"].status == "ok"
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    assert all("forward" not in m.__dict__ for m in model.modules())


def test_transposed_inputs_are_perturbed_in_place():
    """CharLM's head receives the batch_first LSTM output, a transposed (non-contiguous)
    array: the check must perturb the elements the layer really reads."""
    lm = hg.models.CharLM(7, embedding_dim=3, hidden_size=5, rng=0)
    ids = np.random.default_rng(4).integers(0, 7, (2, 6))
    report = check_model(lm, ids, max_checks=12)
    assert report["head"].status == "ok" and report["rnn"].status == "ok"
    assert report.passed
