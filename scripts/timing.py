"""Interleaved timing for the benchmark scripts: each round calls every variant once, so the
machine's noise falls on all of them alike."""

import statistics
import time


def interleaved_medians(variants, reps, warmup=1):
    """{name: median milliseconds} over `reps` rounds, after `warmup` untimed rounds."""
    for _ in range(warmup):
        for fn in variants.values():
            fn()
    times = {name: [] for name in variants}
    for _ in range(reps):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}
