"""The flat fast path: detection, bitwise equality with the per-parameter path, shards."""

import numpy as np
import pytest

from mpigrad.autograd import Variable
from mpigrad.optim import SGD, Adam, AdamW, Scratch, adam_update, flatten_parameters
from optim_helpers import make_params, run, set_grads

MAKERS = {
    "adam": lambda ps: Adam(ps, lr=0.01),
    "adam-l2": lambda ps: Adam(ps, lr=0.01, weight_decay=0.1),
    "adamw": lambda ps: AdamW(ps, lr=0.01, weight_decay=0.1),
    "sgd-nesterov-wd": lambda ps: SGD(ps, lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.1),
}


def mixed_params(seed):
    """float32 and float64 parameters interleaved, including a 0-d one and a large one."""
    shapes = [(3, 4), (5,), (), (70_000,), (2, 3, 2)]
    return [Variable(np.random.default_rng(seed + i).standard_normal(s).astype(dt), requires_grad=True)
            for i, (s, dt) in enumerate(zip(shapes, [np.float32, np.float64, np.float32, np.float32, np.float64]))]


def flat_path(opt):
    return [r.data is not None for r in opt._layout()]


@pytest.mark.parametrize("name", MAKERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flat_equals_per_parameter_bitwise(name, dtype):
    shapes = [(3, 4), (5,), (), (70_000,), (2, 3, 2)]  # 70_000 spans several chunks
    a, b = make_params(0, dtype, shapes), make_params(0, dtype, shapes)
    flatten_parameters(b)
    opt_a, opt_b = MAKERS[name](a), MAKERS[name](b)
    assert flat_path(opt_a) == [False] * 5 and flat_path(opt_b) == [True]
    run(opt_a, a, 4)
    run(opt_b, b, 4)
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.data, q.data)


def test_one_group_per_dtype_and_groups_as_params():
    a, b = mixed_params(1), mixed_params(1)
    groups = flatten_parameters(b)
    assert [g.dtype for g in groups] == [np.float32, np.float64]
    opt_a = Adam(a, lr=0.01)
    opt_b = Adam(groups, lr=0.01)  # groups stand for their params (float32 ones first)
    assert opt_b.params == groups[0].params + groups[1].params
    assert flat_path(opt_b) == [True, True]
    run(opt_a, a, 3)
    run(opt_b, b, 3)
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.data, q.data)


def test_layout_is_found_from_the_arrays():
    params = make_params(0)
    flatten_parameters(params)
    assert flat_path(Adam(params[::-1])) == [False] * len(params)  # not back to back in this order
    assert flat_path(Adam(params[:2])) == [True]  # part of a buffer is fine
    assert flat_path(Adam(params[1:] + params[:1])) == [True, False]
    assert [(r.lo, r.hi) for r in Adam(params[1:] + params[:1])._layout()] == [(0, 3), (3, 4)]


def test_rebound_grad_falls_back_and_keeps_results():
    a, b = make_params(2), make_params(2)
    flatten_parameters(b)
    opt_a, opt_b = Adam(a, lr=0.01), Adam(b, lr=0.01)
    run(opt_a, a, 2)
    run(opt_b, b, 2)
    b[1].grad = np.zeros_like(b[1].data)  # the group is no longer intact
    assert flat_path(opt_b) == [False, False, True]  # params 2 and 3 are still back to back
    run(opt_a, a, 2, first_seed=7)
    run(opt_b, b, 2, first_seed=7)
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.data, q.data)


def test_flattening_after_building_the_optimizer_keeps_the_moments():
    a, b = make_params(3), make_params(3)
    opt_a, opt_b = Adam(a, lr=0.01), Adam(b, lr=0.01)
    run(opt_a, a, 2)
    run(opt_b, b, 2)
    flatten_parameters(b)
    assert flat_path(opt_b) == [True]
    run(opt_a, a, 2, first_seed=9)
    run(opt_b, b, 2, first_seed=9)
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.data, q.data)


def test_state_of_flat_params_is_a_view_into_one_buffer():
    params = make_params(0)
    flatten_parameters(params)
    opt = Adam(params)
    flat_m = opt._run_state[0, len(params)]["m_sum"]
    assert all(np.shares_memory(s["m_sum"], flat_m) for s in opt._state)


def test_shards_of_a_flat_buffer_match_the_whole_buffer():
    """ZeRO-1: each rank runs Adam over a slice; the union equals the unsharded update."""
    params, shard_params = make_params(4), make_params(4)
    group, = flatten_parameters(params)
    other, = flatten_parameters(shard_params)
    bounds = [(0, 7), (7, 20), (20, other.size)]
    shards = [Variable(other.data[lo:hi], requires_grad=True) for lo, hi in bounds]
    for s, (lo, hi) in zip(shards, bounds):
        s.grad = other.grad[lo:hi]
    whole, sharded = Adam(params, lr=0.01), [Adam([s], lr=0.01) for s in shards]
    for t in range(3):
        set_grads(params, t)
        set_grads(shard_params, t)
        whole.step()
        for opt in sharded:
            opt.step()
    np.testing.assert_array_equal(group.data, other.data)


def test_kernel_on_a_slice_with_own_scratch():
    rng = np.random.default_rng(0)
    p, g = rng.standard_normal(1000).astype(np.float32), rng.standard_normal(1000).astype(np.float32)
    m, v = np.zeros_like(p), np.zeros_like(p)
    q = p.copy()
    adam_update(p[100:600], g[100:600], m[100:600], v[100:600], step=1, lr=0.1, scratch=Scratch(256))
    np.testing.assert_array_equal(p[:100], q[:100])
    np.testing.assert_array_equal(p[600:], q[600:])
    np.testing.assert_allclose(p[100:600], q[100:600] - 0.1 * np.sign(g[100:600]), rtol=1e-5)


def test_non_contiguous_parameter_is_updated_in_place():
    base = np.arange(12.0).reshape(3, 4)
    p = Variable(base.T, requires_grad=True)  # a transposed view
    q = Variable(base.T.copy(), requires_grad=True)
    p.grad = q.grad = np.ones((4, 3))
    Adam([p], lr=0.1).step()
    Adam([q], lr=0.1).step()
    assert np.shares_memory(p.data, base)
    np.testing.assert_array_equal(p.data, q.data)


def test_zero_style_shards_with_own_grads_and_an_empty_shard():
    """Like the runtime's ZeRO-1: shard Variables over slices of the data, grads in their own arrays."""
    params, other = make_params(6), make_params(6)
    group, = flatten_parameters(params)
    twin, = flatten_parameters(other)
    bounds = [(0, 0), (0, 11), (11, twin.size)]
    shards = []
    for lo, hi in bounds:
        s = Variable(twin.data[lo:hi], requires_grad=True)
        s.grad = np.zeros(hi - lo)
        shards.append(s)
    whole, sharded = AdamW(params, lr=0.01), AdamW(shards, lr=0.01)
    assert flat_path(sharded) == [False, False, False]
    for t in range(3):
        set_grads(params, t)
        set_grads(other, t)
        for s, (lo, hi) in zip(shards, bounds):
            s.grad[...] = twin.grad[lo:hi]
        whole.step()
        sharded.step()
    np.testing.assert_array_equal(group.data, twin.data)
    assert sharded.grad_norm() == pytest.approx(whole.grad_norm(), rel=1e-12)
