"""NaN/Inf in a step: every rank makes the same decision (stop, or skip and count); bad data is refused."""

import json

import numpy as np
import pytest

from test_train_cli import train

MLP = ["model=\"mlp\"", "hidden=[16]", "val_fraction=0.0", "steps=8", "checkpoint_every=0",
       "check_replicas_every=1", "eval_every=0"]


def write_data(path, rows, poison=None):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, 4)).astype(np.float32)
    if poison is not None:
        X[poison, 0] = np.nan
    np.savez(path, X=X, y=rng.integers(0, 3, rows))
    return f"data=\"{path}\""


def test_stop_is_the_default(tmp_path):
    data = write_data(tmp_path / "d.npz", 64, poison=5)
    code, _, err, _ = train(2, tmp_path / "run", *MLP, data, timeout=120)
    assert code == 1 and "non-finite loss" in err, err
    assert not (tmp_path / "run" / "final.npz").exists()


def test_skip_counts_and_keeps_replicas_identical(tmp_path):
    data = write_data(tmp_path / "d.npz", 64, poison=5)
    code, _, err, _ = train(2, tmp_path / "run", *MLP, data, "nonfinite=\"skip\"", timeout=120)
    assert code == 0, err
    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert rows[-1]["skipped_steps"] >= 1
    assert any(r["loss"] == "nan" for r in rows)  # NaN is written as the string "nan" (JSON has no NaN)
    with np.load(tmp_path / "run" / "final.npz") as f:
        assert all(np.all(np.isfinite(f[k])) for k in f.files)


@pytest.mark.parametrize("rows, message", [(4, "fewer than global_batch=8"), (64, None)])
def test_data_smaller_than_the_batch_is_refused(tmp_path, rows, message):
    data = write_data(tmp_path / "d.npz", rows)
    code, _, err, _ = train(2, tmp_path / "run", *MLP, data, "steps=1", timeout=120)
    if message is None:
        assert code == 0, err
    else:
        assert code == 2 and message in err and err.count("\n") == 1, err
