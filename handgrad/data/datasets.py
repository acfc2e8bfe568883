"""Image datasets read from local files; nothing is ever downloaded.

* ``load_digits`` — the 8×8 digits shipped inside scikit-learn (1,797 images).
* ``load_mnist`` / ``load_fashion_mnist`` — the IDX files, gzipped or not.
* ``load_cifar10`` — the *binary* CIFAR-10 batches (3073-byte records). The pickled
  "python version" is never read: unpickling a file can execute code.

Every loader returns ``(x, y)``: ``x`` float in [0, 1] of shape ``(N, C, H, W)`` (``dtype``,
float32 by default) and ``y`` int64 class labels of shape ``(N,)``. A missing, truncated or
corrupt file raises ``FileNotFoundError``/``ValueError`` naming the file and what was expected.
"""

from __future__ import annotations

import gzip
import os
import zlib
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

__all__ = ["load_digits", "load_mnist", "load_fashion_mnist", "load_cifar10",
           "read_idx", "CIFAR10_CLASSES", "FASHION_MNIST_CLASSES"]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")


def _float_dtype(name: str, dtype: DTypeLike) -> np.dtype:
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"{name}: expected a floating dtype, got {dtype}")
    return dtype


# ---------------------------------------------------------------------- digits
def load_digits(as_images: bool = True, dtype: DTypeLike = np.float32) -> tuple[NDArray, NDArray]:
    """scikit-learn's bundled 8×8 handwritten digits (1,797 images, classes 0-9).

    Returns ``x`` scaled to [0, 1] — shape ``(1797, 1, 8, 8)``, or ``(1797, 64)`` with
    ``as_images=False`` — and int64 labels ``y`` of shape ``(1797,)``.
    Needs scikit-learn (``pip install scikit-learn``), which ships the data in its package.
    """
    dtype = _float_dtype("load_digits", dtype)
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as err:
        raise ImportError(
            "load_digits: the 8x8 digits data ships with scikit-learn, which is not "
            "installed; run `pip install scikit-learn` (or `pip install handgrad[train]`)"
        ) from err
    bunch = sklearn_digits()
    x = (np.asarray(bunch.data, dtype=np.float64) / 16.0).astype(dtype)
    y = np.asarray(bunch.target, dtype=np.int64)
    if as_images:
        x = x.reshape(-1, 1, 8, 8)
    return x, y


# ---------------------------------------------------------------------- IDX (MNIST)
_IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _folder(loader: str, path: Any) -> str:
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{loader}: expected the data folder as a path, got "
                        f"{type(path).__name__}")
    return os.fsdecode(os.fspath(path))


def _read_bytes(path: str) -> bytes:
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory, expected a file")
    if path.endswith(".gz"):
        try:
            with gzip.open(path, "rb") as file:
                return file.read()
        except (EOFError, OSError, zlib.error) as err:
            raise ValueError(
                f"{path}: not a complete gzip file ({type(err).__name__}: {err}); the "
                f"download may be truncated"
            ) from err
    with open(path, "rb") as file:
        return file.read()


def read_idx(path: str, ndim: int | None = None) -> NDArray:
    """Read one IDX file (``.gz`` or plain) into an array, checking magic, dims and length."""
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"{path}: expected an IDX file (4-byte magic number), got "
                         f"{len(data)} bytes")
    zero, type_code, file_ndim = data[0] | data[1], data[2], data[3]
    if zero != 0 or type_code not in _IDX_TYPES:
        raise ValueError(f"{path}: bad IDX magic number 0x{data[:4].hex()} (expected "
                         f"0x0000080{ndim or 'N'} for unsigned-byte data)")
    if ndim is not None and file_ndim != ndim:
        raise ValueError(f"{path}: expected an IDX file with {ndim} dimensions (magic "
                         f"0x0000080{ndim}), got {file_ndim} (magic 0x{data[:4].hex()})")
    header = 4 + 4 * file_ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header: expected {header} bytes, got "
                         f"{len(data)}")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=file_ndim, offset=4))
    item = _IDX_TYPES[type_code]
    expected = header + int(np.prod(dims, dtype=np.int64)) * item.itemsize
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise ValueError(f"{path}: file is {state}: dims {dims} need {expected} bytes, got "
                         f"{len(data)}")
    return np.frombuffer(data, dtype=item, offset=header).reshape(dims)


def _find(folder: str, names: tuple[str, ...], loader: str, description: str) -> str:
    for name in names:
        for candidate in (name, name + ".gz"):
            full = os.path.join(folder, candidate)
            if os.path.isfile(full):
                return full
    raise FileNotFoundError(
        f"{loader}: {os.path.join(folder, names[0])}[.gz] not found; expected {description} "
        f"in {folder} (handgrad never downloads data: put the files there yourself)"
    )


