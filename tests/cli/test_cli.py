"""Tests for the ``handgrad`` command (run in-process through ``handgrad.cli.main``)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import handgrad
from handgrad import cli
from handgrad.cli import bench
from handgrad.training.fit import load_checkpoint

SUMMARY = re.compile(r"test accuracy (\d+\.\d+)% .* after (\d+) epochs in [\d.]+ s")


def run(capsys, *argv):
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_default_train_reaches_97_percent(capsys):
    status, out, err = run(capsys, "train")
    assert status == 0, err
    match = SUMMARY.search(out.strip().splitlines()[-1])
    assert match, out
    assert float(match.group(1)) >= 97.0
    assert "cnn on digits" in out
    assert "epoch 1/" in out  # one line per epoch when stdout is not a terminal


def test_quiet_mlp_with_checkpoint_plot_and_resume(capsys, tmp_path):
    common = ["--model", "mlp", "--max-samples", "300", "--batch-size", "64", "--quiet",
              "--checkpoint-dir", str(tmp_path / "ckpt"), "--scheduler", "step"]
    status, out, err = run(capsys, "train", "--epochs", "1", *common,
                           "--plot", str(tmp_path / "plots"))
    assert status == 0, err
    assert len(out.strip().splitlines()) == 1 and SUMMARY.search(out).group(2) == "1"
    assert (tmp_path / "plots" / "history.png").stat().st_size > 0
    assert (tmp_path / "plots" / "grad_norms.png").stat().st_size > 0
    assert int(load_checkpoint(tmp_path / "ckpt" / "last.npz")["epoch"]) == 1

    status, out, err = run(capsys, "train", "--epochs", "2", *common,
                           "--resume", str(tmp_path / "ckpt"))
    assert status == 0, err
    assert SUMMARY.search(out).group(2) == "2"
    assert int(load_checkpoint(tmp_path / "ckpt" / "last.npz")["epoch"]) == 2


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "mnist"], "needs --data-path"),
    (["--dataset", "cifar10", "--data-path", "/no/such/folder"], "does not exist"),
    (["--model", "resnet20", "--dataset", "digits"], "needs --dataset cifar10"),
    (["--model", "lenet5", "--dataset", "cifar10", "--data-path", "."], "28x28"),
    (["--model", "cnn", "--dataset", "text"], "needs --model charlstm"),
    (["--model", "charlstm", "--dataset", "digits"], "needs --dataset text"),
    (["--resume", "/no/such/checkpoint.npz"], "does not exist"),
    (["--val-fraction", "1.5"], "--val-fraction"),
])
def test_bad_input_exits_2_with_one_clear_line(capsys, argv, message):
    status, out, err = run(capsys, "train", *argv)
    assert status == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [["--model", "vgg"], ["--dataset", "imagenet"],
                                  ["--epochs", "0"], ["--lr", "-1"]])
def test_unknown_choices_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", *argv])
    assert info.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_missing_mnist_files_are_named(capsys, tmp_path):
    status, out, err = run(capsys, "train", "--dataset", "mnist", "--data-path", str(tmp_path))
    assert status == 2
    assert "train-images-idx3-ubyte" in err


def test_resume_from_other_architecture_reports_keys_and_shapes(capsys, tmp_path):
    common = ["--max-samples", "200", "--epochs", "1", "--quiet"]
    assert run(capsys, "train", "--model", "mlp", *common, "--checkpoint-dir",
               str(tmp_path))[0] == 0
    status, out, err = run(capsys, "train", "--model", "cnn", *common, "--resume",
                           str(tmp_path / "last.npz"))
    assert status == 2
    assert "different architecture" in err
    assert re.search(r"0\.weight: expected shape \(16, 1, 3, 3\), got \(256, 64\)", err)


def test_resuming_a_one_cycle_run_with_more_epochs_is_a_usage_error(capsys, tmp_path):
    common = ["--max-samples", "200", "--quiet", "--scheduler", "onecycle"]
    assert run(capsys, "train", *common, "--epochs", "1", "--checkpoint-dir",
               str(tmp_path))[0] == 0
    status, out, err = run(capsys, "train", *common, "--epochs", "2", "--resume",
                           str(tmp_path))
    assert status == 2 and "Traceback" not in err
    assert "one-cycle schedule was planned for" in err and "--epochs 1" in err


def test_corrupt_checkpoint_exits_2(capsys, tmp_path):
    bad = tmp_path / "last.npz"
    bad.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    status, out, err = run(capsys, "train", "--resume", str(bad), "--quiet")
    assert status == 2
    assert "cannot read checkpoint" in err and str(bad) in err


def test_gradcheck_command_passes(capsys):
    status, out, err = run(capsys, "gradcheck")
    assert status == 0, out
    assert "FAIL" not in out
    assert re.search(r"gradcheck: (\d+) of \1 checks passed, 0 failed", out)
    for name in ("Linear", "Conv2d", "BatchNorm2d", "CrossEntropyLoss"):
        assert f"gradcheck {name}" in out


def test_gradcheck_command_fails_with_status_1(capsys, monkeypatch):
    def broken(rng=0):
        report = handgrad.gradcheck(handgrad.Linear(2, 2), np.ones((1, 2)))
        report.rows[0].passed = False
        return [("Linear", report), ("Boom", RuntimeError("exploded"))], ["NewLayer"]

    monkeypatch.setattr("handgrad.inspect.selfcheck.check_all", broken)
    status, out, err = run(capsys, "gradcheck")
    assert status == 1
    assert "Boom: FAILED with RuntimeError: exploded" in out
    assert "not covered" in out and "NewLayer" in out
    assert "0 of 2 checks passed, 2 failed" in out


def test_bench_without_torch_says_how_to_install(capsys, monkeypatch):
    real = bench.importlib.util.find_spec
    monkeypatch.setattr(bench.importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    status, out, err = run(capsys, "bench")
    assert status == 0
    assert "pip install torch==2.13.0" in out


def test_bench_without_benchmarks_folder(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(bench.importlib.util, "find_spec", lambda name, *a: object())
    monkeypatch.setattr(bench, "benchmarks_dir", lambda: tmp_path / "benchmarks")
    status, out, err = run(capsys, "bench")
    assert status == 0
    assert "not here" in out and "source checkout" in out


def test_no_subcommand_is_an_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2


def test_charlstm_trains_on_a_text_file_and_prints_a_sample(capsys, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("def add(a, b):\n    return a + b\n\n" * 60)
    status, out, err = run(capsys, "train", "--model", "charlstm", "--data-path", str(corpus),
                           "--epochs", "1", "--batch-size", "4")
    assert status == 0, err
    assert "sample (temperature 0.8):\ndef " in out
    assert re.search(r"charlstm on text: validation loss \d+\.\d+ nats/char .* after 1 epochs",
                     out)


def test_charlstm_missing_text_file(capsys, tmp_path):
    status, out, err = run(capsys, "train", "--model", "charlstm", "--data-path",
                           str(tmp_path / "missing.txt"))
    assert status == 2 and "no such file" in err


def write_idx(path, array):
    """An IDX file (unsigned bytes) as MNIST ships it."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_lenet5_on_mnist_idx_files(capsys, tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 96), ("t10k", 32)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 40, (n, 28, 28))
        images[np.arange(n), 2 * labels + 3, 4:24] = 255  # a learnable stripe per class
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", images)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", labels)
    status, out, err = run(capsys, "train", "--model", "lenet5", "--dataset", "mnist",
                           "--data-path", str(tmp_path), "--epochs", "1", "--quiet",
                           "--threads", "1")
    assert status == 0, err
    assert "lenet5 on mnist: test accuracy" in out and "test set of 32" in out


