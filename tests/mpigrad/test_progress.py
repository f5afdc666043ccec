"""Progress lines and metrics rows: log_every decides them (digests add none); the classifier's line shows
val_accuracy; a tqdm bar only outside MPI launches (Open MPI gives ranks a pty even when redirected)."""

import io
import json
import os
import subprocess

import numpy as np
import pytest

from mpigrad.metrics import LAUNCHER_VARIABLES, Progress
from test_openmpi import ROOT_OK, VENV
from test_train_cli import TINY, TRANSFORMER_KEYS, main_here


def train_loud(out, *extra):
    """`mpigrad train` (not --quiet) on TINY + extra in this process: (code, stdout lines, metrics rows)."""
    base = [item for item in TINY if 'model="mlp"' not in extra or item.split("=")[0] not in TRANSFORMER_KEYS]
    sets = [a for item in [*base, *extra] for a in ("--set", item)]
    code, stdout, err = main_here(["train", "--out", str(out), *sets])
    assert code == 0, err
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [line for line in stdout.splitlines() if line.startswith("step ")], rows


def test_digests_ride_in_the_rows_log_every_makes(tmp_path):
    lines, rows = train_loud(tmp_path, "steps=10", "log_every=5", "digest_every=2", "eval_every=0",
                             "checkpoint_every=0", "sample_chars=0")
    assert [line.split()[1] for line in lines] == ["5/10", "10/10"]
    assert [r["step"] for r in rows] == [5, 10]
    assert "digest" not in rows[0] and len(rows[1]["digest"]) == 32  # 5 is no multiple of 2; the last row has one


def test_evaluations_add_a_row_and_a_line_with_val_accuracy_for_the_classifier(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 5)).astype(np.float32)
    np.savez(tmp_path / "blobs.npz", X=X, y=np.argmax(X[:, :3], axis=1))
    sets = ['model="mlp"', f'data="{tmp_path / "blobs.npz"}"', "hidden=[8]", "steps=6", "log_every=4", "eval_every=3",
            "checkpoint_every=0"]
    lines, rows = train_loud(tmp_path / "run", *sets)
    assert [r["step"] for r in rows] == [3, 4, 6]
    assert [line.split()[1] for line in lines] == ["3/6", "4/6", "6/6"]
    assert " val_accuracy " in lines[0] and " val_accuracy " not in lines[1], lines
    assert f"val_accuracy {rows[2]['val_accuracy']:.3f}" in lines[2]


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("variable", [None, *LAUNCHER_VARIABLES])
def test_the_bar_is_drawn_only_on_a_terminal_outside_an_mpi_launch(monkeypatch, variable):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    if variable:
        monkeypatch.setenv(variable, "0")
    monkeypatch.setattr("sys.stdout", Terminal())
    progress = Progress(10, 0, True)
    assert (progress.bar is None) == bool(variable)
    progress.close()
    assert Progress(10, 0, True, world_size=2).bar is None  # whatever the environment says


@pytest.mark.skipif(not (VENV / "bin" / "mpiexec").exists(), reason="no Open MPI venv (bash scripts/openmpi_venv.sh)")
def test_open_mpi_output_redirected_to_a_file_holds_lines_not_a_bar(tmp_path):
    sets = [a for item in [*TINY, "steps=4", "log_every=2", "checkpoint_every=0", "sample_chars=0"]
            for a in ("--set", item)]
    env = {**os.environ, **ROOT_OK, "OPENBLAS_NUM_THREADS": "1"}
    env.pop("PMI_RANK", None)
    with open(tmp_path / "log", "w") as log:
        done = subprocess.run([str(VENV / "bin" / "mpirun"), "--oversubscribe", "-n", "2", str(VENV / "bin" / "python"),
                               "-m", "mpigrad", "train", "--out", str(tmp_path / "run"), *sets], stdout=log,
                              stderr=subprocess.PIPE, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "log").read_text()
    assert "\r" not in text and "\x1b" not in text, repr(text)
    assert [line.split()[1] for line in text.splitlines() if line.startswith("step ")] == ["2/4", "3/4", "4/4"]
