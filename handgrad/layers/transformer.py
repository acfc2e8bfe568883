"""Transformer stacks: TransformerEncoder, TransformerDecoder and Transformer, as in ``torch.nn``.

The layers themselves are in ``transformer_layers``. A stack runs copies of one layer in
order (children ``layers.0``, ``layers.1``, ...) and an optional final ``norm``; its
backward runs them in reverse. The decoder's layers all read the same ``memory``, so the
memory gradient is the sum of what each layer returns for it.
"""

from __future__ import annotations

import copy

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validation import as_float_input, check_grad, check_positive_int
from ..init import xavier_uniform_
from ..layer import Layer
from ..random import resolve_rng
from .container import Sequential
from .layer_norm import LayerNorm
from .transformer_layers import TransformerDecoderLayer, TransformerEncoderLayer

__all__ = ["TransformerEncoder", "TransformerDecoder", "Transformer"]


def _clones(owner: str, layer: Layer, expected: type, num_layers: int) -> Sequential:
    """``num_layers`` deep copies of ``layer`` (same initial weights, as in PyTorch), each with
    its own dropout generators, seeded from the template's first generator."""
    if not isinstance(layer, expected):
        raise TypeError(f"{owner}: expected a {expected.__name__}, got {type(layer).__name__}")
    check_positive_int(owner, "num_layers", num_layers)
    gens = [g for m in layer.modules() for g in vars(m).values()
            if isinstance(g, np.random.Generator)]
    source = gens[0] if gens else resolve_rng(None)
    copies = []
    for _ in range(num_layers):
        clone = copy.deepcopy(layer)
        fresh: dict[int, np.random.Generator] = {}  # a generator shared stays shared
        for module in clone.modules():
            for name, value in list(vars(module).items()):
                if isinstance(value, np.random.Generator):
                    if id(value) not in fresh:
                        fresh[id(value)] = np.random.default_rng(source.integers(2**63 - 1))
                    object.__setattr__(module, name, fresh[id(value)])
        copies.append(clone)
    return Sequential(*copies)


class TransformerEncoder(Layer):
    """A stack of ``num_layers`` copies of ``encoder_layer``, then ``norm`` if given.

    Args:
        encoder_layer: a ``TransformerEncoderLayer`` (copied; the copies start equal).
        num_layers: how many.
        norm: an optional layer applied to the output (a ``LayerNorm``).
        enable_nested_tensor, mask_check: accepted for PyTorch compatibility; no effect
            (PyTorch's nested-tensor inference path gives zeros at padded positions; here
            they are computed, as in PyTorch's training path).

    Shape: as the layer's. Children: ``layers`` (``layers.0``, ...), ``norm``.
    ``forward(src, mask=None, src_key_padding_mask=None, is_causal=None)`` passes the masks
    to every layer; ``backward(grad_out)`` returns the gradient of ``src``. Caches nothing
    itself.
    """

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int,
                 norm: Layer | None = None, enable_nested_tensor: bool = True,
                 mask_check: bool = True):
        super().__init__()
        self.layers = _clones("TransformerEncoder", encoder_layer, TransformerEncoderLayer,
                              num_layers)
        self.num_layers = int(num_layers)
        self.norm = norm

    def forward(self, src: NDArray, mask: NDArray | None = None,
                src_key_padding_mask: NDArray | None = None,
                is_causal: bool | None = None) -> NDArray:
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                      is_causal=bool(is_causal))
        return x if self.norm is None else self.norm(x)

    def backward(self, grad_out: NDArray) -> NDArray:
        g = grad_out if self.norm is None else self.norm.backward(grad_out)
        for layer in reversed(list(self.layers)):
            g = layer.backward(g)
        return g

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}"


class TransformerDecoder(Layer):
    """A stack of ``num_layers`` copies of ``decoder_layer``, each attending to ``memory``.

    Args as ``TransformerEncoder``'s (with a ``TransformerDecoderLayer``).

    Shape: tgt ``(T, N, E)``, memory ``(S, N, E)`` (or batch first, or unbatched); output as
    tgt. ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False)``;
    ``backward(grad_out)`` returns ``(grad_tgt, grad_memory)``, the memory gradient summed
    over the layers. Caches nothing itself.
    """

    def __init__(self, decoder_layer: TransformerDecoderLayer, num_layers: int,
                 norm: Layer | None = None):
        super().__init__()
        self.layers = _clones("TransformerDecoder", decoder_layer, TransformerDecoderLayer,
                              num_layers)
        self.num_layers = int(num_layers)
        self.norm = norm

    def forward(self, tgt: NDArray, memory: NDArray, tgt_mask: NDArray | None = None,
                memory_mask: NDArray | None = None,
                tgt_key_padding_mask: NDArray | None = None,
                memory_key_padding_mask: NDArray | None = None,
                tgt_is_causal: bool | None = None, memory_is_causal: bool = False) -> NDArray:
        x = tgt
        for layer in self.layers:
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      tgt_key_padding_mask=tgt_key_padding_mask,
                      memory_key_padding_mask=memory_key_padding_mask,
                      tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal)
        return x if self.norm is None else self.norm(x)

    def backward(self, grad_out: NDArray) -> tuple[NDArray, NDArray]:
        g = grad_out if self.norm is None else self.norm.backward(grad_out)
        grad_memory = None
        for layer in reversed(list(self.layers)):
            g, gm = layer.backward(g)
            grad_memory = gm if grad_memory is None else grad_memory + gm
        return g, grad_memory

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}"


