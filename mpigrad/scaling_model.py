"""The scaling model: all-reduce costs, overlap with backward, and step time at P ranks (pure maths).

Sources (docs/scaling.md writes them out): the alpha-beta (Hockney) cost of a message, alpha + n
beta; Thakur, Rabenseifner and Gropp (2005), "Optimization of Collective Communication Operations
in MPICH": ring 2(P-1) alpha + 2 (P-1)/P n beta, recursive doubling log2(P) (alpha + n beta),
Rabenseifner's reduce-scatter + all-gather 2 log2(P) alpha + 2 (P-1)/P n beta; MPI picks roughly
the cheapest. Patarasuk and Yuan (2009): the ring is bandwidth-optimal.
"""

import math
from dataclasses import dataclass, field


@dataclass
class Link:
    """alpha: seconds per message; beta: seconds per byte, as seen by one rank."""
    alpha: float
    beta: float


@dataclass
class Job:
    """What one rank's step is made of, as measured (seconds; bytes)."""
    micro_batches: int  # K of the global batch
    micro_batch: int  # samples per micro-batch
    compute_per_micro_batch: float  # forward + backward of one micro-batch, at measured_ranks_per_node
    rest_of_step: float  # optimizer, clip, loss gather: per step, not scaled
    ready: list  # per bucket: (bytes, seconds into the synchronising backward when it can start)
    backward: float  # seconds of the synchronising micro-batch's backward
    deterministic: bool = False
    codec_seconds_per_byte: float = 0.0  # encode + sum + decode of 16-bit wire codes, per float32 byte
    measured_ranks_per_node: int = 1
    # a micro-batch's compute in the job's steps against the same micro-batch run by one rank of the node
    # while the others sleep: shared memory bandwidth and caches, and waiting ranks polling for messages
    contention: float = 1.0
    blas_threads: int = 1


@dataclass
class Machine:
    cores_per_node: int
    intra: Link  # between ranks of a node (shared memory)
    inter: Link = None  # between nodes (None: not measured)
    thread_speedup: dict = field(default_factory=lambda: {1: 1.0})  # BLAS threads -> compute speedup


def ring(p, n, link):
    return 2 * (p - 1) * link.alpha + 2 * (p - 1) / p * n * link.beta


def recursive_doubling(p, n, link):
    return math.ceil(math.log2(p)) * (link.alpha + n * link.beta)


def rabenseifner(p, n, link):
    return 2 * math.ceil(math.log2(p)) * link.alpha + 2 * (p - 1) / p * n * link.beta


def allreduce_time(p, n, link):
    """Seconds of an all-reduce of n bytes over p ranks: the cheapest of MPICH's algorithms."""
    if p <= 1:
        return 0.0
    return min(ring(p, n, link), recursive_doubling(p, n, link), rabenseifner(p, n, link))


def placement(world, ranks_per_node):
    """(ranks on a node, nodes) when world ranks fill nodes of ranks_per_node."""
    per_node = min(world, ranks_per_node)
    return per_node, math.ceil(world / per_node)


def wire_link(world, ranks_per_node, machine, shared=True):
    """The link an all-reduce over `world` ranks is limited by: the network's once it spans nodes. In a
    ring of consecutive ranks one flow crosses each node's NIC (shared=False); in recursive doubling
    and Rabenseifner's halving all r ranks of a node send across it at once (each gets 1/r of it)."""
    per_node, nodes = placement(world, ranks_per_node)
    if nodes == 1:
        return machine.intra
    net = machine.inter
    return Link(max(net.alpha, machine.intra.alpha), max(net.beta * (per_node if shared else 1), machine.intra.beta))


def allreduce_across(world, ranks_per_node, machine, n):
    """AR(P, n) on this placement: the ring on an unshared NIC, the others on a shared one."""
    if world <= 1:
        return 0.0
    shared = wire_link(world, ranks_per_node, machine)
    return min(ring(world, n, wire_link(world, ranks_per_node, machine, shared=False)),
               recursive_doubling(world, n, shared), rabenseifner(world, n, shared))


