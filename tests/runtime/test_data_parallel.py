"""DataParallel at any world size: averaged gradients, identical replicas, clear errors."""

import numpy as np
import pytest

from mpigrad.autograd import nn
from mpigrad.runtime import DataParallel

from mpi_helpers import (assert_everywhere, assert_same_on_all_ranks, comm, full_batch_grads, loss_of,
                          make_data, make_model, shard)

pytestmark = pytest.mark.mpi


@pytest.mark.parametrize("bucket_mb", [None, 0.0005])  # one bucket, and one per parameter or so
@pytest.mark.parametrize("deterministic", [False, True])
def test_grads_equal_full_batch_and_identical(bucket_mb, deterministic):
    c = comm()
    n = 8 * c.size
    x, y = make_data(n)
    dp = DataParallel(make_model(), c, bucket_mb=bucket_mb, deterministic=deterministic)
    mine = shard(n, c.rank, c.size)
    loss_of(dp, x[mine], y[mine]).backward()
    grads = [p.grad for p in dp.parameters()]
    expected = full_batch_grads(x, y)
    assert_everywhere(all(np.allclose(g, e, rtol=1e-12, atol=1e-14) for g, e in zip(grads, expected)),
                      "averaged gradients differ from the full-batch gradients")
    assert_same_on_all_ranks(grads, "gradients differ between ranks")


def test_uneven_shards_average_by_sample_count():
    c = comm()
    n = c.size * (c.size + 1) // 2  # rank r holds r + 1 samples
    x, y = make_data(n, seed=4)
    dp = DataParallel(make_model(), c)
    start = c.rank * (c.rank + 1) // 2
    loss_of(dp, x[start:start + c.rank + 1], y[start:start + c.rank + 1]).backward()
    expected = full_batch_grads(x, y)
    assert_everywhere(all(np.allclose(p.grad, e, rtol=1e-12, atol=1e-14) for p, e in zip(dp.parameters(), expected)),
                      "uneven shards are not averaged by sample count")


def test_no_sync_accumulation_equals_larger_batch():
    c = comm()
    n = 4 * c.size
    x, y = make_data(2 * n, seed=7)
    dp = DataParallel(make_model(), c)
    halves = [shard(n, c.rank, c.size), n + shard(n, c.rank, c.size)]
    with dp.no_sync():  # losses as they are: DataParallel weights every forward by its samples
        loss_of(dp, x[halves[0]], y[halves[0]]).backward()
    loss_of(dp, x[halves[1]], y[halves[1]]).backward()
    expected = full_batch_grads(x, y)
    assert_everywhere(all(np.allclose(p.grad, e, rtol=1e-12, atol=1e-14) for p, e in zip(dp.parameters(), expected)),
                      "no_sync accumulation differs from the larger batch")


def test_parameters_without_gradient_do_not_hang():
    c = comm()

    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(3, 2, rng=np.random.default_rng(0), dtype=np.float64)
            self.unused = nn.Linear(3, 2, rng=np.random.default_rng(1), dtype=np.float64)

        def forward(self, x):
            return self.used(x)

    dp = DataParallel(TwoHeads(), c, bucket_mb=1e-5)
    dp(np.ones((2, 3))).sum().backward()
    assert_everywhere(dp.module.unused.weight.grad is None, "a parameter no rank differentiated has a .grad")
    assert_everywhere(np.allclose(dp.module.used.bias.grad, 2.0), "used bias gradient is wrong")


def test_structure_mismatch_raises_on_every_rank():
    c = comm()
    sizes = (5, 16, 3) if c.rank == c.size - 1 and c.size > 1 else (5, 16, 16, 3)
    if c.size == 1:
        pytest.skip("needs two ranks to differ")
    with pytest.raises(ValueError, match="the model differs between ranks") as info:
        DataParallel(make_model(sizes=sizes), c)
    messages = c.allgather_obj(str(info.value))
    assert_everywhere(len(set(messages)) == 1, "ranks report different errors")


def test_broadcasts_rank_zero_parameters():
    c = comm()
    dp = DataParallel(make_model(seed=c.rank), c)  # different initial values on every rank
    assert_same_on_all_ranks([p.data for p in dp.parameters()], "parameters were not broadcast")
    reference = make_model(seed=0)
    assert_everywhere(all(np.array_equal(p.data, q.data) for p, q in zip(dp.parameters(), reference.parameters())),
                      "replicas do not hold rank 0's values")


def test_check_replicas_names_the_differing_parameter():
    c = comm()
    dp = DataParallel(make_model(), c)
    dp.check_replicas()
    if c.size == 1:
        return
    name, param = list(dp.named_parameters())[1]
    if c.rank == 1:
        param.data.flat[0] += 1e-12
    with pytest.raises(RuntimeError, match=rf"replicas differ: {name} on rank\(s\) \[1\]"):
        dp.check_replicas()
