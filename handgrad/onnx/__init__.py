"""ONNX export (and import) of handgrad models; needs the ``onnx`` extra.

``export(model, example_input, path)`` writes a model as an ONNX file that ONNX Runtime and
other engines run; ``load(path)`` builds the equivalent handgrad model from a graph made of
the operators ``export`` writes (also one written by ``torch.onnx.export``);
``load_weights(model, path)`` copies an exported file's weights back by their state_dict names.
``register_converter(cls, fn)`` adds a layer class. ``import handgrad`` does not import
this package: ``import handgrad.onnx`` needs ``pip install handgrad[onnx]``.
"""

from ._graph import (
    ExportContext,
    Tensor,
    UnsupportedGraphError,
    UnsupportedLayerError,
    converter,
    register_converter,
)
from .export import export
from .load import load, load_weights

__all__ = ["export", "load", "load_weights", "register_converter", "converter",
           "ExportContext", "Tensor", "UnsupportedLayerError", "UnsupportedGraphError"]
