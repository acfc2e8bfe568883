"""``handgrad export CHECKPOINT OUT.onnx`` on checkpoints written by ``handgrad train``."""

from __future__ import annotations

import numpy as np
import pytest

import handgrad
from handgrad import cli, models
from handgrad.training.fit import load_checkpoint

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def run(capsys, *argv):
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def _ort_outputs(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": x})[0]


@pytest.mark.parametrize("name, build, sample", [
    ("cnn", lambda: models.digits_cnn(), (1, 8, 8)),
    ("mlp", lambda: models.mlp(64), (64,)),
])
def test_train_then_export(name, build, sample, capsys, tmp_path):
    ckpt = tmp_path / "ckpt"
    status, out, err = run(capsys, "train", "--model", name, "--max-samples", "64",
                           "--epochs", "1", "--quiet", "--checkpoint-dir", str(ckpt))
    assert status == 0, err
    onnx_path = tmp_path / f"{name}.onnx"
    status, out, err = run(capsys, "export", str(ckpt / "last.npz"), str(onnx_path))
    assert status == 0, err
    assert f"handgrad export: {name} (" in out and "input (N, " in out
    assert "outputs equal handgrad's" in out
    # the file computes what the checkpoint's model computes, at any batch size
    model = build()
    model.load_state_dict(load_checkpoint(ckpt / "last.npz")["model"])
    model.eval()
    x = np.random.default_rng(0).standard_normal((5, *sample), dtype=np.float32)
    np.testing.assert_allclose(_ort_outputs(onnx_path, x), model(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, build, sample", [
    ("lenet5", lambda: models.lenet5(rng=0), (1, 28, 28)),
    ("resnet20", lambda: models.resnet20(rng=0), (3, 32, 32)),
])
def test_export_of_a_saved_state_dict(name, build, sample, capsys, tmp_path):
    model = build()
    for layer in model.modules():  # BatchNorm statistics of real activations
        if isinstance(layer, handgrad.BatchNorm2d):
            layer.momentum = None
    model(np.random.default_rng(0).standard_normal((8, *sample), dtype=np.float32))
    handgrad.save(model.state_dict(), tmp_path / "weights.npz")
    status, out, err = run(capsys, "export", str(tmp_path / "weights.npz"),
                           str(tmp_path / "m.onnx"))
    assert status == 0, err
    assert f"handgrad export: {name} (" in out
    model.eval()
    x = np.random.default_rng(1).standard_normal((2, *sample), dtype=np.float32)
    np.testing.assert_allclose(_ort_outputs(tmp_path / "m.onnx", x), model(x), rtol=1e-5,
                               atol=1e-6)


def test_charlstm_exports_with_any_sequence_length(capsys, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("def add(a, b):\n    return a + b\n\n" * 60)
    status, out, err = run(capsys, "train", "--model", "charlstm", "--data-path", str(corpus),
                           "--epochs", "1", "--batch-size", "4", "--quiet", "--checkpoint-dir",
                           str(tmp_path / "ckpt"))
    assert status == 0, err
    status, out, err = run(capsys, "export", str(tmp_path / "ckpt"), str(tmp_path / "lm.onnx"))
    assert status == 0, err
    assert "handgrad export: charlstm (" in out and "input (N, T)" in out
    assert "outputs output, h_n, c_n" in out
    state = load_checkpoint(tmp_path / "ckpt" / "best.npz")["model"]
    lm = models.CharLM(state["lm.embedding.weight"].shape[0], 32, 128)
    lm.load_state_dict({k[3:]: v for k, v in state.items()})
    lm.eval()
    ids = np.random.default_rng(2).integers(0, lm.vocab_size, (2, 7))
    np.testing.assert_allclose(_ort_outputs(tmp_path / "lm.onnx", ids), lm(ids), rtol=1e-5,
                               atol=1e-6)


def test_charlstm_with_state_continues_a_stream(capsys, tmp_path):
    lm = models.CharLM(12, 32, 128)
    handgrad.save({"model": {f"lm.{k}": v for k, v in lm.state_dict().items()}},
                  tmp_path / "lm.npz")
    status, out, err = run(capsys, "export", str(tmp_path / "lm.npz"), str(tmp_path / "lm.onnx"),
                           "--with-state")
    assert status == 0, err
    assert "outputs equal handgrad's" in out
    session = ort.InferenceSession(str(tmp_path / "lm.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input", "h_0", "c_0"]
    ids = np.random.default_rng(3).integers(0, 12, (2, 9))
    zeros = np.zeros((1, 2, 128), np.float32)
    _, h, c = session.run(None, {"input": ids[:, :5], "h_0": zeros, "c_0": zeros})
    logits = session.run(["output"], {"input": ids[:, 5:], "h_0": h, "c_0": c})[0]
    lm.eval()
    np.testing.assert_allclose(logits, lm(ids)[:, 5:], rtol=1e-5, atol=1e-6)
    status, _, err = run(capsys, "export", str(tmp_path / "lm.npz"), str(tmp_path / "m.onnx"),
                         "--with-state", "--model", "mlp")
    assert status == 2 and "--with-state is for the recurrent charlstm" in err


def test_export_errors(capsys, tmp_path):
    status, _, err = run(capsys, "export", str(tmp_path / "none.npz"), str(tmp_path / "m.onnx"))
    assert status == 2 and "does not exist" in err
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a checkpoint")
    status, _, err = run(capsys, "export", str(bad), str(tmp_path / "m.onnx"))
    assert status == 2 and "cannot read checkpoint" in err
    handgrad.save(models.lenet5().state_dict(), tmp_path / "lenet.npz")
    status, _, err = run(capsys, "export", str(tmp_path / "lenet.npz"), str(tmp_path / "m.onnx"),
                         "--model", "resnet20")
    assert status == 2 and "does not fit --model resnet20" in err
    status, _, err = run(capsys, "export", str(tmp_path / "lenet.npz"),
                         str(tmp_path / "no" / "m.onnx"))
    assert status == 2 and "does not exist" in err
    status, _, err = run(capsys, "export", str(tmp_path / "lenet.npz"), str(tmp_path / "m.onnx"),
                         "--opset", "3")
    assert status == 2 and "expected opset" in err
    assert not (tmp_path / "m.onnx").exists()
