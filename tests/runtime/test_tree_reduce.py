"""The micro-batch summation tree is the same however the micro-batches are split over ranks."""

import numpy as np
import pytest

from mpigrad.runtime.tree_reduce import fold, push


def leaves_of(count, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(257).astype(np.float32) * 10.0 ** rng.integers(-3, 4) for _ in range(count)]


def tree_sum(leaves, bounds, use_global_index=True):
    """What ranks owning leaves[bounds[r]:bounds[r+1]] compute: local nodes, then one merge in rank order."""
    nodes = []
    for lo, hi in zip(bounds, bounds[1:]):
        stack = []
        for i in range(lo, hi):
            push(stack, 0, i if use_global_index else i - lo, [leaves[i].copy()])
        nodes += stack
    stack = []
    for node in nodes:
        push(stack, *node)
    return fold(stack)[0]


@pytest.mark.parametrize("micro_batches", range(1, 25))
def test_every_world_size_that_divides_the_count_gives_the_same_bits(micro_batches):
    leaves = leaves_of(micro_batches, seed=micro_batches)
    reference = tree_sum(leaves, [0, micro_batches])
    assert np.allclose(reference, np.sum(leaves, axis=0, dtype=np.float64), rtol=1e-5, atol=1e-3)
    for ranks in (p for p in range(2, micro_batches + 1) if micro_batches % p == 0):
        per = micro_batches // ranks
        assert np.array_equal(tree_sum(leaves, list(range(0, micro_batches + 1, per))), reference), ranks


def test_any_contiguous_split_gives_the_same_bits():
    leaves = leaves_of(13, seed=1)
    reference = tree_sum(leaves, [0, 13])
    rng = np.random.default_rng(2)
    for _ in range(50):
        cuts = sorted(rng.choice(np.arange(1, 13), size=rng.integers(1, 6), replace=False).tolist())
        assert np.array_equal(tree_sum(leaves, [0, *cuts, 13]), reference), cuts


def test_the_tree_is_the_binary_counter_over_the_global_index():
    a, b, c, d, e, f = leaves_of(6, seed=3)
    expected = ((a + b) + (c + d)) + (e + f)
    assert np.array_equal(tree_sum([a, b, c, d, e, f], [0, 3, 6]), expected)


def test_blocks_counted_from_their_own_start_would_change_the_bits():
    leaves = leaves_of(6, seed=0)
    # 2 ranks x 3: local counters that forget where their block starts build another tree
    assert not np.array_equal(tree_sum(leaves, [0, 3, 6], use_global_index=False), tree_sum(leaves, [0, 6]))
