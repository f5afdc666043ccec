"""state_digest: changed by one ulp anywhere in the state, equal on every rank of a healthy job."""

import contextlib

import numpy as np
import pytest

from mpigrad.autograd import nn
from mpigrad.optim import Adam
from mpigrad.runtime import DataParallel, state_digest

from mpi_helpers import assert_everywhere, comm, loss_of, make_data, make_model, shard


def trained(steps=2):
    model = nn.MLP([4, 8, 3], rng=np.random.default_rng(0), dtype=np.float32)
    opt = Adam(model.parameters(), lr=1e-2)
    x, y = make_data(16, features=4)
    for _ in range(steps):
        opt.zero_grad()
        loss_of(model, x.astype(np.float32), y).backward()
        opt.step()
    return model, opt


def test_equal_state_gives_equal_digest_and_it_is_short_hex():
    (a, opt_a), (b, opt_b) = trained(), trained()
    assert state_digest(a, opt_a) == state_digest(b, opt_b)
    assert len(state_digest(a)) == 32 and int(state_digest(a), 16) >= 0


@pytest.mark.parametrize("index", [0, 1, 3])
def test_one_ulp_in_any_parameter_changes_the_digest(index):
    model, opt = trained()
    before = state_digest(model, opt)
    p = model.parameters()[index].data
    p.flat[p.size // 2] = np.nextafter(p.flat[p.size // 2], np.float32(np.inf))
    assert state_digest(model, opt) != before


def test_optimizer_state_counts_and_is_optional():
    model, opt = trained()
    more_model, more_opt = trained(steps=3)
    assert state_digest(model, opt) != state_digest(model)
    # the same parameters with other moments: only the optimizer part tells them apart
    more_model.load_state_dict(model.state_dict())
    assert state_digest(more_model) == state_digest(model)
    assert state_digest(more_model, more_opt) != state_digest(model, opt)


def test_negative_zero_and_shape_are_seen():
    a = nn.Linear(2, 2, rng=np.random.default_rng(0))
    b = nn.Linear(2, 2, rng=np.random.default_rng(0))
    b.bias.data[0], a.bias.data[0] = -0.0, 0.0
    assert state_digest(a) != state_digest(b)


@pytest.mark.mpi
def test_digest_equal_on_every_rank_after_training():
    c = comm()
    dp = DataParallel(make_model(), c)
    opt = Adam(dp.parameters(), lr=0.05)
    x, y = make_data(24)
    mine = shard(len(y), c.rank, c.size)
    for _ in range(3):
        opt.zero_grad()
        loss_of(dp, x[mine], y[mine]).backward()
        opt.step()
    digests = c.allgather_obj(state_digest(dp, opt))
    assert_everywhere(len(set(digests)) == 1, f"digests differ across ranks: {digests}")
    assert_everywhere(digests[0] == state_digest(dp.module, opt), "dp and its module give different digests")


@pytest.mark.mpi
def test_zero_digest_is_the_world_1_digest_in_deterministic_mode():
    """ZeRO-1's digest covers the gathered (replicated-format) optimizer state, so it is the same at
    every world size when the parameters are; and it equals a replicated optimizer's digest."""
    from mpigrad.runtime import ZeroOptimizer
    from mpigrad.runtime.comm import SerialComm

    c = comm()
    K = 4 if c.size != 3 else 3
    x, y = make_data(4 * K, seed=12)
    micro = np.array_split(np.arange(len(y)), K)

    def digest_after_training(dp, opt, batches):
        for _ in range(2):
            opt.zero_grad()
            for i, rows in enumerate(batches):
                with dp.no_sync() if i < len(batches) - 1 else contextlib.nullcontext():
                    loss_of(dp, x[rows], y[rows]).backward()
            opt.step()
        return state_digest(dp.module, opt)

    mine = np.array_split(np.arange(K), c.size)[c.rank]
    dp = DataParallel(make_model(), c, deterministic=True, micro_batches=K)
    got = digest_after_training(dp, ZeroOptimizer(dp, Adam, lr=0.01), [micro[i] for i in mine])
    one = DataParallel(make_model(), SerialComm(), deterministic=True, micro_batches=K)
    replicated = digest_after_training(one, Adam(one.parameters(), lr=0.01), micro)
    assert_everywhere(got == replicated, f"ZeRO digest {got} != world-1 replicated digest {replicated}")
