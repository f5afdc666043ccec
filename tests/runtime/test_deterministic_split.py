"""DataParallel(deterministic=True, micro_batches=K): one process's bits at any world size dividing K."""

import numpy as np
import pytest

from mpigrad.runtime import DataParallel
from mpigrad.runtime.comm import SerialComm

from mpi_helpers import accumulate, assert_everywhere, assert_same_on_all_ranks, comm, loss_of, make_data, make_model

pytestmark = pytest.mark.mpi

K = 12  # divisible by every world size the suite runs at (1, 2, 3, 4)



def test_grads_are_the_bits_of_one_process():
    c = comm()
    x, y = make_data(3 * K, seed=7)
    reference = accumulate(DataParallel(make_model(), SerialComm(), deterministic=True, micro_batches=K), x, y, K)
    per_rank = K // c.size
    mine = slice(c.rank * 3 * per_rank, (c.rank + 1) * 3 * per_rank)
    grads = accumulate(DataParallel(make_model(), c, deterministic=True, micro_batches=K), x[mine], y[mine], per_rank)
    assert_everywhere(all(np.array_equal(g, r) for g, r in zip(grads, reference)),
                      "deterministic gradients differ from one process's")
    assert_same_on_all_ranks(grads, "deterministic gradients differ between ranks")


def test_a_wrong_micro_batch_count_fails_on_every_rank():
    c = comm()
    x, y = make_data(4, seed=8)
    dp = DataParallel(make_model(), c, deterministic=True, micro_batches=K)
    with pytest.raises(RuntimeError, match=f"expects {K // c.size} each"):
        loss_of(dp, x, y).backward()  # one micro-batch per rank, not K / world size


@pytest.mark.parametrize("deterministic, message", [
    (True, "micro_batches=0 must be a positive multiple of the world size"),
    (False, "micro_batches=0 must be an integer >= the world size"),
])
def test_bad_micro_batches_are_refused_before_any_collective(deterministic, message):
    with pytest.raises(ValueError, match=message):
        DataParallel(make_model(), comm(), deterministic=deterministic, micro_batches=0)
