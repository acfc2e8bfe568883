"""InstanceNorm, RMSNorm, LocalResponseNorm, BatchNorm3d, ``bias=False`` and empty batches:
gradient checks under hypothesis, the layer contract, PyTorch parity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import handgrad as hg
from tests.helpers import check_layer_contract


def _torch():
    return pytest.importorskip("torch")


def _rng(seed):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------- gradient checks
@given(n=st.integers(1, 3), c=st.integers(1, 3), spatial=st.sampled_from([(3,), (2, 3), (2, 1, 2)]),
       affine=st.booleans(), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_instance_norm_gradients(check_gradients, n, c, spatial, affine, bias, seed):
    cls = {1: hg.InstanceNorm1d, 2: hg.InstanceNorm2d, 3: hg.InstanceNorm3d}[len(spatial)]
    layer = cls(c, affine=affine, bias=bias, dtype=np.float64)
    rng = _rng(seed)
    if affine:
        layer.weight.data[:] = rng.uniform(0.5, 1.5, c)
    check_gradients(layer, rng.standard_normal((n, c, *spatial)))


@given(shape=st.sampled_from([(3, 4), (2, 3, 4), (5, 2, 2)]), affine=st.booleans(),
       eps=st.sampled_from([None, 1e-3]), seed=st.integers(0, 2**16))
def test_rms_norm_gradients(check_gradients, shape, affine, eps, seed):
    rng = _rng(seed)
    normalized = shape[-1:] if seed % 2 else shape[-2:]
    layer = hg.RMSNorm(normalized, eps=eps, elementwise_affine=affine, dtype=np.float64)
    if affine:
        layer.weight.data[:] = rng.uniform(0.5, 1.5, normalized)
    check_gradients(layer, rng.standard_normal(shape))


@given(size=st.integers(1, 5), c=st.integers(1, 6), alpha=st.sampled_from([1e-4, 0.5, 2.0]),
       beta=st.sampled_from([0.75, 1.5]), k=st.sampled_from([1.0, 2.0]),
       seed=st.integers(0, 2**16))
def test_local_response_norm_gradients(check_gradients, size, c, alpha, beta, k, seed):
    layer = hg.LocalResponseNorm(size, alpha=alpha, beta=beta, k=k)
    check_gradients(layer, _rng(seed).standard_normal((2, c, 3)))


@given(affine=st.booleans(), track=st.booleans(), seed=st.integers(0, 2**16))
def test_batch_norm3d_gradients(check_gradients, affine, track, seed):
    layer = hg.BatchNorm3d(2, affine=affine, track_running_stats=track, dtype=np.float64)
    check_gradients(layer, _rng(seed).standard_normal((2, 2, 2, 3, 2)))


@pytest.mark.parametrize("make, shape", [
    (lambda: hg.BatchNorm1d(3, bias=False, dtype=np.float64), (4, 3)),
    (lambda: hg.BatchNorm2d(3, bias=False, dtype=np.float64), (2, 3, 2, 2)),
    (lambda: hg.GroupNorm(2, 4, bias=False, dtype=np.float64), (2, 4, 3)),
    (lambda: hg.LayerNorm(4, bias=False, dtype=np.float64), (3, 4)),
    (lambda: hg.InstanceNorm1d(3, affine=True, bias=False, dtype=np.float64), (2, 3, 4)),
])
def test_bias_false_has_weight_only(check_gradients, make, shape):
    layer = make()
    assert [name for name, _ in layer.named_parameters()] == ["weight"]
    assert layer.bias is None
    check_gradients(layer, _rng(0).standard_normal(shape))


def test_contract_of_the_new_layers():
    x = _rng(1).standard_normal((2, 3, 4)).astype(np.float32)
    check_layer_contract(lambda: hg.InstanceNorm1d(3, affine=True, track_running_stats=True), x)
    check_layer_contract(lambda: hg.RMSNorm(4), x)
    check_layer_contract(lambda: hg.LocalResponseNorm(2), x)
    check_layer_contract(lambda: hg.BatchNorm3d(3), x.reshape(2, 3, 2, 2, 1))


# ---------------------------------------------------------------- empty and unbatched
@pytest.mark.parametrize("make, shape", [
    (lambda: hg.BatchNorm1d(3), (0, 3)),
    (lambda: hg.BatchNorm2d(3), (0, 3, 4, 4)),
    (lambda: hg.BatchNorm3d(3), (0, 3, 2, 2, 2)),
    (lambda: hg.GroupNorm(1, 3), (0, 3, 4)),
    (lambda: hg.LayerNorm(4), (0, 4)),
    (lambda: hg.RMSNorm(4), (0, 4)),
    (lambda: hg.InstanceNorm2d(3, affine=True), (0, 3, 2, 2)),
    (lambda: hg.LocalResponseNorm(2), (0, 3, 2)),
])
def test_empty_batches_give_empty_outputs_and_zero_gradients(make, shape):
    layer = make()
    x = np.zeros(shape, np.float32)
    y = layer(x)
    assert y.shape == shape and y.dtype == np.float32
    grad_x = layer.backward(np.zeros(shape, np.float32))
    assert grad_x.shape == shape and grad_x.dtype == np.float32
    for name, p in layer.named_parameters():
        np.testing.assert_array_equal(p.grad, np.zeros_like(p.data), err_msg=name)


def test_empty_batch_counts_as_a_tracked_batch_like_pytorch():
    layer = hg.BatchNorm2d(2)
    layer(np.zeros((0, 2, 3, 3), np.float32))
    assert int(layer.num_batches_tracked) == 1
    np.testing.assert_array_equal(layer.running_mean, 0)
    np.testing.assert_array_equal(layer.running_var, 1)
    layer.eval()
    assert layer(np.zeros((0, 2, 3, 3), np.float32)).shape == (0, 2, 3, 3)


def test_one_value_per_channel_still_raises_in_training():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        hg.BatchNorm1d(3)(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        hg.InstanceNorm2d(3)(np.zeros((2, 3, 1, 1), np.float32))


def test_instance_norm_unbatched_equals_a_batch_of_one(check_gradients):
    layer = hg.InstanceNorm2d(2, affine=True, dtype=np.float64)
    x = _rng(3).standard_normal((2, 3, 3))
    np.testing.assert_allclose(layer(x), layer(x[None])[0])
    check_gradients(layer, x)


def test_bad_inputs_name_the_layer():
    with pytest.raises(ValueError, match=r"InstanceNorm1d\(3.*expected input of shape"):
        hg.InstanceNorm1d(3)(np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(ValueError, match=r"InstanceNorm2d\(3.*expected 3 channels"):
        hg.InstanceNorm2d(3, affine=True)(np.zeros((2, 4, 3, 3), np.float32))
    with pytest.warns(UserWarning, match="do not match num_features"):
        hg.InstanceNorm2d(3)(np.ones((2, 4, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"RMSNorm.*expected input of shape \(\*, 4\)"):
        hg.RMSNorm(4)(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"LocalResponseNorm.*at least 3 dimensions"):
        hg.LocalResponseNorm(2)(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm3d.*\(N, 2, D, H, W\)"):
        hg.BatchNorm3d(2)(np.zeros((2, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="positive integer size"):
        hg.LocalResponseNorm(0)


# ---------------------------------------------------------------- PyTorch parity
def _parity(layer, tlayer, x, steps=1, eval_after=False):
    torch = _torch()
    tlayer.double()
    state = {k: torch.from_numpy(np.array(v)) for k, v in layer.state_dict().items()}
    tlayer.load_state_dict(state)
    assert set(layer.state_dict()) == set(tlayer.state_dict())
    g = _rng(7).standard_normal(x.shape)
    for _ in range(steps):
        layer.zero_grad()
        tx = torch.tensor(x, requires_grad=True)
        ty = tlayer(tx)
        ty.backward(torch.tensor(g))
        y = layer(x)
        gx = layer.backward(g)
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-9, atol=1e-11)
        for name, p in layer.named_parameters():
            tp = dict(tlayer.named_parameters())[name]
            np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-9, atol=1e-11,
                                       err_msg=name)
            tp.grad = None
    for name, value in layer.state_dict().items():
        np.testing.assert_allclose(value, tlayer.state_dict()[name].numpy(), rtol=1e-10,
                                   err_msg=name)
    if eval_after:
        layer.eval()
        tlayer.eval()
        np.testing.assert_allclose(layer(x), tlayer(torch.tensor(x)).detach().numpy(),
                                   rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("affine, track", [(False, False), (True, False), (True, True),
                                           (False, True)])
def test_instance_norm_parity(dims, affine, track):
    torch = _torch()
    cls = getattr(hg, f"InstanceNorm{dims}d")
    tcls = getattr(torch.nn, f"InstanceNorm{dims}d")
    x = _rng(dims).standard_normal((2, 3, *([3] * dims)))
    layer = cls(3, affine=affine, track_running_stats=track, momentum=0.3, dtype=np.float64)
    if affine:
        layer.weight.data[:] = [0.5, 1.0, 2.0]
        layer.bias.data[:] = [0.1, -0.2, 0.3]
    _parity(layer, tcls(3, affine=affine, track_running_stats=track, momentum=0.3), x,
            steps=2, eval_after=track)
    unbatched = cls(3, affine=affine, track_running_stats=track, dtype=np.float64)
    _parity(unbatched, tcls(3, affine=affine, track_running_stats=track), x[0])


@pytest.mark.parametrize("normalized, eps, affine", [(4, None, True), ((3, 4), 1e-3, True),
                                                     (4, 1e-5, False)])
def test_rms_norm_parity(normalized, eps, affine):
    torch = _torch()
    layer = hg.RMSNorm(normalized, eps=eps, elementwise_affine=affine, dtype=np.float64)
    if affine:
        layer.weight.data[:] = _rng(2).uniform(0.5, 1.5, layer.weight.shape)
    _parity(layer, torch.nn.RMSNorm(normalized, eps=eps, elementwise_affine=affine),
            _rng(4).standard_normal((2, 3, 4)))


@pytest.mark.parametrize("size, alpha, beta, k", [(2, 1e-4, 0.75, 1.0), (3, 0.5, 0.75, 2.0),
                                                  (5, 1.0, 1.5, 1.0), (1, 0.2, 0.5, 1.0)])
def test_local_response_norm_parity(size, alpha, beta, k):
    torch = _torch()
    for shape in [(2, 6, 3), (2, 4, 3, 3), (1, 3, 2, 2, 2)]:
        _parity(hg.LocalResponseNorm(size, alpha, beta, k),
                torch.nn.LocalResponseNorm(size, alpha, beta, k), _rng(5).standard_normal(shape))


@pytest.mark.parametrize("make, tmake, shape", [
    (lambda: hg.BatchNorm3d(3, dtype=np.float64), lambda t: t.nn.BatchNorm3d(3),
     (2, 3, 2, 2, 3)),
    (lambda: hg.BatchNorm2d(3, bias=False, dtype=np.float64),
     lambda t: t.nn.BatchNorm2d(3, bias=False), (2, 3, 2, 2)),
    (lambda: hg.GroupNorm(3, 6, bias=False, dtype=np.float64),
     lambda t: t.nn.GroupNorm(3, 6, bias=False), (2, 6, 3)),
    (lambda: hg.LayerNorm(4, bias=False, dtype=np.float64),
     lambda t: t.nn.LayerNorm(4, bias=False), (2, 3, 4)),
    (lambda: hg.BatchNorm2d(3, dtype=np.float64), lambda t: t.nn.BatchNorm2d(3),
     (0, 3, 2, 2)),
])
def test_batch_group_layer_norm_parity(make, tmake, shape):
    torch = _torch()
    _parity(make(), tmake(torch), _rng(6).standard_normal(shape), steps=2, eval_after=True)
