"""The README's example: your own model, trained deterministically, gives one process's bits at every world size.

Run it as `mpiexec -n N python -m pytest --with-mpi tests/runtime/test_determinism_example.py` for any N
that divides K.
"""

import contextlib

import numpy as np
import pytest
from mpi4py import MPI

from mpigrad.autograd import cross_entropy, nn
from mpigrad.optim import Adam
from mpigrad.runtime import Comm, DataParallel, init, state_digest

K, MICRO, STEPS = 12, 4, 3  # K micro-batches of MICRO samples per step: world sizes 1, 2, 3, 4, 6, 12


def train(comm):
    """STEPS Adam steps of a small MLP; rank r runs micro-batches r*K/P .. (r+1)*K/P - 1 of every step."""
    model = nn.MLP([6, 16, 3], activation="tanh", rng=np.random.default_rng(0))
    dp = DataParallel(model, comm, deterministic=True, micro_batches=K)
    opt = Adam(dp.parameters(), lr=1e-2)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((STEPS, K * MICRO, 6)).astype(np.float32)
    y = rng.integers(0, 3, (STEPS, K * MICRO))
    per_rank = K // comm.size
    mine = range(comm.rank * per_rank, (comm.rank + 1) * per_rank)
    for step in range(STEPS):
        opt.zero_grad()
        for i in mine:
            rows = slice(i * MICRO, (i + 1) * MICRO)
            # every backward is one micro-batch; the last one of the rank's block ends the step
            with contextlib.nullcontext() if i == mine[-1] else dp.no_sync():
                cross_entropy(dp(x[step, rows]), y[step, rows]).backward()
        opt.clip_grad_norm(1.0)
        opt.step()
    return state_digest(model, opt)


@pytest.mark.mpi
def test_every_world_size_gives_the_single_process_digest():
    world = init()
    if K % world.size:
        pytest.skip(f"world size {world.size} does not divide K={K}")
    alone = train(Comm(MPI.COMM_SELF.Dup()))  # one process's result, computed on every rank
    together = train(world)
    verdicts = world.allgather_obj(together == alone)  # every rank asserts the same: none hangs
    assert all(verdicts), f"digest differs from one process on rank(s) {[r for r, v in enumerate(verdicts) if not v]}"
