"""DataParallel: every rank trains a replica on its own shard; gradients are averaged during backward."""

import contextlib
import math

import numpy as np

from mpigrad.autograd import is_grad_enabled
from mpigrad.autograd.engine import current_pass, queue_callback
from mpigrad.optim.flat import flatten_parameters
from mpigrad.optim.kernels import sum_of_squares

from .buckets import BucketReducer
from .compression import WireAllreduce, check_wire_dtype
from .comm import init, set_blas_threads
from .dp_setup import check_micro_batches, hook_even_if_frozen, refuse_second_wrapper
from .identity import check_ranks
from .replicas import check_replicas, check_same_structure
from .samples import ForwardMark, SecondBackwardError, mark_outputs, second_backward_message
from .tree_reduce import TreeReducer
from .watchdog import end_step, progress


class DataParallel:
    """Wraps a Module: after a synchronising backward every .grad holds sum_f (n_f / N) grad_f on every rank.

    f runs over the forwards dp(x_f) of the step on all ranks whose outputs a backward reached
    (n_f = len(x_f), N = sum n_f) and grad_f is the gradient of the loss backward took through
    that output. So the loss of each micro-batch is backward'd as it is (its mean), never divided
    by the number of micro-batches: DataParallel weights by samples, in both modes, and the result
    is the mean gradient over every sample of the step.

    Parameters are packed into flat buffers in registration order (so an optimizer over
    dp.parameters() finds the flat layout and updates whole buffers); buckets are launched from
    the end of the buffers, roughly the order backward finishes them.

    micro_batches=K, the backward passes of a step over all ranks, is checked at every step.
    deterministic=True sums micro-batch gradients along one fixed tree (tree_reduce.py); with K
    every world size that divides K gives one process's bits (without it each rank must run a
    power-of-two count).

    grad_comm_dtype="bfloat16" or "float16" sends gradients in 16 bits, summed in float32
    (compression.py): half the bytes; in deterministic mode every partial sum of the tree is
    rounded to it, at every world size, so the bits stay world-size independent.
    """

    def __init__(self, module, comm=None, bucket_mb=None, deterministic=False, micro_batches=None,
                 grad_comm_dtype="float32"):
        self.module = module
        self.grad_comm_dtype = check_wire_dtype(grad_comm_dtype)
        self.comm = comm if comm is not None else init()
        check_micro_batches(micro_batches, deterministic, self.comm.size)
        if deterministic:
            set_blas_threads(1)  # a threaded GEMM may split sums differently at another thread count
        check_ranks(self.comm, deterministic)  # the same kernels on every rank, or the same refusal everywhere
        named = list(module.named_parameters())
        refuse_second_wrapper(named, DataParallel)
        check_same_structure(named, self.comm)
        self.names = {id(p): name for name, p in named}
        self.groups = flatten_parameters([p for _, p in named])
        if self.grad_comm_dtype != "float32" and any(g.dtype != np.float32 for g in self.groups):
            raise ValueError(f"DataParallel: grad_comm_dtype={grad_comm_dtype!r} needs float32 parameters "
                             f"(got {', '.join(sorted({str(g.dtype) for g in self.groups}))})")
        for group in self.groups:
            self.comm.Bcast(group.data, root=0)  # rank 0's initial values everywhere
        self.deterministic, self.micro_batches = bool(deterministic), micro_batches
        if self.deterministic:
            self.reducer = TreeReducer(self.groups, self.comm, micro_batches, grad_comm_dtype)
        else:
            wire = WireAllreduce(self.comm, grad_comm_dtype) if grad_comm_dtype != "float32" else None
            self.reducer = BucketReducer(self.groups, self.comm, bucket_mb, wire)
        self._params = [p for _, p in named]
        self._grad_views = [p.grad for p in self._params]
        self._index = {id(p): i for i, p in enumerate(self._params)}
        self._used = np.zeros(len(self._params), np.uint8)  # params a backward reached this step (this rank)
        self._released = []  # params whose .grad is None since the last step (no rank differentiated them)
        for p in self._params:
            hook_even_if_frozen(p, self._grad_ready)  # a parameter frozen now may be unfrozen later
        self._sync = True
        self._norm_sq = None  # float64 sum of squares of the gradients the last synchronising pass left
        self._pass = None  # current_pass() of the backward pass being reduced, None between passes
        self._pass_marks = []  # the forwards that pass counted
        self._new_step()

    def _new_step(self):
        self._samples = 0  # samples of the forwards counted since the last synchronisation (this rank)
        self._passes = 0  # backward passes since the last synchronisation (this rank)
        self._ref = 1 if self.deterministic else None  # see samples.py: world-size independent when deterministic
        self._weighted = False  # the synchronising pass has fixed this rank's weight

    def __call__(self, *args, **kwargs):
        progress("forward")
        self._norm_sq = None  # a new step's gradients are coming
        if self._released:
            self._restore_grad_views()
        output = self.module(*args, **kwargs)
        if args and is_grad_enabled():
            output = mark_outputs(output, ForwardMark(self, len(args[0])))
        return output

    def parameters(self):
        return self.module.parameters()

    def named_parameters(self):
        return self.module.named_parameters()

    @property
    def comm_time(self):
        """Seconds the last synchronising backward waited for communication after its compute."""
        return self.reducer.comm_time

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes inside only accumulate local gradients; the next synchronising one averages."""
        previous, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = previous

    # ---- inside a backward pass (called by the engine)

    def count_forward(self, mark):
        """A backward reached mark's output: count its samples once; the factor its gradient takes."""
        self._enter_pass()
        if mark.counted_in is not None and mark.counted_in is not self._pass:
            raise SecondBackwardError(second_backward_message())
        if mark.counted_in is None:
            if self._weighted:
                raise RuntimeError("DataParallel: a dp(...) output got its gradient after this backward had "
                                   "started averaging; put every dp(...) output of a step into the losses of "
                                   "one backward, or accumulate under no_sync()")
            mark.counted_in = self._pass
            self._pass_marks.append(mark)
            self._samples += mark.samples
            self._ref = mark.samples if self._ref is None else self._ref
        return mark.samples / self._ref

    def _grad_ready(self, param):
        progress("backward")
        self._enter_pass()
        self._used[self._index[id(param)]] = 1
        if self._sync and not self.deterministic:
            if not self._weighted:
                self._start_averaging()
            self.reducer.grad_ready(param)

    def grad_rows_listener(self, param):
        """(rows per block, callback) when param's gradient should come in row blocks, each sent as it
        is written (the engine asks before writing a product into its buffer); None otherwise."""
        if not self._sync or self.deterministic or self.comm.size == 1:
            return None
        rows = self.reducer.piece_rows(param)
        if rows is None:
            return None

        def rows_written(lo, hi):
            self._enter_pass()
            if not self._weighted:
                self._start_averaging()
            self.reducer.rows_written(param, lo, hi)
        return rows, rows_written

    def _enter_pass(self):
        token = current_pass()
        if self._pass is token:
            return
        if self._pass is not None:
            self._abandon_pass()
        self._pass, self._pass_marks = token, []
        self._passes += 1
        queue_callback(self._end_of_pass)

    def _abandon_pass(self):
        """The previous pass raised before its end: it counts for nothing (its partial gradients stay
        in .grad until zero_grad) and its half-done reduction is completed and forgotten."""
        self.reducer.abandon()
        self._weighted = False
        self._passes -= 1
        for mark in self._pass_marks:
            self._samples -= mark.samples
            mark.counted_in = None
        if self._samples == 0 and not self.deterministic:
            self._ref = None

    def _start_averaging(self):
        """This rank's weight ref_r / N, from every rank's samples and passes (all ranks take part)."""
        progress("backward: sample-count all-gather")
        counts = self.comm.allgather_obj((self._samples, self._passes))
        total, passes = sum(s for s, _ in counts), sum(p for _, p in counts)
        if self.micro_batches is not None and passes != self.micro_batches:
            raise RuntimeError(f"DataParallel: this step ran {passes} backward passes over all ranks "
                               f"({[p for _, p in counts]} per rank), but micro_batches={self.micro_batches}")
        if total <= 0:
            raise ValueError(f"no samples went through DataParallel on any rank this step (got {total}): "
                             "the losses must come from dp(...) outputs")
        self._weighted = True
        self.reducer.start_pass((self._ref or 0) / total)

    def _end_of_pass(self):
        self._pass = None
        progress("gradient all-reduce" if self._sync else "backward")
        if self.deterministic:
            set_blas_threads(1)  # a threaded GEMM may split sums differently at another thread count
            self.reducer.micro_batch_done()
        if not self._sync:
            return
        try:
            if self.deterministic:
                self.reducer.finish(self._samples)
            else:
                if not self._weighted:  # no parameter got a gradient here: still take part in the collectives
                    self._start_averaging()
                self.reducer.finish_pass()
            self._release_untrained()
            self._norm_sq = self.reducer.sum_of_squares()
        finally:  # a refused step (wrong micro-batch count) must not leak into the next one
            self._new_step()
            self._used[:] = 0
            progress("after backward (optimizer step)")
            end_step()

    def _release_untrained(self):
        """A parameter no rank's backward reached this step gets .grad None, as in PyTorch, so no
        optimizer moves it (a zero gradient would still move it through momentum and weight
        decay); one used on some rank only holds the average, and moves on every rank."""
        used = self._used
        if self.comm.size > 1:
            self.comm.Allreduce(used, op="max")
        if used.all():
            return
        self._released = [i for i in np.flatnonzero(used == 0)]
        for i in self._released:
            self._params[i].grad = None

    def _restore_grad_views(self):
        """Before the next forward: the released params' .grad become their zeroed flat-buffer views again."""
        for i in self._released:
            self._grad_views[i].fill(0)
            self._params[i].grad = self._grad_views[i]
        self._released = []

    def grad_norm(self):
        """sqrt(sum of squares of every .grad) as the last synchronising backward left them: the same
        bits on every rank, computed with no pass over the gradients after backward: the default mode
        sums per-bucket shares taken as each bucket's all-reduce completed, the deterministic mode
        each rank's share of the rows (world-size independent); before any backward it reads the buffers."""
        total = self._norm_sq
        if total is None:
            for p in self._params:
                p.settle_grad()  # the buffers are read directly below
            total = sum(sum_of_squares(g.grad) for g in self.groups)
        return math.sqrt(total)

    def check_replicas(self, optimizer=None):
        """Raise naming the first parameter (or optimizer state) that differs between ranks."""
        check_replicas(self, optimizer)
