"""Layers that only move values: PixelShuffle, PixelUnshuffle, ChannelShuffle.

Each forward is a reshape and a transpose (a fixed permutation of the elements), so each
backward is the inverse permutation applied to ``grad_out``: PixelShuffle's backward is
PixelUnshuffle's forward and the other way round, and ChannelShuffle(g)'s backward is the
channel shuffle with ``C / g`` groups.
"""

from __future__ import annotations

from numpy.typing import NDArray

from .._validation import as_array, check_grad, check_positive_int
from ..layer import Layer

__all__ = ["PixelShuffle", "PixelUnshuffle", "ChannelShuffle"]


def pixel_shuffle(x: NDArray, r: int) -> NDArray:
    """``(*, C*r*r, H, W) -> (*, C, H*r, W*r)``: ``y[c, h*r+i, w*r+j] = x[c*r*r+i*r+j, h, w]``."""
    *lead, c, h, w = x.shape
    y = x.reshape(*lead, c // (r * r), r, r, h, w)
    n = len(lead)
    y = y.transpose(*range(n), n, n + 3, n + 1, n + 4, n + 2)  # (*, C, H, r, W, r)
    return y.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(x: NDArray, r: int) -> NDArray:
    """``(*, C, H*r, W*r) -> (*, C*r*r, H, W)``, the inverse of :func:`pixel_shuffle`."""
    *lead, c, h, w = x.shape
    y = x.reshape(*lead, c, h // r, r, w // r, r)
    n = len(lead)
    y = y.transpose(*range(n), n, n + 2, n + 4, n + 1, n + 3)  # (*, C, r, r, H, W)
    return y.reshape(*lead, c * r * r, h // r, w // r)


def channel_shuffle(x: NDArray, groups: int) -> NDArray:
    """``(N, C, *)``: channel ``g*(C/groups) + k`` moves to ``k*groups + g``."""
    n, c = x.shape[:2]
    rest = x.shape[2:]
    return x.reshape(n, groups, c // groups, *rest).swapaxes(1, 2).reshape(x.shape)


class _Permutation(Layer):
    def __init__(self):
        super().__init__()
        self._shape = None

    def _check(self, x, ok: bool, expected: str) -> NDArray:
        x = as_array(self, x)
        if not ok:
            raise ValueError(f"{self.describe()}: expected input of shape {expected}, got "
                             f"{x.shape}")
        return x


class PixelShuffle(_Permutation):
    """Rearrange ``(*, C*r^2, H, W)`` into ``(*, C, H*r, W*r)``, as ``torch.nn.PixelShuffle``.

    ``y[..., c, h*r + i, w*r + j] = x[..., c*r^2 + i*r + j, h, w]``; backward applies the
    inverse rearrangement (PixelUnshuffle) to ``grad_out``.

    Args:
        upscale_factor: r.

    Shape: input ``(*, C*r^2, H, W)``; output ``(*, C, H*r, W*r)``. Caches the input shape.
    """

    def __init__(self, upscale_factor: int):
        super().__init__()
        self.upscale_factor = check_positive_int("PixelShuffle", "upscale_factor",
                                                 upscale_factor)

    def forward(self, x: NDArray) -> NDArray:
        r = self.upscale_factor
        x = as_array(self, x)
        x = self._check(x, x.ndim >= 3 and x.shape[-3] % (r * r) == 0,
                        f"(*, C*{r * r}, H, W) with at least 3 dimensions")
        self._shape = x.shape if self.caching else None
        return pixel_shuffle(x, r)

    def backward(self, grad_out: NDArray) -> NDArray:
        shape = self._saved(self._shape)
        r = self.upscale_factor
        *lead, c, h, w = shape
        grad_out = check_grad(self, grad_out, (*lead, c // (r * r), h * r, w * r))
        return pixel_unshuffle(grad_out, r)

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(_Permutation):
    """Rearrange ``(*, C, H*r, W*r)`` into ``(*, C*r^2, H, W)``, as ``torch.nn.PixelUnshuffle``
    (the inverse of PixelShuffle; backward is PixelShuffle of ``grad_out``).

    Args:
        downscale_factor: r.

    Shape: input ``(*, C, H*r, W*r)``; output ``(*, C*r^2, H, W)``. Caches the input shape.
    """

    def __init__(self, downscale_factor: int):
        super().__init__()
        self.downscale_factor = check_positive_int("PixelUnshuffle", "downscale_factor",
                                                   downscale_factor)

    def forward(self, x: NDArray) -> NDArray:
        r = self.downscale_factor
        x = as_array(self, x)
        x = self._check(x, x.ndim >= 3 and x.shape[-1] % r == 0 and x.shape[-2] % r == 0,
                        f"(*, C, H*{r}, W*{r}) with at least 3 dimensions")
        self._shape = x.shape if self.caching else None
        return pixel_unshuffle(x, r)

    def backward(self, grad_out: NDArray) -> NDArray:
        shape = self._saved(self._shape)
        r = self.downscale_factor
        *lead, c, h, w = shape
        grad_out = check_grad(self, grad_out, (*lead, c * r * r, h // r, w // r))
        return pixel_shuffle(grad_out, r)

    def extra_repr(self) -> str:
        return f"downscale_factor={self.downscale_factor}"


class ChannelShuffle(_Permutation):
    """Interleave the channels of ``groups`` groups, as ``torch.nn.ChannelShuffle``.

    ``(N, C, *)`` viewed as ``(N, g, C/g, *)``, the two group axes swapped; backward is the
    channel shuffle with ``C/g`` groups.

    Args:
        groups: g (must divide C).

    Shape: input ``(N, C, *)``; output: same shape. Caches the input shape.
    """

    def __init__(self, groups: int):
        super().__init__()
        self.groups = check_positive_int("ChannelShuffle", "groups", groups)

    def forward(self, x: NDArray) -> NDArray:
        x = as_array(self, x)
        x = self._check(x, x.ndim >= 3 and x.shape[1] % self.groups == 0,
                        f"(N, C, *) with C divisible by {self.groups}")
        self._shape = x.shape if self.caching else None
        return channel_shuffle(x, self.groups)

    def backward(self, grad_out: NDArray) -> NDArray:
        shape = self._saved(self._shape)
        grad_out = check_grad(self, grad_out, shape)
        return channel_shuffle(grad_out, shape[1] // self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
