"""hg.summary(model): rows, shapes, parameter counts, cached bytes, no side effects."""

from __future__ import annotations

import numpy as np
import pytest

import handgrad as hg
from handgrad.inspect.summary import Summary, cached_bytes
from handgrad.parameter import Parameter


class Caches(hg.Layer):
    """A layer with known caches: two arrays (one repeated), a parameter, a non-array."""

    def __init__(self):
        super().__init__()
        self.weight = Parameter(np.ones((3, 3), np.float32))
        self._x = None
        self._cache = None
        self.public = np.ones(1000)  # not a cache: no leading underscore

    def forward(self, x):
        a = np.ones((5, 4), np.float32)  # 80 bytes
        self._x = x
        self._cache = (a, [a, self.weight.data], {"shape": x.shape, "b": np.zeros(2, np.int64)})
        return x


class Pair(hg.Layer):
    """A forward that returns a tuple (like a recurrent layer's output and state)."""

    def forward(self, x):
        return x, x.sum(axis=0)


def _mlp():
    return hg.Sequential(hg.Linear(6, 4, rng=0), hg.ReLU(), hg.Linear(4, 2, rng=0))


def test_mlp_rows_shapes_and_params():
    model = _mlp()
    s = hg.summary(model, (5, 6))
    assert isinstance(s, Summary)
    assert [r.name for r in s.rows] == ["0", "1", "2"]
    assert [r.type for r in s.rows] == ["Linear", "ReLU", "Linear"]
    assert [r.output_shape for r in s.rows] == ["(5, 4)", "(5, 4)", "(5, 2)"]
    assert [r.params for r in s.rows] == [28, 0, 10]
    assert s.total_params == sum(p.size for p in model.parameters()) == 38
    assert s.trainable_params == 38
    assert s.param_bytes == 38 * 4
    # Linear keeps its input for the weight gradient: 5*6 float32 values
    assert s.rows[0].cached_bytes == 5 * 6 * 4
    assert s.cached_bytes == sum(r.cached_bytes for r in s.rows) > 0
    text = str(s)
    assert "Output shape" in text and "0 (Linear)" in text and "Total params: 38" in text
    assert s.output_shape == "(5, 2)"


def test_frozen_parameters_are_not_trainable():
    model = _mlp()
    model[0].requires_grad_(False)
    s = hg.summary(model, (2, 6))
    assert s.total_params == 38 and s.trainable_params == 10


def test_cached_bytes_rule():
    layer = Caches()
    layer(np.zeros((2, 10), np.float32))  # 80 bytes of input
    # _x (80) + a once (80) + b (16); parameter data and public attributes excluded
    assert cached_bytes(layer) == 80 + 80 + 16
    layer.eval()
    assert cached_bytes(hg.Linear(3, 2)) == 0


def test_cached_bytes_looks_inside_plain_objects():
    # Conv2d keeps its input's layout in a small object (strips or the padded batch).
    class Kept:
        def __init__(self):
            self.buffer = np.zeros(10, np.float32)  # 40 bytes
            self.shape = (2, 5)

    layer = Caches()
    layer._cache = (Kept(), None)
    assert cached_bytes(layer) == 40
    conv = hg.Conv2d(2, 3, 3, padding=1, rng=0)
    hg.set_num_threads(1)  # one chunk
    try:
        conv(np.zeros((4, 2, 5, 5), np.float32))
    finally:
        hg.set_num_threads(None)
    # 4 images side by side, one shared zero column between them: 2 channels x 7 rows x
    # (1 + 4*6) columns, plus one column of slack
    assert cached_bytes(conv) == (2 * 7 * (1 + 4 * 6) + 1) * 4


def test_summary_leaves_model_untouched():
    model = hg.Sequential(hg.Conv2d(1, 3, 3, padding=1, rng=0), hg.BatchNorm2d(3), hg.ReLU(),
                          hg.Dropout(0.5, rng=1), hg.Flatten(), hg.Linear(3 * 4 * 4, 2, rng=0))
    model.eval()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    dropout_state = model[3].rng.bit_generator.state
    s = hg.summary(model, (2, 1, 4, 4))
    assert s.rows[1].output_shape == "(2, 3, 4, 4)" and s.rows[4].output_shape == "(2, 48)"
    assert s.rows[0].cached_bytes > 0  # measured in training mode although the model is in eval
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    assert model[3].rng.bit_generator.state == dropout_state
    assert not model.training and not model[1].training
    assert model[5]._x is None  # no cache left on the real model


def test_nested_containers_use_dotted_names():
    model = hg.Sequential(hg.Residual(hg.Sequential(hg.Linear(3, 3), hg.Tanh())),
                          hg.Linear(3, 1))
    s = hg.summary(model.double(), (4, 3))
    assert [r.name for r in s.rows] == ["0.body.0", "0.body.1", "1"]
    assert "float64" in s.input_shape


def test_tuple_outputs_and_integer_inputs_are_handled():
    s = hg.summary(Pair(), (3, 2), dtype=np.int64)
    assert s.rows[0].output_shape == "[(3, 2), (2,)]"
    assert s.output_shape == "[(3, 2), (2,)]"


def test_recurrent_layer_summary():
    recurrent = pytest.importorskip("handgrad.layers.recurrent")
    model = hg.Sequential(recurrent.LSTM(5, 7), hg.Linear(7, 3))
    s = hg.summary(model, (6, 2, 5))
    assert s.rows[0].type == "LSTM" and s.rows[0].output_shape == "(6, 2, 7)"
    assert s.rows[0].params == 4 * 7 * (5 + 7) + 2 * 4 * 7
    assert s.rows[0].cached_bytes > 0


def test_bad_input_shape_gives_clear_error():
    with pytest.raises(ValueError, match=r"summary: forward of Sequential on an input of shape "
                                         r"\(5, 7\)"):
        hg.summary(_mlp(), (5, 7))
    with pytest.raises(ValueError, match="input_shape"):
        hg.summary(_mlp())
    with pytest.raises(ValueError, match="positive"):
        hg.summary(_mlp(), (0, 6))


class TwoInputs(hg.Layer):
    def forward(self, x, scale):
        return x * scale


def test_explicit_input_and_extra_forward_arguments():
    x = np.ones((2, 3), np.float32)
    s = hg.summary(TwoInputs(), x=x, args=(np.float32(2.0),))
    assert s.rows[0].output_shape == "(2, 3)" and s.rows[0].calls == 1
