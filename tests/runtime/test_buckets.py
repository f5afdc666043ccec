"""Bucket layout: cut from the end of the flat buffers (reverse order of use), capped in size."""

import numpy as np
import pytest

from mpigrad.autograd import Variable
from mpigrad.optim.flat import flatten_parameters
from mpigrad.runtime.buckets import make_buckets


def _params(*sizes, dtype=np.float32):
    return [Variable(np.zeros(n, dtype), requires_grad=True) for n in sizes]


def _layout(params, cap_bytes):
    groups = flatten_parameters(params)
    position = {id(p): i for i, p in enumerate(params)}
    return groups, [sorted(position[id(p)] for p in b.params) for b in make_buckets(groups, cap_bytes)]


def test_buckets_are_cut_from_the_end_and_never_exceed_the_cap():
    # float32: 4 bytes each; a 40-byte cap holds at most 10 elements unless one parameter is larger
    _, layout = _layout(_params(3, 4, 12, 2, 2, 5), 40)
    assert layout == [[3, 4, 5], [2], [0, 1]]


def test_buckets_cover_each_buffer_exactly_once_in_launch_order():
    params = _params(5, 7, 1, 9, 4) + _params(6, 2, dtype=np.float64)
    groups, layout = _layout(params, 24)
    buckets = make_buckets(groups, 24)
    for group in groups:
        mine = [b for b in buckets if np.shares_memory(b.grad, group.grad)]
        ends = [b.grad.__array_interface__["data"][0] for b in mine]
        assert ends == sorted(ends, reverse=True), "buckets of a buffer must launch from its end"
        assert sum(b.grad.size for b in mine) == group.grad.size
    assert sorted(i for bucket in layout for i in bucket) == list(range(len(params)))
    assert layout[0] == [6] and layout[1] == [5], "the last dtype group (last registered) launches first"


@pytest.mark.parametrize("cap", [1, 10**9])
def test_one_bucket_per_parameter_or_one_for_all(cap):
    _, layout = _layout(_params(3, 4, 5), cap)
    assert layout == ([[2], [1], [0]] if cap == 1 else [[0, 1, 2]])
