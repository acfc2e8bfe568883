"""DataLoader, TensorDataset, random_split and train_val_split."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handgrad.data import DataLoader, Subset, TensorDataset, random_split, train_val_split


def _pairs(n):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n, dtype=np.int64)
    return x, y


class ListDataset:
    """A generic indexable dataset (no arrays inside): exercises the per-sample path."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return np.full((2,), i, dtype=np.float32), i


def test_tensor_dataset_indexing_and_length():
    x, y = _pairs(5)
    ds = TensorDataset(x, y)
    assert len(ds) == 5
    xi, yi = ds[3]
    np.testing.assert_array_equal(xi, x[3])
    assert yi == 3


def test_tensor_dataset_rejects_mismatched_first_dims():
    with pytest.raises(ValueError, match=r"same first dimension.*\(4, 3\).*\(5,\)"):
        TensorDataset(np.zeros((4, 3)), np.zeros(5))
    with pytest.raises(ValueError):
        TensorDataset()


@given(n=st.integers(1, 40), batch=st.integers(1, 12), drop_last=st.booleans(),
       shuffle=st.booleans())
def test_batches_cover_dataset_once(n, batch, drop_last, shuffle):
    x, y = _pairs(n)
    loader = DataLoader((x, y), batch_size=batch, shuffle=shuffle, drop_last=drop_last, rng=0)
    batches = list(loader)
    assert len(batches) == len(loader)
    expected_len = n // batch if drop_last else -(-n // batch)
    assert len(loader) == expected_len
    seen = np.concatenate([b[1] for b in batches]) if batches else np.zeros(0, np.int64)
    if drop_last:
        assert all(b[0].shape[0] == batch for b in batches)
        assert seen.size == expected_len * batch
    else:
        assert sorted(seen.tolist()) == list(range(n))
    for bx, by in batches:
        np.testing.assert_array_equal(bx, x[by])  # fields stay paired
        assert bx.dtype == np.float32 and by.dtype == np.int64
    if not shuffle:
        assert seen.tolist() == list(range(seen.size))


