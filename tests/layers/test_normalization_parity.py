"""PyTorch parity for the normalization layers (float64, rtol 1e-6).

Same weights in both, several training steps on different batches: outputs, input
gradients, parameter gradients (accumulated) and running statistics must agree; then eval.
"""

from __future__ import annotations

import numpy as np
import pytest

from handgrad.layers import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm

torch = pytest.importorskip("torch")

RTOL, ATOL = 1e-6, 1e-10


def _load_random_weights(layer, torch_layer, seed):
    rng = np.random.default_rng(seed)
    state = layer.state_dict()
    for key in state:
        if key.endswith(("weight", "bias")):
            state[key] = rng.uniform(0.5, 1.5, state[key].shape) * rng.choice([-1, 1],
                                                                               state[key].shape)
    layer.load_state_dict(state)
    torch_layer.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})


def _compare(layer, torch_layer, shape, steps=3, seed=0, eval_steps=2):
    torch_layer = torch_layer.double()
    _load_random_weights(layer, torch_layer, seed)
    rng = np.random.default_rng(seed + 1)
    torch_params = dict(torch_layer.named_parameters())

    def step():
        x = rng.standard_normal(shape) * rng.uniform(0.5, 3) + rng.uniform(-2, 2)
        g = rng.standard_normal(shape)
        y = layer(x)
        grad_x = layer.backward(g)
        tx = torch.from_numpy(x).requires_grad_()
        ty = torch_layer(tx)
        ty.backward(torch.from_numpy(g))
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(grad_x, tx.grad.numpy(), rtol=RTOL, atol=ATOL)
        for name, p in layer.named_parameters():
            np.testing.assert_allclose(p.grad, torch_params[name].grad.numpy(), rtol=RTOL,
                                       atol=ATOL, err_msg=name)

    for _ in range(steps):
        step()
    torch_state = torch_layer.state_dict()
    state = layer.state_dict()
    assert list(state) == list(torch_state)
    for key, value in state.items():
        np.testing.assert_allclose(value, torch_state[key].numpy(), rtol=RTOL, atol=ATOL,
                                   err_msg=key)
    layer.eval(backward=True)
    torch_layer.eval()
    for _ in range(eval_steps):
        step()


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("track", [True, False])
def test_batchnorm2d_parity(momentum, affine, track):
    layer = BatchNorm2d(3, momentum=momentum, affine=affine, track_running_stats=track,
                        dtype=np.float64)
    ref = torch.nn.BatchNorm2d(3, momentum=momentum, affine=affine, track_running_stats=track)
    _compare(layer, ref, (4, 3, 5, 6))


def test_batchnorm2d_parity_wide_images():
    # Long rows take the vecdot reduction path.
    _compare(BatchNorm2d(2, eps=1e-3, momentum=0.3, dtype=np.float64),
             torch.nn.BatchNorm2d(2, eps=1e-3, momentum=0.3), (2, 2, 12, 13))


@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 7)])
@pytest.mark.parametrize("momentum", [0.2, None])
def test_batchnorm1d_parity(shape, momentum):
    _compare(BatchNorm1d(4, momentum=momentum, dtype=np.float64),
             torch.nn.BatchNorm1d(4, momentum=momentum), shape)


@pytest.mark.parametrize("norm, affine, bias", [
    ((6,), True, True), ((2, 3), True, False), ((6,), False, True)])
def test_layernorm_parity(norm, affine, bias):
    _compare(LayerNorm(norm, elementwise_affine=affine, bias=bias, dtype=np.float64),
             torch.nn.LayerNorm(norm, elementwise_affine=affine, bias=bias), (3, 2) + norm)


@pytest.mark.parametrize("groups, channels, shape, affine", [
    (2, 6, (3, 6, 4, 5), True), (3, 6, (2, 6), False), (1, 4, (2, 4, 7), True)])
def test_groupnorm_parity(groups, channels, shape, affine):
    _compare(GroupNorm(groups, channels, affine=affine, dtype=np.float64),
             torch.nn.GroupNorm(groups, channels, affine=affine), shape)


def test_batchnorm2d_float32_close_to_torch():
    layer = BatchNorm2d(8)
    ref = torch.nn.BatchNorm2d(8)
    x = (np.random.default_rng(3).standard_normal((8, 8, 9, 9)) * 4 + 1).astype(np.float32)
    for _ in range(2):
        y = layer(x)
        ty = ref(torch.from_numpy(x))
    assert y.dtype == np.float32 and layer.running_var.dtype == np.float32
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.running_var, ref.running_var.numpy(), rtol=1e-5)
