"""Ranks on other BLAS kernels, end to end: an MPMD launch mixing OpenBLAS kernels is refused in deterministic
mode and warned about in the default mode; runs pinned to one kernel agree at world 1 and 2; `mpigrad diff`
names the kernels two runs used; resuming on other kernels says so once."""

import functools
import os
import subprocess
import sys
import tomllib

import pytest

from launch import mpiexec
from mpigrad.cli import main
from test_train_cli import train_args

SHORT = ("steps=3", "checkpoint_every=0", "eval_every=0", "sample_chars=0")


@functools.cache
def kernels_run(name):
    """Whether OPENBLAS_CORETYPE=name gives numpy those OpenBLAS kernels on this machine's CPU."""
    code = ("import numpy; from threadpoolctl import threadpool_info; "
            "print(*[i['architecture'] for i in threadpool_info() if i['user_api'] == 'blas'])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "OPENBLAS_CORETYPE": name})
    return done.stdout.strip() == name


@pytest.fixture(autouse=True)
def haswell_and_sandybridge():
    if not (kernels_run("Haswell") and kernels_run("Sandybridge")):
        pytest.skip("needs OpenBLAS with Haswell and Sandybridge kernels this CPU runs")


def launch(parts, timeout=180):
    """mpiexec with one `-n 1 env OPENBLAS_CORETYPE=K python -m mpigrad ARGS` part per (kernel, args)."""
    command = [mpiexec()]
    for kernel, args in parts:
        command += [*([":"] if len(command) > 1 else []), "-n", "1", "env", f"OPENBLAS_CORETYPE={kernel}",
                    sys.executable, "-m", "mpigrad", *args]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    env.pop("PMI_RANK", None)
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    return done.returncode, done.stdout, done.stderr


def identity_of(run):
    with open(run / "config.toml", "rb") as f:
        return tomllib.load(f)["identity"]


def test_mixed_kernels_refused_in_deterministic_mode(tmp_path):
    args = train_args(tmp_path / "run", SHORT)
    code, _, err = launch([("Haswell", args), ("Sandybridge", args)])
    assert code == 2, err
    [line] = [line for line in err.splitlines() if line.strip()]
    assert line.startswith("mpigrad train: error: deterministic mode refused") and "OPENBLAS_CORETYPE" in line
    assert "BLAS kernels: Haswell on rank 0, Sandybridge on rank 1" in line
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_mixed_kernels_warned_once_in_the_default_mode_and_recorded(tmp_path):
    args = train_args(tmp_path / "run", (*SHORT, "deterministic=false"))
    code, _, err = launch([("Haswell", args), ("Sandybridge", args)])
    assert code == 0, err
    [warning] = [line for line in err.splitlines() if "warning" in line]
    assert "BLAS kernels: Haswell on rank 0, Sandybridge on rank 1" in warning
    recorded = identity_of(tmp_path / "run")
    assert recorded["blas_kernels"] == "Haswell" and recorded["rank"] == {"1": {"blas_kernels": "Sandybridge"}}


def test_pinned_to_sandybridge_bitwise_equal_at_world_1_and_2(tmp_path):
    command = [sys.executable, "-m", "mpigrad", "check-determinism", "--worlds", "1,2", "--out", str(tmp_path),
               *[a for item in ("steps=3", "global_batch=8", "micro_batch=2", "context=16", "d_model=16",
                                "num_heads=2", "num_layers=1") for a in ("--set", item)]]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OPENBLAS_CORETYPE": "Sandybridge"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Sandybridge kernels" in done.stdout and "in every run" in done.stdout, done.stdout
    assert identity_of(tmp_path / "world-2")["blas_kernels"] == "Sandybridge"


def test_diff_names_the_kernels_and_resume_on_other_kernels_says_so_once(tmp_path, capsys):
    runs = {kernel: tmp_path / kernel for kernel in ("Haswell", "Sandybridge")}
    for kernel, run in runs.items():
        code, _, err = launch([(kernel, train_args(run, SHORT))])
        assert code == 0, err
    assert main(["diff", str(runs["Haswell"]), str(runs["Sandybridge"])]) in (0, 1)
    out = capsys.readouterr().out
    assert out.startswith("identity: 1 field(s) differ, so the bits are expected to differ")
    assert f"BLAS kernels: Haswell ({runs['Haswell']}) vs Sandybridge ({runs['Sandybridge']})" in out

    code, _, err = launch([("Sandybridge", ["train", "--resume", str(runs["Haswell"]), "--quiet", "--set",
                                            "steps=4"])])
    assert code == 0, err
    [note] = [line for line in err.splitlines() if "other numerical code" in line]
    assert "from step 3" in note and "BLAS kernels Haswell before, Sandybridge now" in note
    main(["diff", str(runs["Haswell"]), str(runs["Sandybridge"])])
    assert "BLAS kernels: Sandybridge on rank 0, Haswell until step 3" in capsys.readouterr().out
