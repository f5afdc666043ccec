"""The scaling model's equations, checked against values worked out by hand."""

import math

import pytest

from mpigrad.scaling_model import (Job, Link, Machine, allreduce_across, allreduce_time, compute_slowdown, exposed_wait, predict,
                                   rabenseifner, recursive_doubling, ring, step_time, wire_link)

LINK = Link(alpha=10e-6, beta=1e-9)  # 10 us, 1 GB/s


def test_the_three_algorithms_costs():
    n = 8e6
    assert ring(4, n, LINK) == pytest.approx(6 * 10e-6 + 1.5 * n * 1e-9)
    assert recursive_doubling(4, n, LINK) == pytest.approx(2 * (10e-6 + n * 1e-9))
    assert rabenseifner(4, n, LINK) == pytest.approx(4 * 10e-6 + 1.5 * n * 1e-9)


def test_allreduce_takes_the_cheapest_and_nothing_alone():
    assert allreduce_time(1, 1e9, LINK) == 0.0
    assert allreduce_time(64, 8, LINK) == pytest.approx(recursive_doubling(64, 8, LINK))  # latency-bound
    assert allreduce_time(64, 64e6, LINK) == pytest.approx(rabenseifner(64, 64e6, LINK))  # bandwidth-bound
    assert allreduce_time(3, 64e6, LINK) == pytest.approx(rabenseifner(3, 64e6, LINK))  # ceil(log2 3) = 2 steps


def test_the_network_limits_once_ranks_span_nodes_and_its_nic_is_shared():
    machine = Machine(cores_per_node=4, intra=Link(1e-6, 0.1e-9), inter=Link(20e-6, 1e-9))
    assert wire_link(4, 4, machine) == machine.intra
    shared = wire_link(8, 4, machine)
    assert shared.alpha == 20e-6 and shared.beta == pytest.approx(4e-9)
    assert wire_link(8, 4, machine, shared=False).beta == pytest.approx(1e-9)  # a ring: one flow per NIC
    n = 64e6
    assert allreduce_across(8, 4, machine, n) == pytest.approx(ring(8, n, Link(20e-6, 1e-9)))
    assert allreduce_across(8, 4, machine, 64) == pytest.approx(recursive_doubling(8, 64, shared))


def test_exposed_wait_runs_buckets_in_order_one_at_a_time():
    # ready at 1, 2, 9; take 3 each; backward ends at 10: finishes 4, 7, 12 -> 2 exposed
    assert exposed_wait([1, 2, 9], [3, 3, 3], 10) == pytest.approx(2)
    assert exposed_wait([1, 2], [1, 1], 10) == 0.0


def job(**changes):
    base = dict(micro_batches=8, micro_batch=4, compute_per_micro_batch=0.01, rest_of_step=0.002,
                ready=[(4e6, 0.004), (4e6, 0.008)], backward=0.008)
    return Job(**{**base, **changes})


def test_step_time_at_world_one_is_compute_and_rest():
    machine = Machine(cores_per_node=4, intra=LINK, inter=LINK)
    t, wait = step_time(job(), machine, 1, 4, 8)
    assert t == pytest.approx(8 * 0.01 + 0.002) and wait == 0.0


def test_strong_and_weak_efficiency_follow_their_definitions():
    machine = Machine(cores_per_node=4, intra=Link(1e-6, 1e-12), inter=Link(1e-6, 1e-12))  # a near-free network
    strong = predict(job(), machine, 4, "strong", 4, measured_world=1)
    weak = predict(job(), machine, 4, "weak", 4, measured_world=1)
    # the optimizer's 2 ms is replicated on every rank (Amdahl): 82 ms / (4 x 22 ms)
    assert strong["efficiency"] == pytest.approx(0.082 / (4 * 0.022), abs=0.01)
    assert weak["efficiency"] == pytest.approx(1.0, abs=0.02)
    slow = Machine(cores_per_node=4, intra=Link(1e-6, 1e-12), inter=Link(50e-6, 1e-9))  # 1 GB/s between nodes
    far = predict(job(), slow, 64, "weak", 4, measured_world=1)
    t1, _ = step_time(job(), slow, 1, 4, 8)
    assert far["efficiency"] == pytest.approx(t1 / far["step_time"]) and far["efficiency"] < 0.9
    assert far["nodes"] == 16 and far["feasible"]
    assert not predict(job(), slow, 64, "strong", 4, measured_world=1)["feasible"]  # 64 ranks > 32 samples


def test_sixteen_bit_wire_halves_the_bandwidth_term():
    machine = Machine(cores_per_node=1, intra=LINK, inter=Link(0.0, 1e-9))
    slow = job(ready=[(64e6, 0.008)], compute_per_micro_batch=0.001, backward=0.008)
    full, wait32 = step_time(slow, machine, 2, 1, 1)
    half, wait16 = step_time(slow, machine, 2, 1, 1, wire_bytes=2)
    # one bucket, ready as backward ends: all of it exposed; 2 ranks: one exchange, alpha + n beta
    assert wait32 == pytest.approx(10e-6 + 64e6 * 1e-9)
    assert wait16 == pytest.approx(10e-6 + 32e6 * 1e-9)
    assert full - half == pytest.approx(wait32 - wait16)


def test_oversubscribed_cores_are_time_shared_and_contention_grows_from_the_measured_point():
    machine = Machine(cores_per_node=2, intra=LINK)
    assert compute_slowdown(job(), machine, 4, 1) == pytest.approx(2.0)
    measured = job(measured_ranks_per_node=2, contention=1.2)
    assert compute_slowdown(measured, machine, 2, 1) == pytest.approx(1.2)
    assert compute_slowdown(measured, machine, 1, 1) == pytest.approx(1.0)
    threaded = Machine(cores_per_node=2, intra=LINK, thread_speedup={1: 1.0, 2: 1.6})
    assert compute_slowdown(job(), threaded, 1, 2) == pytest.approx(1 / 1.6)
    assert math.isclose(compute_slowdown(job(), threaded, 2, 2), 2 / 1.6)  # 4 threads on 2 cores
