"""Frozen parameters and parameters no rank differentiated do not move under DataParallel, in every
mode; one differentiated on some ranks only is averaged and moves on all; replicas stay identical."""

import numpy as np
import pytest

from mpigrad.autograd import cross_entropy, nn
from mpigrad.optim import Adam
from mpigrad.runtime import DataParallel, ZeroOptimizer

from mpi_helpers import assert_everywhere, assert_same_on_all_ranks, comm, make_data

pytestmark = pytest.mark.mpi


class Heads(nn.Module):
    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.body = nn.Linear(5, 8, rng=rng, dtype=np.float64)
        self.head_a = nn.Linear(8, 3, rng=rng, dtype=np.float64)
        self.head_b = nn.Linear(8, 3, rng=rng, dtype=np.float64)
        self.unused = nn.Linear(8, 3, rng=rng, dtype=np.float64)

    def forward(self, x, head):
        return getattr(self, head)(self.body(x).tanh())


@pytest.mark.parametrize("mode", ["replicated", "zero", "deterministic"])
def test_frozen_and_unused_parameters_stay_and_replicas_agree(mode):
    c = comm()
    model = Heads()
    model.body.weight.requires_grad = False  # fine-tuning: the body's weight is frozen
    dp = DataParallel(model, c, deterministic=mode == "deterministic", bucket_mb=1e-4)
    hyper = dict(lr=0.1, weight_decay=0.01)
    opt = ZeroOptimizer(dp, Adam, **hyper) if mode == "zero" else Adam(dp.parameters(), **hyper)
    before = {name: p.data.copy() for name, p in dp.named_parameters()}
    head = "head_b" if c.rank == 1 else "head_a"  # head_b trains only where rank 1 exists
    x, y = make_data(4, seed=c.rank)
    for _ in range(3):
        opt.zero_grad()
        cross_entropy(dp(x, head), y).backward()
        opt.step()
    moved = {name: not np.array_equal(p.data, before[name]) for name, p in dp.named_parameters()}
    assert_everywhere(not moved["body.weight"], "a frozen parameter moved")
    assert_everywhere(not moved["unused.weight"] and not moved["unused.bias"], "a parameter without gradient moved")
    assert_everywhere(moved["body.bias"] and moved["head_a.weight"], "trained parameters did not move")
    assert_everywhere(moved["head_b.weight"] == (c.size > 1), "head_b moves exactly when some rank trains it")
    assert_everywhere(dp.module.unused.weight.grad is None, "an unused parameter's grad is not None")
    assert_same_on_all_ranks([p.data for p in dp.parameters()], "replicas differ")


def test_an_unused_parameter_trains_again_when_used():
    c = comm()
    dp = DataParallel(Heads(), c)
    opt = Adam(dp.parameters(), lr=0.1)
    x, y = make_data(4, seed=c.rank)
    for head in ["head_a", "head_b", "head_b"]:
        opt.zero_grad()
        cross_entropy(dp(x, head), y).backward()
        opt.step()
    steps = dict(zip([n for n, _ in dp.named_parameters()], opt.param_steps))
    assert_everywhere(steps["head_a.weight"] == 1 and steps["head_b.weight"] == 2 and steps["unused.weight"] == 0,
                      f"per-parameter update counts are wrong: {steps}")
    assert_everywhere(all(p.grad is None or np.shares_memory(p.grad, g.grad) for g in dp.groups for p in g.params),
                      "a .grad left the flat buffer")
