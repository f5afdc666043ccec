"""Runs shared by the tests that only read them (or copy them before changing them): one launch each."""

import pytest

from test_train_cli import train


@pytest.fixture(scope="session")
def tiny_run_2(tmp_path_factory):
    """The TINY job trained at world 2 (checkpoints at steps 3 and 6): read it, or copy_run it."""
    out = tmp_path_factory.mktemp("shared") / "tiny-2"
    code, _, err, _ = train(2, out)
    assert code == 0, err
    return out
