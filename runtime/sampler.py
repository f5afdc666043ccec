"""Which samples each rank reads: the same shuffle everywhere, keyed by (seed, epoch), never by rank."""

import numpy as np

from .comm import current_comm


def epoch_order(num_samples, seed, epoch, shuffle):
    """The sample order of an epoch: a permutation seeded by (seed, epoch), or 0..n-1."""
    if not shuffle:
        return np.arange(num_samples)
    return np.random.default_rng([seed, epoch]).permutation(num_samples)


class DistributedSampler:
    """Rank r of P iterates order[r::P] of a seed+epoch permutation, padded by wrapping or cut (drop_last)."""

    def __init__(self, num_samples, comm=None, shuffle=True, seed=0, drop_last=False):
        self.comm = comm if comm is not None else current_comm()
        size = self.comm.size
        if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
            raise ValueError(f"DistributedSampler: num_samples={num_samples!r} must be a positive integer")
        if drop_last and num_samples < size:
            raise ValueError(f"DistributedSampler: num_samples={num_samples} is smaller than the world size "
                             f"{size}, so drop_last=True leaves every rank empty")
        self.num_samples, self.shuffle, self.seed, self.drop_last = int(num_samples), shuffle, seed, drop_last
        self.per_rank = num_samples // size if drop_last else -(-num_samples // size)
        self.epoch = 0
        self.position = 0  # indices of this epoch already handed out (for exact mid-epoch resume)

    def set_epoch(self, epoch):
        """Start epoch `epoch` from its beginning: a new permutation, the same on every rank."""
        self.epoch, self.position = int(epoch), 0

    def indices(self):
        """This rank's indices for the current epoch, in order."""
        order = epoch_order(self.num_samples, self.seed, self.epoch, self.shuffle)
        total = self.per_rank * self.comm.size
        order = np.resize(order, total)  # wraps around to pad, or cuts when drop_last
        return order[self.comm.rank::self.comm.size]

    def __iter__(self):
        mine = self.indices()
        while self.position < len(mine):
            self.position += 1
            yield int(mine[self.position - 1])
        self.position = 0  # a finished epoch iterates afresh, as a sampler without state would

    def __len__(self):
        return self.per_rank

    def state_dict(self):
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed,
                "num_samples": self.num_samples, "world_size": self.comm.size}

    def load_state_dict(self, state):
        for key in ("seed", "num_samples", "world_size"):
            mine = getattr(self, key) if key != "world_size" else self.comm.size
            if state[key] != mine:
                raise ValueError(f"DistributedSampler state is for {key}={state[key]}, this sampler has {mine}")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


class GlobalBatches:
    """Global batch `step` as sample indices, independent of the world size: epoch e's permutation
    (seeded by (seed, e)) cut into num_samples // global_batch batches; the tail of an epoch is dropped.

    A pure function of the step, so resuming at any step needs no other state.
    """

    def __init__(self, num_samples, global_batch, seed, shuffle=True):
        if num_samples < global_batch:
            raise ValueError(f"the data has {num_samples} samples, fewer than global_batch={global_batch}")
        self.num_samples, self.global_batch, self.seed, self.shuffle = num_samples, global_batch, seed, shuffle
        self.per_epoch = num_samples // global_batch
        self._epoch, self._order = None, None

    def batch(self, step):
        epoch, k = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._epoch = epoch
            self._order = epoch_order(self.num_samples, self.seed, epoch, self.shuffle)
        return self._order[k * self.global_batch:(k + 1) * self.global_batch]

    def rank_block(self, step, rank, size):
        """This rank's contiguous block of the global batch (the micro-batches it owns)."""
        b = self.batch(step)
        per = len(b) // size
        return b[rank * per:(rank + 1) * per]
