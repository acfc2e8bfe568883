"""Transformer layers and Transformer against torch.nn (float64): outputs, input and
parameter gradients, with weights loaded both ways, in training (dropout 0) and eval mode."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import handgrad as hg

torch = pytest.importorskip("torch")

# torch warns that its nested-tensor inference path is off for some layouts
pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")

TOL = {"rtol": 1e-7, "atol": 1e-10}
E, H, FF = 8, 2, 12


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


def _load_into_torch(ours, theirs):
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})


def _load_into_ours(theirs, ours):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def _set_mode(ours, theirs, mode):
    if mode == "eval":
        ours.eval(backward=True)
        theirs.eval()
    else:
        ours.train()
        theirs.train()


def _compare(ours, theirs, ours_out, theirs_out, tensors, backward_pair):
    """Outputs, the gradients of every input and of every parameter."""
    g = np.random.default_rng(9).standard_normal(ours_out.shape)
    (theirs_out * torch.from_numpy(g)).sum().backward()
    grads = ours.backward(g)
    grads = grads if backward_pair else (grads,)
    np.testing.assert_allclose(ours_out, theirs_out.detach().numpy(), **TOL)
    for grad, t in zip(grads, tensors):
        np.testing.assert_allclose(grad, t.grad.numpy(), **TOL)
    torch_params = dict(theirs.named_parameters())
    assert set(torch_params) == {n for n, _ in ours.named_parameters()}
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, torch_params[name].grad.numpy(), err_msg=name, **TOL)


def _causal(n):
    return np.triu(np.ones((n, n), dtype=bool), 1)


def _padding(n, length):
    kpm = np.zeros((n, length), dtype=bool)
    kpm[0, -1] = True
    return kpm


@pytest.mark.parametrize("norm_first,activation,batch_first,mode", [
    (nf, act, bf, mode) for (nf, act), bf, mode in
    zip(itertools.product([False, True], ["relu", "gelu"]), [False, True, True, False],
        ["train", "eval", "train", "eval"])
])
def test_encoder_layer_parity(norm_first, activation, batch_first, mode):
    L, N = 5, 3
    # dropout: 0 in training, 0.3 in eval mode (where it is off)
    p = 0.3 if mode == "eval" else 0.0
    options = dict(dim_feedforward=FF, dropout=p, activation=activation,
                   batch_first=batch_first, norm_first=norm_first)
    ours = hg.TransformerEncoderLayer(E, H, dtype=np.float64, rng=0, **options)
    theirs = torch.nn.TransformerEncoderLayer(E, H, **options).double()
    _load_into_torch(ours, theirs)
    _set_mode(ours, theirs, mode)
    x = np.random.default_rng(1).standard_normal((N, L, E) if batch_first else (L, N, E))
    mask, kpm = _causal(L), _padding(N, L)
    x_t = torch.tensor(x, requires_grad=True)
    y_t = theirs(x_t, src_mask=torch.from_numpy(mask), src_key_padding_mask=torch.from_numpy(kpm))
    y = ours(x, src_mask=mask, src_key_padding_mask=kpm)
    _compare(ours, theirs, y, y_t, [x_t], backward_pair=False)


@pytest.mark.parametrize("norm_first,activation,mode", [
    (False, "relu", "train"), (True, "gelu", "train"), (False, "gelu", "eval"),
    (True, "relu", "eval"),
])
def test_decoder_layer_parity(norm_first, activation, mode):
    T, S, N = 4, 5, 2
    p = 0.3 if mode == "eval" else 0.0
    options = dict(dim_feedforward=FF, dropout=p, activation=activation, norm_first=norm_first)
    ours = hg.TransformerDecoderLayer(E, H, dtype=np.float64, rng=0, **options)
    theirs = torch.nn.TransformerDecoderLayer(E, H, **options).double()
    _load_into_ours(theirs, ours)  # this time torch's initial weights
    _set_mode(ours, theirs, mode)
    rng = np.random.default_rng(2)
    tgt, memory = rng.standard_normal((T, N, E)), rng.standard_normal((S, N, E))
    masks = dict(tgt_mask=_causal(T), memory_mask=rng.random((T, S)) < 0.2,
                 tgt_key_padding_mask=_padding(N, T), memory_key_padding_mask=_padding(N, S))
    tensors = [torch.tensor(a, requires_grad=True) for a in (tgt, memory)]
    y_t = theirs(*tensors, **{k: torch.from_numpy(v) for k, v in masks.items()})
    y = ours(tgt, memory, **masks)
    _compare(ours, theirs, y, y_t, tensors, backward_pair=True)


@pytest.mark.parametrize("norm_first,batch_first,mode,batched", [
    (False, False, "train", True), (True, True, "eval", True), (True, False, "train", False),
])
def test_transformer_parity(norm_first, batch_first, mode, batched):
    S, T, N = 5, 4, 2
    options = dict(num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=FF,
                   dropout=0.0 if mode == "train" else 0.2, norm_first=norm_first,
                   batch_first=batch_first)
    ours = hg.Transformer(E, H, dtype=np.float64, rng=0, **options)
    theirs = torch.nn.Transformer(E, H, **options).double()
    assert list(theirs.state_dict()) == list(ours.state_dict())
    _load_into_torch(ours, theirs)
    _set_mode(ours, theirs, mode)
    rng = np.random.default_rng(3)

    def shape(length):
        if not batched:
            return (length, E)
        return (N, length, E) if batch_first else (length, N, E)

    src, tgt = rng.standard_normal(shape(S)), rng.standard_normal(shape(T))
    tgt_mask = hg.Transformer.generate_square_subsequent_mask(T, np.float64)
    src_kpm = np.zeros((N, S))
    src_kpm[-1, -2:] = -np.inf  # the last two keys of the last sequence are padding
    src_kpm = src_kpm if batched else src_kpm[-1]
    tensors = [torch.tensor(a, requires_grad=True) for a in (src, tgt)]
    y_t = theirs(*tensors, tgt_mask=torch.from_numpy(tgt_mask), tgt_is_causal=True,
                 src_key_padding_mask=torch.from_numpy(src_kpm),
                 memory_key_padding_mask=torch.from_numpy(src_kpm))
    y = ours(src, tgt, tgt_mask=tgt_mask, tgt_is_causal=True, src_key_padding_mask=src_kpm,
             memory_key_padding_mask=src_kpm)
    _compare(ours, theirs, y, y_t, tensors, backward_pair=True)


def test_encoder_stack_parity_and_torch_inference_path():
    layer = torch.nn.TransformerEncoderLayer(E, H, FF, dropout=0.1, batch_first=True)
    theirs = torch.nn.TransformerEncoder(layer, 2, norm=torch.nn.LayerNorm(E),
                                         enable_nested_tensor=False).double()
    ours = hg.TransformerEncoder(
        hg.TransformerEncoderLayer(E, H, FF, dropout=0.1, batch_first=True, dtype=np.float64),
        2, norm=hg.LayerNorm(E, dtype=np.float64))
    _load_into_ours(theirs, ours)
    theirs.eval()
    ours.eval()
    x = np.random.default_rng(4).standard_normal((3, 6, E))
    mask = hg.Transformer.generate_square_subsequent_mask(6, np.float64)
    with torch.no_grad():  # torch's inference path (fused kernels) in eval mode
        y_t = theirs(torch.from_numpy(x), mask=torch.from_numpy(mask))
    np.testing.assert_allclose(ours(x, mask=mask), y_t.numpy(), **TOL)
    # and back: our state dict gives torch the same outputs
    ours.layers[1].linear2.weight.data *= 1.5
    _load_into_torch(ours, theirs)
    with torch.no_grad():
        y_t = theirs(torch.from_numpy(x), mask=torch.from_numpy(mask))
    np.testing.assert_allclose(ours(x, mask=mask), y_t.numpy(), **TOL)


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")
def test_padded_positions_against_torch_nested_tensor_path():
    """torch's inference path with enable_nested_tensor (eval, no grad, key padding) returns
    zeros at padded positions; handgrad computes them as torch's other paths do. The
    positions that are not padding agree."""
    theirs = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(E, H, FF, batch_first=True), 2).double().eval()
    ours = hg.TransformerEncoder(
        hg.TransformerEncoderLayer(E, H, FF, batch_first=True, dtype=np.float64), 2).eval()
    _load_into_ours(theirs, ours)
    x = np.random.default_rng(5).standard_normal((2, 4, E))
    kpm = np.array([[False, False, True, True], [False] * 4])
    with torch.no_grad():
        y_t = theirs(torch.from_numpy(x), src_key_padding_mask=torch.from_numpy(kpm)).numpy()
    y = ours(x, src_key_padding_mask=kpm)
    np.testing.assert_allclose(y[~kpm], y_t[~kpm], **TOL)
    np.testing.assert_array_equal(y_t[kpm], 0.0)
    assert np.abs(y[kpm]).min() > 0
