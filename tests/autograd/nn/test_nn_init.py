"""Initialisers: fans, statistics, dtypes, determinism from an explicit Generator."""

import math

import numpy as np
import pytest

from mpigrad.autograd.nn import init


def test_fans_follow_the_out_in_convention():
    assert init.fans((30, 20)) == (20, 30)
    assert init.fans((8, 4, 3, 3)) == (36, 72)
    assert init.fans((7,)) == (7, 7)
    assert init.fans(()) == (1, 1)


SHAPE = (400, 300)  # fan_in 300, fan_out 400
EXPECTED_STD = {
    "xavier_uniform": math.sqrt(2 / 700), "xavier_normal": math.sqrt(2 / 700),
    "kaiming_uniform": math.sqrt(2 / 300), "kaiming_normal": math.sqrt(2 / 300),
    "lecun_uniform": math.sqrt(1 / 300), "lecun_normal": math.sqrt(1 / 300),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_STD))
def test_standard_deviations(name):
    w = getattr(init, name)(SHAPE, np.random.default_rng(0))
    assert w.shape == SHAPE and w.dtype == np.float32
    assert abs(w.std() / EXPECTED_STD[name] - 1) < 0.02
    assert abs(w.mean()) < 0.01 * EXPECTED_STD[name] * 10
    if name.endswith("uniform"):
        assert np.abs(w).max() <= EXPECTED_STD[name] * math.sqrt(3) + 1e-7


def test_aliases():
    assert init.glorot_uniform is init.xavier_uniform and init.glorot_normal is init.xavier_normal
    assert init.he_uniform is init.kaiming_uniform and init.he_normal is init.kaiming_normal


def test_kaiming_options():
    rng = np.random.default_rng
    w = init.kaiming_uniform((10, 1000), rng(0), a=math.sqrt(5))
    assert np.abs(w).max() <= 1 / math.sqrt(1000) + 1e-7  # PyTorch's Linear default bound
    w = init.kaiming_normal((1000, 10), rng(0), mode="fan_out", dtype=np.float64)
    assert w.dtype == np.float64 and abs(w.std() * math.sqrt(1000 / 2) - 1) < 0.05
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_normal((2, 2), rng(0), mode="fan")


def test_gain_and_constants():
    w = init.xavier_normal((500, 500), np.random.default_rng(0), gain=2.0)
    assert abs(w.std() / (2 * math.sqrt(2 / 1000)) - 1) < 0.02
    assert not init.zeros((2, 3)).any() and init.zeros((2, 3)).dtype == np.float32
    assert (init.ones((4,), dtype=np.float64) == 1).all()


def test_same_generator_state_same_values_across_dtypes():
    a = init.xavier_uniform((5, 4), np.random.default_rng(3), dtype=np.float64)
    b = init.xavier_uniform((5, 4), np.random.default_rng(3), dtype=np.float32)
    np.testing.assert_array_equal(a.astype(np.float32), b)


def test_resolve_rng():
    g = np.random.default_rng(0)
    assert init.resolve_rng(g) is g
    assert init.resolve_rng(5).random() == np.random.default_rng(5).random()
    init.manual_seed(11)
    first = init.resolve_rng(None).random()
    init.manual_seed(11)
    np.random.seed(5)  # numpy's global state plays no part
    assert init.resolve_rng(None).random() == first
    with pytest.raises(ValueError, match=r"manual_seed: seed must be an integer in \[0, 2\*\*32\), got -1"):
        init.manual_seed(-1)
    with pytest.raises(TypeError, match="Generator"):
        init.resolve_rng("seed")
