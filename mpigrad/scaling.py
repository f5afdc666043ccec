"""`mpigrad scaling`: measure this launch's links and the job's compute, predict 1..512 ranks."""

import json
import sys

from .config import ConfigError, load_config
from .scaling_model import Job, Machine, predict, step_time
from .scaling_report import NETWORKS, recommendations, table

WORLDS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
BUCKET_MB = 4.0  # DataParallel's default (runtime/buckets.py)


def scaling_command(config_path, overrides, as_json, network=None, steps=4):
    from mpigrad.runtime import init
    from .job import vote
    comm = init()
    try:
        if network is not None and network not in NETWORKS:
            raise ConfigError(f"--network {network!r} is not one of {', '.join(NETWORKS)}")
        if steps < 1:
            raise ConfigError(f"--steps {steps} must be at least 1")
        cfg = vote(comm, lambda: load_config(config_path, overrides, comm.size))
        result = measure_and_predict(comm, cfg, network, steps)
    except ConfigError as e:
        if comm.is_main:
            print(f"mpigrad scaling: error: {e}", file=sys.stderr, flush=True)
        return 2
    if comm.is_main:
        print(json.dumps(result) if as_json else table(result))
    return 0


def measure_and_predict(comm, cfg, network, steps):
    """Collective: every rank measures; rank 0's figures (the slowest rank's compute) are returned."""
    from .scaling_job import JobProbe
    from .scaling_measure import (blas_threads, codec_seconds_per_byte, fit_link, link_sizes, memory_link,
                                  node_layout, timed_alone)
    from mpigrad.runtime.comm import _blas_threads
    node, leaders, cores = node_layout(comm)
    probe = vote_probe(comm, cfg, JobProbe).wrap()
    compute, rest, backward, wait, step = probe.run(steps)
    buckets = probe.bucket_ready(BUCKET_MB * 2**20)
    total = sum(b for b, _ in buckets)
    sizes = link_sizes([b for b, _ in buckets])
    intra, intra_points = fit_link(node, sizes) if node.Get_size() > 1 else (memory_link(total), [])
    inter, inter_points = fit_link(leaders, sizes) if leaders is not None and leaders.Get_size() > 1 else (None, [])
    inter = comm.bcast_obj(inter)
    work = probe.plain_micro_batch()
    alone = timed_alone(node, work, 3)
    together = _median_together(node, work, 3)
    threads = _blas_threads or 1
    with blas_threads(cores):
        many = timed_alone(node, work, 3)
    codec = codec_seconds_per_byte(total, "bfloat16")
    mine = dict(compute=compute, rest=rest, backward=backward, wait=wait, step=step, alone=alone,
                together=together, many=many)
    everyone = comm.allgather_obj(mine)
    slowest = max(everyone, key=lambda m: m["compute"])
    if not comm.is_main:
        return None
    job = Job(micro_batches=probe.micro_batches, micro_batch=cfg.micro_batch,
              compute_per_micro_batch=slowest["compute"], rest_of_step=slowest["rest"], ready=buckets,
              backward=slowest["backward"], deterministic=cfg.deterministic, codec_seconds_per_byte=codec,
              measured_ranks_per_node=node.Get_size(), contention=max(1.0, slowest["compute"] / slowest["alone"]),
              blas_threads=threads)
    machine = Machine(cores_per_node=cores, intra=intra, inter=inter,
                      thread_speedup={1: 1.0, cores: max(1.0, slowest["alone"] / slowest["many"])})
    return assemble(comm, cfg, job, machine, probe, network, intra_points, inter_points, slowest)


def vote_probe(comm, cfg, probe_class):
    from .job import vote
    return vote(comm, lambda: probe_class(cfg, comm))


def _median_together(node, work, reps):
    """All ranks of the node running work() at once: median seconds (the contention under test)."""
    import statistics
    import time
    times = []
    for _ in range(reps):
        node.Barrier()
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def assemble(comm, cfg, job, machine, probe, network, intra_points, inter_points, measured):
    """The JSON object: what was measured, the predictions, what 16-bit gradients would save, advice."""
    network_name = "measured" if machine.inter is not None else (network or "10gbe")
    if machine.inter is None or network:
        machine.inter = NETWORKS[network or "10gbe"]["link"]
        network_name = network or "10gbe"
    per_node = max(1, machine.cores_per_node // job.blas_threads)
    predicted = []
    for scaling in ("strong", "weak"):
        for world in sorted({*WORLDS, comm.size}):
            entry = predict(job, machine, world, scaling, per_node, comm.size)
            half = predict(job, machine, world, scaling, per_node, comm.size, wire_bytes=2)
            entry["step_time_bfloat16"] = half["step_time"]
            entry["saving_bfloat16"] = 1 - half["step_time"] / entry["step_time"]
            predicted.append(entry)
    this, _ = step_time(job, machine, comm.size, per_node if comm.size > 1 else 1,
                        job.micro_batches / comm.size)
    return {
        "world": comm.size, "cores_per_node": machine.cores_per_node, "ranks_per_node": job.measured_ranks_per_node,
        "blas_threads": job.blas_threads, "network": network_name,
        "oversubscription": "predicted as cores time-shared (ranks x threads beyond cores_per_node)",
        "measured": {"step_time": measured["step"], "compute_per_micro_batch": job.compute_per_micro_batch,
                     "rest_of_step": job.rest_of_step, "comm_wait": measured["wait"], "backward": job.backward,
                     "contention": job.contention, "compute_alone": measured["alone"],
                     "compute_together": measured["together"], "thread_speedup": machine.thread_speedup,
                     "intra_node": {"alpha": machine.intra.alpha, "beta": machine.intra.beta,
                                    "measured": bool(intra_points), "points": intra_points},
                     "inter_node": {"alpha": machine.inter.alpha, "beta": machine.inter.beta,
                                    "measured": bool(inter_points), "points": inter_points},
                     "buckets": job.ready, "gradient_bytes": sum(b for b, _ in job.ready),
                     "codec_seconds_per_byte": job.codec_seconds_per_byte},
        "job": {"micro_batches": job.micro_batches, "micro_batch": job.micro_batch,
                "deterministic": job.deterministic, "grad_comm_dtype": cfg.grad_comm_dtype},
        "predicted_this_launch": this,
        "predicted": predicted,
        "advice": recommendations(job, machine, probe, comm.size),
    }
