"""Window kernels: output-size arithmetic, padding, im2col and its adjoint col2im."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handgrad.ops import (
    ColumnFrame,
    clear_scratch,
    col2im,
    col2im_wide,
    column_frame,
    im2col,
    im2col_wide,
    output_shape,
    output_size,
    pack_strip,
    pad2d,
    pair,
    resolve_padding,
    scratch,
    strip_images,
    strip_period,
    unpad2d,
    window_slice,
    window_view,
)


@given(size=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 5), p=st.integers(0, 3),
       d=st.integers(1, 3))
def test_output_size_matches_pytorch_formula_and_window_count(size, k, s, p, d):
    expected = math.floor((size + 2 * p - d * (k - 1) - 1) / s) + 1
    starts = [o for o in range(0, size + 2 * p) if o % s == 0 and o + d * (k - 1) < size + 2 * p]
    if size + 2 * p - d * (k - 1) - 1 < 0:
        assert output_size(size, k, s, p, d) == 0
        assert starts == []
    else:
        assert output_size(size, k, s, p, d) == expected == len(starts)


@given(size=st.integers(1, 40), k=st.integers(1, 5), s=st.integers(1, 4), d=st.integers(1, 2),
       data=st.data())
def test_ceil_mode_output_size_follows_pytorch_rule(size, k, s, d, data):
    p = data.draw(st.integers(0, k // 2))
    span = size + 2 * p - d * (k - 1) - 1
    if span < 0:
        return
    expected = math.ceil(span / s) + 1
    if (expected - 1) * s >= size + p:  # last window must start inside input or left padding
        expected -= 1
    got = output_size(size, k, s, p, d, ceil_mode=True)
    assert got == expected
    assert got - output_size(size, k, s, p, d) in (0, 1)


def test_asymmetric_padding_counts_both_sides():
    assert output_size(5, 4, 1, (1, 2), 1) == 5
    assert output_shape((7, 9), (3, 3), (2, 2), ((1, 1), (0, 0))) == (4, 4)


def test_output_shape_raises_when_output_would_be_empty():
    with pytest.raises(ValueError, match=r"Conv2d.*\(2, 2\).*too small"):
        output_shape((2, 2), (3, 3), (1, 1), ((0, 0), (0, 0)), who="Conv2d")


def test_pair_normalises_and_rejects():
    assert pair(3) == (3, 3)
    assert pair((2, 5)) == (2, 5)
    assert pair(0, "padding", minimum=0) == (0, 0)
    for bad in (0, -1, (1, 0), (1, 2, 3), 1.5, True, "3"):
        with pytest.raises(ValueError, match="X"):
            pair(bad, "stride", who="X")


def test_resolve_padding_same_and_valid():
    assert resolve_padding("valid", (3, 3)) == ((0, 0), (0, 0))
    assert resolve_padding("same", (3, 5)) == ((1, 1), (2, 2))
    # even kernel: the extra pixel goes after, as PyTorch does
    assert resolve_padding("same", (4, 2)) == ((1, 2), (0, 1))
    assert resolve_padding("same", (3, 2), dilation=(2, 3)) == ((2, 2), (1, 2))
    assert resolve_padding((1, 2), (3, 3)) == ((1, 1), (2, 2))
    with pytest.raises(ValueError, match="stride 1"):
        resolve_padding("same", (3, 3), stride=(2, 1))
    with pytest.raises(ValueError, match="padding"):
        resolve_padding("full", (3, 3))


@given(t=st.integers(0, 2), b=st.integers(0, 2), l=st.integers(0, 2), r=st.integers(0, 2))
def test_pad2d_and_unpad2d_round_trip(t, b, l, r):
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    xp = pad2d(x, ((t, b), (l, r)), value=-np.inf)
    assert xp.shape == (2, 3, 4 + t + b, 5 + l + r) and xp.dtype == np.float32
    np.testing.assert_array_equal(unpad2d(xp, ((t, b), (l, r))), x)
    assert np.isneginf(xp).sum() == xp.size - x.size


@st.composite
def window_configs(draw):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    H = draw(st.integers(dh * (kh - 1) + 1, 8))
    W = draw(st.integers(dw * (kw - 1) + 1, 8))
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    return (N, C, H, W), (kh, kw), (sh, sw), (dh, dw), seed


@given(window_configs())
def test_im2col_matches_definition(config):
    shape, k, s, d, seed = config
    x = np.random.default_rng(seed).standard_normal(shape)
    cols = im2col(x, k, s, d)
    N, C, H, W = shape
    oh, ow = output_shape((H, W), k, s, ((0, 0), (0, 0)), d)
    assert cols.shape == (C * k[0] * k[1], N * oh * ow)
    c6 = cols.reshape(C, k[0], k[1], N, oh, ow)
    for c in range(C):
        for i in range(k[0]):
            for j in range(k[1]):
                for n in range(N):
                    expected = x[n, c, i * d[0]::s[0], j * d[1]::s[1]][:oh, :ow]
                    np.testing.assert_array_equal(c6[c, i, j, n], expected)


@given(window_configs())
def test_col2im_is_the_adjoint_of_im2col(config):
    # <im2col(x), c> == <x, col2im(c)> for every x, c: col2im is the exact transpose.
    shape, k, s, d, seed = config
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    cols = im2col(x, k, s, d)
    c = rng.standard_normal(cols.shape)
    back = col2im(c, shape, k, s, d)
    assert back.shape == shape
    np.testing.assert_allclose(np.vdot(cols, c), np.vdot(x, back), rtol=1e-12, atol=1e-12)


def test_im2col_reuses_out_buffer_and_keeps_float32():
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    first = im2col(x, (3, 3), (1, 1))
    again = im2col(x * 2, (3, 3), (1, 1), out=first)
    assert again is first and again.dtype == np.float32
    np.testing.assert_array_equal(again, 2 * im2col(x, (3, 3), (1, 1)))
    assert col2im(again, x.shape, (3, 3), (1, 1)).dtype == np.float32


def test_window_view_is_read_only_windows():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    v = window_view(x, (2, 2), (2, 2))
    assert v.shape == (1, 1, 2, 2, 2, 2)
    np.testing.assert_array_equal(v[0, 0, :, :, 1, 0], [[8, 9], [12, 13]])
    assert not v.flags.writeable


@pytest.mark.parametrize("contiguous", [True, False])
def test_window_view_of_a_batch_slice_matches_indexing(contiguous):
    # Views over the buffer of a contiguous input (a chunk of the batch, offset into a
    # larger array) and strided views of a non-contiguous input give the same windows.
    base = np.arange(3 * 2 * 5 * 6, dtype=np.float32).reshape(3, 2, 5, 6)
    x = base[1:3] if contiguous else base[:, :, :, ::2]
    assert x.flags.c_contiguous == contiguous
    v = window_view(x, (2, 2), (1, 2), (2, 1))
    N, C, H, W = x.shape
    for i in range(2):
        for j in range(2):
            rows, cols = window_slice(i, j, v.shape[4:], (1, 2), (2, 1))
            np.testing.assert_array_equal(v[:, :, i, j], x[:, :, rows, cols])
    assert not v.flags.writeable


@given(window_configs())
def test_im2col_wide_holds_the_stride_one_columns(config):
    shape, k, _, d, seed = config
    x = np.random.default_rng(seed).standard_normal(shape)
    N, C, H, W = shape
    oh, ow = H - d[0] * (k[0] - 1), W - d[1] * (k[1] - 1)
    wide = im2col_wide(x, k, d)
    assert wide.shape == (C * k[0] * k[1], N * oh * W)
    valid = wide.reshape(-1, N, oh, W)[..., :ow].reshape(-1, N * oh * ow)
    np.testing.assert_array_equal(valid, im2col(x, k, (1, 1), d))
    assert np.isfinite(wide).all()


@given(window_configs())
def test_col2im_wide_is_the_adjoint_of_im2col_wide(config):
    shape, k, _, d, seed = config
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    N, C, H, W = shape
    oh, ow = H - d[0] * (k[0] - 1), W - d[1] * (k[1] - 1)
    c = rng.standard_normal((C * k[0] * k[1], N, oh, W))
    c[..., ow:] = 0.0  # garbage columns carry no gradient
    c = c.reshape(C * k[0] * k[1], -1)
    back = col2im_wide(c, shape, k, d)
    np.testing.assert_allclose(np.vdot(im2col_wide(x, k, d), c), np.vdot(x, back), rtol=1e-12,
                               atol=1e-12)


@given(window_configs())
def test_column_frame_col2im_is_the_adjoint_of_im2col_wide(config):
    shape, k, _, d, seed = config
    rng = np.random.default_rng(seed)
    _, C, H, W = shape
    x = rng.standard_normal((1, C, H, W))
    oh, ow = H - d[0] * (k[0] - 1), W - d[1] * (k[1] - 1)
    frame = ColumnFrame(C, (H, W), k, d, np.float64)
    assert frame.columns.shape == (C * k[0] * k[1], oh * W)
    for _ in range(2):  # the same frame again: its gaps are still zero
        c = rng.standard_normal((C * k[0] * k[1], oh, W))
        c[..., ow:] = 0.0  # garbage columns carry no gradient
        frame.columns[...] = c.reshape(frame.columns.shape)
        back = frame.col2im()
        assert back.shape == (C, H, W)
        np.testing.assert_allclose(np.vdot(im2col_wide(x, k, d), frame.columns),
                                   np.vdot(x, back), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(back, col2im_wide(frame.columns, (1, C, H, W), k, d)[0],
                                   rtol=1e-12, atol=1e-12)
    out = np.full((C, H, W), np.nan)
    assert frame.col2im(out) is out and np.isfinite(out).all()


def test_column_frame_rejects_a_kernel_larger_than_the_image_and_a_bad_out():
    with pytest.raises(ValueError, match="ColumnFrame"):
        ColumnFrame(2, (3, 8), (5, 5))
    frame = ColumnFrame(2, (6, 6), (3, 3))
    with pytest.raises(ValueError, match=r"C-contiguous out of shape \(2, 6, 6\)"):
        frame.col2im(np.empty((2, 6, 6), np.float32)[:, :, ::-1])
    with pytest.raises(ValueError, match="ColumnFrame.col2im"):
        frame.col2im(np.empty((2, 36), np.float32))


def test_column_frames_are_kept_per_key_and_geometry():
    clear_scratch()
    a = column_frame("test.frame", 2, (6, 9), (3, 3), (1, 1), np.float32)
    assert column_frame("test.frame", 2, (6, 9), (3, 3), (1, 1), np.float32) is a
    others = [column_frame("test.frame", 2, (6, 9), (3, 3), (1, 1), np.float64),
              column_frame("test.frame", 2, (6, 10), (3, 3), (1, 1), np.float32),
              column_frame("test.frame.1", 2, (6, 9), (3, 3), (1, 1), np.float32)]
    assert all(f is not a for f in others) and len({id(f) for f in others}) == 3
    for width in range(11, 30):  # at most 16 are kept: the least recently used goes first
        column_frame("test.frame", 1, (4, width), (3, 3), (1, 1), np.float32)
    assert column_frame("test.frame", 2, (6, 9), (3, 3), (1, 1), np.float32) is not a
    b = column_frame("test.frame", 3, (6, 9), (3, 3), (1, 1), np.float32)
    for width in range(11, 40):  # used between the others: it stays
        column_frame("test.frame", 1, (4, width), (3, 3), (1, 1), np.float32)
        assert column_frame("test.frame", 3, (6, 9), (3, 3), (1, 1), np.float32) is b
    clear_scratch()


def test_scratch_reuses_memory_per_key_and_dtype():
    a = scratch("test.window", (3, 4), np.float32)
    b = scratch("test.window", (2, 5), np.float32)
    assert b.shape == (2, 5) and np.shares_memory(a, b)
    assert not np.shares_memory(a, scratch("test.window", (3, 4), np.float64))
    assert scratch("test.window", (100,), np.float32).shape == (100,)


@given(n=st.integers(1, 4), c=st.integers(1, 3), h=st.integers(1, 5), w=st.integers(1, 6),
       pads=st.tuples(*[st.integers(0, 3)] * 4), k=st.integers(1, 4), d=st.integers(1, 2),
       extra=st.integers(0, 3), seed=st.integers(0, 99))
def test_strip_holds_images_side_by_side_with_zeros_between(n, c, h, w, pads, k, d, extra,
                                                            seed):
    top, bottom, left, right = pads
    x = np.random.default_rng(seed).standard_normal((n, c, h, w)) + 5  # never 0
    period = strip_period(w, (left, right), k, d)
    out = np.full((c, h + top + bottom, left + n * period + extra), np.nan)
    assert pack_strip(x, ((top, bottom), (left, right)), period, out) is out
    np.testing.assert_array_equal(strip_images(out[:, top:top + h], n, period, w, left), x)
    assert np.count_nonzero(out) == x.size  # everything else is zero (NaN would count)
    # Between two images there is room for one's right padding and the next one's left
    # padding, and one image's stride-1 outputs end before the next image's begin.
    gap = period - w
    assert gap >= max(left, right) and w + left + right - d * (k - 1) <= period
    # Placement is the inverse of strip_images for any leading axes
    back = np.zeros_like(out)
    np.copyto(strip_images(back[:, top:top + h], n, period, w, left), x)
    np.testing.assert_array_equal(back, out)


def test_pack_strip_rejects_a_strip_too_small():
    x = np.ones((3, 1, 2, 2))
    with pytest.raises(ValueError, match="pack_strip"):
        pack_strip(x, ((0, 0), (1, 1)), 3, np.empty((1, 2, 9)))
