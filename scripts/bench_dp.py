"""REF-MLP and the default job: data-parallel step time at world sizes 1 and 2, against one rank with
all cores as BLAS threads, a bare Allreduce and torch DDP.

    python scripts/bench_dp.py [--steps 20] [--bucket-mb 4] [--job-steps 40]

MLP 784-1024-1024-10 (ReLU, float32), global batch 256 split over the ranks, cross_entropy,
Adam(lr=1e-3, weight_decay=1e-4), clip_grad_norm(1.0); 5 warm-up and --steps timed steps; one
BLAS thread per rank, except the "1 rank, all cores" rows (what init() picks for a rank alone on the
node: every core as a BLAS thread). The default job (`mpigrad train`, its built-in transformer) runs
through the CLI and is timed from its metrics' step_time. Each configuration runs under mpiexec in
its own job; this script prints medians side by side. torch DDP (gloo) runs only when torch is installed (pip install '.[bench]').
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "MPIGRAD_BLAS_THREADS"):
    os.environ.setdefault(_name, "1")  # one BLAS thread per rank unless a row asks for more (blas_env)

from machine import machine_line  # noqa: E402  (scripts/ is on sys.path)

SIZES = [784, 1024, 1024, 10]
GLOBAL_BATCH = 256
KINDS = ("modes", "modes-threaded", "allreduce", "torch")
MODES = ("mpigrad", "zero", "accumulate", "deterministic", "bare", "adam")
CORES = len(os.sched_getaffinity(0))
CPU_TIME = False  # set in workers by --cpu-time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--bucket-mb", type=float, default=None)
    parser.add_argument("--job-steps", type=int, default=40, help="steps of the default job per run (0: skip it)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time the REF-MLP modes by each rank's CPU time (a loaded, shared machine: the time "
                             "other processes take is left out; waits spin, so they still count); skips the "
                             "threaded, torch and default-job rows, which need wall-clock time")
    parser.add_argument("--worker", choices=KINDS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    print(machine_line(), flush=True)
    results = {}
    for kind in ("modes", "allreduce", "torch"):
        for n in (1, 2):
            if kind == "torch" and (args.cpu_time or not _has_torch()):
                continue
            results[kind, n] = launch(kind, n, args)
    if args.cpu_time:
        return report_cpu(results)
    results["threads", 1] = launch("modes-threaded", 1, args, threads=CORES)
    if args.job_steps:
        for n, threads in ((1, 1), (1, CORES), (2, 1)):
            results["job", n, threads] = run_job(n, threads, args.job_steps)
    report(results)


def mpiexec_command(n):
    mpiexec = Path(sys.executable).parent / "mpiexec"
    return [str(mpiexec if mpiexec.exists() else "mpiexec"), "-n", str(n)]


def blas_env(threads):
    return {**os.environ, **{k: str(threads) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                      "MPIGRAD_BLAS_THREADS")}}


def run_job(n, threads, steps):
    """Median step_time (ms) of the default job through the CLI, warm-up steps left out."""
    import tempfile
    with tempfile.TemporaryDirectory() as out:
        command = mpiexec_command(n) + [sys.executable, "-m", "mpigrad", "train", "--quiet", "--out", out]
        for setting in (f"steps={steps}", "eval_every=0", "checkpoint_every=0", "sample_chars=0", "log_every=1",
                        "digest_every=0"):
            command += ["--set", setting]
        done = subprocess.run(command, capture_output=True, text=True, timeout=1200, env=blas_env(threads))
        if done.returncode:
            sys.exit(f"default job at world {n} failed:\n{done.stderr}")
        with open(os.path.join(out, "metrics.jsonl")) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    times = [r["step_time"] * 1e3 for r in rows if "step_time" in r][5:]
    import statistics
    return {"step_ms": statistics.median(times)}


def launch(kind, n, args, threads=1):
    command = mpiexec_command(n) + [sys.executable, __file__, "--worker", kind, "--steps", str(args.steps)]
    if args.cpu_time:
        command.append("--cpu-time")
    if args.bucket_mb is not None:
        command += ["--bucket-mb", str(args.bucket_mb)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=blas_env(threads))
    if done.returncode:
        sys.exit(f"{kind} at world {n} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def worker(args):
    import numpy as np
    if os.environ.get("PMI_RANK", "0") == "0":
        print(machine_line(sgemm=False), file=sys.stderr, flush=True)
    global CPU_TIME
    CPU_TIME = args.cpu_time
    if args.worker == "torch":
        from torch_ddp_worker import run_torch  # optional: only imported when torch is installed
        result = run_torch(SIZES, GLOBAL_BATCH, args.steps)
    elif args.worker == "allreduce":
        result = run_allreduce(args.steps)
    else:
        # deterministic mode pins BLAS to one thread for the whole process: not in the threaded run
        modes = MODES if args.worker == "modes" else ("mpigrad", "zero")
        result = run_mpigrad(args.steps, args.bucket_mb, modes)
    if result is not None:
        print(json.dumps({k: float(np.median(v)) if isinstance(v, list) else v for k, v in result.items()}))


def make_trainer(comm, mode, bucket_mb):
    """(dp, opt, step function) for mode: "mpigrad" (replicated Adam), "zero" (ZeRO-1), "accumulate"
    (8 micro-batches of 32 with no_sync), "deterministic" (the same 8 micro-batches, tree-reduced),
    "bare" (forward + backward of the local batch, no DataParallel, no optimizer) or "adam" (the Adam
    kernel alone over 1/P of the parameters, the share one rank updates under ZeRO-1)."""
    import contextlib

    import numpy as np

    if mode in ("bare", "adam"):
        return None, None, (bare_step(comm) if mode == "bare" else adam_step(comm.size))

    from mpigrad.autograd import cross_entropy, nn
    from mpigrad.optim import Adam
    from mpigrad.runtime import DataParallel, ZeroOptimizer

    model = nn.MLP(SIZES, rng=np.random.default_rng(0))
    dp = DataParallel(model, comm, bucket_mb=bucket_mb, deterministic=mode == "deterministic")
    hyper = dict(lr=1e-3, weight_decay=1e-4)
    opt = ZeroOptimizer(dp, Adam, **hyper) if mode == "zero" else Adam(dp.parameters(), **hyper)
    micro = 8 // comm.size if mode in ("accumulate", "deterministic") else 1
    rng = np.random.default_rng(1 + comm.rank)
    local = GLOBAL_BATCH // comm.size
    x = rng.standard_normal((local, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], local)

    def step():
        opt.zero_grad()
        for part in range(micro):
            rows = slice(part * local // micro, (part + 1) * local // micro)
            with dp.no_sync() if part < micro - 1 else contextlib.nullcontext():
                cross_entropy(dp(x[rows]), y[rows]).backward()
        opt.clip_grad_norm(1.0, total_norm=dp.reduced_grad_norm())  # as mpigrad train: the norm from the reduction
        opt.step()
    return dp, opt, step


def run_mpigrad(steps, bucket_mb, modes):
    """Every mode's step in turn, round after round in one job (the machine's noise falls on all alike)."""
    import time

    from mpigrad.runtime import init

    comm = init()
    clock = time.process_time if CPU_TIME else time.perf_counter
    trainers = {mode: make_trainer(comm, mode, bucket_mb) for mode in modes}
    times = {mode: [] for mode in modes}
    waits = {mode: [] for mode in modes}
    skews = []
    for round_ in range(5 + steps):
        for mode, (dp, _, step) in trainers.items():
            comm.Barrier()
            start = clock()
            step()
            if round_ >= 5:
                times[mode].append(clock() - start)
                waits[mode].append(dp.comm_time if dp is not None else 0.0)
                if mode == "mpigrad":  # the part of the wait spent for a slower rank's backward, not on communication
                    starts = comm.allgather_obj(dp.reducer.wait_started)
                    skews.append(max(starts) - dp.reducer.wait_started)
    if not comm.is_main:
        return None
    dp, opt, _ = next(iter(trainers.values()))
    result = {"grad_mb": sum(g.grad.nbytes for g in dp.groups) / 2**20,
              "state_mb": sum(2 * g.data.nbytes for g in dp.groups) / 2**20}
    if "zero" in trainers:
        result["zero_state_mb"] = trainers["zero"][1].state_bytes() / 2**20
    result["mpigrad_comm_ms"] = [(w - k) * 1e3 for w, k in zip(waits["mpigrad"], skews)]
    if "bare" in times:  # paired within each round: the machine's drift cancels, unlike a difference of medians
        result["outside_ms"] = [(t - b) * 1e3 for t, b in zip(times["mpigrad"], times["bare"])]
    for mode in modes:
        result[f"{mode}_ms"] = [t * 1e3 for t in times[mode]]
        result[f"{mode}_wait_ms"] = [w * 1e3 for w in waits[mode]]
    return result


def bare_step(comm):
    """Forward + backward of this rank's batch alone: no DataParallel, no optimizer."""
    import numpy as np

    from mpigrad.autograd import cross_entropy, nn

    from mpigrad.optim import flatten_parameters

    model = nn.MLP(SIZES, rng=np.random.default_rng(0))
    flatten_parameters(model.parameters())  # gradients written into one buffer, as under DataParallel
    rng = np.random.default_rng(1 + comm.rank)
    local = GLOBAL_BATCH // comm.size
    x = rng.standard_normal((local, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], local)

    def step():
        model.zero_grad()
        cross_entropy(model(x), y).backward()
    return step


