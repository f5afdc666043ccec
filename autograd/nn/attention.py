"""Multi-head self-attention."""

import numpy as np

from .. import functional as F
from ..engine import as_variable
from . import init
from .attention_ops import causal_mask, multi_head_attention  # noqa: F401  (causal_mask re-exported)
from .functional import linear
from .layers import Linear
from .module import Module


class MultiHeadAttention(Module):
    """softmax(Q K^T / sqrt(d_head) + mask) V per head, heads concatenated, then the out projection.

    Input and output are (batch, time, d_model). Q, K, V come from the Linear layers q, k, v of
    the same input (self-attention); with causal=True position t attends only to positions <= t.
    """

    def __init__(self, d_model, num_heads, causal=False, bias=True, rng=None, dtype=np.float32):
        super().__init__()
        if num_heads < 1 or d_model % num_heads:
            raise ValueError(f"MultiHeadAttention: d_model={d_model} is not divisible by num_heads={num_heads}")
        rng = init.resolve_rng(rng)
        self.d_model, self.num_heads, self.causal = d_model, num_heads, causal
        self.q = Linear(d_model, d_model, bias, rng, dtype)
        self.k = Linear(d_model, d_model, bias, rng, dtype)
        self.v = Linear(d_model, d_model, bias, rng, dtype)
        self.out = Linear(d_model, d_model, bias, rng, dtype)

    def forward(self, x):
        x = as_variable(x)
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"MultiHeadAttention: input shape {x.shape} is not (batch, time, {self.d_model})")
        projections = (self.q, self.k, self.v)
        weight = F.concat([p.weight for p in projections], axis=0)  # q, k, v in one GEMM
        bias = F.concat([p.bias for p in projections], axis=0) if self.q.bias is not None else None
        y = multi_head_attention(linear(x, weight, bias), self.num_heads, self.causal)
        return self.out(y)

    def extra_repr(self):
        return f"{self.d_model}, num_heads={self.num_heads}, causal={self.causal}"
