"""handgrad.ops: pure array kernels shared by layers (no state, one copy of each)."""

from .elementwise import clamp_min_zero
from .padding import PAD_MODES, backprop_pad, pad
from .window import (
    ColumnFrame,
    ceil_extra,
    col2im,
    col2im_wide,
    im2col,
    im2col_wide,
    output_shape,
    output_size,
    pack_strip,
    pad2d,
    pair,
    resolve_padding,
    single,
    strip_images,
    strip_period,
    unpad2d,
    window_slice,
    window_view,
)
from .workspace import clear_scratch, column_frame, scratch

__all__ = [
    "ceil_extra", "col2im", "col2im_wide", "im2col", "im2col_wide", "output_shape",
    "output_size", "pad2d", "pair", "resolve_padding", "unpad2d", "window_slice", "window_view",
    "strip_period", "pack_strip", "strip_images",
    "PAD_MODES", "pad", "backprop_pad", "single",
    "ColumnFrame", "scratch", "column_frame", "clear_scratch", "clamp_min_zero",
]
