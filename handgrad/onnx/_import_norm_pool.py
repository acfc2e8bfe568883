"""Importers of the normalization and pooling operators."""

from __future__ import annotations

import numpy as np

from ..layer import Layer
from ..layers import (
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    GroupNorm,
    InstanceNorm1d,
    InstanceNorm2d,
    InstanceNorm3d,
    LayerNorm,
    LocalResponseNorm,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
)
from ._import_base import Match, const_input, epsilon, importer, optional_input, set_values


# ---------------------------------------------------------------------------- normalization
@importer("BatchNormalization")
def batch_norm(g, node, x) -> Match:
    a = g.attrs(node)
    if a.get("training_mode", 0):
        raise g.bad(node, "expected an inference-mode BatchNormalization")
    scale, shift, mean, var = (const_input(g, node, k, what) for k, what in
                               enumerate(["the scale", "the bias", "the mean", "the variance"],
                                         start=1))
    rank = g.rank(x)
    cls = {2: BatchNorm1d, 3: BatchNorm1d, 4: BatchNorm2d, 5: BatchNorm3d}.get(rank)
    if cls is None:
        raise g.bad(node, f"expected an input of rank 2 to 5, got {rank}")
    layer = cls(scale.size, eps=epsilon(a), momentum=1 - a.get("momentum", 0.9),
                dtype=scale.dtype)
    set_values(layer, weight=scale, bias=shift, running_mean=mean, running_var=var)
    return Match(layer, node.output[0], [node])


@importer("LayerNormalization")
def layer_norm(g, node, x) -> Match:
    a = g.attrs(node)
    scale = const_input(g, node, 1, "the scale")
    bias = optional_input(g, node, 2)
    layer = LayerNorm(scale.shape, eps=epsilon(a), bias=bias is not None,
                      dtype=scale.dtype)
    values = {"weight": scale} if bias is None else {"weight": scale, "bias": bias}
    return Match(set_values(layer, **values), node.output[0], [node])


def group_norm(g, node, groups: int) -> Match:
    norm = g.single_next(node.output[0], "InstanceNormalization")
    back = g.single_next(norm.output[0], "Reshape")
    scale, shift = const_input(g, norm, 1, "the scale"), const_input(g, norm, 2, "the bias")
    shape = None if back is None else g.const(back.input[1])
    if back is None or shape is None or len(shape) < 2 or not np.all(scale == 1) \
            or not np.all(shift == 0):
        raise g.bad(node, "expected Reshape, InstanceNormalization (scale 1, bias 0), "
                          "Reshape: a GroupNorm")
    channels = int(shape[1])
    nodes, out = [node, norm, back], back.output[0]
    weight = bias = None
    mul = g.single_next(out, "Mul")
    if mul is not None and (weight := g.const(mul.input[1])) is not None \
            and weight.size == channels:
        nodes.append(mul)
        out = mul.output[0]
        add = g.single_next(out, "Add")
        if add is not None and (bias := g.const(add.input[1])) is not None \
                and bias.size == channels:
            nodes.append(add)
            out = add.output[0]
        else:
            bias = np.zeros(channels, weight.dtype)
    affine = weight is not None
    layer = GroupNorm(groups, channels, eps=epsilon(g.attrs(norm)), affine=affine,
                      dtype=scale.dtype)
    if affine:
        set_values(layer, weight=weight.reshape(-1), bias=bias.reshape(-1))
    return Match(layer, out, nodes)


_INSTANCE = {3: InstanceNorm1d, 4: InstanceNorm2d, 5: InstanceNorm3d}


@importer("InstanceNormalization")
def instance_norm(g, node, x) -> Match:
    rank = g.rank(x)
    if rank not in _INSTANCE:
        raise g.bad(node, f"expected an input of rank 3 to 5, got {rank}")
    return _instance(g, node, _INSTANCE[rank], node.output[0], [node])


def _instance(g, node, cls, out: str, nodes: list) -> Match:
    scale, shift = const_input(g, node, 1, "the scale"), const_input(g, node, 2, "the bias")
    affine = not (np.all(scale == 1) and np.all(shift == 0))
    layer = cls(scale.size, eps=epsilon(g.attrs(node)), affine=affine, dtype=scale.dtype)
    if affine:
        set_values(layer, weight=scale, bias=shift)
    return Match(layer, out, nodes)


def unbatched_instance_norm(g, node, x) -> Match | None:
    """Unsqueeze(0) -> InstanceNormalization -> Squeeze(0): an InstanceNorm of one sample."""
    norm = g.single_next(node.output[0], "InstanceNormalization")
    back = None if norm is None else g.single_next(norm.output[0], "Squeeze")
    rank = g.rank(x)
    if back is None or rank is None or rank + 1 not in _INSTANCE:
        return None
    return _instance(g, norm, _INSTANCE[rank + 1], back.output[0], [node, norm, back])


@importer("LRN")
def lrn(g, node, x) -> Match:
    a = g.attrs(node)
    layer = LocalResponseNorm(a["size"], a.get("alpha", 1e-4), a.get("beta", 0.75),
                              a.get("bias", 1.0))
    return Match(layer, node.output[0], [node])


