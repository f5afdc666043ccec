"""Fused layer ops: one graph node each, with hand-written backward (fewer temporaries than composing)."""

import numpy as np

from ..engine import as_variable, make_result


def linear(x, weight, bias=None):
    """x @ W^T + b over the last axis of x; dx = g W, dW = g^T x, db = sum of g over leading axes"""
    x = as_variable(x)
    out_features, in_features = weight.shape
    if x.ndim == 0 or x.shape[-1] != in_features:
        raise ValueError(f"linear: input shape {x.shape} does not end in in_features={in_features} "
                         f"of weight shape {weight.shape}")
    out = x.data @ weight.data.T
    if bias is not None:
        out += bias.data  # in place on the fresh product: no second (batch, out) temporary

    def backward(g):
        g2 = g.reshape(-1, out_features)
        gx = g @ weight.data if x.requires_grad else None
        gw = g2.T @ x.data.reshape(-1, in_features) if weight.requires_grad else None
        gb = g2.sum(axis=0) if bias is not None and bias.requires_grad else None
        return (gx, gw) if bias is None else (gx, gw, gb)
    parents = (x, weight) if bias is None else (x, weight, bias)
    return make_result(out, parents, backward, "linear")


def layer_norm(x, weight, bias, eps=1e-5):
    """(x - mean) / sqrt(var + eps) * w + b over the last axis (population variance)

    With h = normalised x and d = g w: dx = (d - mean(d) - h mean(d h)) / sqrt(var + eps).
    """
    x = as_variable(x)
    if x.ndim == 0 or x.shape[-1] != weight.shape[-1]:
        raise ValueError(f"layer_norm: input shape {x.shape} does not end in the normalised size "
                         f"{weight.shape[-1]} (weight shape {weight.shape})")
    # shifted by each row's first value, so a constant row centres to exact zeros whatever its size
    centred = x.data - x.data[..., :1]
    centred -= centred.mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + eps)
    h = centred * rstd
    out = h * weight.data + bias.data

    def backward(g):
        d = g * weight.data
        gx = rstd * (d - d.mean(axis=-1, keepdims=True) - h * (d * h).mean(axis=-1, keepdims=True))
        lead = tuple(range(g.ndim - 1))
        return gx, (g * h).sum(axis=lead), g.sum(axis=lead)
    return make_result(out, (x, weight, bias), backward, "layer_norm")
