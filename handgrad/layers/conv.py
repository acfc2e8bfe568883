"""2-D convolution as one matrix multiply around im2col / col2im (``handgrad.ops.window``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validation import as_float_input, check_grad, check_positive_int
from ..init import default_weight_init_
from ..layer import Layer
from ..ops.parallel import channel_sum, get_num_threads, matmul, ones, run_chunks
from ..ops.window import (
    Padding2d,
    col2im,
    col2im_wide,
    im2col,
    im2col_wide,
    output_shape,
    pad2d,
    pair,
    resolve_padding,
    unpad2d,
)
from ..ops.workspace import scratch
from ..parameter import Parameter
from ..random import resolve_rng

# Size of one chunk of im2col columns: small enough to stay in the CPU cache.
_CHUNK_BYTES = 2 << 20


class Conv2d(Layer):
    """2-D cross-correlation over NCHW images, as ``torch.nn.Conv2d``.

    ``y[n, o, oh, ow] = b[o] + sum_{c in group(o), i, j} W[o, c, i, j] *
    xpad[n, c, oh*sh + i*dh, ow*sw + j*dw]``, computed as ``W.reshape(O, -1) @ im2col(x)``
    (one matrix multiply; with ``groups`` one batched multiply over the group axis).

    Args:
        in_channels, out_channels: C and O; both must be divisible by ``groups``.
        kernel_size: ``k`` or ``(kh, kw)``.
        stride: ``s`` or ``(sh, sw)``, positive (default 1).
        padding: ``p``, ``(ph, pw)``, ``'valid'`` (no padding) or ``'same'`` (stride 1 only;
            output size = input size, padding ``d*(k-1)`` split with the extra pixel after,
            as PyTorch does). Padding is with zeros.
        dilation: ``d`` or ``(dh, dw)`` (default 1).
        groups: split input and output channels into this many independent groups
            (``groups == in_channels`` gives a depthwise convolution).
        bias: learn an additive per-channel bias (default True).
        padding_mode: only ``'zeros'`` is implemented.
        dtype: parameter dtype (float32 by default).
        rng: generator for the initial weights (default: ``handgrad.random``'s).

    Shape:
        - input: ``(N, C, H, W)``
        - output: ``(N, O, OH, OW)`` with
          ``OH = floor((H + pad_top + pad_bottom - dh*(kh-1) - 1) / sh) + 1`` (same for OW)
        - weight: ``(O, C/groups, kh, kw)``, PyTorch's default init
          (kaiming_uniform with a=sqrt(5))
        - bias: ``(O,)``, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C/groups*kh*kw

    Forward caches the (padded) input. Columns are built in cache-sized chunks of the batch
    and rebuilt in backward: measured, that is faster than caching all columns (kh*kw times
    the input, pushed through main memory) and needs no more memory than PyTorch.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", dtype: DTypeLike = np.float32, rng=None):
        super().__init__()
        name = "Conv2d"
        self.in_channels = check_positive_int(name, "in_channels", in_channels)
        self.out_channels = check_positive_int(name, "out_channels", out_channels)
        self.groups = check_positive_int(name, "groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{name}: groups={groups} must divide both in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = pair(stride, "stride", name)
        self.dilation = pair(dilation, "dilation", name)
        self._pads = resolve_padding(padding, self.kernel_size, self.stride, self.dilation, name)
        self.padding = padding if isinstance(padding, str) else pair(padding, "padding", name, 0)
        if padding_mode != "zeros":
            raise ValueError(
                f"{name}: padding_mode={padding_mode!r} is not implemented; only 'zeros' is"
            )
        self.padding_mode = padding_mode
        kh, kw = self.kernel_size
        self.weight = Parameter(
            np.empty((out_channels, in_channels // groups, kh, kw), dtype=dtype)
        )
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(rng)
        self._cache = None
        # Stride-1 backward when an input gradient is wanted: "correlation" (one im2col of
        # grad_out gives the input and weight gradients; cheaper when out_channels <=
        # in_channels), "col2im" (columns of x, col2im scatter), or "auto" for that rule.
        self._input_grad_method = "auto"
        self._chunk_bytes = _CHUNK_BYTES

    def reset_parameters(self, rng=None) -> None:
        default_weight_init_(self.weight, self.bias, resolve_rng(rng))

    def forward(self, x: NDArray) -> NDArray:
        x = as_float_input(self, x)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self.describe()}: expected input of shape (N, {self.in_channels}, H, W), "
                f"got {x.shape}"
            )
        N, C, H, W = x.shape
        O, G = self.out_channels, self.groups
        oh, ow = output_shape((H, W), self.kernel_size, self.stride, self._pads, self.dilation,
                              who=self.describe())
        (pt, pb), (pl, pr) = self._pads
        padded = pt or pb or pl or pr
        xp = np.empty((N, C, H + pt + pb, W + pl + pr), x.dtype) if padded else x
        w = self.weight.data.reshape(G, O // G, -1)  # (G, O/G, K), K = C/G*kh*kw
        y = np.empty((N, O, oh, ow), dtype=x.dtype)

        def chunk(worker: int, bounds: tuple[int, int]) -> None:
            start, stop = bounds
            if padded:
                pad2d(x[start:stop], self._pads, out=xp[start:stop])
            cols, row = self._columns(xp[start:stop], (oh, ow), worker)
            n, K, L = stop - start, w.shape[2], cols.shape[1]  # L = n*OH*row
            y2 = np.matmul(w, cols.reshape(G, K, L),
                           out=scratch(f"conv2d.y.{worker}", (G, O // G, L), x.dtype))
            y2 = y2.reshape(O, n, oh, row)[..., :ow].transpose(1, 0, 2, 3)  # (n, O, OH, OW)
            if self.bias is not None:
                np.add(y2, self.bias.data[:, None, None], out=y[start:stop])
            else:
                np.copyto(y[start:stop], y2)

        run_chunks(chunk, self._chunks(xp.shape, (oh, ow)))
        self._cache = (xp, (H, W), (oh, ow)) if self.caching else None
        return y

    def _wide(self) -> bool:
        # Stride 1 uses the wide column layout (rows of Wp, garbage beyond OW): its copies
        # are long contiguous runs. Other strides use the compact layout.
        return self.stride == (1, 1)

    def _chunks(self, padded_shape: tuple[int, ...], out_hw: tuple[int, int]
                ) -> list[tuple[int, int]]:
        """``(start, stop)`` slices of the batch whose columns stay in the CPU cache.

        A chunk's im2col columns are ~2 MB at most: building columns for the whole batch at
        once would move every column through main memory twice. The number of chunks is a
        multiple of the thread count, so that threads get equal shares.
        """
        N, C, _, Wp = padded_shape
        if N == 0:
            return []
        kh, kw = self.kernel_size
        row = Wp if self._wide() else out_hw[1]
        image_bytes = C * kh * kw * out_hw[0] * row * self.weight.data.dtype.itemsize
        count = -(-N // max(1, min(N, self._chunk_bytes // image_bytes)))
        threads = get_num_threads()
        count = min(N, -(-count // threads) * threads)
        step = -(-N // count)
        return [(start, min(N, start + step)) for start in range(0, N, step)]

    def _columns(self, xp: NDArray, out_hw: tuple[int, int], worker: int
                 ) -> tuple[NDArray, int]:
        """im2col columns of the padded images ``xp`` in the thread's scratch array (valid
        until its next call), and the length of one output row in them."""
        n, C = xp.shape[:2]
        kh, kw = self.kernel_size
        oh, ow = out_hw
        row = xp.shape[3] if self._wide() else ow
        out = scratch(f"conv2d.cols.{worker}", (C * kh * kw, n * oh * row), xp.dtype)
        if self._wide():
            return im2col_wide(xp, self.kernel_size, self.dilation, out=out), row
        return im2col(xp, self.kernel_size, self.stride, self.dilation, out=out), row

    def backward(self, grad_out: NDArray) -> NDArray | None:
        xp, (H, W), (oh, ow) = self._saved(self._cache)
        N, C = xp.shape[:2]
        O, G = self.out_channels, self.groups
        grad_out = check_grad(self, grad_out, (N, O, oh, ow))
        want_w = self.weight.requires_grad
        want_b = self.bias is not None and self.bias.requires_grad
        want_x = self.needs_input_grad
        method = self._input_grad_method
        if method == "auto":
            method = "correlation" if O <= C else "col2im"
        by_correlation = (want_x and self.stride == (1, 1) and method == "correlation"
                          and self._flip_pads() is not None)
        grad_x = np.empty((N, C, H, W), dtype=xp.dtype) if want_x else None
        # Per thread: [weight-gradient product, bias gradient] summed over its chunks. The
        # correlation kernel's weight product comes out flipped (see _backward_by_correlation).
        sums: dict[int, list[NDArray | None]] = {}
        row = xp.shape[3] if self._wide() else ow  # an output row's length in the columns

        if by_correlation:
            kh, kw = self.kernel_size
            # Wt[c, o, i', j'] = W[o, c, kh-1-i', kw-1-j'] per group: a small copy, made once
            wt = self.weight.data.reshape(G, O // G, C // G, kh, kw)[:, :, :, ::-1, ::-1]
            wt = wt.transpose(0, 2, 1, 3, 4).reshape(G, C // G, O // G * kh * kw)
            flip_pads = self._flip_pads()

        def chunk(worker: int, bounds: tuple[int, int]) -> None:
            start, stop = bounds
            if by_correlation:
                part_w = self._backward_by_correlation(
                    grad_out[start:stop], xp[start:stop], grad_x[start:stop], wt, flip_pads,
                    worker, want_w)
                part_b = channel_sum(grad_out[start:stop]) if want_b else None
            else:
                part_w, part_b = self._backward_by_columns(
                    grad_out[start:stop], xp[start:stop], (oh, ow), row, worker, want_w, want_b,
                    grad_x[start:stop] if want_x else None)
            acc = sums.setdefault(worker, [None, None])
            for i, part in enumerate((part_w, part_b)):
                if part is not None:
                    acc[i] = part if acc[i] is None else np.add(acc[i], part, out=acc[i])

        run_chunks(chunk, self._chunks(xp.shape, (oh, ow)))
        partials = list(sums.values())
        if want_w:
            grad_w = partials[0][0]
            for part in partials[1:]:
                grad_w += part[0]
            if by_correlation:  # (G, (O/G, kh', kw'), C/G) with kh' = kh-1-i: unflip
                kh, kw = self.kernel_size
                grad_w = grad_w.reshape(G, O // G, kh, kw, C // G)[:, :, ::-1, ::-1]
                grad_w = grad_w.transpose(0, 1, 4, 2, 3)
            self.weight.accumulate_grad(
                np.ascontiguousarray(grad_w).reshape(self.weight.data.shape), fresh=True)
        if want_b:
            grad_b = partials[0][1]
            for part in partials[1:]:
                grad_b += part[1]
            self.bias.accumulate_grad(grad_b, fresh=True)
        return grad_x

    def _backward_by_columns(self, grad_out: NDArray, xp: NDArray, out_hw: tuple[int, int],
                             row: int, worker: int, want_w: bool, want_b: bool,
                             grad_x: NDArray | None) -> tuple[NDArray | None, NDArray | None]:
        """One chunk's backward from the columns of x: returns the weight-gradient product
        ``(G, O/G, K)`` and the bias gradient (or None), writes ``grad_x`` unless None."""
        n, C = xp.shape[:2]
        O, G = self.out_channels, self.groups
        oh, ow = out_hw
        w = self.weight.data.reshape(G, O // G, -1)
        K, L = w.shape[2], n * oh * row
        # grad_out as (O, n*OH*row); garbage columns (wide layout) must be zero.
        gy = scratch(f"conv2d.grad_out.{worker}", (O, n, oh, row), xp.dtype)
        if row != ow:
            gy[..., ow:] = 0
        np.copyto(gy[..., :ow], grad_out.transpose(1, 0, 2, 3))
        gy = gy.reshape(G, O // G, L)
        part_w = part_b = None
        if want_w or want_b:
            # The columns are rebuilt (cheap, in cache) instead of cached. Both products
            # have small results: parallel.matmul / np.dot keep them running side by side
            # in threads (np.matmul and .sum would hold the GIL).
            if want_b:
                part_b = np.dot(gy.reshape(O, L), ones(L, xp.dtype))
            if want_w:  # dL/dW = gy @ cols^T, per group
                cols, _ = self._columns(xp, out_hw, worker)
                part_w = matmul(gy, cols.reshape(G, K, L).transpose(0, 2, 1))
        if grad_x is None:
            return part_w, part_b
        # Input gradient: dL/dx[n, c, h, w] = sum over (o, i, j, oh, ow) with
        # h = oh*sh + i*dh - pad_top, w = ow*sw + j*dw - pad_left of W[o, c, i, j] *
        # gy[n, o, oh, ow]; i.e. the columns W^T @ gy summed back to pixels by col2im.
        grad_cols = np.matmul(w.transpose(0, 2, 1), gy,
                              out=scratch(f"conv2d.grad_cols.{worker}", (G, K, L), xp.dtype))
        grad_cols = grad_cols.reshape(G * K, L)
        if row != ow:
            grad_xp = col2im_wide(grad_cols, xp.shape, self.kernel_size, self.dilation)
        else:
            grad_xp = col2im(grad_cols, xp.shape, self.kernel_size, self.stride, self.dilation)
        np.copyto(grad_x, unpad2d(grad_xp, self._pads))
        return part_w, part_b

    def _flip_pads(self):
        """Padding of grad_out for the stride-1 input gradient, or None if one is negative."""
        pads = tuple(
            (d * (k - 1) - before, d * (k - 1) - after)
            for k, d, (before, after) in zip(self.kernel_size, self.dilation, self._pads)
        )
        return None if min(min(p) for p in pads) < 0 else pads

    def _backward_by_correlation(self, grad_out: NDArray, xp: NDArray, grad_x: NDArray,
                                 wt: NDArray, pads: Padding2d, worker: int, want_w: bool
                                 ) -> NDArray | None:
        """One chunk's stride-1 backward from a single im2col of ``grad_out``.

        Input gradient: dL/dx[n, c, h, w] = sum_{o, i, j} W[o, c, i, j] *
        gy[n, o, h + pt - i*dh, w + pl - j*dw] (gy zero outside its range). With the kernel
        flipped (i' = kh-1-i) this is a stride-1 correlation of gy, padded by d*(k-1) - p on
        each side (``pads``), with weights ``wt`` = Wt[c, o, i', j'] = W[o, c, kh-1-i', kw-1-j']
        (input and output channels swapped, per group, as ``(G, C/G, O/G*kh*kw)``): one im2col
        of gy, ``gcols``, and one multiply.

        The same columns give the weight gradient: ``gcols[(o, i', j'), (n, h, w)] =
        gy[n, o, h - i*dh + pt, w - j*dw + pl]``, which multiplies ``x[n, c, h, w] =
        xpad[n, c, oh + i*dh, ow + j*dw]`` in dL/dW[o, c, i, j]. So ``gcols @ x^T`` (x laid
        out like the columns, zero in their garbage positions) is dL/dW with the kernel
        flipped, returned as ``(G, O/G*kh*kw, C/G)`` (None unless ``want_w``); x's own
        columns are never built.
        """
        n, O, oh, ow = grad_out.shape
        G, C = self.groups, self.in_channels
        kh, kw = self.kernel_size
        (ft, fb), (fl, fr) = pads
        H, W = grad_x.shape[2:]
        gyp = pad2d(grad_out, pads, out=scratch(f"conv2d.grad_out.{worker}",
                                                (n, O, oh + ft + fb, ow + fl + fr), xp.dtype))
        Wg = gyp.shape[3]
        K, L = O // G * kh * kw, n * H * Wg
        gcols = im2col_wide(gyp, self.kernel_size, self.dilation,
                            out=scratch(f"conv2d.grad_cols.{worker}", (O * kh * kw, L),
                                        gyp.dtype)).reshape(G, K, L)
        gx = np.matmul(wt, gcols, out=scratch(f"conv2d.y.{worker}", (G, C // G, L), gyp.dtype))
        np.copyto(grad_x, gx.reshape(C, n, H, Wg)[..., :W].transpose(1, 0, 2, 3))
        if not want_w:
            return None
        # x as (C, n, H, Wg) like gcols' columns, in the forward columns' scratch (unused here)
        xw = scratch(f"conv2d.cols.{worker}", (C, n, H, Wg), xp.dtype)
        xw[..., W:] = 0
        np.copyto(xw[..., :W], unpad2d(xp, self._pads).transpose(1, 0, 2, 3))
        return matmul(gcols, xw.reshape(G, C // G, L).transpose(0, 2, 1))

    def _on_dtype_change(self, dtype: np.dtype) -> None:
        self._cache = None

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding!r}" if isinstance(self.padding, str) else \
                f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
