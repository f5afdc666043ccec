"""gradcheck catches wrong gradients; to_dot renders the graph."""

import numpy as np
import pytest

from mpigrad.autograd import GradcheckError, Variable, gradcheck, to_dot
from mpigrad.autograd.engine import make_result


def wrong_square(x):
    """x^2 with a deliberately wrong derivative (3x instead of 2x)."""
    return make_result(x.data ** 2, (x,), lambda g: (g * 3 * x.data,), "wrong_square")


def test_gradcheck_passes_a_right_gradient_and_catches_a_wrong_one():
    x = Variable(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    assert gradcheck(lambda x: x * x, [x])
    with pytest.raises(GradcheckError, match=r"input 0 shape \(3,\).*analytic.*numeric"):
        gradcheck(wrong_square, [x])


def test_gradcheck_restores_inputs_and_handles_strided_ones():
    data = np.random.default_rng(0).standard_normal((3, 4))
    x = Variable(data.T, requires_grad=True)  # a transposed view: perturbations must still reach it
    before = x.data.copy()
    assert gradcheck(lambda x: (x * x).sum(axis=1), [x])
    np.testing.assert_array_equal(x.data, before)
    with pytest.raises(GradcheckError):
        gradcheck(wrong_square, [x])


def test_gradcheck_skips_inputs_without_requires_grad():
    x, c = Variable(np.ones(2), requires_grad=True), Variable(np.full(2, 3.0))
    assert gradcheck(lambda x, c: x * c, [x, c])


def test_gradcheck_rejects_non_variables():
    with pytest.raises(TypeError, match="Variables"):
        gradcheck(lambda x: x, [np.ones(2)])


def test_to_dot_contains_op_names_shapes_and_edges():
    x = Variable(np.ones((2, 3)), requires_grad=True, name="x")
    w = Variable(np.ones((3, 4)), requires_grad=True, name='w"eight')
    dot = to_dot(((x @ w).relu() + 1.0).sum())
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    for word in ("matmul", "relu", "add", "sum", "x\\n(2, 3) float64", 'w\\"eight'):
        assert word in dot
    assert dot.count("->") == 6  # x, w -> matmul -> relu; relu, const -> add -> sum
