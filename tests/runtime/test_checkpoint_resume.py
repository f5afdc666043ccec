"""Checkpoints with every optimizer mode: save on every rank (collectives included), load, resume."""

import numpy as np
import pytest

from mpigrad.optim import Adam
from mpigrad.runtime import DataParallel, ZeroOptimizer, load_checkpoint, save_checkpoint

from mpi_helpers import assert_everywhere, assert_same_on_all_ranks, comm, loss_of, make_data, make_model, shard

pytestmark = pytest.mark.mpi
HYPER = dict(lr=1e-2, weight_decay=1e-3)


def build(mode):
    c = comm()
    dp = DataParallel(make_model(seed=3), c, deterministic=mode == "deterministic")
    opt = ZeroOptimizer(dp, Adam, **HYPER) if mode == "zero" else Adam(dp.parameters(), **HYPER)
    return dp, opt


def train(dp, opt, x, y, steps):
    mine = shard(len(y), dp.comm.rank, dp.comm.size)
    for _ in range(steps):
        opt.zero_grad()
        loss_of(dp, x[mine], y[mine]).backward()
        opt.clip_grad_norm(0.5)
        opt.step()


@pytest.mark.parametrize("mode", ["replicated", "zero", "deterministic"])
def test_resume_continues_the_same_trajectory(mpi_tmp_path, mode):
    c = comm()
    x, y = make_data(4 * c.size, seed=9)
    path = str(mpi_tmp_path / f"{mode}.ckpt")
    dp, opt = build(mode)
    train(dp, opt, x, y, 2)
    save_checkpoint(path, dp.module, opt, step=2)
    train(dp, opt, x, y, 2)
    straight = [p.data.copy() for p in dp.parameters()]
    dp2, opt2 = build(mode)
    extra = load_checkpoint(path, dp2.module, opt2)
    train(dp2, opt2, x, y, 2)
    assert_everywhere(extra["step"] == 2, "extras not restored")
    assert_everywhere(all(np.array_equal(a, p.data) for a, p in zip(straight, dp2.parameters())),
                      "resumed training differs from uninterrupted training")
    assert_same_on_all_ranks([p.data for p in dp2.parameters()], "replicas differ after resume")
