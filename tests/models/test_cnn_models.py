"""mlp, lenet5, digits_cnn and the ResNets: shapes, state-dict names, gradients, overfitting."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from handgrad.losses import CrossEntropyLoss
from handgrad.models import (
    BasicBlock,
    cifar_resnet,
    digits_cnn,
    lenet5,
    mlp,
    resnet18,
    resnet20,
    resnet32,
    resnet56,
)
from tests.helpers import check_layer_contract


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """These models are tiny: one BLAS thread is fastest and avoids contention on a busy CPU."""
    with threadpool_limits(1):
        yield


# ---------------------------------------------------------------------- torch twins
# The same architectures written with torch.nn under the same module names (used here for
# the state-dict comparison and by test_cnn_models_parity.py).


def torch_basic_block(in_channels, out_channels, stride=1):
    import torch
    from torch import nn

    class TorchBasicBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(OrderedDict([
                ("conv1", nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)),
                ("bn1", nn.BatchNorm2d(out_channels)),
                ("relu", nn.ReLU()),
                ("conv2", nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)),
                ("bn2", nn.BatchNorm2d(out_channels)),
            ]))
            self.shortcut = None
            if stride != 1 or in_channels != out_channels:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                    nn.BatchNorm2d(out_channels))

        def forward(self, x):
            skip = x if self.shortcut is None else self.shortcut(x)
            return torch.relu(self.body(x) + skip)

    return TorchBasicBlock()


def torch_resnet(widths, blocks, num_classes, in_channels=3, imagenet_stem=False):
    from torch import nn

    if imagenet_stem:
        stem = [("conv1", nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False)),
                ("bn1", nn.BatchNorm2d(widths[0])), ("relu", nn.ReLU()),
                ("maxpool", nn.MaxPool2d(3, 2, 1))]
    else:
        stem = [("conv1", nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)),
                ("bn1", nn.BatchNorm2d(widths[0])), ("relu", nn.ReLU())]
    children = stem
    c = widths[0]
    for k, (w, n) in enumerate(zip(widths, blocks)):
        stage = [torch_basic_block(c, w, 1 if k == 0 else 2)]
        stage += [torch_basic_block(w, w) for _ in range(n - 1)]
        children.append((f"layer{k + 1}", nn.Sequential(*stage)))
        c = w
    children += [("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
                 ("fc", nn.Linear(c, num_classes))]
    return nn.Sequential(OrderedDict(children))


def torch_cifar_resnet(depth, num_classes=10, width=16):
    n = (depth - 2) // 6
    return torch_resnet([width, 2 * width, 4 * width], [n, n, n], num_classes)


def torch_lenet5(num_classes=10, in_channels=1):
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=2), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(6, 16, 5), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, num_classes))


def torch_digits_cnn(num_classes=10):
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.MaxPool2d(2),
        nn.ReLU(), nn.Flatten(), nn.Linear(512, 64), nn.ReLU(),
        nn.Linear(64, num_classes))


def torch_mlp():
    from torch import nn

    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, 10))


# ---------------------------------------------------------------------- shapes and names

@pytest.mark.parametrize("make, shape, out", [
    (lambda: mlp(), (3, 784), (3, 10)),
    (lambda: mlp(20, (7,), 4), (3, 20), (3, 4)),
    (lambda: mlp(20, (), 4), (3, 20), (3, 4)),
    (lambda: lenet5(), (2, 1, 28, 28), (2, 10)),
    (lambda: lenet5(7, in_channels=3), (2, 3, 28, 28), (2, 7)),
    (lambda: digits_cnn(), (3, 1, 8, 8), (3, 10)),
    (lambda: resnet20(), (2, 3, 8, 8), (2, 10)),
    (lambda: cifar_resnet(8, num_classes=5, in_channels=1, width=4), (2, 1, 9, 7), (2, 5)),
])
def test_output_shapes_and_float32(make, shape, out):
    model = make()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y = model(x)
    assert y.shape == out and y.dtype == np.float32
    grad_x = model.backward(np.ones_like(y))
    assert grad_x.shape == shape and grad_x.dtype == np.float32
    assert all(p.grad is not None and p.grad.dtype == np.float32 for p in model.parameters())


def test_parameter_counts_match_the_papers():
    def count(model):
        return sum(p.size for p in model.parameters())

    assert count(resnet20()) == 272_474
    assert count(resnet32()) == 466_906
    assert count(resnet56()) == 855_770
    assert count(mlp()) == 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10
    assert count(lenet5()) == 61_706


def test_resnet_state_dict_names_are_documented():
    keys = list(resnet20().state_dict())
    assert keys[:2] == ["conv1.weight", "bn1.weight"]
    assert "layer1.0.body.conv1.weight" in keys and "layer1.0.body.bn2.running_var" in keys
    assert "layer2.0.shortcut.0.weight" in keys
    assert "layer2.0.shortcut.1.num_batches_tracked" in keys
    assert "layer1.0.shortcut.0.weight" not in keys  # identity shortcut: no state
    assert keys[-2:] == ["fc.weight", "fc.bias"]


@pytest.mark.parametrize("name", ["mlp", "lenet5", "digits_cnn", "resnet20", "resnet18",
                                  "block"])
def test_state_dict_matches_the_torch_twin(name):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model, twin = {
        "mlp": lambda: (mlp(), torch_mlp()),
        "lenet5": lambda: (lenet5(), torch_lenet5()),
        "digits_cnn": lambda: (digits_cnn(), torch_digits_cnn()),
        "resnet20": lambda: (resnet20(), torch_cifar_resnet(20)),
        "resnet18": lambda: (resnet18(), torch_resnet([64, 128, 256, 512], [2, 2, 2, 2], 1000,
                                                      imagenet_stem=True)),
        "block": lambda: (BasicBlock(8, 16, 2), torch_basic_block(8, 16, 2)),
    }[name]()
    ours = model.state_dict()
    theirs = twin.state_dict()
    assert list(ours) == list(theirs)
    for key, value in ours.items():
        assert value.shape == tuple(theirs[key].shape), key
    # Loading in both directions works.
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in ours.items()})
    model.load_state_dict({k: v.numpy() for k, v in twin.state_dict().items()})


def test_models_take_dtype_and_rng():
    for make in (mlp, lenet5, digits_cnn, resnet20):
        a, b = make(rng=3), make(rng=3)
        c = make(rng=4, dtype=np.float64)
        for (key, va), vb, vc in zip(a.state_dict().items(), b.state_dict().values(),
                                     c.state_dict().values()):
            np.testing.assert_array_equal(va, vb, err_msg=key)
            if np.issubdtype(vc.dtype, np.floating):
                assert vc.dtype == np.float64 and va.dtype == np.float32, key
        assert any(not np.array_equal(va, vc) for va, vc in
                   zip(a.state_dict().values(), c.state_dict().values()))


@pytest.mark.parametrize("make, shape, pools", [
    (lenet5, (6, 1, 28, 28), (1, 4)),
    (digits_cnn, (6, 1, 8, 8), (5,)),
])
def test_relu_after_max_pool_is_the_same_as_before_it(make, shape, pools):
    """lenet5 and digits_cnn put ReLU after each max-pool (cheaper): outputs, input and
    parameter gradients are exactly those of the usual order, ReLU first, with the same
    layers; random inputs give windows whose maximum is negative too."""
    from handgrad.layers import Sequential

    model = make(dtype=np.float64, rng=5)
    layers = list(model)
    classic = list(layers)
    for p in pools:  # MaxPool2d at p, its ReLU at p + 1: swap them back
        assert type(layers[p]).__name__ == "MaxPool2d" and type(layers[p + 1]).__name__ == "ReLU"
        classic[p], classic[p + 1] = layers[p + 1], layers[p]
    x = np.random.default_rng(6).normal(size=shape)
    pooled = Sequential(*layers[:pools[0] + 1])(x)  # windows of both signs reach a ReLU
    assert (pooled < 0).any() and (pooled > 0).any()
    results = []
    for net in (Sequential(*classic), model):
        net.zero_grad()
        y = net(x)
        g = np.random.default_rng(7).normal(size=y.shape)
        gx = net.backward(g)
        results.append((y, gx, [q.grad.copy() for q in net.parameters()]))
    (y0, gx0, grads0), (y1, gx1, grads1) = results
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(gx1, gx0)
    assert np.count_nonzero(gx0) and len(grads0) == len(grads1)
    for a, b in zip(grads1, grads0):
        np.testing.assert_array_equal(a, b)


def test_bad_arguments():
    with pytest.raises(ValueError, match="6n \\+ 2"):
        cifar_resnet(21)
    with pytest.raises(ValueError, match="num_classes"):
        lenet5(num_classes=0)
    with pytest.raises(ValueError, match="expected input of shape"):
        lenet5()(np.zeros((2, 3, 28, 28), np.float32))


# ---------------------------------------------------------------------- gradients

def test_basic_block_gradients(check_gradients):
    rng = np.random.default_rng(1)
    for stride, c_in, c_out in [(2, 2, 3), (1, 2, 2)]:
        block = BasicBlock(c_in, c_out, stride, dtype=np.float64, rng=rng)
        for p in block.parameters():  # BatchNorm affine away from the defaults
            if p.data.ndim == 1:
                p.data[...] = rng.uniform(0.5, 1.5, p.shape)
        check_gradients(block, rng.standard_normal((2, c_in, 5, 5)))


def test_basic_block_eval_gradients(check_gradients):
    rng = np.random.default_rng(2)
    block = BasicBlock(2, 3, 2, dtype=np.float64, rng=rng)
    for _ in range(2):
        block(rng.standard_normal((3, 2, 5, 5)))
    block.eval(backward=True)
    check_gradients(block, rng.standard_normal((2, 2, 5, 5)))


def test_whole_small_resnet_gradients(check_gradients):
    rng = np.random.default_rng(3)
    model = cifar_resnet(8, num_classes=3, width=1, dtype=np.float64, rng=rng)
    check_gradients(model, rng.standard_normal((3, 3, 4, 4)))


def test_block_layer_contract():
    x = np.random.default_rng(4).standard_normal((2, 2, 6, 6)).astype(np.float32)
    check_layer_contract(lambda: BasicBlock(2, 4, 2, rng=0), x)


# ---------------------------------------------------------------------- overfitting

@pytest.mark.parametrize("make, shape, steps", [
    (lambda: lenet5(rng=0), (8, 1, 28, 28), 60),
    (lambda: digits_cnn(rng=0), (16, 1, 8, 8), 30),
    (lambda: cifar_resnet(8, width=8, rng=0), (8, 3, 8, 8), 40),
])
def test_overfits_one_small_batch(make, shape, steps):
    rng = np.random.default_rng(5)
    model = make()
    x = rng.standard_normal(shape).astype(np.float32)
    target = np.arange(shape[0]) % 10
    criterion = CrossEntropyLoss()
    velocity = [np.zeros_like(p.data) for p in model.parameters()]
    first = criterion(model(x), target)
    for _ in range(steps):  # SGD with momentum 0.9, written out
        loss = criterion(model(x), target)
        model.zero_grad()
        model.backward(criterion.backward())
        for p, v in zip(model.parameters(), velocity):
            v *= 0.9
            v += p.grad
            p.data -= 0.02 * v
    assert loss < 0.05 < first
