"""Interleaved timing for the benchmark scripts: each round calls every variant once, so the
machine's noise falls on all of them alike."""

import statistics
import time


def interleaved_medians(variants, reps, warmup=1, settle=0):
    """{name: median milliseconds} over `reps` rounds, after `warmup` untimed rounds.

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
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}
