"""BLAS threads per rank: only the cores the node's load leaves idle, shared among its ranks."""

import types

import pytest

from mpigrad.runtime import comm as comm_module
from mpigrad.runtime.comm import blas_threads_for, default_blas_threads


@pytest.mark.parametrize("cores, ranks_here, load, threads", [
    (2, 1, 0.0, 2),    # idle 2-core node, one rank: both cores
    (2, 1, 18.0, 1),   # the busy shared machine: one thread, not two waiting for each other
    (2, 1, 0.6, 1),    # one core's worth of other work
    (2, 2, 0.0, 1),    # two ranks share two cores
    (8, 2, 3.0, 2),    # five idle cores over two ranks
    (8, 1, 0.2, 8),
    (4, 8, 0.0, 1),    # more ranks than cores: still one
])
def test_threads_follow_idle_cores(cores, ranks_here, load, threads):
    assert blas_threads_for(cores, ranks_here, load) == threads


class _Node:
    def Get_size(self):
        return 1

    def Free(self):
        pass


def test_default_reads_the_load_average(monkeypatch):
    monkeypatch.delenv("MPIGRAD_BLAS_THREADS", raising=False)
    monkeypatch.setattr(comm_module.os, "sched_getaffinity", lambda pid: set(range(8)))
    fake_comm = types.SimpleNamespace(mpi=types.SimpleNamespace(Split_type=lambda kind: _Node()))
    monkeypatch.setattr(comm_module.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert default_blas_threads(fake_comm) == 8
    monkeypatch.setattr(comm_module.os, "getloadavg", lambda: (30.0, 30.0, 30.0))
    assert default_blas_threads(fake_comm) == 1
    monkeypatch.setenv("MPIGRAD_BLAS_THREADS", "3")
    assert default_blas_threads(fake_comm) == 3
