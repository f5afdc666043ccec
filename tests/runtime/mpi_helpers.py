"""Shared pieces of the MPI tests: every check is agreed on by all ranks, so no rank hangs."""

import numpy as np

from mpigrad.autograd import cross_entropy, nn
from mpigrad.runtime import init


def comm():
    return init()


def assert_everywhere(ok, message):
    """Fail on every rank if the condition fails on any rank (a lone failure would hang the rest)."""
    verdicts = comm().allgather_obj(bool(ok))
    assert all(verdicts), f"{message}: failed on rank(s) {[r for r, v in enumerate(verdicts) if not v]}"


def assert_same_on_all_ranks(arrays, message):
    """Bitwise equality of arrays across ranks."""
    blob = b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)
    everyone = comm().allgather_obj(blob)
    assert_everywhere(all(b == everyone[0] for b in everyone), message)


def make_model(seed=0, dtype=np.float64, sizes=(5, 16, 16, 3)):
    """The same MLP on every rank (same seed), float64 so comparisons can be tight."""
    return nn.MLP(list(sizes), activation="tanh", rng=np.random.default_rng(seed), dtype=dtype)


def make_data(n, seed=1, features=5, classes=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, features)), rng.integers(0, classes, n)


def loss_of(model, x, y):
    return cross_entropy(model(x), y)


def accumulate(dp, x, y, parts):
    """Backward over each micro-batch of (x, y); only the last pass synchronises."""
    for i, rows in enumerate(np.array_split(np.arange(len(x)), parts)):
        if i < parts - 1:
            with dp.no_sync():
                loss_of(dp, x[rows], y[rows]).backward()
        else:
            loss_of(dp, x[rows], y[rows]).backward()
    return [p.grad.copy() for p in dp.parameters()]


def full_batch_grads(x, y, seed=0):
    """Gradients of the mean loss over all samples, computed by one process."""
    model = make_model(seed)
    loss_of(model, x, y).backward()
    return [p.grad.copy() for p in model.parameters()]


def shard(n, rank, size):
    """Contiguous, possibly unequal, block of range(n) for this rank."""
    return np.array_split(np.arange(n), size)[rank]

