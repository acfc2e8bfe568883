"""The inspect tools on the project's real models: LeNet-5, ResNet-20, the LSTM models."""

from __future__ import annotations

import numpy as np

import handgrad as hg
from handgrad.inspect import bptt_profile, check_model, gradient_flow, saliency


def test_lenet5_flow_attribution_and_check():
    model = hg.models.lenet5(rng=0)
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    table = gradient_flow(model, hg.losses.CrossEntropyLoss(), x, np.array([1, 2]))
    convs = [r for r in table.rows if r.type == "Conv2d"]
    assert len(convs) == 2 and all(r.param_grad_norm > 0 for r in convs)
    assert saliency(model, x).heatmap.shape == (2, 28, 28)
    report = check_model(model, x, samples=1, max_checks=4)
    assert report.passed, str(report)


def test_resnet20_flow_sees_every_block():
    model = hg.models.resnet20(rng=0)
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    seen = []
    handles = [m.register_full_backward_hook(lambda m, gi, go: seen.append(type(m).__name__))
               for m in model.modules()]
    table = gradient_flow(model, hg.losses.CrossEntropyLoss(), x, np.array([0, 1]))
    for h in handles:
        h.remove()
    assert seen.count("BasicBlock") == 9 and seen.count("Conv2d") == 21
    assert seen[-1] == "ResNet"
    assert table["conv1"].param_grad_norm > 0 and table["fc"].param_grad_norm > 0
    assert np.isfinite(table.first_to_last)


def test_lstm_models():
    clf = hg.models.SequenceClassifier(vocab_size=12, embedding_dim=6, hidden_size=8,
                                       num_classes=3, rng=0)
    ids = np.random.default_rng(2).integers(0, 12, (4, 9))
    table = gradient_flow(clf, hg.losses.CrossEntropyLoss(), ids, np.array([0, 1, 2, 0]))
    assert [r.layer for r in table.rows] == ["embedding", "rnn", "head"]
    assert table["rnn"].param_grad_norm > 0
    lm = hg.models.CharLM(12, embedding_dim=6, hidden_size=8, rng=0)
    profile = bptt_profile(lm.rnn, lm.embedding(ids), truncations=(2,))
    assert profile.grad_norms.shape == (9,) and profile.kind == "LSTM"
