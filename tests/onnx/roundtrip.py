"""The check every ONNX test runs: export, onnx.checker, ONNX Runtime and load agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from handgrad.onnx import export, load  # noqa: E402

RTOL, ATOL = 1e-5, 1e-6


def flat_args(args) -> list[np.ndarray]:
    """Forward's positional arguments as the graph's inputs (None parts left out)."""
    out = []
    for arg in args:
        if isinstance(arg, tuple) and arg and all(isinstance(v, int) for v in arg):
            continue  # a static argument (an unpool's output_size), a constant of the graph
        parts = arg if isinstance(arg, (tuple, list)) else (arg,)
        out += [p for p in parts if p is not None]
    return out


def outputs(model, args) -> list[np.ndarray]:
    """The model's eval outputs as the graph's: the result, then any final state."""
    result = model(*args)
    out = list(result) if isinstance(result, tuple) else [result]
    final = getattr(model, "final_state", None)
    if final is not None and not isinstance(result, tuple):
        out += list(final) if isinstance(final, tuple) else [final]
    return out


def run_onnxruntime(path: Path, args) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, flat_args(args))))


def check_roundtrip(model, example, tmp_path: Path, others=(), load_back: bool = True,
                    **export_kwargs):
    """Export ``model`` with ``example`` (an array or forward's argument tuple) and check:

    * the file passes ``onnx.checker.check_model(full_check=True)``;
    * every parameter and BatchNorm running statistic is an initializer of its state_dict
      name and value;
    * ONNX Runtime's outputs equal handgrad's eval outputs (float32: rtol 1e-5, atol 1e-6),
      on the example and on each argument tuple of ``others`` (other batch sizes);
    * ``load`` of the file gives a model with the same outputs.
    Returns the loaded model.
    """
    path = tmp_path / "model.onnx"
    export(model, example, path, **export_kwargs)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    state = model.state_dict()
    for name, param in model.named_parameters():
        assert name in inits, f"parameter {name} is not an initializer"
        np.testing.assert_array_equal(inits[name], param.data)
    for name in state:
        if name.endswith(("running_mean", "running_var")):
            np.testing.assert_array_equal(inits[name], state[name])
    model.eval()
    loaded = load(path) if load_back else None
    if loaded is not None:
        loaded.eval()
    cases = [example if isinstance(example, tuple) else (example,)]
    cases += [a if isinstance(a, tuple) else (a,) for a in others]
    for args in cases:
        expected = outputs(model, args)
        got = run_onnxruntime(path, args)
        assert len(got) == len(expected)
        for e, g in zip(expected, got):
            assert g.dtype == e.dtype
            np.testing.assert_allclose(g, e, rtol=RTOL, atol=ATOL)
        if loaded is not None:
            again = outputs(loaded, args)
            assert len(again) == len(expected)
            for e, g in zip(expected, again):
                np.testing.assert_allclose(g, e, rtol=RTOL, atol=ATOL)
    return loaded
