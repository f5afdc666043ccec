"""Progress watchdog: a thread per rank ends the job when its rank has made no progress for
`timeout` seconds, saying which rank noticed, at which step and phase, with every live rank's stack.

Progress is a call to `progress(phase, step)`. DataParallel marks forward, every gradient of
backward, the gradient all-reduce and the end of backward; `mpigrad train` also marks the
optimizer step, evaluation and checkpoint writes. A rank blocked in a collective whose peer is
stopped, looping or dead marks nothing, so its timer runs out. The thread needs the GIL only
briefly: mpi4py releases it inside blocking MPI calls and a pure-Python loop hands it over every
switch interval. mpi4py starts MPI with MPI_THREAD_MULTIPLE, so this thread may probe, send and
abort while the main thread sits inside a collective.
"""

import atexit
import faulthandler
import os
import tempfile
import threading
import time

ALARM, REPLY = 7001, 7002  # tags on the watchdog's own communicator
GRACE = 2.0  # seconds the noticing rank waits for the other ranks' stacks before aborting
STARTUP_EXTRA = 120.0  # start-up allowance: imports, data loading, resume, the first step


class _Marks:
    last = (time.monotonic(), "start-up", 1)  # (time, phase, step), replaced whole: no torn reads
    step_pending = False  # a synchronising backward ended: the next unnumbered mark is the next step
    steps_ended = 0


_marks = _Marks()
_watchdog = None


def progress(phase, step=None):
    """Mark progress: this rank is now in `phase` of `step` (default: the step marked last)."""
    if step is None:
        step = _marks.last[2] + 1 if _marks.step_pending else _marks.last[2]
    _marks.step_pending = False
    _marks.last = (time.monotonic(), phase, step)


def end_step():
    """A synchronising backward finished: the first step is over, and the next forward is a new step."""
    _marks.step_pending = True
    _marks.steps_ended += 1


def startup_limit(timeout):
    """Before the first step has finished: twice the step limit, and at least 120 s more than it."""
    return max(2 * timeout, timeout + STARTUP_EXTRA)


def prepare(comm):
    """The watchdog's own communicator, made once while every rank is sure to be here (MPI start-up):
    a collective made later, when the watchdog starts, would itself wait unwatched for a stopped rank."""
    threaded = comm.mpi is not None and _thread_multiple()
    comm.watchdog_alarms = comm.mpi.Dup() if threaded and comm.size > 1 else None


def start(comm, timeout):
    """Watch this rank with `timeout` seconds per step (None or 0 stops watching). Local to this rank
    once prepare(comm) has run (init() does), so a rank can start watching before its first collective."""
    global _watchdog
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout >= 0):
        raise ValueError(f"timeout={timeout!r} must be a number of seconds >= 0 (0 or None: no watchdog)")
    if _watchdog is not None:
        _watchdog.stop()
        _watchdog = None
    if timeout:
        _watchdog = Watchdog(comm, float(timeout))
    return _watchdog


def stop():
    start(None, None)


atexit.register(stop)  # before MPI is finalised: the thread must not probe a finalised MPI


class Watchdog:
    """The thread: polls its rank's marks and the other ranks' alarms; fires once, then aborts."""

    def __init__(self, comm, timeout):
        self.comm, self.timeout = comm, timeout
        self.threaded_mpi = comm.mpi is not None and _thread_multiple()
        if not hasattr(comm, "watchdog_alarms"):
            prepare(comm)  # collective: a Comm that init() did not make
        self.alarms = comm.watchdog_alarms
        self.heard_alarm = 0.0
        self._stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="mpigrad-watchdog", daemon=True)
        self.thread.start()

    def stop(self):
        self._stopping.set()
        self.thread.join()

    def limit(self):
        return self.timeout if _marks.steps_ended else startup_limit(self.timeout)

    def _watch(self):
        interval = min(1.0, self.timeout / 10)
        while not self._stopping.wait(interval):
            if self.alarms is not None and self.alarms.iprobe(tag=ALARM):
                self._answer_alarm()
                continue
            since, phase, step = _marks.last
            idle = time.monotonic() - since
            if idle > self.limit() and time.monotonic() - self.heard_alarm > 2 * GRACE:
                self._fire(idle, phase, step)
                return

    def _fire(self, idle, phase, step):
        rank, size = self.comm.rank, self.comm.size
        _write(f"mpigrad: rank {rank} of {size}: step_timeout fired: no progress for {idle:.1f} s "
               f"(limit {self.limit():g} s) at step {step} in phase '{phase}'; ending the job\n"
               + stack_text(f"Python stack of rank {rank} (all threads):"))
        if self.alarms is not None:
            for other in range(size):
                if other != rank:
                    self.alarms.isend(rank, dest=other, tag=ALARM)
            _write(self._collect_replies() + "\n")
        if self.threaded_mpi:
            self.comm.abort(1)
        os._exit(1)  # MPI may not be called from this thread: mpiexec ends the job when a rank dies

    def _answer_alarm(self):
        """Another rank's timeout fired: print where this rank is, and tell that rank."""
        self.heard_alarm = time.monotonic()
        noticing = self.alarms.recv(tag=ALARM)
        since, phase, step = _marks.last
        idle = time.monotonic() - since
        _write(stack_text(f"mpigrad: rank {self.comm.rank} of {self.comm.size} (rank {noticing}'s step_timeout "
                          f"fired): at step {step} in phase '{phase}', last progress {idle:.1f} s ago; "
                          "its Python stack (all threads):"))
        self._reply(noticing)

    def _reply(self, noticing):
        since, phase, step = _marks.last
        self.alarms.isend((self.comm.rank, step, phase, time.monotonic() - since), dest=noticing, tag=REPLY)

    def _collect_replies(self):
        """One line: where every other rank is; ranks that never answer are stopped or hold the GIL."""
        answers, deadline = {}, time.monotonic() + GRACE
        while len(answers) < self.comm.size - 1 and time.monotonic() < deadline:
            if self.alarms.iprobe(tag=REPLY):
                rank, step, phase, idle = self.alarms.recv(tag=REPLY)
                answers[rank] = f"rank {rank} at step {step} in '{phase}' ({idle:.1f} s since progress)"
            elif self.alarms.iprobe(tag=ALARM):  # another rank fired at the same moment: it has our stack
                self._reply(self.alarms.recv(tag=ALARM))
            else:
                time.sleep(0.02)
        silent = [r for r in range(self.comm.size) if r != self.comm.rank and r not in answers]
        parts = [answers[r] for r in sorted(answers)]
        parts += [f"rank {r} did not answer (stopped, or holding the GIL)" for r in silent]
        return f"mpigrad: step_timeout on rank {self.comm.rank}: " + "; ".join(parts)


def _thread_multiple():
    """Whether MPI allows calls from this thread while the main thread is inside MPI (mpi4py's default)."""
    from mpi4py import MPI
    return MPI.Query_thread() == MPI.THREAD_MULTIPLE


def stack_text(title):
    """`title`, then faulthandler's dump of every thread of this process."""
    with tempfile.TemporaryFile() as f:
        faulthandler.dump_traceback(f, all_threads=True)
        f.seek(0)
        return f"{title}\n{f.read().decode(errors='replace')}"


def _write(text):
    """One write to fd 2, so another rank's report does not cut through this one."""
    os.write(2, text.encode())
