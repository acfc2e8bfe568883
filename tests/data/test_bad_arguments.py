"""Bad arguments to the data utilities: clean errors that name the function or class.

Each case, before this audit, was accepted silently (a string or dict as a dataset, a
non-bool shuffle, float indices), raised an error from inside NumPy or Python without a
source, or a raw IsADirectoryError.
"""

from __future__ import annotations

import numpy as np
import pytest

from handgrad.data import (
    CharVocab,
    DataLoader,
    Subset,
    TensorDataset,
    load_cifar10,
    load_mnist,
    random_split,
    read_idx,
    train_val_split,
)

X = np.zeros((10, 3), np.float32)
Y = np.arange(10)


def raises(error, prefix, call):
    with pytest.raises(error) as info:
        call()
    assert str(info.value).startswith(prefix), str(info.value)


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, "4", None, True])
def test_dataloader_batch_size(batch_size):
    raises(ValueError, "DataLoader: expected a positive integer batch_size",
           lambda: DataLoader((X, Y), batch_size=batch_size))


@pytest.mark.parametrize("dataset", ["abc", b"abc", {"x": X}, None, 5])
def test_dataloader_refuses_non_datasets(dataset):
    raises(TypeError, "DataLoader: expected an array, a tuple of arrays or a dataset",
           lambda: DataLoader(dataset, batch_size=4))


def test_dataloader_flags_and_rng():
    raises(TypeError, "DataLoader: expected shuffle True or False",
           lambda: DataLoader((X, Y), shuffle="yes"))
    raises(TypeError, "DataLoader: expected drop_last True or False",
           lambda: DataLoader((X, Y), drop_last=1))
    raises(TypeError, "DataLoader: expected a numpy.random.Generator",
           lambda: DataLoader((X, Y), shuffle=True, rng="x"))


def test_dataloader_array_like_pairs_and_mismatches():
    batches = list(DataLoader((X.tolist(), Y.tolist()), batch_size=4))  # lists: as arrays
    assert [b[0].shape for b in batches] == [(4, 3), (4, 3), (2, 3)]
    raises(ValueError, "TensorDataset: expected arrays with the same first dimension",
           lambda: DataLoader((X, Y[:5]), batch_size=4))
    raises(ValueError, "TensorDataset: array 0 is a scalar",
           lambda: DataLoader((np.float32(1), np.int64(1))))
    raises(ValueError, "DataLoader: cannot batch samples of different shapes",
           lambda: list(DataLoader([X, Y], batch_size=2)))  # a list, not the tuple (x, y)


def test_empty_datasets_give_no_batches():
    for shuffle in (False, True):
        loader = DataLoader((X[:0], Y[:0]), batch_size=4, shuffle=shuffle, rng=0)
        assert len(loader) == 0 and list(loader) == []


def test_subset_indices():
    data = TensorDataset(X)
    raises(TypeError, "Subset: expected integer indices, got dtype float64",
           lambda: Subset(data, [1.5]))  # was silently truncated to 1
    raises(TypeError, "Subset: expected integer indices", lambda: Subset(data, "ab"))
    raises(TypeError, "Subset: expected a dataset", lambda: Subset(None, [1]))
    raises(ValueError, "Subset: indices out of range", lambda: Subset(data, [20]))
    assert len(Subset(data, [])) == 0


def test_random_split_and_train_val_split_arguments():
    data = TensorDataset(X)
    raises(TypeError, "random_split: expected a list of lengths", lambda: random_split(data, 5))
    raises(TypeError, "random_split: expected integer lengths or float fractions",
           lambda: random_split(data, ["a"]))
    raises(TypeError, "random_split: expected an array", lambda: random_split(None, [5, 5]))
    raises(ValueError, "random_split: lengths [5, 6]", lambda: random_split(data, [5, 6]))
    raises(ValueError, "train_val_split: expected val_fraction in (0, 1)",
           lambda: train_val_split(X, Y, "a"))
    raises(ValueError, "train_val_split: expected x and y with the same first dimension",
           lambda: train_val_split(X, Y[:3], 0.2))


def test_dataset_files_and_folders(tmp_path):
    raises(ValueError, f"{tmp_path}: is a directory", lambda: read_idx(str(tmp_path)))
    raises(TypeError, "load_mnist: expected the data folder as a path", lambda: load_mnist(None))
    raises(TypeError, "load_cifar10: expected the data folder as a path",
           lambda: load_cifar10(None))
    raises(FileNotFoundError, "load_mnist: data folder", lambda: load_mnist(tmp_path / "no"))
    raises(TypeError, "CharVocab: expected a string or an iterable", lambda: CharVocab(None))
