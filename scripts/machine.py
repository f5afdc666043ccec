"""The machine line every benchmark prints first: a figure holds for the machine it names."""

import os
import platform
import time

import numpy as np
from threadpoolctl import threadpool_info


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
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
    """Best-of-`reps` float32 n x n x n product rate: 2 n^3 / t."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # the first product pays BLAS's start-up
    best = min(_timed(lambda: a @ b) for _ in range(reps))
    return 2 * n**3 / best / 1e9


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def machine_line():
    """One line naming what a benchmark's figures hold for."""
    return (f"machine: {cpu_model()}, {os.cpu_count()} cores, numpy {np.__version__}, "
            f"BLAS {blas_description()}, sgemm {sgemm_gflops():.1f} GFLOP/s, "
            f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    print(machine_line())
