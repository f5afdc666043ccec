"""SIGKILL of one rank ends the job; resuming from the last checkpoint reaches the same bits."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from launch import mpiexec
from test_train_cli import TINY, train

# the background job is set for far more steps than it can run before the test signals it (a tiny
# step takes a few ms, so 200 steps could end before a descheduled test sends its signal); the
# straight and resumed runs stop at SHORT (allowed on resume: the schedule is fixed by decay_steps)
LONG = [*TINY, "steps=100000", "decay_steps=38", "checkpoint_every=4", "eval_every=0", "sample_chars=0"]
SHORT = "steps=40"


@contextlib.contextmanager
def started(out, *extra):
    """A 2-rank training job in the background; stopped at the end even when the test fails."""
    sets = [a for item in [*LONG, *extra] for a in ("--set", item)]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    with open(f"{out}.log", "wb") as log:  # a file, not a pipe nobody reads that could fill and block the job
        job = subprocess.Popen([mpiexec(), "-n", "2", sys.executable, "-m", "mpigrad", "train", "--quiet",
                                "--out", str(out), *sets], stdout=log, stderr=log, env=env)
    try:
        yield job
    finally:
        if job.poll() is None:
            job.terminate()  # mpiexec forwards SIGTERM to the ranks
            try:
                job.wait(timeout=30)
            except subprocess.TimeoutExpired:
                job.kill()
                job.wait(timeout=30)


def ranks_of(out):
    """PIDs of the python rank processes of the job writing to `out`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        launcher = os.path.basename(cmdline[0]).startswith((b"mpiexec", b"hydra"))
        if str(out).encode() in cmdline and not launcher:
            found.append(int(pid))
    return found


def wait_for_step(out, step, timeout=120):
    deadline = time.time() + timeout
    path = out / "metrics.jsonl"
    while time.time() < deadline:
        if path.exists():
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            if rows and rows[-1]["step"] >= step:
                return rows[-1]["step"]
        time.sleep(0.05)
    raise AssertionError(f"training never reached step {step}")


def kill_one_rank(out, job):
    ranks = ranks_of(out)
    assert ranks, "no rank processes found"
    os.kill(ranks[-1], signal.SIGKILL)
    start = time.time()
    job.wait(timeout=30)
    return time.time() - start


def test_sigkill_of_a_rank_ends_the_job_and_resume_is_bitwise(tmp_path):
    code, _, err, _ = train(2, tmp_path / "straight", *LONG[len(TINY):], SHORT)
    assert code == 0, err
    with started(tmp_path / "killed") as job:
        wait_for_step(tmp_path / "killed", 10)
        seconds = kill_one_rank(tmp_path / "killed", job)
    assert job.returncode != 0 and seconds < 10, f"exit {job.returncode} after {seconds:.1f} s"
    assert not ranks_of(tmp_path / "killed"), "a rank is still running"
    assert not (tmp_path / "killed" / "final.npz").exists()
    code, _, err, _ = train(2, tmp_path / "killed", *LONG[len(TINY):], SHORT, "resume=true")
    assert code == 0, err
    assert json.loads((tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 40
    with np.load(tmp_path / "straight" / "final.npz") as a, np.load(tmp_path / "killed" / "final.npz") as b:
        assert all(np.array_equal(a[k], b[k]) for k in a.files)


def test_sigterm_writes_a_checkpoint_and_exits_nonzero(tmp_path):
    with started(tmp_path / "term") as job:
        step = wait_for_step(tmp_path / "term", 6)
        job.send_signal(signal.SIGTERM)
        job.wait(timeout=30)
    assert job.returncode != 0
    assert not ranks_of(tmp_path / "term"), "a rank is still running"
    saved = sorted(p.name for p in (tmp_path / "term" / "checkpoints").iterdir())
    assert saved and int(saved[-1][5:13]) >= step
