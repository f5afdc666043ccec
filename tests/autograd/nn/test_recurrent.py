"""RNN and GRU against numpy reference loops; gradients through time; initial state; errors."""

import time

import numpy as np
import pytest

from mpigrad.autograd import Variable, gradcheck, nn


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def rnn_reference(rnn, x, h):
    act = np.tanh if rnn.nonlinearity == "tanh" else (lambda z: np.maximum(z, 0))
    outs = []
    for t in range(x.shape[1]):
        h = act(x[:, t] @ rnn.weight_ih.data.T + rnn.bias_ih.data + h @ rnn.weight_hh.data.T + rnn.bias_hh.data)
        outs.append(h)
    return np.stack(outs, 1), h


def gru_reference(gru, x, h):
    H = gru.hidden_size
    outs = []
    for t in range(x.shape[1]):
        gi = x[:, t] @ gru.weight_ih.data.T + gru.bias_ih.data
        gh = h @ gru.weight_hh.data.T + gru.bias_hh.data
        r, z = sigmoid(gi[:, :H] + gh[:, :H]), sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        h = (1 - z) * n + z * h
        outs.append(h)
    return np.stack(outs, 1), h


CASES = {
    "rnn_tanh": (lambda: nn.RNN(3, 4, rng=0, dtype=np.float64), rnn_reference),
    "rnn_relu": (lambda: nn.RNN(3, 4, nonlinearity="relu", rng=0, dtype=np.float64), rnn_reference),
    "gru": (lambda: nn.GRU(3, 4, rng=0, dtype=np.float64), gru_reference),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("with_h0", [False, True])
def test_matches_reference(name, with_h0):
    make, reference = CASES[name]
    layer = make()
    x = np.random.default_rng(1).standard_normal((2, 5, 3))
    h0 = np.random.default_rng(2).standard_normal((2, 4)) if with_h0 else None
    outputs, last = layer(x, h0)
    ref_out, ref_last = reference(layer, x, np.zeros((2, 4)) if h0 is None else h0)
    assert outputs.shape == (2, 5, 4) and last.shape == (2, 4)
    np.testing.assert_allclose(outputs.data, ref_out, rtol=1e-12)
    np.testing.assert_allclose(last.data, ref_last, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_through_time_and_initial_state(name):
    layer = CASES[name][0]()
    x = Variable(np.random.default_rng(1).standard_normal((2, 4, 3)), requires_grad=True)
    h0 = Variable(np.random.default_rng(2).standard_normal((2, 4)), requires_grad=True)
    assert gradcheck(lambda x, h0, *params: layer(x, h0)[0], [x, h0, *layer.parameters()])
    assert gradcheck(lambda x, *params: layer(x)[1], [x, *layer.parameters()])


def test_parameter_layout():
    assert [(n, p.shape) for n, p in nn.GRU(3, 4).named_parameters()] == [
        ("weight_ih", (12, 3)), ("weight_hh", (12, 4)), ("bias_ih", (12,)), ("bias_hh", (12,))]
    assert [(n, p.shape) for n, p in nn.RNN(3, 4, bias=False).named_parameters()] == [
        ("weight_ih", (4, 3)), ("weight_hh", (4, 4))]
    bound = 1 / np.sqrt(4)
    assert all(np.abs(p.data).max() <= bound for p in nn.GRU(3, 4).parameters())


def test_long_sequence_backward_is_fast():
    rnn = nn.RNN(8, 16, rng=0)
    x = Variable(np.ones((4, 300, 8), np.float32), requires_grad=True)
    start = time.perf_counter()
    rnn(x)[0].sum().backward()
    assert time.perf_counter() - start < 2.0
    assert x.grad.shape == x.shape and np.isfinite(x.grad).all()


def test_bad_input():
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=r"input shape \(2, 3\)"):
        nn.GRU(3, 4)(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"h0 shape \(3, 4\) is not \(2, 4\)"):
        nn.RNN(3, 4)(np.ones((2, 5, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="no time steps"):
        nn.RNN(3, 4)(np.ones((2, 0, 3)))
