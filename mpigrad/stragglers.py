"""Straggler warnings: a rank whose own work per step stays far above the other ranks' median.

A rank's own work is its step time less the seconds it spent inside MPI calls (`rank_step_time`
in metrics.jsonl). Every rank waits for the slowest at each all-reduce, so one slow rank sets the
pace of all: that is why it is worth a warning.

- "much slower": at least SLOWER (1.5) times the median of the other ranks, and at least
  MIN_EXCESS (10 ms) more. Ranks on equal hardware with equal shards differ by noise well under
  that (the shared 2-core development machine shows 10-20 % between ranks); a 1.5x rank makes
  the whole job a third slower. The absolute floor keeps millisecond-scale steps, where a single
  page fault or context switch is a large fraction, from counting.
- "persistently": in STREAK (5) consecutive logged steps. A garbage-collection pause, a burst of
  I/O or a descheduled process lasts one step; five logged steps in a row (50 steps at the
  default log_every) is a slow node, a busy core or an unequal shard.
"""

import statistics

SLOWER = 1.5
MIN_EXCESS = 0.010
STREAK = 5


class Stragglers:
    """Feed it every logged step's per-rank times; it returns the warning lines to print (rank 0)."""

    def __init__(self):
        self.streak = {}  # rank -> consecutive logged steps it was much slower

    def check(self, step, times, work=None):
        """work: each rank's micro-batches this step (None: equal); a rank with twice the work is
        expected to take twice the time, so times are compared per micro-batch."""
        if len(times) < 2:
            return []
        work = work or [1] * len(times)
        rates = [t / w for t, w in zip(times, work)]
        warnings = []
        for rank, own in enumerate(times):
            others = statistics.median(rates[:rank] + rates[rank + 1:]) * work[rank]  # at this rank's work
            slow = own >= SLOWER * others and own - others >= MIN_EXCESS
            self.streak[rank] = self.streak.get(rank, 0) + 1 if slow else 0
            if self.streak[rank] == STREAK:  # once per episode: the streak must break before it warns again
                warnings.append(f"mpigrad train: warning: rank {rank} is a straggler: its own work took "
                                f"{own * 1e3:.0f} ms at step {step} against {others * 1e3:.0f} ms (median of the "
                                f"other ranks{_per(work, rank)}), at least {SLOWER:g}x and {MIN_EXCESS * 1e3:.0f} ms slower in {STREAK} "
                                "logged steps in a row; every rank waits for it at each all-reduce")
        return warnings



def _per(work, rank):
    return "" if len(set(work)) == 1 else f" per micro-batch, times its {work[rank]}"
