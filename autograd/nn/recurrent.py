"""Recurrent layers over (batch, time, features) input, looping over time."""

import math

import numpy as np

from .. import functional as F
from .. import ops
from ..engine import Variable, as_variable
from . import init
from .functional import linear
from .gru_ops import gru_cell, gru_sequence
from .module import Module


class _Recurrent(Module):
    """Shared set-up: PyTorch's parameter layout, all ~ U(-1/sqrt(hidden), 1/sqrt(hidden))."""

    gates = 1

    def __init__(self, input_size, hidden_size, bias, rng, dtype):
        super().__init__()
        rng = init.resolve_rng(rng)
        self.input_size, self.hidden_size = input_size, hidden_size
        bound, rows = 1.0 / math.sqrt(hidden_size), self.gates * hidden_size

        def draw(*shape):
            return Variable(init.uniform(shape, rng, -bound, bound, dtype), requires_grad=True)
        self.weight_ih = draw(rows, input_size)
        self.weight_hh = draw(rows, hidden_size)
        self.bias_ih = draw(rows) if bias else None
        self.bias_hh = draw(rows) if bias else None

    def forward(self, x, h0=None):
        """x (batch, time, input) -> (outputs (batch, time, hidden), last hidden (batch, hidden))."""
        x, h = self._check(x, h0)
        projected = linear(x, self.weight_ih, self.bias_ih)  # every time step's input term in one matmul
        outputs = []
        for t in range(x.shape[1]):
            h = self.cell(projected[:, t], h)
            outputs.append(h)
        return F.stack(outputs, axis=1), h

    def _check(self, x, h0):
        """x and the initial state (zeros unless given) as Variables, shapes checked."""
        x = as_variable(x)
        if x.ndim != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__}: input shape {x.shape} is not "
                             f"(batch, time, {self.input_size})")
        if x.shape[1] == 0:
            raise ValueError(f"{type(self).__name__}: input has no time steps (shape {x.shape})")
        batch = x.shape[0]
        if h0 is None:
            return x, Variable(np.zeros((batch, self.hidden_size), self.weight_hh.dtype))
        h = as_variable(h0)
        if h.shape != (batch, self.hidden_size):
            raise ValueError(f"{type(self).__name__}: h0 shape {h.shape} is not ({batch}, {self.hidden_size})")
        return x, h

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}"


class RNN(_Recurrent):
    """h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act tanh or relu; h_0 = 0 unless given."""

    def __init__(self, input_size, hidden_size, nonlinearity="tanh", bias=True, rng=None, dtype=np.float32):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, rng, dtype)
        self.nonlinearity = nonlinearity

    def cell(self, xi, h):
        pre = xi + linear(h, self.weight_hh, self.bias_hh)
        return ops.tanh(pre) if self.nonlinearity == "tanh" else ops.relu(pre)


class GRU(_Recurrent):
    """PyTorch's GRU, gates (r, z, n) stacked in that order in weight_ih / weight_hh:

    r = s(W_ir x + b_ir + W_hr h + b_hr), z = s(W_iz x + b_iz + W_hz h + b_hz),
    n = tanh(W_in x + b_in + r (W_hn h + b_hn)), h' = (1 - z) n + z h.
    """

    gates = 3

    def __init__(self, input_size, hidden_size, bias=True, rng=None, dtype=np.float32):
        super().__init__(input_size, hidden_size, bias, rng, dtype)

    def forward(self, x, h0=None):
        """x (batch, time, input) -> (outputs (batch, time, hidden), last hidden (batch, hidden))."""
        x, h = self._check(x, h0)
        outputs = gru_sequence(linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh)
        return outputs, outputs[:, -1]

    def cell(self, xi, h):
        """One step from the projected input xi (batch, 3 hidden) (see gru_ops)."""
        return gru_cell(xi, h, self.weight_hh, self.bias_hh)
