"""Standard layers. Every layer with parameters takes `rng` and `dtype` keywords.

dtype defaults to float32 (like PyTorch); all parameters of a layer share it. Pass
dtype=np.float64 for gradient checks. rng is a numpy Generator, an int seed, or None, which
draws a seed from the generator `mpigrad.autograd.manual_seed(s)` sets (seed 0 until then, so a
script builds the same model and draws the same Dropout masks every run; see init.resolve_rng).
"""

import math

import numpy as np

from .. import functional as F
from .. import ops
from ..engine import Variable
from . import init
from .functional import embedding, layer_norm, linear
from .module import Module, Sequential


def _parameter(array, name):
    return Variable(array, requires_grad=True, name=name)


class Linear(Module):
    """y = x W^T + b; W (out, in) and b (out,) ~ U(-1/sqrt(in), 1/sqrt(in)) (PyTorch's default,
    i.e. kaiming_uniform with a = sqrt(5))."""

    def __init__(self, in_features, out_features, bias=True, rng=None, dtype=np.float32):
        super().__init__()
        rng = init.resolve_rng(rng)
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features) if in_features else 0.0
        self.weight = _parameter(init.uniform((out_features, in_features), rng, -bound, bound, dtype), "weight")
        self.bias = _parameter(init.uniform((out_features,), rng, -bound, bound, dtype), "bias") if bias else None

    def forward(self, x):
        return linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class ReLU(Module):
    """max(x, 0)"""

    def forward(self, x):
        return ops.relu(x)


class Tanh(Module):
    """tanh x"""

    def forward(self, x):
        return ops.tanh(x)


class Sigmoid(Module):
    """1 / (1 + e^-x)"""

    def forward(self, x):
        return ops.sigmoid(x)


class GELU(Module):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))"""

    def forward(self, x):
        return F.gelu(x)


class Dropout(Module):
    """x * Bernoulli(1 - p) / (1 - p) while training, x in eval mode; masks come from self.rng.

    Without `rng` the masks follow manual_seed() (the same every run). Every rank seeded alike draws
    the same masks; pass rng=seed + comm.rank for masks that differ across ranks.
    """

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p={p} is not in [0, 1)")
        self.p = p
        self.rng = init.resolve_rng(rng)

    def forward(self, x):
        return F.dropout(x, self.p, self.training, self.rng)

    def extra_repr(self):
        return f"p={self.p}"


class Embedding(Module):
    """weight[ids] with weight (num, dim) ~ N(0, 1); repeated ids add up their gradients."""

    def __init__(self, num, dim, rng=None, dtype=np.float32):
        super().__init__()
        self.num, self.dim = num, dim
        self.weight = _parameter(init.normal((num, dim), init.resolve_rng(rng), 1.0, dtype=dtype), "weight")

    def forward(self, ids):
        ids = np.asarray(ids.data if isinstance(ids, Variable) else ids)
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"Embedding: ids must be integers, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num):
            bad = ids.min() if ids.min() < 0 else ids.max()
            raise IndexError(f"Embedding: id {bad} is outside [0, {self.num})")
        return embedding(self.weight, ids)

    def extra_repr(self):
        return f"{self.num}, {self.dim}"


class LayerNorm(Module):
    """(x - mean) / sqrt(var + eps) * weight + bias over the last axis; weight ones, bias zeros."""

    def __init__(self, dim, eps=1e-5, rng=None, dtype=np.float32):
        super().__init__()  # rng is unused (constant init); accepted so every layer takes it
        self.dim, self.eps = dim, eps
        self.weight = _parameter(init.ones((dim,), dtype=dtype), "weight")
        self.bias = _parameter(init.zeros((dim,), dtype=dtype), "bias")

    def forward(self, x):
        return layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.dim}, eps={self.eps}"


ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "gelu": GELU}


class MLP(Sequential):
    """Linear(sizes[0], sizes[1]), activation, ..., Linear(sizes[-2], sizes[-1]); no activation after the last.

    As a Sequential the Linear layers are children "0", "2", "4", ... and the activations sit between.
    """

    def __init__(self, sizes, activation="relu", bias=True, rng=None, dtype=np.float32):
        if activation not in ACTIVATIONS:
            raise ValueError(f"MLP: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs at least an input and an output size, got {sizes}")
        rng = init.resolve_rng(rng)
        layers = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            if i:
                layers.append(ACTIVATIONS[activation]())
            layers.append(Linear(fan_in, fan_out, bias=bias, rng=rng, dtype=dtype))
        super().__init__(*layers)
