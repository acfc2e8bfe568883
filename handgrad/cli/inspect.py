"""``handgrad inspect CHECKPOINT``: gradient flow and attribution for a trained model.

A checkpoint from ``handgrad train --checkpoint-dir`` holds the model's state dict (not its
name), so the architecture is recognised from the parameter names and shapes: each model
of ``handgrad train`` (mlp, cnn, lenet5, resnet20, charlstm) is built with the sizes the
state dict implies and kept if it loads strictly (``--model`` names it instead). A batch of
the dataset, prepared as ``handgrad train`` prepares it, then goes through:

* ``gradient_flow``: the per-layer table (printed) and ``gradient_flow.png``;
* image models: ``saliency`` and ``integrated_gradients`` of the predicted class for a few
  test images: ``saliency.png``, ``integrated_gradients.png`` and the completeness error;
* charlstm: integrated gradients per character (at the embedding output) for the
  prediction of the character after each stream, ``tokens.png``, and ``bptt_profile`` of
  the LSTM, ``bptt.png``. The vocabulary is rebuilt from the corpus, so give the same
  ``--data-path`` and ``--max-samples`` as for training;
* with ``--check``, ``check_model`` on two samples (printed).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from ..layer import Layer
from .common import DEFAULT_DATASET, UsageError

IMAGE_MODELS = ("mlp", "cnn", "lenet5", "resnet20")


class _LastStep(Layer):
    """A ``CharLM`` seen as a classifier: ids (N, T) -> logits of the next character after
    the last one (N, V); backward puts the gradient at the last step only."""

    def __init__(self, lm: Layer):
        super().__init__()
        self.lm = lm

    def forward(self, ids: np.ndarray) -> np.ndarray:
        logits = self.lm(ids)  # (N, T, V)
        self._shape = logits.shape
        return logits[:, -1]

    def backward(self, grad_out: np.ndarray) -> None:
        grad = np.zeros(self._shape, dtype=grad_out.dtype)
        grad[:, -1] = grad_out
        return self.lm.backward(grad)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "inspect", help="gradient flow and attribution plots for a checkpoint",
        description="Load a checkpoint written by `handgrad train --checkpoint-dir`, run one "
                    "batch of its dataset through it and write gradient_flow.png, "
                    "saliency.png and integrated_gradients.png.")
    p.add_argument("checkpoint", help="a checkpoint file, or a directory holding best.npz "
                                      "or last.npz")
    p.add_argument("--model", choices=(*IMAGE_MODELS, "charlstm"), default=None,
                   help="the architecture (default: recognised from the state dict)")
    p.add_argument("--dataset", choices=("digits", "mnist", "fashion-mnist", "cifar10", "text"),
                   default=None, help="default: the model's default dataset")
    p.add_argument("--data-path", default=None, help="as for handgrad train")
    p.add_argument("--max-samples", type=int, default=None,
                   help="charlstm: the --max-samples of training (the vocabulary depends on "
                        "it)")
    p.add_argument("--out", default="handgrad-inspect", help="folder for the plots")
    p.add_argument("--samples", type=int, default=64,
                   help="batch size of the gradient-flow pass (64)")
    p.add_argument("--images", type=int, default=6, help="images to attribute (6)")
    p.add_argument("--steps", type=int, default=32, help="integrated-gradients steps (32)")
    p.add_argument("--check", action="store_true",
                   help="also gradient-check every layer in place (check_model)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data split (0)")


def _checkpoint_file(path: str) -> Path:
    p = Path(path)
    if p.is_dir():
        for name in ("best.npz", "last.npz"):
            if (p / name).is_file():
                return p / name
        raise UsageError(f"{p} holds no best.npz or last.npz")
    if not p.is_file():
        raise UsageError(f"checkpoint {p} does not exist")
    return p


def _candidates(state: dict[str, np.ndarray]) -> list[tuple[str, Any]]:
    """Models built with the sizes the state dict implies, most specific first."""
    from .. import models

    out: list[tuple[str, Any]] = []
    if "lm.embedding.weight" in state and "lm.rnn.weight_hh_l0" in state:
        from .text import StatefulLM

        V, E = state["lm.embedding.weight"].shape
        H = state["lm.rnn.weight_hh_l0"].shape[1]
        out.append(("charlstm", lambda: StatefulLM(models.CharLM(V, E, H))))
    weights = [k for k in state if k.endswith("weight") and state[k].ndim == 2]
    if "fc.weight" in state and "conv1.weight" in state:
        out.append(("resnet20", lambda: models.resnet20(num_classes=state["fc.weight"].shape[0])))
    if "0.weight" in state and state["0.weight"].ndim == 4 and weights:
        c, classes = state["0.weight"].shape[1], state[weights[-1]].shape[0]
        out.append(("cnn", lambda: models.digits_cnn(classes, c)))
        out.append(("lenet5", lambda: models.lenet5(classes, c)))
    if "0.weight" in state and state["0.weight"].ndim == 2:
        hidden = tuple(state[k].shape[0] for k in weights[:-1])
        out.append(("mlp", lambda: models.mlp(state["0.weight"].shape[1], hidden,
                                              state[weights[-1]].shape[0])))
    return out


def load_model(state: dict[str, np.ndarray], name: str | None) -> tuple[str, Any]:
    tried = []
    for candidate, build in _candidates(state):
        if name is not None and candidate != name:
            continue
        model = build()
        try:
            model.load_state_dict(state)
        except ValueError:
            tried.append(candidate)
            continue
        return candidate, model
    what = f"--model {name}" if name else "any image model of handgrad train"
    raise UsageError(f"the checkpoint's state dict does not fit {what} (tried: "
                     f"{', '.join(tried) or 'none'})")


def run_inspect(args: argparse.Namespace) -> int:
    from ..inspect import check_model, gradient_flow, integrated_gradients, saliency
    from ..losses import CrossEntropyLoss
    from ..training.fit import load_checkpoint
    from .train import load_images, prepare_images

    path = _checkpoint_file(args.checkpoint)
    try:
        state = load_checkpoint(path)["model"]
    except (OSError, ValueError, KeyError) as error:
        raise UsageError(f"cannot read checkpoint {path}: {error}") from None
    name, model = load_model(state, args.model)
    if name == "charlstm":
        return _inspect_charlstm(args, model, path)
    dataset = args.dataset or DEFAULT_DATASET[name]
    split = prepare_images(name, load_images(dataset, args.data_path, args.seed))
    x, y = split["test"]
    x, y = x[:max(1, args.samples)], y[:max(1, args.samples)]
    model.eval()
    out = Path(args.out)
    print(f"handgrad inspect: {name} from {path} on {len(x)} {dataset} test samples")
    table = gradient_flow(model, CrossEntropyLoss(), x, y)
    print(table)
    table.plot(out / "gradient_flow.png", title=f"{name}: gradient flow")
    images = x[:max(1, args.images)]
    if name == "mlp":
        print("attribution plots need image-shaped inputs; mlp inputs are flat: skipped")
    else:
        sal = saliency(model, images)
        sal.plot(out / "saliency.png", title=f"{name}: saliency of the predicted class")
        ig = integrated_gradients(model, images, steps=max(1, args.steps))
        ig.plot(out / "integrated_gradients.png", title=f"{name}: integrated gradients")
        print(f"integrated gradients ({args.steps} steps, black baseline): completeness "
              f"error {ig.completeness_error:.2e} (|sum of attributions - (f(x) - "
              f"f(baseline))|, largest over {len(images)} images)")
    if args.check:
        print(check_model(model, x, samples=2, max_checks=16))
    print(f"plots written to {out}")
    return 0


def _inspect_charlstm(args: argparse.Namespace, model: Any, path: Path) -> int:
    from ..data import CharVocab
    from ..inspect import bptt_profile, check_model, gradient_flow, integrated_gradients
    from ..losses import CrossEntropyLoss
    from .text import SEQ_LEN, load_corpus

    text, source = load_corpus(args.data_path)
    if args.max_samples:
        text = text[:args.max_samples]
    vocab = CharVocab.from_text(text)
    lm = model.lm
    if len(vocab) != lm.vocab_size:
        raise UsageError(f"the corpus {source} gives a vocabulary of {len(vocab)} characters, "
                         f"the checkpoint has {lm.vocab_size}: give the --data-path and "
                         f"--max-samples used for training")
    ids = vocab.encode(text)
    n = max(1, min(args.samples, (len(ids) - 1) // SEQ_LEN))
    tail = ids[-(n * SEQ_LEN + 1):]  # the held-out end of the stream
    x = tail[:-1].reshape(n, SEQ_LEN)
    y = tail[1:].reshape(n, SEQ_LEN)
    out = Path(args.out)
    print(f"handgrad inspect: charlstm from {path} on {n} streams of {SEQ_LEN} characters "
          f"of {source}")
    model.eval()
    table = gradient_flow(model, CrossEntropyLoss(), x, y.reshape(-1))
    print(table)
    table.plot(out / "gradient_flow.png", title="charlstm: gradient flow")
    shown = x[:max(1, min(args.images, n)), -24:]
    ig = integrated_gradients(_LastStep(lm), shown, layer=lm.embedding,
                              steps=max(1, args.steps))
    ig.plot(out / "tokens.png", tokens=[list(vocab.decode(row)) for row in shown],
            target_names=vocab.decode(np.arange(len(vocab))),
            title="charlstm: integrated gradients of the next character, per character")
    print(f"integrated gradients per character ({args.steps} steps, zero embedding "
          f"baseline): completeness error {ig.completeness_error:.2e}")
    lm.eval(backward=True)
    profile = bptt_profile(lm.rnn, lm.embedding(x[:4]), truncations=(1, 4, 16))
    print(profile)
    profile.plot(out / "bptt.png", title="charlstm: gradient through time")
    if args.check:
        model.eval()  # restart the carried state for the new batch size
        print(check_model(model, x, samples=2, max_checks=16))
    print(f"plots written to {out}")
    return 0
