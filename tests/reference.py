"""Slow, obviously-correct loop references for the fast window kernels (conv and pooling).

Each follows the textbook definition pixel by pixel, with no stride tricks, so the fast
kernels in ``handgrad.ops`` / ``handgrad.layers`` can be tested against them. Padding is
given per side as ``((top, bottom), (left, right))``. Small shapes only.
"""

from __future__ import annotations

import numpy as np


def _pad(x, pads, value):
    (t, b), (l, r) = pads
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


def _out(size, k, s, before, after, d):
    return (size + before + after - d * (k - 1) - 1) // s + 1


def conv2d_forward(x, weight, bias, stride, pads, dilation, groups):
    """y[n, o, p, q] = b[o] + sum_{c, i, j} w[o, c, i, j] * xpad[n, g*Cg + c, p*s + i*d, ...]."""
    N, C, H, W = x.shape
    O, Cg, kh, kw = weight.shape
    Og = O // groups
    oh = _out(H, kh, stride[0], *pads[0], dilation[0])
    ow = _out(W, kw, stride[1], *pads[1], dilation[1])
    xp = _pad(x, pads, 0.0)
    y = np.zeros((N, O, oh, ow), dtype=np.float64)
    for n in range(N):
        for o in range(O):
            g = o // Og
            for p in range(oh):
                for q in range(ow):
                    total = 0.0 if bias is None else float(bias[o])
                    for c in range(Cg):
                        for i in range(kh):
                            for j in range(kw):
                                total += weight[o, c, i, j] * xp[
                                    n, g * Cg + c, p * stride[0] + i * dilation[0],
                                    q * stride[1] + j * dilation[1]]
                    y[n, o, p, q] = total
    return y


def conv2d_backward(x, weight, grad_out, stride, pads, dilation, groups):
    """(grad_x, grad_weight, grad_bias) by differentiating ``conv2d_forward`` term by term."""
    N, C, H, W = x.shape
    O, Cg, kh, kw = weight.shape
    Og = O // groups
    xp = _pad(x, pads, 0.0)
    grad_xp = np.zeros_like(xp, dtype=np.float64)
    grad_w = np.zeros(weight.shape, dtype=np.float64)
    grad_b = grad_out.sum(axis=(0, 2, 3))
    oh, ow = grad_out.shape[2:]
    for n in range(N):
        for o in range(O):
            g = o // Og
            for p in range(oh):
                for q in range(ow):
                    go = grad_out[n, o, p, q]
                    for c in range(Cg):
                        for i in range(kh):
                            for j in range(kw):
                                h = p * stride[0] + i * dilation[0]
                                w = q * stride[1] + j * dilation[1]
                                grad_xp[n, g * Cg + c, h, w] += weight[o, c, i, j] * go
                                grad_w[o, c, i, j] += xp[n, g * Cg + c, h, w] * go
    (t, b), (l, r) = pads
    grad_x = grad_xp[:, :, t:t + H, l:l + W]
    return grad_x, grad_w, grad_b


def _pool_windows(x, kernel, stride, padding, dilation, ceil_mode):
    """Yield (p, q, [(h, w) input positions incl. padding, in row-major window order])."""
    oh, ow = _pool_shape(x, kernel, stride, padding, dilation, ceil_mode)
    for p in range(oh):
        for q in range(ow):
            cells = [(p * stride[0] - padding[0] + i * dilation[0],
                      q * stride[1] - padding[1] + j * dilation[1])
                     for i in range(kernel[0]) for j in range(kernel[1])]
            yield p, q, cells


def _pool_shape(x, kernel, stride, padding, dilation, ceil_mode):
    out = []
    for a, size in enumerate(x.shape[2:]):
        k, s, pd, d = kernel[a], stride[a], padding[a], dilation[a]
        span = size + 2 * pd - d * (k - 1) - 1
        o = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (o - 1) * s >= size + pd:
            o -= 1
        out.append(o)
    return tuple(out)


