"""Imports go autograd <- optim <- runtime: only the runtime may load mpi4py."""

import subprocess
import sys


def test_autograd_and_optim_load_no_mpi4py():
    code = ("import sys, mpigrad.autograd, mpigrad.autograd.nn, mpigrad.optim; "
            "assert 'mpi4py' not in sys.modules, 'mpi4py was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
