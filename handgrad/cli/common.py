"""What the subcommands of ``handgrad`` share: choices, defaults, the usage error, and the
optimizer, scheduler and plots that ``handgrad train`` builds for images and text alike."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

MODELS = ("mlp", "cnn", "lenet5", "resnet20", "charlstm")
DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "text")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "nadam", "radam", "adamax", "adadelta",
              "asgd", "rprop")
SCHEDULERS = ("none", "step", "cosine", "onecycle", "plateau")
TORCH_VERSION = "2.13.0"


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


# ---------------------------------------------------------------------------- defaults
# Per model: epochs, batch size, optimizer, learning rate, scheduler, weight decay.
DEFAULTS: dict[str, dict[str, Any]] = {
    "cnn": dict(epochs=8, batch_size=32, optimizer="adam", lr=3e-3, scheduler="onecycle",
                weight_decay=0.0),
    "mlp": dict(epochs=20, batch_size=64, optimizer="adam", lr=1e-3, scheduler="cosine",
                weight_decay=0.0),
    "lenet5": dict(epochs=10, batch_size=64, optimizer="adam", lr=1e-3, scheduler="cosine",
                   weight_decay=0.0),
    "resnet20": dict(epochs=30, batch_size=128, optimizer="sgd", lr=0.1, scheduler="cosine",
                     weight_decay=5e-4),
    "charlstm": dict(epochs=3, batch_size=32, optimizer="adam", lr=3e-3, scheduler="none",
                     weight_decay=0.0),
}
DEFAULT_DATASET = {"cnn": "digits", "mlp": "digits", "lenet5": "digits",
                   "resnet20": "cifar10", "charlstm": "text"}



# ---------------------------------------------------------------------------- threads
def blas_threads(args: argparse.Namespace) -> Any:
    """Limit BLAS threads for the run (threadpoolctl; a no-op without it).

    The digits and text models multiply small matrices: on a shared machine, threads that
    wait for each other make them several times slower, so they default to one thread.
    """
    threads = args.threads
    if threads is None:
        big = args.model == "resnet20" or args.dataset in ("mnist", "fashion-mnist", "cifar10")
        threads = None if big else 1
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas") if threads else (
        contextlib.nullcontext())



# ---------------------------------------------------------------------------- training
def build_optimizer(name: str, params: list, lr: float, weight_decay: float) -> Any:
    from .. import optim

    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adam":
        return optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=weight_decay or 1e-2)
    if name == "rprop":  # Rprop has no weight decay
        return optim.Rprop(params, lr=lr)
    classes = {"rmsprop": optim.RMSprop, "adagrad": optim.Adagrad, "nadam": optim.NAdam,
               "radam": optim.RAdam, "adamax": optim.Adamax, "adadelta": optim.Adadelta,
               "asgd": optim.ASGD}
    return classes[name](params, lr=lr, weight_decay=weight_decay)


def build_scheduler(name: str, optimizer: Any, lr: float, epochs: int,
                    steps_per_epoch: int) -> Any:
    from ..optim import lr_scheduler

    if name == "none":
        return None
    if name == "step":
        return lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    if name == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "onecycle":
        # Momentum is cycled only where it exists by default (SGD with momentum, Adam's beta1).
        cycle = "betas" in optimizer.defaults or optimizer.defaults.get("momentum", 0) > 0
        return lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch,
                                       cycle_momentum=cycle)
    return lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=2)


def build_training(settings: dict[str, Any], model: Any, steps_per_epoch: int,
                   resume_state: dict[str, Any] | None = None) -> tuple:
    """The optimizer and scheduler of ``settings``; a bad combination is a UsageError, and
    so is resuming a one-cycle schedule with another length (it cannot be stretched)."""
    try:
        optimizer = build_optimizer(settings["optimizer"], list(model.parameters()),
                                    settings["lr"], settings["weight_decay"])
        scheduler = build_scheduler(settings["scheduler"], optimizer, settings["lr"],
                                    settings["epochs"], steps_per_epoch)
    except (ValueError, TypeError) as error:
        raise UsageError(f"--optimizer {settings['optimizer']} --scheduler "
                         f"{settings['scheduler']} --lr {settings['lr']:g}: {error}") from None
    saved = (resume_state or {}).get("scheduler") or {}
    planned = getattr(scheduler, "total_steps", None)
    if planned is not None and "total_steps" in saved and saved["total_steps"] != planned:
        epochs = saved["total_steps"] // max(steps_per_epoch, 1)
        raise UsageError(f"--resume: the checkpoint's one-cycle schedule was planned for "
                         f"{saved['total_steps']} steps ({epochs} epochs); --epochs "
                         f"{settings['epochs']} would need {planned}, and a one-cycle schedule "
                         f"cannot be stretched. Resume with --epochs {epochs}, or start a new "
                         f"run")
    return optimizer, scheduler


def save_plots(history: Any, folder: str, say: Any) -> None:
    try:
        from ..inspect.plot import plot_grad_norms, plot_history
    except ImportError as error:  # pragma: no cover - matplotlib is an optional extra
        raise UsageError(str(error)) from None
    try:
        curves = plot_history(history, Path(folder) / "history.png")
        norms = plot_grad_norms(history, Path(folder) / "grad_norms.png")
    except ImportError as error:
        raise UsageError(str(error)) from None
    say(f"plots: {curves}, {norms}")
