"""Train a small character-level transformer language model and sample from it.

The corpus is generated here: sentences made of a few subjects, verbs and objects
("the old man walked past the river."), so it is always available and a small model learns
it in seconds. ``CharTransformer`` is token embeddings plus learned positions, a causal
pre-norm ``TransformerEncoder`` (each position attends to itself and the ones before it)
and a linear head; every gradient, attention included, is handgrad's hand-written backward.

Run: python examples/char_transformer.py [--steps 300]
"""

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from handgrad.data import CharVocab
from handgrad.models import CharTransformer, train_char_transformer, unigram_entropy

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
args = parser.parse_args()

rng = np.random.default_rng(0)
subjects = ["the cat", "the dog", "a bird", "my friend", "the old man", "a small child"]
verbs = ["sat on", "ran to", "looked at", "jumped over", "walked past"]
objects = ["the mat", "the park", "a tree", "the river", "the house", "a red box"]
text = " ".join(f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}."
                for _ in range(2000))
vocab = CharVocab.from_text(text)
ids = vocab.encode(text)
print(f"corpus: {len(text)} characters, {len(vocab)} distinct; unigram entropy "
      f"{unigram_entropy(ids):.3f} nats (the loss of a model that ignores the context)")

model = CharTransformer(len(vocab), d_model=48, nhead=4, num_layers=2, dim_feedforward=96,
                        max_len=48, rng=0)
print(f"model: {sum(p.size for p in model.parameters())} parameters")
start = time.perf_counter()


def report(step, loss):
    if step == 1 or step % 25 == 0 or step == args.steps:
        print(f"step {step:4d}  loss {loss:.3f}  ({time.perf_counter() - start:.1f} s)")


# Tiny matrices: one BLAS thread is fastest (and leaves the other core alone).
with threadpool_limits(1):
    losses = train_char_transformer(model, ids, seq_len=48, batch_size=16, steps=args.steps,
                                    lr=3e-3, rng=1, callback=report)
    sample = model.generate("the ", 120, temperature=0.5, rng=0, vocab=vocab)

first, last = np.mean(losses[:5]), np.mean(losses[-5:])
print(f"loss fell from {first:.3f} to {last:.3f} (mean of the first and last 5 steps)")
print(f"sample: the {sample}")
