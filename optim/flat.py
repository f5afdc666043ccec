"""Flat parameter layout: each parameter's data and grad become views into one buffer per dtype.

With this layout an optimizer updates a whole buffer in a few numpy calls, and the runtime
all-reduces gradients in large contiguous pieces instead of one message per tensor.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(eq=False)
class FlatGroup:
    """Parameters of one dtype packed back to back: p.data is data[start:stop] reshaped."""

    dtype: np.dtype
    params: list
    offsets: list  # (start, stop) of each param in the flat buffers
    data: np.ndarray  # 1-D, owns the parameter values
    grad: np.ndarray  # 1-D, owns the gradients
    data_views: list
    grad_views: list

    def __repr__(self):
        return f"FlatGroup({self.dtype}, {len(self.params)} params, {self.size} elements)"

    @property
    def size(self):
        return self.data.size

    def is_intact(self):
        """True while every parameter still uses this group's views (nobody rebound .data/.grad)."""
        return all(p.data is d and p.grad is g
                   for p, d, g in zip(self.params, self.data_views, self.grad_views))


def flatten_parameters(params):
    """Pack params (kept in the given order) into one FlatGroup per dtype, in first-seen dtype order.

    Current values and existing gradients are copied in; missing gradients start at zero.
    Afterwards p.data and p.grad are views, so in-place updates of the buffers are seen by the
    model and in-place gradient accumulation lands in the buffers.
    """
    by_dtype = {}
    for p in params:
        by_dtype.setdefault(np.dtype(p.data.dtype), []).append(p)
    return [_pack(dtype, group) for dtype, group in by_dtype.items()]


def _pack(dtype, params):
    offsets, start = [], 0
    for p in params:
        offsets.append((start, start + p.data.size))
        start += p.data.size
    data = np.empty(start, dtype)
    grad = np.zeros(start, dtype)
    data_views, grad_views = [], []
    for p, (lo, hi) in zip(params, offsets):
        d = data[lo:hi].reshape(p.data.shape)
        g = grad[lo:hi].reshape(p.data.shape)
        d[...] = p.data
        if p.grad is not None:
            g[...] = p.grad
        p.data, p.grad = d, g
        data_views.append(d)
        grad_views.append(g)
    return FlatGroup(dtype, list(params), offsets, data, grad, data_views, grad_views)
