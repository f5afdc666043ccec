"""ZeRO stage 1: each rank keeps optimizer state for 1/P of the parameters only.

Backward averages the gradients exactly as without ZeRO (DataParallel's reducer, overlapped with
backward), so every .grad holds the average on every rank, as DataParallel promises, and the
gradient utilities (zero_grad, grad_norm, clipping) run on those identical gradients with the
replicated mode's bits. step() updates this rank's shard of the flat buffers, held as one piece
per parameter it overlaps (so frozen and unused parameters and Adam's per-parameter t behave as
replicated), and an all-gather brings every rank the new parameters. state_dict() gathers the
full state in the replicated optimizer's format: checkpoints move between ZeRO-1 and replicated
optimizers and across world sizes. This is PyTorch's ZeroRedundancyOptimizer over DDP.
"""

import numpy as np

from mpigrad.autograd import Variable
from mpigrad.optim import Optimizer

from .replicas import state_leaves


def shard_bounds(n, size):
    """(counts, displacements) splitting n elements into `size` nearly equal contiguous shards."""
    counts = [n // size + (r < n % size) for r in range(size)]
    return counts, [sum(counts[:r]) for r in range(size)]


class Piece:
    """params[index] elements [lo, hi) (offsets within the parameter) as a Variable over the flat buffers."""

    def __init__(self, index, param, group, start, lo, hi):
        self.index, self.param, self.lo, self.hi = index, param, lo, hi
        self.grad_view = group.grad[start + lo:start + hi]
        self.var = Variable(group.data[start + lo:start + hi], requires_grad=True)
        self.var.grad = self.grad_view

    def follow(self):
        """Mirror the parameter's trainability (no grad or frozen this step means no update)."""
        self.var.grad = None if self.param.grad is None else self.grad_view
        self.var.requires_grad = self.param.requires_grad


class ZeroOptimizer:
    """optimizer_class(**hyper) over this rank's shard; the whole Optimizer API."""

    def __init__(self, dp, optimizer_class, **hyper):
        self.dp, self.comm = dp, dp.comm
        self.params = list(dp.parameters())
        index = {id(p): i for i, p in enumerate(self.params)}
        self.bounds = [shard_bounds(g.size, self.comm.size) for g in dp.groups]
        self.pieces = []
        for g, (counts, displs) in zip(dp.groups, self.bounds):
            lo, hi = displs[self.comm.rank], displs[self.comm.rank] + counts[self.comm.rank]
            for p, (a, b) in zip(g.params, g.offsets):
                if max(a, lo) < min(b, hi):
                    self.pieces.append(Piece(index[id(p)], p, g, a, max(a, lo) - a, min(b, hi) - a))
        if not self.pieces:
            raise ValueError(f"ZeroOptimizer: {sum(g.size for g in dp.groups)} parameter elements leave rank "
                             f"{self.comm.rank} of {self.comm.size} no shard; use fewer ranks or a replicated optimizer")
        self.optimizer = optimizer_class([piece.var for piece in self.pieces], **hyper)
        self.grads = Optimizer(self.params, lr=0.0)  # the gradient utilities, over the full averaged grads

    @property
    def learning_rate(self):
        return self.optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self.optimizer.learning_rate = value

    @property
    def step_count(self):
        return self.optimizer.step_count

    @property
    def param_steps(self):
        """Updates each parameter received (collective: the owners of each parameter tell everyone)."""
        return self._param_steps(self.optimizer.param_steps)

    def zero_grad(self):
        self.grads.zero_grad()

    def grad_norm(self):
        return self.grads.grad_norm()

    def clip_grad_norm(self, max_norm, total_norm=None):
        return self.grads.clip_grad_norm(max_norm, total_norm=total_norm)

    def clip_grad_value(self, min_val, max_val):
        self.grads.clip_grad_value(min_val, max_val)

    def step(self):
        self.dp._binding.take_replaced()  # the shards are read from the flat buffers
        for piece in self.pieces:
            piece.follow()
        self.optimizer.step()
        for g, (counts, displs) in zip(self.dp.groups, self.bounds):
            self.comm.Allgatherv_in_place(g.data, counts, displs)

    def state_dict(self):
        """Collective: the state a replicated optimizer_class over dp.parameters() would hold."""
        mine = self.optimizer.state_dict()
        slots = {slot for entry in mine["state"].values() for slot in entry}
        full = {}
        for slot in sorted(slots):
            for g, (counts, displs) in zip(self.dp.groups, self.bounds):
                buffer = np.zeros(g.size, g.dtype)
                for k, piece in enumerate(self.pieces):
                    if piece.param in g.params:
                        start = g.offsets[g.params.index(piece.param)][0]
                        buffer[start + piece.lo:start + piece.hi] = mine["state"][k][slot].reshape(-1)
                self.comm.Allgatherv_in_place(buffer, counts, displs)
                for p, (a, b) in zip(g.params, g.offsets):
                    full.setdefault(self.params.index(p), {})[slot] = buffer[a:b].reshape(p.shape).copy()
        state = {i: full.get(i, {}) for i in range(len(self.params))}
        return {"type": mine["type"], "step_count": mine["step_count"],
                "param_steps": self._param_steps(mine["param_steps"]),
                "hyperparams": mine["hyperparams"], "state": state}

    def load_state_dict(self, state):
        """Take this rank's shard of a state_dict() (from ZeRO at any world size, or a replicated optimizer)."""
        entries = state.get("state", {})
        if len(entries) != len(self.params):
            raise ValueError(f"ZeroOptimizer.load_state_dict: state has {len(entries)} parameters, "
                             f"the model has {len(self.params)}")
        steps = state.get("param_steps", [state.get("step_count")] * len(self.params))
        mine = {k: {slot: np.asarray(arr).reshape(-1)[piece.lo:piece.hi]
                    for slot, arr in entries.get(piece.index, entries.get(str(piece.index), {})).items()}
                for k, piece in enumerate(self.pieces)}
        self.optimizer.load_state_dict({**state, "param_steps": [steps[piece.index] for piece in self.pieces],
                                        "state": mine})

    def state_bytes(self):
        """Bytes of optimizer state this rank holds."""
        return sum(v.nbytes for _, v in state_leaves(self.optimizer.state_dict()) if isinstance(v, np.ndarray))

    def _param_steps(self, piece_steps):
        owned = {piece.index: t for piece, t in zip(self.pieces, piece_steps)}
        merged = {}
        for theirs in self.comm.allgather_obj(owned):
            merged.update(theirs)
        return [merged[i] for i in range(len(self.params))]
