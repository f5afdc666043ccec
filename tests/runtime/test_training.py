"""Training over N ranks equals one process on the full batch; ZeRO-1 equals replicated."""

import numpy as np
import pytest

from mpigrad.optim import Adam
from mpigrad.runtime import DataParallel, ZeroOptimizer

from mpi_helpers import assert_everywhere, assert_same_on_all_ranks, comm, loss_of, make_data, make_model, shard

pytestmark = pytest.mark.mpi
HYPER = dict(lr=0.05, weight_decay=0.01)


def train_single(x, y, steps, clip):
    model = make_model()
    opt = Adam(model.parameters(), **HYPER)
    for _ in range(steps):
        opt.zero_grad()
        loss_of(model, x, y).backward()
        opt.clip_grad_norm(clip)
        opt.step()
    return [p.data for p in model.parameters()]


def train_parallel(x, y, steps, clip, zero=False):
    c = comm()
    dp = DataParallel(make_model(), c, bucket_mb=0.001)
    opt = ZeroOptimizer(dp, Adam, **HYPER) if zero else Adam(dp.parameters(), **HYPER)
    mine = shard(len(y), c.rank, c.size)
    norms = []
    for _ in range(steps):
        opt.zero_grad()
        loss_of(dp, x[mine], y[mine]).backward()
        norms.append(opt.clip_grad_norm(clip))
        opt.step()
        dp.check_replicas(opt)
    return dp, opt, norms


@pytest.mark.parametrize("zero", [False, True])
def test_parallel_training_equals_full_batch(zero):
    c = comm()
    x, y = make_data(6 * c.size, seed=3)
    clip = 0.05  # below the norms this data gives, so every step clips
    expected = train_single(x, y, steps=5, clip=clip)
    dp, opt, norms = train_parallel(x, y, steps=5, clip=clip, zero=zero)
    assert_everywhere(all(np.allclose(p.data, e, rtol=1e-10, atol=1e-12) for p, e in zip(dp.parameters(), expected)),
                      "parallel training drifted from single-process training")
    assert_same_on_all_ranks([p.data for p in dp.parameters()], "replicas differ")
    assert_same_on_all_ranks([np.array(norms)], "ranks used different gradient norms")
    assert_everywhere(min(norms) > clip, "the test never clipped")


def test_zero_holds_a_shard_of_the_state_and_matches_replicated():
    c = comm()
    x, y = make_data(4 * c.size, seed=5)
    replicated, _, _ = train_parallel(x, y, steps=3, clip=1.0)
    sharded, opt, _ = train_parallel(x, y, steps=3, clip=1.0, zero=True)
    assert_everywhere(all(np.array_equal(a.data, b.data)  # the same averaged grads and elementwise kernels: same bits
                          for a, b in zip(replicated.parameters(), sharded.parameters())), "ZeRO-1 differs")
    total = sum(p.size for p in sharded.parameters())
    held = sum(piece.var.size for piece in opt.pieces)
    assert_everywhere(abs(held - total / c.size) <= 1, f"rank holds {held} of {total} state elements")
