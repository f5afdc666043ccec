"""Deterministic gradient reduction: the same binary tree over micro-batch index at every world size.

A node is the partial sum of 2^level micro-batches starting at global index `start` (a multiple
of 2^level). It is added to its left neighbour of the same level when that one starts at a
multiple of 2^(level+1): the two are siblings of one fixed tree over the global indices (a
binary counter). A rank that owns a contiguous block of micro-batches ends with a few aligned
nodes (one when the block is an aligned power of two); all ranks' nodes are gathered and merged
by the same rule in index order, and what is left is folded from the right. The additions, and
so the bits, are the same however the micro-batches are split over the ranks.

With a 16-bit grad_comm_dtype every leaf and every partial sum is rounded to it (compression.py)
at every world size, so whichever node travels is already exact in 16 bits.
"""

import time

import numpy as np

from mpigrad.optim.kernels import DOT_ROW, add_in_order, row_sums_of_squares

from .compression import decode, encode, round_to_wire
from .zero import shard_bounds


def add_into(left, right, wire="float32"):
    """left[i] += right[i] in place for every parameter, rounded to the wire dtype; None is a zero
    gradient (adding the zero too, since -0.0 + 0.0 is +0.0: the bits must not depend on where a
    zero was stored)."""
    for i, (a, b) in enumerate(zip(left, right)):
        if a is None and b is None:
            continue
        if a is None:
            left[i] = np.add(b, 0, out=b)
        elif b is None:
            np.add(a, 0, out=a)
        else:
            np.add(a, b, out=a)
        round_to_wire(left[i], wire)


def push(stack, level, start, arrays, wire="float32"):
    """Add the node (level, start, arrays); merge it with its left sibling while there is one."""
    while stack and stack[-1][0] == level and stack[-1][1] % (2 << level) == 0:
        _, start, left = stack.pop()
        add_into(left, arrays, wire)
        arrays, level = left, level + 1
    stack.append((level, start, arrays))


def fold(stack, wire="float32"):
    """Merge what the counter left (a non-power-of-two count) from the right: s0 + (s1 + (s2 + ...))."""
    total = stack.pop()[2]
    while stack:
        left = stack.pop()[2]
        add_into(left, total, wire)
        total = left
    return total


