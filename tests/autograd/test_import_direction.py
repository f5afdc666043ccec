"""Imports go autograd <- optim <- runtime <- mpigrad (the application): only runtime and the application load mpi4py."""

import subprocess
import sys


def _load(modules):
    code = (f"import sys, {', '.join(modules)}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mpi4py', 'mpigrad')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return eval(result.stdout)


def test_autograd_and_optim_load_no_mpi4py():
    loaded = _load(["mpigrad.autograd", "mpigrad.autograd.nn", "mpigrad.optim"])
    assert not any(m.startswith("mpi4py") for m in loaded), loaded
    assert not any(m.startswith("mpigrad.runtime") for m in loaded), loaded


def test_runtime_loads_none_of_the_application():
    loaded = _load(["mpigrad.runtime"])
    application = [m for m in loaded if m.startswith("mpigrad.") and m.split(".")[1] not in ("autograd", "optim", "runtime")]
    assert application == [], f"mpigrad.runtime imported the application: {application}"
