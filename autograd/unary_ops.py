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
    """1 / (1 + e^-a), computed as exp(-log(1 + e^-a)) so large |a| never overflows"""
    a = as_variable(a)
    out = np.exp(-np.logaddexp(0, -a.data)).astype(a.dtype, copy=False)
    return make_result(out, (a,), lambda g: (g * out * (1 - out),), "sigmoid")
