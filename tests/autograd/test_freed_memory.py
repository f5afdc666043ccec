"""Importing the engine makes glibc reuse freed 512 KB temporaries (autograd/freed_memory.py): no
fresh pages, so no page faults, on each new array, even when the mmap threshold starts low."""

import json
import os
import subprocess
import sys

import pytest

# Page faults per allocation of a 512 KB array, after mallopt forced the threshold down to 128 KB
# (the state some processes reach by themselves) and then `setup` ran.
_PROBE = """
import ctypes, ctypes.util, json, resource
import numpy as np
ctypes.CDLL(ctypes.util.find_library("c")).mallopt(-3, 128 * 1024)
{setup}
a = np.ones((8, 64, 256), np.float32)
for _ in range(5):
    b = a * 2.0
    del b
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    b = a * 2.0
    del b
print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 50))
"""


def _faults_per_array(setup):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", _PROBE.format(setup=setup)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _glibc():
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        return False


@pytest.mark.skipif(not _glibc(), reason="glibc's mallopt")
def test_importing_the_engine_reuses_freed_temporaries():
    assert _faults_per_array("") >= 64  # the low threshold alone: a fresh 512 KB mapping every time
    assert _faults_per_array("import mpigrad.autograd") < 4
