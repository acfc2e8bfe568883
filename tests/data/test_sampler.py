"""DistributedSampler: PyTorch's sharding (seed + epoch, padding, drop_last) and pad=False."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handgrad.data import DataLoader, DistributedSampler


def shards(n, k, **kwargs):
    return [DistributedSampler(range(n), k, r, **kwargs).indices() for r in range(k)]


@given(n=st.integers(1, 40), k=st.integers(1, 5), seed=st.integers(0, 5),
       epoch=st.integers(0, 3))
def test_pad_false_deals_every_index_once(n, k, seed, epoch):
    parts = [DistributedSampler(range(n), k, r, seed=seed, pad=False) for r in range(k)]
    for part in parts:
        part.set_epoch(epoch)
    got = np.concatenate([p.indices() for p in parts])
    assert sorted(got.tolist()) == list(range(n))
    assert [len(p) for p in parts] == [len(range(r, n, k)) for r in range(k)]


@given(n=st.integers(1, 40), k=st.integers(1, 5))
def test_padding_repeats_the_first_indices(n, k):
    parts = shards(n, k, shuffle=False)
    size = -(-n // k)
    assert all(len(p) == size for p in parts)
    dealt = np.empty(size * k, np.int64)
    for r, p in enumerate(parts):
        dealt[r::k] = p
    assert dealt.tolist() == np.resize(np.arange(n), size * k).tolist()


@given(n=st.integers(5, 40), k=st.integers(1, 5))
def test_drop_last_keeps_equal_disjoint_shards(n, k):
    parts = shards(n, k, drop_last=True)
    assert all(len(p) == n // k for p in parts)
    got = np.concatenate(parts)
    assert len(set(got.tolist())) == len(got) == n - n % k


def test_local_batches_make_up_the_global_batches_of_one_process():
    n, k, batch = 29, 3, 6
    single = DistributedSampler(range(n), 1, 0, seed=4, pad=False)
    single.set_epoch(2)
    order = single.indices()
    loaders = []
    for r in range(k):
        sampler = DistributedSampler(range(n), k, r, seed=4, pad=False)
        sampler.set_epoch(2)
        loaders.append(list(DataLoader(np.arange(n), batch // k, sampler=sampler)))
    assert len({len(b) for b in loaders}) == 1
    for b, global_batch in enumerate(np.array_split(order, range(batch, n, batch))):
        parts = [loaders[r][b][0] for r in range(k)]
        assert sorted(np.concatenate(parts).tolist()) == sorted(global_batch.tolist())


def test_set_epoch_reshuffles_the_same_way_on_every_rank():
    a, b = (DistributedSampler(range(20), 2, r, seed=1) for r in (0, 1))
    first = a.indices().copy()
    a.set_epoch(1)
    b.set_epoch(1)
    assert first.tolist() != a.indices().tolist()
    assert not set(a.indices().tolist()) & set(b.indices().tolist())
    again = DistributedSampler(range(20), 2, 0, seed=1)
    again.load_state_dict(a.state_dict())
    assert again.indices().tolist() == a.indices().tolist()


def test_defaults_without_mpi_are_one_replica():
    sampler = DistributedSampler(range(5))
    assert (sampler.num_replicas, sampler.rank) == (1, 0)
    assert sorted(sampler) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_replicas=2, rank=2), "expected rank in [0, 2), got 2"),
    (dict(num_replicas=0, rank=0), "expected num_replicas >= 1, got 0"),
    (dict(num_replicas=8, rank=0, drop_last=True), "leaves no sample"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        DistributedSampler(range(5), **kwargs)


def test_dataloader_refuses_sampler_with_shuffle():
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(np.arange(4), 2, shuffle=True, sampler=DistributedSampler(range(4)))
    with pytest.raises(TypeError, match="sampler with __len__"):
        DataLoader(np.arange(4), 2, sampler=iter([0, 1]))
