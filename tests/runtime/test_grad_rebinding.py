"""A .grad set to None or replaced by the user is bound to its flat-buffer view again before backward
writes it (the replaced array's values copied in), in every mode: replicas never drift and ZeRO-1 moves."""

import numpy as np
import pytest

from mpigrad.autograd import cross_entropy, nn
from mpigrad.optim import Adam
from mpigrad.runtime import DataParallel, ZeroOptimizer

from mpi_helpers import assert_everywhere, assert_same_on_all_ranks, comm, full_batch_grads, make_data, make_model, shard

pytestmark = pytest.mark.mpi

MODES = ["replicated", "zero", "deterministic"]


def wrapped(mode):
    dp = DataParallel(make_model(), comm(), deterministic=mode == "deterministic", bucket_mb=1e-4)
    opt = ZeroOptimizer(dp, Adam, lr=0.05) if mode == "zero" else Adam(dp.parameters(), lr=0.05)
    return dp, opt


def in_flat_buffers(dp):
    return all(p.grad is None or np.shares_memory(p.grad, g.grad) for g in dp.groups for p in g.params)


@pytest.mark.parametrize("mode", MODES)
def test_grad_set_to_none_every_step_trains_like_zero_grad(mode):
    """PyTorch's zero_grad(set_to_none=True) written by hand: the same parameters as opt.zero_grad()."""
    c = comm()
    x, y = make_data(12, seed=3)
    rows = shard(12, c.rank, c.size)
    results = []
    for clear in ["none", "zero_grad"]:
        dp, opt = wrapped(mode)
        for _ in range(3):
            if clear == "none":
                for p in dp.parameters():
                    p.grad = None
            else:
                opt.zero_grad()
            cross_entropy(dp(x[rows]), y[rows]).backward()
            opt.step()
        assert_everywhere(in_flat_buffers(dp), f"{clear}: a .grad left the flat buffers")
        results.append([p.data.copy() for p in dp.parameters()])
    assert_same_on_all_ranks(results[0], "replicas differ after p.grad = None steps")
    close = all(np.allclose(a, b, rtol=1e-12, atol=1e-14) for a, b in zip(*results))
    assert_everywhere(close, "p.grad = None trains differently from zero_grad()")


@pytest.mark.parametrize("mode", MODES)
def test_a_replaced_grad_is_copied_into_the_view_and_the_average_added(mode):
    """p.grad = array (the same on every rank): after backward .grad is that array + the averaged gradient."""
    c = comm()
    x, y = make_data(12, seed=4)
    rows = shard(12, c.rank, c.size)
    dp, opt = wrapped(mode)
    start = [np.full(p.shape, 0.25) for p in dp.parameters()]
    for p, s in zip(dp.parameters(), start):
        p.grad = s.copy()
    cross_entropy(dp(x[rows]), y[rows]).backward()
    expected = [s + g for s, g in zip(start, full_batch_grads(x, y))]
    got = [p.grad for p in dp.parameters()]
    assert_everywhere(in_flat_buffers(dp), "a replaced .grad was not bound to the flat buffers again")
    assert_everywhere(all(np.allclose(a, b, rtol=1e-12, atol=1e-14) for a, b in zip(got, expected)),
                      "a replaced .grad does not hold the array plus the averaged gradient")


@pytest.mark.parametrize("mode", MODES)
def test_grads_kept_across_steps_accumulate_like_eager(mode):
    """No zero_grad between two synchronising backwards (one with two no_sync micro-batches):
    .grad is the first step's average plus the second's, as one process accumulating."""
    c = comm()
    x, y = make_data(24, seed=5)
    dp, _ = wrapped(mode)
    for half in (x[:12], y[:12]), (x[12:], y[12:]):
        rows = shard(12, c.rank, c.size)
        parts = np.array_split(rows, 2)
        with dp.no_sync():
            cross_entropy(dp(half[0][parts[0]]), half[1][parts[0]]).backward()
        cross_entropy(dp(half[0][parts[1]]), half[1][parts[1]]).backward()
    expected = [a + b for a, b in zip(full_batch_grads(x[:12], y[:12]), full_batch_grads(x[12:], y[12:]))]
    got = [p.grad for p in dp.parameters()]
    assert_everywhere(all(np.allclose(a, b, rtol=1e-12, atol=1e-14) for a, b in zip(got, expected)),
                      "gradients kept across steps are not the eager sum")


def test_different_grads_written_on_different_ranks_are_refused_on_every_rank():
    c = comm()
    if c.size == 1:
        pytest.skip("needs two ranks")
    dp, _ = wrapped("replicated")
    x, y = make_data(4, seed=c.rank)
    first = next(iter(dp.parameters()))
    first.grad = np.full(first.shape, float(c.rank))
    with pytest.raises(RuntimeError, match="differ"):
        cross_entropy(dp(x), y).backward()


def test_zero_steps_on_an_array_assigned_after_backward():
    """p.grad = array, then step() with no backward: ZeRO-1 updates its shard from that array."""
    c = comm()
    results = []
    for mode in ["replicated", "zero"]:
        dp, opt = wrapped(mode)
        for p in dp.parameters():
            p.grad = np.full(p.shape, 0.5)
        opt.step()
        results.append([p.data.copy() for p in dp.parameters()])
    assert_everywhere(all(np.array_equal(a, b) for a, b in zip(*results)), "ZeRO-1 did not step on the assigned arrays")


def test_grad_is_none_before_the_first_backward_then_the_view():
    """The contract: .grad is None before any backward (as an unwrapped model's); then a flat view."""
    dp, _ = wrapped("replicated")
    assert_everywhere(all(p.grad is None for p in dp.parameters()), "a .grad is set before any backward")
    x, y = make_data(4, seed=comm().rank)
    cross_entropy(dp(x), y).backward()
    assert_everywhere(all(p.grad is not None for p in dp.parameters()) and in_flat_buffers(dp), "not the views")
