"""Input errors seen by some ranks only end the whole job with that rank's message (MPMD launches).

Each rank gets its own working directory (`mpiexec -n 1 -wdir A ... : -n 1 -wdir B ...`), so the
same relative path names a file on one rank and nothing (or another file) on the other.
"""

import os
import subprocess
import sys

from launch import mpiexec
from test_train_cli import TINY, train_at

TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(200))


def mpmd(dirs, args_per_rank, timeout=60):
    """(returncode, stdout, stderr) of one job whose rank r runs in dirs[r] with args_per_rank[r]."""
    command = [mpiexec()]
    for rank, (directory, args) in enumerate(zip(dirs, args_per_rank)):
        command += ([":"] if rank else []) + ["-n", "1", "-wdir", str(directory), sys.executable, "-m",
                                               "mpigrad", "train", "--quiet", *args]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MPIEXEC_TIMEOUT": str(timeout)}
    env.pop("PMI_RANK", None)
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 30, env=env)
    return done.returncode, done.stdout, done.stderr


def tiny(*extra, out="run"):
    return ["--out", out, *[a for item in [*TINY, *extra] for a in ("--set", item)]]


def two_dirs(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    return a, b


def test_data_file_on_one_rank_only_ends_the_job_naming_the_rank(tmp_path):
    for rank_with_file in (0, 1):
        dirs = two_dirs(tmp_path / str(rank_with_file))
        (dirs[rank_with_file] / "data.txt").write_text(TEXT)
        args = tiny('data="data.txt"')
        code, _, err = mpmd(dirs, [args, args])
        missing = 1 - rank_with_file
        assert code == 2, err
        assert f"mpigrad train: error: rank {missing}: data file data.txt: no such file" in err, err
        assert err.count("mpigrad train: error:") == 1, err


def test_resume_where_one_rank_sees_no_checkpoint(tmp_path):
    a, b = two_dirs(tmp_path)
    code, err = train_at(1, a / "run")
    assert code == 0, err
    args = tiny("resume=true")
    # rank 0 lists A/run/checkpoints and tells rank 1, which cannot read that file in B
    code, _, err = mpmd([a, b], [args, args])
    assert code == 2 and "rank 1: cannot read checkpoint run/checkpoints/step-00000006.ckpt" in err, err
    # rank 0 sees no checkpoint: refused on every rank, whatever rank 1 holds
    code, _, err = mpmd([b, a], [args, args])
    assert code == 2 and "resume = true but run/checkpoints holds no checkpoint" in err, err


def test_resume_where_ranks_hold_different_checkpoints(tmp_path):
    a, b = two_dirs(tmp_path)
    for directory, seed in ((a, 0), (b, 1)):
        code, err = train_at(1, directory / "run", f"seed={seed}")
        assert code == 0, err
    args = tiny("resume=true", "steps=8")
    code, _, err = mpmd([a, b], [args, args])
    assert code == 2 and "ranks read different contents" in err, err


def test_ranks_started_with_different_arguments_are_refused(tmp_path):
    a, b = two_dirs(tmp_path)
    code, _, err = mpmd([a, a], [tiny("lr=0.1"), tiny("lr=0.2")])
    assert code == 2, err
    assert "rank 1 was started with lr = 0.2, rank 0 with lr = 0.1" in err, err
    code, _, err = mpmd([a, a], [tiny(out="A"), tiny(out="B")])
    assert code == 2 and "rank 1 was started with --out B, rank 0 with --out A" in err, err
    assert not os.listdir(a)


def test_three_ranks_one_without_the_data_file(tmp_path):
    dirs = [tmp_path / name for name in "ABC"]
    for directory in dirs:
        directory.mkdir()
    for directory in dirs[:2]:
        (directory / "data.txt").write_text(TEXT)
    args = tiny('data="data.txt"', "deterministic=false")
    code, _, err = mpmd(dirs, [args] * 3)
    assert code == 2 and "mpigrad train: error: rank 2: data file data.txt: no such file" in err, err
    assert err.count("mpigrad train: error:") == 1, err
