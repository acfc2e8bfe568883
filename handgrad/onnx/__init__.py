"""ONNX export (and import) of handgrad models; needs the ``onnx`` extra.

``export(model, example_input, path)`` writes a model as an ONNX file that ONNX Runtime and
other engines run; ``load(path)`` builds the equivalent handgrad model from a graph made of
the operators ``export`` writes (also one written by ``torch.onnx.export``).
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
from .load import load

__all__ = ["export", "load", "register_converter", "converter", "ExportContext", "Tensor",
           "UnsupportedLayerError", "UnsupportedGraphError"]
