"""Dataset loaders on tiny files written in the real formats (IDX, CIFAR-10 binary)."""

from __future__ import annotations

import builtins
import gzip
import struct

import numpy as np
import pytest

from handgrad.data import load_cifar10, load_digits, load_fashion_mnist, load_mnist, read_idx


def _idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write(path, data: bytes, gz: bool):
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def _mnist_folder(tmp_path, prefix="train", n=6, gz=False, seed=0):
    gen = np.random.default_rng(seed)
    images = gen.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = gen.integers(0, 10, size=n, dtype=np.uint8)
    _write(tmp_path / f"{prefix}-images-idx3-ubyte", _idx_bytes(images), gz)
    _write(tmp_path / f"{prefix}-labels-idx1-ubyte", _idx_bytes(labels), gz)
    return images, labels


# ---------------------------------------------------------------------- digits
def test_load_digits_shape_dtype_count():
    x, y = load_digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(y).tolist()) == set(range(10))
    flat, _ = load_digits(as_images=False, dtype=np.float64)
    assert flat.shape == (1797, 64) and flat.dtype == np.float64
    np.testing.assert_allclose(flat.reshape(-1, 1, 8, 8), x, rtol=1e-6)


def test_load_digits_without_sklearn_names_the_install(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        load_digits()


# ---------------------------------------------------------------------- MNIST IDX
@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("kind,prefix", [("train", "train"), ("test", "t10k")])
def test_load_mnist_reads_idx_files(tmp_path, gz, kind, prefix):
    images, labels = _mnist_folder(tmp_path, prefix=prefix, gz=gz)
    x, y = load_mnist(tmp_path, kind=kind)
    assert x.shape == (6, 1, 28, 28) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0] * 255.0, images, atol=1e-4)
    np.testing.assert_array_equal(y, labels)
    assert y.dtype == np.int64
    x2, _ = load_fashion_mnist(str(tmp_path), kind=kind, dtype=np.float64)
    assert x2.dtype == np.float64


def test_missing_idx_file_names_the_file(tmp_path):
    _mnist_folder(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_mnist(tmp_path, kind="test")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_mnist(tmp_path, kind="val")


def test_truncated_idx_file(tmp_path):
    _mnist_folder(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: file is truncated.*"
                                         r"\(6, 28, 28\)"):
        load_mnist(tmp_path)
    path.write_bytes(path.read_bytes()[:10])
    with pytest.raises(ValueError, match="truncated IDX header"):
        load_mnist(tmp_path)


def test_truncated_gzip_file(tmp_path):
    _mnist_folder(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz: not a complete gzip"):
        load_mnist(tmp_path)


def test_bad_magic_and_mismatched_counts(tmp_path):
    images, labels = _mnist_folder(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(images))  # images as labels
    with pytest.raises(ValueError, match="expected an IDX file with 1 dimensions"):
        load_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x1f\x8b\x08\x00" + bytes(20))
    with pytest.raises(ValueError, match="bad IDX magic number"):
        load_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(labels[:4]))
    with pytest.raises(ValueError, match="holds 6 images but .* holds 4 labels"):
        load_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.full(6, 12)))
    with pytest.raises(ValueError, match="label 12"):
        load_mnist(tmp_path)


def test_read_idx_rejects_extra_bytes(tmp_path):
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(_idx_bytes(np.arange(5)) + b"junk")
    with pytest.raises(ValueError, match="longer than its header says"):
        read_idx(str(path))
    path.write_bytes(_idx_bytes(np.arange(5)))
    np.testing.assert_array_equal(read_idx(str(path), ndim=1), np.arange(5))


# ---------------------------------------------------------------------- CIFAR-10 binary
def _cifar_batch(path, n, seed):
    gen = np.random.default_rng(seed)
    labels = gen.integers(0, 10, size=n, dtype=np.uint8)
    pixels = gen.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    records = np.concatenate([labels[:, None], pixels.reshape(n, -1)], axis=1)
    path.write_bytes(records.tobytes())
    return pixels, labels


@pytest.mark.parametrize("subfolder", [False, True])
def test_load_cifar10_binary_batches(tmp_path, subfolder):
    folder = tmp_path / "cifar-10-batches-bin" if subfolder else tmp_path
    folder.mkdir(exist_ok=True)
    parts = [_cifar_batch(folder / f"data_batch_{i}.bin", 2 + i, seed=i) for i in range(1, 6)]
    test_pixels, test_labels = _cifar_batch(folder / "test_batch.bin", 3, seed=9)
    x, y = load_cifar10(tmp_path)
    assert x.shape == (sum(2 + i for i in range(1, 6)), 3, 32, 32) and x.dtype == np.float32
    np.testing.assert_allclose(x * 255.0, np.concatenate([p for p, _ in parts]), atol=1e-4)
    np.testing.assert_array_equal(y, np.concatenate([lab for _, lab in parts]))
    assert y.dtype == np.int64
    xt, yt = load_cifar10(tmp_path, train=False)
    np.testing.assert_allclose(xt * 255.0, test_pixels, atol=1e-4)
    np.testing.assert_array_equal(yt, test_labels)


def test_cifar10_missing_truncated_and_bad_labels(tmp_path):
    for i in range(1, 6):
        _cifar_batch(tmp_path / f"data_batch_{i}.bin", 2, seed=i)
    with pytest.raises(FileNotFoundError, match="test_batch.bin not found.*binary"):
        load_cifar10(tmp_path, train=False)
    (tmp_path / "data_batch_3.bin").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3.bin"):
        load_cifar10(tmp_path)
    path = tmp_path / "data_batch_3.bin"
    _cifar_batch(path, 2, seed=3)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match=r"data_batch_3.bin is 6141 bytes.*3073-byte records"):
        load_cifar10(tmp_path)
    data = bytearray(3073)
    data[0] = 57
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="label byte 57"):
        load_cifar10(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_cifar10(tmp_path / "nope")
