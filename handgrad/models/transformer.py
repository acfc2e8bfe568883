"""A character-level transformer language model, beside the LSTM ``CharLM``.

``train_char_transformer`` trains it on random windows of one long id stream:

    from handgrad.data import CharVocab
    vocab = CharVocab.from_text(text)
    model = CharTransformer(len(vocab), max_len=64, rng=0)
    losses = train_char_transformer(model, vocab.encode(text), seq_len=64, steps=300)
    print(model.generate("the ", 200, temperature=0.8, rng=0, vocab=vocab))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validation import check_positive_int
from ..data.text import CharVocab
from ..init import normal_
from ..layer import Layer
from ..layers import Embedding, LayerNorm, Linear, TransformerEncoder, TransformerEncoderLayer
from ..layers.transformer import Transformer
from ..losses import CrossEntropyLoss
from ..optim import AdamW, clip_grad_norm_
from ..random import resolve_rng
from .recurrent import _sample

__all__ = ["CharTransformer", "train_char_transformer"]


class CharTransformer(Layer):
    """Decoder-only character model: ``Embedding + positions -> causal encoder -> Linear``.

    ``h_0[t] = embedding[ids[t]] + pos_embedding[t]``; ``h = encoder(h_0, causal mask)`` (each
    position attends to itself and the positions before it); ``logits = head(h)``.

    Args:
        vocab_size: number of distinct characters V.
        d_model, nhead, num_layers, dim_feedforward, dropout, activation: the
            ``TransformerEncoderLayer`` stack (batch first).
        max_len: the longest sequence (context) the learned positions cover.
        norm_first: pre-norm layers (default True) with a final ``LayerNorm`` (``encoder.norm``).
        dtype: parameter dtype (float32 by default).
        rng: generator or seed for the initial weights and the dropout masks.

    Shape:
        - input: ids ``(N, T)`` (batch first) or ``(T,)``, with T <= max_len
        - output: logits ``(N, T, V)`` (``(T, V)`` unbatched)
        - embedding ``(V, d_model)``, pos_embedding ``(max_len, d_model)``, both N(0, 0.02^2)

    Children: ``embedding``, ``pos_embedding``, ``encoder`` (``encoder.layers.0``, ...),
    ``head``. Every layer of the stack gets its own initial weights. ``backward(grad_logits)``
    returns ``None`` (ids have no gradient). Forward caches what its children cache.
    """

    def __init__(self, vocab_size: int, d_model: int = 64, nhead: int = 4, num_layers: int = 2,
                 dim_feedforward: int = 256, max_len: int = 128, dropout: float = 0.0,
                 activation: str = "gelu", norm_first: bool = True,
                 dtype: DTypeLike = np.float32, rng=None):
        super().__init__()
        self.vocab_size = check_positive_int("CharTransformer", "vocab_size", vocab_size)
        self.max_len = check_positive_int("CharTransformer", "max_len", max_len)
        gen = resolve_rng(rng)
        self.embedding = Embedding(vocab_size, d_model, dtype=dtype, rng=gen)
        self.pos_embedding = Embedding(max_len, d_model, dtype=dtype, rng=gen)
        for table in (self.embedding, self.pos_embedding):
            normal_(table.weight, 0.0, 0.02, gen)
        layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation,
                                        batch_first=True, norm_first=norm_first, dtype=dtype,
                                        rng=gen if rng is not None else None)
        norm = LayerNorm(d_model, dtype=dtype) if norm_first else None
        self.encoder = TransformerEncoder(layer, num_layers, norm=norm)
        for block in self.encoder.layers:  # the stack's copies start equal; re-draw each
            block.self_attn.reset_parameters(gen)
            block.linear1.reset_parameters(gen)
            block.linear2.reset_parameters(gen)
        self.head = Linear(d_model, vocab_size, dtype=dtype, rng=gen)
        self._cache = None

    def forward(self, ids: NDArray) -> NDArray:
        ids = np.asarray(ids)
        if ids.ndim not in (1, 2) or not 1 <= ids.shape[-1] <= self.max_len:
            raise ValueError(f"{self.describe()}: expected ids of shape (N, T) or (T,) with "
                             f"1 <= T <= max_len={self.max_len}, got {ids.shape}")
        T = ids.shape[-1]
        x = self.embedding(ids) + self.pos_embedding(np.arange(T))  # (N, T, E) or (T, E)
        mask = Transformer.generate_square_subsequent_mask(T, x.dtype)
        h = self.encoder(x, mask=mask, is_causal=True)
        self._cache = ids.ndim if self.caching else None
        return self.head(h)

    def backward(self, grad_logits: NDArray) -> None:
        ndim = self._saved(self._cache)
        grad_x = self.encoder.backward(self.head.backward(grad_logits))
        self.embedding.backward(grad_x)
        # every sequence of the batch added the same position vectors
        self.pos_embedding.backward(grad_x.sum(axis=0) if ndim == 2 else grad_x)
        return None

    def generate(self, prompt: str | Sequence[int], length: int, temperature: float = 1.0,
                 rng=None, vocab: CharVocab | None = None) -> str | NDArray:
        """Sample ``length`` characters that follow ``prompt`` (as ``CharLM.generate``).

        Each next id is drawn from ``softmax(logits / temperature)`` of the last position
        (``temperature=0``: the most likely id), given the last ``max_len`` ids as context,
        and appended. Returns the continuation: a string with ``vocab``, else int64 ids.
        Runs in eval mode and restores the mode.
        """
        if isinstance(prompt, str):
            if vocab is None:
                raise ValueError(f"{self.describe()}.generate: a string prompt needs vocab=")
            ids = vocab.encode(prompt)
        else:
            ids = np.asarray(prompt, dtype=np.int64).reshape(-1)
        if ids.size == 0:
            raise ValueError(f"{self.describe()}.generate: expected a non-empty prompt")
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
            raise ValueError(f"{self.describe()}.generate: expected a length >= 0, got {length!r}")
        if not temperature >= 0:
            raise ValueError(f"{self.describe()}.generate: expected temperature >= 0, got "
                             f"{temperature!r}")
        gen = resolve_rng(rng)
        modes = [(m, m.training, m._eval_backward) for m in self.modules()]
        self.eval()
        try:
            seq = np.concatenate([ids.astype(np.int64), np.empty(length, dtype=np.int64)])
            n = ids.size
            for k in range(length):
                logits = self.forward(seq[max(0, n + k - self.max_len):n + k])[-1]
                seq[n + k] = _sample(logits, temperature, gen)
        finally:
            for m, training, eval_backward in modes:
                object.__setattr__(m, "training", training)
                object.__setattr__(m, "_eval_backward", eval_backward)
        out = seq[n:]
        return vocab.decode(out) if vocab is not None else out

    def extra_repr(self) -> str:
        return f"vocab_size={self.vocab_size}, max_len={self.max_len}"


def train_char_transformer(model: CharTransformer, ids: NDArray, seq_len: int = 64,
                           batch_size: int = 32, steps: int = 500, lr: float = 3e-3,
                           clip_norm: float | None = 1.0, optimizer=None, rng=None,
                           callback: Callable[[int, float], None] | None = None) -> list[float]:
    """Train ``model`` for ``steps`` steps on random windows of ``ids``; return the losses.

    Each step draws ``batch_size`` windows of ``seq_len + 1`` consecutive ids at random
    starts (``rng``), predicts ids 1..seq_len from ids 0..seq_len-1 (mean cross-entropy
    over every position), clips the gradient norm to ``clip_norm`` (None: no clipping) and
    steps ``optimizer`` (default ``AdamW(lr)``). ``callback(step, loss)`` after each step.
    Leaves the model in training mode.
    """
    ids = np.asarray(ids)
    seq_len = check_positive_int("train_char_transformer", "seq_len", seq_len)
    batch_size = check_positive_int("train_char_transformer", "batch_size", batch_size)
    if ids.ndim != 1 or ids.size < seq_len + 1:
        raise ValueError(f"train_char_transformer: expected a 1-D id stream of at least "
                         f"seq_len + 1 = {seq_len + 1} ids, got shape {ids.shape}")
    if seq_len > model.max_len:
        raise ValueError(f"train_char_transformer: seq_len {seq_len} exceeds the model's "
                         f"max_len {model.max_len}")
    gen = resolve_rng(rng)
    optimizer = optimizer if optimizer is not None else AdamW(model.parameters(), lr=lr)
    criterion = CrossEntropyLoss()
    offsets = np.arange(seq_len + 1)
    model.train()
    losses: list[float] = []
    for step in range(1, steps + 1):
        starts = gen.integers(0, ids.size - seq_len, size=batch_size)
        windows = ids[starts[:, None] + offsets].astype(np.int64)  # (N, T + 1)
        logits = model(windows[:, :-1])  # (N, T, V)
        loss = criterion(logits.reshape(-1, model.vocab_size), windows[:, 1:].reshape(-1))
        optimizer.zero_grad()
        model.backward(criterion.backward().reshape(logits.shape))
        if clip_norm is not None:
            clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()
        losses.append(float(loss))
        if callback is not None:
            callback(step, float(loss))
    return losses
