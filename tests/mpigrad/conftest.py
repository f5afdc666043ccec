"""Runs shared by the tests that only read them (or copy them before changing them): one launch each.

Keeping tests/mpigrad cheap: a launch costs a second or more of process start-up. Application logic
that needs no second rank runs in this process (`train_here`, `train_at(1, ...)`, `main_here` in
test_train_cli.py); a test that changes a run copies a shared one (`copy_run`); `mpiexec` is for
what ranks decide, always with a timeout (tests/launch.py)."""

import pytest

from test_train_cli import train


@pytest.fixture(scope="session")
def tiny_run_2(tmp_path_factory):
    """The TINY job trained at world 2 (checkpoints at steps 3 and 6): read it, or copy_run it."""
    out = tmp_path_factory.mktemp("shared") / "tiny-2"
    code, _, err, _ = train(2, out)
    assert code == 0, err
    return out