def test_shuffle_is_new_each_epoch_and_reproducible_with_seed():
    x, y = _pairs(50)
    a = DataLoader((x, y), batch_size=50, shuffle=True, rng=7)
    epoch1 = next(iter(a))[1]
    epoch2 = next(iter(a))[1]
    assert not np.array_equal(epoch1, epoch2)
    b = DataLoader((x, y), batch_size=50, shuffle=True, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(next(iter(b))[1], epoch1)
    np.testing.assert_array_equal(next(iter(b))[1], epoch2)


def test_saving_loader_rng_state_resumes_the_order():
    x, y = _pairs(30)
    loader = DataLoader((x, y), batch_size=30, shuffle=True, rng=3)
    next(iter(loader))
    state = loader.rng.bit_generator.state
    expected = next(iter(loader))[1]
    other = DataLoader((x, y), batch_size=30, shuffle=True, rng=99)
    other.rng.bit_generator.state = state
    np.testing.assert_array_equal(next(iter(other))[1], expected)


def test_single_array_yields_one_tuples_and_batches_are_copies():
    x, _ = _pairs(6)
    original = x.copy()
    (batch,) = next(iter(DataLoader(x, batch_size=4)))
    batch[...] = -1
    np.testing.assert_array_equal(x, original)


def test_generic_dataset_collates_with_stack():
    loader = DataLoader(ListDataset(7), batch_size=3, shuffle=True, rng=1)
    batches = list(loader)
    assert [b[0].shape for b in batches] == [(3, 2), (3, 2), (1, 2)]
    labels = np.concatenate([b[1] for b in batches])
    assert sorted(labels.tolist()) == list(range(7))
    for bx, by in batches:
        np.testing.assert_array_equal(bx[:, 0], by)


def test_transform_applies_to_inputs_only():
    x, y = _pairs(4)
    loader = DataLoader((x, y), batch_size=4, transform=lambda b: b * 2)
    bx, by = next(iter(loader))
    np.testing.assert_array_equal(bx, x * 2)
    np.testing.assert_array_equal(by, y)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(np.zeros((3, 1)), batch_size=0)
    with pytest.raises(TypeError, match="__len__"):
        DataLoader(42)
    with pytest.raises(TypeError, match="transform"):
        DataLoader(np.zeros((3, 1)), transform=5)


def test_random_split_lengths_and_fractions():
    x, y = _pairs(10)
    parts = random_split((x, y), [7, 3], rng=0)
    assert [len(p) for p in parts] == [7, 3]
    all_idx = np.concatenate([p.indices for p in parts])
    assert sorted(all_idx.tolist()) == list(range(10))
    parts = random_split(TensorDataset(x, y), [0.5, 0.3, 0.2], rng=0)
    assert [len(p) for p in parts] == [5, 3, 2]
    parts = random_split(TensorDataset(x, y), [1 / 3, 1 / 3, 1 / 3], rng=0)
    assert sum(len(p) for p in parts) == 10
    with pytest.raises(ValueError, match="sum"):
        random_split((x, y), [4, 4])
    with pytest.raises(ValueError, match="sum to 1"):
        random_split((x, y), [0.5, 0.2])


def test_loader_over_subset_uses_subset_samples():
    x, y = _pairs(20)
    train, val = random_split(TensorDataset(x, y), [15, 5], rng=4)
    inner, _ = random_split(train, [10, 5], rng=5)  # a subset of a subset
    for subset in (val, inner):
        got = np.concatenate([b[1] for b in DataLoader(subset, batch_size=4, shuffle=True)])
        assert sorted(got.tolist()) == sorted(y[np.asarray(
            subset.indices if subset is val else train.indices[subset.indices])].tolist())
    assert isinstance(val, Subset)
    np.testing.assert_array_equal(val[0][0], x[val.indices[0]])


def test_train_val_split_sizes_and_disjointness():
    x, y = _pairs(50)
    (xt, yt), (xv, yv) = train_val_split(x, y, 0.2, rng=0)
    assert xt.shape == (40, 3) and xv.shape == (10, 3)
    assert set(yt.tolist()).isdisjoint(yv.tolist())
    assert sorted(np.concatenate([yt, yv]).tolist()) == list(range(50))
    np.testing.assert_array_equal(xv, x[yv])
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(x, y, 1.5)
    with pytest.raises(ValueError, match="both need at least one"):
        train_val_split(x[:3], y[:3], 0.01)
    with pytest.raises(ValueError, match="same first dimension"):
        train_val_split(x, y[:4], 0.2)


def test_stratified_split_keeps_class_shares():
    y = np.repeat(np.arange(3), [60, 30, 10])
    x = np.arange(100, dtype=np.float32)[:, None]
    (_, yt), (_, yv) = train_val_split(x, y, 0.2, rng=1, stratify=True)
    assert np.bincount(yv, minlength=3).tolist() == [12, 6, 2]
    assert np.bincount(yt, minlength=3).tolist() == [48, 24, 8]
    with pytest.raises(ValueError, match="1-D class labels"):
        train_val_split(x, np.zeros((100, 2)), 0.2, stratify=True)


def test_loader_state_dict_resumes_orders_and_augmentations():
    from handgrad.data import Compose, RandomCrop, RandomHorizontalFlip

    x = np.random.default_rng(0).standard_normal((12, 1, 4, 4)).astype(np.float32)
    y = np.arange(12)

    def make(seed):
        t = Compose([RandomCrop(4, padding=1, rng=seed + 1), RandomHorizontalFlip(rng=seed + 2)])
        return DataLoader((x, y), batch_size=5, shuffle=True, rng=seed, transform=t)

    loader = make(0)
    list(loader)  # epoch 1
    state = loader.state_dict()
    expected = list(loader)  # epoch 2
    resumed = make(50)
    resumed.load_state_dict(state)
    for (ex, ey), (gx, gy) in zip(expected, resumed):
        np.testing.assert_array_equal(ex, gx)
        np.testing.assert_array_equal(ey, gy)
    assert len(state["generators"]) == 3
    with pytest.raises(ValueError, match="expected 1 generator states"):
        DataLoader((x, y)).load_state_dict(state)
