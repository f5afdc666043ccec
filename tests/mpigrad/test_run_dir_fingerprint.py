"""Data is fingerprinted (size and SHA-256 of each file read): recorded in config.toml and checkpoints,
checked on resume and eval in one line naming the file, and compared across ranks at start-up."""

import hashlib
import os
import subprocess
import sys
import tomllib

import numpy as np

from test_run_dir_startup import mpmd

MLP = ["--set", "model=\"mlp\"", "--set", "data=\"d.npz\"", "--set", "hidden=[4]", "--set", "global_batch=4",
       "--set", "micro_batch=2", "--set", "eval_every=0", "--set", "eval_samples=4", "--set", "warmup_steps=0",
       "--set", "log_every=1", "--set", "steps=4", "--set", "checkpoint_every=2", "--set", "val_fraction=0.25"]


def write_data(directory, shift=0.0):
    rng = np.random.default_rng(0)
    np.savez(directory / "d.npz", X=rng.random((24, 3), dtype=np.float32) + np.float32(shift),
             y=np.arange(24) % 3)


def mpigrad(cwd, *args, timeout=120):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    env.pop("PMI_RANK", None)
    done = subprocess.run([sys.executable, "-m", "mpigrad", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)
    return done.returncode, done.stdout, done.stderr


def runs_in(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    a.mkdir()
    b.mkdir()
    write_data(a)
    code, _, err = mpigrad(a, "train", "--quiet", "--out", "run", *MLP)
    assert code == 0, err
    return a, b


def test_the_fingerprint_is_recorded_and_a_changed_file_refuses_resume(tmp_path):
    a, _ = runs_in(tmp_path)
    recorded = tomllib.loads((a / "run" / "config.toml").read_text())["data_fingerprint"]["data"]
    assert recorded == {"path": "d.npz", "bytes": (a / "d.npz").stat().st_size,
                        "sha256": hashlib.sha256((a / "d.npz").read_bytes()).hexdigest()}
    write_data(a, shift=1.0)  # the same name, other contents
    code, _, err = mpigrad(a, "train", "--resume", "run", "--quiet", "--set", "steps=6")
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("mpigrad train: error: data file d.npz is not the one run/checkpoints/step-00000004.ckpt "
                          "was trained on ("), err


def test_eval_from_another_directory_refuses_a_file_of_the_same_name_with_other_contents(tmp_path):
    a, b = runs_in(tmp_path)
    write_data(b, shift=1.0)
    code, out, err = mpigrad(b, "eval", "../A/run")
    assert code == 2 and err.startswith("mpigrad eval: error: data file d.npz is not the one ../A/run was trained "
                                        "on ("), out + err
    write_data(b)  # an identical copy is the same data
    code, out, err = mpigrad(b, "eval", "../A/run")
    assert code == 0 and "on 6 samples of the validation split of d.npz" in out, out + err


def test_ranks_reading_different_contents_are_refused(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    a.mkdir()
    b.mkdir()
    write_data(a)
    write_data(b, shift=1.0)
    code, _, err = mpmd([a, b], ["train", "--quiet", "--out", "run", *MLP], timeout=60)
    assert code == 2 and err.count("mpigrad train: error:") == 1, err
    assert "mpigrad train: error: rank 1 read data file d.npz as " in err and "every rank needs the same data" in err
    assert not (a / "run" / "config.toml").exists()


def test_eval_ranks_reading_different_contents_of_data_are_refused(tmp_path):
    a, b = runs_in(tmp_path)
    (b / "run").symlink_to(a / "run")
    write_data(b, shift=1.0)
    code, _, err = mpmd([a, b], ["eval", "run", "--data", "d.npz"], timeout=60)
    assert code == 2 and err.count("mpigrad eval: error:") == 1, err
    assert "mpigrad eval: error: rank 1 read d.npz with other contents than rank 0 (" in err, err
