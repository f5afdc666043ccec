"""save_checkpoint with no room to write: CheckpointError naming the path and cause on every rank
(the others wait for rank 0's outcome, never hang); the previous file intact, no temporary left."""

import contextlib
import os
import resource
import signal

import numpy as np
import pytest

from mpigrad.runtime import CheckpointError, load_checkpoint, save_checkpoint

from mpi_helpers import assert_everywhere, comm, make_model

pytestmark = pytest.mark.mpi


@contextlib.contextmanager
def file_size_limit(limit):
    """This process may write files of at most `limit` bytes (EFBIG beyond: SIGXFSZ ignored)."""
    before_signal = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    before = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, before[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, before)
        signal.signal(signal.SIGXFSZ, before_signal)


def test_a_write_refused_for_size_fails_on_every_rank_and_keeps_the_previous(mpi_tmp_path):
    c = comm()
    path = str(mpi_tmp_path / "model.ckpt")
    model = make_model(seed=3, sizes=(5, 64, 64, 3))
    save_checkpoint(path, model, None, step=1)
    before = open(path, "rb").read() if c.is_main else None
    trained = make_model(seed=4, sizes=(5, 64, 64, 3))
    error = None
    with file_size_limit(4096) if c.is_main else contextlib.nullcontext():
        try:
            save_checkpoint(path, trained, None, step=2)
        except CheckpointError as e:
            error = str(e)
    assert_everywhere(error == f"cannot write checkpoint {path}: File too large", f"got {error!r}")
    assert_everywhere(not c.is_main or open(path, "rb").read() == before, "the previous checkpoint changed")
    assert_everywhere(not [f for f in os.listdir(mpi_tmp_path) if ".tmp-" in f], "a temporary was left")
    extra = load_checkpoint(path, trained, None)
    reference = make_model(seed=3, sizes=(5, 64, 64, 3))
    assert_everywhere(extra["step"] == 1 and all(np.array_equal(p.data, q.data) for p, q in
                                                 zip(trained.parameters(), reference.parameters())),
                      "the previous checkpoint did not load back")