def bucket_times(world, ranks_per_node, machine, buckets, wire_bytes=4):
    """Seconds of each bucket's all-reduce (buckets: float32 bytes), at wire_bytes per element."""
    return [allreduce_across(world, ranks_per_node, machine, b * wire_bytes / 4) for b in buckets]


def exposed_wait(ready, durations, backward_end):
    """Buckets start when ready (and in order), one at a time; what ends after backward is exposed."""
    finish = 0.0
    for start, took in zip(ready, durations):
        finish = max(finish, start) + took
    return max(0.0, finish - backward_end)


def compute_slowdown(job, machine, per_node, threads):
    """A rank's compute time against one rank alone on a node with one thread: memory contention grown
    linearly from the measured point, cores time-shared beyond the node's, BLAS threads' speedup."""
    if job.measured_ranks_per_node > 1:
        grow = (job.contention - 1) * (per_node - 1) / (job.measured_ranks_per_node - 1)
    else:
        grow = 0.0
    oversubscribed = max(1.0, per_node * threads / machine.cores_per_node)
    return (1 + grow) * oversubscribed / thread_speedup(machine, threads)


def thread_speedup(machine, threads):
    """Measured at 1 and at all cores' threads; linear in between, flat beyond."""
    points = sorted(machine.thread_speedup.items())
    if threads >= points[-1][0]:
        return points[-1][1]
    (t0, s0), (t1, s1) = points[0], next(p for p in points if p[0] >= threads)
    return s0 if t1 == t0 else s0 + (s1 - s0) * (threads - t0) / (t1 - t0)


def step_time(job, machine, world, ranks_per_node, per_rank_micro_batches, wire_bytes=4, threads=None):
    """(step seconds, exposed communication seconds) of one rank at `world` ranks."""
    threads = job.blas_threads if threads is None else threads
    per_node, _ = placement(world, ranks_per_node)
    measured = compute_slowdown(job, machine, job.measured_ranks_per_node, job.blas_threads)
    scale = compute_slowdown(job, machine, per_node, threads) / measured
    compute = per_rank_micro_batches * job.compute_per_micro_batch * scale
    scale *= min(1.0, per_rank_micro_batches)  # a share of a micro-batch: a shorter backward
    sizes = [b for b, _ in job.ready]
    codec = sum(sizes) * job.codec_seconds_per_byte if wire_bytes < 4 and world > 1 else 0.0
    small = 4 * allreduce_across(world, ranks_per_node, machine, 64)  # counts, norm shares, used mask, loss
    if job.deterministic:  # one all-to-all and one all-gather of the whole gradient after backward
        link = wire_link(world, ranks_per_node, machine)  # an all-to-all: every rank across the NIC at once
        total = sum(sizes) * wire_bytes / 4
        wait = 0.0 if world == 1 else 2 * ((world - 1) * link.alpha + (world - 1) / world * total * link.beta)
    else:
        durations = bucket_times(world, ranks_per_node, machine, sizes, wire_bytes)
        wait = exposed_wait([t * scale for _, t in job.ready], durations, job.backward * scale)
    return compute + job.rest_of_step + codec + small + wait, wait


def predict(job, machine, world, scaling, ranks_per_node, measured_world, wire_bytes=4):
    """One entry of the prediction: strong keeps the global batch, weak this launch's per-rank batch."""
    k = job.micro_batches
    if scaling == "strong":
        per_rank = math.ceil(k / world) if world <= k else k / world
        base_per_rank = k
    else:
        per_rank = k / measured_world
        base_per_rank = per_rank
    feasible = scaling == "weak" or world <= k * job.micro_batch
    # a share of a micro-batch costs its share of the compute (fewer samples per pass)
    t, wait = step_time(job, machine, world, ranks_per_node, max(per_rank, 1.0 / job.micro_batch), wire_bytes)
    t1, _ = step_time(job, machine, 1, ranks_per_node, base_per_rank, wire_bytes)
    efficiency = t1 / (world * t) if scaling == "strong" else t1 / t
    return {"world": world, "scaling": scaling, "step_time": t, "efficiency": efficiency, "exposed_comm": wait,
            "ranks_per_node": min(world, ranks_per_node), "nodes": placement(world, ranks_per_node)[1],
            "feasible": feasible}
