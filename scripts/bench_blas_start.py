"""OpenBLAS's slow start-up state, each case in a fresh process: a small GEMM before and after one
large product, with plain numpy and after importing mpigrad's engine (which writes BLAS's packing
buffer once: autograd/blas_start.py).

    python scripts/bench_blas_start.py [--runs 5] [--calls 40]

float32, one BLAS thread. Each row: median over --runs fresh processes (the cases alternate, so
the shared machine's load falls on all alike) of the median per-call CPU time of --calls calls.
CPU time, not wall-clock: the figure is the work the call costs, not how long other processes held
the core.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

os.environ.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")

from machine import machine_line  # noqa: E402  (scripts/ is on sys.path)

CASES = {
    "numpy, fresh process": "",
    "numpy, after one 1024^3 product": "big = np.ones((1024, 1024), np.float32); big @ big",
    "after import mpigrad.autograd": "import mpigrad.autograd",
}
# Per-call CPU-time medians (ms) of the repro shapes, printed as JSON by a fresh interpreter.
PROBE = """
import json, statistics, sys, time
import numpy as np
{setup}
rng = np.random.default_rng(0)
W = rng.random((256, 64), dtype=np.float32)
g = rng.random((512, 256), dtype=np.float32)
x = rng.random((512, 64), dtype=np.float32)
def per_call(fn):
    times = []
    for _ in range({calls}):
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return 1e3 * statistics.median(times)
print(json.dumps({{"g @ W": per_call(lambda: g @ W), "g.T @ x": per_call(lambda: g.T @ x)}}))
"""


def run_case(setup, calls):
    done = subprocess.run([sys.executable, "-c", PROBE.format(setup=setup, calls=calls)], capture_output=True,
                          text=True, timeout=300, check=True)
    return json.loads(done.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    results = {name: [] for name in CASES}
    for _ in range(args.runs):
        for name, setup in CASES.items():
            results[name].append(run_case(setup, args.calls))
    print(f"W 256x64, g 512x256, x 512x64 float32, 1 thread; per-call CPU time (ms), median of {args.runs} "
          f"fresh processes x {args.calls} calls")
    print(f"{'case':<36}{'g @ W':>9}{'g.T @ x':>9}")
    for name, runs in results.items():
        row = {op: statistics.median(r[op] for r in runs) for op in runs[0]}
        print(f"{name:<36}{row['g @ W']:9.3f}{row['g.T @ x']:9.3f}")


if __name__ == "__main__":
    main()
