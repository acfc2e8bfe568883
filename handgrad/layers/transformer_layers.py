"""TransformerEncoderLayer and TransformerDecoderLayer, as in ``torch.nn``.

Each is attention and a feed-forward block, with residual connections and LayerNorm
either after each residual sum (``norm_first=False``, the original "post-norm") or on each
block's input (``norm_first=True``, "pre-norm"). Every piece is an existing handgrad layer
(``MultiheadAttention``, ``Linear``, ``LayerNorm``, ``Dropout``, ``ReLU``/``GELU``); the
backward below only routes gradients through the residual sums: ``x + f(x)`` passes the
incoming gradient on unchanged *and* through ``f``'s backward, and the two are added.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validation import as_float_input, check_grad, check_positive_int, check_probability
from ..layer import Layer
from ..random import resolve_rng, spawn_rng
from .activation import GELU, ReLU
from .attention import MultiheadAttention
from .dropout import Dropout
from .layer_norm import LayerNorm
from .linear import Linear

__all__ = ["TransformerEncoderLayer", "TransformerDecoderLayer"]


def _activation(owner: str, activation) -> Layer:
    if isinstance(activation, Layer):
        return activation
    if activation == "relu":
        return ReLU()
    if activation == "gelu":
        return GELU()
    raise ValueError(f"{owner}: expected activation 'relu', 'gelu' or a Layer, got "
                     f"{activation!r}")


class _Block(Layer):
    """The parts both layers share: self-attention, feed-forward, norms, dropouts.

    ``n_norms`` norms (``norm1``...) and dropouts ``dropout1``... plus the feed-forward's
    inner ``dropout``, all named as in PyTorch.
    """

    def __init__(self, owner: str, d_model: int, nhead: int, dim_feedforward: int,
                 dropout: float, activation, layer_norm_eps: float, batch_first: bool,
                 norm_first: bool, bias: bool, dtype: DTypeLike, rng, n_norms: int):
        super().__init__()
        self.d_model = check_positive_int(owner, "d_model", d_model)
        check_positive_int(owner, "nhead", nhead)
        check_positive_int(owner, "dim_feedforward", dim_feedforward)
        p = check_probability(owner, "dropout", dropout)
        self.batch_first, self.norm_first = bool(batch_first), bool(norm_first)
        gen = resolve_rng(rng)
        # dropout masks: the rest of the seeded stream, or children of the default generator
        drop_rng = gen if rng is not None else None
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=p, bias=bias,
                                            batch_first=batch_first, dtype=dtype, rng=gen)
        self.self_attn.rng = drop_rng if drop_rng is not None else spawn_rng(None)
        if n_norms == 3:
            self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=p, bias=bias,
                                                     batch_first=batch_first, dtype=dtype,
                                                     rng=gen)
            self.multihead_attn.rng = drop_rng if drop_rng is not None else spawn_rng(None)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype, rng=gen)
        self.dropout = Dropout(p, rng=drop_rng)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype, rng=gen)
        for i in range(1, n_norms + 1):
            setattr(self, f"norm{i}", LayerNorm(d_model, eps=layer_norm_eps, bias=bias,
                                                dtype=dtype))
        for i in range(1, n_norms + 1):
            setattr(self, f"dropout{i}", Dropout(p, rng=drop_rng))
        self.activation = _activation(owner, activation)
        self._shape = None

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal) -> NDArray:
        y, _ = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                              need_weights=False, is_causal=is_causal)
        return self.dropout1(y)

    def _sa_backward(self, grad: NDArray) -> NDArray:
        # self-attention: the input was query, key and value at once
        grad_q, grad_k, grad_v = self.self_attn.backward(self.dropout1.backward(grad))
        return grad_q + grad_k + grad_v

    def _ff_block(self, x: NDArray, out_dropout: Dropout) -> NDArray:
        return out_dropout(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def _ff_backward(self, grad: NDArray, out_dropout: Dropout) -> NDArray:
        grad = self.linear2.backward(out_dropout.backward(grad))
        return self.linear1.backward(self.activation.backward(self.dropout.backward(grad)))

    def _check(self, x, what: str) -> NDArray:
        x = as_float_input(self, x, what)
        if x.ndim not in (2, 3) or x.shape[-1] != self.d_model:
            raise ValueError(f"{self.describe()}: expected {what} of shape (L, N, "
                             f"{self.d_model}), (N, L, {self.d_model}) with batch_first or "
                             f"(L, {self.d_model}) unbatched, got {x.shape}")
        return x

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, norm_first={self.norm_first}, "
                f"batch_first={self.batch_first}")


class TransformerEncoderLayer(_Block):
    """Self-attention and a feed-forward block, each with a residual connection and LayerNorm.

    ``norm_first=False``: ``x = norm1(x + sa(x)); x = norm2(x + ff(x))``;
    ``norm_first=True``: ``x = x + sa(norm1(x)); x = x + ff(norm2(x))``, where
    ``sa(x) = dropout1(self_attn(x, x, x))`` and
    ``ff(x) = dropout2(linear2(dropout(activation(linear1(x)))))``.

    Args:
        d_model: E, the feature size; nhead: attention heads (must divide E).
        dim_feedforward: hidden size of the feed-forward block (default 2048).
        dropout: probability for every dropout, attention weights included (default 0.1).
        activation: ``'relu'`` (default), ``'gelu'`` or a handgrad Layer.
        layer_norm_eps: the norms' eps; batch_first: (N, L, E) layout; norm_first: pre-norm.
        bias: biases in the linear maps, attention and norms (default True).
        dtype, rng: parameter dtype (float32) and generator or seed for weights and masks.

    Shape: src ``(L, N, E)`` (``(N, L, E)`` with batch_first, ``(L, E)`` unbatched), output
    the same; src_mask and src_key_padding_mask as ``MultiheadAttention``'s attn_mask and
    key_padding_mask. Children (PyTorch's names): ``self_attn``, ``linear1``, ``dropout``,
    ``linear2``, ``norm1``, ``norm2``, ``dropout1``, ``dropout2``, ``activation``.

    ``forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False)``;
    ``backward(grad_out)`` returns the gradient of ``src``. Forward caches what its children
    cache.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation="relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True,
                 dtype: DTypeLike = np.float32, rng=None):
        super().__init__("TransformerEncoderLayer", d_model, nhead, dim_feedforward, dropout,
                         activation, layer_norm_eps, batch_first, norm_first, bias, dtype, rng,
                         n_norms=2)

    def forward(self, src: NDArray, src_mask: NDArray | None = None,
                src_key_padding_mask: NDArray | None = None, is_causal: bool = False) -> NDArray:
        x = self._check(src, "src")
        masks = (src_mask, src_key_padding_mask, is_causal)
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), *masks)
            x = x + self._ff_block(self.norm2(x), self.dropout2)
        else:
            x = self.norm1(x + self._sa_block(x, *masks))
            x = self.norm2(x + self._ff_block(x, self.dropout2))
        self._shape = x.shape if self.caching else None
        return x

    def backward(self, grad_out: NDArray) -> NDArray:
        g = check_grad(self, grad_out, self._saved(self._shape))
        if self.norm_first:
            # x2 = x1 + ff(norm2(x1)),  x1 = src + sa(norm1(src))
            g = g + self.norm2.backward(self._ff_backward(g, self.dropout2))
            return g + self.norm1.backward(self._sa_backward(g))
        # x2 = norm2(x1 + ff(x1)),  x1 = norm1(src + sa(src))
        g = self.norm2.backward(g)
        g = g + self._ff_backward(g, self.dropout2)
        g = self.norm1.backward(g)
        return g + self._sa_backward(g)


