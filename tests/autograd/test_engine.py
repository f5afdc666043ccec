"""The engine: Variable basics, the backward pass, accumulation, graph freeing, hooks, bad input."""

import time

import numpy as np
import pytest

from mpigrad.autograd import Variable, gradcheck, no_grad, queue_callback, stack
from mpigrad.autograd.engine import is_grad_enabled


def leaf(*shape, dtype=np.float64, seed=0):
    return Variable(np.random.default_rng(seed).standard_normal(shape).astype(dtype), requires_grad=True)


def test_variable_attributes():
    x = Variable(np.arange(6.0).reshape(2, 3), requires_grad=True, name="x")
    assert (x.shape, x.ndim, x.dtype, x.grad, x.name) == ((2, 3), 2, np.float64, None, "x")
    assert x.requires_grad and x.is_leaf
    assert Variable(np.float32(2.5)).item() == 2.5
    assert "name='x'" in repr(x)


def test_integer_data_with_requires_grad_raises():
    with pytest.raises(TypeError, match="floating-point.*int64"):
        Variable(np.arange(3), requires_grad=True)
    Variable(np.arange(3))  # fine without requires_grad


def test_backward_on_non_scalar_without_grad_raises():
    y = leaf(3) * 2
    with pytest.raises(RuntimeError, match=r"scalar output.*\(3,\)"):
        y.backward()
    y.backward(np.ones(3))


def test_backward_grad_of_wrong_shape_raises():
    y = leaf(3) * 2
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        y.backward(np.ones(2))


def test_backward_without_requires_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Variable(np.ones(2)).sum().backward()


def test_reusing_a_freed_graph_raises_and_retain_graph_allows_it():
    x = leaf(3)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph"):
        y.backward()
    z = (x * x).sum()
    z.backward(retain_graph=True)
    z.backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 4 * x.data)


def test_gradients_accumulate_across_backwards_in_place():
    x = leaf(4)
    (x * 3).sum().backward()
    first = x.grad
    (x * 3).sum().backward()
    assert x.grad is first  # the runtime's .grad is a view into a flat buffer: never rebound
    np.testing.assert_allclose(x.grad, 6.0)


def test_accumulation_lands_in_a_grad_view():
    buffer = np.zeros(6)
    x = leaf(2, 3)
    x.grad = buffer.reshape(2, 3)
    (x * 2).sum().backward()
    np.testing.assert_allclose(buffer, 2.0)


def test_no_grad_records_nothing_and_restores_state():
    x = leaf(3)
    with no_grad():
        assert not is_grad_enabled()
        y = x * 2
    assert is_grad_enabled()
    assert not y.requires_grad and y.is_leaf


def test_no_grad_restores_state_after_an_exception():
    with pytest.raises(KeyError), no_grad():
        raise KeyError
    assert is_grad_enabled()


def test_detach_shares_data_and_stops_gradients():
    x = leaf(3)
    d = x.detach()
    assert d.data is x.data and not d.requires_grad
    (x * d).sum().backward()
    np.testing.assert_allclose(x.grad, x.data)


def test_shared_nodes_backward_is_linear():
    x = Variable(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(50):
        y = y + y  # each node feeds its consumer twice: per-path backward would take 2**50 steps
    start = time.perf_counter()
    y.backward()
    assert time.perf_counter() - start < 1.0
    assert x.grad == 2.0 ** 50


def test_deep_chain_has_no_recursion_limit():
    x = leaf(2)
    y = x
    for _ in range(20000):
        y = y * 1.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 1.0)


def test_diamond_where_a_consumer_is_reached_deeper_first():
    # Regression: h feeds both the output and, through m, h2; a topological order that marks
    # nodes when pushed ran h's backward before m's and lost m's contribution.
    x = leaf(2, 5, 3)

    def f(x):
        p = x * 1.0
        h = p[:, 0]
        h2 = p[:, 1] + h * 2.0
        return stack([h, h2], axis=1)
    assert gradcheck(f, [x])


def test_grad_hook_fires_once_with_the_final_grad():
    w = leaf(3)
    events = []
    w.register_post_accumulate_grad_hook(lambda p: events.append(("hook", p.grad.copy())))
    y = (w * 2 + w * 3).sum()
    y.backward()
    assert [e[0] for e in events] == ["hook"]
    np.testing.assert_allclose(events[0][1], 5.0)
    with pytest.raises(RuntimeError, match="during a backward pass"):
        queue_callback(lambda: None)


def test_queue_callback_runs_at_end_of_pass():
    w = leaf(3)
    order = []

    def hook(p):
        order.append("hook")
        queue_callback(lambda: order.append("end"))
    w.register_post_accumulate_grad_hook(hook)
    (w * w).sum().backward()
    assert order == ["hook", "end"]


def test_hooks_only_on_leaves():
    with pytest.raises(RuntimeError, match="leaf"):
        (leaf(2) * 2).register_post_accumulate_grad_hook(lambda p: None)


def test_leaf_grads_are_never_shared_between_parameters():
    a, b = leaf(3), leaf(3, seed=1)
    (a + b).sum().backward()
    assert a.grad is not b.grad
    a.grad += 1
    np.testing.assert_allclose(b.grad, 1.0)


def test_backward_of_a_leaf_itself():
    x = leaf(3)
    x.backward(np.full(3, 2.0))
    np.testing.assert_allclose(x.grad, 2.0)


def test_grad_is_none_when_no_path_reaches_a_leaf():
    x, unused = leaf(3), leaf(3)
    (x * 2).sum().backward()
    assert unused.grad is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_through_a_graph(dtype):
    x = leaf(4, 3, dtype=dtype)
    y = ((x * 2.0 + 1) / 3.0 - x ** 2).mean()
    y.backward()
    assert y.dtype == dtype and x.grad.dtype == dtype


def test_python_and_numpy_scalars_do_not_upcast_float32():
    x = leaf(3, dtype=np.float32)
    for y in (x * 2.5, x + np.float64(1.5), x * np.int64(2), 1.5 - x, 2.0 ** x):
        assert y.dtype == np.float32
