"""zero_grad and clip_grad_norm are deferred: .grad reads as zeros / clipped gradients, backward
writes over a deferred zero instead of adding, and step() folds a deferred clip into its kernel.
Every result must be bitwise the one the eager passes give."""

import numpy as np
import pytest

from mpigrad.autograd import Variable, nn
from mpigrad.optim import SGD, Adam, AdamW, flatten_parameters


def _model(seed, dtype=np.float32):
    model = nn.MLP([6, 8, 3], rng=np.random.default_rng(seed))
    return model.to(dtype)


def _loss(model, seed):
    rng = np.random.default_rng(seed)
    x = Variable(rng.standard_normal((5, 6)).astype(model.parameters()[0].dtype))
    return (model(x) ** 2).mean()


def _eager_zero(params):
    for p in params:
        if p.grad is not None:
            p.grad.fill(0)


def _eager_clip(params, max_norm, norm):
    if norm > max_norm:
        for p in params:
            np.multiply(p.grad, max_norm / (norm + 1e-6), out=p.grad)


@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("make_opt", [
    lambda ps: Adam(ps, lr=0.01, weight_decay=0.1), lambda ps: AdamW(ps, lr=0.01),
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)])
def test_deferred_steps_are_bitwise_the_eager_ones(flat, make_opt):
    deferred, eager = _model(0), _model(0)
    if flat:
        flatten_parameters(deferred.parameters())
        flatten_parameters(eager.parameters())
    opt_d, opt_e = make_opt(deferred.parameters()), make_opt(eager.parameters())
    for step in range(4):
        opt_d.zero_grad()
        _eager_zero(eager.parameters())
        for micro in range(2):  # accumulation over a deferred zero: the first writes, the second adds
            _loss(deferred, 10 * step + micro).backward()
            _loss(eager, 10 * step + micro).backward()
        eager_norm = Adam(eager.parameters()).grad_norm()
        norm = opt_d.clip_grad_norm(0.05)
        _eager_clip(eager.parameters(), 0.05, eager_norm)
        assert norm == eager_norm
        assert norm > 0.05  # the clip is taken on every step of this test
        opt_d.step()
        opt_e.step()
        for p, q in zip(deferred.parameters(), eager.parameters()):
            assert np.array_equal(p.data, q.data)
            assert np.array_equal(p.grad, q.grad)  # the clipped gradient, still readable after step()


def test_zero_grad_leaves_the_buffer_until_read_and_backward_overwrites_it():
    model = _model(1)
    params = model.parameters()
    group, = flatten_parameters(params)
    _loss(model, 0).backward()
    first = [p.grad.copy() for p in params]
    Adam(params).zero_grad()
    assert np.array_equal(group.grad, np.concatenate([g.ravel() for g in first]))  # no pass over memory
    _loss(model, 0).backward()  # same loss again: written over the old values, not added to them
    assert all(np.array_equal(p.grad, g) for p, g in zip(params, first))


def test_reading_one_grad_between_clip_and_step_changes_nothing():
    touched, untouched = _model(2), _model(2)
    for m in (touched, untouched):
        flatten_parameters(m.parameters())
    opts = [Adam(m.parameters(), lr=0.01) for m in (touched, untouched)]
    for m, opt in zip((touched, untouched), opts):
        opt.zero_grad()
        _loss(m, 3).backward()
        opt.clip_grad_norm(0.01)
    seen = touched.parameters()[1].grad.copy()  # applies that one parameter's scale only
    for opt in opts:
        opt.step()
    assert np.array_equal(seen, untouched.parameters()[1].grad)
    for p, q in zip(touched.parameters(), untouched.parameters()):
        assert np.array_equal(p.data, q.data) and np.array_equal(p.grad, q.grad)


def test_clip_twice_and_zero_after_clip():
    p = Variable(np.ones(3, np.float32), requires_grad=True)
    p.grad = np.array([3.0, 4.0, 0.0], np.float32)
    opt = SGD([p], lr=1.0)
    opt.clip_grad_norm(2.5)
    opt.clip_grad_norm(1.0, total_norm=2.0)
    expected = np.array([3.0, 4.0, 0.0], np.float32)
    np.multiply(expected, 2.5 / (5.0 + 1e-6), out=expected)
    np.multiply(expected, 1.0 / (2.0 + 1e-6), out=expected)
    assert np.array_equal(p.grad, expected)
    opt.clip_grad_norm(0.1)
    opt.zero_grad()
    assert not p.grad.any()
    opt.step()  # a step over zeros: the parameter does not move
    assert np.array_equal(p.data, np.ones(3, np.float32))


def test_module_zero_grad_is_deferred_too():
    model = _model(3)
    _loss(model, 0).backward()
    model.zero_grad()
    assert all(p.grad_due == 0.0 for p in model.parameters())
    assert all(not p.grad.any() for p in model.parameters())


def test_a_clip_owed_by_a_gradient_of_another_dtype_is_applied_in_that_dtype():
    p, q = (Variable(np.ones(1000, np.float32), requires_grad=True) for _ in range(2))
    for v in (p, q):
        v.grad = np.random.default_rng(7).standard_normal(1000)  # float64 gradients of a float32 parameter
    opt_p, opt_q = SGD([p], lr=0.1), SGD([q], lr=0.1)
    opt_p.clip_grad_norm(0.1)
    opt_q.clip_grad_norm(0.1)
    q.settle_grad()  # q's clip applied eagerly, in float64
    opt_p.step()
    opt_q.step()
    assert np.array_equal(p.data, q.data) and np.array_equal(p.grad, q.grad)


def test_zero_grad_after_a_folded_clip_makes_no_pass_over_the_buffer():
    """clip, step, zero_grad is every clipped step: the clip still owed after step() is dropped by the
    zero, never applied to a buffer that is about to be overwritten."""
    p = Variable(np.ones(4, np.float32), requires_grad=True)
    p.grad = np.array([3.0, 4.0, 0.0, 0.0], np.float32)
    opt = SGD([p], lr=0.1)
    opt.clip_grad_norm(1.0)
    opt.step()
    buffer = p.grad_buffer.copy()
    opt.zero_grad()
    assert p.grad_due == 0.0 and np.array_equal(p.grad_buffer, buffer)  # untouched until read or written
    assert not p.grad.any()
