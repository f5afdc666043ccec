"""DistributedSampler and GlobalBatches: identical shuffles on every rank, exact resume."""

import numpy as np
import pytest

from mpigrad.runtime import DistributedSampler, GlobalBatches
from mpigrad.runtime.comm import SerialComm

from mpi_helpers import assert_everywhere, comm


@pytest.mark.mpi
@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_partition_the_epoch(drop_last):
    c = comm()
    n = 10 + c.size
    sampler = DistributedSampler(n, c, seed=3, drop_last=drop_last)
    sampler.set_epoch(2)
    mine = list(sampler)
    everyone = c.allgather_obj(mine)
    flat = sorted(i for block in everyone for i in block)
    expected = n - n % c.size if drop_last else -(-n // c.size) * c.size
    assert_everywhere(len(mine) == len(sampler) and len(flat) == expected, "wrong number of indices")
    assert_everywhere(set(flat) <= set(range(n)) and (drop_last or set(flat) == set(range(n))),
                      "the ranks do not cover the data")
    if drop_last:
        assert_everywhere(len(set(flat)) == len(flat), "drop_last repeated an index")


def test_epochs_shuffle_differently_and_reproducibly():
    one = DistributedSampler(50, SerialComm(), seed=1)
    two = DistributedSampler(50, SerialComm(), seed=1)
    first = list(one)
    one.set_epoch(1)
    second = list(one)
    assert list(two) == first and list(two) == first  # iterating again replays the epoch
    assert second != first and sorted(second) == sorted(first)


def test_mid_epoch_resume_continues_exactly():
    sampler = DistributedSampler(30, SerialComm(), seed=5)
    sampler.set_epoch(4)
    iterator = iter(sampler)
    head = [next(iterator) for _ in range(7)]
    resumed = DistributedSampler(30, SerialComm(), seed=5)
    resumed.load_state_dict(sampler.state_dict())
    assert head + list(resumed) == list(sampler.indices())


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_samples=0 must be a positive integer"):
        DistributedSampler(0, SerialComm())
    with pytest.raises(ValueError, match="seed=5"):
        DistributedSampler(30, SerialComm(), seed=6).load_state_dict(DistributedSampler(30, SerialComm(), seed=5).state_dict())


def test_global_batches_do_not_depend_on_world_size():
    batches = GlobalBatches(100, 16, seed=2)
    for step in (0, 5, 6, 13):
        whole = batches.batch(step)
        assert len(whole) == 16 and len(set(whole)) == 16
        for size in (1, 2, 4, 8):
            blocks = [batches.rank_block(step, r, size) for r in range(size)]
            assert np.array_equal(np.concatenate(blocks), whole)
    epoch0 = np.concatenate([batches.batch(s) for s in range(6)])
    assert len(set(epoch0)) == 96  # one epoch never repeats a sample
    with pytest.raises(ValueError, match="fewer than global_batch=16"):
        GlobalBatches(10, 16, seed=0)
