"""DataParallel on the less common shapes of a step: a dtype group smaller than the world, two outputs
using different parameters in one backward, a parameter whose only path gives no gradient, and the
global norm after the gradients changed."""

import numpy as np
import pytest

from mpigrad.autograd import Variable, binary_cross_entropy_with_logits, cross_entropy, nn
from mpigrad.optim import SGD, Adam
from mpigrad.runtime import DataParallel, ZeroOptimizer
from mpigrad.runtime.comm import SerialComm

from mpi_helpers import assert_everywhere, assert_same_on_all_ranks, comm, make_data, make_model, shard

pytestmark = pytest.mark.mpi

MODES = ["replicated", "zero", "deterministic"]


class ScaledMLP(nn.Module):
    """A float32 MLP and one float64 scalar: the float64 group has a single element."""

    def __init__(self):
        super().__init__()
        self.body = make_model(dtype=np.float32)
        self.scale = Variable(np.array(1.5), requires_grad=True)

    def forward(self, x):
        return self.body(x) * self.scale


def test_a_dtype_group_smaller_than_the_world_gives_the_world_1_bits():
    c = comm()
    K = 2 * c.size
    x, y = make_data(4 * K, seed=7)
    micro = np.array_split(np.arange(len(y)), K)

    def train(dp, batches):
        opt = Adam(dp.parameters(), lr=0.01)
        for _ in range(2):
            opt.zero_grad()
            for i, rows in enumerate(batches):
                if i < len(batches) - 1:
                    with dp.no_sync():
                        cross_entropy(dp(x[rows].astype(np.float32)), y[rows]).backward()
                else:
                    cross_entropy(dp(x[rows].astype(np.float32)), y[rows]).backward()
            opt.step()
        return [p.data.copy() for p in dp.parameters()]

    reference = train(DataParallel(ScaledMLP(), SerialComm(), deterministic=True, micro_batches=K), micro)
    mine = micro[c.rank * 2:c.rank * 2 + 2]
    got = train(DataParallel(ScaledMLP(), c, deterministic=True, micro_batches=K), mine)
    assert_everywhere(all(np.array_equal(a, b) for a, b in zip(got, reference)), "not the world-1 bits")


class Heads(nn.Module):
    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.body = nn.Linear(5, 8, rng=rng, dtype=np.float64)
        self.head_a = nn.Linear(8, 3, rng=rng, dtype=np.float64)
        self.head_b = nn.Linear(8, 3, rng=rng, dtype=np.float64)

    def forward(self, x, head):
        return getattr(self, head)(self.body(x).tanh())


@pytest.mark.parametrize("mode", MODES)
def test_two_outputs_using_different_heads_in_one_backward_are_weighted_by_samples(mode):
    c = comm()
    xa, ya = make_data(4 * c.size, seed=8)
    xb, yb = make_data(2 * c.size, seed=9)
    a, b = np.array_split(np.arange(len(ya)), c.size)[c.rank], np.array_split(np.arange(len(yb)), c.size)[c.rank]
    dp = DataParallel(Heads(), c, deterministic=mode == "deterministic", bucket_mb=1e-4)
    (cross_entropy(dp(xa[a], "head_a"), ya[a]) + cross_entropy(dp(xb[b], "head_b"), yb[b])).backward()
    model = Heads()  # one process, every sample: the mean over all 6 P samples
    n_a, n_b = len(ya), len(yb)
    ((cross_entropy(model(xa, "head_a"), ya) * n_a + cross_entropy(model(xb, "head_b"), yb) * n_b)
     / (n_a + n_b)).backward()
    close = all(np.allclose(p.grad, q.grad, rtol=1e-12, atol=1e-14) for p, q in zip(dp.parameters(), model.parameters()))
    assert_everywhere(close, "two outputs with different heads are not weighted 4/6 and 2/6 by samples")


class TargetParam(nn.Module):
    """`target` feeds only the targets of a BCE loss, whose backward gives targets no gradient."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(5, 1, rng=np.random.default_rng(0), dtype=np.float64)
        self.target = Variable(np.full(1, 0.7), requires_grad=True)

    def forward(self, x):
        return binary_cross_entropy_with_logits(self.body(x)[:, 0], self.target * np.ones(len(x)))


@pytest.mark.parametrize("mode", MODES)
def test_a_parameter_that_gets_no_gradient_has_none_and_does_not_move(mode):
    c = comm()
    x, _ = make_data(4, seed=c.rank)
    dp = DataParallel(TargetParam(), c, deterministic=mode == "deterministic")
    hyper = dict(lr=0.1, momentum=0.9, weight_decay=0.1)
    opt = ZeroOptimizer(dp, SGD, **hyper) if mode == "zero" else SGD(dp.parameters(), **hyper)
    for _ in range(2):
        opt.zero_grad()
        dp(x).backward()
        opt.step()
    target = dp.module.target
    assert_everywhere(target.grad is None and target.data[0] == 0.7, f"target moved: {target.data}, grad {target.grad}")


@pytest.mark.parametrize("mode", ["replicated", "deterministic"])
def test_the_global_norm_follows_zero_grad_and_a_clip(mode):
    c = comm()
    x, y = make_data(4 * c.size, seed=10)
    mine = shard(len(y), c.rank, c.size)
    dp = DataParallel(make_model(), c, deterministic=mode == "deterministic")
    opt = Adam(dp.parameters(), lr=0.1)
    cross_entropy(dp(x[mine]), y[mine]).backward()
    first = opt.clip_grad_norm(0.1, total_norm=dp.grad_norm())
    second = dp.grad_norm()
    opt.zero_grad()
    third = dp.grad_norm()
    assert_everywhere(first > 0.1 and abs(second - 0.1) < 1e-6 and third == 0.0,
                      f"norms after backward, a clip to 0.1 and zero_grad: {first}, {second}, {third}")
    assert_same_on_all_ranks([np.array([first, second, third])], "ranks see different norms")
