"""Every model in handgrad.models: checker, ONNX Runtime and load agree."""

from __future__ import annotations

import numpy as np
import pytest

import handgrad as hg
from handgrad import models

from .roundtrip import check_roundtrip, run_onnxruntime


def _trained_statistics(model, x, rng):
    """BatchNorm statistics of real activations (as after training), not the initial 0/1:
    one training-mode pass with a cumulative average sets them to that batch's."""
    norms = [m for m in model.modules() if isinstance(m, (hg.BatchNorm1d, hg.BatchNorm2d))]
    for layer in norms:
        layer.momentum = None
        layer.weight.data[...] = rng.uniform(0.8, 1.2, layer.num_features)
        layer.bias.data[...] = 0.1 * rng.standard_normal(layer.num_features)
    model.train()
    model(x)
    model.eval()
    return model


IMAGE_MODELS = [
    ("mlp", lambda: models.mlp(20, (16, 8), 5, rng=0), (20,)),
    ("mlp-linear", lambda: models.mlp(20, (), 5, rng=0), (20,)),
    ("digits_cnn", lambda: models.digits_cnn(rng=0), (1, 8, 8)),
    ("lenet5", lambda: models.lenet5(rng=0), (1, 28, 28)),
    ("resnet20", lambda: models.resnet20(rng=0), (3, 32, 32)),
    ("cifar_resnet8-narrow", lambda: models.cifar_resnet(8, num_classes=3, width=4, rng=0),
     (3, 12, 12)),
]


@pytest.mark.parametrize("factory, sample", [m[1:] for m in IMAGE_MODELS],
                         ids=[m[0] for m in IMAGE_MODELS])
def test_image_model(factory, sample, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, *sample), dtype=np.float32)
    model = _trained_statistics(factory(), rng.standard_normal((8, *sample), dtype=np.float32),
                                rng)
    check_roundtrip(model, x, tmp_path, [rng.standard_normal((3, *sample), dtype=np.float32)])


def test_resnet18_is_as_accurate_as_handgrad_itself(tmp_path):
    """ResNet-18 (11 M parameters, 3x3 convolutions over 512 channels) is too deep and wide for
    float32 to reproduce to 1e-6: handgrad's own float32 logits differ from its float64 ones
    by ~1e-5. So ONNX Runtime is held to the float64 result: its error is at most three times
    handgrad's own float32 error (measured 0.9-1.7x over seeds)."""
    import copy

    rng = np.random.default_rng(0)
    model = _trained_statistics(models.resnet18(num_classes=5, rng=0),
                                rng.standard_normal((8, 3, 32, 32), dtype=np.float32), rng)
    x = rng.standard_normal((3, 3, 32, 32), dtype=np.float32)
    path = tmp_path / "resnet18.onnx"
    hg.onnx.export(model, x[:1], path)
    got = run_onnxruntime(path, (x,))[0]
    exact = copy.deepcopy(model).double()(x.astype(np.float64))
    own_error = np.abs(model(x) - exact).max()
    assert np.abs(got - exact).max() <= 3 * own_error
    loaded = hg.onnx.load(path).eval()
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_char_lm_with_state_and_any_length(cell, tmp_path):
    rng = np.random.default_rng(1)
    lm = models.CharLM(11, embedding_dim=6, hidden_size=8, num_layers=2, cell=cell, rng=0)
    ids = rng.integers(0, 11, (2, 5))
    loaded = check_roundtrip(lm, ids, tmp_path, [rng.integers(0, 11, (3, 9))],
                             dynamic_axes={1: "T"})
    assert isinstance(loaded, models.CharLM)
    lm.eval()
    lm(ids)
    state = lm.final_state  # continue a stream: the state goes in and comes out
    check_roundtrip(lm, (rng.integers(0, 11, (2, 1)), state), tmp_path / "..")


def test_char_lm_generates_the_same_text_after_load(tmp_path):
    lm = models.CharLM(7, embedding_dim=4, hidden_size=6, rng=2)
    hg.onnx.export(lm, (np.zeros((1, 3), np.int64),), tmp_path / "lm.onnx")
    loaded = hg.onnx.load(tmp_path / "lm.onnx")
    np.testing.assert_array_equal(loaded.generate([1, 2], 10, rng=0),
                                  lm.generate([1, 2], 10, rng=0))


CLASSIFIERS = [
    ("lstm-last", dict(input_size=5), (6, 5)),
    ("gru-mean-bi", dict(input_size=5, cell="gru", pooling="mean", bidirectional=True),
     (6, 5)),
    ("lstm-last-bi-2", dict(input_size=5, num_layers=2, bidirectional=True), (6, 5)),
    ("ids-gru-last", dict(vocab_size=9, embedding_dim=4, cell="gru"), (6,)),
    ("ids-lstm-mean-2", dict(vocab_size=9, embedding_dim=4, num_layers=2, pooling="mean"),
     (6,)),
]


@pytest.mark.parametrize("kwargs, sample", [c[1:] for c in CLASSIFIERS],
                         ids=[c[0] for c in CLASSIFIERS])
def test_sequence_classifier(kwargs, sample, tmp_path):
    rng = np.random.default_rng(3)
    kwargs = dict(kwargs)
    model = models.SequenceClassifier(kwargs.pop("input_size", None), 6, 3, rng=0, **kwargs)

    def batch(n):
        if "vocab_size" in kwargs:
            return rng.integers(0, 9, (n, *sample))
        return rng.standard_normal((n, *sample), dtype=np.float32)

    loaded = check_roundtrip(model, batch(2), tmp_path, [batch(4)])
    assert isinstance(loaded, models.SequenceClassifier)
    assert loaded.pooling == model.pooling


def test_load_weights_by_state_dict_name(tmp_path):
    """The initializers keep the state_dict names and layouts: an exported ResNet's weights
    go back into a freshly built one, BatchNorm statistics and recurrent gates included."""
    rng = np.random.default_rng(4)
    model = _trained_statistics(models.cifar_resnet(8, width=4, rng=0),
                                rng.standard_normal((8, 3, 8, 8), dtype=np.float32), rng)
    hg.onnx.export(model, np.zeros((1, 3, 8, 8), np.float32), tmp_path / "r.onnx")
    fresh = models.cifar_resnet(8, width=4, rng=1)
    hg.onnx.load_weights(fresh, tmp_path / "r.onnx")
    for name, value in model.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(fresh.state_dict()[name], value)
    lm = models.CharLM(7, 4, 6, num_layers=2, cell="gru", rng=2)
    hg.onnx.export(lm, np.zeros((1, 3), np.int64), tmp_path / "lm.onnx")
    other = models.CharLM(7, 4, 6, num_layers=2, cell="gru", rng=3)
    hg.onnx.load_weights(other, tmp_path / "lm.onnx")
    ids = rng.integers(0, 7, (2, 4))
    np.testing.assert_array_equal(other.eval()(ids), lm.eval()(ids))
    with pytest.raises(ValueError, match="no initializer for"):
        hg.onnx.load_weights(models.mlp(4, (3,), 2), tmp_path / "lm.onnx")
