import math

import numpy as np
import pytest

from mpigrad.autograd import Variable
from mpigrad.optim import Adam, clip_scale, flatten_parameters
from optim_helpers import make_params


def with_grads(grads, dtype=np.float64):
    params = [Variable(np.zeros(np.shape(g), dtype), requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = None if g is None else np.array(g, dtype)
    return params


def test_zero_grad_fills_in_place_and_leaves_none():
    params = with_grads([[1.0, 2.0], [3.0]]) + [Variable(np.zeros(2), requires_grad=True)]
    before = [p.grad for p in params]
    Adam(params).zero_grad()
    assert all(p.grad is g for p, g in zip(params, before))
    assert params[2].grad is None
    assert all(not p.grad.any() for p in params[:2])


def test_zero_grad_on_flat_buffers_keeps_views():
    params = make_params(0)
    for p in params:
        p.grad = np.ones_like(p.data)
    group, = flatten_parameters(params)
    Adam(params).zero_grad()
    assert group.is_intact()
    assert all(p.grad is v and not p.grad.any() for p, v in zip(params, group.grad_views))
    assert not group.grad.any()  # every view was read: the deferred zero has been applied to all


def test_grad_norm_is_global_l2_and_skips_none():
    params = with_grads([[3.0], [4.0, 0.0], None])
    assert Adam(params).grad_norm() == 5.0


def test_grad_norm_accumulates_in_float64():
    # 1e6 values of 1e-4 in float32: a float32 running sum drifts; float64 gives sqrt(1e-2) closely
    g = np.full(1_000_000, 1e-4, np.float32)
    params = with_grads([g], np.float32)
    exact = math.sqrt(1_000_000 * float(np.float32(1e-4)) ** 2)
    assert Adam(params).grad_norm() == pytest.approx(exact, rel=1e-12)
    assert isinstance(Adam(params).grad_norm(), float)


def test_grad_norm_does_not_overflow_float32():
    params = with_grads([[1e30, 1e30]], np.float32)
    assert Adam(params).grad_norm() == pytest.approx(math.sqrt(2) * float(np.float32(1e30)), rel=1e-12)


def test_grad_norm_is_layout_independent():
    a, b = make_params(0), make_params(0)
    for p, q in zip(a, b):
        p.grad = np.random.default_rng(p.data.size).standard_normal(p.data.shape)
        q.grad = p.grad.copy()
    flatten_parameters(b)
    assert Adam(a).grad_norm() == Adam(b).grad_norm()


def test_clip_grad_norm_scales_when_exceeding():
    params = with_grads([[3.0], [4.0]])
    opt = Adam(params)
    assert opt.clip_grad_norm(1.0) == 5.0
    scale = 1.0 / (5.0 + 1e-6)
    assert params[0].grad[0] == 3.0 * scale and params[1].grad[0] == 4.0 * scale


def test_clip_scale_is_the_factor_clipping_applies():
    assert clip_scale(5.0, 1.0) == 1.0 / (5.0 + 1e-6)
    assert clip_scale(5.0, 5.0) == 1.0 and clip_scale(0.5, 1.0) == 1.0


def test_clip_grad_norm_leaves_small_grads_alone():
    params = with_grads([[3.0], [4.0]])
    grad = params[0].grad
    assert Adam(params).clip_grad_norm(5.0) == 5.0  # not strictly greater: no scaling
    assert params[0].grad is grad and grad[0] == 3.0


def test_clip_grad_norm_uses_given_total_norm():
    params = with_grads([[3.0], [4.0]])
    assert Adam(params).clip_grad_norm(1.0, total_norm=10.0) == 10.0
    assert params[0].grad[0] == 3.0 * (1.0 / (10.0 + 1e-6))
    params = with_grads([[300.0]])
    assert Adam(params).clip_grad_norm(1.0, total_norm=0.5) == 0.5
    assert params[0].grad[0] == 300.0


def test_clip_grad_norm_keeps_float32_on_flat_buffers():
    params = make_params(0, np.float32)
    for p in params:
        p.grad = np.full(p.data.shape, 2.0, np.float32)
    group, = flatten_parameters(params)
    Adam(params).clip_grad_norm(0.1)
    assert group.grad.dtype == np.float32 and group.is_intact()
    assert math.isclose(Adam(params).grad_norm(), 0.1, rel_tol=1e-5)


def test_clip_grad_value_clamps_in_place():
    params = with_grads([[-3.0, 0.5, 2.0], None])
    grad = params[0].grad
    Adam(params).clip_grad_value(-1.0, 1.0)
    assert params[0].grad is grad
    np.testing.assert_array_equal(grad, [-1.0, 0.5, 1.0])
    with pytest.raises(ValueError, match=r"min_val=2\.0 is greater than max_val=1\.0"):
        Adam(params).clip_grad_value(2.0, 1.0)


def test_sum_of_squares_bits_do_not_depend_on_blas_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from mpigrad.optim import sum_of_squares
    x = np.random.default_rng(0).standard_normal(200_001)
    results = []
    for n in (1, 2, 4):
        with threadpoolctl.threadpool_limits(n, user_api="blas"):
            results.append((sum_of_squares(x), sum_of_squares(x.astype(np.float32))))
    assert len(set(results)) == 1
