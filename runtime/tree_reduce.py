"""Deterministic gradient reduction: the same binary tree over micro-batch index at every world size.

A node is the partial sum of 2^level micro-batches starting at global index `start` (a multiple
of 2^level). It is added to its left neighbour of the same level when that one starts at a
multiple of 2^(level+1): the two are siblings of one fixed tree over the global indices (a
binary counter). A rank that owns a contiguous block of micro-batches ends with a few aligned
nodes (one when the block is an aligned power of two); all ranks' nodes are gathered and merged
by the same rule in index order, and what is left is folded from the right. The additions, and
so the bits, are the same however the micro-batches are split over the ranks.
"""

import time

import numpy as np


def push(stack, level, start, arrays):
    """Add the node (level, start, arrays); merge it with its left sibling while there is one."""
    while stack and stack[-1][0] == level and stack[-1][1] % (2 << level) == 0:
        _, start, left = stack.pop()
        for a, b in zip(left, arrays):
            np.add(a, b, out=a)
        arrays, level = left, level + 1
    stack.append((level, start, arrays))


def fold(stack):
    """Merge what the counter left (a non-power-of-two count) from the right: s0 + (s1 + (s2 + ...))."""
    total = stack.pop()[2]
    while stack:
        left = stack.pop()[2]
        for a, b in zip(left, total):
            np.add(a, b, out=a)
        total = left
    return total


class TreeReducer:
    """Sums sample-weighted micro-batch gradients over all ranks with a fixed summation tree.

    micro_batches: K, the micro-batches of a step over all ranks; rank r owns those from
    r K / P. Without it a rank's block is assumed to start at an aligned power of two, so
    with more than one rank each must run a power-of-two count.
    """

    def __init__(self, groups, comm, micro_batches=None):
        self.groups = groups
        self.comm = comm
        self.micro_batches = micro_batches
        self._first = 0 if micro_batches is None else comm.rank * (micro_batches // comm.size)
        self._stack = []
        self._count = 0
        self.comm_time = 0.0

    def micro_batch_done(self):
        """Take this backward's gradients out of the buffers (which restart at zero) into the tree."""
        index = self._first + self._count
        top = self._stack[-1] if self._stack else None
        if top and top[0] == 0 and top[1] % 2 == 0:  # a right leaf: add it to its left one, no copy
            self._stack.pop()
            for a, g in zip(top[2], self.groups):
                np.add(a, g.grad, out=a)
            push(self._stack, 1, top[1], top[2])
        else:
            push(self._stack, 0, index, [g.grad.copy() for g in self.groups])
        for g in self.groups:
            g.grad.fill(0)
        self._count += 1

    def abandon(self):
        """A pass raised midway: nothing is in flight (micro-batches are taken at the end of a pass)."""

    def finish(self, samples):
        """Merge all ranks' nodes, divide by the step's samples over all ranks, write the buffers.

        The leaves are sample-weighted micro-batch gradients (see samples.py), so this is the mean
        over samples; `samples` is this rank's count."""
        nodes, count = self._stack, self._count
        self._stack, self._count = [], 0
        start = time.perf_counter()
        shapes = self.comm.allgather_obj((count, samples, [(level, first) for level, first, _ in nodes]))
        self._check_counts([c for c, _, _ in shapes])
        total_samples = sum(s for _, s, _ in shapes)
        if total_samples <= 0:
            raise ValueError(f"no samples went through DataParallel on any rank this step (got {total_samples}): "
                             "the losses must come from dp(...) outputs")
        stack = []
        for node in self._gather(nodes, [meta for _, _, meta in shapes]):
            push(stack, *node)
        for g, total in zip(self.groups, fold(stack)):
            np.divide(total, total_samples, out=g.grad)
        self.comm_time = time.perf_counter() - start

    def _gather(self, nodes, metas):
        """Every rank's nodes, in rank order (= index order), on every rank."""
        if self.comm.size == 1:
            return nodes
        per_group = []
        for gi, g in enumerate(self.groups):
            counts = [len(meta) * g.size for meta in metas]
            displs = [sum(counts[:r]) for r in range(len(counts))]
            rows = np.empty(sum(counts), g.grad.dtype)
            mine = rows[displs[self.comm.rank]:displs[self.comm.rank] + counts[self.comm.rank]]
            for k, (_, _, arrays) in enumerate(nodes):
                mine[k * g.size:(k + 1) * g.size] = arrays[gi]
            self.comm.Allgatherv_in_place(rows, counts, displs)
            per_group.append(rows.reshape(-1, g.size))
        flat_meta = [node for meta in metas for node in meta]
        return [(level, first, [rows[k] for rows in per_group]) for k, (level, first) in enumerate(flat_meta)]

    def _check_counts(self, counts):
        if len(set(counts)) != 1:
            raise RuntimeError(f"deterministic mode: ranks ran different numbers of micro-batches {counts}")
        per_rank = counts[0]
        if per_rank == 0:
            raise RuntimeError("deterministic mode: no micro-batch ran backward this step")
        if self.micro_batches is not None and per_rank * len(counts) != self.micro_batches:
            raise RuntimeError(f"deterministic mode: {len(counts)} ranks ran {per_rank} micro-batches each, "
                               f"but DataParallel(micro_batches={self.micro_batches}) expects "
                               f"{self.micro_batches // len(counts)} each")
        if self.micro_batches is None and len(counts) > 1 and per_rank & (per_rank - 1):
            raise ValueError(f"deterministic mode: {per_rank} micro-batches per rank is not a power of two; "
                             f"pass DataParallel(..., micro_batches=K) to split K micro-batches over any "
                             f"world size that divides K")
