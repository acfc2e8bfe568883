"""Recurrent models: a character-level language model and a sequence classifier.

``train_charlm`` trains a ``CharLM`` with truncated BPTT over one long id stream:

    from handgrad.data import CharVocab, python_stdlib_corpus
    text = python_stdlib_corpus(max_chars=200_000)
    vocab = CharVocab.from_text(text)
    model = CharLM(len(vocab), rng=0)
    losses = train_charlm(model, vocab.encode(text), seq_len=64, batch_size=32, steps=500)
    print(model.generate("def ", 200, temperature=0.8, rng=0, vocab=vocab))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validation import check_positive_int
from ..data.text import BPTTBatches, CharVocab
from ..layer import Layer
from ..layers import GRU, LSTM, Embedding, Linear
from ..losses import CrossEntropyLoss
from ..optim import Adam, clip_grad_norm_
from ..random import resolve_rng

__all__ = ["CharLM", "SequenceClassifier", "train_charlm", "unigram_entropy"]

_CELLS = {"lstm": LSTM, "gru": GRU}


def _recurrent_class(owner: str, cell: str):
    if cell not in _CELLS:
        raise ValueError(f"{owner}: expected cell 'lstm' or 'gru', got {cell!r}")
    return _CELLS[cell]


class CharLM(Layer):
    """Character-level language model: ``Embedding -> LSTM/GRU -> Linear`` (logits).

    Args:
        vocab_size: number of distinct characters V.
        embedding_dim, hidden_size, num_layers, dropout: sizes of the parts (dropout between
            recurrent layers).
        cell: ``'lstm'`` (default) or ``'gru'``.
        dtype: parameter dtype (float32 by default).
        rng: generator or seed for the initial weights.

    Shape:
        - input: ids ``(N, T)`` (batch first) or ``(T,)``
        - output: logits ``(N, T, V)`` (``(T, V)`` unbatched)
        - state: that of the recurrent layer (``(h, c)`` for the LSTM), kept in
          ``final_state`` after each forward; pass it back as ``state`` to continue a stream.

    Children: ``embedding``, ``rnn`` (batch_first), ``head``. ``backward(grad_logits,
    grad_final_state=None)`` returns ``None`` (ids have no gradient); the recurrent layer's
    ``grad_initial_state`` holds the initial state's gradient. Forward caches what its
    children cache.
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 64, hidden_size: int = 256,
                 num_layers: int = 1, cell: str = "lstm", dropout: float = 0.0,
                 dtype: DTypeLike = np.float32, rng=None):
        super().__init__()
        self.vocab_size = check_positive_int("CharLM", "vocab_size", vocab_size)
        rnn_class = _recurrent_class("CharLM", cell)
        self.cell = cell
        gen = resolve_rng(rng)
        self.embedding = Embedding(vocab_size, embedding_dim, dtype=dtype, rng=gen)
        self.rnn = rnn_class(embedding_dim, hidden_size, num_layers=num_layers,
                             batch_first=True, dropout=dropout, dtype=dtype, rng=gen)
        self.head = Linear(hidden_size, vocab_size, dtype=dtype, rng=gen)
        self.final_state = None

    def forward(self, ids: NDArray, state=None) -> NDArray:
        ids = np.asarray(ids)
        if ids.ndim not in (1, 2):
            raise ValueError(f"{self.describe()}: expected ids of shape (N, T) or (T,), got "
                             f"{ids.shape}")
        y = self.rnn(self.embedding(ids), state)
        self.final_state = self.rnn.final_state
        return self.head(y)

    def backward(self, grad_logits: NDArray, grad_final_state=None) -> None:
        grad_y = self.head.backward(grad_logits)
        self.embedding.backward(self.rnn.backward(grad_y, grad_final_state))
        return None

    def generate(self, prompt: str | Sequence[int], length: int, temperature: float = 1.0,
                 rng=None, vocab: CharVocab | None = None) -> str | NDArray:
        """Sample ``length`` characters that follow ``prompt``.

        The prompt (a string, with ``vocab``, or a sequence of ids) is run through the model,
        then each next id is drawn from ``softmax(logits / temperature)`` with ``rng`` (the
        same seed gives the same text) and fed back; ``temperature=0`` picks the most likely
        id. Returns the continuation (not the prompt): a string if ``vocab`` is given, else
        an int64 array. Runs in eval mode (no caches, no dropout) and restores the mode.
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
            out = np.empty(length, dtype=np.int64)
            logits = self.forward(ids[None])[0, -1]
            for k in range(length):
                out[k] = _sample(logits, temperature, gen)
                logits = self.forward(out[None, k:k + 1], self.final_state)[0, -1]
        finally:
            for m, training, eval_backward in modes:
                object.__setattr__(m, "training", training)
                object.__setattr__(m, "_eval_backward", eval_backward)
        return vocab.decode(out) if vocab is not None else out

    def extra_repr(self) -> str:
        return f"vocab_size={self.vocab_size}, cell={self.cell!r}"


def _sample(logits: NDArray, temperature: float, gen: np.random.Generator) -> int:
    if temperature == 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max())
    cdf = np.cumsum(p)
    return int(min(np.searchsorted(cdf, gen.random() * cdf[-1], side="right"), len(p) - 1))


def train_charlm(model: CharLM, ids: NDArray, seq_len: int = 64, batch_size: int = 32,
                 steps: int | None = None, epochs: int = 1, lr: float = 2e-3,
                 clip_norm: float | None = 1.0, optimizer=None,
                 callback: Callable[[int, float], None] | None = None) -> list[float]:
    """Train ``model`` on one long id stream with truncated BPTT; return the loss per step.

    The stream is split into ``batch_size`` contiguous rows (``BPTTBatches``); each step
    runs one chunk of ``seq_len`` ids, starting from the previous chunk's final state
    (values carried over, gradient cut at the chunk boundary), minimises the mean
    cross-entropy of the next id with ``optimizer`` (default ``Adam(lr)``), after clipping
    the gradient norm to ``clip_norm`` (None: no clipping). The state restarts from zero at
    each epoch. Stops after ``steps`` steps or ``epochs`` passes, whichever comes first.
    ``callback(step, loss)`` is called after every step. Leaves the model in training mode.
    """
    batches = BPTTBatches(ids, batch_size, seq_len)
    optimizer = optimizer if optimizer is not None else Adam(model.parameters(), lr=lr)
    criterion = CrossEntropyLoss()
    model.train()
    losses: list[float] = []
    for _ in range(epochs):
        state = None
        for inputs, targets in batches:
            if steps is not None and len(losses) >= steps:
                return losses
            logits = model(inputs, state)  # (N, T, V)
            state = model.final_state
            loss = criterion(logits.reshape(-1, model.vocab_size), targets.reshape(-1))
            optimizer.zero_grad()
            model.backward(criterion.backward().reshape(logits.shape))
            if clip_norm is not None:
                clip_grad_norm_(model.parameters(), clip_norm)
            optimizer.step()
            losses.append(float(loss))
            if callback is not None:
                callback(len(losses), float(loss))
    return losses


def unigram_entropy(ids: NDArray) -> float:
    """Entropy (nats) of the id frequencies: the loss of the best context-free predictor."""
    counts = np.bincount(np.asarray(ids).reshape(-1))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


class SequenceClassifier(Layer):
    """``[Embedding ->] LSTM/GRU -> pooling -> Linear``: one label per sequence.

    Args:
        input_size: feature size F of float inputs (give this or ``vocab_size``).
        hidden_size: recurrent hidden size H.
        num_classes: number of classes C (logits).
        vocab_size, embedding_dim: for integer-id inputs, an ``Embedding`` first.
        cell: ``'lstm'`` (default) or ``'gru'``; num_layers, bidirectional, dropout: as in
            the recurrent layer.
        pooling: ``'last'`` (the final hidden state of the last layer, both directions
            concatenated: the forward direction at t = T-1, the reverse one at t = 0) or
            ``'mean'`` (mean of the last layer's outputs over time).
        dtype, rng: parameter dtype and initial-weight generator.

    Shape: input ``(N, T, F)`` floats or ``(N, T)`` ids (batch first); output ``(N, C)``.
    All sequences in a batch have the same length (no padding masks). Children:
    ``embedding`` (if ids), ``rnn``, ``head``. ``backward(grad_logits)`` returns the input
    gradient (``None`` for ids). Forward caches what its children cache.
    """

    def __init__(self, input_size: int | None = None, hidden_size: int = 64,
                 num_classes: int = 2, *, vocab_size: int | None = None, embedding_dim: int = 32,
                 cell: str = "lstm", num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, pooling: str = "last", dtype: DTypeLike = np.float32,
                 rng=None):
        super().__init__()
        if (input_size is None) == (vocab_size is None):
            raise ValueError("SequenceClassifier: give exactly one of input_size (float "
                             f"features) and vocab_size (ids), got {input_size!r} and "
                             f"{vocab_size!r}")
        if pooling not in ("last", "mean"):
            raise ValueError(f"SequenceClassifier: expected pooling 'last' or 'mean', got "
                             f"{pooling!r}")
        rnn_class = _recurrent_class("SequenceClassifier", cell)
        self.num_classes = check_positive_int("SequenceClassifier", "num_classes", num_classes)
        self.pooling, self.cell = pooling, cell
        gen = resolve_rng(rng)
        if vocab_size is not None:
            self.embedding = Embedding(vocab_size, embedding_dim, dtype=dtype, rng=gen)
            input_size = embedding_dim
        else:
            self.embedding = None
        self.rnn = rnn_class(input_size, hidden_size, num_layers=num_layers, batch_first=True,
                             dropout=dropout, bidirectional=bidirectional, dtype=dtype, rng=gen)
        D = 2 if bidirectional else 1
        self.head = Linear(D * hidden_size, num_classes, dtype=dtype, rng=gen)
        self._shape = None

    def forward(self, x: NDArray) -> NDArray:
        if self.embedding is not None:
            ids = np.asarray(x)
            if ids.ndim != 2:
                raise ValueError(f"{self.describe()}: expected ids of shape (N, T), got "
                                 f"{ids.shape}")
            x = self.embedding(ids)
        elif np.ndim(x) != 3:
            raise ValueError(f"{self.describe()}: expected input of shape (N, T, "
                             f"{self.rnn.input_size}), got {np.shape(x)}")
        y = self.rnn(x)  # (N, T, D*H)
        if self.pooling == "mean":
            features = y.mean(axis=1)
        else:
            h_n = self.rnn.final_state[0] if self.cell == "lstm" else self.rnn.final_state
            D = self.rnn.num_directions
            features = np.concatenate(list(h_n[-D:]), axis=1)  # (N, D*H)
        self._shape = y.shape if self.caching else None
        return self.head(features)

    def backward(self, grad_logits: NDArray) -> NDArray | None:
        N, T, DH = self._saved(self._shape)
        grad_features = self.head.backward(grad_logits)  # (N, D*H)
        if self.pooling == "mean":
            grad_y = np.broadcast_to((grad_features / T)[:, None, :], (N, T, DH))
            grad_x = self.rnn.backward(grad_y)
        else:
            rnn, H = self.rnn, self.rnn.hidden_size
            D = rnn.num_directions
            grad_h = np.zeros((rnn.num_layers * D, N, H), dtype=grad_features.dtype)
            grad_h[-D:] = grad_features.reshape(N, D, H).transpose(1, 0, 2)
            grad_final = (grad_h, None) if self.cell == "lstm" else grad_h
            grad_x = rnn.backward(None, grad_final)
        if self.embedding is not None:
            return self.embedding.backward(grad_x)
        return grad_x

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, cell={self.cell!r}, pooling={self.pooling!r}"
