"""`mpigrad train` with grad_comm_dtype: a float16 overflow stops the run with one line naming the
remedy; the key is checked like every other."""

import numpy as np

from test_train_cli import main_here


def huge_features(tmp_path):
    """An MLP whose first-layer gradients pass 65504: features of a million."""
    rng = np.random.default_rng(0)
    path = tmp_path / "huge.npz"
    np.savez(path, X=(rng.standard_normal((64, 8)) * 1e6).astype(np.float32), y=rng.integers(0, 3, 64))
    return path


def run(tmp_path, dtype, *extra):
    sets = ["model=\"mlp\"", f"data=\"{huge_features(tmp_path)}\"", "hidden=[8]", "steps=2", "global_batch=8",
            "micro_batch=8", "eval_every=0", "checkpoint_every=0", f"grad_comm_dtype=\"{dtype}\"", *extra]
    return main_here(["train", "--quiet", "--out", str(tmp_path / dtype), *[a for s in sets for a in ("--set", s)]])


def test_float16_overflow_stops_with_one_line_naming_bfloat16(tmp_path):
    code, _, err = run(tmp_path, "float16")
    assert code == 1
    assert err.startswith("mpigrad train: stopping at step 1: gradient norm inf with grad_comm_dtype = \"float16\"")
    assert "bfloat16" in err and err.count("\n") == 1, err


def test_bfloat16_has_float32s_range(tmp_path):
    code, _, err = run(tmp_path, "bfloat16")
    assert code == 0, err


def test_sixteen_bits_need_float32_parameters(tmp_path):
    code, _, err = run(tmp_path, "bfloat16", "dtype=\"float64\"")
    assert code == 2
    assert err == "mpigrad train: error: grad_comm_dtype = 'bfloat16' needs dtype = 'float32', got 'float64'\n"
