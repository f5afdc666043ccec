"""Activations, softmax, joins, dropout and losses: gradients, values, stability, dtypes."""

import numpy as np
import pytest

import mpigrad.autograd as ag
from mpigrad.autograd import Variable, gradcheck


def var(shape, seed=0, dtype=np.float64, scale=1.0):
    data = scale * np.random.default_rng(seed).standard_normal(shape)
    return Variable(data.astype(dtype), requires_grad=True)


ACTIVATIONS = {
    "relu": ag.relu, "leaky_relu": ag.leaky_relu, "elu": ag.elu, "gelu": ag.gelu, "tanh": ag.tanh,
    "sigmoid": ag.sigmoid, "exp": ag.exp,
    "softmax": ag.softmax, "log_softmax": ag.log_softmax,
    "softmax_axis0": lambda x: ag.softmax(x, axis=0), "log_softmax_axis-2": lambda x: ag.log_softmax(x, axis=-2),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_gradients(name):
    x = var((3, 4))
    x.data[np.abs(x.data) < 1e-3] += 0.01
    assert gradcheck(ACTIVATIONS[name], [x])


def test_function_values():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    np.testing.assert_allclose(ag.leaky_relu(x, 0.1).data, np.where(x > 0, x, 0.1 * x))
    np.testing.assert_allclose(ag.elu(x).data, np.where(x > 0, x, np.expm1(x)))
    np.testing.assert_allclose(ag.sigmoid(x).data, 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(ag.gelu(np.array([0.0, 1.0])).data, [0.0, 0.841192], atol=1e-6)
    s = ag.softmax(np.array([[1.0, 2.0, 3.0]])).data
    np.testing.assert_allclose(s[0], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_family_is_stable_for_huge_logits(dtype):
    logits = var((4, 5), dtype=dtype)
    logits.data[:] = np.array([1e4, -1e4, 0, 5e3, -5e3], dtype=dtype)
    targets = np.array([0, 1, 2, 3])
    s, ls = ag.softmax(logits), ag.log_softmax(logits)
    loss = ag.cross_entropy(logits, targets)
    for out in (s, ls, loss):
        assert np.all(np.isfinite(out.data)) and out.dtype == dtype
    np.testing.assert_allclose(s.data[0], [1, 0, 0, 0, 0])
    np.testing.assert_allclose(ls.data[0, 1], -2e4, rtol=1e-6)
    loss.backward()
    assert np.all(np.isfinite(logits.grad)) and logits.grad.dtype == dtype
    bce = ag.binary_cross_entropy_with_logits(logits, np.ones((4, 5)))
    assert np.isfinite(bce.item())
    assert np.all(np.isfinite(ag.sigmoid(logits).data))


def test_sigmoid_saturates_without_overflow():
    with np.errstate(over="raise"):
        np.testing.assert_allclose(ag.sigmoid(np.array([-1e4, 1e4])).data, [0, 1])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat_and_stack(axis):
    xs = [var((2, 3)), var((2, 3), 1), var((2, 3), 2)]
    assert gradcheck(lambda *xs: ag.concat(xs, axis=axis), xs)
    assert gradcheck(lambda *xs: ag.stack(xs, axis=axis), xs)


def test_concat_of_unequal_pieces():
    xs = [var((2, 1)), var((2, 4), 1)]
    assert gradcheck(lambda a, b: ag.concat([a, b], axis=1), xs)


def test_dropout_masks_and_scales_in_training_only():
    x = Variable(np.ones((200, 50)), requires_grad=True)
    y = ag.dropout(x, 0.25, True, np.random.default_rng(0))
    kept = y.data != 0
    assert 0.7 < kept.mean() < 0.8
    np.testing.assert_allclose(y.data[kept], 1 / 0.75)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, y.data)
    assert ag.dropout(x, 0.25, False, None) is x
    with pytest.raises(ValueError, match="p=1"):
        ag.dropout(x, 1, True, np.random.default_rng(0))


def test_dropout_gradient_with_a_fixed_mask():
    x = var((3, 4))
    assert gradcheck(lambda x: ag.dropout(x, 0.5, True, np.random.default_rng(3)), [x])


LOSSES = {
    "mse_loss": (ag.mse_loss, lambda p, t: np.mean((p - t) ** 2)),
    "mae_loss": (ag.mae_loss, lambda p, t: np.mean(np.abs(p - t))),
    "sse_loss": (ag.sse_loss, lambda p, t: np.sum((p - t) ** 2)),
    "binary_cross_entropy_with_logits": (
        ag.binary_cross_entropy_with_logits,
        lambda x, t: np.mean(-t * np.log(1 / (1 + np.exp(-x))) - (1 - t) * np.log(1 - 1 / (1 + np.exp(-x))))),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_regression_losses(name):
    fn, reference = LOSSES[name]
    pred = var((4, 3))
    target = np.random.default_rng(1).uniform(size=(4, 3))
    np.testing.assert_allclose(fn(pred, target).item(), reference(pred.data, target))
    assert gradcheck(lambda p: fn(p, target), [pred])


def test_cross_entropy_value_and_gradient():
    logits = var((5, 4))
    t = np.array([0, 3, 3, 1, 2])
    logp = logits.data - np.log(np.exp(logits.data).sum(1, keepdims=True))
    np.testing.assert_allclose(ag.cross_entropy(logits, t).item(), -logp[np.arange(5), t].mean())
    assert gradcheck(lambda x: ag.cross_entropy(x, t), [logits])


def test_cross_entropy_over_a_sequence():
    logits = var((2, 3, 4))
    t = np.array([[0, 1, 3], [2, 2, 0]])
    assert gradcheck(lambda x: ag.cross_entropy(x, t), [logits])


def test_cross_entropy_bad_targets():
    logits = var((3, 4))
    with pytest.raises(TypeError, match="integer"):
        ag.cross_entropy(logits, np.zeros(3))
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(3,\).*\(2,\)"):
        ag.cross_entropy(logits, np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="class 4"):
        ag.cross_entropy(logits, np.array([0, 4, 1]))


@pytest.mark.parametrize("name", ["mse_loss", "mae_loss", "sse_loss", "binary_cross_entropy_with_logits"])
def test_loss_shape_mismatch_names_both_shapes(name):
    with pytest.raises(ValueError, match=rf"{name}.*\(3, 4\).*\(4, 3\)"):
        getattr(ag, name)(var((3, 4)), np.zeros((4, 3)))


FLOAT32_CASES = {
    **{name: lambda x, fn=fn: fn(x) for name, fn in ACTIVATIONS.items()},
    "concat": lambda x: ag.concat([x, x * 2.0], axis=1),
    "stack": lambda x: ag.stack([x, x], axis=0),
    "dropout": lambda x: ag.dropout(x, 0.3, True, np.random.default_rng(0)),
    "cross_entropy": lambda x: ag.cross_entropy(x, np.array([0, 1, 2])),
    **{name: lambda x, fn=fn: fn(x, np.ones((3, 4))) for name, (fn, _) in LOSSES.items()},
}


@pytest.mark.parametrize("name", sorted(FLOAT32_CASES))
def test_float32_stays_float32(name):
    x = var((3, 4), dtype=np.float32)
    out = FLOAT32_CASES[name](x)
    assert out.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == np.float32