class TreeReducer:
    """Sums sample-weighted micro-batch gradients over all ranks with a fixed summation tree.

    micro_batches: K, the micro-batches of a step over all ranks; rank r owns those from
    r K / P. Without it a rank's block is assumed to start at an aligned power of two, so
    with more than one rank each must run a power-of-two count.
    """

    def __init__(self, groups, comm, micro_batches=None, wire="float32"):
        self.groups = groups
        self.wire = wire  # grad_comm_dtype
        self.params = [p for g in groups for p in g.params]
        self.views = [v for g in groups for v in g.grad_views]
        self.comm = comm
        self.micro_batches = micro_batches
        self._first = 0 if micro_batches is None else comm.rank * (micro_batches // comm.size)
        self._stack = []
        self._count = 0
        self._buffers = {}
        self.comm_time = 0.0

    def micro_batch_done(self):
        """Take this backward's gradients into the tree, one array per parameter (None: no gradient).

        Each .grad is then None until the step ends, so the next backward hands over the arrays it
        computed (no copy out of the flat buffers, no zeroing pass); the first micro-batch of a
        step, accumulated into the flat buffers, keeps them as its storage until finish()."""
        arrays = [p.grad for p in self.params]
        for p, a in zip(self.params, arrays):
            p.grad = None
            round_to_wire(a, self.wire)
        index = self._first + self._count
        top = self._stack[-1] if self._stack else None
        if top and top[0] == 0 and top[1] % 2 == 0:  # a right leaf: add it to its left one
            self._stack.pop()
            add_into(top[2], arrays, self.wire)
            push(self._stack, 1, top[1], top[2], self.wire)
        else:
            push(self._stack, 0, index, arrays, self.wire)
        self._count += 1

    def sum_of_squares(self):
        """The float64 sum of squares of the merged gradients, bitwise what one process computes from
        the buffers (world-size independent): each rank takes a share of the 8192-element rows, the
        row sums are all-gathered and added in order (collective, after finish())."""
        totals = []
        for group in self.groups:
            n_rows = -(-group.size // DOT_ROW)
            counts, displs = shard_bounds(n_rows, self.comm.size)
            lo, hi = displs[self.comm.rank], displs[self.comm.rank] + counts[self.comm.rank]
            rows = np.empty(n_rows, np.float64)
            rows[lo:hi] = row_sums_of_squares(group.grad[lo * DOT_ROW:hi * DOT_ROW])
            self.comm.Allgatherv_in_place(rows, counts, displs)
            totals.append(add_in_order(rows))
        return sum(totals)

    def abandon(self):
        """A pass raised midway: the .grad become the flat views again (their values are undefined
        until zero_grad), so the tree's nodes must not keep those views as storage."""
        for _, _, arrays in self._stack:
            for i, a in enumerate(arrays):
                if a is not None and any(a is v for v in self.views):
                    arrays[i] = a.copy()
        self._restore_views()

    def _restore_views(self):
        for p, v in zip(self.params, self.views):
            p.grad = v

    def finish(self, samples):
        """Merge all ranks' nodes, divide by the step's samples over all ranks, write the buffers.

        The leaves are sample-weighted micro-batch gradients (see samples.py), so this is the mean
        over samples; `samples` is this rank's count."""
        nodes, count = self._stack, self._count
        self._stack, self._count = [], 0
        start = time.perf_counter()
        try:
            self._merge(nodes, count, samples)
        finally:  # also when the step is refused: every .grad is its flat view again
            self._restore_views()
        self.comm_time = time.perf_counter() - start

    def _merge(self, nodes, count, samples):
        shapes = self.comm.allgather_obj((count, samples, [(level, first) for level, first, _ in nodes]))
        self._check_counts([c for c, _, _ in shapes])
        total_samples = sum(s for _, s, _ in shapes)
        if total_samples <= 0:
            raise ValueError(f"no samples went through DataParallel on any rank this step (got {total_samples}): "
                             "the losses must come from dp(...) outputs")
        if self.comm.size == 1:
            stack = []
            for node in nodes:
                push(stack, *node, self.wire)
            for view, total in zip(self.views, fold(stack, self.wire)):
                if total is None:
                    view.fill(0)
                else:
                    round_to_wire(np.divide(total, total_samples, out=view), self.wire)
            return
        first = 0
        for g in self.groups:
            mine = [arrays[first:first + len(g.params)] for _, _, arrays in nodes]
            self._merge_group(g, mine, [meta for _, _, meta in shapes], total_samples)
            first += len(g.params)

    def _merge_group(self, group, mine, metas, total_samples):
        """Rank q merges element chunk q of every rank's nodes (one Alltoallv), divides it and every
        rank gets every chunk (one Allgatherv): the bytes an all-reduce moves when each rank holds
        one node. The merge is elementwise, so chunking leaves the bits of the whole merge."""
        size, rank = self.comm.size, self.comm.rank
        counts, displs = shard_bounds(group.size, size)
        send = self._send_buffer(group, mine, counts, displs)
        if self.wire != "float32":  # lossless: every node is already rounded to the wire dtype
            send = encode(send, self.wire, out=self._buffer(("send16", id(group)), send.size, np.uint16))
        nodes_of = [len(meta) for meta in metas]
        received = self._buffer(("recv", id(group)), sum(nodes_of) * counts[rank], send.dtype)
        self.comm.Alltoallv(send, [n * c for n, c in zip([len(mine)] * size, counts)],
                            [len(mine) * d for d in displs], received, [n * counts[rank] for n in nodes_of],
                            [sum(nodes_of[:r]) * counts[rank] for r in range(size)])
        if self.wire != "float32":
            received = decode(received, self.wire, out=self._buffer(("recv32", id(group)), received.size, group.dtype))
        rows = received.reshape(-1, counts[rank])
        stack = []
        for row, (level, first) in zip(rows, [node for meta in metas for node in meta]):
            push(stack, level, first, [row], self.wire)
        chunk = group.grad[displs[rank]:displs[rank] + counts[rank]]
        np.divide(fold(stack, self.wire)[0], total_samples, out=chunk)
        if self.wire == "float32":
            self.comm.Allgatherv_in_place(group.grad, counts, displs)
            return
        codes = self._buffer(("gather16", id(group)), group.size, np.uint16)
        encode(chunk, self.wire, out=codes[displs[rank]:displs[rank] + counts[rank]])
        self.comm.Allgatherv_in_place(codes, counts, displs)
        decode(codes, self.wire, out=group.grad)

    def _send_buffer(self, group, mine, counts, displs):
        """Chunk q of each of my nodes, node after node, for every rank q in turn. One node held in the
        flat buffer itself (the usual case: the first micro-batch is the tree's left spine) is sent
        from there with no copy."""
        if len(mine) == 1 and all(a is v for a, v in zip(mine[0], group.grad_views)):
            return group.grad
        send = self._buffer(("send", id(group)), len(mine) * group.size, group.dtype)
        for q in range(self.comm.size):
            block = send[len(mine) * displs[q]:len(mine) * (displs[q] + counts[q])].reshape(len(mine), counts[q])
            for k, arrays in enumerate(mine):
                for (lo, hi), a in zip(group.offsets, arrays):
                    s, e = max(lo, displs[q]), min(hi, displs[q] + counts[q])
                    if s < e:
                        part = block[k, s - displs[q]:e - displs[q]]
                        if a is None:
                            part.fill(0)
                        else:
                            part[...] = a.reshape(-1)[s - lo:e - lo]
        return send

    def _buffer(self, key, count, dtype):
        """A work buffer kept across steps (a fresh large array page-faults on every step)."""
        buffer = self._buffers.get(key)
        if buffer is None or buffer.size != count or buffer.dtype != dtype:
            buffer = self._buffers[key] = np.empty(count, dtype)
        return buffer

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
