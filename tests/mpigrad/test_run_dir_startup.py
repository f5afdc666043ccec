"""Ranks that disagree at start-up end the job: `mpigrad eval` with a run one rank cannot read, and a
rank that stops while reading its data (the step_timeout watchdog covers start-up)."""

import os
import re
import subprocess
import sys
import textwrap
import time

from launch import mpiexec
from test_kill import ranks_of
from test_rank_agreement import two_dirs
from test_train_cli import TINY, train_at


def mpmd(dirs, args, timeout=60):
    """(returncode, stdout, stderr) of `mpigrad ARGS` with rank r working in dirs[r]; killed after `timeout`."""
    command = [mpiexec()]
    for rank, directory in enumerate(dirs):
        command += ([":"] if rank else []) + ["-n", "1", "-wdir", str(directory), sys.executable, "-m", "mpigrad",
                                               *args]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MPIEXEC_TIMEOUT": str(timeout)}
    env.pop("PMI_RANK", None)
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 30, env=env)
    return done.returncode, done.stdout, done.stderr


def test_eval_of_a_run_only_one_rank_can_read_ends_every_rank(tmp_path):
    a, b = two_dirs(tmp_path)
    code, err = train_at(1, a / "r1")
    assert code == 0, err
    for dirs, missing in (([a, b], 1), ([b, a], 0)):
        start = time.time()
        code, out, err = mpmd(dirs, ["eval", "r1"], timeout=40)
        assert time.time() - start < 40 and code == 2, (code, out, err)
        assert err.strip() == f"mpigrad eval: error: rank {missing}: r1: no such directory", err


STOPPED_WHILE_LOADING = textwrap.dedent("""
    import os, signal, sys
    import mpigrad.train as train
    from mpigrad.runtime import init, watchdog

    watchdog.STARTUP_EXTRA = 0  # start-up gets 2 x step_timeout: seconds, not minutes, for the test
    real_load = train.load_data

    def load_data(cfg):
        if init().rank == 1:
            os.kill(os.getpid(), signal.SIGSTOP)  # a frozen node, mid-read
        return real_load(cfg)

    train.load_data = load_data
    sys.exit(train.train_command(None, sys.argv[2:], sys.argv[1], True))
""")


def test_a_rank_stopped_while_loading_data_is_caught_by_step_timeout(tmp_path):
    script, out = tmp_path / "stopped.py", tmp_path / "run"
    script.write_text(STOPPED_WHILE_LOADING)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MPIEXEC_TIMEOUT": "60"}
    env.pop("PMI_RANK", None)
    start = time.time()
    try:
        done = subprocess.run([mpiexec(), "-n", "2", sys.executable, str(script), str(out), *TINY, "step_timeout=2"],
                              capture_output=True, text=True, timeout=90, env=env)
    finally:
        for pid in ranks_of(out):
            os.kill(pid, 9)
    seconds = time.time() - start
    # the limit is 4 s (2 x step_timeout during start-up); MPIEXEC_TIMEOUT would end a hang at 60 s
    assert done.returncode != 0 and seconds < 30, f"exit {done.returncode} after {seconds:.1f} s\n{done.stderr}"
    assert re.search(r"mpigrad: rank 0 of 2: step_timeout fired: no progress for [\d.]+ s \(limit 4 s\) at step 1 "
                     r"in phase 'start-up vote'; ending the job", done.stderr), done.stderr
    assert "rank 1 did not answer (stopped, or holding the GIL)" in done.stderr, done.stderr
