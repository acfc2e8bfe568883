"""Batch transforms: Normalize, RandomCrop, RandomHorizontalFlip, Compose."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handgrad.data import Compose, Normalize, RandomCrop, RandomHorizontalFlip


def _images(n=5, c=3, h=6, w=7, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalize_per_channel(dtype):
    x = _images(dtype=dtype)
    mean, std = [0.1, 0.2, 0.3], [0.5, 2.0, 4.0]
    y = Normalize(mean, std)(x)
    assert y.dtype == dtype
    expected = (x.astype(np.float64) - np.reshape(mean, (1, 3, 1, 1))) / np.reshape(
        std, (1, 3, 1, 1))
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)


def test_normalize_scalar_and_features_and_errors():
    x = np.ones((4, 2), dtype=np.float32)
    np.testing.assert_allclose(Normalize(0.5, 0.25)(x), 2.0)
    with pytest.raises(ValueError, match="3 values but the batch has 2 channels"):
        Normalize([0, 0, 0], [1, 1, 1])(x)
    with pytest.raises(ValueError, match="std > 0"):
        Normalize(0.0, 0.0)
    with pytest.raises(TypeError, match="floating"):
        Normalize(0.0, 1.0)(np.ones((2, 2), dtype=np.int64))


def _reference_crop(x, size, padding, top, left):
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    return np.stack([padded[i, :, t:t + size[0], l:l + size[1]]
                     for i, (t, l) in enumerate(zip(top, left))])


@given(n=st.integers(1, 6), h=st.integers(3, 9), w=st.integers(3, 9),
       padding=st.integers(0, 3), seed=st.integers(0, 1000))
def test_random_crop_matches_per_image_reference(n, h, w, padding, seed):
    x = _images(n=n, c=2, h=h, w=w, seed=seed)
    size = (h, w - 1) if w > 1 else (h, w)
    crop = RandomCrop(size, padding, rng=seed)
    y = crop(x)
    assert y.shape == (n, 2) + size and y.dtype == np.float32
    # replay the same offsets from an identically seeded generator
    gen = np.random.default_rng(seed)
    top = gen.integers(0, h + 2 * padding - size[0] + 1, size=n)
    left = gen.integers(0, w + 2 * padding - size[1] + 1, size=n)
    np.testing.assert_array_equal(y, _reference_crop(x, size, padding, top, left))


def test_random_crop_varies_offsets_and_checks_size():
    x = np.tile(np.arange(8, dtype=np.float32), (64, 1, 8, 1))  # each row = 0..7
    y = RandomCrop(8, padding=2, rng=0)(x)
    # the first column shows the horizontal offset: several different ones over the batch
    assert len(np.unique(y[:, 0, 4, 0])) > 2
    with pytest.raises(ValueError, match="larger than the padded image"):
        RandomCrop(12, padding=1)(x)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        RandomCrop(2)(np.zeros((2, 3), np.float32))


def test_random_horizontal_flip():
    x = _images(n=200, seed=3)
    y = RandomHorizontalFlip(p=0.5, rng=1)(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    flipped = np.array([np.array_equal(y[i], x[i, :, :, ::-1]) for i in range(200)])
    kept = np.array([np.array_equal(y[i], x[i]) for i in range(200)])
    assert np.all(flipped | kept)
    assert 60 < flipped.sum() < 140
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1.0)(x), x[..., ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0)(x), x)
    with pytest.raises(ValueError, match="p in"):
        RandomHorizontalFlip(p=2)


def test_compose_chains_in_order():
    x = _images()
    t = Compose([RandomHorizontalFlip(p=1.0), Normalize(1.0, 2.0)])
    np.testing.assert_allclose(t(x), (x[..., ::-1] - 1.0) / 2.0, rtol=1e-6)
    assert "Normalize" in repr(t)
    with pytest.raises(TypeError):
        Compose([1])
