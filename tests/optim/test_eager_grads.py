"""zero_grad fills zeros in place, clip_grad_norm scales the grads in place and backward adds into
.grad: each result is what the plain eager passes give, bit for bit (PyTorch's semantics)."""

import numpy as np

from mpigrad.autograd import Variable, nn
from mpigrad.optim import SGD, Adam


def test_weight_gradient_is_cast_to_the_parameter_dtype_before_it_is_added():
    # a float32 Linear fed float64 input, its weight's .grad a float64 array the user put there
    layer = nn.Linear(4, 3, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((5, 4))
    layer.weight.grad = np.zeros((3, 4))
    Adam(layer.parameters()).zero_grad()
    (layer(Variable(x)) ** 2).sum().backward()
    g = 2 * (x @ layer.weight.data.T + layer.bias.data)  # d/d(out), float64
    expected = np.zeros((3, 4)) + (g.T @ x).astype(np.float32)  # eager: rounded to float32, then added
    assert layer.weight.grad.dtype == np.float64
    assert np.array_equal(layer.weight.grad, expected)


def test_a_zero_clip_factor_scales_an_infinite_gradient_to_nan():
    w = Variable(np.zeros(3, np.float32), requires_grad=True)
    w.grad = np.array([np.inf, 1, 2], np.float32)
    opt = SGD([w], lr=0.1)
    assert opt.clip_grad_norm(1.0) == np.inf
    assert np.array_equal(w.grad, [np.nan, 0, 0], equal_nan=True)  # inf * 0 is NaN: the overflow shows
    opt.step()
    assert np.isnan(w.data[0])


def test_a_backward_after_a_zero_clip_factor_adds_to_the_clipped_gradient():
    w = Variable(np.ones(3), requires_grad=True)
    w.grad = np.array([np.inf, 3.0, 4.0])
    SGD([w], lr=0.1).clip_grad_norm(1.0)
    (w * np.array([1.0, 2.0, 3.0])).sum().backward()  # no .grad read in between
    assert np.array_equal(w.grad, [np.nan, 2.0, 3.0], equal_nan=True)


def test_max_norm_zero_zeroes_finite_gradients():
    w = Variable(np.ones(2), requires_grad=True)
    w.grad = np.array([3.0, 4.0])
    SGD([w], lr=0.1).clip_grad_norm(0.0)
    assert np.array_equal(w.grad, [0.0, 0.0])


def test_an_array_taken_from_grad_before_a_clip_is_clipped():
    w = Variable(np.zeros(2), requires_grad=True)
    w.grad = np.array([3.0, 4.0])
    held = w.grad
    opt = SGD([w], lr=1.0)
    opt.clip_grad_norm(1.0)
    opt.step()
    clipped = np.array([3.0, 4.0]) * (1.0 / (5.0 + 1e-6))
    assert np.array_equal(held, clipped)  # checked before .grad is read again
    assert np.array_equal(w.data, -clipped)
    assert w.grad is held


def test_zero_grad_then_a_negative_zero_gradient_reads_positive_zero():
    w = Variable(np.ones(3, np.float32), requires_grad=True)
    opt = SGD([w], lr=0.1, weight_decay=0.0)
    (w * np.float32(2)).sum().backward()
    opt.zero_grad()
    (w * np.float32(-0.0)).sum().backward()  # the gradient is -0.0
    assert not np.signbit(w.grad).any()  # eager: +0.0 + -0.0 = +0.0


def test_module_zero_grad_is_the_optimizer_one():
    model = nn.MLP([3, 4, 2], rng=np.random.default_rng(0))
    (model(Variable(np.ones((2, 3), np.float32))) ** 2).sum().backward()
    held = [p.grad for p in model.parameters()]
    model.zero_grad()
    assert all(p.grad is h and not h.any() and not np.signbit(h).any() for p, h in zip(model.parameters(), held))


def test_clip_twice_scales_twice_and_zero_grad_after_a_clip_gives_zeros():
    p = Variable(np.ones(3, np.float32), requires_grad=True)
    p.grad = np.array([3.0, 4.0, 0.0], np.float32)
    opt = SGD([p], lr=1.0)
    opt.clip_grad_norm(2.5)
    opt.clip_grad_norm(1.0, total_norm=2.0)
    expected = np.array([3.0, 4.0, 0.0], np.float32)
    expected *= 2.5 / (5.0 + 1e-6)
    expected *= 1.0 / (2.0 + 1e-6)
    assert np.array_equal(p.grad, expected)
    opt.clip_grad_norm(0.1)
    opt.zero_grad()
    assert not p.grad.any()
    opt.step()  # a step over zeros: the parameter does not move
    assert np.array_equal(p.data, np.ones(3, np.float32))
