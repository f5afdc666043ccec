"""Activations, softmax, joins, dropout and losses built on the core ops."""

import math

import numpy as np

from . import ops
from .engine import Variable, as_variable, make_result
from .rowwise import exp_is_safe, row_sums, softmax_rows


def leaky_relu(x, negative_slope=0.01):
    """x where x > 0, else slope * x"""
    x = as_variable(x)
    scale = np.where(x.data > 0, 1, negative_slope).astype(x.dtype)
    return make_result(x.data * scale, (x,), lambda g: (g * scale,), "leaky_relu")


def elu(x, alpha=1.0):
    """x where x > 0, else alpha (e^x - 1)"""
    x = as_variable(x)
    negative = alpha * np.expm1(np.minimum(x.data, 0))
    out = np.where(x.data > 0, x.data, negative)
    return make_result(out, (x,), lambda g: (g * np.where(x.data > 0, 1, negative + alpha),), "elu")


_GELU_C = math.sqrt(2 / math.pi)


def gelu(x):
    """0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3): the tanh form of GELU, computed as
    x s with s = sigmoid(2u) = (1 + tanh u) / 2; d/dx = s + 2 x s (1 - s) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    """
    x = as_variable(x)
    d = x.data if x.dtype.kind == "f" else x.data.astype(np.float64)
    s = d * d  # x*x*x, never x**3: numpy's float32 power is a per-element pow() call
    s *= -2 * _GELU_C * 0.044715
    s -= 2 * _GELU_C
    s *= d  # -2u
    with np.errstate(over="ignore"):  # e^-2u = inf for very negative x gives s = 0, as it should
        np.exp(s, out=s)  # exp is several times faster than numpy's tanh
    s += 1
    np.divide(1, s, out=s)
    out = d * s

    def backward(g):
        slope = d * d
        slope *= 3 * 0.044715
        slope += 1
        slope *= d
        slope *= 2 * _GELU_C
        slope *= s * (1 - s)
        slope += s
        slope *= g
        return (slope,)
    return make_result(out, (x,), backward, "gelu")


def _log_softmax_data(d, axis):
    shifted = d - np.max(d, axis=axis, keepdims=True)  # keeps exp() finite for logits of any size
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def softmax(x, axis=-1):
    """e^x / sum e^x along axis; d = s * (g - sum(g s))"""
    x = as_variable(x)
    if axis in (-1, x.ndim - 1):
        s = softmax_rows(x.data if x.dtype.kind == "f" else x.data.astype(np.float64))
    else:
        s = x.data - np.max(x.data, axis=axis, keepdims=True)  # keeps exp() finite for logits of any size
        np.exp(s, out=s)
        s *= 1 / np.add.reduce(s, axis=axis, keepdims=True)

    def backward(g):
        grad = g - np.expand_dims(np.vecdot(g, s, axis=axis), axis)
        grad *= s
        return (grad,)
    return make_result(s, (x,), backward, "softmax")


def log_softmax(x, axis=-1):
    """x - log sum e^x along axis; d = g - softmax * sum(g)"""
    x = as_variable(x)
    out = _log_softmax_data(x.data, axis)
    return make_result(out, (x,), lambda g: (g - np.exp(out) * np.sum(g, axis=axis, keepdims=True),), "log_softmax")


def concat(xs, axis=0):
    """xs joined along an existing axis; the grad is split back into the pieces"""
    xs = [as_variable(x) for x in xs]
    out = np.concatenate([x.data for x in xs], axis=axis)
    bounds = np.cumsum([x.shape[axis] for x in xs])[:-1]
    return make_result(out, xs, lambda g: tuple(np.split(g, bounds, axis=axis)), "concat")


def stack(xs, axis=0):
    """xs joined along a new axis"""
    xs = [as_variable(x) for x in xs]
    out = np.stack([x.data for x in xs], axis=axis)
    return make_result(out, xs, lambda g: tuple(np.moveaxis(g, axis, 0)), "stack")


