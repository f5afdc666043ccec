"""Interleaved timing for the benchmark scripts: each round calls every variant once, so the
machine's noise falls on all of them alike."""

import statistics
import time


def interleaved_medians(variants, reps, warmup=1, settle=0, clock=time.perf_counter):
    """{name: median milliseconds} over `reps` rounds, after `warmup` untimed rounds.

    clock: time.thread_time times the work a single-threaded call does, leaving out the time other
    processes on a shared machine held the core (measured here: wall-clock medians 10-30x the CPU time
    at a load average of 15 on 2 cores).

    settle: untimed calls of a variant right before each timed one, so the timed call does not pay
    for the caches and freed memory the previous variant left (numpy after torch: measured 2x on a GEMM).
    """
    for _ in range(warmup):
        for fn in variants.values():
            fn()
    times = {name: [] for name in variants}
    for _ in range(reps):
        for name, fn in variants.items():
            for _ in range(settle):
                fn()
            start = clock()
            fn()
            times[name].append(clock() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}