def adam_step(world):
    """adam_update alone (weight decay, no clip scale: REF-MLP's gradient norm stays under 1.0 with this
    data, so the steps measured beside it never clip) over 1/world
    of the REF-MLP parameters: what one rank's optimizer step costs, replicated (world 1) or ZeRO-1."""
    import numpy as np

    from mpigrad.optim import Scratch, adam_update

    count = sum(a * b + b for a, b in zip(SIZES, SIZES[1:])) // world
    rng = np.random.default_rng(0)
    p, g = (rng.standard_normal(count).astype(np.float32) for _ in range(2))
    m, v, scratch, t = np.zeros_like(p), np.zeros_like(p), Scratch(), [0]

    def step():
        t[0] += 1
        adam_update(p, g, m, v, step=t[0], lr=1e-3, weight_decay=1e-4, scratch=scratch)
    return step


def run_allreduce(steps):
    """Bare MPI collectives over the REF-MLP gradient bytes (one message each): in-place Allreduce, and
    the Reduce_scatter and in-place Allgather a ZeRO-1 step would need instead."""
    import time

    import numpy as np

    from mpigrad.runtime import init

    from mpigrad.runtime.zero import shard_bounds

    comm = init()
    count = sum(a * b + b for a, b in zip(SIZES, SIZES[1:]))
    buffer = np.ones(count, np.float32)
    counts, displs = shard_bounds(count, comm.size)
    shard = np.empty(counts[comm.rank], np.float32)
    times = {"allreduce_ms": [], "reduce_scatter_ms": [], "allgather_ms": []}
    calls = {"allreduce_ms": lambda: comm.Allreduce(buffer),
             "reduce_scatter_ms": lambda: comm.Reduce_scatter(buffer, shard, counts),
             "allgather_ms": lambda: comm.Allgatherv_in_place(buffer, counts, displs)}
    for step in range(5 + steps):
        for name, call in calls.items():
            comm.Barrier()
            start = time.perf_counter()
            call()
            if step >= 5:
                times[name].append((time.perf_counter() - start) * 1e3)
    if comm.is_main:
        return times


