"""EpochBatchSampler: epoch semantics, determinism, resume, distributed slices, m per class."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from supcon.data import EpochBatchSampler


def _epoch(sampler, epoch, start=0):
    sampler.set_epoch(epoch, start)
    return list(sampler)


@pytest.mark.parametrize("n, b, drop", [(23, 5, False), (23, 5, True), (20, 5, False)])
def test_plain_epoch_is_a_permutation(n, b, drop):
    s = EpochBatchSampler(torch.zeros(n), b, shuffle=True, drop_last=drop, seed=1)
    batches = _epoch(s, 0)
    flat = [i for batch in batches for i in batch]
    assert len(batches) == len(s) == (n // b if drop else math.ceil(n / b))
    assert all(len(batch) == b for batch in batches[:-1])
    if drop:
        assert len(flat) == (n // b) * b and len(set(flat)) == len(flat)
    else:
        assert sorted(flat) == list(range(n))


def test_order_is_a_function_of_seed_and_epoch():
    labels = torch.arange(50) % 5
    s1, s2 = EpochBatchSampler(labels, 8, seed=3), EpochBatchSampler(labels, 8, seed=3)
    assert _epoch(s1, 2) == _epoch(s2, 2)
    assert _epoch(s1, 2) != _epoch(s1, 3)
    assert _epoch(s1, 2) != _epoch(EpochBatchSampler(labels, 8, seed=4), 2)
    assert _epoch(EpochBatchSampler(labels, 8, shuffle=False), 0)[0] == list(range(8))


@pytest.mark.parametrize("per_class", [None, 2])
def test_start_batch_skips_for_resume(per_class):
    s = EpochBatchSampler(torch.arange(40) % 4, 8, seed=0, per_class=per_class)
    full = _epoch(s, 1)
    assert _epoch(s, 1, start=3) == full[3:]
    assert len(s) == len(full)  # len() stays the full epoch's count


@pytest.mark.parametrize("drop", [False, True])
def test_distributed_ranks(drop):
    n, world = 23, 3
    ranks = [
        _epoch(
            EpochBatchSampler(torch.zeros(n), 4, seed=0, drop_last=drop, rank=r, world_size=world),
            0,
        )
        for r in range(world)
    ]
    assert len({len(r) for r in ranks}) == 1  # every rank steps the same number of times
    flat = [[i for batch in r for i in batch] for r in ranks]
    if drop:
        together = sum(flat, [])
        assert len(together) == len(set(together))  # disjoint
    else:
        assert set(sum(flat, [])) == set(range(n))  # every sample seen; padding repeats a few
        assert len({len(f) for f in flat}) == 1


def test_per_class_batches_hold_m_of_k_classes():
    labels = torch.arange(200) % 20
    s = EpochBatchSampler(labels, 12, seed=0, per_class=3)
    for batch in _epoch(s, 0):
        counts = Counter(labels[batch].tolist())
        assert len(batch) == 12 and len(counts) == 4 and set(counts.values()) == {3}
        assert len(set(batch)) == 12


def test_per_class_epoch_covers_balanced_data_exactly_once():
    labels = torch.arange(80) % 10  # 10 classes x 8
    s = EpochBatchSampler(labels, 16, seed=7, per_class=4, drop_last=True)
    flat = [i for batch in _epoch(s, 0) for i in batch]
    assert len(s) == 5 and sorted(flat) == list(range(80))


def test_per_class_is_deterministic_and_distributed():
    labels = torch.arange(120) % 6
    mk = lambda r: EpochBatchSampler(labels, 6, seed=2, per_class=2, rank=r, world_size=2)  # noqa: E731
    a, b = _epoch(mk(0), 4), _epoch(mk(1), 4)
    assert a == _epoch(mk(0), 4) and a != b and len(a) == len(b) == 10
    for batch in a + b:
        assert set(Counter(labels[batch].tolist()).values()) == {2}


def test_rare_classes_warn_and_repeat():
    labels = torch.tensor([0] * 10 + [1] * 10 + [2])
    with pytest.warns(UserWarning, match="1 class"):
        s = EpochBatchSampler(labels, 6, per_class=3)
    for batch in _epoch(s, 0):
        assert set(Counter(labels[batch].tolist()).values()) == {3}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 10, "per_class": 4}, "not a multiple of per_class"),
        ({"batch_size": 12, "per_class": 2}, "6 classes per batch, but labels hold only 5"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 4, "rank": 2, "world_size": 2}, "rank"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EpochBatchSampler(torch.arange(50) % 5, **kwargs)
