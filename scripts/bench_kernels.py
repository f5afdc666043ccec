"""What pinning the BLAS kernels costs: sgemm GFLOP/s on one core and the default job's step time under each
OPENBLAS_CORETYPE, and whether the BLAS thread count changes the bits of float32 products under each (so
belongs to the numerical identity).

Every measurement runs in a fresh process (OPENBLAS_CORETYPE is read when numpy loads OpenBLAS); the kernels
take turns in every round and each figure is the median over rounds, with its ratio to the default kernels.
Besides wall-clock sgemm (machine.py's), rates and step costs are also taken in CPU time, which a loaded,
shared machine disturbs far less than wall time.

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
import json, sys, time
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits
sys.path.insert(0, {scripts!r})
from machine import sgemm_gflops
kernels = " ".join(i["architecture"] for i in threadpool_info() if i["user_api"] == "blas")
with threadpool_limits(1, user_api="blas"):
    rate = sgemm_gflops()
    a, b = np.ones((1024, 1024), np.float32), np.ones((1024, 1024), np.float32)
    cpu = []
    for _ in range(6):
        start = time.process_time()
        a @ b
        cpu.append(time.process_time() - start)
    cpu_rate = 2 * 1024**3 / min(cpu[1:]) / 1e9
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
print(json.dumps({{"kernels": kernels, "gflops": rate, "cpu_gflops": cpu_rate, "differ": differ}}))
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


def run_cpu_seconds(coretype, out, steps=12):
    """CPU seconds of a whole run of the default job, deterministic, one rank."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    env.pop("OPENBLAS_CORETYPE", None)
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    sets = [f"steps={steps}", "deterministic=true", "sample_chars=0", "checkpoint_every=0", "eval_every=0",
            "digest_every=0"]
    before = os.times()
    subprocess.run([sys.executable, "-m", "mpigrad", "train", "--quiet", "--overwrite", "--out", str(out),
                    *[a for item in sets for a in ("--set", item)]], env=env, timeout=900, check=True)
    after = os.times()
    return after.children_user + after.children_system - before.children_user - before.children_system


def step_cpu(coretype, out):
    """CPU seconds per step of the default job: (a 12-step run - a 2-step run) / 10, so start-up cancels."""
    return (run_cpu_seconds(coretype, out, 12) - run_cpu_seconds(coretype, out, 2)) / 10


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--train-rounds", type=int, default=3)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    rates, cpu_rates, steps = ({k: [] for k in KERNELS} for _ in range(3))
    first = {}
    with tempfile.TemporaryDirectory() as scratch:
        for round_number in range(args.rounds):
            for coretype in KERNELS:
                result = measure(coretype, bits=round_number == 0)
                first.setdefault(coretype, result)
                rates[coretype].append(result["gflops"])
                cpu_rates[coretype].append(result["cpu_gflops"])
                if round_number < args.train_rounds:
                    steps[coretype].append(step_cpu(coretype, Path(scratch) / "run"))
    base, base_cpu, base_step = (statistics.median(x[""]) for x in (rates, cpu_rates, steps))
    print(f"{'OPENBLAS_CORETYPE':<18} {'kernels':<12} {'sgemm GFLOP/s wall':>18} {'ratio':>6} "
          f"{'sgemm GFLOP/s CPU':>17} {'ratio':>6} {'job step CPU ms':>15} {'ratio':>6}  bits change at 2 threads")
    for coretype in KERNELS:
        median = statistics.median(rates[coretype])
        cpu, step = statistics.median(cpu_rates[coretype]), statistics.median(steps[coretype])
        print(f"{coretype or '(unset)':<18} {first[coretype]['kernels']:<12} {median:>18.1f} {median / base:>6.2f} "
              f"{cpu:>17.1f} {cpu / base_cpu:>6.2f} {step * 1e3:>15.1f} {step / base_step:>6.2f}  "
              f"{first[coretype]['differ']} of {len(SHAPES)} float32 shapes")
    print(f"sgemm: n = 1024 float32, one thread, best of 5 per process, medians over {args.rounds} rounds, kernels "
          f"interleaved; job step: CPU time of the default job (deterministic, 1 rank), 12 steps less 2 steps, / 10, "
          f"median over {args.train_rounds} rounds")


if __name__ == "__main__":
    main()
