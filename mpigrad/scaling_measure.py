"""What `mpigrad scaling` measures in this launch: the links (all-reduce times fitted to alpha + n beta),
the node's cores, and the job's compute (per micro-batch, bucket readiness in backward, contention)."""

import contextlib
import os
import statistics
import time

import numpy as np

from .scaling_model import Link


def node_layout(comm):
    """(node communicator, leaders communicator or None, cores this node's ranks may run on).

    A node is a host name, not MPI.COMM_TYPE_SHARED: with MPIR_CVAR_NOLOCAL=1 MPICH splits every rank
    into its own shared-memory group, yet the ranks still share the host's cores, and the link between
    them (measured on this communicator) is then the network module's."""
    from mpi4py import MPI
    names = comm.mpi.allgather(MPI.Get_processor_name())
    node = comm.mpi.Split(names.index(names[comm.rank]), comm.rank)
    leaders = comm.mpi.Split(0 if node.Get_rank() == 0 else MPI.UNDEFINED, comm.rank)
    cores = set().union(*node.allgather(sorted(os.sched_getaffinity(0))))
    return node, (leaders if leaders != MPI.COMM_NULL else None), max(len(cores), 1)


def time_allreduce(mpi_comm, nbytes, budget=0.1):
    """Median seconds of an in-place float32 Allreduce of nbytes over mpi_comm (collective)."""
    from mpi4py import MPI
    buffer = np.ones(max(1, int(nbytes) // 4), np.float32)

    def once():
        mpi_comm.Barrier()
        start = time.perf_counter()
        mpi_comm.Allreduce(MPI.IN_PLACE, buffer)
        return time.perf_counter() - start
    first = [once() for _ in range(3)]
    reps = mpi_comm.bcast(int(min(40, max(5, budget / max(min(first), 1e-6)))))  # rank 0's count for all
    return float(np.percentile([once() for _ in range(reps)], 25))  # the lower quartile: less of the machine's noise


def fit_link(mpi_comm, sizes):
    """Least-squares t = a + b n over the sizes, turned into a per-message alpha and per-byte beta of
    Rabenseifner's algorithm at this size (2 log2 p alpha + 2 (p-1)/p n beta; the ring's at p = 2)."""
    p = mpi_comm.Get_size()
    points = [(n, time_allreduce(mpi_comm, n)) for n in sizes]
    n = np.array([x for x, _ in points], float)
    t = np.array([y for _, y in points], float)
    b, a = np.polyfit(n, t, 1)
    steps = 2 * np.ceil(np.log2(p))
    return Link(max(a, 1e-7) / steps, max(b, 1e-13) / (2 * (p - 1) / p)), points


def link_sizes(bucket_bytes):
    """The job's bucket sizes plus small messages, so both terms are fitted."""
    return sorted({64, 4096, 65536, *[int(b) for b in bucket_bytes]})


def memory_link(total_bytes):
    """No peer on this node: a shared-memory all-reduce bounded by copies (each byte into the shared
    segment and the peer's back: 2 copies of the measured copy bandwidth); latency 5 us (MPICH shm)."""
    a = np.ones(max(1, int(total_bytes) // 4), np.float32)
    b = np.empty_like(a)
    times = []
    for _ in range(7):
        start = time.perf_counter()
        np.copyto(b, a)
        times.append(time.perf_counter() - start)
    seconds_per_byte = statistics.median(times) / a.nbytes
    return Link(5e-6, 2 * seconds_per_byte)


def idle_wait(mpi_comm):
    """Wait in a barrier by polling with sleeps (a spinning MPI wait would eat a core)."""
    request = mpi_comm.Ibarrier()
    while not request.Test():
        time.sleep(0.0005)


def timed_alone(node, work, reps):
    """Each rank of the node in turn runs work() reps times while the others sleep: median seconds."""
    mine = None
    for turn in range(node.Get_size()):
        if node.Get_rank() == turn:
            times = []
            for _ in range(reps):
                start = time.perf_counter()
                work()
                times.append(time.perf_counter() - start)
            mine = statistics.median(times)
            node.Ibarrier().Wait()
        else:
            idle_wait(node)
    return mine


def codec_seconds_per_byte(total_bytes, kind):
    """Encode, float32 add and decode of a gradient's worth of 16-bit codes, per float32 byte."""
    from mpigrad.runtime.compression import decode, encode
    x = np.linspace(-1, 1, max(1, int(total_bytes) // 4), dtype=np.float32)
    codes = np.empty(x.size, np.uint16)
    out = np.empty_like(x)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        encode(x, kind, out=codes)
        decode(codes, kind, out=out)
        out += x
        encode(out, kind, out=codes)
        decode(codes, kind, out=out)
        times.append(time.perf_counter() - start)
    return statistics.median(times) / x.nbytes


@contextlib.contextmanager
def blas_threads(count):
    from mpigrad.runtime.comm import set_blas_threads
    from mpigrad.runtime import comm as comm_module
    before = comm_module._blas_threads or 1
    set_blas_threads(count)
    try:
        yield
    finally:
        set_blas_threads(before)
