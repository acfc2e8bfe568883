"""Multi-head attention (Vaswani et al., 2017), with PyTorch's parameters, masks and layouts.

The forward, per batch entry (E = embed_dim, H = num_heads, D = E / H):

    q = query Wq^T + bq   (L, E)     k = key Wk^T + bk   (S, E)     v = value Wv^T + bv   (S, E)
    [bias_k, bias_v appended to k, v as one more source position; a zero position after it]
    q, k, v split into H heads of size D:  (H, L, D), (H, S, D), (H, S, D)
    Z = q k^T / sqrt(D) + M               (H, L, S)   M = attn_mask + key_padding_mask
    A = dropout(softmax(Z))               (H, L, S)
    y = concat_heads(A v) Wo^T + bo       (L, E)      (Wo, bo: the ``out_proj`` Linear)

The attention core (Z, softmax, dropout, A v and their backward) lives in
``ops.attention``; this module does the projections, head split and masks around it.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validation import as_float_input, check_grad, check_positive_int, check_probability
from ..init import constant_, xavier_normal_, xavier_uniform_
from ..layer import Layer
from ..ops.attention import attention_backward, attention_forward
from ..parameter import Parameter
from ..random import resolve_rng, spawn_rng
from .linear import Linear

__all__ = ["MultiheadAttention"]


class MultiheadAttention(Layer):
    """Multi-head scaled dot-product attention, as ``torch.nn.MultiheadAttention``.

    ``y = concat_h(softmax(q_h k_h^T / sqrt(D) + M) v_h) Wo^T + bo`` with ``q = query Wq^T +
    bq``, ``k = key Wk^T + bk``, ``v = value Wv^T + bv``, ``D = embed_dim / num_heads``.

    Args:
        embed_dim: E, the size of query (and output) vectors.
        num_heads: H; must divide E.
        dropout: probability of zeroing an attention weight in training (0 by default).
        bias: learn ``in_proj_bias`` and ``out_proj.bias`` (default True).
        add_bias_kv: learn ``bias_k``, ``bias_v``, appended to keys and values as one more
            source position.
        add_zero_attn: append a zero key and value (per head) as one more source position.
        kdim, vdim: sizes of key and value vectors (default E). When either differs from E
            the projections are separate ``q_proj_weight``, ``k_proj_weight``,
            ``v_proj_weight`` instead of the packed ``in_proj_weight``.
        batch_first: inputs and output are (N, L, E) instead of (L, N, E).
        dtype: parameter dtype (float32 by default).
        rng: generator or seed for the initial weights and the dropout masks.

    Shape:
        - query ``(L, N, E)``, key ``(S, N, kdim)``, value ``(S, N, vdim)`` (``(N, L, E)``,
          ... with ``batch_first``), or unbatched ``(L, E)``, ``(S, kdim)``, ``(S, vdim)``
        - key_padding_mask ``(N, S)`` (``(S,)`` unbatched): True (or -inf) ignores a key
        - attn_mask ``(L, S)`` or ``(N * H, L, S)`` (``(H, L, S)`` unbatched): boolean
          (True = not allowed to attend) or float (added to the scores)
        - output ``(L, N, E)`` (``(N, L, E)``, ``(L, E)``); weights ``(N, L, S')`` averaged
          over heads, or ``(N, H, L, S')``, with S' = S (+1 for add_bias_kv, +1 for
          add_zero_attn); unbatched without N
        - in_proj_weight ``(3E, E)`` (Xavier uniform), in_proj_bias ``(3E,)`` (zeros),
          q/k/v_proj_weight ``(E, E)``, ``(E, kdim)``, ``(E, vdim)``, bias_k and bias_v
          ``(1, 1, E)`` (Xavier normal), out_proj ``Linear(E, E)`` (bias zeros)

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)`` returns ``(output, weights)`` (weights None
    unless ``need_weights``). ``is_causal`` is PyTorch's hint that ``attn_mask`` is the causal
    mask: it needs ``attn_mask`` and the mask given is what is applied. A query whose keys
    are all masked gets zero attention weights (its output is ``out_proj.bias``), as in
    PyTorch's ``need_weights=False`` path (its ``need_weights=True`` path gives NaN there).

    ``backward(grad_output, grad_attn_weights=None)`` returns ``(grad_query, grad_key,
    grad_value)`` and adds every parameter gradient. For self-attention (the same array as
    query, key and value) the input gradient is the sum of the three.
    ``grad_attn_weights`` is the gradient of the returned weights, if they feed a loss.

    Forward caches the inputs, the projected heads, the attention probabilities and the
    dropout mask, and (in ``out_proj``) the concatenated heads.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False,
                 dtype: DTypeLike = np.float32, rng=None):
        super().__init__()
        name = "MultiheadAttention"
        self.embed_dim = check_positive_int(name, "embed_dim", embed_dim)
        self.num_heads = check_positive_int(name, "num_heads", num_heads)
        if embed_dim % num_heads:
            raise ValueError(f"{name}: embed_dim ({embed_dim}) must be divisible by num_heads "
                             f"({num_heads})")
        self.head_dim = embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else check_positive_int(name, "kdim", kdim)
        self.vdim = embed_dim if vdim is None else check_positive_int(name, "vdim", vdim)
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout = check_probability(name, "dropout", dropout)
        self.batch_first = bool(batch_first)
        self.add_zero_attn = bool(add_zero_attn)
        E = embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(np.empty((3 * E, E), dtype=dtype))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.register_parameter("in_proj_weight", None)
            self.q_proj_weight = Parameter(np.empty((E, E), dtype=dtype))
            self.k_proj_weight = Parameter(np.empty((E, self.kdim), dtype=dtype))
            self.v_proj_weight = Parameter(np.empty((E, self.vdim), dtype=dtype))
        if bias:
            self.in_proj_bias = Parameter(np.empty(3 * E, dtype=dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        if add_bias_kv:
            self.bias_k = Parameter(np.empty((1, 1, E), dtype=dtype))
            self.bias_v = Parameter(np.empty((1, 1, E), dtype=dtype))
        else:
            self.bias_k = self.bias_v = None
        gen = resolve_rng(rng)
        self.out_proj = Linear(E, E, bias=bias, dtype=dtype, rng=gen)
        self.reset_parameters(gen)
        # the dropout masks: the rest of the seeded stream, or a child of the default one
        self.rng = gen if rng is not None else spawn_rng(None)
        self._cache = None

    def reset_parameters(self, rng=None) -> None:
        """PyTorch's: Xavier uniform projections, zero biases, Xavier normal bias_k/v."""
        gen = resolve_rng(rng)
        if self._qkv_same_embed_dim:
            xavier_uniform_(self.in_proj_weight, rng=gen)
        else:
            for weight in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                xavier_uniform_(weight, rng=gen)
        if self.in_proj_bias is not None:
            constant_(self.in_proj_bias, 0.0)
            constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            xavier_normal_(self.bias_k, rng=gen)
            xavier_normal_(self.bias_v, rng=gen)

    # ------------------------------------------------------------------ helpers
    def _projection(self, i: int) -> tuple[NDArray, NDArray | None]:
        """(weight, bias) of the query (0), key (1) or value (2) projection."""
        E = self.embed_dim
        if self._qkv_same_embed_dim:
            weight = self.in_proj_weight.data[i * E:(i + 1) * E]
        else:
            weight = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)[i].data
        bias = None if self.in_proj_bias is None else self.in_proj_bias.data[i * E:(i + 1) * E]
        return weight, bias

    def _to_internal(self, x: NDArray, batched: bool) -> NDArray:
        """User layout -> (N, L, F)."""
        if not batched:
            return x[None]
        return x if self.batch_first else x.transpose(1, 0, 2)

    def _to_user(self, x: NDArray, batched: bool) -> NDArray:
        """(N, L, F) -> user layout."""
        if not batched:
            return x[0]
        return x if self.batch_first else x.transpose(1, 0, 2)

    def _additive(self, mask, what: str, dtype) -> NDArray:
        """A boolean mask as 0 / -inf, a float mask in the compute dtype."""
        mask = np.asarray(mask)
        if mask.dtype == np.bool_:
            return np.where(mask, dtype.type(-np.inf), dtype.type(0))
        if mask.dtype.kind != "f":
            raise TypeError(f"{self.describe()}: expected a boolean or floating {what}, got "
                            f"dtype {mask.dtype}")
        return mask.astype(dtype, copy=False)

    def _mask(self, attn_mask, key_padding_mask, N: int, L: int, S: int, batched: bool,
              dtype) -> NDArray | None:
        """attn_mask + key_padding_mask as one additive mask broadcastable to (N, H, L, S)."""
        H = self.num_heads
        mask = None
        if attn_mask is not None:
            am = self._additive(attn_mask, "attn_mask", dtype)
            heads = (H, L, S) if not batched else (N * H, L, S)
            if am.shape == (L, S):
                mask = am[None, None]  # (1, 1, L, S)
            elif am.ndim == 3 and am.shape == heads:
                mask = am.reshape(N, H, L, S)  # entry b * H + h is batch b, head h
            else:
                raise ValueError(f"{self.describe()}: expected attn_mask of shape ({L}, {S}) "
                                 f"or {heads}, got {am.shape}")
        if key_padding_mask is not None:
            kpm = self._additive(key_padding_mask, "key_padding_mask", dtype)
            expected = (N, S) if batched else (S,)
            if kpm.shape != expected:
                raise ValueError(f"{self.describe()}: expected key_padding_mask of shape "
                                 f"{expected}, got {kpm.shape}")
            kpm = kpm.reshape(N, 1, 1, S)
            mask = kpm if mask is None else mask + kpm
        return mask

    def _check_inputs(self, query, key, value):
        query = as_float_input(self, query, "query")
        key = as_float_input(self, key, "key")
        value = as_float_input(self, value, "value")
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"{self.describe()}: expected query, key and value all 3-D "
                             f"(batched) or all 2-D (unbatched), got shapes {query.shape}, "
                             f"{key.shape}, {value.shape}")
        batched = query.ndim == 3
        q, k, v = (self._to_internal(a, batched) for a in (query, key, value))
        dims = (self.embed_dim, self.kdim, self.vdim)
        if (q.shape[2], k.shape[2], v.shape[2]) != dims or k.shape[:2] != v.shape[:2] \
                or k.shape[0] != q.shape[0]:
            layout = "L, E" if not batched else "N, L, E" if self.batch_first else "L, N, E"
            raise ValueError(f"{self.describe()}: expected query, key, value of layout "
                             f"({layout}) with feature sizes {dims}, one batch size and key "
                             f"and value of one length, got {query.shape}, {key.shape}, "
                             f"{value.shape}")
        return q, k, v, batched

    # ------------------------------------------------------------------ forward/backward
    def forward(self, query: NDArray, key: NDArray, value: NDArray,
                key_padding_mask: NDArray | None = None, need_weights: bool = True,
                attn_mask: NDArray | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[NDArray, NDArray | None]:
        q_in, k_in, v_in, batched = self._check_inputs(query, key, value)
        if is_causal and attn_mask is None:
            raise ValueError(f"{self.describe()}: is_causal=True needs attn_mask (the causal "
                             "mask); make one with Transformer.generate_square_subsequent_mask")
        N, L, E = q_in.shape
        S, H, D = k_in.shape[1], self.num_heads, self.head_dim
        dtype = q_in.dtype
        mask = self._mask(attn_mask, key_padding_mask, N, L, S, batched, dtype)
        projected = []
        for i, x in enumerate((q_in, k_in, v_in)):
            weight, bias = self._projection(i)
            p = np.matmul(x, weight.T)  # (N, L or S, E)
            if bias is not None:
                p += bias
            projected.append(p)
        q, k, v = projected
        extra = 0  # source positions appended after the S keys
        if self.bias_k is not None:
            k = np.concatenate([k, np.broadcast_to(self.bias_k.data, (N, 1, E))], axis=1)
            v = np.concatenate([v, np.broadcast_to(self.bias_v.data, (N, 1, E))], axis=1)
            extra += 1
        # split the heads: (N, L, E) -> (N, H, L, D)
        q = q.reshape(N, L, H, D).transpose(0, 2, 1, 3)
        k = k.reshape(N, S + extra, H, D).transpose(0, 2, 1, 3)
        v = v.reshape(N, S + extra, H, D).transpose(0, 2, 1, 3)
        if self.add_zero_attn:
            zeros = np.zeros((N, H, 1, D), dtype=dtype)
            k = np.concatenate([k, zeros], axis=2)
            v = np.concatenate([v, zeros], axis=2)
            extra += 1
        if mask is not None and extra:
            pad = np.zeros(mask.shape[:-1] + (extra,), dtype=dtype)  # appended keys: allowed
            mask = np.concatenate([mask, pad], axis=-1)
        dropout_mask = None
        if self.training and self.dropout > 0:
            shape = (N, H, L, S + extra)
            keep = self.rng.random(shape, dtype=np.float32 if dtype == np.float32
                                   else np.float64) >= self.dropout
            scale = 0.0 if self.dropout == 1.0 else 1.0 / (1.0 - self.dropout)
            dropout_mask = keep.astype(dtype) * dtype.type(scale)
        y, weights, core = attention_forward(q, k, v, 1.0 / math.sqrt(D), mask, dropout_mask,
                                             keep=self.caching)
        y = y.transpose(0, 2, 1, 3).reshape(N, L, E)  # concatenate the heads
        out = self._to_user(self.out_proj(y), batched)
        self._cache = ((q_in, k_in, v_in), core, batched, extra, need_weights,
                       average_attn_weights) if self.caching else None
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(axis=1)  # (N, L, S')
        return out, weights if batched else weights[0]

    def backward(self, grad_output: NDArray, grad_attn_weights: NDArray | None = None):
        """Gradients ``(grad_query, grad_key, grad_value)``; parameter gradients are added."""
        inputs, core, batched, extra, need_weights, averaged = self._saved(self._cache)
        q_in, k_in, v_in = inputs
        N, L, E = q_in.shape
        S, H, D = k_in.shape[1], self.num_heads, self.head_dim
        out_shape = self._to_user(np.empty((N, L, E), dtype=np.int8), batched).shape
        g = self._to_internal(check_grad(self, grad_output, out_shape), batched)
        grad_heads = self.out_proj.backward(g)  # (N, L, E), the concatenated heads' gradient
        grad_y = grad_heads.reshape(N, L, H, D).transpose(0, 2, 1, 3)  # (N, H, L, D)
        grad_w = None
        if grad_attn_weights is not None:
            grad_w = self._weights_grad(grad_attn_weights, need_weights, averaged, batched,
                                        (N, H, L, S + extra))
        grad_q, grad_k, grad_v = attention_backward(core, grad_y, grad_w)
        if self.add_zero_attn:  # the zero key/value is a constant
            grad_k, grad_v = grad_k[:, :, :-1], grad_v[:, :, :-1]
        # merge the heads: (N, H, ., D) -> (N, ., E)
        grad_q = grad_q.transpose(0, 2, 1, 3).reshape(N, L, E)
        grad_k = grad_k.transpose(0, 2, 1, 3).reshape(N, grad_k.shape[2], E)
        grad_v = grad_v.transpose(0, 2, 1, 3).reshape(N, grad_v.shape[2], E)
        if self.bias_k is not None:  # bias_k, bias_v were the last source position
            self.bias_k.accumulate_grad(grad_k[:, S].sum(axis=0).reshape(1, 1, E), fresh=True)
            self.bias_v.accumulate_grad(grad_v[:, S].sum(axis=0).reshape(1, 1, E), fresh=True)
            grad_k, grad_v = grad_k[:, :S], grad_v[:, :S]
        # the projections p = x W^T + b:  dW = dp^T x,  db = sum dp,  dx = dp W
        grads = (grad_q, grad_k, grad_v)
        weight_grads = [np.tensordot(gp, x, axes=([0, 1], [0, 1])) for gp, x in zip(grads, inputs)]
        if self._qkv_same_embed_dim:
            self.in_proj_weight.accumulate_grad(np.concatenate(weight_grads), fresh=True)
        else:
            for weight, gw in zip((self.q_proj_weight, self.k_proj_weight, self.v_proj_weight),
                                  weight_grads):
                weight.accumulate_grad(gw, fresh=True)
        if self.in_proj_bias is not None:
            self.in_proj_bias.accumulate_grad(
                np.concatenate([gp.sum(axis=(0, 1)) for gp in grads]), fresh=True)
        grad_inputs = tuple(
            self._to_user(np.matmul(gp, self._projection(i)[0]), batched)
            for i, gp in enumerate(grads))
        return grad_inputs

    def _weights_grad(self, grad, need_weights, averaged, batched, full_shape):
        """The gradient of the returned weights as (N, H, L, S') (spread over the heads)."""
        if not need_weights:
            raise ValueError(f"{self.describe()}: grad_attn_weights given, but the forward "
                             "ran with need_weights=False (no weights were returned)")
        N, H, L, S = full_shape
        shape = (N, L, S) if averaged else (N, H, L, S)
        grad = np.asarray(grad)
        expected = shape if batched else shape[1:]
        if grad.shape != expected:
            raise ValueError(f"{self.describe()}: expected grad_attn_weights of shape "
                             f"{expected} (the weights'), got {grad.shape}")
        grad = grad if batched else grad[None]
        # the mean over heads passes 1/H of its gradient to each head
        return grad[:, None] / H if averaged else grad

    def extra_repr(self) -> str:
        parts = [f"embed_dim={self.embed_dim}", f"num_heads={self.num_heads}"]
        if self.dropout:
            parts.append(f"dropout={self.dropout}")
        if self.kdim != self.embed_dim or self.vdim != self.embed_dim:
            parts.append(f"kdim={self.kdim}, vdim={self.vdim}")
        if self.bias_k is not None:
            parts.append("add_bias_kv=True")
        if self.add_zero_attn:
            parts.append("add_zero_attn=True")
        if self.batch_first:
            parts.append("batch_first=True")
        return ", ".join(parts)
