"""handgrad.ops: pure array kernels shared by layers (no state, one copy of each)."""

from .window import (
    ceil_extra,
    col2im,
    im2col,
    output_shape,
    output_size,
    pad2d,
    pair,
    resolve_padding,
    unpad2d,
    window_slice,
    window_view,
)

__all__ = [
    "ceil_extra", "col2im", "im2col", "output_shape", "output_size", "pad2d", "pair",
    "resolve_padding", "unpad2d", "window_slice", "window_view",
]
