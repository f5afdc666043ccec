"""One loss convention for both modes: backward each micro-batch's mean loss as it is; DataParallel
weights every forward by its samples, so the gradient is the full batch's mean in both modes."""

import contextlib

import numpy as np
import pytest

from mpigrad.runtime import DataParallel
from mpigrad.runtime.comm import SerialComm

from mpi_helpers import (assert_everywhere, assert_same_on_all_ranks, comm, full_batch_grads, loss_of, make_data,
                         make_model)


pytestmark = pytest.mark.mpi

SIZES = [3, 1, 2, 4, 2, 3, 1, 5, 2, 2, 3, 4]  # K = 12 micro-batches of uneven sample counts
K = len(SIZES)


def micro_batch_rows(first, count):
    """Row indices of micro-batches first .. first+count-1 of the global batch."""
    ends = np.cumsum([0] + SIZES)
    return [np.arange(ends[i], ends[i + 1]) for i in range(first, first + count)]


def train_code(dp, x, y, rows):
    """The README's accumulation loop: no_sync for all but the last micro-batch, losses not scaled."""
    for i, r in enumerate(rows):
        with dp.no_sync() if i < len(rows) - 1 else contextlib.nullcontext():
            loss_of(dp, x[r], y[r]).backward()
    return [p.grad.copy() for p in dp.parameters()]


@pytest.mark.parametrize("deterministic", [False, True])
def test_same_code_gives_the_full_batch_gradient_in_both_modes(deterministic):
    c = comm()
    x, y = make_data(sum(SIZES), seed=11)
    per_rank = K // c.size
    dp = DataParallel(make_model(), c, deterministic=deterministic, micro_batches=K)
    grads = train_code(dp, x, y, micro_batch_rows(c.rank * per_rank, per_rank))
    expected = full_batch_grads(x, y)
    worst = max(float(np.max(np.abs(g - e))) for g, e in zip(grads, expected))
    assert_everywhere(worst < 1e-13, f"gradient differs from the full batch's by {worst:.3g}")
    assert_same_on_all_ranks(grads, "gradients differ between ranks")


def test_deterministic_uneven_micro_batches_are_the_bits_of_one_process():
    c = comm()
    x, y = make_data(sum(SIZES), seed=12)
    reference = train_code(DataParallel(make_model(), SerialComm(), deterministic=True, micro_batches=K),
                           x, y, micro_batch_rows(0, K))
    per_rank = K // c.size
    dp = DataParallel(make_model(), c, deterministic=True, micro_batches=K)
    grads = train_code(dp, x, y, micro_batch_rows(c.rank * per_rank, per_rank))
    assert_everywhere(all(np.array_equal(g, r) for g, r in zip(grads, reference)),
                      "deterministic gradients depend on the world size")


def test_ranks_with_unequal_micro_batch_counts_in_the_default_mode():
    c = comm()
    x, y = make_data(sum(SIZES), seed=13)
    counts = [K // c.size + (r < K % c.size) for r in range(c.size)]
    counts[0], counts[-1] = counts[0] + 1, counts[-1] - 1  # deliberately unequal when size > 1
    if c.size == 1:
        counts = [K]
    dp = DataParallel(make_model(), c, micro_batches=K)
    grads = train_code(dp, x, y, micro_batch_rows(sum(counts[:c.rank]), counts[c.rank]))
    expected = full_batch_grads(x, y)
    assert_everywhere(all(np.allclose(g, e, rtol=1e-12, atol=1e-14) for g, e in zip(grads, expected)),
                      "unequal micro-batch counts are not weighted by samples")


@pytest.mark.parametrize("deterministic", [False, True])
def test_a_step_with_the_wrong_number_of_micro_batches_fails_on_every_rank(deterministic):
    c = comm()
    x, y = make_data(4, seed=8)
    dp = DataParallel(make_model(), c, deterministic=deterministic, micro_batches=K)
    with pytest.raises(RuntimeError, match=f"micro_batches={K}"):
        loss_of(dp, x, y).backward()  # one micro-batch per rank, not K over all ranks


@pytest.mark.parametrize("deterministic", [False, True])
def test_the_step_after_a_refused_one_is_weighted_by_its_own_samples(deterministic):
    c = comm()
    x, y = make_data(sum(SIZES), seed=14)
    dp = DataParallel(make_model(), c, deterministic=deterministic, micro_batches=K)
    with pytest.raises(RuntimeError, match=f"micro_batches={K}"):
        loss_of(dp, x[:4], y[:4]).backward()
    for p in dp.parameters():
        p.grad[...] = 0
    per_rank = K // c.size
    grads = train_code(dp, x, y, micro_batch_rows(c.rank * per_rank, per_rank))
    expected = full_batch_grads(x, y)
    assert_everywhere(all(np.allclose(g, e, rtol=1e-12, atol=1e-14) for g, e in zip(grads, expected)),
                      "the refused step's samples leaked into the next step")
