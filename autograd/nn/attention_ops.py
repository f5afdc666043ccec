"""Attention as fused graph nodes: softmax(q k^T / sqrt(d) + mask) v in one node, its backward by hand.

With p the attention weights, y the output and g its gradient: dv = p^T g, dp = g v^T,
ds = p (dp - rowsum(g y)) (since rowsum(dp p) = rowsum(g y)), dq = ds k / sqrt(d), dk = ds^T q / sqrt(d).
"""

import math

import numpy as np

from ..engine import as_variable, make_result
from ..rowwise import softmax_rows


def _forward(q, k, v, causal):
    """(y, p, q scaled) for arrays (..., time, d); p is softmax'd in place, no other (time, time) temporary."""
    qs = q * q.dtype.type(1.0 / math.sqrt(q.shape[-1]))  # scaling q is 1/time the work of scaling the scores
    p = qs @ np.swapaxes(k, -1, -2)
    time = q.shape[-2]
    if causal:
        softmax_rows(p, True, causal_mask(time, p.dtype), causal_keep(time, p.dtype))
    else:
        softmax_rows(p, True)
    return p @ v, p, qs


def _backward(g, k, v, y, p, qs):
    """(dq, dk, dv) of the attention whose forward gave y, p and qs."""
    ds = g @ np.swapaxes(v, -1, -2)
    ds -= np.vecdot(g, y)[..., None]
    ds *= p
    dq = ds @ k
    dq *= qs.dtype.type(1.0 / math.sqrt(qs.shape[-1]))
    return dq, np.swapaxes(ds, -1, -2) @ qs, np.swapaxes(p, -1, -2) @ g


def scaled_dot_product_attention(q, k, v, causal=False):
    """softmax(q k^T / sqrt(d) + mask) v over the last two axes; q, k, v (..., time, d)."""
    q, k, v = as_variable(q), as_variable(k), as_variable(v)
    y, p, qs = _forward(q.data, k.data, v.data, causal)
    return make_result(y, (q, k, v), lambda g: _backward(g, k.data, v.data, y, p, qs), "attention")


def multi_head_attention(qkv, num_heads, causal=False):
    """qkv (batch, time, 3 d_model), the q, k, v projections side by side -> the heads' outputs
    (batch, time, d_model), heads side by side: one node, no transposed copies in the graph."""
    qkv = as_variable(qkv)
    batch, time, width = qkv.shape
    heads = qkv.data.reshape(batch, time, 3, num_heads, width // (3 * num_heads)).transpose(2, 0, 3, 1, 4)
    q, k, v = heads  # each (batch, heads, time, d_head), views of qkv
    y, p, qs = _forward(q, k, v, causal)
    out = y.transpose(0, 2, 1, 3).reshape(batch, time, width // 3)

    def backward(g):
        g_heads = g.reshape(batch, time, num_heads, -1).transpose(0, 2, 1, 3)
        grad = np.empty((batch, time, 3, num_heads, width // (3 * num_heads)), qkv.dtype)
        grad_heads = grad.transpose(2, 0, 3, 1, 4)
        grad_heads[0], grad_heads[1], grad_heads[2] = _backward(g_heads, k, v, y, p, qs)
        return (grad.reshape(batch, time, width),)
    return make_result(out, (qkv,), backward, "multi_head_attention")


_MASKS = {}


def causal_mask(time, dtype):
    """(time, time) array: 0 on and below the diagonal, a large negative number above (in dtype)."""
    key = (time, np.dtype(dtype))
    if key not in _MASKS:
        # half of dtype's lowest value: exp() of it is 0 and adding a score cannot overflow to -inf
        mask = np.triu(np.full((time, time), np.finfo(dtype).min / 2, dtype=dtype), k=1)
        mask.flags.writeable = False
        _MASKS[key] = mask
    return _MASKS[key]


def causal_keep(time, dtype):
    """(time, time) array of dtype: 1 on and below the diagonal, 0 above."""
    key = ("keep", time, np.dtype(dtype))
    if key not in _MASKS:
        keep = np.tril(np.ones((time, time), dtype))
        keep.flags.writeable = False
        _MASKS[key] = keep
    return _MASKS[key]
