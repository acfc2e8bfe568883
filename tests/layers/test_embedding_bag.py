"""Embedding's max_norm / scale_grad_by_freq / from_pretrained, EmbeddingBag and Bilinear:
gradient checks under hypothesis and PyTorch parity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import handgrad as hg
from handgrad.inspect.selfcheck import _BagWeights, _SplitInput


@given(in1=st.integers(1, 4), in2=st.integers(1, 4), out=st.integers(1, 3),
       lead=st.sampled_from([(3,), (2, 2), ()]), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_bilinear_gradients(check_gradients, in1, in2, out, lead, bias, seed):
    layer = hg.Bilinear(in1, in2, out, bias=bias, dtype=np.float64, rng=seed)
    x = np.random.default_rng(seed).standard_normal((*lead, in1 + in2))
    check_gradients(_SplitInput(layer, in1), x)


@given(lengths=st.lists(st.integers(0, 3), min_size=1, max_size=4),
       padding=st.sampled_from([None, 1]), seed=st.integers(0, 2**16))
def test_embedding_bag_per_sample_weight_and_table_gradients(check_gradients, lengths, padding,
                                                             seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 5, size=sum(lengths))
    offsets = np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64)
    bag = hg.EmbeddingBag(5, 3, mode="sum", padding_idx=padding, dtype=np.float64, rng=seed)
    check_gradients(_BagWeights(bag, ids, offsets), rng.standard_normal(ids.shape))


def _load(layer, tlayer, torch):
    tlayer.double()
    tlayer.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in
                            layer.state_dict().items()})


@given(lengths=st.lists(st.integers(0, 4), min_size=1, max_size=5),
       mode=st.sampled_from(["sum", "mean", "max"]), padding=st.sampled_from([None, 0, 3]),
       last_offset=st.booleans(), weighted=st.booleans(), seed=st.integers(0, 2**16))
def test_embedding_bag_parity(lengths, mode, padding, last_offset, weighted, seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 6, size=sum(lengths))
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    offsets = offsets if last_offset else offsets[:-1]
    bag = hg.EmbeddingBag(6, 3, mode=mode, padding_idx=padding, include_last_offset=last_offset,
                          dtype=np.float64, rng=seed)
    tbag = torch.nn.EmbeddingBag(6, 3, mode=mode, padding_idx=padding,
                                 include_last_offset=last_offset)
    _load(bag, tbag, torch)
    psw = rng.standard_normal(ids.shape) if weighted and mode == "sum" else None
    tpsw = None if psw is None else torch.tensor(psw, requires_grad=True)
    ty = tbag(torch.tensor(ids), torch.tensor(offsets), per_sample_weights=tpsw)
    g = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(g))
    y = bag(ids, offsets, per_sample_weights=psw)
    bag.backward(g)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(bag.weight.grad, tbag.weight.grad.numpy(), rtol=1e-12,
                               atol=1e-14)
    if psw is not None:
        np.testing.assert_allclose(bag.grad_per_sample_weights, tpsw.grad.numpy(), rtol=1e-12,
                                   atol=1e-14)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_2d_input_parity(mode):
    torch = pytest.importorskip("torch")
    bag = hg.EmbeddingBag(7, 4, mode=mode, dtype=np.float64, rng=2)
    tbag = torch.nn.EmbeddingBag(7, 4, mode=mode)
    _load(bag, tbag, torch)
    ids = np.array([[1, 2, 2, 6], [0, 5, 3, 3], [4, 4, 4, 4]])
    ty = tbag(torch.tensor(ids))
    g = np.random.default_rng(0).standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(bag(ids), ty.detach().numpy(), rtol=1e-12)
    bag.backward(g)
    np.testing.assert_allclose(bag.weight.grad, tbag.weight.grad.numpy(), rtol=1e-12,
                               atol=1e-14)


@pytest.mark.parametrize("max_norm, norm_type, by_freq", [(1.0, 2.0, False), (0.5, 1.0, True),
                                                          (None, 2.0, True)])
def test_embedding_options_parity(max_norm, norm_type, by_freq):
    torch = pytest.importorskip("torch")
    emb = hg.Embedding(6, 3, max_norm=max_norm, norm_type=norm_type,
                       scale_grad_by_freq=by_freq, dtype=np.float64, rng=0)
    temb = torch.nn.Embedding(6, 3, max_norm=max_norm, norm_type=norm_type,
                              scale_grad_by_freq=by_freq)
    _load(emb, temb, torch)
    ids = np.array([[1, 2, 2], [0, 1, 1]])
    ty = temb(torch.tensor(ids))
    g = np.random.default_rng(1).standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(emb(ids), ty.detach().numpy(), rtol=1e-12)
    emb.backward(g)
    np.testing.assert_allclose(emb.weight.grad, temb.weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(emb.weight.data, temb.weight.detach().numpy(), rtol=1e-12)


def test_bilinear_parity():
    torch = pytest.importorskip("torch")
    layer = hg.Bilinear(3, 4, 2, dtype=np.float64, rng=0)
    tlayer = torch.nn.Bilinear(3, 4, 2)
    _load(layer, tlayer, torch)
    rng = np.random.default_rng(0)
    x1, x2, g = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 4)), \
        rng.standard_normal((2, 5, 2))
    t1, t2 = torch.tensor(x1, requires_grad=True), torch.tensor(x2, requires_grad=True)
    ty = tlayer(t1, t2)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(layer(x1, x2), ty.detach().numpy(), rtol=1e-12)
    g1, g2 = layer.backward(g)
    np.testing.assert_allclose(g1, t1.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g2, t2.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.weight.grad, tlayer.weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, tlayer.bias.grad.numpy(), rtol=1e-12)


def test_from_pretrained_is_frozen_by_default():
    table = np.arange(12.0).reshape(4, 3)
    emb = hg.Embedding.from_pretrained(table)
    assert emb.weight.data.dtype == np.float64 and not emb.weight.requires_grad
    np.testing.assert_array_equal(emb(np.array([3, 0])), table[[3, 0]])
    emb.backward(np.ones((2, 3)))
    assert emb.weight.grad is None
    assert hg.Embedding.from_pretrained(table, freeze=False).weight.requires_grad


def test_bad_inputs_name_the_layer():
    bag = hg.EmbeddingBag(5, 2)
    with pytest.raises(ValueError, match=r"EmbeddingBag\(5, 2.*offsets starting at 0"):
        bag(np.array([1, 2, 3]), np.array([1, 2]))
    with pytest.raises(ValueError, match="offsets must be None for a 2-d input"):
        bag(np.array([[1, 2]]), np.array([0]))
    with pytest.raises(ValueError, match="1-d input with offsets"):
        bag(np.array([1, 2]))
    with pytest.raises(ValueError, match="only supported with mode='sum'"):
        bag(np.array([[1, 2]]), per_sample_weights=np.ones((1, 2), np.float32))
    with pytest.raises(ValueError, match="expected mode 'sum', 'mean' or 'max'"):
        hg.EmbeddingBag(5, 2, mode="median")
    with pytest.raises(ValueError, match=r"Bilinear.*same leading dimensions"):
        hg.Bilinear(2, 3, 1)(np.zeros((4, 2), np.float32), np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match="positive max_norm"):
        hg.Embedding(3, 2, max_norm=-1.0)
