"""MaxUnpool1d/2d/3d: the graph turns handgrad's per-plane indices into ONNX's whole-tensor
ones itself, so ONNX Runtime, fed what MaxPool*d(return_indices=True) gives, equals
handgrad at any batch size; load refuses the graph clearly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import handgrad as hg
from handgrad.onnx import UnsupportedGraphError, UnsupportedLayerError, export, load

from .roundtrip import check_roundtrip, onnx, run_onnxruntime

POOLS = {1: hg.MaxPool1d, 2: hg.MaxPool2d, 3: hg.MaxPool3d}
UNPOOLS = {1: hg.MaxUnpool1d, 2: hg.MaxUnpool2d, 3: hg.MaxUnpool3d}


def pooled(dims, kernel, stride, padding, shape, rng):
    """``(y, indices)`` of a max pooling of random data: the unpool's consistent inputs
    (overlapping windows give equal values at a shared index)."""
    pool = POOLS[dims](kernel, stride, padding, return_indices=True)
    return pool(rng.standard_normal(shape, dtype=np.float32))


# (id, dims, kernel, stride, padding, input size of the pooling, pass output_size)
CASES = [
    ("1d-overlap-pad-size", 1, 3, 2, 1, (9,), True),
    ("1d-gaps", 1, 2, 3, 0, (8,), False),
    ("1d-default", 1, 2, None, 0, (8,), False),
    ("2d-overlap-pad-size", 2, 3, 2, 1, (7, 8), True),
    ("2d-gaps-default", 2, (2, 3), (3, 2), (1, 0), (6, 7), False),
    ("2d-gaps-size", 2, 2, 3, 0, (8, 7), True),
    ("3d-overlap-pad-size", 3, 3, 2, 1, (5, 6, 5), True),
    ("3d-mixed-default", 3, (2, 1, 2), (1, 2, 3), 0, (4, 5, 5), False),
    ("3d-gaps-size", 3, 2, 3, (1, 0, 1), (5, 4, 6), True),
]


@pytest.mark.parametrize("dims, kernel, stride, padding, size, with_size",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_max_unpool_matches_onnxruntime(dims, kernel, stride, padding, size, with_size,
                                        tmp_path):
    rng = np.random.default_rng(0)
    layer = UNPOOLS[dims](kernel, stride, padding)
    extra = (size,) if with_size else ()
    example = pooled(dims, kernel, stride, padding, (2, 3, *size), rng) + extra
    others = [pooled(dims, kernel, stride, padding, (n, 3, *size), rng) + extra
              for n in (5, 1)]
    check_roundtrip(layer, example, tmp_path, others, load_back=False)
    if with_size:  # the example's size is not the default one: output_size took effect
        assert layer(*example).shape[2:] == size


def test_output_size_as_a_full_shape_and_unbatched(tmp_path):
    rng = np.random.default_rng(1)
    layer = hg.MaxUnpool2d(3, 2, 1)
    y, idx = pooled(2, 3, 2, 1, (2, 4, 7, 6), rng)
    check_roundtrip(layer, (y, idx, (2, 4, 7, 6)), tmp_path,
                    [pooled(2, 3, 2, 1, (3, 4, 7, 6), rng) + ((3, 4, 7, 6),)], load_back=False)
    y, idx = pooled(2, 3, 2, 1, (4, 7, 6), rng)  # (C, H, W)
    check_roundtrip(layer, (y, idx, (7, 6)), tmp_path, load_back=False)


def test_newer_opset_and_graph_inputs(tmp_path):
    rng = np.random.default_rng(2)
    example = pooled(1, 3, 2, 1, (2, 3, 9), rng) + ((9,),)
    check_roundtrip(hg.MaxUnpool1d(3, 2, 1), example, tmp_path, opset=18, load_back=False)
    proto = onnx.load(str(tmp_path / "model.onnx"))
    inputs = {i.name: i.type.tensor_type for i in proto.graph.input}
    assert list(inputs) == ["input", "input_1"]  # output_size is a constant, not an input
    assert inputs["input_1"].elem_type == onnx.TensorProto.INT64
    assert inputs["input_1"].shape.dim[0].dim_param == "N"
    assert "MaxUnpool" in {n.op_type for n in proto.graph.node}


def test_per_plane_indices_are_converted(tmp_path):
    """Every (n, c) plane puts its value at its own position: the graph's offsets at work."""
    layer = hg.MaxUnpool2d(2)
    x = np.arange(1, 13, dtype=np.float32).reshape(3, 2, 1, 2)
    idx = np.tile(np.array([0, 3]), (3, 2, 1, 1))  # the same per-plane positions everywhere
    assert layer(x, idx).shape == (3, 2, 2, 4)
    export(layer, (x, idx), tmp_path / "m.onnx")
    (got,) = run_onnxruntime(tmp_path / "m.onnx", (x, idx))
    np.testing.assert_array_equal(got, layer(x, idx))
    assert got[2, 1, 0, 0] == 11 and got[2, 1, 0, 3] == 12 and got.sum() == x.sum()


@given(dims=st.sampled_from([1, 2, 3]), kernel=st.integers(1, 3), stride=st.integers(1, 3),
       padded=st.booleans(), extra=st.integers(0, 2), with_size=st.booleans(),
       seed=st.integers(0, 2**16))
def test_max_unpool_geometry(dims, kernel, stride, padded, extra, with_size, seed,
                             tmp_path_factory):
    """The pooled input's size is always one the unpool allows (default <= size < default
    + stride); output_size is passed when it differs from the default (or when drawn)."""
    padding = kernel // 2 if padded else 0
    rng = np.random.default_rng(seed)
    size = (kernel + 2 + extra,) * dims if dims < 3 else (kernel + 1 + extra,) * 3
    layer = UNPOOLS[dims](kernel, stride, padding)
    y, idx = pooled(dims, kernel, stride, padding, (2, 2, *size), rng)
    default = tuple((n - 1) * stride - 2 * padding + kernel for n in y.shape[2:])
    extra_arg = (size,) if with_size or default != size else ()
    others = [pooled(dims, kernel, stride, padding, (3, 2, *size), rng) + extra_arg]
    check_roundtrip(layer, (y, idx) + extra_arg, tmp_path_factory.mktemp("unpool"), others,
                    load_back=False)


def test_export_needs_the_indices(tmp_path):
    with pytest.raises(UnsupportedLayerError, match="MaxUnpool2d.*expected the indices"):
        export(hg.MaxUnpool2d(2), np.zeros((1, 2, 3, 3), np.float32), tmp_path / "m.onnx")


@pytest.mark.parametrize("unbatched", [False, True])
def test_load_refuses_max_unpool_clearly(unbatched, tmp_path):
    rng = np.random.default_rng(3)
    y, idx = pooled(2, 2, 2, 0, (2, 3, 4, 4), rng)
    if unbatched:
        y, idx = y[0], idx[0]
    export(hg.MaxUnpool2d(2), (y, idx), tmp_path / "m.onnx")
    with pytest.raises(UnsupportedGraphError, match=r"\(MaxUnpool\): MaxUnpool graphs are "
                                                    r"not imported"):
        load(tmp_path / "m.onnx")
