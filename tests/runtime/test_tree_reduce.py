"""The micro-batch summation tree is the same for every supported split over ranks."""

import numpy as np
import pytest

from mpigrad.runtime.tree_reduce import fold, push, supported_world_sizes


def tree_sum(leaves, ranks):
    """What `ranks` ranks compute: each folds its block locally, then the blocks merge in rank order."""
    per = len(leaves) // ranks
    blocks = []
    for r in range(ranks):
        stack = []
        for leaf in leaves[r * per:(r + 1) * per]:
            push(stack, 0, [leaf.copy()])
        blocks.append(fold(stack)[0])
    stack = []
    for block in blocks:
        push(stack, 0, [block])
    return fold(stack)[0]


@pytest.mark.parametrize("micro_batches", [1, 4, 6, 8, 12, 16])
def test_every_supported_world_size_gives_the_same_bits(micro_batches):
    rng = np.random.default_rng(micro_batches)
    leaves = [rng.standard_normal(257).astype(np.float32) * 10.0 ** rng.integers(-3, 4) for _ in range(micro_batches)]
    reference = tree_sum(leaves, 1)
    assert np.allclose(reference, np.sum(leaves, axis=0, dtype=np.float64), rtol=1e-5, atol=1e-3)
    for ranks in supported_world_sizes(micro_batches):
        assert np.array_equal(tree_sum(leaves, ranks), reference), ranks


def test_supported_world_sizes():
    assert supported_world_sizes(8) == [1, 2, 4, 8]
    assert supported_world_sizes(12) == [1, 3, 6, 12]
    assert supported_world_sizes(6) == [1, 3, 6]


def test_an_unsupported_split_would_change_the_bits():
    rng = np.random.default_rng(0)
    leaves = [rng.standard_normal(1000).astype(np.float32) for _ in range(6)]
    assert not np.array_equal(tree_sum(leaves, 2), tree_sum(leaves, 1))  # why 2 x 3 is refused
