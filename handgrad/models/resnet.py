"""Residual networks: the CIFAR ResNets (depth 6n+2) and ResNet-18 (He et al., 2016).

Both are built from ``BasicBlock`` (a ``Residual`` followed by a ReLU) inside a
``Sequential`` with torchvision's top-level names, so the state dict reads::

    conv1.weight                       stem convolution (no bias)
    bn1.{weight,bias,running_mean,running_var,num_batches_tracked}
    layer{k}.{i}.body.conv1.weight     3x3 conv of block i in stage k (stride on the first block)
    layer{k}.{i}.body.bn1.*
    layer{k}.{i}.body.conv2.weight
    layer{k}.{i}.body.bn2.*
    layer{k}.{i}.shortcut.0.weight     1x1 projection conv (only where the shape changes)
    layer{k}.{i}.shortcut.1.*          its BatchNorm
    fc.weight, fc.bias                 the classifier

(the ReLUs, ``maxpool``, ``avgpool`` and ``flatten`` hold no state). A PyTorch model built
with the same module names and nesting loads this state dict and vice versa.

Convolutions are initialised as torchvision's ResNets do (``kaiming_normal_``, fan_out,
ReLU gain); BatchNorm with weight 1 and bias 0; the classifier with the Linear default.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validation import check_grad, check_positive_int
from ..init import kaiming_normal_
from ..layer import Layer
from ..layers import (
    AdaptiveAvgPool2d,
    BatchNorm2d,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    ReLU,
    Residual,
    Sequential,
)
from ..layers.activation import backprop_relu, relu
from ..ops.backend import kernels
from ..random import resolve_rng

__all__ = ["BasicBlock", "ResNet", "cifar_resnet", "resnet20", "resnet32", "resnet56",
           "resnet18"]


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int,
          dtype: DTypeLike, rng: np.random.Generator) -> Conv2d:
    conv = Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                  bias=False, dtype=dtype, rng=rng)
    kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu", rng=rng)
    return conv


class BasicBlock(Residual):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``, the ResNet basic block.

    ``body`` is ``Sequential(conv1, bn1, relu, conv2, bn2)`` with those names (3x3 convs
    without bias, the first with ``stride``); ``shortcut`` is ``Sequential(conv 1x1 with
    stride, BatchNorm2d)`` (children ``0`` and ``1``) when ``stride != 1`` or the channel
    count changes, else None (identity). The final ReLU is the child ``relu``.

    Args:
        in_channels: C.
        out_channels: O.
        stride: stride of the first conv and of the projection (default 1).
        dtype: parameter dtype (float32 by default).
        rng: generator or integer seed for the initial weights.

    Shape: input ``(N, C, H, W)``, output ``(N, O, ceil(H / stride), ceil(W / stride))``.

    Forward caches its output (for the final ReLU's gradient); the children cache the rest.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 dtype: DTypeLike = np.float32, rng=None):
        check_positive_int("BasicBlock", "in_channels", in_channels)
        check_positive_int("BasicBlock", "out_channels", out_channels)
        check_positive_int("BasicBlock", "stride", stride)
        rng = resolve_rng(rng)
        body = Sequential(OrderedDict([
            ("conv1", _conv(in_channels, out_channels, 3, stride, 1, dtype, rng)),
            ("bn1", BatchNorm2d(out_channels, dtype=dtype)),
            ("relu", ReLU()),
            ("conv2", _conv(out_channels, out_channels, 3, 1, 1, dtype, rng)),
            ("bn2", BatchNorm2d(out_channels, dtype=dtype)),
        ]))
        shortcut = None
        if stride != 1 or in_channels != out_channels:
            shortcut = Sequential(
                _conv(in_channels, out_channels, 1, stride, 0, dtype, rng),
                BatchNorm2d(out_channels, dtype=dtype),
            )
        super().__init__(body, shortcut)
        self.relu = ReLU()  # applied (fused) at the end of forward; holds no state
        self._y = None
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    # forward/backward are Residual's followed by the ReLU, fused to save two temporaries
    # per block: the sum and the ReLU are computed in place in bn2's fresh output array.
    def forward(self, x: NDArray) -> NDArray:
        y = self.body(x)
        skip = x if self.shortcut is None else self.shortcut(x)
        if y.shape != skip.shape:
            raise ValueError(
                f"{self.describe()}: body output of shape {y.shape} and shortcut output of "
                f"shape {skip.shape} cannot be added"
            )
        fused = kernels()  # the Numba backend: sum and ReLU in one pass
        if fused is None or not fused.add_relu(y, skip):
            y += skip
            relu(y, out=y)  # the block's ReLU
        self._y = y if self.caching else None
        return y

    def backward(self, grad_out: NDArray) -> NDArray | None:
        y = self._saved(self._y)
        grad_out = check_grad(self, grad_out, y.shape)
        grad_sum = backprop_relu(grad_out, y)
        grad_x = self.body.backward(grad_sum)
        grad_skip = grad_sum if self.shortcut is None else self.shortcut.backward(grad_sum)
        if not self.needs_input_grad:
            return None
        if np.may_share_memory(grad_x, grad_skip):
            return grad_x + grad_skip
        grad_x += grad_skip
        return grad_x

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class ResNet(Sequential):
    """A ``Sequential`` with named stages (``conv1``, ``bn1``, ``relu``, [``maxpool``],
    ``layer1``..., ``avgpool``, ``flatten``, ``fc``); built by ``cifar_resnet`` and
    ``resnet18``. Shape: input ``(N, C, H, W)``, output ``(N, num_classes)`` (logits)."""


def _stage(in_channels: int, out_channels: int, blocks: int, stride: int,
           dtype: DTypeLike, rng: np.random.Generator) -> Sequential:
    layers = [BasicBlock(in_channels, out_channels, stride, dtype=dtype, rng=rng)]
    layers += [BasicBlock(out_channels, out_channels, 1, dtype=dtype, rng=rng)
               for _ in range(blocks - 1)]
    return Sequential(*layers)


def _resnet(stem: list[tuple[str, Layer]], widths: list[int], blocks: list[int],
            num_classes: int, dtype: DTypeLike, rng: np.random.Generator) -> ResNet:
    children = list(stem)
    in_channels = widths[0]
    for k, (width, count) in enumerate(zip(widths, blocks)):
        stride = 1 if k == 0 else 2
        children.append((f"layer{k + 1}", _stage(in_channels, width, count, stride, dtype, rng)))
        in_channels = width
    children += [
        ("avgpool", AdaptiveAvgPool2d(1)),  # (N, C, 1, 1)
        ("flatten", Flatten()),  # (N, C)
        ("fc", Linear(in_channels, num_classes, dtype=dtype, rng=rng)),
    ]
    return ResNet(OrderedDict(children))


def cifar_resnet(depth: int, num_classes: int = 10, in_channels: int = 3, width: int = 16,
                 dtype: DTypeLike = np.float32, rng=None) -> ResNet:
    """The CIFAR ResNet of depth ``6n + 2`` (He et al., 2016, section 4.2).

    ``conv3x3(width) -> BN -> ReLU``, then three stages of ``n`` BasicBlocks with
    ``width``, ``2 width``, ``4 width`` channels (16/32/64 by default; stride 2 and a 1x1
    conv + BN projection shortcut at the start of stages 2 and 3), global average pooling
    and ``Linear(4 width, num_classes)``. Any image size works (32x32 in the paper).

    Args:
        depth: 6n + 2 (20, 32, 44, 56, 110, ...).
        num_classes: number of logits.
        in_channels: image channels (3).
        width: channels of the first stage (16; smaller values make tiny test models).
        dtype, rng: parameter dtype and generator or seed for the initial weights.
    """
    check_positive_int("cifar_resnet", "depth", depth)
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"cifar_resnet: expected depth = 6n + 2 with n >= 1 (8, 14, 20, 32, "
                         f"56, ...), got {depth}")
    check_positive_int("cifar_resnet", "num_classes", num_classes)
    check_positive_int("cifar_resnet", "width", width)
    rng = resolve_rng(rng)
    n = (depth - 2) // 6
    stem = [
        ("conv1", _conv(in_channels, width, 3, 1, 1, dtype, rng)),
        ("bn1", BatchNorm2d(width, dtype=dtype)),
        ("relu", ReLU()),
    ]
    return _resnet(stem, [width, 2 * width, 4 * width], [n, n, n], num_classes, dtype, rng)


def resnet20(num_classes: int = 10, dtype: DTypeLike = np.float32, rng=None) -> ResNet:
    """CIFAR ResNet-20 (0.27 M parameters): ``cifar_resnet(20, ...)``."""
    return cifar_resnet(20, num_classes, dtype=dtype, rng=rng)


def resnet32(num_classes: int = 10, dtype: DTypeLike = np.float32, rng=None) -> ResNet:
    """CIFAR ResNet-32 (0.46 M parameters): ``cifar_resnet(32, ...)``."""
    return cifar_resnet(32, num_classes, dtype=dtype, rng=rng)


def resnet56(num_classes: int = 10, dtype: DTypeLike = np.float32, rng=None) -> ResNet:
    """CIFAR ResNet-56 (0.85 M parameters): ``cifar_resnet(56, ...)``."""
    return cifar_resnet(56, num_classes, dtype=dtype, rng=rng)


def resnet18(num_classes: int = 1000, in_channels: int = 3, dtype: DTypeLike = np.float32,
             rng=None) -> ResNet:
    """ResNet-18 with the ImageNet stem, as torchvision's ``resnet18`` (11.7 M parameters).

    ``conv7x7(64, stride 2, pad 3) -> BN -> ReLU -> maxpool3x3(stride 2, pad 1)``, four
    stages of two BasicBlocks with 64/128/256/512 channels (stride 2 from stage 2 on),
    global average pooling, ``Linear(512, num_classes)``. The state dict has torchvision's
    names except inside blocks (``body.conv1`` for ``conv1``, ``shortcut`` for
    ``downsample``; see the module docstring).
    """
    check_positive_int("resnet18", "num_classes", num_classes)
    check_positive_int("resnet18", "in_channels", in_channels)
    rng = resolve_rng(rng)
    stem = [
        ("conv1", _conv(in_channels, 64, 7, 2, 3, dtype, rng)),
        ("bn1", BatchNorm2d(64, dtype=dtype)),
        ("relu", ReLU()),
        ("maxpool", MaxPool2d(3, stride=2, padding=1)),
    ]
    return _resnet(stem, [64, 128, 256, 512], [2, 2, 2, 2], num_classes, dtype, rng)
