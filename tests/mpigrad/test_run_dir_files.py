"""What `mpigrad train` leaves in its run directory is whole and current: no stale final.npz after an
interrupted resume, no truncated final.npz or traceback on a full disk, checkpoint names past 8 digits,
no leftover temporaries, and one-line errors where output or input is broken."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import numpy as np

from launch import run_mpi
from mpigrad.autograd import nn
from mpigrad.job import Checkpoints
from mpigrad.optim import Adam, CosineLR
from mpigrad.run import load_run_from, newest_checkpoint
from mpigrad.runtime import init
from test_train_cli import TINY, copy_run, final, main_here, train, train_args, train_here


def python_env():
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    env.pop("PMI_RANK", None)
    return env


def wait_for(condition, seconds=120):
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_an_interrupted_resume_leaves_no_stale_final(tmp_path):
    out = tmp_path / "run"
    code, _, err = train_here(out, "sample_chars=0")
    assert code == 0, err
    shutil.copy2(out / "final.npz", tmp_path / "step-6-final.npz")
    resume = [sys.executable, "-m", "mpigrad", "train", "--resume", str(out), "--quiet", "--set", "steps=100000"]
    job = subprocess.Popen(resume, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=python_env())
    try:
        wait_for(lambda: int(newest_checkpoint(str(out))[-13:-5]) >= 12 or job.poll() is not None)
    finally:
        job.send_signal(signal.SIGTERM)
        job.wait(timeout=60)
    assert job.returncode == 128 + signal.SIGTERM, job.stderr.read()
    newest = newest_checkpoint(str(out))
    assert not (out / "final.npz").exists()
    assert load_run_from(str(out))[2] == newest
    code, text, err = main_here(["eval", str(out)])
    assert code == 0 and f"(parameters: {newest})" in text, text + err
    # a final.npz older than the newest checkpoint (left by an older mpigrad) loses to it
    shutil.copy2(tmp_path / "step-6-final.npz", out / "final.npz")
    assert load_run_from(str(out))[2] == newest


FINAL_WRITE_FAILS = textwrap.dedent("""
    import resource, signal, sys
    import mpigrad.train as train

    real_finish = train.Job.finish

    def finish(self, shutdown):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the kernel returns EFBIG instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
        return real_finish(self, shutdown)

    train.Job.finish = finish
    sys.exit(train.train_command(None, sys.argv[2:], sys.argv[1], True))
""")


def test_a_final_npz_that_cannot_be_written_is_one_line_and_no_truncated_file(tmp_path):
    script, out = tmp_path / "limited.py", tmp_path / "run"
    script.write_text(FINAL_WRITE_FAILS)
    done = subprocess.run([sys.executable, str(script), str(out), *TINY], capture_output=True, text=True,
                          timeout=120, env=python_env())
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (f"mpigrad train: error: cannot write {out}/final.npz: File too large (the "
                                   f"checkpoint {out}/checkpoints/step-00000006.ckpt holds the same parameters)")
    assert sorted(p.name for p in out.iterdir() if "final" in p.name) == []
    assert load_run_from(str(out))[2] == f"{out}/checkpoints/step-00000006.ckpt"


METRICS_WRITE_FAILS = textwrap.dedent("""
    import os, resource, signal, sys
    import mpigrad.metrics as metrics
    import mpigrad.train as train

    real_write = metrics.MetricsLog.write

    def write(self, row):
        if row["step"] == 5:  # the disk fills up: room for 10 more bytes of this file
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(self.path) + 10, resource.RLIM_INFINITY))
        return real_write(self, row)

    metrics.MetricsLog.write = write
    sys.exit(train.train_command(None, sys.argv[2:], sys.argv[1], True))
