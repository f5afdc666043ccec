"""Full training step of each reference model, mpigrad against PyTorch, at world sizes 1 and 2.

    python scripts/bench_models.py [--steps 20] [--rounds 1]

A step is what `mpigrad train` does: zero the grads, forward + backward over this rank's
micro-batches (no_sync on all but the last), global-norm clip at 1.0, Adam. Each world size is
one `mpiexec -n N` job whose ranks hold both frameworks: mpigrad under DataParallel and PyTorch
with one thread, plain at world 1 and DistributedDataParallel over gloo (no_sync accumulation)
at world 2. Steps alternate in pairs (mpigrad twice, torch twice, ...; only the second of each
pair is timed, after a barrier, since one framework's freed memory and caches slow the other's
next step), so the shared machine's load falls on both alike; 5 warm-up steps each, then --steps timed, medians on rank 0
(and over --rounds jobs). One BLAS thread per rank. torch columns need `pip install -e '.[bench]'`;
the models and step functions are in bench_models_mpigrad.py and bench_models_torch.py.

Models (float32):
  transformer  the default job's model at the default config (mpigrad/config.py)
  ref-mlp      MLP 784-1024-1024-10 ReLU, global batch 256 in one micro-batch, Adam 1e-3, L2 1e-4
  gru          character GRU: embedding 64, hidden 128, sequence 64, global batch 32, Adam 3e-3
  mlp          the mlp model at the default config (hidden [128], relu, batch 32 in micro-batches
               of 8, Adam 3e-3) on 784 features, 10 classes
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPIGRAD_BLAS_THREADS="1")

from machine import machine_line  # noqa: E402  (scripts/ is on sys.path)

MODELS = ("transformer", "ref-mlp", "gru", "mlp")
WARMUP = 5


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--cpu-time", action="store_true",
                        help="time each step by the process's CPU time, not wall-clock (a loaded machine: the time "
                             "other processes hold the cores is left out; MPI's waits spin and count, gloo's sleep "
                             "and do not, so world 2 then favours DDP)")
    parser.add_argument("--worker", action="store_true")
    args = parser.parse_args()
    models = args.models.split(",")
    has_torch = _has_torch()
    if args.worker:
        return worker(models, args.steps, has_torch, time.process_time if args.cpu_time else time.perf_counter)
    print(machine_line(), flush=True)
    runs = {n: [launch(n, models, args.steps, 29600 + 10 * r + n, args.cpu_time) for r in range(args.rounds)]
            for n in (1, 2)}
    table = {(fw, n): {m: statistics.median(run[fw][m] for run in results) for m in models}
             for n, results in runs.items() for fw in results[0]}
    report(table, models, has_torch, args)


def launch(n, models, steps, port, cpu_time):
    mpiexec = Path(sys.executable).parent / "mpiexec"
    command = [str(mpiexec if mpiexec.exists() else "mpiexec"), "-n", str(n), sys.executable, __file__,
               "--worker", "--steps", str(steps), "--models", ",".join(models)] + (["--cpu-time"] if cpu_time else [])
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=env)
    if done.returncode:
        sys.exit(f"world {n} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def worker(models, steps, has_torch, clock):
    import bench_models_mpigrad as mine
    from mpigrad.runtime import init
    comm = init()
    if comm.is_main:
        print(machine_line(sgemm=False), file=sys.stderr, flush=True)
    if has_torch:
        import bench_models_torch as theirs  # optional: only imported when torch is installed
        theirs.init_torch(comm.rank, comm.size)
    result = {"mpigrad": {}, "torch": {}} if has_torch else {"mpigrad": {}}
    for name in models:
        steps_of = {"mpigrad": mine.make_step(name, comm)}
        if has_torch:
            steps_of["torch"] = theirs.make_step(name, comm.rank, comm.size)
        times = {fw: [] for fw in steps_of}
        for i in range(WARMUP + steps):
            for fw, step in steps_of.items():
                step()  # untimed: the timed step must not pay for the other framework's caches and freed memory
                comm.Barrier()
                start = clock()
                step()
                if i >= WARMUP:
                    times[fw].append(clock() - start)
        for fw, t in times.items():
            result[fw][name] = 1e3 * statistics.median(t)
    if comm.is_main:
        print(json.dumps(result))


def _has_torch():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


def report(table, models, has_torch, args):
    print(f"training step (fwd + bwd + clip + Adam), medians of {args.steps} alternating steps x {args.rounds} "
          f"round(s) (ms{' of CPU time' if args.cpu_time else ''}), 1 thread per rank")
    print(f"{'model':<13}{'mpigrad w1':>11}{'torch w1':>10}{'ratio':>7}{'mpigrad w2':>12}{'DDP w2':>9}{'ratio':>7}")
    for m in models:
        line = f"{m:<13}"
        for n in (1, 2):
            mine = table["mpigrad", n][m]
            line += f"{mine:{11 if n == 1 else 12}.2f}"
            if has_torch:
                theirs = table["torch", n][m]
                line += f"{theirs:{10 if n == 1 else 9}.2f}{mine / theirs:7.2f}"
            else:
                line += f"{'-':>{10 if n == 1 else 9}}{'-':>7}"
        print(line)
    if not has_torch:
        print("torch columns empty: PyTorch is not installed (pip install -e '.[bench]')")


if __name__ == "__main__":
    main()
