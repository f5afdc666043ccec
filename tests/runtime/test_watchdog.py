"""The progress watchdog (init(timeout=...)): a stopped or looping rank ends the job, saying where."""

import os
import re
import signal
import textwrap

from launch import run_mpi

TIMEOUT = 3.0  # step_timeout of these jobs; a healthy step of this model takes milliseconds

# Rank size-1 misbehaves before the forward of step 4, in the way argv[1] names.
SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    import numpy as np
    from mpigrad.autograd import cross_entropy, nn
    from mpigrad.optim import Adam
    from mpigrad.runtime import DataParallel, init

    case, timeout = sys.argv[1], float(sys.argv[2])
    comm = init(timeout=timeout)
    dp = DataParallel(nn.MLP([16, 64, 4], rng=np.random.default_rng(0)), comm, bucket_mb=0.001)
    opt = Adam(dp.parameters())
    x, y = np.ones((8, 16), np.float32), np.zeros(8, np.int64)

    def spin_forever():
        while True:
            pass

    for step in range(1, 9):
        opt.zero_grad()
        if comm.rank == comm.size - 1 and step == 4:
            if case == "sleep":
                time.sleep(0.6 * timeout)
            elif case == "loop":
                spin_forever()
            elif case == "stop":
                os.kill(os.getpid(), signal.SIGSTOP)
        cross_entropy(dp(x), y).backward()
        opt.step()
    print("finished", flush=True)
""")


def processes_running(marker):
    """PIDs whose command line holds `marker` (this test's own script path)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                found.append(int(pid))
        except OSError:
            pass
    return found


def run_case(tmp_path, world, case, env=None, timeout=TIMEOUT):
    script = tmp_path / f"watched_{case}.py"
    script.write_text(SCRIPT)
    try:
        return run_mpi(world, [str(script), case, str(timeout)], timeout=timeout + 60, env=env)
    finally:
        for pid in processes_running(str(script)):  # a stopped rank left behind would never exit
            os.kill(pid, signal.SIGKILL)


def test_a_stopped_rank_ends_the_job_within_the_bound(tmp_path):
    world = 2  # 3 ranks: tests/mpigrad/test_timeout.py
    code, out, err, seconds = run_case(tmp_path, world, "stop")
    assert code != 0 and "finished" not in out
    assert seconds < TIMEOUT + 10, f"the job took {seconds:.1f} s to end"
    first = next(line for line in err.splitlines() if "step_timeout" in line)
    assert re.match(rf"mpigrad: rank [0-{world - 2}] of {world}: step_timeout fired: no progress for "
                    rf"[\d.]+ s \(limit 3 s\) at step 4 in phase '", first), first
    assert "Python stack of rank" in err and "in backward" in err, err  # the noticing rank waits inside backward
    assert f"rank {world - 1} did not answer (stopped, or holding the GIL)" in err, err


def test_a_rank_looping_in_python_is_named_with_its_stack(tmp_path):
    code, out, err, seconds = run_case(tmp_path, 2, "loop")
    assert code != 0 and "finished" not in out
    assert seconds < TIMEOUT + 10, f"the job took {seconds:.1f} s to end"
    # Both timers run out within moments of each other (the waiting rank's last mark is one tiny forward
    # later), so either rank may notice first; whichever does, both say where they are.
    first = next(line for line in err.splitlines() if "step_timeout fired" in line)
    assert re.match(r"mpigrad: rank [01] of 2: step_timeout fired: no progress for [\d.]+ s \(limit 3 s\)", first)
    where = {1: r"step 3 in phase 'after backward \(optimizer step\)'",  # the looper never began step 4
             0: r"step 4 in phase 'backward: sample-count"}  # the other waits in the all-gather
    for rank, place in where.items():
        assert re.search(rf"mpigrad: rank {rank} of 2(: step_timeout fired: no progress for [\d.]+ s "
                         rf"\(limit 3 s\) at| \(rank {1 - rank}'s step_timeout fired\): at) {place}", err), err
    assert re.search(r"watched_loop.py\", line \d+ in spin_forever", err), err  # the looping rank's own stack


def test_a_slow_step_below_the_timeout_never_fires(tmp_path):
    # a 3.6 s sleep under a 6 s limit: the 2.4 s to spare absorb a loaded machine's scheduling delays
    code, out, err, _ = run_case(tmp_path, 2, "sleep", timeout=2 * TIMEOUT)
    assert code == 0, err
    assert out.count("finished") == 2 and "step_timeout" not in err, err


def test_without_thread_multiple_a_stopped_rank_still_ends_the_job(tmp_path):
    """MPI started without MPI_THREAD_MULTIPLE: the watchdog thread must not call MPI, so the noticing
    rank prints its line and stack and exits; mpiexec then ends the job."""
    code, out, err, seconds = run_case(tmp_path, 2, "stop", env={"MPI4PY_RC_THREAD_LEVEL": "serialized"})
    assert code != 0 and "finished" not in out
    assert seconds < TIMEOUT + 10, f"the job took {seconds:.1f} s to end"
    assert re.search(r"mpigrad: rank 0 of 2: step_timeout fired: no progress for [\d.]+ s \(limit 3 s\) at step 4",
                     err), err
    assert "Python stack of rank 0" in err and "did not answer" not in err, err  # no alarms without threaded MPI
