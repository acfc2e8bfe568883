"""``handgrad export CHECKPOINT OUT.onnx``: a model trained by ``handgrad train`` as ONNX.

A checkpoint holds the model's state_dict, not its name: the model is recognised from the
names and shapes of its entries as ``handgrad inspect`` does (``--model`` names it), loaded,
exported with ``handgrad.onnx.export`` (any batch
size; any sequence length for ``charlstm``) and, when ONNX Runtime is installed, run once
on random input to check that its outputs equal handgrad's.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from .common import MODELS, UsageError

# the image size each model is trained on by ``handgrad train``
IMAGE_SIZE = {"cnn": 8, "lenet5": 28, "resnet20": 32}


def checkpoint_state(path: str) -> dict[str, np.ndarray]:
    """The model state_dict in a checkpoint file (or a folder's best.npz / last.npz)."""
    from ..training.fit import load_checkpoint

    file = Path(path)
    if file.is_dir():
        file = next((file / n for n in ("best.npz", "last.npz") if (file / n).is_file()),
                    file / "last.npz")
    if not file.is_file():
        raise UsageError(f"checkpoint {file} does not exist")
    try:
        saved = load_checkpoint(file)
    except (OSError, ValueError, KeyError) as error:
        raise UsageError(f"cannot read checkpoint {file}: {error}") from None
    state = saved.get("model", saved) if isinstance(saved, dict) else None
    if not isinstance(state, dict) or not state or \
            not all(isinstance(v, np.ndarray) for v in state.values()):
        raise UsageError(f"checkpoint {file} holds no model state_dict (expected a file "
                         f"written by handgrad train or handgrad.save(model.state_dict()))")
    return state


def rebuild(state: dict[str, np.ndarray], name: str | None, with_state: bool = False
            ) -> tuple[str, Any, tuple, dict]:
    """The model (as ``handgrad inspect`` recognises it), an example input and the extra
    dynamic axes for export."""
    from .inspect import load_model

    name, model = load_model(state, name)
    if name == "charlstm":
        model = model.lm  # the CharLM inside handgrad train's stateful wrapper
        example: tuple = (np.zeros((1, 16), np.int64),)
        if with_state:  # inputs h_0 (and c_0): continue a stream one chunk at a time
            rnn = model.rnn
            h = np.zeros((rnn.num_layers, 1, rnn.hidden_size), np.float32)
            example += ((h, h) if rnn.mode == "lstm" else h,)
        return name, model, example, {1: "T"}
    if name == "mlp":
        shape: tuple[int, ...] = (1, model[0].in_features)
    else:
        first = model.conv1 if name == "resnet20" else model[0]
        shape = (1, first.in_channels, IMAGE_SIZE[name], IMAGE_SIZE[name])
    return name, model, (np.zeros(shape, np.float32),), {}


def run_export(args: argparse.Namespace) -> int:
    try:
        import onnx  # noqa: F401

        from .. import onnx as hg_onnx
    except ImportError as error:
        raise UsageError(f"{error} (pip install handgrad[onnx])") from None
    state = checkpoint_state(args.checkpoint)
    if args.with_state and args.model not in (None, "charlstm"):
        raise UsageError(f"--with-state is for the recurrent charlstm, not {args.model}")
    name, model, example, dynamic_axes = rebuild(state, args.model, args.with_state)
    if args.with_state and name != "charlstm":
        raise UsageError(f"--with-state is for the recurrent charlstm, not {name}")
    out = Path(args.output)
    if out.parent and not out.parent.exists():
        raise UsageError(f"output folder {out.parent} does not exist")
    try:
        proto = hg_onnx.export(model, example if len(example) > 1 else example[0], out,
                               opset=args.opset, dynamic_axes=dynamic_axes)
    except (TypeError, ValueError) as error:
        raise UsageError(str(error)) from None
    n_params = sum(p.size for p in model.parameters())
    print(f"handgrad export: {name} ({n_params:,} parameters) -> {out} (opset "
          f"{proto.opset_import[0].version}; input {_describe(proto.graph.input[0])}, "
          f"outputs {', '.join(o.name for o in proto.graph.output)})")
    if not args.no_check:
        print(_check_with_onnxruntime(model, example, out))
    return 0


def _describe(info: Any) -> str:
    dims = [d.dim_param or str(d.dim_value) for d in info.type.tensor_type.shape.dim]
    return f"{info.name} ({', '.join(dims)})"


def _check_with_onnxruntime(model: Any, args: tuple, path: Path) -> str:
    try:
        import onnxruntime as ort
    except ImportError:
        return "not checked: onnxruntime is not installed (pip install handgrad[onnx])"
    rng = np.random.default_rng(0)
    example = args[0]
    shape = (3, *example.shape[1:])
    if np.issubdtype(example.dtype, np.integer):
        vocab = model.embedding.num_embeddings
        x = rng.integers(0, vocab, shape)
    else:
        x = rng.standard_normal(shape).astype(example.dtype)
    feeds = {"input": x}
    state = None
    if len(args) > 1:  # a random initial state of the batch's size
        parts = args[1] if isinstance(args[1], tuple) else (args[1],)
        state = tuple(rng.standard_normal((p.shape[0], 3, p.shape[2])).astype(p.dtype)
                      for p in parts)
        feeds.update(zip(["h_0", "c_0"], state))
        state = state if len(state) > 1 else state[0]
    model.eval()
    expected = model(x) if state is None else model(x, state)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(["output"], feeds)[0]
    diff = float(np.abs(got - expected).max())
    # float32 sums in another order differ in proportion to the outputs' size
    scale = max(1.0, float(np.abs(expected).max()))
    if not np.allclose(got, expected, rtol=1e-5, atol=1e-6 * scale):
        raise UsageError(f"ONNX Runtime's outputs differ from handgrad's by up to {diff:.3g}")
    return f"checked with ONNX Runtime on a batch of 3: outputs equal handgrad's " \
           f"(max |difference| {diff:.2g})"


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "export", help="write a checkpoint of handgrad train as an ONNX file",
        description="Rebuild the model of a handgrad train checkpoint (recognised from its "
                    "parameter names and shapes), export it to ONNX (any batch size) and "
                    "check the file with ONNX Runtime.")
    parser.add_argument("checkpoint", help="a checkpoint file, or a --checkpoint-dir folder "
                                           "(best.npz, else last.npz)")
    parser.add_argument("output", help="the ONNX file to write, e.g. model.onnx")
    parser.add_argument("--model", choices=MODELS, default=None,
                        help="the model of the checkpoint (default: recognised)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    parser.add_argument("--with-state", action="store_true",
                        help="charlstm: also take the initial state (inputs h_0, c_0), to "
                             "continue a stream chunk by chunk")
    parser.add_argument("--no-check", action="store_true",
                        help="do not run the file with ONNX Runtime")
