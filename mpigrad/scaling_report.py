"""Network presets, advice (bucket size, ranks per node, BLAS threads) and the text table of `mpigrad scaling`."""

import dataclasses

from .scaling_model import Job, Link, Machine, step_time

# Per-rank alpha (s) and beta (s/byte) of networks a user may book; docs/scaling.md gives the sources.
NETWORKS = {
    "10gbe": {"link": Link(25e-6, 1 / 1.17e9), "label": "10 Gb/s Ethernet (TCP)"},
    "25gbe": {"link": Link(15e-6, 1 / 2.9e9), "label": "25 Gb/s Ethernet (TCP)"},
    "100gbe": {"link": Link(10e-6, 1 / 11.0e9), "label": "100 Gb/s Ethernet (TCP)"},
    "hdr": {"link": Link(1.1e-6, 1 / 24.0e9), "label": "InfiniBand HDR (200 Gb/s)"},
}
CANDIDATE_BUCKET_MB = (0.25, 0.5, 1, 2, 4, 8, 16, 32)


def best_bucket_mb(job, machine, probe, world, per_node):
    """The candidate bucket size with the least exposed wait at `world` (ties: the smaller)."""
    waits = []
    for mb in CANDIDATE_BUCKET_MB:
        trial = dataclasses.replace(job, ready=probe.bucket_ready(mb * 2**20))
        _, wait = step_time(trial, machine, world, per_node, job.micro_batches / max(world, 1))
        waits.append((round(wait, 7), mb))
    return min(waits)[1]


def best_layout(job, machine, nodes, measured_world):
    """(ranks per node, BLAS threads per rank) with the shortest strong-scaling step on `nodes` nodes,
    among layouts that fill the node's cores."""
    cores = machine.cores_per_node
    options = []
    for per_node in [r for r in range(1, cores + 1) if cores % r == 0]:
        threads = cores // per_node
        world = per_node * nodes
        if world > job.micro_batches * job.micro_batch:
            continue
        t, _ = step_time(job, machine, world, per_node, job.micro_batches / world, threads=threads)
        options.append((t, per_node, threads))
    if not options:
        return None  # more nodes than samples in the global batch
    t, per_node, threads = min(options)
    return {"nodes": nodes, "ranks_per_node": per_node, "blas_threads": threads, "step_time": t}


def recommendations(job, machine, probe, measured_world):
    per_node = max(1, machine.cores_per_node // job.blas_threads)
    deterministic = job.deterministic
    layouts = [best_layout(job, machine, n, measured_world) for n in (1, 16)]
    advice = {"layout": [layout for layout in layouts if layout is not None]}
    if not deterministic:
        advice["bucket_mb"] = {str(w): best_bucket_mb(job, machine, probe, w, per_node) for w in (per_node, 64)}
    return advice


def table(result):
    """The human-readable report."""
    m = result["measured"]
    lines = [f"measured at world {result['world']} ({result['ranks_per_node']} rank(s) per node, "
             f"{result['cores_per_node']} cores per node, {result['blas_threads']} BLAS thread(s) per rank): "
             f"step {m['step_time'] * 1e3:.1f} ms, compute {m['compute_per_micro_batch'] * 1e3:.1f} ms per "
             f"micro-batch, comm wait {m['comm_wait'] * 1e3:.2f} ms, gradient {m['gradient_bytes'] / 2**20:.2f} MB "
             f"in {len(m['buckets'])} bucket(s)",
             _link_line("inside a node", m["intra_node"]),
             _link_line(f"between nodes ({result['network']})", m["inter_node"]),
             f"ranks beyond {result['cores_per_node']} cores per node: {result['oversubscription']}",
             "", f"{'world':>6} {'nodes':>5} | {'strong step':>11} {'eff':>5} {'exposed':>8} {'bf16':>8} | "
                 f"{'weak step':>10} {'eff':>5} {'bf16':>8}"]
    by_world = {}
    for e in result["predicted"]:
        by_world.setdefault(e["world"], {})[e["scaling"]] = e
    for world, pair in sorted(by_world.items()):
        s, w = pair["strong"], pair["weak"]
        mark = "" if s["feasible"] else "*"
        lines.append(f"{world:>6} {s['nodes']:>5} | {s['step_time'] * 1e3:>9.1f}ms{mark:1} {s['efficiency']:>5.2f} "
                     f"{s['exposed_comm'] * 1e3:>6.2f}ms {s['step_time_bfloat16'] * 1e3:>6.1f}ms | "
                     f"{w['step_time'] * 1e3:>8.1f}ms {w['efficiency']:>5.2f} {w['step_time_bfloat16'] * 1e3:>6.1f}ms")
    lines.append("* more ranks than samples in the global batch: not runnable as configured")
    for layout in result["advice"]["layout"]:
        lines.append(f"on {layout['nodes']} node(s): {layout['ranks_per_node']} rank(s) per node x "
                     f"{layout['blas_threads']} BLAS thread(s) (predicted step {layout['step_time'] * 1e3:.1f} ms)")
    for world, mb in result["advice"].get("bucket_mb", {}).items():
        lines.append(f"bucket size with the least exposed wait at world {world}: {mb:g} MB")
    return "\n".join(lines)


def _link_line(where, link):
    how = "measured" if link["measured"] else "assumed"
    return (f"{where}: latency {link['alpha'] * 1e6:.1f} us, bandwidth {1 / link['beta'] / 1e9:.2f} GB/s per rank "
            f"({how})")


def model_of(result):
    """(Job, Machine) back from the JSON object `mpigrad scaling --json` printed."""
    m, j = result["measured"], result["job"]
    job = Job(micro_batches=j["micro_batches"], micro_batch=j["micro_batch"],
              compute_per_micro_batch=m["compute_per_micro_batch"], rest_of_step=m["rest_of_step"],
              ready=[tuple(b) for b in m["buckets"]], backward=m["backward"], deterministic=j["deterministic"],
              codec_seconds_per_byte=m["codec_seconds_per_byte"], measured_ranks_per_node=result["ranks_per_node"],
              contention=m["contention"], blas_threads=result["blas_threads"])
    link = lambda d: Link(d["alpha"], d["beta"])
    machine = Machine(cores_per_node=result["cores_per_node"], intra=link(m["intra_node"]),
                      inter=link(m["inter_node"]),
                      thread_speedup={int(k): v for k, v in m["thread_speedup"].items()})
    return job, machine
