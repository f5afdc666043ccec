"""The mlp's accuracy (training batch and validation) and `mpigrad eval`, against an independent numpy computation."""

import json
import os

import numpy as np
import pytest

from mpigrad.cli import main
from mpigrad.config import load_config
from mpigrad.data import load_data
from mpigrad.run import read_parameters
from mpigrad.runtime import GlobalBatches
from mpigrad.runtime.checkpoint import read_verified
from launch import run_mpi
from test_train_cli import main_here

SETS = ["model=\"mlp\"", "hidden=[8]", "steps=6", "global_batch=16", "micro_batch=4", "eval_every=3",
        "eval_samples=37", "val_fraction=0.25", "checkpoint_every=3", "log_every=1", "lr=0.05", "deterministic=true"]


def make_data(path, rows=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, 5)).astype(np.float32)
    y = np.argmax(X @ rng.standard_normal((5, 3)), axis=1)
    np.savez(path, X=X, y=y)


def numpy_forward(params, x):
    """The mlp's logits in float64, from the saved arrays alone."""
    h = np.maximum(x.astype(np.float64) @ params["mlp.0.weight"].T.astype(np.float64) + params["mlp.0.bias"], 0)
    return h @ params["mlp.2.weight"].T.astype(np.float64) + params["mlp.2.bias"]


def numpy_loss_and_accuracy(params, x, y):
    logits = numpy_forward(params, x)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(y)), y].mean(), np.mean(np.argmax(logits, axis=1) == y)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlp")
    make_data(root / "data.npz")
    make_data(root / "other.npz", rows=90, seed=5)
    for world in (1, 2):
        sets = [a for item in [*SETS, f"data=\"{root / 'data.npz'}\""] for a in ("--set", item)]
        args = ["train", "--quiet", "--out", str(root / f"w{world}"), *sets]
        # world 1 in this process (no start-up), world 2 launched
        code, err = main_here(args)[::2] if world == 1 else run_mpi(world, ["-m", "mpigrad", *args])[::2]
        assert code == 0, err
    return root


def rows_of(run):
    return [json.loads(line) for line in open(run / "metrics.jsonl")]


def test_val_accuracy_is_over_exactly_the_val_loss_rows(runs):
    cfg = load_config(runs / "w1" / "config.toml")
    x, y = load_data(cfg).val.batch(np.arange(37))
    params, _ = read_parameters(runs / "w1")
    loss, accuracy = numpy_loss_and_accuracy(params, x, y)
    last = rows_of(runs / "w1")[-1]
    assert last["val_accuracy"] == accuracy and 0 < accuracy < 1
    assert np.isclose(last["val_loss"], loss, rtol=1e-5)


def test_training_accuracy_is_the_step_global_batch(runs):
    cfg = load_config(runs / "w2" / "config.toml")
    data = load_data(cfg)
    with np.load(__import__("io").BytesIO(read_verified(runs / "w2" / "checkpoints" / "step-00000003.ckpt"))) as f:
        params = {k[len("param/"):]: f[k] for k in f.files if k.startswith("param/")}
    x, y = data.train.batch(GlobalBatches(data.train.num_samples, 16, cfg.seed).batch(3))  # step 4's batch
    loss, accuracy = numpy_loss_and_accuracy(params, x, y)
    row = rows_of(runs / "w2")[3]
    assert row["step"] == 4 and row["accuracy"] == accuracy and np.isclose(row["loss"], loss, rtol=1e-5)


def test_metrics_are_the_same_bits_at_world_1_and_2(runs):
    keys = ("loss", "accuracy", "val_loss", "val_accuracy", "digest")
    one, two = ([[r.get(k) for k in keys] for r in rows_of(runs / w)] for w in ("w1", "w2"))
    assert one == two
    assert sum("val_accuracy" in r for r in rows_of(runs / "w1")) == 2


def test_eval_on_the_validation_split_and_on_another_file(runs, capsys):
    params, _ = read_parameters(runs / "w1")
    cfg = load_config(runs / "w1" / "config.toml")
    val = load_data(cfg).val
    x, y = val.batch(np.arange(val.num_samples))
    assert main(["eval", str(runs / "w1")]) == 0
    words = capsys.readouterr().out.split()
    loss, accuracy = numpy_loss_and_accuracy(params, x, y)
    assert np.isclose(float(words[1]), loss, rtol=1e-5) and float(words[3]) == round(accuracy, 4)
    assert words[5] == str(val.num_samples)
    with np.load(runs / "other.npz") as f:
        loss, accuracy = numpy_loss_and_accuracy(params, f["X"], f["y"])
    assert main(["eval", str(runs / "w1"), "--data", str(runs / "other.npz")]) == 0
    words = capsys.readouterr().out.split()
    assert np.isclose(float(words[1]), loss, rtol=1e-5) and float(words[3]) == round(accuracy, 4) and words[5] == "90"


def test_eval_under_mpiexec_prints_once_the_same_numbers(runs, capsys):
    assert main(["eval", str(runs / "w1")]) == 0
    alone = capsys.readouterr().out
    code, out, err, _ = run_mpi(2, ["-m", "mpigrad", "eval", str(runs / "w1")], timeout=60)
    assert code == 0 and out == alone, err


def test_eval_refuses_data_of_another_shape_in_one_line(runs, tmp_path, capsys):
    np.savez(tmp_path / "wide.npz", X=np.zeros((4, 6), np.float32), y=np.zeros(4, np.int64))
    assert main(["eval", str(runs / "w1"), "--data", str(tmp_path / "wide.npz")]) == 2
    err = capsys.readouterr().err
    assert err == (f"mpigrad eval: error: data file {tmp_path / 'wide.npz'}: 6 features and labels up to 0, "
                   "but the model takes 5 features and 3 classes\n")


def test_plot_draws_accuracy_beside_loss(runs, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["plot", str(runs / "w1"), "--out", str(tmp_path / "a.png")]) == 0
    png = (tmp_path / "a.png").read_bytes()
    assert int.from_bytes(png[16:20], "big") == 1440  # two panels: 12 in at 120 dpi (one panel is 7 in)