class Transformer(Layer):
    """Encoder-decoder transformer (Vaswani et al., 2017), as ``torch.nn.Transformer``.

    ``memory = encoder(src)``, ``y = decoder(tgt, memory)``; both stacks end in a LayerNorm.
    Every parameter with two or more dimensions is initialised Xavier uniform.

    Args:
        d_model: the model width; it and nhead, num_encoder_layers, num_decoder_layers,
            dim_feedforward, dropout, activation, layer_norm_eps, batch_first, norm_first and
            bias are as in PyTorch (defaults 512, 8, 6, 6, 2048, 0.1, 'relu', 1e-5, False,
            False, True).
        custom_encoder, custom_decoder: layers used instead of the built stacks.
        dtype, rng: parameter dtype (float32) and generator or seed.

    Shape: src ``(S, N, E)``, tgt ``(T, N, E)`` (batch first: ``(N, S, E)``, ``(N, T, E)``;
    unbatched ``(S, E)``, ``(T, E)``); output as tgt. Masks: ``src_mask`` (S, S),
    ``tgt_mask`` (T, T), ``memory_mask`` (T, S) (or per head, ``(N * nhead, ., .)``), key
    padding masks ``(N, S)``, ``(N, T)``, ``(N, S)``. Children: ``encoder``
    (``encoder.layers.0``, ..., ``encoder.norm``) and ``decoder`` likewise.

    ``backward(grad_out)`` returns ``(grad_src, grad_tgt)``. Caches nothing itself.
    """

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation="relu", custom_encoder: Layer | None = None,
                 custom_decoder: Layer | None = None, layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True,
                 dtype: DTypeLike = np.float32, rng=None):
        super().__init__()
        self._out_shape = None
        gen = resolve_rng(rng)
        options = dict(dim_feedforward=dim_feedforward, dropout=dropout, activation=activation,
                       layer_norm_eps=layer_norm_eps, batch_first=batch_first,
                       norm_first=norm_first, bias=bias, dtype=dtype,
                       rng=gen if rng is not None else None)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            layer = TransformerEncoderLayer(d_model, nhead, **options)
            self.encoder = TransformerEncoder(
                layer, num_encoder_layers,
                LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            layer = TransformerDecoderLayer(d_model, nhead, **options)
            self.decoder = TransformerDecoder(
                layer, num_decoder_layers,
                LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        self.d_model, self.nhead, self.batch_first = d_model, nhead, bool(batch_first)
        for param in self.parameters():
            if param.data.ndim > 1:
                xavier_uniform_(param, rng=gen)

    def forward(self, src: NDArray, tgt: NDArray, src_mask: NDArray | None = None,
                tgt_mask: NDArray | None = None, memory_mask: NDArray | None = None,
                src_key_padding_mask: NDArray | None = None,
                tgt_key_padding_mask: NDArray | None = None,
                memory_key_padding_mask: NDArray | None = None,
                src_is_causal: bool | None = None, tgt_is_causal: bool | None = None,
                memory_is_causal: bool = False) -> NDArray:
        src, tgt = as_float_input(self, src, "src"), as_float_input(self, tgt, "tgt")
        if src.ndim not in (2, 3) or tgt.ndim != src.ndim:
            layout = "(N, S, E)" if self.batch_first else "(S, N, E)"
            raise ValueError(f"{self.describe()}: expected src and tgt of shape {layout} or "
                             f"unbatched (S, E), with E = d_model = {self.d_model}, got "
                             f"{src.shape} and {tgt.shape}")
        batch_axis = 0 if self.batch_first else 1
        if src.ndim == 3 and (tgt.ndim != 3 or src.shape[batch_axis] != tgt.shape[batch_axis]):
            raise ValueError(f"{self.describe()}: expected src and tgt with one batch size "
                             f"(axis {batch_axis}), got {src.shape} and {tgt.shape}")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise ValueError(f"{self.describe()}: expected the feature size of src and tgt "
                             f"to be d_model={self.d_model}, got {src.shape} and {tgt.shape}")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        out = self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                           tgt_key_padding_mask=tgt_key_padding_mask,
                           memory_key_padding_mask=memory_key_padding_mask,
                           tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        self._out_shape = out.shape if self.caching else None
        return out

    def backward(self, grad_out: NDArray) -> tuple[NDArray, NDArray]:
        grad_out = check_grad(self, grad_out, self._saved(self._out_shape))
        grad_tgt, grad_memory = self.decoder.backward(grad_out)
        return self.encoder.backward(grad_memory), grad_tgt

    @staticmethod
    def generate_square_subsequent_mask(sz: int, dtype: DTypeLike = np.float32) -> NDArray:
        """The causal mask ``(sz, sz)``: 0 on and below the diagonal, -inf above it
        (position i may attend to positions 0..i)."""
        sz = check_positive_int("Transformer.generate_square_subsequent_mask", "sz", sz)
        return np.triu(np.full((sz, sz), -np.inf, dtype=dtype), k=1)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, nhead={self.nhead}, batch_first={self.batch_first}"