def test_resnet20_on_cifar10_binary_batches(capsys, tmp_path):
    rng = np.random.default_rng(0)
    for name, n in [(f"data_batch_{i}.bin", 8) for i in range(1, 6)] + [("test_batch.bin", 8)]:
        records = rng.integers(0, 256, (n, 3073), dtype=np.uint8)
        records[:, 0] = rng.integers(0, 10, n)
        (tmp_path / name).write_bytes(records.tobytes())
    status, out, err = run(capsys, "train", "--model", "resnet20", "--dataset", "cifar10",
                           "--data-path", str(tmp_path), "--epochs", "1", "--batch-size", "16",
                           "--quiet", "--threads", "1")
    assert status == 0, err
    assert "resnet20 on cifar10: test accuracy" in out and "test set of 8" in out


def test_inspect_a_trained_checkpoint_end_to_end(capsys, tmp_path):
    ckpt = tmp_path / "ckpt"
    assert run(capsys, "train", "--max-samples", "150", "--epochs", "1", "--quiet",
               "--checkpoint-dir", str(ckpt))[0] == 0
    status, out, _ = run(capsys, "inspect", str(ckpt), "--out", str(tmp_path / "plots"),
                         "--samples", "16", "--images", "3", "--steps", "8", "--check")
    assert status == 0
    assert "handgrad inspect: cnn from" in out and "BatchNorm2d" in out
    assert "completeness error" in out
    assert "first layer whose backward disagrees: none" in out
    for name in ("gradient_flow.png", "saliency.png", "integrated_gradients.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 1000, name


def test_inspect_recognises_the_architecture_and_refuses_bad_input(capsys, tmp_path):
    from handgrad.cli.inspect import load_model

    state = handgrad.models.mlp(64, (32, 16), 10, rng=0).state_dict()
    name, model = load_model(state, None)
    assert name == "mlp" and [p.shape for p in model.parameters()][2] == (16, 32)
    assert load_model(handgrad.models.lenet5(rng=0).state_dict(), None)[0] == "lenet5"
    status, _, err = run(capsys, "inspect", str(tmp_path / "missing.npz"))
    assert status == 2 and "does not exist" in err


def test_inspect_a_charlstm_checkpoint(capsys, tmp_path):
    ckpt = tmp_path / "ckpt"
    assert run(capsys, "train", "--model", "charlstm", "--dataset", "text", "--max-samples",
               "12000", "--epochs", "1", "--quiet", "--checkpoint-dir", str(ckpt))[0] == 0
    status, out, err = run(capsys, "inspect", str(ckpt), "--max-samples", "12000", "--out",
                           str(tmp_path / "plots"), "--samples", "4", "--images", "2",
                           "--steps", "4")
    assert status == 0, err
    assert "handgrad inspect: charlstm" in out and "LSTM BPTT profile over 64 steps" in out
    assert "completeness error" in out
    for name in ("gradient_flow.png", "tokens.png", "bptt.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 1000, name
    status, _, err = run(capsys, "inspect", str(ckpt), "--max-samples", "3000")
    assert status == 2 and "vocabulary" in err