def dropout(x, p, training, rng):
    """x * mask / (1 - p) with mask ~ Bernoulli(1 - p) while training; x unchanged otherwise"""
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p={p} is not in [0, 1)")
    if not training or p == 0:
        return as_variable(x)
    x = as_variable(x)
    uniform = rng.random(x.shape, dtype=np.float32 if x.dtype == np.float32 else np.float64)
    mask = (uniform >= p).astype(x.dtype) / x.dtype.type(1 - p)
    return ops.mul(x, mask)


def _target_like(target, pred):
    """target as a constant Variable in pred's float dtype (a float64 target must not upcast float32)."""
    if isinstance(target, Variable):
        return target
    target = np.asarray(target)
    if np.issubdtype(pred.dtype, np.floating) and target.dtype != pred.dtype:
        target = target.astype(pred.dtype)
    return Variable(target)


def _check_same_shape(pred, target, name):
    if pred.shape != target.shape:
        raise ValueError(f"{name}: prediction shape {pred.shape} differs from target shape {target.shape}")


def _pred_and_target(pred, target, name):
    """Both as Variables of pred's float dtype, checked to have one shape."""
    pred = as_variable(pred)
    target = _target_like(target, pred)
    _check_same_shape(pred, target, name)
    return pred, target


def _residual(pred, target, name):
    return ops.sub(*_pred_and_target(pred, target, name))


def mse_loss(pred, target):
    """mean((pred - target)^2)"""
    diff = _residual(pred, target, "mse_loss")
    return ops.mean(ops.mul(diff, diff))


def sse_loss(pred, target):
    """sum((pred - target)^2)"""
    diff = _residual(pred, target, "sse_loss")
    return ops.sum(ops.mul(diff, diff))


def mae_loss(pred, target):
    """mean(|pred - target|)"""
    return ops.mean(ops.abs(_residual(pred, target, "mae_loss")))


def cross_entropy(logits, targets):
    """mean over samples of -log softmax(logits)[target]; d = (softmax - onehot) / N

    One node: the forward keeps e^(x - max) and its row sums, so backward is a scale and a scatter.
    """
    logits = as_variable(logits)
    t = np.asarray(targets.data if isinstance(targets, Variable) else targets)
    _check_targets(logits, t)
    classes = logits.shape[-1]
    flat = logits.data.reshape(-1, classes)
    rows, flat_t = np.arange(flat.shape[0]), t.reshape(-1)
    count = flat_t.size
    # shifted by each row's max unless e^x is safe without (rowwise.exp_is_safe)
    shifted = flat if exp_is_safe(flat) else flat - flat.max(axis=1, keepdims=True)
    exps = np.exp(shifted)
    sums = row_sums(exps)[:, 0]
    loss = (np.sum(np.log(sums)) - np.sum(shifted[rows, flat_t])) / count

    def backward(g):
        grad = exps * ((g / count) / sums[:, None])
        grad[rows, flat_t] -= g / count
        return (grad.reshape(logits.shape),)
    return make_result(np.asarray(loss, dtype=logits.dtype), (logits,), backward, "cross_entropy")


def _check_targets(logits, t):
    if not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"cross_entropy: targets must be integer class indices, got dtype {t.dtype}")
    if logits.ndim < 1 or t.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: logits shape {logits.shape} needs targets of shape "
                         f"{logits.shape[:-1]}, got {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= logits.shape[-1]):
        bad = t.min() if t.min() < 0 else t.max()
        raise ValueError(f"cross_entropy: target class {bad} is outside [0, {logits.shape[-1]})")


def binary_cross_entropy_with_logits(logits, targets):
    """mean(max(x, 0) - x t + log(1 + e^-|x|)); d = (sigmoid(x) - t) / N"""
    logits, targets = _pred_and_target(logits, targets, "binary_cross_entropy_with_logits")
    x, t = logits.data, targets.data.astype(logits.dtype, copy=False)
    count = x.size
    loss = np.sum(np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))) / count

    def backward(g):
        s = np.exp(-np.logaddexp(0, -x))
        return ((s - t) * (g / count), None)
    return make_result(np.asarray(loss, dtype=x.dtype), (logits, targets), backward, "bce_with_logits")
