"""Deterministic gradient reduction: the same binary tree over micro-batch index at every world size.

Micro-batch gradients are merged like a binary counter: two partial sums of equal size (2^j
micro-batches each) are added as soon as both exist. A rank that owns an aligned block of
2^j micro-batches therefore ends with exactly one subtree of the global tree; the ranks' subtrees
are gathered and merged by the same counter in rank order. The additions, and so the bits, are
the same whether one process or many compute them.
"""

import time

import numpy as np


def push(stack, level, arrays):
    """Add a partial sum at `level`; merge equal levels pairwise (left + right) like a carry."""
    while stack and stack[-1][0] == level:
        _, left = stack.pop()
        for a, b in zip(left, arrays):
            np.add(a, b, out=a)
        arrays, level = left, level + 1
    stack.append((level, arrays))


def fold(stack):
    """Merge what the counter left (a non-power-of-two count) from the right: s0 + (s1 + (s2 + ...))."""
    _, total = stack.pop()
    while stack:
        _, left = stack.pop()
        for a, b in zip(left, total):
            np.add(a, b, out=a)
        total = left
    return total


def supported_world_sizes(micro_batches, up_to=1024):
    """World sizes P whose ranks each own an aligned power-of-two block of the micro-batches."""
    return [p for p in range(1, min(micro_batches, up_to) + 1)
            if micro_batches % p == 0 and (p == 1 or _is_power_of_two(micro_batches // p))]


def _is_power_of_two(n):
    return n > 0 and n & (n - 1) == 0


class TreeReducer:
    """Averages micro-batch gradients over all ranks with a fixed summation tree."""

    def __init__(self, groups, comm):
        self.groups = groups
        self.comm = comm
        self._stack = []
        self._count = 0
        self.comm_time = 0.0

    def micro_batch_done(self):
        """Take this backward's gradients out of the buffers (which restart at zero) into the tree."""
        if self._stack and self._stack[-1][0] == 0:  # a right leaf: add it to its left one, no copy
            _, left = self._stack.pop()
            for a, g in zip(left, self.groups):
                np.add(a, g.grad, out=a)
            push(self._stack, 1, left)
        else:
            push(self._stack, 0, [g.grad.copy() for g in self.groups])
        for g in self.groups:
            g.grad.fill(0)
        self._count += 1

    def finish(self):
        """Merge all ranks' subtrees, divide by the number of micro-batches, write the buffers."""
        local, count = fold(self._stack), self._count
        self._count = 0
        start = time.perf_counter()
        counts = self.comm.allgather_obj(count)
        _check_counts(counts)
        for g, partial in zip(self.groups, local):
            np.divide(self._merge_ranks(partial), len(counts) * count, out=g.grad)
        self.comm_time = time.perf_counter() - start

    def _merge_ranks(self, partial):
        if self.comm.size == 1:
            return partial
        rows = self.comm.Allgather(partial)
        stack = []
        for row in rows:
            push(stack, 0, [row])
        return fold(stack)[0]


def _check_counts(counts):
    if len(set(counts)) != 1:
        raise RuntimeError(f"deterministic mode: ranks ran different numbers of micro-batches {counts}")
    per_rank = counts[0]
    if per_rank == 0:
        raise RuntimeError("deterministic mode: no micro-batch ran backward this step")
    if len(counts) > 1 and not _is_power_of_two(per_rank):
        raise ValueError(f"deterministic mode needs a power-of-two number of micro-batches per rank "
                         f"when world size > 1, got {per_rank}")
