"""A checkpoint write that fails for lack of room stops `mpigrad train` on every rank with one line
naming the path and the cause; the previous checkpoint stays intact, loadable and resumable."""

import contextlib
import subprocess
import textwrap

import numpy as np
import pytest

from launch import run_mpi
from test_train_cli import TINY, final, train

# Rank 0 may write files of at most 64 KB from the step-6 checkpoint on (a checkpoint of the tiny
# model is about 100 KB): the kernel refuses the write with EFBIG once SIGXFSZ is ignored.
SCRIPT = textwrap.dedent("""
    import resource, signal, sys
    import mpigrad.job as job
    import mpigrad.train as train
    from mpigrad.runtime import init

    out, sets = sys.argv[1], sys.argv[2:]
    real_save = job.Checkpoints.save

    def save(self, owner, step):
        if step == 6 and init().is_main:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process instead
            resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
        return real_save(self, owner, step)

    job.Checkpoints.save = save
    sys.exit(train.train_command(None, sets, out, True))
""")


def check_stopped_cleanly(err, out, cause):
    """One line naming the path and cause; only the step-3 checkpoint on disk, no temporary."""
    # a straggler warning is a timing observation (a loaded machine can slow one rank for 5 steps), not an error
    lines = [line for line in err.strip().splitlines() if "is a straggler" not in line]
    assert len(lines) == 1, err
    checkpoints = out / "checkpoints"
    assert lines[0] == (f"mpigrad train: error: cannot write checkpoint {checkpoints}/step-00000006.ckpt: {cause}; "
                        f"stopping at step 6 ({checkpoints}/step-00000003.ckpt is intact: once there is room, "
                        "continue from it with --set resume=true)")
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-00000003.ckpt"]
    assert not (out / "final.npz").exists()


def check_resumes_bitwise(straight_run, out, *mode):
    """Resumed from step 3, the run ends with the bits of the uninterrupted run of the same mode at world 2."""
    code, _, err, _ = train(2, out, "resume=true", *mode)
    assert code == 0, err
    straight, resumed = final(straight_run), final(out)
    assert all(np.array_equal(straight[k], resumed[k]) for k in straight)


@pytest.mark.parametrize("mode", [[], ["deterministic=false", "zero=true"]], ids=["deterministic", "zero"])
def test_file_size_limit_during_a_checkpoint_write_stops_every_rank(tmp_path, tiny_run_2, mode):
    script, out = tmp_path / "limited.py", tmp_path / "run"
    script.write_text(SCRIPT)
    code, _, err, seconds = run_mpi(2, [str(script), str(out), *TINY, *mode], timeout=120)
    assert code == 1 and seconds < 60, err
    check_stopped_cleanly(err, out, "File too large")
    straight_run = tiny_run_2
    if mode:  # the shared run is the deterministic one
        straight_run = tmp_path / "straight"
        code, _, err, _ = train(2, straight_run, *mode)
        assert code == 0, err
    check_resumes_bitwise(straight_run, out, *mode)


@contextlib.contextmanager
def small_filesystem(path, size):
    """A tmpfs of `size` at path (needs root and mount permission: skipped otherwise)."""
    path.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True, timeout=30)


def test_full_filesystem_during_a_checkpoint_write_stops_every_rank(tmp_path, tiny_run_2):
    """Room for the config, the metrics and one checkpoint of about 100 KB, not for a second."""
    with small_filesystem(tmp_path / "disk", "160k") as disk:
        code, _, err, seconds = train(2, disk / "run")
        assert code == 1 and seconds < 60, err
        check_stopped_cleanly(err, disk / "run", "No space left on device")
        subprocess.run(["cp", "-a", str(disk / "run"), str(tmp_path / "moved")], check=True, timeout=30)
    check_resumes_bitwise(tiny_run_2, tmp_path / "moved")
