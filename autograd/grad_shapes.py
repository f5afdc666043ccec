"""Gradients not handed over as a plain array: broadcast sums and sparse index gradients."""

import numpy as np


class IndexGrad:
    """The gradient of x[index]: zero except at index, so it is added in place, never densified per use."""

    __slots__ = ("index", "value", "basic")

    def __init__(self, index, value, basic):
        self.index, self.value, self.basic = index, value, basic

    def add_to(self, target):
        if self.basic:
            target[self.index] += self.value  # slices and integers never repeat an element
        else:
            np.add.at(target, self.index, self.value)  # repeated integer indices accumulate


def unbroadcast(grad, shape, dtype):
    """Sum a gradient over the axes numpy broadcasting added, so it matches the input's shape."""
    grad = np.asarray(grad)
    if grad.shape != shape:
        extra = grad.ndim - len(shape)
        if extra > 0:
            grad = grad.sum(axis=tuple(range(extra)))
        stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
        if stretched:
            grad = grad.sum(axis=stretched, keepdims=True)
        if grad.shape != shape:
            grad = np.broadcast_to(grad, shape)
    return grad if grad.dtype == dtype else grad.astype(dtype)
