"""Comm.blocked_time counts every blocking call (rank_step_time, the straggler metric, subtracts it)."""

import inspect

from mpigrad.runtime.comm import Comm

NOT_BLOCKING = {"Iallreduce", "abort"}  # Iallreduce returns at once; its Wait is counted by the reducer


def test_every_blocking_method_of_comm_adds_to_blocked_time():
    methods = {name for name, f in inspect.getmembers(Comm, inspect.isfunction) if not name.startswith("_")}
    uncounted = sorted(name for name in methods - NOT_BLOCKING if not hasattr(getattr(Comm, name), "__wrapped__"))
    assert not uncounted, f"Comm methods not counted in blocked_time: {uncounted}"
