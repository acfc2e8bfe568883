"""The ``handgrad`` command: ``handgrad train``, ``handgrad gradcheck``, ``handgrad bench``.

``handgrad train`` with no arguments trains the small CNN on scikit-learn's 8×8 digits
(a stratified 20% test split held out, 10% of the rest for validation) and ends with a
one-line summary that includes the test accuracy. Bad input (a missing data path, a model
that does not fit the dataset, a checkpoint of another architecture) prints one clear
``handgrad: error: ...`` line and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MODELS = ("mlp", "cnn", "lenet5", "resnet20", "charlstm")
DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "text")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
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


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="handgrad",
        description="handgrad: deep learning on NumPy with hand-written gradients.",
    )
    sub = parser.add_subparsers(dest="command", metavar="{train,gradcheck,bench}")
    sub.required = True

    train = sub.add_parser(
        "train", help="train a model (default: the small CNN on the 8x8 digits)",
        description="Train a model and report its test accuracy. Without options: the small\n"
                    "CNN on scikit-learn's 8x8 digits, a held-out 20% test split.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="defaults per model (epochs, batch size, optimizer, lr, scheduler):\n" + "\n".join(
            f"  {name:9s} {d['epochs']:3d} epochs, batch {d['batch_size']:3d}, "
            f"{d['optimizer']:5s} lr {d['lr']:g}, {d['scheduler']}"
            + (f", weight decay {d['weight_decay']:g}" if d["weight_decay"] else "")
            + f"; dataset {DEFAULT_DATASET[name]}"
            for name, d in DEFAULTS.items()),
    )
    train.add_argument("--model", choices=MODELS, default="cnn",
                       help="mlp flattens images; lenet5 needs 28x28 (8x8 digits are upscaled "
                            "x3 and padded); resnet20 wants cifar10; charlstm needs --dataset "
                            "text")
    train.add_argument("--dataset", choices=DATASETS, default=None,
                       help="default: digits (cifar10 for resnet20, text for charlstm)")
    train.add_argument("--data-path", default=None,
                       help="folder with the MNIST/Fashion-MNIST IDX files or CIFAR-10 binary "
                            "batches; a text file for --dataset text")
    train.add_argument("--epochs", type=_positive_int, default=None,
                       help="default depends on the model")
    train.add_argument("--batch-size", type=_positive_int, default=None)
    train.add_argument("--optimizer", choices=OPTIMIZERS, default=None)
    train.add_argument("--lr", type=_positive_float, default=None, help="learning rate")
    train.add_argument("--scheduler", choices=SCHEDULERS, default=None)
    train.add_argument("--val-fraction", type=float, default=0.1,
                       help="share of the training data held out for validation "
                            "(default 0.1; 0: none)")
    train.add_argument("--seed", type=int, default=0, help="seed of every random draw (0)")
    train.add_argument("--checkpoint-dir", default=None,
                       help="write best.npz and last.npz (full training state) here")
    train.add_argument("--resume", default=None,
                       help="a checkpoint file (or a directory holding last.npz) to continue")
    train.add_argument("--plot", metavar="DIR", default=None,
                       help="save history.png and grad_norms.png here")
    train.add_argument("--max-samples", type=_positive_int, default=None,
                       help="use only the first N training samples (quick experiments)")
    train.add_argument("--threads", type=_positive_int, default=None,
                       help="BLAS threads (default: 1 for the small digits and text models, "
                            "whose matrices are too small to gain from threads, else all)")
    train.add_argument("--quiet", action="store_true", help="print only the final summary")

    sub.add_parser("gradcheck", help="check every layer and loss against numerical gradients",
                   description="Gradient-check one small float64 instance of every public "
                               "layer and loss; exit status 1 if any check fails.")
    # Every option after "bench" (also --help) goes to `python -m benchmarks`.
    sub.add_parser("bench", help="run the benchmarks side by side with PyTorch "
                                 "(options go to python -m benchmarks)", add_help=False)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``handgrad`` command; returns the exit status."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)  # exits with status 2 on unknown choices
    if extra and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "train":
            from .cli_train import run_train

            with blas_threads(args):
                return run_train(args)
        if args.command == "gradcheck":
            return run_gradcheck()
        return run_bench(extra)
    except UsageError as error:
        print(f"handgrad {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("handgrad: interrupted", file=sys.stderr)
        return 130


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


# ---------------------------------------------------------------------------- gradcheck
def run_gradcheck() -> int:
    from .gradcheck import GradcheckReport
    from .selfcheck import check_all

    started = time.perf_counter()
    results, uncovered = check_all()
    failed = 0
    for label, report in results:
        if isinstance(report, GradcheckReport):
            print(report)
            failed += not report.passed
        else:
            print(f"gradcheck {label}: FAILED with {type(report).__name__}: {report}")
            failed += 1
        print()
    if uncovered:
        print("not covered (no recipe in handgrad.selfcheck): " + ", ".join(uncovered))
    passed = len(results) - failed
    print(f"gradcheck: {passed} of {len(results)} checks passed, {failed} failed "
          f"({time.perf_counter() - started:.1f} s)")
    return 1 if failed else 0


# ---------------------------------------------------------------------------- bench
def benchmarks_dir() -> Path:
    import handgrad

    return Path(handgrad.__file__).resolve().parents[1] / "benchmarks"


def run_bench(extra: Sequence[str] = ()) -> int:
    if importlib.util.find_spec("torch") is None:
        print("handgrad bench compares handgrad with PyTorch, which is not installed.\n"
              f"Install PyTorch's CPU build with:  pip install torch=={TORCH_VERSION}")
        return 0
    folder = benchmarks_dir()
    if not (folder / "__main__.py").is_file():
        print(f"handgrad bench: the benchmarks folder is not here ({folder}); it ships with "
              f"the source checkout, not with a regular install. Clone the repository and "
              f"run `pip install -e .` there.")
        return 0
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(folder.parent), *filter(None, [env.get("PYTHONPATH")])]
    )
    return subprocess.call([sys.executable, "-m", "benchmarks", *extra], cwd=folder.parent,
                           env=env)


if __name__ == "__main__":
    sys.exit(main())
