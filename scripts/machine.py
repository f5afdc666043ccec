"""The machine line every benchmark prints first: a figure holds for the machine it names."""

import os
import platform
import time

import numpy as np
from threadpoolctl import threadpool_info


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (the platform's processor string elsewhere).

    Not imported from mpigrad.runtime.identity: importing mpigrad writes OpenBLAS's buffer, the very
    start-up state scripts/bench_blas_start.py measures in a fresh process."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def blas_description():
    """Each BLAS numpy loaded: library, version, kernel architecture and thread count."""
    parts = [f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} "
             f"{i.get('num_threads')} thread(s)"
             for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(parts) or "no BLAS found"


def sgemm_gflops(n=1024, reps=5):
    """Best-of-`reps` float32 n x n x n product rate on one BLAS thread: 2 n^3 / t.

    t is this thread's CPU time, not wall-clock: on a shared machine the rate then names the core,
    not how busy the other processes keep it (the load average is printed beside it)."""
    from threadpoolctl import threadpool_limits
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    with threadpool_limits(1, user_api="blas"):
        a @ b  # the first product pays BLAS's start-up
        best = min(_timed(lambda: a @ b) for _ in range(reps))
    return 2 * n**3 / best / 1e9


def _timed(fn):
    start = time.thread_time()
    fn()
    return time.thread_time() - start


def machine_line(sgemm=True):
    """One line naming what a benchmark's figures hold for.

    sgemm=False leaves out the measured rate: its large products would change the state of BLAS a
    worker is about to time (scripts/bench_blas_start.py)."""
    rate = f"sgemm 1 thread {sgemm_gflops():.1f} GFLOP/s, " if sgemm else ""
    return (f"machine: {cpu_model()}, {os.cpu_count()} cores, numpy {np.__version__}, "
            f"BLAS {blas_description()}, {rate}load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    print(machine_line())