""")


def test_a_metrics_append_on_a_full_disk_stops_every_rank_in_one_line(tmp_path, tiny_run_2):
    script, out = tmp_path / "limited.py", tmp_path / "run"
    script.write_text(METRICS_WRITE_FAILS)
    code, _, err, _ = run_mpi(2, [str(script), str(out), *TINY], timeout=120)
    assert code == 1, err
    assert err.strip() == (f"mpigrad train: error: cannot write {out}/metrics.jsonl: File too large; stopping at step "
                           f"5 ({out}/checkpoints/step-00000003.ckpt is intact: once there is room, continue from it "
                           "with --set resume=true)")
    code, _, err, _ = train(2, out, "resume=true")
    assert code == 0, err
    straight, resumed = final(tiny_run_2), final(out)
    assert all(np.array_equal(straight[k], resumed[k]) for k in straight)


class _Job(SimpleNamespace):
    """What Checkpoints.save reads of a training job."""


def test_checkpoint_names_past_step_99999999_sort_rotate_and_resume(tmp_path):
    init()
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    for name in ("step-99999998.ckpt", "step-99999999.ckpt", "step-100000000.ckpt.tmp-7"):
        (directory / name).write_bytes(b"")
    model = nn.Linear(2, 1)
    optimizer = Adam(model.parameters())
    job = _Job(model=model, optimizer=optimizer, skipped=0, schedule=CosineLR(optimizer, 10), cfg=SimpleNamespace(),
               data=SimpleNamespace(fingerprint={}))
    checkpoints = Checkpoints(str(directory), 2, init())
    for step in (100000000, 100000001):
        checkpoints.save(job, step)
    assert sorted(os.listdir(directory)) == ["step-100000000.ckpt", "step-100000000.ckpt.tmp-7",
                                             "step-100000001.ckpt"]
    assert newest_checkpoint(str(tmp_path)) == str(directory / "step-100000001.ckpt")


def test_resume_removes_temporaries_of_writes_cut_short(tmp_path, tiny_run_2):
    out = copy_run(tiny_run_2, tmp_path / "run")
    shutil.copy(out / "checkpoints" / "step-00000006.ckpt", out / "checkpoints" / "step-00000009.ckpt.tmp-99999")
    (out / "final.npz.tmp-99999").write_bytes(b"half")
    code, _, err = main_here(["train", "--resume", str(out), "--quiet", "--set", "steps=8"])
    assert code == 0, err
    assert not [p for p in [*out.iterdir(), *(out / "checkpoints").iterdir()] if ".tmp-" in p.name]


def test_a_signal_during_the_end_of_run_sample_stops_it(tmp_path):
    out = tmp_path / "run"
    job = subprocess.Popen([sys.executable, "-m", "mpigrad", *train_args(out, ["sample_chars=1000000"])],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=python_env())
    try:
        wait_for(lambda: (out / "final.npz").exists() or job.poll() is not None)
        time.sleep(0.5)  # into the sample
        job.send_signal(signal.SIGTERM)
        job.wait(timeout=30)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    err = job.stderr.read()
    assert job.returncode == 128 + signal.SIGTERM, err
    assert err.strip() == f"mpigrad train: SIGTERM: stopped the end-of-run sample ({out}/final.npz is written)"


def test_sample_with_a_negative_seed_is_one_line(tiny_run_2):
    code, _, err = main_here(["sample", str(tiny_run_2), "--seed", "-1", "--chars", "5"])
    assert code == 2 and err == "mpigrad sample: error: --seed -1: must be >= 0\n", err


def test_a_broken_metrics_file_on_resume_is_one_line(tmp_path, tiny_run_2):
    for bad, problem in ((b"\xff\xfe not text\n", "is not UTF-8 text"),
                         (b"[1, 2]\n", "is not a metrics row (a JSON object with an integer step)")):
        out = copy_run(tiny_run_2, tmp_path / problem[:10].replace(" ", "-"))
        lines = (out / "metrics.jsonl").read_bytes().splitlines(keepends=True)
        (out / "metrics.jsonl").write_bytes(b"".join([lines[0], bad, *lines[1:]]))
        code, _, err = main_here(["train", "--resume", str(out), "--quiet", "--set", "steps=8"])
        assert code == 2 and err == f"mpigrad train: error: {out}/metrics.jsonl: line 2 {problem}\n", err


def shell(command, tmp_path, *extra, timeout=120):
    """(exit code, stdout, stderr) of a shell command running `mpigrad train` on TINY + extra without --quiet."""
    args = [a for a in train_args(tmp_path / "run", extra) if a != "--quiet"]
    script = f"{command.replace('MPIGRAD', ' '.join([sys.executable, '-m', 'mpigrad', *args]))}"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=timeout, env=python_env())
    return done.returncode, done.stdout, done.stderr


def test_train_with_stdout_closed_completes(tmp_path):
    code, _, err = shell("MPIGRAD >&-", tmp_path)
    assert code == 0 and "Traceback" not in err, err
    assert len(final(tmp_path / "run")) > 6


def test_train_piped_into_head_completes_quietly(tmp_path):
    # 60 steps of progress lines: most are written after head has exited
    code, text, err = shell("MPIGRAD | head -n 1; exit ${PIPESTATUS[0]}", tmp_path, "steps=60", "checkpoint_every=30")
    assert code == 0 and "Traceback" not in err and "BrokenPipe" not in err, err
    assert text.startswith("mpigrad: 1 rank(s)") and text.count("\n") == 1, text
    assert len(final(tmp_path / "run")) > 6
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())[-1] == "step-00000060.ckpt"
