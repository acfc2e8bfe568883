"""``handgrad train --model charlstm --dataset text``: a character LSTM with truncated BPTT.

The corpus is the Python standard library's source on this machine (``--data-path FILE``
for another text file). The last 10% of the character stream is held out (validation).
Training runs through ``handgrad.fit`` — same progress, checkpoints, resume and plots
as the image models — with ``StatefulLM``, which carries the LSTM state from one chunk
of ``SEQ_LEN`` characters to the next (values kept, gradient cut at the boundary) and
restarts it from zero at every epoch and for every evaluation pass.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from ..layer import Layer
from .common import UsageError, build_training, save_plots

SEQ_LEN = 64
CORPUS_CHARS = 200_000
HIDDEN_SIZE = 128


class StatefulLM(Layer):
    """Wraps a ``CharLM`` for ``fit``: ids ``(N, T)`` -> logits ``(N*T, V)``, state carried.

    The state restarts at ``train()`` and ``eval()`` (fit calls ``train()`` at each epoch,
    ``evaluate`` calls ``eval()``), so every pass over the stream starts from zero.
    Children: ``lm`` (the CharLM); state_dict keys are ``lm.embedding.weight``, ...
    """

    def __init__(self, lm: Layer):
        super().__init__()
        self.lm = lm
        self.state = None

    def forward(self, ids: np.ndarray) -> np.ndarray:
        logits = self.lm(ids, self.state)  # (N, T, V)
        self.state = self.lm.final_state
        self._shape = logits.shape
        return logits.reshape(-1, logits.shape[-1])  # (N*T, V)

    def backward(self, grad_out: np.ndarray) -> None:
        self.lm.backward(grad_out.reshape(self._shape))
        return None

    def train(self, mode: bool = True) -> Layer:
        self.state = None
        return super().train(mode)

    def eval(self, *, backward: bool = False) -> Layer:
        self.state = None
        return super().eval(backward=backward)


class FlatTargets:
    """``BPTTBatches`` with the targets flattened to ``(N*T,)`` to match the logits."""

    def __init__(self, batches: Any):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for inputs, targets in self.batches:
            yield inputs, targets.reshape(-1)


def load_corpus(data_path: str | None) -> tuple[str, str]:
    from ..data import load_text, python_stdlib_corpus

    try:
        if data_path is None:
            return python_stdlib_corpus(max_chars=CORPUS_CHARS), "the Python standard library"
        return load_text(data_path), data_path
    except (OSError, ValueError) as error:
        raise UsageError(str(error)) from None


def run_text(args: argparse.Namespace, settings: dict[str, Any],
             resume_state: dict[str, Any] | None) -> int:
    from ..data import BPTTBatches, CharVocab
    from ..losses import CrossEntropyLoss
    from ..models import CharLM
    from ..training import callbacks as cb
    from ..training.fit import CheckpointMismatchError, fit

    started = time.perf_counter()
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    text, source = load_corpus(args.data_path)
    if args.max_samples:
        text = text[:args.max_samples]
    vocab = CharVocab.from_text(text)
    ids = vocab.encode(text)
    batch_size = settings["batch_size"]
    n_val = int(len(ids) * 0.1)
    if len(ids) - n_val < batch_size * 2 + 1 or n_val < 3:
        raise UsageError(f"the corpus {source} has {len(ids)} characters; too few for batches "
                         f"of {batch_size} streams (use a longer text or a smaller "
                         f"--batch-size)")
    train_batches = FlatTargets(BPTTBatches(ids[:-n_val], batch_size, SEQ_LEN))
    val_batches = FlatTargets(BPTTBatches(ids[-n_val:], min(batch_size, (n_val - 1) // 2),
                                          SEQ_LEN))
    lm = CharLM(len(vocab), embedding_dim=32, hidden_size=HIDDEN_SIZE, rng=args.seed)
    model = StatefulLM(lm)
    optimizer, scheduler = build_training(settings, model, len(train_batches), resume_state)
    say(f"handgrad train: charlstm (LSTM {HIDDEN_SIZE}, vocabulary of {len(vocab)} characters) "
        f"on {len(ids):,} characters of {source}: truncated BPTT over chunks of {SEQ_LEN}, "
        f"{batch_size} streams, {settings['epochs']} epochs, {settings['optimizer']} "
        f"lr={settings['lr']:g}")
    callbacks: list = []
    if args.checkpoint_dir:
        callbacks.append(cb.ModelCheckpoint(args.checkpoint_dir, monitor="val_loss"))
    if not args.quiet and not sys.stdout.isatty():
        callbacks.append(cb.EpochPrinter(settings["epochs"]))
    try:
        history = fit(model, CrossEntropyLoss(), optimizer, train_batches,
                      epochs=settings["epochs"], val_data=val_batches, scheduler=scheduler,
                      clip_grad_norm=1.0, callbacks=callbacks, progress=not args.quiet,
                      resume_from=resume_state)
    except CheckpointMismatchError as error:
        raise UsageError(str(error)) from None
    if args.plot:
        save_plots(history, args.plot, say)
    last = history.last()
    sample = lm.generate("def ", 200, temperature=0.8, rng=args.seed, vocab=vocab)
    say("sample (temperature 0.8):\n" + "def " + sample)
    elapsed = time.perf_counter() - started
    print(f"charlstm on text: validation loss {last['val_loss']:.4f} nats/char (perplexity "
          f"{np.exp(last['val_loss']):.2f}, next-character accuracy "
          f"{100 * last['val_accuracy']:.2f}%) after {len(history)} epochs in {elapsed:.1f} s",
          flush=True)
    return 0
