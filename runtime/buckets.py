"""Overlapped gradient all-reduce: contiguous buckets of the flat gradient buffers, each started
as soon as backward has finalised all of its gradients.

Default bucket size, measured on this machine kind (MPICH from PyPI, 2 ranks, shared memory):
in-place Allreduce bus bandwidth is 4.5 GB/s at 1 MB, 7.3 GB/s at 4 MB, 5.8 GB/s at 16 MB and
2.1 GB/s at 64 MB. 4 MB sits at the peak and still leaves several buckets to overlap with the
rest of backward in a model of ~10 MB of gradients (scripts/bench_dp.py --bucket-mb sweeps it).
"""

import time
from dataclasses import dataclass, field

import numpy as np

from mpigrad.optim.kernels import sum_of_squares

from .zero import shard_bounds

DEFAULT_BUCKET_MB = 4.0
# The bucket launched last has nothing left to overlap with but its own making: it goes in pieces of
# about this size, each started as soon as backward has written it (1 MB: 4.5 GB/s, MPI-NOTES).
PIECE_BYTES = 1 << 20


@dataclass
class Bucket:
    """grad[lo:hi] of one flat group: the gradients of params whose slices lie in that range."""

    grad: np.ndarray  # the view to reduce
    params: tuple
    pending: int = 0
    requests: list = field(default_factory=list)  # all-reduces in flight
    pieces: tuple = ()  # [lo, hi) of grad reduced one after another (one piece unless the last bucket)
    piece_views: list = None  # grad[lo:hi] of each piece, kept (the wire codec keys its buffers by view)
    launched: int = 0  # pieces started this pass
    final: list = None  # per piece: elements backward has finished this pass
    where: dict = None  # id(param) -> its [lo, hi) in grad
    counted: dict = None  # id(param) -> its leading elements already counted in final
    sum_sq: float = None  # float64 sum of squares of this rank's slice of the reduced gradients, once in
    norm_slice: tuple = (0, 0)  # [lo, hi) of the bucket whose squares this rank sums


def make_buckets(groups, bucket_bytes):
    """Cut each flat group, from its end, at parameter boundaries into buckets of at most
    bucket_bytes (a larger parameter gets a bucket of its own); returned in launch order."""
    buckets = []
    for group in reversed(groups):
        end, members = None, []
        for p, (lo, hi) in reversed(list(zip(group.params, group.offsets))):
            if members and (end - lo) * group.dtype.itemsize > bucket_bytes:
                buckets.append(Bucket(group.grad[start:end], tuple(members)))
                end, members = None, []
            end = hi if end is None else end
            start = lo
            members.append(p)
        buckets.append(Bucket(group.grad[start:end], tuple(members)))
    return buckets


