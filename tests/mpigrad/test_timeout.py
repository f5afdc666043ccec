"""`step_timeout`: a frozen rank of `mpigrad train`, or one stuck in evaluation or a checkpoint
write, ends the job within step_timeout + 10 s, saying which rank noticed, the step and phase."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from launch import mpiexec, run_mpi
from test_kill import ranks_of, wait_for_step
from test_train_cli import TINY

TIMEOUT = 3  # a healthy step of the tiny job takes milliseconds
LONG = [*TINY, "steps=400", "checkpoint_every=0", "eval_every=0", "sample_chars=0", f"step_timeout={TIMEOUT}"]
WORLD_SETS = {2: [], 3: ["global_batch=6"]}  # 3 ranks need a micro-batch count that 3 divides


def kill_leftovers(marker):
    for pid in ranks_of(marker):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("world, mode", [(2, ["deterministic=false"]), (3, ["deterministic=true"]),
                                         (2, ["deterministic=false", "zero=true"])], ids=["2", "3-det", "2-zero"])
def test_a_stopped_rank_of_train_ends_the_job(tmp_path, world, mode):
    out = tmp_path / "run"
    sets = [a for item in [*LONG, *WORLD_SETS[world], *mode] for a in ("--set", item)]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    with open(tmp_path / "log", "wb") as log:
        job = subprocess.Popen([mpiexec(), "-n", str(world), sys.executable, "-m", "mpigrad", "train", "--quiet",
                                "--out", str(out), *sets], stdout=log, stderr=log, env=env)
    try:
        wait_for_step(out, 5)
        stopped = sorted(ranks_of(out))[-1]
        os.kill(stopped, signal.SIGSTOP)
        start = time.time()
        job.wait(timeout=TIMEOUT + 30)
        seconds = time.time() - start
    finally:
        if job.poll() is None:
            job.kill()
            job.wait(timeout=30)
        kill_leftovers(out)
    err = (tmp_path / "log").read_text()
    assert job.returncode != 0 and seconds < TIMEOUT + 10, f"exit {job.returncode} after {seconds:.1f} s\n{err}"
    # the ranks' stderr reach the log in any order: another rank's answer to the alarm may come first
    fired = [line for line in err.splitlines() if "step_timeout fired: no progress" in line]
    assert fired and re.match(rf"mpigrad: rank \d of {world}: step_timeout fired: no progress for [\d.]+ s "
                              r"\(limit 3 s\) at step \d+ in phase '[^']+'; ending the job$", fired[0]), err
    assert "Python stack of rank" in err and re.search(r"train\.py\", line \d+ in run", err), err
    assert "did not answer (stopped, or holding the GIL)" in err, err


SCRIPT = textwrap.dedent("""
    import sys
    import mpigrad.runtime.checkpoint as checkpoint
    import mpigrad.train as train
    from mpigrad.runtime import init

    phase, out, sets = sys.argv[1], sys.argv[2], sys.argv[3:]
    comm = init()

    def spin_forever(*args):
        while True:
            pass

    if phase == "evaluation" and comm.rank == 1:
        real_load = train.load_data
        def load_data(cfg):
            data = real_load(cfg)
            data.val.batch = spin_forever  # called inside the evaluation loop
            return data
        train.load_data = load_data
    if phase == "checkpoint write" and comm.rank == 0:
        checkpoint._write_atomically = spin_forever
    sys.exit(train.train_command(None, sets, out, True))
""")


@pytest.mark.parametrize("phase", ["evaluation", "checkpoint write"])
def test_a_rank_stuck_in_evaluation_or_checkpoint_write_is_named(tmp_path, phase):
    script = tmp_path / "stuck.py"
    script.write_text(SCRIPT)
    sets = [*TINY, "eval_every=3", "checkpoint_every=3", f"step_timeout={TIMEOUT}"]
    try:
        code, out, err, seconds = run_mpi(2, [str(script), phase, str(tmp_path / "run"), *sets], timeout=90)
    finally:
        kill_leftovers(script)
    assert code != 0 and seconds < 60, err
    assert re.search(rf"mpigrad: rank \d of 2: step_timeout fired: no progress for [\d.]+ s \(limit 3 s\) at "
                     rf"step 3 in phase '{phase}'; ending the job", err), err
    assert "in spin_forever" in err, err  # the stuck rank's stack, printed by itself or on the alarm
