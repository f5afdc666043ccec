"""Ctrl-C / SIGTERM of a Python training script: with runtime.StopSignal (examples/train_mlp.py) one line,
a checkpoint of the last finished step and exit 130 / 143; without it one line per rank, no traceback."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from launch import mpiexec
from mpigrad.autograd import nn
from mpigrad.optim import Adam
from mpigrad.runtime import load_checkpoint

SCRIPT = str(Path(__file__).resolve().parents[2] / "examples" / "train_mlp.py")


def launch(tmp_path, *args):
    """`mpiexec -n 2 python ARGS` in the background, output to files (no pipe that could fill and block)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    env.pop("PMI_RANK", None)
    env.pop("MPIGRAD_DIGEST_LOG", None)
    out, err = open(tmp_path / "stdout", "w"), open(tmp_path / "stderr", "w")
    with out, err:
        return subprocess.Popen([mpiexec(), "-n", "2", sys.executable, *args], stdout=out, stderr=err, env=env)


def signal_when(job, path, text, sig, timeout=120):
    """Send `sig` to the launcher once `path` holds `text`; the job's exit code."""
    deadline = time.time() + timeout
    try:
        while text not in path.read_text():
            assert time.time() < deadline and job.poll() is None, f"never saw {text!r}: {path.read_text()}"
            time.sleep(0.05)
        job.send_signal(sig)
        return job.wait(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait(timeout=30)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_example_stops_at_the_end_of_a_step_with_a_checkpoint(tmp_path, sig):
    # far more steps than can run: the signal always comes mid-run; printing every 5 steps tells it is running
    job = launch(tmp_path, SCRIPT, "--out", str(tmp_path / "run"), "--steps", "1000000", "--eval-every", "5",
                 "--checkpoint-every", "1000000")
    code = signal_when(job, tmp_path / "stdout", "step 5:", sig)
    assert code == 128 + sig, (code, (tmp_path / "stderr").read_text())
    err = (tmp_path / "stderr").read_text()
    ours = [line for line in err.splitlines() if "stopped after step" in line]
    assert len(ours) == 1 and ours[0].startswith(f"{sig.name}: stopped after step "), err
    assert "Traceback" not in err, err
    step = int(ours[0].split("stopped after step ")[1].split(",")[0])
    model = nn.MLP([16, 64, 64, 4])
    extra = load_checkpoint(str(tmp_path / "run" / "checkpoint.mpc"), model, Adam(model.parameters()))
    assert extra["step"] == step >= 5


def test_ctrl_c_without_stop_signal_is_one_line_per_rank(tmp_path):
    (tmp_path / "loop.py").write_text("import time\nfrom mpigrad.runtime import init\ncomm = init()\n"
                                      "print('running', flush=True)\ntime.sleep(120)\n")
    code = signal_when(launch(tmp_path, str(tmp_path / "loop.py")), tmp_path / "stdout", "running", signal.SIGINT)
    err = (tmp_path / "stderr").read_text()
    assert code != 0 and "Traceback" not in err and "KeyboardInterrupt" not in err, err
    lines = [line for line in err.splitlines() if "interrupted (SIGINT)" in line]
    assert 1 <= len(lines) <= 2 and all(line.startswith("mpigrad: rank ") for line in lines), err
    assert "use mpigrad.runtime.StopSignal" in lines[0]


class SignalDuringTheCall:
    """A communicator of one rank that receives SIGTERM while inside allreduce (where ranks spend their waits)."""

    def allreduce_obj(self, value, op):
        os.kill(os.getpid(), signal.SIGTERM)
        return value  # what the ranks had sent before the signal


def test_a_signal_during_the_agreement_is_kept_for_the_next_step():
    from mpigrad.runtime import StopSignal
    with StopSignal(SignalDuringTheCall()) as stop:
        answers = [stop.requested(), stop.requested()]
    assert answers[-1] and stop.signal_name == "SIGTERM" and stop.exit_code == 143, answers
