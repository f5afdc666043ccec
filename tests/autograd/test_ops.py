"""Every core op: gradcheck on random shapes (broadcasting, keepdims, negative axes, repeated
indices), float32 kept through forward and backward, and clear errors on bad shapes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mpigrad.autograd import Variable, gradcheck, matmul

FEW = settings(max_examples=12, deadline=None, database=None)  # keeps the suite fast and writes no files


def var(shape, seed=0, dtype=np.float64, low=None):
    data = np.random.default_rng(seed).standard_normal(shape)
    if low is not None:
        data = low + np.abs(data)  # keep away from a kink or a pole
    return Variable(data.astype(dtype), requires_grad=True)


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
}


@FEW
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
       op=st.sampled_from(sorted(BINARY)), seed=st.integers(0, 2**16))
def test_binary_ops_broadcast(shapes, op, seed):
    a, b = shapes.input_shapes
    x, y = var(a, seed, low=0.5), var(b, seed + 1, low=0.5)
    assert gradcheck(BINARY[op], [x, y])


@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_ops_with_constants_on_either_side(op):
    x = var((2, 3), low=0.5)
    assert gradcheck(lambda x: BINARY[op](x, 1.5), [x])
    assert gradcheck(lambda x: BINARY[op](1.5, x), [x])
    assert gradcheck(lambda x: BINARY[op](np.full((4, 1, 3), 1.5), x), [x])


UNARY = {
    "neg": (lambda x: -x, None),
    "exp": (lambda x: x.exp(), None),
    "log": (lambda x: x.log(), 0.1),
    "sqrt": (lambda x: x.sqrt(), 0.1),
    "abs": (lambda x: x.abs(), None),
    "abs()": (lambda x: abs(x), None),
    "relu": (lambda x: x.relu(), None),
    "tanh": (lambda x: x.tanh(), None),
    "sigmoid": (lambda x: x.sigmoid(), None),
    "clip": (lambda x: x.clip(-0.5, 0.5), None),
    "T": (lambda x: x.T, None),
}


@pytest.mark.parametrize("op", sorted(UNARY))
@pytest.mark.parametrize("shape", [(), (5,), (2, 3, 4)])
def test_unary_ops(op, shape):
    fn, low = UNARY[op]
    x = var(shape, low=low)
    if op in ("abs", "abs()", "relu", "clip"):
        x.data[np.abs(np.abs(x.data) - 0.5) < 1e-3] += 0.01  # no element on a kink
        x.data[np.abs(x.data) < 1e-3] += 0.01
    assert gradcheck(fn, [x])


REDUCTIONS = ["sum", "mean", "var", "max"]
AXES = [None, 0, -1, (0, 2), (-1, -3), 1]


@pytest.mark.parametrize("op", REDUCTIONS)
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(op, axis, keepdims):
    x = var((2, 3, 4), seed=len(str(axis)))
    assert gradcheck(lambda x: getattr(x, op)(axis=axis, keepdims=keepdims), [x])


@FEW
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=3), data=st.data(),
       op=st.sampled_from(REDUCTIONS), keepdims=st.booleans())
def test_reductions_on_random_shapes_and_axes(shape, data, op, keepdims):
    ndim = len(shape)
    axes = data.draw(st.lists(st.integers(-ndim, ndim - 1), max_size=ndim, unique_by=lambda a: a % ndim))
    axis = data.draw(st.sampled_from([None, tuple(axes)] + ([axes[0]] if axes else [])))
    if axis == ():
        axis = None
    x = var(shape, seed=len(shape))
    assert gradcheck(lambda x: getattr(x, op)(axis=axis, keepdims=keepdims), [x])


@pytest.mark.parametrize("axis", [None, -1, (0, 2)])
def test_var_of_constant_float32_values_is_exactly_zero(axis):
    x = Variable(np.full((3, 4, 64), 12345.6, np.float32), requires_grad=True)
    v = x.var(axis=axis)
    assert v.dtype == np.float32 and (v.data == 0).all()
    v.sum().backward()
    assert (x.grad == 0).all()


def test_max_ties_share_the_gradient():
    x = Variable(np.array([1.0, 3.0, 3.0]), requires_grad=True)
    x.max().backward()
    np.testing.assert_allclose(x.grad, [0, 0.5, 0.5])


@pytest.mark.parametrize("a,b", [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
                                 ((5, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)), ((5, 1, 2, 3), (4, 3, 2)),
                                 ((5, 2, 3), (5, 3, 4))])
def test_matmul_shapes(a, b):
    assert gradcheck(lambda x, y: x @ y, [var(a), var(b, 1)])
    assert gradcheck(matmul, [var(a), var(b, 1)])


def test_matmul_with_constant_operand():
    w = var((3, 2))
    assert gradcheck(lambda w: np.ones((4, 3)) @ w, [w])
    assert gradcheck(lambda w: w @ np.ones((2, 5)), [w])


@pytest.mark.parametrize("index", [
    1, -1, slice(1, 3), (slice(None), 2), (Ellipsis, 0), (None, 1), (slice(None, None, -1), slice(0, 3, 2)),
    np.array([0, 2, 2, 0, 1]),  # repeated rows
    (np.array([0, 0, 1]), np.array([1, 1, 2])),  # a repeated element
    (slice(None), np.array([3, 3, 0])),
    [1, 1],
    np.array([[0, 1], [1, 1]]),
])
def test_getitem(index):
    x = var((3, 4))
    assert gradcheck(lambda x: x[index], [x])


def test_getitem_boolean_mask():
    x = var((3, 4))
    mask = x.data > 0
    assert gradcheck(lambda x: x[mask], [x])
    assert gradcheck(lambda x: x[mask[:, 0]], [x])


def test_getitem_repeated_indices_scatter_add():
    x = Variable(np.zeros(3), requires_grad=True)
    x[np.array([0, 0, 2, 0])].sum().backward()
    np.testing.assert_allclose(x.grad, [3, 0, 1])


def test_getitem_with_variable_index():
    x = var((4, 2))
    idx = Variable(np.array([3, 3, 1]))
    assert gradcheck(lambda x: x[idx], [x])


def test_getitem_slices_of_one_result_accumulate():
    x = var((6,))
    assert gradcheck(lambda x: (x * 2)[:3] * (x * 2)[3:] + (x * 2)[1:4], [x])


@pytest.mark.parametrize("shape,new", [((2, 3, 4), (6, 4)), ((2, 3, 4), (-1,)), ((6,), (2, 3)), ((), (1, 1))])
def test_reshape(shape, new):
    x = var(shape)
    assert gradcheck(lambda x: x.reshape(*new), [x])
    assert gradcheck(lambda x: x.reshape(new), [x])


@pytest.mark.parametrize("axes", [(), (1, 0, 2), (2, 0, 1), (0, -1, 1), ((-1, 0, 1),)])
def test_transpose(axes):
    x = var((2, 3, 4))
    assert gradcheck(lambda x: x.transpose(*axes), [x])


def test_ops_on_non_contiguous_inputs():
    x = Variable(np.random.default_rng(0).standard_normal((4, 6)).T, requires_grad=True)
    assert not x.data.flags.c_contiguous
    assert gradcheck(lambda x: (x * x.exp()).sum(axis=0), [x])


ALL_OPS = {
    **{name: (lambda fn: lambda x, y: fn(x, y))(fn) for name, fn in BINARY.items()},
    **{name: (lambda fn: lambda x, y: fn(x))(fn) for name, (fn, _) in UNARY.items()},
    **{name: (lambda n: lambda x, y: getattr(x, n)(axis=-1))(name) for name in REDUCTIONS},
    "matmul": lambda x, y: x @ y.T,
    "getitem": lambda x, y: x[np.array([0, 0, 1])],
    "reshape": lambda x, y: x.reshape(-1),
    "transpose": lambda x, y: x.transpose(1, 0),
}


@pytest.mark.parametrize("op", sorted(ALL_OPS))
def test_float32_stays_float32_forward_and_backward(op):
    x, y = var((3, 4), dtype=np.float32, low=0.5), var((3, 4), 1, dtype=np.float32, low=0.5)
    out = ALL_OPS[op](x, y)
    assert out.dtype == np.float32, op
    (out * np.float32(1.0)).sum().backward()
    assert x.grad.dtype == np.float32
    assert y.grad is None or y.grad.dtype == np.float32


@pytest.mark.parametrize("op,symbol", [("add", "+"), ("sub", "-"), ("mul", "*"), ("div", "/"), ("pow", "**")])
def test_mismatched_shapes_name_both_shapes_and_the_op(op, symbol):
    with pytest.raises(ValueError, match=rf"{op}: shapes \(2, 3\) and \(4,\)"):
        BINARY[op](var((2, 3)), var((4,)))


def test_matmul_error_names_shapes():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\)"):
        var((2, 3)) @ var((4, 5))
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 2, 3\) and \(3, 3, 1\)"):
        var((2, 2, 3)) @ var((3, 3, 1))
    with pytest.raises(ValueError, match="matmul"):
        var(()) @ var((3,))


def test_reshape_and_transpose_errors_name_shapes():
    with pytest.raises(ValueError, match=r"reshape: cannot reshape shape \(2, 3\) into \(4,\)"):
        var((2, 3)).reshape(4)
    with pytest.raises(ValueError, match=r"transpose.*\(2, 3\)"):
        var((2, 3)).transpose(0, 0)


def test_getitem_error_names_shape():
    with pytest.raises(IndexError, match=r"getitem.*\(2, 3\)"):
        var((2, 3))[5]


def test_ndarray_on_the_left_defers_to_variable():
    x = var((3,))
    y = np.ones(3) * x
    assert isinstance(y, Variable) and y.requires_grad
