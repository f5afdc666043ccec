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
                weight_decay=0.0, decoupled=False, scratch=None):
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
    tmp, own = (scratch or Scratch()).get(data.dtype, 2)
    # 10 ufunc passes per chunk (+2 for L2 decay, +1 for decoupled), only the
    # first touch of each array streams from memory. `out` is positional: no keyword parsing.
    for lo, hi in _chunks(data.size, len(tmp)):
        p, g, mm, vv, t, g_own = data[lo:hi], grad[lo:hi], m_sum[lo:hi], v_sum[lo:hi], tmp[:hi - lo], own[:hi - lo]
        if wd and not decoupled:
            g = _add(_mul(p, wd_s, t), g, g_own)
        _add(_mul(mm, b1, mm), g, mm)
        _add(_mul(vv, b2, vv), _mul(g, g, g_own), vv)  # g is dead after this: square it in place when ours
        _add(_sqrt(vv, t), eps_hat, t)
        _mul(_div(mm, t, t), step_size, t)
        if wd and decoupled:
            _mul(p, decay, p)  # AdamW's decay next to the update: p is read from memory once
        _sub(p, t, p)


def sgd_update(data, grad, buf, *, lr, momentum=0.0, nesterov=False, weight_decay=0.0,
               scratch=None):
    """One SGD step in place (PyTorch): g <- g + wd p; b <- mu b + g; d = g + mu b if nesterov else b; p <- p - lr d.

    With momentum 0, `buf` may be None and d = g; `grad` itself is not modified.
    """
    _check("sgd_update", data, grad=grad, buf=buf)
    mu, wd = float(momentum), float(weight_decay)
    lr_s, mu_s, wd_s = _scalars(data.dtype, lr, mu, wd)
    tmp, g_wd = (scratch or Scratch()).get(data.dtype, 2)
    for lo, hi in _chunks(data.size, len(tmp)):
        p, g, t = data[lo:hi], grad[lo:hi], tmp[:hi - lo]
        if wd:
            g = _add(_mul(p, wd_s, out=t), g, out=g_wd[:hi - lo])
        d = g
        if mu:
            b = buf[lo:hi]
            d = _add(_mul(b, mu_s, out=b), g, out=b)
            if nesterov:
                d = _add(_mul(b, mu_s, out=t), g, out=t)
        _sub(p, _mul(d, lr_s, out=t), out=p)


DOT_ROW = 8192  # elements per float64 partial sum: below OpenBLAS's dot threading threshold (10000)
DOT_BLOCK_ROWS = 16  # rows converted to float64 per block: measured best among 4 .. 32 at REF-MLP size


_vecdot = getattr(np, "vecdot", None)  # numpy >= 2.0


def _row_dots(rows, out):
    """out[i] = rows[i] . rows[i], one ddot per row: in one np.vecdot call, or a loop before numpy 2."""
    if _vecdot is not None:
        _vecdot(rows, rows, out=out)
    else:
        for i, row in enumerate(rows):
            out[i] = np.dot(row, row)


def sum_of_squares(x):
    """sum(x**2) accumulated in float64: one ddot per 8192-element row, the row sums added in order.

    The result depends only on x: each row's ddot runs on one thread whatever the BLAS thread
    count, and the rows are added left to right in a Python float (add_in_order).
    """
    return add_in_order(row_sums_of_squares(x))


def add_in_order(values):
    """Left-to-right float64 sum (Python's sum() of floats is compensated from 3.12: other bits)."""
    total = 0.0
    for v in np.asarray(values, np.float64).tolist():
        total += v
    return total


def row_sums_of_squares(x):
    """sum(row**2) in float64 for each 8192-element row of x (the last may be shorter).

    A slice of x starting at a row boundary gives the same values for its rows, so ranks can
    each take a share of the rows. np.vecdot runs the ddots of a whole block of rows in one call;
    other dtypes are converted block by block into a 1 MB float64 buffer (float32 squares summed
    in float32 would lose precision or overflow).
    """
    x = np.ascontiguousarray(x).reshape(-1)  # BLAS sums a strided vector in another order: other bits
    n_rows, tail = divmod(x.size, DOT_ROW)
    sums = np.empty(n_rows + (tail > 0), np.float64)
    if x.dtype == np.float64:
        _row_dots(x[:n_rows * DOT_ROW].reshape(n_rows, DOT_ROW), sums[:n_rows])
    elif n_rows:
        work = np.empty((min(DOT_BLOCK_ROWS, n_rows), DOT_ROW), np.float64)
        for lo, hi in _chunks(n_rows, DOT_BLOCK_ROWS):
            w = work[:hi - lo]
            np.copyto(w, x[lo * DOT_ROW:hi * DOT_ROW].reshape(hi - lo, DOT_ROW))
            _row_dots(w, sums[lo:hi])
    if tail:
        w = x[n_rows * DOT_ROW:].astype(np.float64, copy=False)
        sums[n_rows] = np.dot(w, w)
    return sums
