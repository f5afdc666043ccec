"""Update kernels over contiguous 1-D arrays: the whole maths of each optimizer, nothing else.

They work on any 1-D arrays of one dtype: a whole flat buffer, one parameter's raveled data,
or a ZeRO-style shard (a slice of a flat buffer). The optimizers call them for every layout,
so the flat and the per-parameter paths give bitwise-identical results: every operation is
elementwise and the chunk boundaries do not change any value.

Speed: numpy makes one memory pass per ufunc call, so the arrays are processed in chunks that
stay in L2 (CHUNK_BYTES per array, about 5 arrays live at once), and every intermediate goes
to preallocated scratch through ``out=``. Scalars are computed as Python floats and passed as
0-d arrays of the data's dtype: the same values a weak Python float would give under NEP 50,
~200 ns cheaper per call, and never a float64 numpy scalar (that would upcast float32 work).
"""

import math

import numpy as np

CHUNK_BYTES = 256 * 1024  # per array; measured best among 64 KB .. 1 MB (scripts/bench_optim.py)

_mul, _add, _sub, _div, _sqrt = np.multiply, np.add, np.subtract, np.divide, np.sqrt


class Scratch:
    """Reusable chunk-sized work buffers, allocated once per dtype."""

    def __init__(self, chunk_bytes=CHUNK_BYTES):
        if chunk_bytes < 1:
            raise ValueError(f"Scratch: chunk_bytes={chunk_bytes!r} must be >= 1")
        self.chunk_bytes = int(chunk_bytes)
        self._buffers = {}

    def chunk(self, dtype):
        """Elements per chunk for this dtype."""
        return max(1, self.chunk_bytes // np.dtype(dtype).itemsize)

    def get(self, dtype, count):
        """`count` work buffers of chunk(dtype) elements each."""
        dtype = np.dtype(dtype)
        have = self._buffers.setdefault(dtype, [])
        while len(have) < count:
            have.append(np.empty(self.chunk(dtype), dtype))
        return have[:count]


def _scalars(dtype, *values):
    return [np.array(x, dtype) for x in values]


def _chunks(size, chunk):
    for lo in range(0, size, chunk):
        yield lo, min(lo + chunk, size)


def _check(name, data, **others):
    if data.ndim != 1:
        raise ValueError(f"{name}: data must be 1-D, got shape {data.shape}")
    for key, arr in others.items():
        if arr is not None and arr.shape != data.shape:
            raise ValueError(f"{name}: {key} has shape {arr.shape}, data has {data.shape}")


def adam_update(data, grad, m_sum, v_sum, *, step, lr, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.0, decoupled=False, grad_scale=1.0, scratch=None):
    """One Adam step in place: p <- p - lr * (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps).

    The state is kept undivided, m_sum = m/(1-b1) and v_sum = v/(1-b2), so the moments take two
    passes fewer: m_sum <- b1 m_sum + g, v_sum <- b2 v_sum + g^2, with g <- g + wd p first
    (classical L2; `grad` itself is not modified) or, when `decoupled` (AdamW), p <- p (1 - lr wd)
    first. Then p <- p - s * m_sum / (sqrt(v_sum) + e) with s = lr (1-b1) / (bc1 sqrt((1-b2)/bc2))
    and e = eps sqrt(bc2/(1-b2)), bc = 1 - b^t: the same value up to rounding. `step` is t >= 1.
    """
    _check("adam_update", data, grad=grad, m=m_sum, v=v_sum)
    if step < 1:
        raise ValueError(f"adam_update: step={step!r} must be >= 1")
    lr, beta1, beta2, wd = float(lr), float(beta1), float(beta2), float(weight_decay)
    root = math.sqrt((1.0 - beta2) / (1.0 - beta2 ** step))  # sqrt(vhat) = root * sqrt(v_sum)
    b1, b2, step_size, eps_hat, wd_s, decay = _scalars(
        data.dtype, beta1, beta2, lr * (1.0 - beta1) / ((1.0 - beta1 ** step) * root), float(eps) / root,
        wd, 1.0 - lr * wd)
    tmp, g_wd, g_sc = (scratch or Scratch()).get(data.dtype, 3)
    scale = _scalars(data.dtype, grad_scale)[0] if grad_scale != 1.0 else None
    # 10 ufunc passes per chunk (+2 for L2 decay, +1 for decoupled), all in L2 but the first touches
    for lo, hi in _chunks(data.size, len(tmp)):
        p, g, mm, vv, t = data[lo:hi], grad[lo:hi], m_sum[lo:hi], v_sum[lo:hi], tmp[:hi - lo]
        if scale is not None:
            g = _mul(g, scale, out=g_sc[:hi - lo])
        if wd and decoupled:
            _mul(p, decay, out=p)
        elif wd:
            g = _add(_mul(p, wd_s, out=g_wd[:hi - lo]), g, out=g_wd[:hi - lo])
        _add(_mul(mm, b1, out=mm), g, out=mm)
        _add(_mul(vv, b2, out=vv), _mul(g, g, out=t), out=vv)
        _add(_sqrt(vv, out=t), eps_hat, out=t)
        _sub(p, _mul(_div(mm, t, out=t), step_size, out=t), out=p)


def sgd_update(data, grad, buf, *, lr, momentum=0.0, nesterov=False, weight_decay=0.0,
               grad_scale=1.0, scratch=None):
    """One SGD step in place (PyTorch): g <- g + wd p; b <- mu b + g; d = g + mu b if nesterov else b; p <- p - lr d.

    With momentum 0, `buf` may be None and d = g. `grad` itself is not modified.
    """
    _check("sgd_update", data, grad=grad, buf=buf)
    mu, wd = float(momentum), float(weight_decay)
    lr_s, mu_s, wd_s = _scalars(data.dtype, lr, mu, wd)
    tmp, g_wd, g_sc = (scratch or Scratch()).get(data.dtype, 3)
    scale = _scalars(data.dtype, grad_scale)[0] if grad_scale != 1.0 else None
    for lo, hi in _chunks(data.size, len(tmp)):
        p, g, t = data[lo:hi], grad[lo:hi], tmp[:hi - lo]
        if scale is not None:
            g = _mul(g, scale, out=g_sc[:hi - lo])
        if wd:
            g = _add(_mul(p, wd_s, out=g_wd[:hi - lo]), g, out=g_wd[:hi - lo])
        d = g
        if mu:
            b = buf[lo:hi]
            d = _add(_mul(b, mu_s, out=b), g, out=b)
            if nesterov:
                d = _add(_mul(b, mu_s, out=t), g, out=t)
        _sub(p, _mul(d, lr_s, out=t), out=p)


def sum_of_squares(x, chunk=8192):
    """sum(x**2) accumulated in float64, in fixed chunks so the result depends only on x.

    Chunks of 8192 stay below OpenBLAS's threading threshold for dot (10000): no thread start-up
    per chunk, and the same bits whatever the BLAS thread count.
    """
    x = x.reshape(-1)
    work = None if x.dtype == np.float64 else np.empty(min(chunk, x.size), np.float64)
    total = 0.0
    for lo, hi in _chunks(x.size, chunk):
        w = x[lo:hi]
        if work is not None:
            w = work[:hi - lo]
            np.copyto(w, x[lo:hi])
        total += float(np.dot(w, w))
    return total