def _has_torch():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


def report(r):
    m1, m2, t1 = r["modes", 1], r["modes", 2], r["threads", 1]
    one, two, zero_two = m1["mpigrad_ms"], m2["mpigrad_ms"], m2["zero_ms"]
    best1 = min(t1["mpigrad_ms"], t1["zero_ms"])
    print(f"REF-MLP {SIZES}, global batch {GLOBAL_BATCH}, medians of timed steps (ms); the modes of one world "
          "size ran interleaved in one job")
    print(f"{'':32}{'world 1':>10}{'world 2':>10}")
    print(f"{'1 rank, all {} cores as BLAS'.format(CORES):32}{t1['mpigrad_ms']:10.2f}")
    print(f"{'  same, ZeRO-1 code path':32}{t1['zero_ms']:10.2f}")
    print(f"{'mpigrad step (1 thread/rank)':32}{one:10.2f}{two:10.2f}")
    print(f"{'mpigrad ZeRO-1 step':32}{m1['zero_ms']:10.2f}{zero_two:10.2f}")
    print(f"{'default, 8 x 32 no_sync':32}{m1['accumulate_ms']:10.2f}{m2['accumulate_ms']:10.2f}")
    print(f"{'deterministic (8 x 32)':32}{m1['deterministic_ms']:10.2f}{m2['deterministic_ms']:10.2f}")
    print(f"{'fwd + bwd alone, no DP':32}{m1['bare_ms']:10.2f}{m2['bare_ms']:10.2f}")
    print(f"{'comm wait after backward':32}{m1['mpigrad_wait_ms']:10.2f}{m2['mpigrad_wait_ms']:10.2f}")
    print(f"{'bare Allreduce, same MB':32}{r['allreduce', 1]['allreduce_ms']:10.2f}"
          f"{r['allreduce', 2]['allreduce_ms']:10.2f}")
    print(f"{'bare Reduce_scatter, same MB':32}{r['allreduce', 1]['reduce_scatter_ms']:10.2f}"
          f"{r['allreduce', 2]['reduce_scatter_ms']:10.2f}")
    print(f"{'bare Allgather, same MB':32}{r['allreduce', 1]['allgather_ms']:10.2f}"
          f"{r['allreduce', 2]['allgather_ms']:10.2f}")
    print(f"{'Adam kernel alone (1/world)':32}{m1['adam_ms']:10.2f}{m2['adam_ms']:10.2f}")
    if ("torch", 1) in r:
        print(f"{'torch DDP (gloo) step':32}{r['torch', 1]['step_ms']:10.2f}{r['torch', 2]['step_ms']:10.2f}")
    print(f"world 2 step / 1 rank with all cores: {two / best1:.2f} replicated, {zero_two / best1:.2f} ZeRO-1")
    print(f"speedup of 2 ranks against 1 rank with all cores: {best1 / two:.2f}x replicated, {best1 / zero_two:.2f}x "
          f"ZeRO-1; against 1 rank with one thread: {one / two:.2f}x, {one / zero_two:.2f}x; "
          f"forward + backward alone {m1['bare_ms'] / m2['bare_ms']:.2f}x")
    adam1, adam2 = m1["adam_ms"], m2["adam_ms"]
    outside = m1["outside_ms"]  # median over rounds of (step - forward + backward alone) in the same round
    print(f"world 1, outside forward + backward: {outside:.2f} ms = {outside / adam1:.2f}x the Adam kernel alone "
          f"({adam1:.2f} ms)")
    a2 = r["allreduce", 2]
    floor = m2["bare_ms"] + a2["reduce_scatter_ms"] + a2["allgather_ms"] + adam2
    print(f"world 2 floor, any ZeRO-1 with no overlap: fwd + bwd {m2['bare_ms']:.2f} + bare "
          f"Reduce_scatter {a2['reduce_scatter_ms']:.2f} + Allgather {a2['allgather_ms']:.2f} + Adam on half "
          f"{adam2:.2f} = {floor:.2f} ms = {floor / best1:.2f}x 1 rank with all cores")
    print(f"deterministic mode at world 2 costs {m2['deterministic_ms'] / m2['accumulate_ms']:.2f}x the same "
          f"micro-batches accumulated in the default mode, {m2['deterministic_ms'] / two:.2f}x one "
          "batch of 128")
    print(f"comm wait / bare Allreduce at world 2: {m2['mpigrad_wait_ms'] / r['allreduce', 2]['allreduce_ms']:.2f}; "
          f"counted from the moment the last rank's backward ended: {m2['mpigrad_comm_ms']:.2f} ms, "
          f"{m2['mpigrad_comm_ms'] / r['allreduce', 2]['allreduce_ms']:.2f}")
    if ("torch", 2) in r:
        print(f"world 2 step / torch DDP world 2: {min(two, zero_two) / r['torch', 2]['step_ms']:.2f}")
    print(f"optimizer state per rank: replicated {m2['state_mb']:.1f} MB, "
          f"ZeRO-1 {m2['zero_state_mb']:.1f} MB (gradients {m2['grad_mb']:.1f} MB)")
    jobs = {key[1:]: v["step_ms"] for key, v in r.items() if key[0] == "job"}
    if jobs:
        j1, jall, j2 = jobs[1, 1], jobs[1, CORES], jobs[2, 1]
        print(f"default job (mpigrad train, transformer), median step_time (ms): 1 rank 1 thread {j1:.2f}, "
              f"1 rank {CORES} threads {jall:.2f}, 2 ranks {j2:.2f}")
        print(f"default job speedup of 2 ranks: {jall / j2:.2f}x against 1 rank with all cores, {j1 / j2:.2f}x "
              "against one thread")


def report_cpu(r):
    m1, m2 = r["modes", 1], r["modes", 2]
    print(f"REF-MLP {SIZES}, global batch {GLOBAL_BATCH}, medians of each step's CPU time on rank 0 (ms); the "
          "modes of one world size ran interleaved in one job")
    print(f"{'':32}{'world 1':>10}{'world 2':>10}")
    for mode, label in (("mpigrad", "mpigrad step"), ("zero", "mpigrad ZeRO-1 step"),
                        ("accumulate", "default, 8 x 32 no_sync"), ("deterministic", "deterministic (8 x 32)")):
        print(f"{label:32}{m1[mode + '_ms']:10.2f}{m2[mode + '_ms']:10.2f}")
    print(f"{'fwd + bwd alone, no DP':32}{m1['bare_ms']:10.2f}{m2['bare_ms']:10.2f}")
    print(f"deterministic / accumulated at world 2: {m2['deterministic_ms'] / m2['accumulate_ms']:.2f}; "
          f"at world 1: {m1['deterministic_ms'] / m1['accumulate_ms']:.2f}")
    print(f"ZeRO-1 / replicated at world 2: {m2['zero_ms'] / m2['mpigrad_ms']:.2f}")


if __name__ == "__main__":
    main()
