"""What help() and the config table tell a user: load_run, learning_rate, allowed values, flattened samples."""

import inspect
import pydoc
import subprocess
import sys
from pathlib import Path

import numpy as np

import mpigrad
from mpigrad.config import KEYS, key_help
from mpigrad.data import ArrayData
from mpigrad.optim import Adam, Optimizer

ROOT = Path(__file__).resolve().parents[2]


def test_help_of_the_package_lists_load_run():
    text = pydoc.render_doc(mpigrad, renderer=pydoc.plaintext)
    assert "load_run(directory)" in text and "(model, cfg)" in text


def test_learning_rate_has_a_docstring():
    for cls in (Optimizer, Adam):
        assert "learning rate" in (inspect.getdoc(cls.learning_rate) or "")


def test_the_config_table_gives_every_allowed_value():
    table = subprocess.run([sys.executable, str(ROOT / "scripts" / "config_table.py")], capture_output=True,
                           text=True, check=True, timeout=60).stdout
    for key in ("activation", "nonfinite", "dtype", "model"):
        row = next(line for line in table.splitlines() if line.startswith(f"| `{key}` |"))
        assert all(f"`{choice}`" in row for choice in KEYS[key].choices), row
        assert key_help(key) in row


def test_a_sample_with_more_than_one_axis_is_said_to_be_flattened():
    X, y = np.zeros((10, 2, 3), np.float32), np.arange(10) % 2
    assert "6 features (each 2x3 sample flattened), 2 classes" in ArrayData(X, y, "d.npz", 0.2, np.float32).describe()
    flat = ArrayData(X.reshape(10, 6), y, "d.npz", 0.2, np.float32).describe()
    assert "6 features, 2 classes" in flat
