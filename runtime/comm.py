"""The communicator: MPI started once, a private clone of COMM_WORLD, abort on any rank's error.

Methods are named after the MPI calls they make; `_obj` methods move pickled Python objects,
the others move numpy buffers without copies.
"""

import functools
import os
import sys
import time
import traceback

_comm = None  # the process's Comm once init() ran
_blas_threads = None  # the BLAS thread count set_blas_threads() set last


def init(blas_threads=None, timeout=None):
    """Start MPI (once), install abort-on-exception, limit BLAS threads; returns the Comm.

    timeout: seconds a rank may go without progress before the job is ended (runtime/watchdog.py);
    given again on every rank, it changes or (0) stops the watchdog. None leaves it as it is."""
    global _comm
    if _comm is None:
        from mpi4py import MPI
        _comm = Comm(MPI.COMM_WORLD.Dup())
        from . import watchdog
        watchdog.prepare(_comm)  # its collective now, while every rank is here: starting to watch is then local
        _install_abort_hook(_comm)
        set_blas_threads(blas_threads if blas_threads is not None else default_blas_threads(_comm))
    if timeout is not None:
        from . import watchdog
        watchdog.start(_comm, timeout)
    return _comm


def current_comm():
    """The process's Comm, starting MPI if nothing has yet."""
    return _comm if _comm is not None else init()


class Comm:
    """A private duplicate of COMM_WORLD: user traffic on COMM_WORLD can never match ours."""

    def __init__(self, mpi_comm):
        self.mpi = mpi_comm
        self.rank = mpi_comm.Get_rank()
        self.size = mpi_comm.Get_size()
        self.is_main = self.rank == 0

    def __repr__(self):
        return f"Comm(rank={self.rank}, size={self.size})"

    def Barrier(self):
        self.mpi.Barrier()

    def Bcast(self, array, root=0):
        self.mpi.Bcast(array, root=root)

    def Allreduce(self, array, op="sum"):
        """In place: array <- op over ranks of array."""
        self.mpi.Allreduce(_in_place(), array, op=_mpi_op(op))

    def Iallreduce(self, array):
        """Start an in-place sum over ranks; returns the request to Wait on."""
        return self.mpi.Iallreduce(_in_place(), array, op=_mpi_op("sum"))

    def Reduce_scatter(self, send, recv, counts):
        """recv <- this rank's block (sizes `counts`, in rank order) of the sum over ranks of send."""
        self.mpi.Reduce_scatter(send, recv, recvcounts=counts, op=_mpi_op("sum"))

    def Allgatherv_in_place(self, array, counts, displs):
        """Every rank's block array[displs[r]:displs[r]+counts[r]] is copied to all ranks."""
        from mpi4py.util.dtlib import from_numpy_dtype
        self.mpi.Allgatherv(_in_place(), [array, counts, displs, from_numpy_dtype(array.dtype)])

    def Alltoallv(self, send, send_counts, send_displs, recv, recv_counts, recv_displs):
        """Rank r's send[send_displs[q]:+send_counts[q]] lands in rank q's recv[recv_displs[r]:+recv_counts[r]]."""
        from mpi4py.util.dtlib import from_numpy_dtype
        kind = from_numpy_dtype(send.dtype)
        self.mpi.Alltoallv([send, send_counts, send_displs, kind], [recv, recv_counts, recv_displs, kind])

    def bcast_obj(self, obj, root=0):
        return self.mpi.bcast(obj, root=root)

    def allgather_obj(self, obj):
        return self.mpi.allgather(obj)

    def allreduce_obj(self, obj, op="sum"):
        return self.mpi.allreduce(obj, op=_mpi_op(op))

    def abort(self, code=1):
        self.mpi.Abort(code)


