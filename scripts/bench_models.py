"""Full training step of each reference model, mpigrad against PyTorch, at world sizes 1 and 2.

    python scripts/bench_models.py [--steps 20] [--rounds 2]

A step is what `mpigrad train` does: zero the grads, forward + backward over this rank's
micro-batches (no_sync on all but the last), global-norm clip at 1.0, Adam. mpigrad runs under
`mpiexec -n N` with DataParallel; PyTorch runs one thread per rank, plain at world 1 and
DistributedDataParallel over gloo (no_sync accumulation) at world 2, launched the same way.
One BLAS thread per rank. Each (framework, world) job times every model (5 warm-up steps, then
--steps timed, median on rank 0); the jobs run --rounds times in alternating order and the
table shows the median over rounds. torch columns need `pip install -e '.[bench]'`. The models
and step loops are in bench_models_mpigrad.py and bench_models_torch.py.

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
from pathlib import Path

os.environ.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPIGRAD_BLAS_THREADS="1")

MODELS = ("transformer", "ref-mlp", "gru", "mlp")
WARMUP = 5


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--worker", choices=("mpigrad", "torch"))
    args = parser.parse_args()
    models = args.models.split(",")
    if args.worker:
        return worker(args.worker, models, args.steps)
    has_torch = _has_torch()
    jobs = [(fw, n) for n in (1, 2) for fw in ("mpigrad", "torch") if fw == "mpigrad" or has_torch]
    runs = {job: [] for job in jobs}
    for r in range(args.rounds):
        for job in (jobs if r % 2 == 0 else jobs[::-1]):
            runs[job].append(launch(*job, models, args.steps, port=29600 + 10 * r + len(runs[job])))
    table = {job: {m: statistics.median(run[m] for run in results) for m in models}
             for job, results in runs.items()}
    report(table, models, has_torch, args)


def launch(framework, n, models, steps, port):
    mpiexec = Path(sys.executable).parent / "mpiexec"
    command = [str(mpiexec if mpiexec.exists() else "mpiexec"), "-n", str(n), sys.executable, __file__,
               "--worker", framework, "--steps", str(steps), "--models", ",".join(models)]
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port + (0 if framework == "mpigrad" else 5)))
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    if done.returncode:
        sys.exit(f"{framework} at world {n} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def worker(framework, models, steps):
    if framework == "torch":
        from bench_models_torch import run_torch  # optional: only imported when torch is installed
        result = run_torch(models, steps, WARMUP)
    else:
        from bench_models_mpigrad import run_mpigrad
        result = run_mpigrad(models, steps, WARMUP)
    if result is not None:
        print(json.dumps(result))


def _has_torch():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


def report(table, models, has_torch, args):
    print(f"training step (fwd + bwd + clip + Adam), medians over {args.steps} steps x {args.rounds} rounds (ms), "
          "1 thread per rank")
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
