"""``load`` of graphs written by ``torch.onnx.export`` (its TorchScript exporter, which needs
no extra package; the newer dynamo exporter needs onnxscript, not installed here)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

import handgrad as hg

from .roundtrip import ATOL, RTOL, onnx

torch = pytest.importorskip("torch")
nn = torch.nn


def _torch_to_handgrad(module, x: np.ndarray, fold_batch_norm: bool = False, **kwargs):
    module.eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # PRESERVE: keep BatchNorm a node (EVAL mode folds it into the convolution)
        torch.onnx.export(module, (torch.from_numpy(x),), buffer, dynamo=False,
                          training=torch.onnx.TrainingMode.EVAL if fold_batch_norm else
                          torch.onnx.TrainingMode.PRESERVE,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "N"}, "output": {0: "N"}}, **kwargs)
    model = hg.onnx.load(onnx.load_from_string(buffer.getvalue()))
    model.eval()
    return model


def _compare(module, model, x):
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(x), expected, rtol=RTOL, atol=ATOL)


def test_torch_mlp(tmp_path):
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 8), nn.Tanh(),
                           nn.Dropout(0.2), nn.Linear(8, 3), nn.LogSoftmax(dim=1))
    rng = np.random.default_rng(0)
    model = _torch_to_handgrad(module, rng.standard_normal((2, 12), dtype=np.float32))
    assert isinstance(model, hg.Sequential)
    for n in (2, 5):
        _compare(module, model, rng.standard_normal((n, 12), dtype=np.float32))


@pytest.mark.parametrize("fold", [False, True], ids=["batchnorm-nodes", "batchnorm-folded"])
def test_torch_cnn(fold, tmp_path):
    torch.manual_seed(1)
    module = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(6),
        nn.LeakyReLU(0.1), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(6 * 2 * 2, 5),
    )
    with torch.no_grad():  # running statistics as after training
        for bn in (module[1], module[5]):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 1.5)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    rng = np.random.default_rng(1)
    model = _torch_to_handgrad(module, rng.standard_normal((2, 1, 16, 16), dtype=np.float32),
                               fold_batch_norm=fold)
    kinds = [type(layer).__name__ for layer in model]
    expected = ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Conv2d", "BatchNorm2d",
                "LeakyReLU", "AvgPool2d", "Flatten", "Linear"]
    assert kinds == [k for k in expected if not (fold and k == "BatchNorm2d")]
    for n in (2, 3):
        _compare(module, model, rng.standard_normal((n, 1, 16, 16), dtype=np.float32))


def test_loaded_torch_model_fine_tunes(tmp_path):
    """The point of import: train the loaded model further in handgrad."""
    torch.manual_seed(2)
    module = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    rng = np.random.default_rng(2)
    model = _torch_to_handgrad(module, rng.standard_normal((2, 4), dtype=np.float32))
    x = rng.standard_normal((32, 4), dtype=np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    loss = hg.losses.CrossEntropyLoss()
    opt = hg.optim.Adam(model.parameters(), lr=0.05)
    model.train()
    first = loss(model(x), y)
    for _ in range(30):
        opt.zero_grad()
        loss(model(x), y)
        model.backward(loss.backward())
        opt.step()
    assert loss(model(x), y) < 0.5 * first


class _Recurrent(nn.Module):
    """The output sequence of a torch recurrent layer (its state starts at zeros)."""

    def __init__(self, layer):
        super().__init__()
        self.rnn = layer

    def forward(self, x):
        return self.rnn(x)[0]


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("kwargs", [{}, {"batch_first": True},
                                    {"num_layers": 2, "bidirectional": True}],
                         ids=["time-major", "batch-first", "2-layers-bidirectional"])
def test_torch_recurrent_layers(kind, kwargs):
    """torch writes the gates in ONNX's order and zero initial states from the input's
    shape: load gives back torch's own weights (PyTorch's order) and outputs."""
    torch.manual_seed(3)
    module = _Recurrent(getattr(nn, kind)(3, 4, **kwargs)).eval()
    rng = np.random.default_rng(3)
    shape = (2, 5, 3) if kwargs.get("batch_first") else (5, 2, 3)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.from_numpy(rng.standard_normal(shape,
                                                                        dtype=np.float32)),),
                          buffer, dynamo=False, input_names=["input"])
    layer = hg.onnx.load(onnx.load_from_string(buffer.getvalue()))
    assert type(layer).__name__ == kind
    expected = {k: v.numpy() for k, v in module.rnn.state_dict().items()}
    assert set(layer.state_dict()) == set(expected)
    for name, value in layer.state_dict().items():
        np.testing.assert_array_equal(value, expected[name])
    layer.eval()
    _compare(module, layer, rng.standard_normal(shape, dtype=np.float32))
