"""handgrad.distributed on one process: no mpi4py, SyncBatchNorm's own code path checked
against finite differences and BatchNorm, DistributedDataParallel as a pass-through."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import handgrad as hg
from handgrad import distributed as dist
from handgrad._runtime.threads import threads_per_rank
from handgrad.cli.common import UsageError
from handgrad.cli.train import make_loader
from tests.helpers import arrays, check_layer_contract

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER_VARIABLES = ("PMI_SIZE", "PMI_RANK", "MPI_LOCALNRANKS", "OMPI_COMM_WORLD_SIZE",
                      "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS", "SLURM_NTASKS_PER_NODE",
                      "PMIX_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                      "HANDGRAD_NO_THREAD_LIMIT")


def python(code, **env):
    environment = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    environment["PYTHONPATH"] = str(ROOT)
    environment.update(env)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=environment)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_and_single_process_calls_never_import_mpi4py():
    out = python("import json, sys, handgrad, handgrad.distributed as d; "
                 "import numpy as np; m = d.DistributedDataParallel(handgrad.Linear(2, 1)); "
                 "m(np.ones((3, 2), np.float32)); "
                 "print(json.dumps([d.rank(), d.world_size(), 'mpi4py' in sys.modules, "
                 "handgrad.thread_settings()['applied']]))")
    assert out == [0, 1, False, False]  # and no thread limit without a launcher


def test_ranks_on_one_machine_split_the_cores_before_numpy_loads():
    code = ("import json, os, handgrad; s = handgrad.thread_settings(); "
            "print(json.dumps([s, os.environ.get('OPENBLAS_NUM_THREADS'), "
            "handgrad.get_num_threads()]))")
    settings, variable, threads = python(code, PMI_SIZE="2", MPI_LOCALNRANKS="2")
    assert settings["applied"] and settings["how"] == "environment"
    assert settings["threads"] == threads_per_rank(2) == int(variable) == threads
    if len(os.sched_getaffinity(0)) == os.cpu_count():
        assert threads_per_rank(2) == max(1, os.cpu_count() // 2)
    settings, variable, _ = python(code, PMI_SIZE="2", MPI_LOCALNRANKS="2", OMP_NUM_THREADS="3")
    assert not settings["applied"] and "OMP_NUM_THREADS was already set" in settings["reason"]


# ---------------------------------------------------------------------------- SyncBatchNorm
def _random_affine(layer, seed):
    rng = np.random.default_rng(seed)
    for p in layer.parameters():
        p.data[...] = rng.uniform(0.5, 1.5, p.shape) * rng.choice([-1, 1], p.shape)
    return layer


@pytest.mark.parametrize("affine", [True, False])
@given(n=st.integers(2, 3), c=st.integers(1, 3), spatial=st.sampled_from([(), (3,), (2, 2)]),
       momentum=st.sampled_from([0.1, None]), data=st.data())
def test_sync_batchnorm_gradients(check_gradients, n, c, spatial, momentum, affine, data):
    x = data.draw(arrays((n, c, *spatial)))
    layer = dist.SyncBatchNorm(c, momentum=momentum, affine=affine, dtype=np.float64)
    _random_affine(layer, data.draw(st.integers(0, 1000)))
    check_gradients(layer, x)


def test_sync_batchnorm_is_batchnorm_on_one_process(rng):
    x = (rng.normal(size=(5, 3, 4, 4)) * 2 + 1e3).astype(np.float64)
    g = rng.normal(size=x.shape)
    bn = _random_affine(hg.BatchNorm2d(3, dtype=np.float64), 1)
    sync = dist.SyncBatchNorm(3, dtype=np.float64)
    sync.load_state_dict(bn.state_dict())
    for _ in range(2):
        np.testing.assert_allclose(sync(x), bn(x), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(sync.backward(g), bn.backward(g), rtol=1e-9, atol=1e-12)
    for name, value in bn.state_dict().items():
        np.testing.assert_allclose(sync.state_dict()[name], value, rtol=1e-12, err_msg=name)
    np.testing.assert_allclose(sync.weight.grad, bn.weight.grad, rtol=1e-10)


def test_sync_batchnorm_contract_and_errors(rng):
    x = rng.normal(size=(3, 2, 3)).astype(np.float32)
    check_layer_contract(lambda: dist.SyncBatchNorm(2), x)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 2, \*\), got \(3, 4\)"):
        dist.SyncBatchNorm(2)(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="more than 1 value per channel over all ranks"):
        dist.SyncBatchNorm(2)(np.zeros((1, 2), np.float32))


def test_convert_sync_batchnorm_shares_parameters_and_buffers():
    model = hg.Sequential(hg.Conv2d(1, 2, 3), hg.BatchNorm2d(2), hg.ReLU(),
                          hg.Sequential(hg.Flatten(), hg.BatchNorm1d(8)))
    weight, running = model[1].weight, model[1].running_mean
    names = list(model.state_dict())
    model.eval()
    converted = dist.convert_sync_batchnorm(model)
    assert converted is model
    assert isinstance(model[1], dist.SyncBatchNorm) and isinstance(model[3][1],
                                                                  dist.SyncBatchNorm)
    assert model[1].weight is weight and model[1].running_mean is running
    assert not model[1].training
    assert list(model.state_dict()) == names
    alone = dist.SyncBatchNorm.convert_sync_batchnorm(hg.BatchNorm1d(4))
    assert isinstance(alone, dist.SyncBatchNorm) and alone.num_features == 4
    with pytest.raises(TypeError, match="expected a handgrad Layer"):
        dist.convert_sync_batchnorm(np.zeros(2))


def test_sync_batchnorm_state_dict_names_match_pytorch():
    torch = pytest.importorskip("torch")
    ours = dist.SyncBatchNorm(3).state_dict()
    theirs = torch.nn.SyncBatchNorm(3).state_dict()
    assert list(ours) == list(theirs)
    assert all(tuple(ours[k].shape) == tuple(theirs[k].shape) for k in ours)


# ---------------------------------------------------------------------------- DDP, one rank
def _cnn(seed):
    rng = np.random.default_rng(seed)
    return hg.Sequential(hg.Conv2d(1, 3, 3, padding=1, dtype=np.float64, rng=rng),
                         hg.BatchNorm2d(3, dtype=np.float64), hg.ReLU(), hg.Flatten(),
                         hg.Dropout(0.2, rng=seed), hg.Linear(3 * 16, 2, dtype=np.float64,
                                                              rng=rng))


def test_fit_through_ddp_on_one_process_is_plain_fit(rng):
    x = rng.normal(size=(20, 1, 4, 4))
    y = rng.integers(0, 2, size=20)
    results = []
    for wrap in (False, True):
        model = _cnn(0)
        net = dist.DistributedDataParallel(model) if wrap else model
        sampler = hg.data.DistributedSampler(x, seed=2)
        loader = hg.data.DataLoader((x, y), 6, sampler=sampler)
        history = hg.fit(net, hg.losses.CrossEntropyLoss(), hg.optim.Adam(net.parameters()),
                         loader, epochs=2, accumulate=2, val_data=(x, y), progress=False)
        results.append((model.state_dict(), history["loss"], history["val_loss"]))
    (state_a, loss_a, val_a), (state_b, loss_b, val_b) = results
    assert loss_a == loss_b and val_a == val_b
    for name in state_a:
        np.testing.assert_array_equal(state_a[name], state_b[name], err_msg=name)
    assert sampler.epoch == 1  # fit called set_epoch(0), then set_epoch(1)


def test_ddp_wrapper_state_dict_no_sync_and_errors(rng):
    model = _cnn(1)
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=0.001)
    assert list(ddp.state_dict()) == list(model.state_dict())  # no "module." prefix
    ddp.load_state_dict(_cnn(2).state_dict())
    np.testing.assert_array_equal(model[0].weight.data, _cnn(2)[0].weight.data)
    x = rng.normal(size=(4, 1, 4, 4))
    with ddp.no_sync():
        ddp.backward(rng.normal(size=ddp(x).shape))
    assert ddp.reduce_gradients() == 4  # samples of the forwards since the last reduction
    np.testing.assert_array_equal(ddp.all_sum([1.0, 2.0]), [1.0, 2.0])
    ddp.check_same(3, "anything")  # one rank always agrees with itself
    with pytest.raises(TypeError, match="expected a handgrad Layer"):
        dist.DistributedDataParallel(object())
    with pytest.raises(ValueError, match="expected bucket_cap_mb > 0 or None"):
        dist.DistributedDataParallel(model, bucket_cap_mb=0)


def test_dropout_shard_keeps_its_rows_of_the_global_mask():
    whole, part = hg.Dropout(0.5, rng=3), hg.Dropout(0.5, rng=3)
    x = np.ones((7, 3))
    expected = whole(x)
    part.shard = (7, np.arange(1, 7, 3))
    np.testing.assert_array_equal(part(x[1::3]), expected[1::3])


def test_lstm_dropout_shard_keeps_its_sequences_of_the_global_masks(rng):
    whole, part = (hg.LSTM(2, 3, num_layers=2, dropout=0.5, batch_first=True,
                           dtype=np.float64, rng=4) for _ in range(2))
    x = rng.normal(size=(7, 5, 2))
    expected = whole(x)
    part.shard = (7, np.arange(2, 7, 3))
    np.testing.assert_allclose(part(x[2::3]), expected[2::3], rtol=1e-12)
    assert not np.allclose(hg.LSTM(2, 3, num_layers=2, dropout=0.5, batch_first=True,
                                   dtype=np.float64, rng=4)(x[2::3]), expected[2::3])


def test_cli_global_batch_must_be_divisible_by_the_ranks():
    x, y = np.zeros((10, 1, 8, 8), np.float32), np.zeros(10, np.int64)
    with pytest.raises(UsageError, match="--batch-size 9 is the global batch: it must be "
                                         r"divisible by the 2 ranks \(e.g. --batch-size 8\)"):
        make_loader(x, y, 9, seed=0, augment=False, replicas=2, rank=0)
    assert len(make_loader(x, y, 4, seed=0, augment=False, replicas=2, rank=1)) == 3


def test_wrapper_keeps_the_order_of_generators_that_checkpoints_save():
    from handgrad.training.fit import _generators

    model = hg.Sequential(hg.Dropout(0.1, rng=1), hg.LSTM(2, 3, num_layers=2, dropout=0.1,
                                                          rng=5), hg.Dropout(0.2, rng=2))
    plain = [id(g) for g in _generators(model)]
    assert [id(g) for g in _generators(dist.DistributedDataParallel(model))] == plain
