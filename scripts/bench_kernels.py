"""What pinning the BLAS kernels costs: sgemm GFLOP/s on one core and the default job's step time under each
OPENBLAS_CORETYPE, and whether the BLAS thread count changes the bits of float32 products under each (so
belongs to the numerical identity).

Every measurement runs in a fresh process (OPENBLAS_CORETYPE is read when numpy loads OpenBLAS); the kernels
take turns in every round and each figure is the median over rounds, with its ratio to the default kernels.

    OPENBLAS_NUM_THREADS=1 python scripts/bench_kernels.py [--rounds 7]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine_line  # noqa: E402

KERNELS = ("", "Haswell", "Sandybridge", "Prescott")  # "": OpenBLAS picks for this CPU
SHAPES = [(512, 64, 64), (512, 64, 256), (512, 256, 64), (64, 512, 256), (256, 512, 64), (33, 4097, 65),
          (2000, 300, 17)]

WORKER = """
import json, sys
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits
sys.path.insert(0, {scripts!r})
from machine import sgemm_gflops
kernels = " ".join(i["architecture"] for i in threadpool_info() if i["user_api"] == "blas")
with threadpool_limits(1, user_api="blas"):
    rate = sgemm_gflops()
differ = 0
if {bits}:
    rng = np.random.default_rng(0)
    for m, k, n in {shapes!r}:
        a, b = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)
        with threadpool_limits(1, user_api="blas"):
            one = a @ b
        with threadpool_limits(2, user_api="blas"):
            two = a @ b
        differ += bool((one.view(np.uint32) != two.view(np.uint32)).any())
print(json.dumps({{"kernels": kernels, "gflops": rate, "differ": differ}}))
"""


def measure(coretype, bits):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    env.pop("OPENBLAS_CORETYPE", None)
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    code = WORKER.format(scripts=str(Path(__file__).parent), bits=bits, shapes=SHAPES)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600,
                          check=True)
    return json.loads(done.stdout)


def step_time(coretype, out, steps=12):
    """Median step time (s) of the default job, deterministic, one rank, steps 3.. (the first two pay start-up)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    env.pop("OPENBLAS_CORETYPE", None)
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    sets = [f"steps={steps}", "deterministic=true", "sample_chars=0", "checkpoint_every=0", "eval_every=0",
            "log_every=1", "digest_every=0"]
    subprocess.run([sys.executable, "-m", "mpigrad", "train", "--quiet", "--overwrite", "--out", str(out),
                    *[a for item in sets for a in ("--set", item)]], env=env, timeout=900, check=True)
    rows = [json.loads(line) for line in open(Path(out) / "metrics.jsonl")]
    return statistics.median(r["step_time"] for r in rows if r["step"] > 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--train-rounds", type=int, default=3)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    rates, steps, first = {k: [] for k in KERNELS}, {k: [] for k in KERNELS}, {}
    with tempfile.TemporaryDirectory() as scratch:
        for round_number in range(args.rounds):
            for coretype in KERNELS:
                result = measure(coretype, bits=round_number == 0)
                first.setdefault(coretype, result)
                rates[coretype].append(result["gflops"])
                if round_number < args.train_rounds:
                    steps[coretype].append(step_time(coretype, Path(scratch) / "run"))
    base, base_step = statistics.median(rates[""]), statistics.median(steps[""])
    print(f"{'OPENBLAS_CORETYPE':<18} {'kernels':<12} {'sgemm GFLOP/s (1 core)':>22} {'vs default':>10} "
          f"{'default job step (ms)':>21} {'vs default':>10} {'shapes whose bits change at 2 threads':>38}")
    for coretype in KERNELS:
        median = statistics.median(rates[coretype])
        step = statistics.median(steps[coretype])
        print(f"{coretype or '(unset)':<18} {first[coretype]['kernels']:<12} {median:>22.1f} {median / base:>10.2f} "
              f"{step * 1e3:>21.1f} {step / base_step:>10.2f} {first[coretype]['differ']:>31} of {len(SHAPES)}")
    print(f"sgemm: medians over {args.rounds} rounds, kernels interleaved, n = 1024 float32, best of 5 per process; "
          f"step: the default job, deterministic, 1 rank, median of steps 3-12, median over {args.train_rounds} rounds")


if __name__ == "__main__":
    main()
