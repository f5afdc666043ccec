"""Elementwise functions of one input, each a forward value and the closure of its derivative."""

import numpy as np

from .engine import as_variable, make_result


def exp(a):
    """e^a"""
    a = as_variable(a)
    out = np.exp(a.data)
    return make_result(out, (a,), lambda g: (g * out,), "exp")


def log(a):
    """natural log; d/da = 1/a"""
    a = as_variable(a)
    return make_result(np.log(a.data), (a,), lambda g: (g / a.data,), "log")


def sqrt(a):
    """a^(1/2); d/da = 1 / (2 sqrt a)"""
    a = as_variable(a)
    out = np.sqrt(a.data)
    return make_result(out, (a,), lambda g: (g / (2 * out),), "sqrt")


def abs(a):
    """|a|; d/da = sign(a)"""
    return make_result(np.abs(a.data), (a,), lambda g: (g * np.sign(a.data),), "abs")


def clip(a, lo=None, hi=None):
    """a limited to [lo, hi]; the grad passes only where a is inside the range"""
    out = np.clip(a.data, lo, hi)
    return make_result(out, (a,), lambda g: (g * (out == a.data),), "clip")


def relu(a):
    """max(a, 0)"""
    a = as_variable(a)
    out = np.maximum(a.data, 0)
    return make_result(out, (a,), lambda g: (g * (a.data > 0),), "relu")


def tanh(a):
    """tanh a; d/da = 1 - tanh^2 a"""
    a = as_variable(a)
    out = np.tanh(a.data)
    return make_result(out, (a,), lambda g: (g * (1 - out * out),), "tanh")


def sigmoid(a):
    """1 / (1 + e^-a); d/da = s (1 - s)"""
    a = as_variable(a)
    out = sigmoid_data(a.data)
    return make_result(out, (a,), lambda g: (g * out * (1 - out),), "sigmoid")


def sigmoid_data(x, out=None):
    """1 / (1 + e^-x) in x's dtype: e^-x = inf for very negative x gives exactly 0, so no logaddexp needed."""
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    with np.errstate(over="ignore"):
        out = np.negative(x, out=np.empty_like(x) if out is None else out)  # an array even for 0-d x
        np.exp(out, out=out)
    out += 1
    return np.divide(1, out, out=out)
