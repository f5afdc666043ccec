"""Makes tests/ importable so every test folder shares launch.py (subprocess mpiexec with a timeout)."""

import os  # noqa: E402

from hypothesis import HealthCheck, settings  # noqa: E402

# The stateful gradient tests (tests/optim/test_stateful_eager.py) run this many examples each:
# a few in CI; MPIGRAD_FUZZ_EXAMPLES=2000 fuzzes for longer. No example database is written.
settings.register_profile(
    "mpigrad-fuzz", max_examples=int(os.environ.get("MPIGRAD_FUZZ_EXAMPLES", "6")), stateful_step_count=30,
    deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
