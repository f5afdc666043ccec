"""Fused layer ops: one graph node each, with hand-written backward (fewer passes and temporaries
than composing core ops). Each matches its composed reference (tests/autograd/nn/test_fused.py)."""

import numpy as np

from ..engine import as_variable, make_result
from ..rowwise import column_sums, row_sums
from .attention_ops import causal_mask, multi_head_attention, scaled_dot_product_attention  # noqa: F401


def linear(x, weight, bias=None):
    """x @ W^T + b over the last axis of x; dx = g W, dW = g^T x, db = sum of g over leading axes"""
    x = as_variable(x)
    out_features, in_features = weight.shape
    if x.ndim == 0 or x.shape[-1] != in_features:
        raise ValueError(f"linear: input shape {x.shape} does not end in in_features={in_features} "
                         f"of weight shape {weight.shape}")
    lead = x.shape[:-1]
    x2 = x.data.reshape(-1, in_features)  # one 2-D GEMM: numpy loops over the leading axes of a 3-D @
    out = x2 @ weight.data.T
    if bias is not None:
        out += bias.data  # in place on the fresh product: no second (batch, out) temporary

    def backward(g):
        g2 = g.reshape(-1, out_features)
        gx = (g2 @ weight.data).reshape(*lead, in_features) if x.requires_grad else None
        gw = g2.T @ x2 if weight.requires_grad else None
        gb = column_sums(g2) if bias is not None and bias.requires_grad else None
        return (gx, gw) if bias is None else (gx, gw, gb)
    parents = (x, weight) if bias is None else (x, weight, bias)
    return make_result(out.reshape(*lead, out_features), parents, backward, "linear")


def layer_norm(x, weight, bias, eps=1e-5):
    """(x - mean) / sqrt(var + eps) * w + b over the last axis (population variance)

    With h = normalised x and d = g w: dx = (d - mean(d) - h mean(d h)) / sqrt(var + eps).
    """
    x = as_variable(x)
    if x.ndim == 0 or x.shape[-1] != weight.shape[-1]:
        raise ValueError(f"layer_norm: input shape {x.shape} does not end in the normalised size "
                         f"{weight.shape[-1]} (weight shape {weight.shape})")
    width = x.shape[-1]
    # shifted by each row's first value, so a constant row centres to exact zeros whatever its size
    h = x.data - x.data[..., :1]
    h -= row_sums(h) * (1.0 / width)
    rstd = np.vecdot(h, h)[..., None]  # sum of squares in one pass, no squared temporary
    rstd *= 1.0 / width
    rstd += eps
    np.sqrt(rstd, out=rstd)
    np.divide(1.0, rstd, out=rstd)
    h *= rstd  # h is now the normalised x, kept for backward
    out = h * weight.data
    out += bias.data

    def backward(g):
        d = g * weight.data
        d_h = np.vecdot(d, h)[..., None]
        d_mean = row_sums(d)
        d -= d_mean * (1.0 / width)
        d_h *= 1.0 / width
        d -= h * d_h
        d *= rstd
        g2 = g.reshape(-1, width)
        return d, column_sums(g2 * h.reshape(-1, width)), column_sums(g2)
    return make_result(out, (x, weight, bias), backward, "layer_norm")


ONE_HOT_LIMIT = 1 << 20  # elements of the one-hot matrix (4 MB in float32) up to which backward multiplies by it


def embedding(weight, ids):
    """weight[ids]; the gradient of each row sums the output gradients of every position holding its id."""
    out = weight.data[ids]
    num, dim = weight.shape

    def backward(g):
        flat, g2 = ids.reshape(-1), g.reshape(-1, dim)
        if flat.size and num * flat.size <= ONE_HOT_LIMIT:  # one GEMM: faster than sorting for small vocabularies
            one_hot = np.zeros((num, flat.size), g.dtype)
            one_hot[flat, np.arange(flat.size)] = 1
            return (one_hot @ g2,)
        grad = np.zeros((num, dim), g.dtype)
        if not flat.size:
            return (grad,)
        order = np.argsort(flat, kind="stable")  # equal ids side by side, each run summed in one reduceat
        sorted_ids = flat[order]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
        grad[sorted_ids[starts]] = np.add.reduceat(g2[order], starts, axis=0)
        return (grad,)
    return make_result(out, (weight,), backward, "embedding")
