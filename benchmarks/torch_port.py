"""Build the PyTorch twin of a handgrad layer tree, with the same weights.

Walking the handgrad model (instead of writing each torch model a second time) keeps the two
definitions identical by construction: the same layers in the same order, and the same
``state_dict`` names, so the handgrad weights load into the twin unchanged.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np


class NoTwin(Exception):
    """No PyTorch translation is known for a handgrad layer class."""


def _residual_class():
    import torch

    class Residual(torch.nn.Module):
        """``relu(body(x) + shortcut(x))`` (``relu`` optional, as in handgrad's BasicBlock)."""

        def __init__(self, body, shortcut, relu=None):
            super().__init__()
            self.body = body
            self.shortcut = shortcut
            self.relu = relu

        def forward(self, x):
            short = x if self.shortcut is None else self.shortcut(x)
            y = self.body(x) + short
            return y if self.relu is None else self.relu(y)

    return Residual


def _pad(layer):
    padding = layer.padding
    return padding if isinstance(padding, str) else tuple(padding)


def twin(layer):
    """The torch.nn module equivalent to ``layer`` (weights not yet copied)."""
    import torch.nn as nn

    kind = type(layer).__name__
    children = dict(layer.named_children())
    if kind in ("Sequential", "ResNet"):
        return nn.Sequential(OrderedDict((name, twin(child)) for name, child in children.items()))
    if kind in ("Residual", "BasicBlock"):
        shortcut = children.get("shortcut")
        relu = nn.ReLU() if kind == "BasicBlock" else None
        return _residual_class()(twin(children["body"]),
                                 None if shortcut is None else twin(shortcut), relu)
    if kind == "Linear":
        return nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    if kind == "Conv2d":
        return nn.Conv2d(layer.in_channels, layer.out_channels, tuple(layer.kernel_size),
                         stride=tuple(layer.stride), padding=_pad(layer),
                         dilation=tuple(layer.dilation), groups=layer.groups,
                         bias=layer.bias is not None)
    if kind in ("BatchNorm1d", "BatchNorm2d"):
        return getattr(nn, kind)(layer.num_features, eps=layer.eps, momentum=layer.momentum,
                                 affine=layer.affine,
                                 track_running_stats=layer.track_running_stats)
    if kind == "MaxPool2d":
        return nn.MaxPool2d(tuple(layer.kernel_size), tuple(layer.stride), tuple(layer.padding),
                            dilation=tuple(layer.dilation), ceil_mode=layer.ceil_mode)
    if kind == "AvgPool2d":
        return nn.AvgPool2d(tuple(layer.kernel_size), tuple(layer.stride), tuple(layer.padding),
                            ceil_mode=layer.ceil_mode,
                            count_include_pad=layer.count_include_pad)
    if kind == "AdaptiveAvgPool2d":
        return nn.AdaptiveAvgPool2d(tuple(layer.output_size))
    if kind == "GlobalAvgPool2d":
        pool = nn.AdaptiveAvgPool2d(1)
        return nn.Sequential(pool, nn.Flatten(1)) if layer.flatten else pool
    if kind == "Flatten":
        return nn.Flatten(layer.start_dim, layer.end_dim)
    if kind in ("ReLU", "Tanh", "Sigmoid", "Identity", "GELU", "SiLU"):
        return getattr(nn, kind)()
    if kind == "Dropout":
        return nn.Dropout(layer.p)
    if kind == "Embedding":
        return nn.Embedding(layer.num_embeddings, layer.embedding_dim,
                            padding_idx=layer.padding_idx)
    if kind in ("LSTM", "GRU", "RNN"):
        kwargs = dict(num_layers=layer.num_layers, bias=layer.bias,
                      batch_first=layer.batch_first, bidirectional=layer.bidirectional)
        if kind == "RNN":
            kwargs["nonlinearity"] = layer.nonlinearity
        return getattr(nn, kind)(layer.input_size, layer.hidden_size, **kwargs)
    raise NoTwin(f"no PyTorch twin known for handgrad {kind}")


def copy_weights(hg_layer, torch_module) -> None:
    """Load the handgrad ``state_dict`` into the torch module (names must match)."""
    import torch

    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in
             hg_layer.state_dict().items()}
    torch_module.load_state_dict(state, strict=True)


def port(hg_layer):
    """The torch twin of ``hg_layer`` carrying the same weights."""
    module = twin(hg_layer)
    copy_weights(hg_layer, module)
    return module
