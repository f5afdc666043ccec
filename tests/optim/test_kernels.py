"""Kernel contracts pinned bit for bit against straightforward references."""

import math

import numpy as np
import pytest

from mpigrad.optim import Scratch, adam_update, sgd_update, sum_of_squares


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


# ---- the kernels read grad and never write it

N = 3 * 4096 + 77  # several chunks of the small scratch below, and a partial one


def state(dtype, seed, slots):
    rng = np.random.default_rng(seed)
    data, grad = (rng.standard_normal(N).astype(dtype) for _ in range(2))
    rest = [np.abs(rng.standard_normal(N)).astype(dtype) for _ in range(slots)]
    return data, grad, rest


def assert_bitwise(a, b):
    assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


ADAM_CASES = [dict(), dict(weight_decay=0.1), dict(weight_decay=0.1, decoupled=True)]
SGD_CASES = [dict(), dict(weight_decay=0.1), dict(momentum=0.9), dict(momentum=0.9, weight_decay=0.1),
             dict(momentum=0.9, nesterov=True), dict(momentum=0.9, nesterov=True, weight_decay=0.1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", ADAM_CASES)
def test_adam_update_leaves_grad_as_it_was(dtype, kw):
    data, grad, rest = state(dtype, 0, 2)
    before = grad.copy()
    for step in (1, 2):
        adam_update(data, grad, *rest, step=step, lr=1e-2, scratch=Scratch(4096 * np.dtype(dtype).itemsize), **kw)
    assert_bitwise(grad, before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", SGD_CASES)
def test_sgd_update_leaves_grad_as_it_was(dtype, kw):
    data, grad, rest = state(dtype, 1, 1 if kw.get("momentum") else 0)
    before = grad.copy()
    for _ in range(2):
        sgd_update(data, grad, *(rest or [None]), lr=1e-2, scratch=Scratch(4096 * np.dtype(dtype).itemsize), **kw)
    assert_bitwise(grad, before)


# ---- adam_update: bitwise the documented maths written as whole-array numpy expressions

def reference_adam(p, g, m_sum, v_sum, *, step, lr, weight_decay, decoupled,
                   beta1=0.9, beta2=0.999, eps=1e-8):
    """kernels.adam_update's docstring, one whole-array operation at a time (NEP 50 scalars)."""
    f = p.dtype.type
    if weight_decay and not decoupled:
        g = p * f(weight_decay) + g
    root = math.sqrt((1.0 - beta2) / (1.0 - beta2 ** step))
    step_size = lr * (1.0 - beta1) / ((1.0 - beta1 ** step) * root)
    m_sum[...] = m_sum * f(beta1) + g
    v_sum[...] = v_sum * f(beta2) + g * g
    update = m_sum / (np.sqrt(v_sum) + f(eps / root)) * f(step_size)
    if weight_decay and decoupled:
        p[...] = p * f(1.0 - lr * weight_decay)
    p[...] = p - update


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", [dict(weight_decay=0.0, decoupled=False), dict(weight_decay=0.1, decoupled=False),
                                dict(weight_decay=0.1, decoupled=True)])
def test_adam_update_is_bitwise_the_documented_maths(dtype, kw):
    ref, got = state(dtype, 3, 2), state(dtype, 3, 2)
    for step in (1, 2, 3):
        reference_adam(ref[0], ref[1], *ref[2], step=step, lr=1e-2, **kw)
        adam_update(got[0], got[1], *got[2], step=step, lr=1e-2,
                    scratch=Scratch(4096 * np.dtype(dtype).itemsize), **kw)
    for a, b in zip([ref[0], *ref[2]], [got[0], *got[2]]):
        assert_bitwise(a, b)


def test_sum_of_squares_without_vecdot_gives_the_same_bits(monkeypatch):
    from mpigrad.optim import kernels
    x = np.random.default_rng(4).standard_normal(SIZES[-1]).astype(np.float32)
    expected = reference_sum_of_squares(x)
    monkeypatch.setattr(kernels, "_vecdot", None)  # numpy < 2.0
    assert sum_of_squares(x) == expected and sum_of_squares(x.astype(np.float64)) == reference_sum_of_squares(
        x.astype(np.float64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sum_of_squares_of_a_strided_view_is_that_of_its_values(dtype):
    # found by test_stateful_eager: a float64 .grad that is a strided view (reshape(-1) keeps it a
    # view, and BLAS sums a strided vector in another order than a contiguous one)
    base = np.random.default_rng(2).standard_normal((3, 4, 2)).astype(dtype)
    for view in (base[..., 1], np.random.default_rng(3).standard_normal(3 * 8192 + 77).astype(dtype)[::2]):
        assert not view.flags.c_contiguous
        assert sum_of_squares(view).hex() == reference_sum_of_squares(np.ascontiguousarray(view)).hex()
