"""Untrusted inputs cannot exhaust memory: a corrupt label cannot size the model, a model too big for
the machine is refused before it is allocated, and a crafted final.npz is one line."""

import io
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest

from mpigrad.config import load_config
from mpigrad.data import ArrayData
from mpigrad.models import build_model
from test_train_cli import copy_run, main_here, train_here

MLP = ["model=\"mlp\"", "steps=2", "global_batch=4", "micro_batch=2", "checkpoint_every=0", "eval_every=0",
       "eval_samples=4", "log_every=1", "warmup_steps=0"]


def labelled(tmp_path, y, name="d.npz"):
    path = tmp_path / name
    np.savez(path, X=np.ones((len(y), 3), np.float32), y=np.asarray(y, np.int64))
    return path


def test_one_corrupt_label_is_refused_in_one_line_naming_it(tmp_path):
    y = [0, 1, 2] * 10
    y[17] = 2_000_000
    path = labelled(tmp_path, y)
    code, _, err = train_here(tmp_path / "run", *MLP, f"data=\"{path}\"", "hidden=[2]")
    assert code == 2 and err == (f"mpigrad train: error: data file {path}: label 2000000 (row 17) would make "
                                 "2,000,001 classes, but only 4 distinct labels occur; fix the label, or set "
                                 "classes = 2000001 if that many are meant\n"), err
    assert not (tmp_path / "run").exists()


def test_the_classes_key_allows_sparse_labels_and_bounds_them(tmp_path):
    path = labelled(tmp_path, [0, 1, 99] * 4)
    code, _, err = train_here(tmp_path / "run", *MLP, f"data=\"{path}\"", "classes=100")
    assert code == 0, err
    code, _, err = train_here(tmp_path / "run2", *MLP, f"data=\"{path}\"", "classes=50")
    assert code == 2 and f"data file {path}: label 99 (row 2) is not below classes = 50" in err, err


def test_a_model_too_big_for_the_machine_is_refused_before_allocating(tmp_path):
    path = labelled(tmp_path, [0, 1, 2] * 4)
    code, _, err = train_here(tmp_path / "run", *MLP, f"data=\"{path}\"", "hidden=[10000000000]")
    assert code == 2 and err.count("\n") == 1, err
    assert ("mpigrad train: error: the mlp model would have 70,000,000,003 parameters: about 1,120.0 GB per rank for "
            "parameters, gradients and Adam state (float32), more than this machine's") in err, err


@pytest.mark.parametrize("model", ["mlp", "transformer"])
def test_the_parameter_count_estimate_is_exact(model):
    from mpigrad.models import parameter_count
    if model == "mlp":
        cfg = load_config(None, ["model=\"mlp\"", "data=\"x.npz\"", "hidden=[7, 5]"])
        data = SimpleNamespace(features=11, classes=4)
    else:
        cfg = load_config(None, ["d_model=8", "num_heads=2", "num_layers=2", "context=6"])
        data = SimpleNamespace(vocab="abcdefghij")
    assert parameter_count(cfg, data) == sum(p.size for p in build_model(cfg, data).parameters())


def test_eval_of_a_crafted_final_npz_is_one_line(tmp_path, tiny_run_2):
    run = copy_run(tiny_run_2, tmp_path / "run")
    with zipfile.ZipFile(run / "final.npz", "a", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("bomb.npy", "w", force_zip64=True) as f:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                          "shape": (100 * 2**17,)})
            f.write(header.getvalue())
            for _ in range(100):
                f.write(bytes(2**20))
    code, _, err = main_here(["eval", str(run)])
    assert code == 2 and err == (f"mpigrad eval: error: {run}/final.npz: array 'bomb' is compressed; mpigrad reads "
                                 "only the uncompressed archives it writes\n"), err


def test_array_data_without_a_bound_for_a_trained_models_labels():
    X, y = np.ones((3, 2)), np.array([0, 0, 40])
    assert ArrayData(X, y, "d", 0.0, np.dtype("float32"), classes=None).classes == 41