def max_pool2d_forward_backward(x, grad_out, kernel, stride, padding, dilation=(1, 1),
                                ceil_mode=False):
    """(y, grad_x): max over each window's real pixels; gradient to the first maximum."""
    N, C, H, W = x.shape
    oh, ow = _pool_shape(x, kernel, stride, padding, dilation, ceil_mode)
    y = np.zeros((N, C, oh, ow))
    grad_x = np.zeros(x.shape)
    for n in range(N):
        for c in range(C):
            for p, q, cells in _pool_windows(x, kernel, stride, padding, dilation, ceil_mode):
                inside = [(h, w) for h, w in cells if 0 <= h < H and 0 <= w < W]
                values = [x[n, c, h, w] for h, w in inside]
                if not values:  # a window of padding only: -inf, no gradient (as PyTorch)
                    y[n, c, p, q] = -np.inf
                    continue
                best = int(np.argmax(values))  # first maximum
                y[n, c, p, q] = values[best]
                if grad_out is not None:
                    grad_x[(n, c) + inside[best]] += grad_out[n, c, p, q]
    return y, grad_x


def avg_pool2d_forward_backward(x, grad_out, kernel, stride, padding, ceil_mode=False,
                                count_include_pad=True, divisor_override=None):
    """(y, grad_x) with PyTorch's divisor rule (window clipped to the padded input)."""
    N, C, H, W = x.shape
    oh, ow = _pool_shape(x, kernel, stride, padding, (1, 1), ceil_mode)
    y = np.zeros((N, C, oh, ow))
    grad_x = np.zeros(x.shape)
    for p, q, cells in _pool_windows(x, kernel, stride, padding, (1, 1), ceil_mode):
        in_padded = [(h, w) for h, w in cells
                     if -padding[0] <= h < H + padding[0] and -padding[1] <= w < W + padding[1]]
        inside = [(h, w) for h, w in cells if 0 <= h < H and 0 <= w < W]
        if divisor_override is not None:
            divisor = divisor_override
        else:
            divisor = len(in_padded) if count_include_pad else len(inside)
        for n in range(N):
            for c in range(C):
                y[n, c, p, q] = sum(x[n, c, h, w] for h, w in inside) / divisor
                if grad_out is not None:
                    for h, w in inside:
                        grad_x[n, c, h, w] += grad_out[n, c, p, q] / divisor
    return y, grad_x


def adaptive_pool2d(x, output_size, reduce):
    """PyTorch's adaptive bins [floor(i*H/OH), ceil((i+1)*H/OH)) reduced with ``reduce``."""
    N, C, H, W = x.shape
    oh, ow = output_size
    y = np.zeros((N, C, oh, ow))
    for p in range(oh):
        h0, h1 = (p * H) // oh, -(-((p + 1) * H) // oh)
        for q in range(ow):
            w0, w1 = (q * W) // ow, -(-((q + 1) * W) // ow)
            y[:, :, p, q] = reduce(x[:, :, h0:h1, w0:w1], axis=(2, 3))
    return y


def pad(x, padding, mode, value=0.0):
    """``np.pad`` of the trailing axes in the modes' NumPy names (for ops.padding)."""
    widths = [(0, 0)] * (x.ndim - len(padding)) + [tuple(p) for p in padding]
    numpy_mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge",
                  "circular": "wrap"}[mode]
    kwargs = {"constant_values": value} if mode == "constant" else {}
    return np.pad(x, widths, mode=numpy_mode, **kwargs)


def backprop_pad(grad_out, in_shape, padding, mode):
    """The padding's adjoint by brute force: the Jacobian of ``pad`` applied column by column
    (one unit input at a time), so ``dL/dx[k] = <grad_out, pad(e_k)>``."""
    grad = np.zeros(int(np.prod(in_shape)))
    for k in range(grad.size):
        e = np.zeros(grad.size)
        e[k] = 1.0
        grad[k] = np.vdot(grad_out, pad(e.reshape(in_shape), padding, mode))
    return grad.reshape(in_shape)
