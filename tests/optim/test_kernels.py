"""Kernel contracts pinned bit for bit against straightforward references."""

import math

import numpy as np
import pytest

from mpigrad.optim import sum_of_squares


def reference_sum_of_squares(x, row=8192):
    """One float64 dot per 8192-element chunk, the chunk sums added in order in a Python float."""
    x = x.reshape(-1)
    total = 0.0
    for lo in range(0, x.size, row):
        w = x[lo:lo + row].astype(np.float64)
        total += float(np.dot(w, w))
    return total


# 0, 1, one row short, one row, one row and one, 8 rows and a bit, and several float32 blocks
# of 16 rows ending in a partial block and a tail
SIZES = [0, 1, 8191, 8192, 8193, 65537 + 5, 2 * 16 * 8192 + 3 * 8192 + 7]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", SIZES)
def test_sum_of_squares_is_bitwise_the_chunked_reference(size, dtype):
    x = (np.random.default_rng(size).standard_normal(size) * 3.0).astype(dtype)
    got = sum_of_squares(x)
    assert isinstance(got, float)
    assert got.hex() == reference_sum_of_squares(x).hex()


def test_sum_of_squares_of_float32_near_its_max_does_not_overflow():
    x = np.full(3 * 8192 + 1, 3e38, np.float32)  # each square overflows float32, not float64
    got = sum_of_squares(x)
    assert got == reference_sum_of_squares(x)
    assert math.isclose(got, x.size * float(np.float32(3e38)) ** 2, rel_tol=1e-12)


def test_sum_of_squares_takes_any_shape_and_strides():
    x = np.random.default_rng(1).standard_normal((300, 700)).astype(np.float32)
    assert sum_of_squares(x) == reference_sum_of_squares(np.ascontiguousarray(x))
    assert sum_of_squares(x.T) == reference_sum_of_squares(np.ascontiguousarray(x.T))
    assert sum_of_squares(x[:, ::3]) == reference_sum_of_squares(np.ascontiguousarray(x[:, ::3]))
