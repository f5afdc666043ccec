"""ZeroOptimizer keeps DataParallel's and the Optimizer's contracts: every .grad is the average on every
rank, the whole Optimizer API works, and its state moves to and from a replicated optimizer."""

import numpy as np
import pytest

from mpigrad.optim import Adam
from mpigrad.runtime import DataParallel, ZeroOptimizer

from mpi_helpers import assert_everywhere, assert_same_on_all_ranks, comm, loss_of, make_data, make_model, shard

pytestmark = pytest.mark.mpi
HYPER = dict(lr=1e-2, weight_decay=1e-3)


def backward_once(zero, deterministic=False):
    c = comm()
    x, y = make_data(5 * c.size, seed=31)
    dp = DataParallel(make_model(), c, bucket_mb=1e-3, deterministic=deterministic)
    opt = ZeroOptimizer(dp, Adam, **HYPER) if zero else Adam(dp.parameters(), **HYPER)
    mine = shard(len(y), c.rank, c.size)
    opt.zero_grad()
    loss_of(dp, x[mine], y[mine]).backward()
    return dp, opt


@pytest.mark.parametrize("deterministic", [False, True])
def test_every_grad_holds_the_average_on_every_rank(deterministic):
    zero_dp, _ = backward_once(True, deterministic)
    replicated_dp, _ = backward_once(False, deterministic)
    assert_everywhere(all(np.array_equal(a.grad, b.grad) for a, b in zip(zero_dp.parameters(), replicated_dp.parameters())),
                      "a ZeRO .grad is not the averaged gradient")
    assert_same_on_all_ranks([p.grad for p in zero_dp.parameters()], "ZeRO gradients differ between ranks")


def test_the_whole_optimizer_api_gives_the_replicated_results():
    results = []
    for zero in (True, False):
        dp, opt = backward_once(zero)
        norm = opt.grad_norm()
        clipped = opt.clip_grad_norm(0.1)
        opt.clip_grad_value(-0.01, 0.01)
        opt.learning_rate = 5e-3
        opt.step()
        opt.zero_grad()
        results.append((norm, clipped, opt.learning_rate, [p.data.copy() for p in dp.parameters()],
                        [p.grad.copy() for p in dp.parameters()]))
    z, r = results
    assert_everywhere(z[0] == r[0] and z[1] == r[1] and z[2] == r[2], f"norms or lr differ: {z[:3]} vs {r[:3]}")
    assert_everywhere(all(np.array_equal(a, b) for a, b in zip(z[3], r[3])), "ZeRO step differs from replicated")
    assert_everywhere(all(not g.any() for g in z[4]), "zero_grad left gradients")


def test_state_moves_between_zero_and_replicated():
    dp, zero = backward_once(True)
    zero.step()
    state = zero.state_dict()  # every rank: a collective
    _, replicated = backward_once(False)
    replicated.load_state_dict(state)
    back_dp, back = backward_once(True)
    back.load_state_dict(replicated.state_dict())
    assert_everywhere(state.keys() == replicated.state_dict().keys(), "state formats differ")
    again = back.state_dict()
    same = all(np.array_equal(state["state"][i][k], again["state"][i][k]) for i in state["state"] for k in state["state"][i])
    assert_everywhere(same and again["param_steps"] == state["param_steps"], "state changed through a replicated optimizer")


def test_deterministic_zero_gives_the_bits_of_one_replicated_process():
    from mpigrad.runtime.comm import SerialComm
    c = comm()
    K = 12
    x, y = make_data(2 * K, seed=33)

    def train(dp, opt, rows):
        for _ in range(2):
            opt.zero_grad()
            for i, r in enumerate(rows):
                if i < len(rows) - 1:
                    with dp.no_sync():
                        loss_of(dp, x[r], y[r]).backward()
                else:
                    loss_of(dp, x[r], y[r]).backward()
            opt.clip_grad_norm(0.1, total_norm=dp.grad_norm())
            opt.step()
        return [p.data.copy() for p in dp.parameters()]

    micro = np.array_split(np.arange(2 * K), K)
    single_dp = DataParallel(make_model(), SerialComm(), deterministic=True, micro_batches=K)
    reference = train(single_dp, Adam(single_dp.parameters(), **HYPER), micro)
    dp = DataParallel(make_model(), c, deterministic=True, micro_batches=K)
    per_rank = K // c.size
    got = train(dp, ZeroOptimizer(dp, Adam, **HYPER), micro[c.rank * per_rank:(c.rank + 1) * per_rank])
    assert_everywhere(all(np.array_equal(a, b) for a, b in zip(got, reference)),
                      "deterministic ZeRO-1 differs from one replicated process")