def _counting_blocked_time(method):
    """Adds the seconds spent inside `method` to comm.blocked_time: a rank's step time less this is its
    own work, which is what tells a straggler (every rank's wall time per step is the same)."""
    @functools.wraps(method)
    def timed(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            self.blocked_time += time.perf_counter() - start
    return timed


Comm.blocked_time = 0.0  # seconds inside blocking MPI calls so far (buckets.py adds its Waits)
for _name in ("Barrier", "Bcast", "Allreduce", "Reduce_scatter", "Allgatherv_in_place", "Alltoallv",
              "bcast_obj", "allgather_obj", "allreduce_obj"):
    setattr(Comm, _name, _counting_blocked_time(getattr(Comm, _name)))


class SerialComm(Comm):
    """One rank, no MPI: what tests and single-process tools use where MPI is not wanted."""

    def __init__(self):
        self.mpi = None
        self.rank, self.size, self.is_main = 0, 1, True

    def Barrier(self):
        pass

    def Bcast(self, array, root=0):
        pass

    def Allreduce(self, array, op="sum"):
        pass

    def Iallreduce(self, array):
        return _DoneRequest()

    def Reduce_scatter(self, send, recv, counts):
        recv[...] = send

    def Allgatherv_in_place(self, array, counts, displs):
        pass

    def bcast_obj(self, obj, root=0):
        return obj

    def allgather_obj(self, obj):
        return [obj]

    def allreduce_obj(self, obj, op="sum"):
        return obj

    def abort(self, code=1):
        os._exit(code)


class _DoneRequest:
    def Wait(self):
        pass

    def Test(self):
        return True


def _in_place():
    from mpi4py import MPI
    return MPI.IN_PLACE


def _mpi_op(name):
    from mpi4py import MPI
    return {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN, "lor": MPI.LOR, "land": MPI.LAND}[name]


def _install_abort_hook(comm):
    """An uncaught exception on one rank would leave the others blocked in their next collective:
    print this rank's traceback, then abort every rank."""
    previous = sys.excepthook

    def abort_on_exception(kind, value, tb):
        if issubclass(kind, KeyboardInterrupt):  # Ctrl-C reaches every rank: one line each, no tracebacks
            sys.stderr.write(f"mpigrad: rank {comm.rank} of {comm.size}: interrupted (SIGINT); to stop at the end "
                             "of a step with a checkpoint, use mpigrad.runtime.StopSignal\n")
            sys.stderr.flush()
            sys.stdout.flush()
            return None if comm.size == 1 else comm.abort(130)  # alone, Python itself exits as by SIGINT
        if comm.size == 1:
            return previous(kind, value, tb)
        text = "".join(traceback.format_exception(kind, value, tb))
        sys.stderr.write(f"mpigrad: rank {comm.rank} of {comm.size} failed, aborting the job:\n{text}")
        sys.stderr.flush()
        if sys.stdout is not None:  # None when started with stdout closed
            sys.stdout.flush()
        comm.abort(1)

    sys.excepthook = abort_on_exception


def default_blas_threads(comm):
    """The node's idle cores divided by the ranks on this node (blas_threads_for); MPIGRAD_BLAS_THREADS overrides."""
    if os.environ.get("MPIGRAD_BLAS_THREADS"):
        return int(os.environ["MPIGRAD_BLAS_THREADS"])
    from mpi4py import MPI
    node = comm.mpi.Split_type(MPI.COMM_TYPE_SHARED)
    ranks_here = node.Get_size()
    node.Free()
    try:
        load = os.getloadavg()[0]
    except OSError:  # no load average on this system: assume the node is idle
        load = 0.0
    return blas_threads_for(len(os.sched_getaffinity(0)), ranks_here, load)


def blas_threads_for(cores, ranks_here, load):
    """max(1, min(cores, round(cores - load)) // ranks_here): only cores the 1-minute load leaves idle.

    A BLAS thread on a core another process holds waits for it at every GEMM's join: on a busy
    2-core machine two threads per rank made the default job several times slower than one."""
    idle = min(cores, int(cores - load + 0.5))
    return max(1, idle // ranks_here)


def set_blas_threads(count):
    """numpy has already loaded BLAS, so environment variables are too late: threadpoolctl resizes it.

    The count set here last is remembered and setting it again is free: threadpoolctl takes
    about 1 ms a call, and deterministic mode re-asserts one thread after every micro-batch."""
    global _blas_threads
    if _blas_threads == int(count):
        return
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=int(count), user_api="blas")
    _blas_threads = int(count)