class TransformerDecoderLayer(_Block):
    """Self-attention, attention over ``memory``, and a feed-forward block, each residual.

    ``norm_first=False``: ``x = norm1(x + sa(x)); x = norm2(x + mha(x, m)); x = norm3(x +
    ff(x))``; ``norm_first=True``: ``x = x + sa(norm1(x)); x = x + mha(norm2(x), m); x = x +
    ff(norm3(x))``, with ``mha(x, m) = dropout2(multihead_attn(x, m, m))`` and ``ff`` ending
    in ``dropout3``. Arguments as ``TransformerEncoderLayer``'s.

    Shape: tgt ``(T, N, E)``, memory ``(S, N, E)`` (batch first or unbatched likewise);
    output as tgt. Children: those of the encoder layer plus ``multihead_attn``, ``norm3``,
    ``dropout3``.

    ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False)``;
    ``backward(grad_out)`` returns ``(grad_tgt, grad_memory)``. Forward caches what its
    children cache.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation="relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True,
                 dtype: DTypeLike = np.float32, rng=None):
        super().__init__("TransformerDecoderLayer", d_model, nhead, dim_feedforward, dropout,
                         activation, layer_norm_eps, batch_first, norm_first, bias, dtype, rng,
                         n_norms=3)

    def _mha_block(self, x, memory, attn_mask, key_padding_mask, is_causal) -> NDArray:
        y, _ = self.multihead_attn(x, memory, memory, attn_mask=attn_mask,
                                   key_padding_mask=key_padding_mask, need_weights=False,
                                   is_causal=is_causal)
        return self.dropout2(y)

    def _mha_backward(self, grad: NDArray) -> tuple[NDArray, NDArray]:
        grad_q, grad_k, grad_v = self.multihead_attn.backward(self.dropout2.backward(grad))
        return grad_q, grad_k + grad_v  # memory was both key and value

    def forward(self, tgt: NDArray, memory: NDArray, tgt_mask: NDArray | None = None,
                memory_mask: NDArray | None = None,
                tgt_key_padding_mask: NDArray | None = None,
                memory_key_padding_mask: NDArray | None = None, tgt_is_causal: bool = False,
                memory_is_causal: bool = False) -> NDArray:
        x = self._check(tgt, "tgt")
        memory = self._check(memory, "memory")
        self_masks = (tgt_mask, tgt_key_padding_mask, tgt_is_causal)
        memory_masks = (memory_mask, memory_key_padding_mask, memory_is_causal)
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), *self_masks)
            x = x + self._mha_block(self.norm2(x), memory, *memory_masks)
            x = x + self._ff_block(self.norm3(x), self.dropout3)
        else:
            x = self.norm1(x + self._sa_block(x, *self_masks))
            x = self.norm2(x + self._mha_block(x, memory, *memory_masks))
            x = self.norm3(x + self._ff_block(x, self.dropout3))
        self._shape = x.shape if self.caching else None
        return x

    def backward(self, grad_out: NDArray) -> tuple[NDArray, NDArray]:
        g = check_grad(self, grad_out, self._saved(self._shape))
        if self.norm_first:
            g = g + self.norm3.backward(self._ff_backward(g, self.dropout3))
            grad_x, grad_memory = self._mha_backward(g)
            g = g + self.norm2.backward(grad_x)
            return g + self.norm1.backward(self._sa_backward(g)), grad_memory
        g = self.norm3.backward(g)
        g = g + self._ff_backward(g, self.dropout3)
        g = self.norm2.backward(g)
        grad_x, grad_memory = self._mha_backward(g)
        g = self.norm1.backward(g + grad_x)
        return g + self._sa_backward(g), grad_memory
