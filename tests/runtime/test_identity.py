"""Numerical identity: ranks running other numerical code are refused (deterministic) or warned about, the
same way on every rank; the record survives config.toml and checkpoints; a resume on other code is said once."""

import tomllib

import pytest

from mpigrad.config import load_config
from mpigrad.run import identity_toml
from mpigrad.runtime import DataParallel, identity, save_checkpoint
from mpigrad.runtime.checkpoint import checkpoint_identity, read_verified
from mpigrad.runtime.identity import IdentityError, check_ranks, numerical_identity, record_of, rank_identities

from mpi_helpers import assert_everywhere, comm, make_model

MINE = {"numpy": "2.4.6", "numpy_simd": "X86_V2 + X86_V3", "blas": "openblas 0.3.31", "blas_kernels": "Haswell",
        "blas_threads": 1, "cpu": "AMD EPYC"}


class FakeComm:
    """What one rank sees: the identities every rank would gather."""

    def __init__(self, identities, rank=0):
        self.identities, self.rank, self.size, self.is_main = identities, rank, len(identities), rank == 0

    def allgather_obj(self, obj):
        return self.identities


def test_own_identity_names_numpy_blas_kernels_threads_and_cpu():
    mine = numerical_identity()
    assert set(mine) == set(MINE) and mine["numpy"] == __import__("numpy").__version__
    assert isinstance(mine["blas_threads"], int) and mine["blas_kernels"]


@pytest.mark.parametrize("rank", [0, 1])
def test_other_kernels_refused_in_deterministic_mode_in_one_line_on_every_rank(rank):
    ranks = [MINE, {**MINE, "blas_kernels": "Sandybridge"}, MINE]
    with pytest.raises(IdentityError) as e:
        check_ranks(FakeComm(ranks, rank), deterministic=True)
    text = str(e.value)
    assert "\n" not in text
    assert "BLAS kernels: Haswell on ranks 0,2, Sandybridge on rank 1" in text and "OPENBLAS_CORETYPE" in text


def test_other_kernels_warned_once_by_rank_0_in_the_default_mode(capsys):
    ranks = [MINE, {**MINE, "numpy_simd": "X86_V2 only"}]
    for rank in (0, 1):
        record = check_ranks(FakeComm(ranks, rank), deterministic=False)
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("mpigrad: warning:") and 'NPY_DISABLE_CPU_FEATURES="X86_V3"' in line
    assert record["rank"] == {"1": {"numpy_simd": "X86_V2 only"}}


def test_other_thread_counts_are_other_code():
    """OpenBLAS 0.3.31 Haswell sgemm gives other bits at 2 threads than at 1 (docs/determinism-across-machines.md)."""
    with pytest.raises(IdentityError, match="BLAS threads: 1 on rank 0, 2 on rank 1"):
        check_ranks(FakeComm([MINE, {**MINE, "blas_threads": 2}]), deterministic=True)


def test_another_cpu_model_running_the_same_code_is_neither_refused_nor_warned(capsys):
    record = check_ranks(FakeComm([MINE, {**MINE, "cpu": "Intel Xeon"}]), deterministic=True)
    assert capsys.readouterr().err == "" and rank_identities(record)[1]["cpu"] == "Intel Xeon"


def test_record_round_trips_through_config_toml_which_still_loads(tmp_path):
    record = {**record_of([MINE, {**MINE, "blas_kernels": "Sandybridge"}]),
              "earlier": [{**record_of([MINE]), "until": "step 3"}]}
    path = tmp_path / "config.toml"
    path.write_text("steps = 5\n" + identity_toml(record))
    assert tomllib.loads(path.read_text())["identity"] == record
    assert load_config(str(path)).steps == 5  # [identity] is a record, not a config key


@pytest.mark.mpi
def test_checkpoint_holds_the_runs_identity(mpi_tmp_path):
    path = str(mpi_tmp_path / "a.ckpt")
    DataParallel(make_model(), comm())
    save_checkpoint(path, make_model(), None, step=1)
    saved = checkpoint_identity(read_verified(path))
    assert_everywhere(saved["ranks"] == comm().size and saved["blas_kernels"] == numerical_identity()["blas_kernels"],
                      f"checkpoint identity {saved}")


def test_resume_on_other_code_is_said_once_and_kept_in_the_record(capsys, monkeypatch):
    monkeypatch.setattr(identity, "_recorded", record_of([MINE]))
    before = record_of([{**MINE, "blas_kernels": "Sandybridge"}])
    for _ in range(2):  # resume reads the checkpoint twice
        identity.note_resumed(before, "step 3", is_main=True)
    [line] = capsys.readouterr().err.splitlines()
    assert "BLAS kernels Sandybridge before, Haswell now" in line
    assert identity.recorded()["earlier"] == [{**before, "until": "step 3"}]


@pytest.mark.mpi(min_size=2)
def test_a_rank_on_other_kernels_is_refused_by_every_rank(monkeypatch):
    c = comm()
    mine = numerical_identity()
    if c.rank == 1:
        mine = {**mine, "blas_kernels": "Sandybridge" if mine["blas_kernels"] != "Sandybridge" else "Haswell"}
    monkeypatch.setattr(identity, "numerical_identity", lambda: mine)
    try:
        DataParallel(make_model(), c, deterministic=True)
        message = None
    except IdentityError as e:
        message = str(e)
    assert_everywhere(message is not None and "on rank 1" in message, f"not refused: {message}")


def test_resume_on_the_same_mix_of_kernels_says_nothing(capsys, monkeypatch):
    mix = record_of([MINE, {**MINE, "blas_kernels": "Sandybridge"}])
    monkeypatch.setattr(identity, "_recorded", mix)
    identity.note_resumed(mix, "step 3", is_main=True)
    assert capsys.readouterr().err == "" and "earlier" not in identity.recorded()
