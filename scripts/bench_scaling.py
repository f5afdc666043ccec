"""Checks `mpigrad scaling` across world sizes: from a measurement at world 2 its prediction for world 1,
and from world 1 for world 2, each against the step measured at that size.

    python scripts/bench_scaling.py [--steps 6] [--rounds 1] [--paths shm,network,openmpi]

Jobs: the default job and REF-MLP (MLP 784-1024-1024-10, global batch 256 in micro-batches of 128,
random data). Paths: MPICH over shared memory, MPICH's network module (MPIR_CVAR_NOLOCAL=1) and
Open MPI (the venv scripts/openmpi_venv.sh makes). One BLAS thread per rank throughout. The
measured step is the median step of the probe `mpigrad scaling` runs (the job's own code path);
error = predicted / measured - 1. With --rounds R each figure is the median over R launches.
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
ROOT = Path(__file__).resolve().parents[1]
THREADS = {k: "1" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "MPIGRAD_BLAS_THREADS")}
ROOT_OK = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def ref_mlp_sets(directory):
    import numpy as np
    rng = np.random.default_rng(0)
    path = os.path.join(directory, "ref_mlp.npz")
    np.savez(path, X=rng.integers(0, 256, (4096, 784), dtype=np.uint8), y=rng.integers(0, 10, 4096))
    return ["model=\"mlp\"", f"data=\"{path}\"", "hidden=[1024, 1024]", "global_batch=256", "micro_batch=128"]


def launcher(path, n):
    """(command prefix, environment) of an n-rank launch on this path."""
    env = {**os.environ, **THREADS}
    env.pop("PMI_RANK", None)
    if path == "openmpi":
        venv = Path(os.environ.get("MPIGRAD_OPENMPI_VENV", ROOT / ".venv-openmpi"))
        if not (venv / "bin" / "mpiexec").exists():
            sys.exit("no Open MPI venv: run bash scripts/openmpi_venv.sh (or leave openmpi out of --paths)")
        return [str(venv / "bin" / "mpiexec"), "--oversubscribe", "-n", str(n), str(venv / "bin" / "python")], \
            {**env, **ROOT_OK}
    if path == "network":
        env["MPIR_CVAR_NOLOCAL"] = "1"
    return [str(Path(sys.executable).parent / "mpiexec"), "-n", str(n), sys.executable], env


def scaling(path, n, sets, steps):
    prefix, env = launcher(path, n)
    command = prefix + ["-m", "mpigrad", "scaling", "--json", "--steps", str(steps)]
    command += [a for s in sets for a in ("--set", s)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    if done.returncode:
        sys.exit(f"{path} world {n} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def strong(result, world):
    return next(e["step_time"] for e in result["predicted"] if e["scaling"] == "strong" and e["world"] == world)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--paths", default="shm,network,openmpi")
    args = parser.parse_args()
    os.environ.update(THREADS)
    from machine import machine_line
    print(machine_line(), flush=True)
    print("step times in ms; error = predicted / measured - 1")
    print(f"{'job':12} {'path':8} | {'w1 measured':>11} {'w1 from w2':>10} {'error':>7} | "
          f"{'w2 measured':>11} {'w2 from w1':>10} {'error':>7}", flush=True)
    with tempfile.TemporaryDirectory() as data_dir:
        jobs = {"default job": [], "REF-MLP": ref_mlp_sets(data_dir)}
        for name, sets in jobs.items():
            for path in args.paths.split(","):
                runs = [(scaling(path, 1, sets, args.steps), scaling(path, 2, sets, args.steps))
                        for _ in range(args.rounds)]
                m1 = statistics.median(r1["measured"]["step_time"] for r1, _ in runs)
                m2 = statistics.median(r2["measured"]["step_time"] for _, r2 in runs)
                p1 = statistics.median(strong(r2, 1) for _, r2 in runs)
                p2 = statistics.median(strong(r1, 2) for r1, _ in runs)
                print(f"{name:12} {path:8} | {m1 * 1e3:11.1f} {p1 * 1e3:10.1f} {p1 / m1 - 1:+7.0%} | "
                      f"{m2 * 1e3:11.1f} {p2 * 1e3:10.1f} {p2 / m2 - 1:+7.0%}", flush=True)


if __name__ == "__main__":
    main()
