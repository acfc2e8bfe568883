"""Channel and alpha dropout, pixel/channel shuffles, distances, ModuleList/ModuleDict:
gradient checks under hypothesis, PyTorch parity, statistics of the dropout masks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import handgrad as hg
from handgrad.inspect.selfcheck import _SplitInput
from tests.helpers import check_layer_contract


@given(cls=st.sampled_from(["Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
                            "FeatureAlphaDropout"]),
       p=st.sampled_from([0.0, 0.2, 0.5, 0.9]), unbatched=st.booleans(),
       seed=st.integers(0, 2**16))
def test_dropout_variant_gradients(check_gradients, cls, p, unbatched, seed):
    rank = {"Dropout1d": 3, "Dropout2d": 4, "Dropout3d": 5}.get(cls, 3)
    shape = (2, 3, 2, 2, 2)[:rank]
    if unbatched and cls.startswith("Dropout"):
        shape = shape[1:]
    layer = getattr(hg, cls)(p, rng=seed)
    check_gradients(layer, np.random.default_rng(seed).standard_normal(shape))


@pytest.mark.parametrize("cls, shape", [("Dropout1d", (50, 40, 6)), ("Dropout2d", (50, 40, 3, 2)),
                                        ("Dropout3d", (50, 40, 2, 2, 2)),
                                        ("FeatureAlphaDropout", (50, 40, 6))])
def test_channel_dropout_zeroes_whole_channels(cls, shape):
    layer = getattr(hg, cls)(0.3, rng=0)
    x = np.random.default_rng(1).uniform(1, 2, shape).astype(np.float32)
    y = layer(x)
    flat = y.reshape(shape[0], shape[1], -1)
    constant = np.all(flat == flat[..., :1], axis=-1) if cls == "FeatureAlphaDropout" else \
        np.all(flat == 0, axis=-1)
    dropped = constant.mean()
    assert 0.25 < dropped < 0.35  # 2000 channels: about p of them
    kept = ~constant
    if cls != "FeatureAlphaDropout":
        np.testing.assert_allclose(flat[kept], (x.reshape(flat.shape) / 0.7)[kept], rtol=1e-6)
    layer.eval()
    np.testing.assert_array_equal(layer(x), x)


def test_alpha_dropout_keeps_selu_statistics():
    x = np.random.default_rng(0).standard_normal(400_000)  # zero mean, unit variance
    y = hg.AlphaDropout(0.2, rng=1)(x)
    assert abs(y.mean()) < 0.01 and abs(y.var() - 1) < 0.01
    a = 1 / np.sqrt((1.7580993408473766 ** 2 * 0.2 + 1) * 0.8)
    dropped = np.isclose(y, -1.7580993408473766 * a * 0.8, rtol=0, atol=1e-12)
    assert abs(dropped.mean() - 0.2) < 0.01


@given(r=st.integers(1, 3), c=st.integers(1, 2), lead=st.sampled_from([(), (2,), (1, 2)]),
       seed=st.integers(0, 2**16))
def test_pixel_shuffle_round_trip_and_gradients(check_gradients, r, c, lead, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*lead, c * r * r, 2, 3))
    shuffled = hg.PixelShuffle(r)(x)
    assert shuffled.shape == (*lead, c, 2 * r, 3 * r)
    np.testing.assert_array_equal(hg.PixelUnshuffle(r)(shuffled), x)
    check_gradients(hg.PixelShuffle(r), x)
    check_gradients(hg.PixelUnshuffle(r), shuffled)
    check_gradients(hg.ChannelShuffle(c), rng.standard_normal((2, c * 3, 2)))


@given(dim=st.sampled_from([1, -1]), seed=st.integers(0, 2**16),
       p=st.sampled_from([1.0, 2.0, 3.5]))
def test_distance_gradients(check_gradients, dim, seed, p):
    x = np.random.default_rng(seed).standard_normal((3, 8))
    check_gradients(_SplitInput(hg.CosineSimilarity(dim=dim), 4), x)
    check_gradients(_SplitInput(hg.PairwiseDistance(p=p), 4), x)


def test_contracts():
    x = np.random.default_rng(2).standard_normal((2, 4, 2, 2)).astype(np.float32)
    for make in (lambda: hg.Dropout2d(0.3, rng=0), lambda: hg.AlphaDropout(0.3, rng=0)):
        layer = make()  # fresh masks each forward: the contract's repeat check does not apply
        with pytest.raises(RuntimeError, match="no forward cached"):
            layer.backward(x)
        layer.eval()
        np.testing.assert_array_equal(layer(x), x)
        with pytest.raises(RuntimeError):
            layer.backward(x)
    check_layer_contract(lambda: hg.PixelShuffle(2), x)
    check_layer_contract(lambda: hg.ChannelShuffle(2), x)


def test_shuffle_and_distance_parity():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 12, 3, 2))
    for ours, theirs in [(hg.PixelShuffle(2), torch.nn.PixelShuffle(2)),
                         (hg.PixelUnshuffle(1), torch.nn.PixelUnshuffle(1)),
                         (hg.ChannelShuffle(3), torch.nn.ChannelShuffle(3))]:
        np.testing.assert_array_equal(ours(x), theirs(torch.tensor(x)).numpy())
    x2 = rng.standard_normal((2, 3, 6, 4))
    np.testing.assert_array_equal(hg.PixelUnshuffle(2)(x2),
                                  torch.nn.PixelUnshuffle(2)(torch.tensor(x2)).numpy())
    a, b = rng.standard_normal((4, 5)), rng.standard_normal((1, 5))
    for ours, theirs in [(hg.CosineSimilarity(), torch.nn.CosineSimilarity()),
                         (hg.PairwiseDistance(p=1.5, keepdim=True),
                          torch.nn.PairwiseDistance(p=1.5, keepdim=True)),
                         (hg.PairwiseDistance(p=float("inf")),
                          torch.nn.PairwiseDistance(p=float("inf")))]:
        ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
        ty = theirs(ta, tb)
        g = rng.standard_normal(tuple(ty.shape))
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(ours(a, b), ty.detach().numpy(), rtol=1e-12)
        ga, gb = ours.backward(g)
        assert ga.shape == a.shape and gb.shape == b.shape
        np.testing.assert_allclose(ga, ta.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_module_list_and_dict_names_match_pytorch():
    torch = pytest.importorskip("torch")
    blocks = hg.ModuleList([hg.Linear(3, 3), hg.Linear(3, 2)])
    blocks.append(hg.Linear(2, 1))
    blocks.insert(0, hg.Identity())
    heads = hg.ModuleDict({"cls": hg.Linear(1, 4), "reg": hg.Linear(1, 1)})
    model = hg.Sequential()
    model.blocks, model.heads = blocks, heads
    tmodel = torch.nn.Module()
    tmodel.blocks = torch.nn.ModuleList([torch.nn.Identity(), torch.nn.Linear(3, 3),
                                         torch.nn.Linear(3, 2), torch.nn.Linear(2, 1)])
    tmodel.heads = torch.nn.ModuleDict({"cls": torch.nn.Linear(1, 4),
                                        "reg": torch.nn.Linear(1, 1)})
    assert list(model.state_dict()) == list(tmodel.state_dict())
    assert len(blocks) == 4 and isinstance(blocks[-1], hg.Linear)
    assert len(blocks[1:3]) == 2 and "reg" in heads and list(heads) == ["cls", "reg"]
    del blocks[0]
    assert [n for n, _ in blocks.named_children()] == ["0", "1", "2"]
    assert heads.pop("reg").out_features == 1 and len(heads) == 1
    with pytest.raises(TypeError, match="ModuleList: expected a Layer"):
        blocks.append("not a layer")
    with pytest.raises(IndexError, match="out of range"):
        blocks[7]
    with pytest.raises(NotImplementedError):
        blocks(np.zeros(3))


def test_bad_inputs_name_the_layer():
    with pytest.raises(ValueError, match=r"Dropout2d.*\(N, C, H, W\) or \(C, H, W\)"):
        hg.Dropout2d()(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"PixelShuffle.*C\*4"):
        hg.PixelShuffle(2)(np.zeros((1, 3, 2, 2)))
    with pytest.raises(ValueError, match=r"ChannelShuffle.*divisible by 2"):
        hg.ChannelShuffle(2)(np.zeros((1, 3, 2)))
    with pytest.raises(ValueError, match="broadcast together"):
        hg.CosineSimilarity()(np.zeros((2, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="positive norm degree"):
        hg.PairwiseDistance(p=0)