class BucketReducer:
    """Averages gradients over ranks, weighting each rank by its share of the samples."""

    def __init__(self, groups, comm, bucket_mb=None, allreduce=None):
        self.comm = comm
        self._allreduce = allreduce or comm.Iallreduce  # starts an in-place sum; compression.WireAllreduce: in 16 bits
        mb = DEFAULT_BUCKET_MB if bucket_mb is None else bucket_mb
        if not mb > 0:
            raise ValueError(f"bucket_mb={bucket_mb} must be a positive number of megabytes")
        # backward finishes the last layers first, so buckets are cut from the end of the buffers:
        # a bucket never waits for a gradient that backward computes much later than its others
        self.buckets = make_buckets(groups, int(mb * 2**20))
        self._bucket_of = {id(p): b for b in self.buckets for p in b.params}
        for b in self.buckets:
            counts, displs = shard_bounds(b.grad.size, comm.size)
            b.norm_slice = (displs[comm.rank], displs[comm.rank] + counts[comm.rank])
            b.pieces = ((0, b.grad.size),)
        if allreduce is None:  # a two-phase wire sum issues its second collective from Test(): with many
            _cut_into_pieces(self.buckets[-1])  # in flight, ranks could issue them in different orders
        for b in self.buckets:
            b.piece_views = [b.grad[lo:hi] for lo, hi in b.pieces]
        self._weight = None  # this rank's samples / all samples, once known in a pass
        self._next = 0  # buckets start strictly in index order: every rank issues the same sequence
        self.comm_time = 0.0
        self.wait_started = 0.0

    def start_pass(self, weight):
        """First gradient of a synchronising pass: this rank's weight, the bucket counters reset."""
        self._weight = weight
        self._next = 0
        for b in self.buckets:
            b.pending, b.requests, b.sum_sq, b.launched = len(b.params), [], None, 0
            b.final, b.counted = [0] * len(b.pieces), {}

    def piece_rows(self, param):
        """Rows per block in which backward should write param's gradient (None: all at once)."""
        bucket = self._bucket_of[id(param)]
        if len(bucket.pieces) == 1 or param.ndim != 2:
            return None
        return max(1, (bucket.pieces[0][1] - bucket.pieces[0][0]) // param.shape[1])

    def rows_written(self, param, lo, hi):
        """Rows [lo, hi) of param's gradient are final (blocks come in order): start the pieces they complete."""
        self._progress()
        self._count_final(param, hi * param.shape[1])
        self._launch_ready()

    def grad_ready(self, param):
        bucket = self._bucket_of[id(param)]
        bucket.pending -= 1
        self._progress()
        if len(bucket.pieces) > 1:
            self._count_final(param, param.size)
        self._launch_ready()

    def _count_final(self, param, upto):
        """param's gradient is final up to element upto: add the newly final elements to their pieces."""
        bucket = self._bucket_of[id(param)]
        start = bucket.counted.get(id(param), 0)
        bucket.counted[id(param)] = upto
        lo, _ = bucket.where[id(param)]
        for i, (a, b) in enumerate(bucket.pieces):
            bucket.final[i] += max(0, min(b, lo + upto) - max(a, lo + start))

    def _launch_ready(self):
        while self._next < len(self.buckets):
            bucket = self.buckets[self._next]
            if bucket.pending == 0:
                self._launch(bucket)
            elif len(bucket.pieces) > 1 and bucket.launched < len(bucket.pieces) and bucket.final[
                    bucket.launched] == _length(bucket.pieces[bucket.launched]):
                self._launch_piece(bucket)  # the rest of the bucket is still being written
            else:
                return

    def _progress(self):
        """MPICH moves a non-blocking collective forward only inside MPI calls: poke the ones in flight."""
        for b in self.buckets[:self._next + 1]:
            b.requests = [r for r in b.requests if not r.Test()]
            if not b.requests and b.launched == len(b.pieces) and b.sum_sq is None:
                self._done(b)

    def _launch(self, bucket):
        for p in bucket.params:
            p.settle_grad()  # a deferred zero_grad of a param no gradient reached here
        while bucket.launched < len(bucket.pieces):
            self._launch_piece(bucket)
        self._next += 1

    def _launch_piece(self, bucket):
        piece = bucket.piece_views[bucket.launched]
        if self._weight != 1.0:
            piece *= piece.dtype.type(self._weight)
        bucket.requests.append(self._allreduce(piece))
        bucket.launched += 1

    def abandon(self):
        """A pass raised midway: complete what it started (every rank started the same), forget the rest."""
        for b in self.buckets:
            for r in b.requests:
                r.Wait()
            b.requests = []
        self._next = len(self.buckets)

    def finish_pass(self):
        """Start what backward never touched (params without gradient), then wait for all."""
        while self._next < len(self.buckets):
            self._launch(self.buckets[self._next])
        start = self.wait_started = time.perf_counter()  # CLOCK_MONOTONIC: comparable across a node's ranks
        for b in self.buckets:
            for r in b.requests:
                r.Wait()
            b.requests = []
            if b.sum_sq is None:
                self._done(b)
        self.comm_time = time.perf_counter() - start
        self.comm.blocked_time += self.comm_time

    def _done(self, bucket):
        """The bucket's average is in: take this rank's share of the global norm (its 1/P slice of the
        bucket) while the bucket is hot in cache; the ranks' shares are exchanged once per step."""
        lo, hi = bucket.norm_slice
        bucket.sum_sq = sum_of_squares(bucket.grad[lo:hi])

    def sum_of_squares(self):
        """Sum over buckets in launch order, and within a bucket over ranks in rank order, of the
        float64 sums of squares of the slices: the same value on every rank (collective after a
        synchronising pass; None at world 1 before a pass ends)."""
        mine = [b.sum_sq for b in self.buckets]
        if self.comm.size == 1:
            return None if None in mine else sum(mine)
        count, size = len(mine), self.comm.size
        shares = np.zeros(count * size)
        shares[self.comm.rank * count:(self.comm.rank + 1) * count] = mine
        self.comm.Allgatherv_in_place(shares, [count] * size, [r * count for r in range(size)])
        return sum(shares.reshape(size, count).sum(axis=0).tolist())


def _length(piece):
    return piece[1] - piece[0]


def _cut_into_pieces(bucket):
    """Split bucket into pieces of about PIECE_BYTES and note where each of its params lies in it."""
    count = max(1, round(bucket.grad.nbytes / PIECE_BYTES))
    bounds = [bucket.grad.size * i // count for i in range(count + 1)]
    bucket.pieces = tuple(zip(bounds[:-1], bounds[1:]))
    base = bucket.grad.ctypes.data
    bucket.where = {}
    for p in bucket.params:
        lo = (p.grad_buffer.ctypes.data - base) // bucket.grad.itemsize
        bucket.where[id(p)] = (lo, lo + p.size)
