"""Gradients not handed over as a plain array: broadcast sums, sparse index gradients and products
a leaf's buffer can receive directly."""

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


class ProductGrad:
    """The gradient a @ b, not computed yet: the engine has it written straight into a leaf's buffer
    that owes a zero (no temporary, no copy), and computes it as an array anywhere else."""

    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a, self.b = a, b

    def value(self):
        return self.a @ self.b

    def fits(self, buffer):
        """True when buffer can take a @ b as is (shape, dtype, layout)."""
        a, b = self.a, self.b
        return (buffer.shape == (a.shape[0], b.shape[1]) and buffer.dtype == np.result_type(a, b)
                and buffer.flags.c_contiguous and buffer.flags.writeable)

    def write_into(self, buffer, block_rows=None, rows_written=None):
        """buffer <- a @ b if buffer can take it as is (shape, dtype, layout); False otherwise.

        With block_rows, in blocks of that many rows, calling rows_written(lo, hi) after each (so a
        listener can send finished rows while the rest is computed)."""
        if not self.fits(buffer):
            return False
        a, b = self.a, self.b
        if not block_rows:
            np.matmul(a, b, out=buffer)
            return True
        for lo in range(0, a.shape[0], block_rows):
            hi = min(lo + block_rows, a.shape[0])
            np.matmul(a[lo:hi], b, out=buffer[lo:hi])
            rows_written(lo, hi)
        return True


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
