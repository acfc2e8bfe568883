"""``handgrad train``: data, model, optimizer and scheduler from the command line, then ``fit``.

Model/dataset rules (checked before anything is trained):

* ``cnn`` (``handgrad.models.digits_cnn``) takes any 1-channel image dataset;
* ``mlp`` flattens the images of any image dataset;
* ``lenet5`` needs 28×28 images: MNIST/Fashion-MNIST as they are; the 8×8 digits are upscaled
  ×3 (nearest) and zero-padded to 28×28; CIFAR-10 is refused;
* ``resnet20`` is the CIFAR ResNet-20: ``cifar10`` only;
* ``charlstm`` (character language model) pairs only with ``--dataset text``, and ``text`` only
  with ``charlstm``.

Data parallel: under ``mpiexec -n K handgrad train ...`` (K > 1) every rank trains a replica
(``DistributedDataParallel``, BatchNorm converted to ``SyncBatchNorm``) on its shard of every
global batch of ``--batch-size`` samples (which K must divide); validation and test sets are
sharded too and their metrics summed over the ranks. Rank 0 alone prints, shows the progress
bar, writes checkpoints and plots. The training order depends only on ``--seed`` and the
epoch (``DistributedSampler``), so a checkpoint resumes on any number of ranks.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import DEFAULT_DATASET, DEFAULTS, UsageError, build_training, save_plots

IMAGE_DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10")


# ---------------------------------------------------------------------------- data
def check_pairing(model: str, dataset: str) -> None:
    if model == "charlstm" and dataset != "text":
        raise UsageError(f"model charlstm is a character language model; it needs --dataset "
                         f"text, got --dataset {dataset}")
    if dataset == "text" and model != "charlstm":
        raise UsageError(f"--dataset text is a character corpus; it needs --model charlstm, "
                         f"got --model {model}")
    if model == "lenet5" and dataset == "cifar10":
        raise UsageError("model lenet5 takes 1-channel 28x28 images (digits, mnist, "
                         "fashion-mnist); cifar10 has 3-channel 32x32 images: use --model "
                         "resnet20, cnn or mlp")
    if model == "resnet20" and dataset != "cifar10":
        raise UsageError(f"model resnet20 is the CIFAR ResNet-20 (3-channel 32x32 images); "
                         f"it needs --dataset cifar10, got --dataset {dataset}")


def load_images(dataset: str, data_path: str | None, seed: int) -> dict[str, Any]:
    """Train and test arrays ``(x, y)`` of an image dataset (test: a held-out split for digits)."""
    from .. import data

    if dataset == "digits":
        if data_path is not None:
            raise UsageError("--data-path is not used with --dataset digits (the digits ship "
                             "inside scikit-learn)")
        try:
            x, y = data.load_digits()
        except ImportError as error:
            raise UsageError(str(error)) from None
        train, test = data.train_val_split(x, y, 0.2, rng=seed, stratify=True)
        return {"train": train, "test": test, "test_name": "held-out 20% test split"}
    if data_path is None:
        raise UsageError(f"--dataset {dataset} needs --data-path: the folder holding its files "
                         f"(handgrad never downloads data)")
    if not os.path.exists(data_path):
        raise UsageError(f"data path {data_path} does not exist")
    loader = {"mnist": data.load_mnist, "fashion-mnist": data.load_fashion_mnist}.get(dataset)
    try:
        if loader is not None:
            train, test = loader(data_path, "train"), loader(data_path, "test")
        else:
            train = data.load_cifar10(data_path, train=True)
            test = data.load_cifar10(data_path, train=False)
    except (OSError, ValueError) as error:
        raise UsageError(str(error)) from None
    return {"train": train, "test": test, "test_name": "test set"}


def prepare_images(model: str, split: dict[str, Any]) -> dict[str, Any]:
    """Standardize with the training set's per-channel mean and std; fit the model's input."""
    x_train, y_train = split["train"]
    mean = x_train.mean(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
    std = x_train.std(axis=(0, 2, 3), keepdims=True, dtype=np.float64) + 1e-8

    def prepare(x: np.ndarray) -> np.ndarray:
        x = ((x - mean) / std).astype(np.float32)
        if model == "lenet5" and x.shape[-2:] == (8, 8):
            x = x.repeat(3, axis=2).repeat(3, axis=3)  # (N, 1, 24, 24)
            x = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))  # (N, 1, 28, 28)
        if model == "mlp":
            x = x.reshape(len(x), -1)
        return np.ascontiguousarray(x)

    out = dict(split)
    out["train"] = (prepare(x_train), y_train)
    out["test"] = (prepare(split["test"][0]), split["test"][1])
    return out


def make_loader(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int,
                augment: bool, replicas: int = 1, rank: int = 0) -> Any:
    """A shuffling DataLoader over this rank's shard of every global batch of ``batch_size``
    (reshuffled each epoch from ``seed`` and the epoch); CIFAR-10 gets random crops
    (padding 4) and horizontal flips."""
    from ..data import Compose, DataLoader, DistributedSampler, RandomCrop, RandomHorizontalFlip

    if batch_size % replicas:
        raise UsageError(f"--batch-size {batch_size} is the global batch: it must be divisible "
                         f"by the {replicas} ranks (e.g. --batch-size "
                         f"{max(replicas, batch_size // replicas * replicas)})")
    transform = None
    if augment:
        transform = Compose([RandomCrop(x.shape[-1], padding=4, rng=seed + 10 + rank),
                             RandomHorizontalFlip(rng=seed + 11 + rank)])
    # Every sample once per epoch, as on one process; if the last global batch would leave a
    # rank without a sample, the sampler drops the last len(x) % replicas samples instead.
    tail = len(x) % batch_size
    drop = 0 < tail < replicas
    sampler = DistributedSampler(x, replicas, rank, shuffle=True, seed=seed, drop_last=drop,
                                 pad=False)
    return DataLoader((x, y), batch_size=batch_size // replicas, sampler=sampler,
                      transform=transform)


def shard(data: tuple[np.ndarray, np.ndarray], replicas: int, rank: int,
          batch_size: int = 512) -> Any:
    """Evaluation batches of this rank's shard (every sample on exactly one rank). No
    generator is involved, so checkpoints hold the same random states on any number of ranks."""
    from ..data import DistributedSampler
    from ..training.fit import ArrayBatches

    if replicas == 1:
        return data
    index = DistributedSampler(data[0], replicas, rank, shuffle=False, pad=False).indices()
    return ArrayBatches(data[0][index], data[1][index], batch_size)


# ---------------------------------------------------------------------------- model
def build_model(model: str, x_shape: tuple[int, ...], num_classes: int, rng: Any) -> Any:
    if model == "mlp":
        from ..models.mlp import mlp

        return mlp(int(np.prod(x_shape[1:])), num_classes=num_classes, rng=rng)
    if model == "cnn":
        from ..models.cnn import digits_cnn

        return digits_cnn(in_channels=x_shape[1], num_classes=num_classes, rng=rng)
    if model == "lenet5":
        from ..models.cnn import lenet5

        return lenet5(in_channels=x_shape[1], num_classes=num_classes, rng=rng)
    if model == "resnet20":
        from .. import models

        return models.resnet20(num_classes=num_classes, rng=rng)
    raise UsageError(f"unknown model {model!r}")


# ---------------------------------------------------------------------------- run
def _resume_path(resume: str) -> Path:
    path = Path(resume)
    if path.is_dir():
        path = path / "last.npz"
    if not path.is_file():
        raise UsageError(f"checkpoint {path} does not exist")
    return path


def _load_resume(resume: str) -> dict[str, Any]:
    from ..training.fit import load_checkpoint

    path = _resume_path(resume)
    try:
        return load_checkpoint(path)
    except (OSError, ValueError, KeyError) as error:
        raise UsageError(f"cannot read checkpoint {path}: {error}") from None


def run_train(args: argparse.Namespace) -> int:
    from ..distributed import DistributedDataParallel, convert_sync_batchnorm, world
    from ..losses import CrossEntropyLoss
    from ..ops.parallel import get_num_threads
    from ..training import callbacks as cb
    from ..training.fit import CheckpointMismatchError, evaluate, fit

    model_name = args.model
    dataset = args.dataset or DEFAULT_DATASET[model_name]
    check_pairing(model_name, dataset)
    settings = dict(DEFAULTS[model_name])
    for key in ("epochs", "batch_size", "optimizer", "lr", "scheduler"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if not 0.0 <= args.val_fraction < 1.0:
        raise UsageError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    comm = world()
    replicas, rank = (1, 0) if comm is None else (comm.size, comm.rank)
    resume_state = _load_resume(args.resume) if args.resume else None
    if dataset == "text":
        if replicas > 1:
            raise UsageError("--model charlstm reads one character stream with truncated BPTT "
                             "and does not run data-parallel yet; start it without mpiexec")
        from .text import run_text

        return run_text(args, settings, resume_state)

    started = time.perf_counter()
    main_rank = rank == 0
    quiet = args.quiet or not main_rank
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    split = prepare_images(model_name, load_images(dataset, args.data_path, args.seed))
    x_train, y_train = split["train"]
    if args.max_samples:
        x_train, y_train = x_train[:args.max_samples], y_train[:args.max_samples]
    val = None
    if args.val_fraction > 0:
        from ..data import train_val_split

        (x_train, y_train), val = train_val_split(x_train, y_train, args.val_fraction,
                                                  rng=args.seed + 1, stratify=True)
    num_classes = int(max(y_train.max(), split["test"][1].max())) + 1
    rng = np.random.default_rng(args.seed)
    model = build_model(model_name, x_train.shape, num_classes, rng)
    loader = make_loader(x_train, y_train, settings["batch_size"], seed=args.seed + 2,
                         augment=dataset == "cifar10", replicas=replicas, rank=rank)
    optimizer, scheduler = build_training(settings, model, len(loader), resume_state)
    if replicas > 1:  # the optimizer holds the same Parameter objects
        model = DistributedDataParallel(convert_sync_batchnorm(model))
    n_params = sum(p.size for p in model.parameters())
    say(f"handgrad train: {model_name} ({n_params:,} parameters) on {dataset}: "
        f"{len(x_train)} train / {0 if val is None else len(val[0])} val / "
        f"{len(split['test'][0])} test samples; {settings['optimizer']} lr={settings['lr']:g}, "
        f"scheduler {settings['scheduler']}, {settings['epochs']} epochs of batch "
        f"{settings['batch_size']}"
        + (f" ({replicas} ranks x {settings['batch_size'] // replicas} samples, "
           f"{get_num_threads()} thread(s) each)" if replicas > 1 else ""))

    callbacks: list = []
    if args.checkpoint_dir and main_rank:
        callbacks.append(cb.ModelCheckpoint(args.checkpoint_dir,
                                            monitor="val_loss" if val is not None else "loss"))
    if not quiet and not sys.stdout.isatty():
        callbacks.append(cb.EpochPrinter(settings["epochs"]))
    try:
        history = fit(model, CrossEntropyLoss(), optimizer, loader, epochs=settings["epochs"],
                      val_data=None if val is None else shard(val, replicas, rank, 256),
                      scheduler=scheduler, callbacks=callbacks, progress=not quiet,
                      batch_size=256, resume_from=resume_state)
    except CheckpointMismatchError as error:
        raise UsageError(str(error)) from None
    test = evaluate(model, shard(split["test"], replicas, rank), CrossEntropyLoss(),
                    batch_size=512)
    if not main_rank:
        return 0
    if args.plot:
        save_plots(history, args.plot, say)
    elapsed = time.perf_counter() - started
    print(f"{model_name} on {dataset}: test accuracy {100 * test['accuracy']:.2f}% "
          f"(loss {test['loss']:.4f}, {split['test_name']} of {len(split['test'][0])}) after "
          f"{len(history)} epochs in {elapsed:.1f} s", flush=True)
    return 0


