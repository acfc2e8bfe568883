"""MultiheadAttention against torch.nn.MultiheadAttention (float64), weights both ways."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import handgrad as hg

torch = pytest.importorskip("torch")

TOL = {"rtol": 1e-7, "atol": 1e-10}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


def _masks(kind, rng, N, H, L, S, batched):
    """(attn_mask, key_padding_mask) as numpy arrays for a named mask setting."""
    n = N if batched else 1
    if kind is None:
        return None, None
    if kind == "causal-bool":
        return np.triu(np.ones((L, S), dtype=bool), 1), None
    if kind == "float3d+kpm-float":
        kpm = np.zeros((N, S) if batched else (S,))
        kpm[..., -1] = -np.inf
        return rng.standard_normal(((n * H) if batched else H, L, S)), kpm
    if kind == "bool3d+kpm-bool":
        kpm = np.zeros((N, S) if batched else (S,), dtype=bool)
        kpm[..., 0] = True
        return rng.random(((n * H) if batched else H, L, S)) < 0.3, kpm
    raise AssertionError(kind)


CASES = [
    # (batch_first, batched, masks, options, average, need_weights)
    (False, True, None, {}, True, True),
    (True, True, "causal-bool", {}, False, True),
    (False, True, "float3d+kpm-float", {"add_bias_kv": True}, True, True),
    (True, True, "bool3d+kpm-bool", {"add_zero_attn": True, "kdim": 3, "vdim": 5}, False, True),
    (False, False, "float3d+kpm-float", {"add_bias_kv": True, "add_zero_attn": True}, True,
     True),
    (False, False, "causal-bool", {"bias": False}, True, False),
    (True, True, "bool3d+kpm-bool", {}, True, False),
]


@pytest.mark.parametrize("batch_first,batched,masks,options,average,need_weights", CASES)
def test_multihead_attention_parity(batch_first, batched, masks, options, average,
                                    need_weights):
    E, H, L, S, N = 6, 2, 4, 4, 3
    rng = np.random.default_rng(0)
    ours = hg.MultiheadAttention(E, H, batch_first=batch_first, dtype=np.float64, rng=0,
                                 **options)
    theirs = torch.nn.MultiheadAttention(E, H, batch_first=batch_first, **options).double()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})

    def shape(length, features):
        if not batched:
            return (length, features)
        return (N, length, features) if batch_first else (length, N, features)

    q = rng.standard_normal(shape(L, E))
    k = rng.standard_normal(shape(S, options.get("kdim", E)))
    v = rng.standard_normal(shape(S, options.get("vdim", E)))
    attn_mask, kpm = _masks(masks, rng, N, H, L, S, batched)
    kwargs = dict(need_weights=need_weights, average_attn_weights=average)
    y, w = ours(q, k, v, attn_mask=attn_mask, key_padding_mask=kpm, **kwargs)
    tensors = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]

    def as_t(m):
        return None if m is None else torch.from_numpy(m)

    y_t, w_t = theirs(*tensors, attn_mask=as_t(attn_mask), key_padding_mask=as_t(kpm), **kwargs)

    g = rng.standard_normal(y.shape)
    loss = (y_t * torch.from_numpy(g)).sum()
    g_w = None
    if need_weights:
        g_w = rng.standard_normal(w.shape)
        loss = loss + (w_t * torch.from_numpy(g_w)).sum()
        np.testing.assert_allclose(w, w_t.detach().numpy(), **TOL)
    else:
        assert w is None and w_t is None
    loss.backward()
    grads = ours.backward(g, g_w)
    np.testing.assert_allclose(y, y_t.detach().numpy(), **TOL)
    for ours_grad, t in zip(grads, tensors):
        np.testing.assert_allclose(ours_grad, t.grad.numpy(), **TOL)
    torch_params = dict(theirs.named_parameters())
    assert set(torch_params) == {n for n, _ in ours.named_parameters()}
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, torch_params[name].grad.numpy(), err_msg=name, **TOL)


def test_torch_state_dict_loads_and_gives_torch_outputs_in_eval_mode():
    theirs = torch.nn.MultiheadAttention(8, 2, dropout=0.3, add_bias_kv=True).double().eval()
    ours = hg.MultiheadAttention(8, 2, dropout=0.3, add_bias_kv=True, dtype=np.float64).eval()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((5, 2, 8))
    with torch.no_grad():
        y_t, w_t = theirs(*(torch.from_numpy(x),) * 3)
    y, w = ours(x, x, x)
    np.testing.assert_allclose(y, y_t.numpy(), **TOL)
    np.testing.assert_allclose(w, w_t.numpy(), **TOL)


@pytest.mark.parametrize("L,N,S", [(3, 0, 4), (0, 2, 4), (3, 2, 0)])
def test_empty_batch_queries_or_keys_match_torch(L, N, S):
    theirs = torch.nn.MultiheadAttention(4, 2).double()
    ours = hg.MultiheadAttention(4, 2, dtype=np.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    ours.out_proj.bias.data[:] = [1.0, -1.0, 0.5, 2.0]  # no keys: the output is this bias
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((L, N, 4)), rng.standard_normal((S, N, 4))
    q_t, k_t = torch.tensor(q, requires_grad=True), torch.tensor(k, requires_grad=True)
    y_t, w_t = theirs(q_t, k_t, k_t)
    y, w = ours(q, k, k)
    g = rng.standard_normal(y.shape)
    (y_t * torch.from_numpy(g)).sum().backward()
    grad_q, grad_k, grad_v = ours.backward(g)
    assert y.shape == tuple(y_t.shape) and w.shape == tuple(w_t.shape)
    np.testing.assert_allclose(y, y_t.detach().numpy(), **TOL)
    np.testing.assert_allclose(grad_q, q_t.grad.numpy(), **TOL)
    np.testing.assert_allclose(grad_k + grad_v, k_t.grad.numpy(), **TOL)
    torch_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, torch_params[name].grad.numpy(), err_msg=name, **TOL)


@pytest.mark.parametrize("need_weights", [True, False])
def test_self_attention_in_torch_inference_mode(need_weights):
    """Eval mode without gradients, batch first, one tensor as query, key and value: the
    conditions of torch's fused inference path."""
    theirs = torch.nn.MultiheadAttention(8, 2, batch_first=True).double().eval()
    ours = hg.MultiheadAttention(8, 2, batch_first=True, dtype=np.float64).eval()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((3, 5, 8))
    kpm = np.zeros((3, 5), dtype=bool)
    kpm[0, -1] = True
    x_t = torch.from_numpy(x)
    with torch.no_grad():
        y_t, w_t = theirs(x_t, x_t, x_t, need_weights=need_weights,
                          key_padding_mask=torch.from_numpy(kpm))
    y, w = ours(x, x, x, need_weights=need_weights, key_padding_mask=kpm)
    np.testing.assert_allclose(y, y_t.numpy(), **TOL)
    if need_weights:
        np.testing.assert_allclose(w, w_t.numpy(), **TOL)
    else:
        assert w is None and w_t is None
