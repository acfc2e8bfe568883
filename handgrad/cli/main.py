"""The ``handgrad`` command: ``handgrad train``, ``handgrad gradcheck``, ``handgrad bench``,
``handgrad inspect``, ``handgrad export``.

``handgrad train`` with no arguments trains the small CNN on scikit-learn's 8×8 digits
(a stratified 20% test split held out, 10% of the rest for validation) and ends with a
one-line summary that includes the test accuracy. Bad input (a missing data path, a model
that does not fit the dataset, a checkpoint of another architecture) prints one clear
``handgrad: error: ...`` line and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .common import (
    DATASETS,
    DEFAULT_DATASET,
    DEFAULTS,
    MODELS,
    OPTIMIZERS,
    SCHEDULERS,
    UsageError,
    blas_threads,
)
from .export import add_parser as add_export_parser
from .inspect import add_parser as add_inspect_parser


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="handgrad",
        description="handgrad: deep learning on NumPy with hand-written gradients.",
    )
    sub = parser.add_subparsers(dest="command",
                                metavar="{train,gradcheck,bench,inspect,export}")
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
    add_inspect_parser(sub)
    # Every option after "bench" (also --help) goes to `python -m benchmarks`.
    sub.add_parser("bench", help="run the benchmarks side by side with PyTorch "
                                 "(options go to python -m benchmarks)", add_help=False)
    add_export_parser(sub)
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


def _usage_error(command: str, error: UsageError) -> int:
    """Print the one-line error; under mpiexec (several ranks) end every rank with it, since
    the others would wait for this one forever."""
    from ..distributed import world

    comm = world() if command == "train" else None
    where = "" if comm is None else f" (rank {comm.rank} of {comm.size})"
    print(f"handgrad {command}: error{where}: {error}", file=sys.stderr, flush=True)
    if comm is not None:
        comm.abort(2)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``handgrad`` command; returns the exit status."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)  # exits with status 2 on unknown choices
    if extra and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "train":
            from .train import run_train

            with blas_threads(args):
                return run_train(args)
        if args.command == "inspect":
            from .inspect import run_inspect

            return run_inspect(args)
        if args.command == "export":
            from .export import run_export

            return run_export(args)
        if args.command == "gradcheck":
            from .gradcheck import run_gradcheck

            return run_gradcheck()
        from .bench import run_bench

        return run_bench(extra)
    except UsageError as error:
        return _usage_error(args.command, error)
    except KeyboardInterrupt:
        print("handgrad: interrupted", file=sys.stderr)
        return 130


