"""ZeRO stage 1: each rank keeps optimizer state for 1/P of the parameters only.

Backward reduce-scatters the flat gradient buffers (rank r receives the averaged gradient of its
shard), the optimizer steps on the shard, and an all-gather brings every rank the full parameters.
"""

import time

import numpy as np

from mpigrad.autograd import Variable
from mpigrad.optim.kernels import sum_of_squares

from .replicas import state_leaves


def shard_bounds(n, size):
    """(counts, displacements) splitting n elements into `size` nearly equal contiguous shards."""
    counts = [n // size + (r < n % size) for r in range(size)]
    return counts, [sum(counts[:r]) for r in range(size)]


class ShardReducer:
    """Reduce-scatter of each flat gradient buffer, weighted by sample share like BucketReducer."""

    def __init__(self, groups, comm, shard_grads, bounds):
        self.groups, self.comm, self.shard_grads, self.bounds = groups, comm, shard_grads, bounds
        self._weight = 1.0
        self.comm_time = 0.0

    def start_pass(self, weight):
        self._weight = weight

    def abandon(self):
        pass  # nothing starts before the end of a pass

    def grad_ready(self, param):
        pass  # one reduce-scatter per buffer at the end: shards cut across parameters

    def finish_pass(self):
        start = time.perf_counter()
        for g, shard, (counts, displs) in zip(self.groups, self.shard_grads, self.bounds):
            if self._weight != 1.0:
                g.grad *= g.dtype.type(self._weight)
            self.comm.Reduce_scatter(g.grad, shard, counts)
        self.comm_time = time.perf_counter() - start


class ZeroOptimizer:
    """optimizer_class(**hyper) over this rank's shard; same public methods as an Optimizer."""

    def __init__(self, dp, optimizer_class, **hyper):
        if dp.deterministic:
            raise ValueError("ZeroOptimizer: deterministic DataParallel already fixes the reduction; "
                             "use a replicated optimizer with deterministic=True")
        self.dp, self.comm = dp, dp.comm
        self.shards = []
        self.bounds = [shard_bounds(g.size, self.comm.size) for g in dp.groups]
        for g, (counts, displs) in zip(dp.groups, self.bounds):
            lo = displs[self.comm.rank]
            shard = Variable(g.data[lo:lo + counts[self.comm.rank]], requires_grad=True)
            shard.grad = np.zeros(counts[self.comm.rank], g.dtype)
            self.shards.append(shard)
        self.optimizer = optimizer_class(self.shards, **hyper)
        dp.reducer = ShardReducer(dp.groups, self.comm, [s.grad for s in self.shards], self.bounds)

    @property
    def learning_rate(self):
        return self.optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self.optimizer.learning_rate = value

    def zero_grad(self):
        for g in self.dp.groups:
            g.grad.fill(0)
        self.optimizer.zero_grad()

    def grad_norm(self):
        """sqrt(sum over ranks, in rank order, of each shard's float64 sum of squares): same bits everywhere."""
        local = sum(sum_of_squares(s.grad) for s in self.shards)
        return sum(self.comm.allgather_obj(local)) ** 0.5

    def clip_grad_norm(self, max_norm, total_norm=None):
        norm = self.grad_norm() if total_norm is None else total_norm
        return self.optimizer.clip_grad_norm(max_norm, total_norm=norm)

    def step(self):
        self.optimizer.step()
        for g, (counts, displs) in zip(self.dp.groups, self.bounds):
            self.comm.Allgatherv_in_place(g.data, counts, displs)

    def state_dict(self):
        """Collective: every rank returns the shards of all ranks, in rank order."""
        return {"shards": self.comm.allgather_obj(self.optimizer.state_dict())}

    def load_state_dict(self, state):
        shards = state["shards"]
        if len(shards) != self.comm.size:
            raise ValueError(f"ZeroOptimizer state has {len(shards)} shards but the world size is {self.comm.size}")
        self.optimizer.load_state_dict(shards[self.comm.rank])

    def state_bytes(self):
        """Bytes of optimizer state this rank holds."""
        return sum(v.nbytes for _, v in state_leaves(self.optimizer.state_dict()) if isinstance(v, np.ndarray))

