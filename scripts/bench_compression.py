"""grad_comm_dtype: all-reduce time of float32 against 16-bit codes, side by side, at world 2, over shared
memory and MPICH's network module (MPIR_CVAR_NOLOCAL=1); and the default job's comm wait.

    python scripts/bench_compression.py [--reps 30] [--job-steps 30]

Rows (medians of interleaved reps, one message of the size given): "float32" is the in-place Iallreduce
mpigrad's buckets use; "bfloat16" is runtime/compression.py's all-to-all + float32 sum + all-gather
(padded to equal blocks) including encode and decode; "16-bit transfer" is the same two collectives on uint16 codes with no
codec (the bare transfer). Bytes sent per rank: 2 (P-1)/P x 4 bytes per element for float32 (ring or
reduce-scatter + all-gather), 2 (P-1)/P x 2 for 16 bits.
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
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

SIZES = {"default job (0.45 MB)": 118_000, "REF-MLP (7.1 MB)": 1_863_690}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--job-steps", type=int, default=30)
    parser.add_argument("--worker", action="store_true")
    args = parser.parse_args()
    if args.worker:
        return worker(args.reps)
    from machine import machine_line
    print(machine_line())
    for path, env in (("shared memory", {}), ("network module", {"MPIR_CVAR_NOLOCAL": "1"})):
        rows = launch(env, args.reps)
        print(f"\nworld 2, {path}: median ms per all-reduce ({args.reps} interleaved reps)")
        print(f"{'gradient':24} {'float32':>9} {'bfloat16':>9} {'16-bit transfer':>16} {'transfer ratio':>15}")
        for name, r in rows.items():
            print(f"{name:24} {r['float32']:9.3f} {r['bfloat16']:9.3f} {r['transfer16']:16.3f} "
                  f"{r['transfer16'] / r['float32']:15.2f}")
        if args.job_steps:
            waits = {dtype: job_wait(env, dtype, args.job_steps) for dtype in ("float32", "bfloat16")}
            print(f"default job, {args.job_steps} steps, medians: " + ", ".join(
                f"{d}: step {w['step']:.1f} ms, comm wait {w['wait']:.2f} ms" for d, w in waits.items()))


def launch(env, reps):
    mpiexec = Path(sys.executable).parent / "mpiexec"
    done = subprocess.run([str(mpiexec), "-n", "2", sys.executable, __file__, "--worker", "--reps", str(reps)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, **env})
    if done.returncode:
        sys.exit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def job_wait(env, dtype, steps):
    with tempfile.TemporaryDirectory() as out:
        mpiexec = Path(sys.executable).parent / "mpiexec"
        sets = [f"steps={steps}", "eval_every=0", "checkpoint_every=0", "sample_chars=0", "log_every=1",
                "digest_every=0", f"grad_comm_dtype=\"{dtype}\""]
        command = [str(mpiexec), "-n", "2", sys.executable, "-m", "mpigrad", "train", "--quiet", "--out", out]
        done = subprocess.run(command + [a for s in sets for a in ("--set", s)], capture_output=True, text=True,
                              timeout=900, env={**os.environ, **env})
        if done.returncode:
            sys.exit(done.stderr)
        rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))][3:]
    return {"step": 1e3 * statistics.median(r["step_time"] for r in rows),
            "wait": 1e3 * statistics.median(r["comm_time"] for r in rows)}


def worker(reps):
    import time

    import numpy as np
    from mpi4py import MPI

    from mpigrad.runtime import init
    from mpigrad.runtime.compression import WireAllreduce

    comm = init()
    wire = WireAllreduce(comm, "bfloat16")
    results = {}
    for name, count in SIZES.items():
        grad = np.ones(count, np.float32)
        chunk = -(-count // comm.size)
        codes = np.ones(comm.size * chunk, np.uint16)
        received = np.empty_like(codes)

        def transfer16():
            comm.mpi.Alltoall([codes, MPI.UINT16_T], [received, MPI.UINT16_T])
            comm.mpi.Allgather(MPI.IN_PLACE, [codes, MPI.UINT16_T])
        calls = {"float32": lambda: comm.Iallreduce(grad).Wait(), "bfloat16": lambda: wire(grad).Wait(),
                 "transfer16": transfer16}
        times = {k: [] for k in calls}
        for _ in range(3 + reps):
            for key, call in calls.items():
                grad.fill(1.0)
                comm.Barrier()
                start = time.perf_counter()
                call()
                times[key].append(time.perf_counter() - start)
        results[name] = {k: 1e3 * statistics.median(v[3:]) for k, v in times.items()}
    if comm.is_main:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
