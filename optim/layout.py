"""Finding runs of parameters whose data and grads lie back to back in one buffer each.

That is the layout flatten_parameters() and the runtime's flat buffers produce. It is detected
from the arrays themselves (same base buffer, consecutive addresses), so it needs no registry
and also covers buffers built by other code, or only part of a buffer.
"""

from typing import NamedTuple

import numpy as np


class Run(NamedTuple):
    """params[lo:hi]; data and grad are 1-D views spanning their values (None for a lone param)."""

    lo: int
    hi: int
    data: np.ndarray = None
    grad: np.ndarray = None


def find_runs(params):
    """Split params into maximal back-to-back runs (at least 2 params) and lone params, in order."""
    runs, i = [], 0
    while i < len(params):
        j = i + 1
        if _eligible(params[i]):
            while j < len(params) and _follows(params[j - 1], params[j]):
                j += 1
        if j - i >= 2:
            runs.append(Run(i, j, _span([p.data for p in params[i:j]]), _span([p.grad for p in params[i:j]])))
        else:
            runs.extend(Run(k, k + 1) for k in range(i, j))
        i = j
    return runs


def _address(a):
    return a.__array_interface__["data"][0]


def _eligible(p):
    """p is trained (requires grad) and its data and grad are contiguous views into contiguous buffers
    of their own dtype."""
    d, g = p.data, p.grad
    return (p.requires_grad and g is not None and d.dtype == g.dtype and d.base is not None and g.base is not None
            and d.base is not g.base and d.flags.c_contiguous and g.flags.c_contiguous
            and d.base.dtype == d.dtype and g.base.dtype == g.dtype
            and d.base.flags.c_contiguous and g.base.flags.c_contiguous)


def _follows(a, b):
    """b's data and grad start where a's end, in the same buffers."""
    return (_eligible(b) and b.data.base is a.data.base and b.grad.base is a.grad.base
            and b.data.dtype == a.data.dtype
            and _address(b.data) == _address(a.data) + a.data.nbytes
            and _address(b.grad) == _address(a.grad) + a.grad.nbytes)


def _span(arrays):
    first, base = arrays[0], arrays[0].base
    start = (_address(first) - _address(base)) // first.itemsize
    return base.reshape(-1)[start:start + sum(a.size for a in arrays)]