# ---------------------------------------------------------------------------- pooling
def _window(g, node) -> tuple[tuple, tuple, tuple, list]:
    a = g.attrs(node)
    kernel = tuple(a["kernel_shape"])
    if len(kernel) != 2 or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise g.bad(node, f"expected a 2-D window with explicit pads, got {kernel}")
    stride = tuple(a.get("strides", [1, 1]))
    dilation = tuple(a.get("dilations", [1, 1]))
    return kernel, stride, dilation, list(a.get("pads", [0, 0, 0, 0]))


def _pool_geometry(g, node, x, make) -> Layer:
    """The pool layer (``make(padding, ceil_mode)``) whose padding the node's pads are."""
    top, left, bottom, right = _window(g, node)[3]
    ceil = bool(g.attrs(node).get("ceil_mode", 0))
    layer = make((top, left), ceil)
    if (top, left) == (bottom, right):
        return layer
    shape = g.shape(x)
    if shape is None or not all(isinstance(d, int) for d in shape[2:]):
        raise g.bad(node, "asymmetric pads need the input's static H and W")
    candidate = make((top, left), True)
    probe = np.zeros((1, 1, *shape[2:]), np.float32)
    if candidate._geometry(probe)[1] != ((top, bottom), (left, right)):
        raise g.bad(node, f"pads {[top, left, bottom, right]} are not PyTorch's ceil_mode")
    return candidate


@importer("MaxPool")
def max_pool(g, node, x) -> Match:
    if len(g.attrs(node)["kernel_shape"]) != 2:
        return pool_nd(g, node, x)
    kernel, stride, dilation, _ = _window(g, node)
    layer = _pool_geometry(g, node, x, lambda pad, ceil: MaxPool2d(
        kernel, stride, pad, dilation, ceil_mode=ceil))
    return Match(layer, node.output[0], [node])


@importer("AveragePool")
def avg_pool(g, node, x) -> Match:
    if len(g.attrs(node)["kernel_shape"]) != 2:
        return pool_nd(g, node, x)
    kernel, stride, _, pads = _window(g, node)
    include = bool(g.attrs(node).get("count_include_pad", 0))
    mul = g.single_next(node.output[0], "Mul")
    scale = None if mul is None else g.const(mul.input[1])
    if scale is None:
        layer = _pool_geometry(g, node, x, lambda pad, ceil: AvgPool2d(
            kernel, stride, pad, ceil_mode=ceil, count_include_pad=include))
        return Match(layer, node.output[0], [node])
    # the exporter's window sums / divisor: find the settings that give this divisor
    shape = g.shape(x)
    probe = np.zeros((1, 1, *shape[2:]), np.float32)
    count = int(np.prod(kernel))
    pad = (pads[0], pads[1])
    candidates = [AvgPool2d(kernel, stride, pad, ceil_mode=ceil, count_include_pad=inc,
                            divisor_override=div)
                  for ceil in (False, True) for inc in (True, False)
                  for div in {None, int(round(count / float(np.ravel(scale)[0])))}]
    for layer in candidates:
        out_hw, geometry = layer._geometry(probe)
        if [geometry[0][0], geometry[1][0], geometry[0][1], geometry[1][1]] == pads and \
                np.allclose(count / np.asarray(layer._divisor(probe, out_hw)), scale):
            return Match(layer, mul.output[0], [node, mul])
    raise g.bad(node, "AveragePool times a constant that no AvgPool2d setting gives")


@importer("GlobalAveragePool", "GlobalMaxPool")
def global_pool(g, node, x) -> Match:
    cls = AdaptiveAvgPool2d if node.op_type == "GlobalAveragePool" else AdaptiveMaxPool2d
    return Match(cls(1), node.output[0], [node])



# ---------------------------------------------------------------------------- 1-d, 3-d
_POOLS = {("MaxPool", 1): MaxPool1d, ("MaxPool", 3): MaxPool3d,
          ("AveragePool", 1): AvgPool1d, ("AveragePool", 3): AvgPool3d}


def pool_nd(g, node, x) -> Match:
    """MaxPool / AveragePool over 1 or 3 spatial axes (plain settings; ceil_mode read back
    from trailing pads)."""
    from ._conv_nd import _pool_pads

    a = g.attrs(node)
    kernel = list(a["kernel_shape"])
    dims = len(kernel)
    cls = _POOLS[(node.op_type, dims)]
    stride = list(a.get("strides", [1] * dims))
    pads = list(a.get("pads", [0] * 2 * dims))
    begins, ends = pads[:dims], pads[dims:]

    def build(ceil: bool):
        one = (lambda v: v[0]) if dims == 1 else tuple
        kwargs = dict(ceil_mode=ceil)
        if node.op_type == "AveragePool":
            kwargs["count_include_pad"] = bool(a.get("count_include_pad", 0))
            return cls(one(kernel), one(stride), one(begins), **kwargs)
        return cls(one(kernel), one(stride), one(begins),
                   one(list(a.get("dilations", [1] * dims))), **kwargs)

    layer = build(False)
    if begins != ends:
        shape = g.shape(x)
        layer = build(True)
        if shape is None or not all(isinstance(d, int) for d in shape[2:]) or \
                _pool_pads(layer, np.zeros([1, 1, *shape[2:]], np.float32), dims) != \
                list(zip(begins, ends)):
            raise g.bad(node, f"pads {pads} are not PyTorch's ceil_mode")
    return Match(layer, node.output[0], [node])
