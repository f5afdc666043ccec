"""DataParallel: every rank trains a replica on its own shard; gradients are averaged during backward."""

import contextlib

from mpigrad.autograd.engine import queue_callback
from mpigrad.optim.flat import flatten_parameters

from .buckets import BucketReducer
from .comm import init, set_blas_threads
from .replicas import check_replicas, check_same_structure
from .tree_reduce import TreeReducer
from .watchdog import end_step, progress


class DataParallel:
    """Wraps a Module: after loss.backward() every .grad holds sum_r (n_r / N) grad_r on every rank.

    Parameters are packed into flat buffers in registration order (so an optimizer over
    dp.parameters() finds the flat layout and updates whole buffers); buckets are launched from
    the end of the buffers, roughly the order backward finishes them, so the first all-reduces
    run while backward continues. n_r counts the samples this rank passed through dp(...) since the
    last synchronisation (the leading dimension of the first argument).

    deterministic=True sums micro-batch gradients along one fixed tree (tree_reduce.py);
    micro_batches=K, the micro-batches of a step over all ranks, lets every world size that
    divides K give one process's bits (without it each rank must run a power-of-two count).
    """

    def __init__(self, module, comm=None, bucket_mb=None, deterministic=False, micro_batches=None):
        self.module = module
        self.comm = comm if comm is not None else init()
        _check_micro_batches(micro_batches, deterministic, self.comm.size)
        named = list(module.named_parameters())
        check_same_structure(named, self.comm)
        self.names = {id(p): name for name, p in named}
        self.groups = flatten_parameters([p for _, p in named])
        for group in self.groups:
            self.comm.Bcast(group.data, root=0)  # rank 0's initial values everywhere
        self.deterministic = bool(deterministic)
        if self.deterministic:
            set_blas_threads(1)  # a threaded GEMM may split sums differently at another thread count
            self.reducer = TreeReducer(self.groups, self.comm, micro_batches)
        else:
            self.reducer = BucketReducer(self.groups, self.comm, bucket_mb)
        for _, p in named:
            p.register_post_accumulate_grad_hook(self._grad_ready)
        self._sync = True
        self._samples = 0
        self._in_pass = False

    def __call__(self, *args, **kwargs):
        progress("forward")
        if args:
            self._samples += len(args[0])
        return self.module(*args, **kwargs)

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

    def _grad_ready(self, param):
        progress("backward")
        if not self._in_pass:
            self._in_pass = True
            queue_callback(self._end_of_pass)
            if self._sync and not self.deterministic:
                progress("backward: sample-count all-reduce")
                self.reducer.start_pass(self._samples)
        if self._sync and not self.deterministic:
            self.reducer.grad_ready(param)

    def _end_of_pass(self):
        self._in_pass = False
        progress("gradient all-reduce" if self._sync else "backward")
        if self.deterministic:
            set_blas_threads(1)  # a threaded GEMM may split sums differently at another thread count
            self.reducer.micro_batch_done()
            if self._sync:
                self.reducer.finish()
        elif self._sync:
            self.reducer.finish_pass()
        if self._sync:
            self._samples = 0
            progress("after backward (optimizer step)")
            end_step()

    def check_replicas(self, optimizer=None):
        """Raise naming the first parameter (or optimizer state) that differs between ranks."""
        check_replicas(self, optimizer)


def _check_micro_batches(micro_batches, deterministic, world_size):
    """Before any collective, so every rank raises the same error."""
    if micro_batches is None:
        return
    if not deterministic:
        raise ValueError(f"DataParallel: micro_batches={micro_batches!r} only applies with deterministic=True")
    if not (isinstance(micro_batches, int) and micro_batches > 0 and micro_batches % world_size == 0):
        raise ValueError(f"DataParallel: micro_batches={micro_batches!r} must be a positive multiple of the "
                         f"world size {world_size}")
