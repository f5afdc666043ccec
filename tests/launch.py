"""Run scripts under mpiexec in a subprocess, always with a timeout."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest


def mpiexec():
    local = Path(sys.executable).parent / "mpiexec"
    found = str(local) if local.exists() else shutil.which("mpiexec")
    if not found:
        pytest.skip("no mpiexec on this machine")
    return found


def run_mpi(n, args, timeout=120, env=None, cwd=None):
    """(returncode, stdout, stderr, seconds) of `mpiexec -n n python args...`."""
    environment = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    environment.pop("PMI_RANK", None)  # a clean launch even if this test itself runs under mpiexec
    start = time.perf_counter()
    done = subprocess.run([mpiexec(), "-n", str(n), sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, env=environment, cwd=cwd)
    return done.returncode, done.stdout, done.stderr, time.perf_counter() - start
