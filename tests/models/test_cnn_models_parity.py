"""PyTorch parity of a ResNet block and of ResNet-20 (float64, rtol 1e-6).

Same weights in both; several training steps on different batches: outputs, input
gradients, parameter gradients and running statistics agree; then eval-mode outputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from handgrad.models import BasicBlock, digits_cnn, lenet5, resnet20
from tests.models.test_cnn_models import (
    torch_basic_block,
    torch_cifar_resnet,
    torch_digits_cnn,
    torch_lenet5,
)

torch = pytest.importorskip("torch")

RTOL, ATOL = 1e-6, 1e-9


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny batches: one thread in both frameworks is fastest and avoids contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


def _randomise_batchnorm(model, rng):
    """BatchNorm affine parameters away from (1, 0) so they matter in the comparison."""
    state = model.state_dict()
    for key, value in state.items():
        if value.ndim == 1 and key.endswith(("weight", "bias")) and not key.startswith("fc"):
            state[key] = rng.uniform(0.5, 1.5, value.shape)
    model.load_state_dict(state)


def _compare(model, twin, shape, steps=3, seed=0):
    rng = np.random.default_rng(seed)
    twin = twin.double()
    _randomise_batchnorm(model, rng)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    twin_params = dict(twin.named_parameters())

    def step():
        x = rng.standard_normal(shape)
        y = model(x)
        g = rng.standard_normal(y.shape)
        model.zero_grad()
        grad_x = model.backward(g)
        tx = torch.from_numpy(x).requires_grad_()
        twin.zero_grad()
        ty = twin(tx)
        ty.backward(torch.from_numpy(g))
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(grad_x, tx.grad.numpy(), rtol=RTOL, atol=ATOL)
        for name, p in model.named_parameters():
            np.testing.assert_allclose(p.grad, twin_params[name].grad.numpy(), rtol=RTOL,
                                       atol=ATOL, err_msg=name)

    for _ in range(steps):
        step()
    twin_state = twin.state_dict()
    for key, value in model.state_dict().items():
        np.testing.assert_allclose(value, twin_state[key].numpy(), rtol=RTOL, atol=ATOL,
                                   err_msg=key)
    model.eval(backward=True)
    twin.eval()
    step()


@pytest.mark.parametrize("c_in, c_out, stride", [(3, 3, 1), (3, 5, 2)])
def test_basic_block_parity(c_in, c_out, stride):
    _compare(BasicBlock(c_in, c_out, stride, dtype=np.float64, rng=0),
             torch_basic_block(c_in, c_out, stride), (2, c_in, 7, 6))


def test_resnet20_parity():
    _compare(resnet20(dtype=np.float64, rng=1), torch_cifar_resnet(20), (2, 3, 8, 8), steps=2)


def test_lenet5_and_digits_cnn_parity():
    _compare(lenet5(dtype=np.float64, rng=2), torch_lenet5(), (2, 1, 28, 28), steps=1)
    _compare(digits_cnn(dtype=np.float64, rng=3), torch_digits_cnn(), (3, 1, 8, 8), steps=2)
