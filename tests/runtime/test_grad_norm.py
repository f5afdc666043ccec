"""DataParallel.reduced_grad_norm(): the norm of the averaged gradients, from per-bucket partials taken
during the all-reduce, equal to the optimizer's norm to rounding and the same bits on every rank;
DataParallel.grad_norm(): the norm of the gradients as they are now."""

import numpy as np
import pytest

from mpigrad.optim import Adam
from mpigrad.runtime import DataParallel

from mpi_helpers import assert_everywhere, assert_same_on_all_ranks, comm, loss_of, make_data, make_model, shard

pytestmark = pytest.mark.mpi


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("bucket_mb", [None, 1e-4])
def test_grad_norm_matches_the_optimizer_and_agrees_across_ranks(deterministic, bucket_mb):
    c = comm()
    x, y = make_data(6 * c.size, seed=41)
    dp = DataParallel(make_model(), c, bucket_mb=bucket_mb, deterministic=deterministic)
    opt = Adam(dp.parameters(), lr=0.1)
    mine = shard(len(y), c.rank, c.size)
    norms = []
    for _ in range(2):
        opt.zero_grad()
        loss_of(dp, x[mine], y[mine]).backward()
        norms.append((dp.reduced_grad_norm(), opt.grad_norm()))
        norms.append((dp.grad_norm(), opt.grad_norm()))
        opt.step()
    assert_everywhere(all(abs(a - b) <= 1e-12 * b for a, b in norms), f"norms differ: {norms}")
    assert_same_on_all_ranks([np.array(norms)], "ranks computed different norms")


def test_grad_norm_after_a_change_of_gradients_reads_them_again():
    c = comm()
    x, y = make_data(4 * c.size, seed=42)
    dp = DataParallel(make_model(), c)
    mine = shard(len(y), c.rank, c.size)
    loss_of(dp, x[mine], y[mine]).backward()
    with dp.no_sync():
        loss_of(dp, x[mine], y[mine]).backward()  # a new forward: the last pass's partials no longer apply
    expected = np.sqrt(sum(float(np.sum(p.grad.astype(np.float64) ** 2)) for p in dp.parameters()))
    assert_everywhere(abs(dp.grad_norm() - expected) <= 1e-12 * expected, "a stale norm was returned")


def test_deterministic_norm_is_the_one_process_bits_from_shares_of_rows():
    """Each rank sums the squares of a share of the 8192-element rows; the total must be bitwise what
    one process computes from the buffers (so it cannot depend on the world size)."""
    from mpigrad.optim import sum_of_squares

    c = comm()
    x, y = make_data(8, seed=43)
    dp = DataParallel(make_model(sizes=(5, 300, 300, 3), dtype=np.float32), c, deterministic=True, micro_batches=c.size)
    mine = shard(len(y), c.rank, c.size)
    loss_of(dp, x[mine], y[mine]).backward()
    rows = sum(-(-g.size // 8192) for g in dp.groups)
    expected = np.sqrt(sum(sum_of_squares(g.grad) for g in dp.groups))
    norm = dp.reduced_grad_norm()
    assert_everywhere(rows >= 4 and norm == expected, f"{norm!r} != {expected!r}")