def _load_idx_pair(loader: str, path: str, kind: str, dtype: DTypeLike,
                   num_classes: int = 10) -> tuple[NDArray, NDArray]:
    dtype = _float_dtype(loader, dtype)
    if kind not in ("train", "test"):
        raise ValueError(f"{loader}: expected kind 'train' or 'test', got {kind!r}")
    folder = _folder(loader, path)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{loader}: data folder {folder} does not exist")
    prefix = "train" if kind == "train" else "t10k"
    description = (f"the IDX files {prefix}-images-idx3-ubyte and {prefix}-labels-idx1-ubyte "
                   f"(gzipped or not)")
    images_path = _find(folder, (f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"),
                        loader, description)
    labels_path = _find(folder, (f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"),
                        loader, description)
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise ValueError(f"{loader}: expected unsigned-byte IDX data in {images_path} and "
                         f"{labels_path}, got {images.dtype} and {labels.dtype}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{loader}: {images_path} holds {images.shape[0]} images but "
                         f"{labels_path} holds {labels.shape[0]} labels")
    if labels.size and labels.max() >= num_classes:
        raise ValueError(f"{loader}: {labels_path} has label {int(labels.max())}; expected "
                         f"labels 0..{num_classes - 1}")
    x = images.astype(dtype)
    x *= dtype.type(1.0 / 255.0)
    return x.reshape(images.shape[0], 1, *images.shape[1:]), labels.astype(np.int64)


def load_mnist(path: str | os.PathLike, kind: str = "train",
               dtype: DTypeLike = np.float32) -> tuple[NDArray, NDArray]:
    """MNIST from the IDX files in folder ``path`` (``train-*`` or ``t10k-*`` for 'test').

    Returns ``x`` of shape ``(N, 1, 28, 28)`` scaled to [0, 1] and int64 labels ``(N,)``.
    """
    return _load_idx_pair("load_mnist", path, kind, dtype)


def load_fashion_mnist(path: str | os.PathLike, kind: str = "train",
                       dtype: DTypeLike = np.float32) -> tuple[NDArray, NDArray]:
    """Fashion-MNIST (same IDX files and names as MNIST); classes in ``FASHION_MNIST_CLASSES``."""
    return _load_idx_pair("load_fashion_mnist", path, kind, dtype)


# ---------------------------------------------------------------------- CIFAR-10
_CIFAR_RECORD = 1 + 3 * 32 * 32


def _read_cifar_batch(path: str) -> tuple[NDArray, NDArray]:
    with open(path, "rb") as file:
        data = file.read()
    if len(data) == 0 or len(data) % _CIFAR_RECORD:
        raise ValueError(
            f"load_cifar10: {path} is {len(data)} bytes; expected a whole number of "
            f"{_CIFAR_RECORD}-byte records (1 label byte + 3x32x32 pixels; 10000 records in "
            f"a full batch) — the file is truncated or not the binary version"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
    labels = records[:, 0]
    if labels.max() > 9:
        raise ValueError(f"load_cifar10: {path} has label byte {int(labels.max())}; expected "
                         f"0..9 (is this the CIFAR-100 or the pickled version?)")
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


def load_cifar10(path: str | os.PathLike, train: bool = True,
                 dtype: DTypeLike = np.float32) -> tuple[NDArray, NDArray]:
    """CIFAR-10 from the binary batches in ``path`` (or its ``cifar-10-batches-bin`` folder).

    ``train=True`` reads ``data_batch_1.bin`` .. ``data_batch_5.bin`` (50,000 images),
    ``train=False`` reads ``test_batch.bin`` (10,000). Returns ``x`` of shape
    ``(N, 3, 32, 32)`` scaled to [0, 1] and int64 labels; names in ``CIFAR10_CLASSES``.
    """
    dtype = _float_dtype("load_cifar10", dtype)
    folder = _folder("load_cifar10", path)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"load_cifar10: data folder {folder} does not exist")
    sub = os.path.join(folder, "cifar-10-batches-bin")
    if os.path.isdir(sub) and not os.path.isfile(os.path.join(folder, "test_batch.bin")):
        folder = sub
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if train else ["test_batch.bin"]
    xs, ys = [], []
    for name in names:
        full = os.path.join(folder, name)
        if not os.path.isfile(full):
            raise FileNotFoundError(
                f"load_cifar10: {full} not found; expected the binary CIFAR-10 batches "
                f"({', '.join(names)}) from cifar-10-binary.tar.gz in {folder} (the pickled "
                f"python version is not read; handgrad never downloads data)"
            )
        x, y = _read_cifar_batch(full)
        xs.append(x)
        ys.append(y)
    images = np.concatenate(xs) if len(xs) > 1 else xs[0]
    x = images.astype(dtype)
    x *= dtype.type(1.0 / 255.0)
    return x, np.concatenate(ys).astype(np.int64)
