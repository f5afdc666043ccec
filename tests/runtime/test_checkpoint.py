"""Checkpoints: atomic, checksummed, read by every rank, clear errors when unusable."""

import os

import numpy as np
import pytest

from mpigrad.runtime import CheckpointError, DataParallel, load_checkpoint, save_checkpoint

from mpi_helpers import assert_everywhere, comm, make_model

pytestmark = pytest.mark.mpi


def test_round_trip_restores_parameters_and_extras(mpi_tmp_path):
    c = comm()
    path = str(mpi_tmp_path / "a.ckpt")
    dp = DataParallel(make_model(seed=1), c)
    save_checkpoint(path, dp.module, None, step=7, config={"lr": 0.1, "hidden": [3, 4]}, rng=np.arange(3))
    saved = [p.data.copy() for p in dp.parameters()]
    for p in dp.parameters():
        p.data[...] = 0
    extra = load_checkpoint(path, dp.module, None)
    assert_everywhere(all(np.array_equal(p.data, s) for p, s in zip(dp.parameters(), saved)), "values not restored")
    assert_everywhere(extra["step"] == 7 and extra["config"] == {"lr": 0.1, "hidden": [3, 4]}
                      and np.array_equal(extra["rng"], np.arange(3)), "extras not restored")
    assert_everywhere(all(p.data is v for g in dp.groups for p, v in zip(g.params, g.data_views)),
                      "loading rebound parameter arrays (flat buffers broken)")


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_damaged_file_is_refused_on_every_rank(mpi_tmp_path, damage):
    c = comm()
    path = str(mpi_tmp_path / f"{damage}.ckpt")
    model = make_model()
    save_checkpoint(path, model, None, step=1)
    if c.is_main:
        data = open(path, "rb").read()
        data = {"truncate": data[:-100], "flip": data[:-50] + bytes([data[-50] ^ 1]) + data[-49:],
                "garbage": b"hello\n" + data}[damage]
        open(path, "wb").write(data)
    c.Barrier()
    expected = {"truncate": "truncated", "flip": "corrupt", "garbage": "not an mpigrad checkpoint"}[damage]
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(path, model, None)


def test_other_model_is_refused(mpi_tmp_path):
    path = str(mpi_tmp_path / "other.ckpt")
    save_checkpoint(path, make_model(sizes=(5, 8, 3)), None, step=1)
    with pytest.raises(CheckpointError, match="does not fit this model"):
        load_checkpoint(path, make_model(), None)


def test_missing_file_and_no_temporary_left(mpi_tmp_path):
    c = comm()
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(str(mpi_tmp_path / "nope.ckpt"), make_model(), None)
    save_checkpoint(str(mpi_tmp_path / "ok.ckpt"), make_model(), None)
    leftovers = [f for f in os.listdir(mpi_tmp_path) if ".tmp-" in f]
    assert_everywhere(not leftovers, f"temporary files left: {leftovers}")
