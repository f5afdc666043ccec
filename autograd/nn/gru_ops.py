"""The GRU recurrence as fused graph nodes: one per cell step, or one for a whole sequence.

With gates pre-activations from the input xi = x W_ih^T + b_ih and hh = h W_hh^T + b_hh (r, z, n
stacked): r, z = sigmoid(xi_rz + hh_rz), n = tanh(xi_n + r hh_n), h' = n + z (h - n). Backward, with
g = dL/dh': dn = g (1 - z), dz = g (h - n), da_n = dn (1 - n^2), dr = da_n hh_n,
da_r = dr r (1 - r), da_z = dz z (1 - z); dxi = (da_r, da_z, da_n), dhh = (da_r, da_z, da_n r),
dh = g z + dhh W_hh, dW_hh = dhh^T h, db_hh = sum of dhh.
"""

import numpy as np

from ..engine import as_variable, make_result
from ..unary_ops import sigmoid_data


def _forward(xi, h, weight, bias):
    """(h', what backward needs) for one step on numpy arrays."""
    size = h.shape[-1]
    hh = h @ weight.T
    if bias is not None:
        hh += bias
    rz = xi[:, :2 * size] + hh[:, :2 * size]
    sigmoid_data(rz, out=rz)
    r, z, hn = rz[:, :size], rz[:, size:], hh[:, 2 * size:]
    n = r * hn
    n += xi[:, 2 * size:]
    np.tanh(n, out=n)
    out = h - n
    out *= z
    out += n
    return out, (h, rz, hn, n)


def _backward(g, weight, saved, dxi):
    """Fills dxi (batch, 3 hidden) with the gradient of xi; returns (dh, dhh)."""
    h, rz, hn, n = saved
    size = h.shape[-1]
    r, z = rz[:, :size], rz[:, size:]
    da_n = dxi[:, 2 * size:]
    np.multiply(g, 1 - z, out=da_n)
    da_n *= 1 - n * n
    da_r, da_z = dxi[:, :size], dxi[:, size:2 * size]
    np.multiply(da_n, hn, out=da_r)
    da_r *= r * (1 - r)
    np.multiply(g, h - n, out=da_z)
    da_z *= z * (1 - z)
    dhh = dxi.copy()
    dhh[:, 2 * size:] *= r
    dh = dhh @ weight
    dh += g * z
    return dh, dhh


def gru_cell(xi, h, weight_hh, bias_hh=None):
    """One GRU step: xi (batch, 3 hidden) the projected input, h (batch, hidden) -> h'."""
    xi, h = as_variable(xi), as_variable(h)
    out, saved = _forward(xi.data, h.data, weight_hh.data, None if bias_hh is None else bias_hh.data)

    def backward(g):
        dxi = np.empty_like(xi.data)
        dh, dhh = _backward(g, weight_hh.data, saved, dxi)
        grads = (dxi, dh, dhh.T @ h.data)
        return grads if bias_hh is None else grads + (dhh.sum(axis=0),)
    parents = (xi, h, weight_hh) if bias_hh is None else (xi, h, weight_hh, bias_hh)
    return make_result(out, parents, backward, "gru_cell")


def gru_sequence(projected, h0, weight_hh, bias_hh=None):
    """Every GRU step over time as one node: projected (batch, time, 3 hidden), h0 (batch, hidden)
    -> outputs (batch, time, hidden). Backward runs through time once, then one GEMM for dW_hh."""
    projected, h0 = as_variable(projected), as_variable(h0)
    x, w = projected.data, weight_hh.data
    b = None if bias_hh is None else bias_hh.data
    batch, time, _ = x.shape
    outputs = np.empty((batch, time, h0.shape[-1]), h0.dtype)
    steps, h = [], h0.data
    for t in range(time):
        h, saved = _forward(x[:, t], h, w, b)
        outputs[:, t] = h
        steps.append(saved)

    def backward(g):
        dx = np.empty_like(x)
        dhh_all = np.empty((time, batch, x.shape[-1]), x.dtype)
        dh = None
        for t in reversed(range(time)):
            gt = g[:, t] if dh is None else g[:, t] + dh
            dh, dhh_all[t] = _backward(gt, w, steps[t], dx[:, t])
        hs = np.stack([saved[0] for saved in steps])  # the h each step started from
        dw = dhh_all.reshape(-1, x.shape[-1]).T @ hs.reshape(-1, hs.shape[-1])  # one GEMM for all steps
        grads = (dx, dh, dw)
        return grads if bias_hh is None else grads + (dhh_all.sum(axis=(0, 1)),)
    parents = (projected, h0, weight_hh) if bias_hh is None else (projected, h0, weight_hh, bias_hh)
    return make_result(outputs, parents, backward, "gru_sequence")
