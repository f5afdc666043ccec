"""linear's weight gradient is written straight into a .grad buffer that owes a zero (no temporary,
no copy); everywhere else it is computed as an array. Both give the same bits."""

import numpy as np
import pytest

from mpigrad.autograd import Variable, nn
from mpigrad.optim import Adam, flatten_parameters


def _loss(layer, x):
    return (layer(Variable(x)) ** 2).sum()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lead", [(7,), (3, 5)])
def test_written_weight_gradient_is_bitwise_the_computed_one(dtype, lead):
    x = np.random.default_rng(0).standard_normal((*lead, 33)).astype(dtype)
    fresh, written = (nn.Linear(33, 17, rng=np.random.default_rng(1), dtype=dtype) for _ in range(2))
    flatten_parameters(written.parameters())
    _loss(written, x).backward()
    buffer = written.weight.grad_buffer
    Adam(written.parameters()).zero_grad()
    buffer.fill(np.nan)  # whatever the buffer held is overwritten, never added to
    _loss(written, x).backward()
    _loss(fresh, x).backward()
    assert written.weight.grad_buffer is buffer and written.weight.grad_due is None
    assert fresh.weight.grad.tobytes() == written.weight.grad.tobytes()
    assert fresh.bias.grad.tobytes() == written.bias.grad.tobytes()


def test_a_weight_used_twice_gets_the_sum_not_the_last_product():
    layer = nn.Linear(4, 4, rng=np.random.default_rng(2), dtype=np.float64)
    flatten_parameters(layer.parameters())
    x = np.random.default_rng(3).standard_normal((5, 4))
    _loss(layer, x).backward()
    Adam(layer.parameters()).zero_grad()
    (layer(layer(Variable(x))) ** 2).sum().backward()  # two consumers of one weight in one pass
    reference = nn.Linear(4, 4, rng=np.random.default_rng(2), dtype=np.float64)
    (reference(reference(Variable(x))) ** 2).sum().backward()
    assert np.allclose(layer.weight.grad, reference.weight.grad, rtol=1e-12, atol=0)


def test_accumulation_after_a_written_gradient_adds():
    layer = nn.Linear(6, 3, rng=np.random.default_rng(4), dtype=np.float64)
    flatten_parameters(layer.parameters())
    x = np.random.default_rng(5).standard_normal((4, 6))
    Adam(layer.parameters()).zero_grad()
    _loss(layer, x).backward()
    once = layer.weight.grad.copy()
    _loss(layer, x).backward()  # no zero owed now: the product is added to what the first pass wrote
    assert np.array_equal(layer.weight.grad, once + once)
