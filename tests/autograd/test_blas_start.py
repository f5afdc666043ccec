"""Importing the engine maps OpenBLAS's GEMM packing buffer (autograd/blas_start.py): the pages its
kernels prefetch past a small product's panels are present before the first model GEMM."""

import json
import os
import subprocess
import sys

import pytest

# Resident KB of each anonymous mapping of OpenBLAS's buffer size (32 MB), after `setup` runs.
# (One BLAS thread: with more, the kernel may merge the threads' adjacent buffers into one mapping.)
_PROBE = """
import json, sys
{setup}
sizes = []
start = None
for line in open("/proc/self/smaps"):
    fields = line.split()
    if not fields[0].endswith(":") and "-" in fields[0]:
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        start = lo if 32 << 20 <= hi - lo < 34 << 20 else None
    elif fields[0] == "Rss:" and start is not None:
        sizes.append(int(fields[1]))
from threadpoolctl import threadpool_info
print(json.dumps({{"rss_kb": sizes, "openblas": any(i.get("internal_api") == "openblas" for i in threadpool_info())}}))
"""


def _buffer_rss(setup):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", _PROBE.format(setup=setup)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs Linux's /proc/self/smaps")
def test_importing_the_engine_maps_the_gemm_buffer():
    plain = _buffer_rss("import numpy as np; np.ones((512, 256), np.float32) @ np.ones((256, 64), np.float32)")
    if not plain["openblas"] or not plain["rss_kb"]:
        pytest.skip("numpy's BLAS is not OpenBLAS with a 32 MB buffer")
    # a small product alone leaves most of the buffer's first megabyte unmapped (the slow state)
    assert max(plain["rss_kb"]) < 128, plain
    engine = _buffer_rss("import mpigrad.autograd")
    assert max(engine["rss_kb"]) >= 256, engine
