"""`epochs`: steps counted from the training rows, instead of `steps` (never both); kept across --resume."""

import json

import numpy as np

from mpigrad.config import load_config
from mpigrad.data import load_data
from test_train_cli import main_here

MLP = ['model="mlp"', "hidden=[8]", "global_batch=8", "micro_batch=4", "eval_every=0", "checkpoint_every=0",
       "warmup_steps=2"]


def blobs(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((90, 5)).astype(np.float32)
    np.savez(tmp_path / "blobs.npz", X=X, y=np.argmax(X[:, :3], axis=1))
    return f'data="{tmp_path / "blobs.npz"}"'


def sets(*items):
    return [a for item in items for a in ("--set", item)]


def steps_logged(run):
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_epochs_sets_the_steps_from_the_rows_and_resume_extends_them(tmp_path):
    data = blobs(tmp_path)
    rows = load_data(load_config(None, [*MLP, data])).train.num_samples
    per_epoch = rows // 8
    code, _, err = main_here(["train", "--quiet", "--out", str(tmp_path / "run"), *sets(*MLP, data, "epochs=2")])
    assert code == 0, err
    assert steps_logged(tmp_path / "run")[-1] == 2 * per_epoch
    config = (tmp_path / "run" / "config.toml").read_text()
    assert "epochs = 2\n" in config and f"# steps = {2 * per_epoch} (from epochs)\n" in config
    assert f"decay_steps = {2 * per_epoch - 2}\n" in config  # the cosine ends at the last step
    code, _, err = main_here(["train", "--quiet", "--resume", str(tmp_path / "run"), *sets("epochs=3")])
    assert code == 0, err
    assert steps_logged(tmp_path / "run")[-1] == 3 * per_epoch


def test_steps_and_epochs_together_are_one_line(tmp_path):
    code, out, err = main_here(["train", "--quiet", "--out", str(tmp_path / "run"),
                                *sets(*MLP, blobs(tmp_path), "epochs=2", "steps=10")])
    assert code == 2 and out == ""
    assert err == ("mpigrad train: error: config keys 'steps' (10) and 'epochs' (2) are both set; set one of them "
                   "(epochs counts the steps from the data's rows)\n")
    assert not (tmp_path / "run").exists()
