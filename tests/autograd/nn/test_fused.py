"""Every fused op against its composition of core ops (values and gradients, float64), gradcheck,
and float32 kept through forward and backward."""

import math

import numpy as np
import pytest

import mpigrad.autograd as ag
from mpigrad.autograd import Variable, gradcheck, ops
from mpigrad.autograd.nn import causal_mask
from mpigrad.autograd.nn import functional as NF
from mpigrad.autograd.nn.gru_ops import gru_cell, gru_sequence

RNG = np.random.default_rng(7)
IDS = RNG.integers(0, 6, (3, 5))  # repeated ids
TARGETS = RNG.integers(0, 7, (2, 3))


def composed_linear(x, w, b):
    return ops.matmul(x, ops.transpose(w)) + b


def composed_layer_norm(x, w, b):
    centred = x - ops.mean(x, -1, keepdims=True)
    return centred / ops.sqrt(ops.var(x, -1, keepdims=True) + 1e-5) * w + b


def composed_gelu(x):
    return 0.5 * x * (1 + ops.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)))


def composed_attention(causal):
    def attention(q, k, v):
        scores = ops.matmul(q, ops.transpose(k, 0, 1, 3, 2)) * (1 / math.sqrt(q.shape[-1]))
        if causal:
            scores = scores + causal_mask(q.shape[-2], scores.dtype)
        return ops.matmul(ag.softmax(scores, axis=-1), v)
    return attention


def composed_multi_head_attention(qkv, heads=2):
    batch, time, width = qkv.shape
    q, k, v = (qkv[:, :, i * width // 3:(i + 1) * width // 3].reshape(batch, time, heads, -1).transpose(0, 2, 1, 3)
               for i in range(3))
    y = composed_attention(True)(q, k, v)
    return y.transpose(0, 2, 1, 3).reshape(batch, time, width // 3)


def composed_cross_entropy(x):
    logp = ag.log_softmax(x, axis=-1)
    rows, cols = np.indices(TARGETS.shape)
    return -ops.mean(logp[rows, cols, TARGETS])


def composed_gru_cell(xi, h, w, b=None):
    size = h.shape[-1]
    hh = NF.linear(h, w, b)
    rz = ops.sigmoid(xi[:, :2 * size] + hh[:, :2 * size])
    r, z = rz[:, :size], rz[:, size:]
    n = ops.tanh(xi[:, 2 * size:] + r * hh[:, 2 * size:])
    return (1 - z) * n + z * h


def composed_gru_sequence(x, h, w, b=None):
    outputs = []
    for t in range(x.shape[1]):
        h = composed_gru_cell(x[:, t], h, w, b)
        outputs.append(h)
    return ag.stack(outputs, axis=1)


CASES = {  # name: (fused op, its composition of core ops, input shapes)
    "linear": (NF.linear, composed_linear, [(2, 3, 4), (5, 4), (5,)]),
    "layer_norm": (NF.layer_norm, composed_layer_norm, [(2, 3, 6), (6,), (6,)]),
    "gelu": (ag.gelu, composed_gelu, [(3, 7)]),
    "embedding": (lambda w: NF.embedding(w, IDS), lambda w: w[IDS], [(6, 4)]),
    "attention": (lambda q, k, v: NF.scaled_dot_product_attention(q, k, v), composed_attention(False),
                  [(2, 2, 5, 3)] * 3),
    "causal attention": (lambda q, k, v: NF.scaled_dot_product_attention(q, k, v, causal=True),
                         composed_attention(True), [(2, 2, 5, 3)] * 3),
    "multi_head_attention": (lambda qkv: NF.multi_head_attention(qkv, 2, causal=True),
                             composed_multi_head_attention, [(2, 5, 12)]),
    "cross_entropy": (lambda x: ag.cross_entropy(x, TARGETS), composed_cross_entropy, [(2, 3, 7)]),
    "gru_cell": (gru_cell, composed_gru_cell, [(3, 12), (3, 4), (12, 4), (12,)]),
    "gru_sequence": (gru_sequence, composed_gru_sequence, [(3, 5, 12), (3, 4), (12, 4), (12,)]),
    "gru_sequence without bias": (gru_sequence, composed_gru_sequence, [(3, 5, 12), (3, 4), (12, 4)]),
}


def inputs(shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [Variable((2 * rng.standard_normal(s) + 0.5).astype(dtype), requires_grad=True) for s in shapes]


def values_and_grads(fn, xs):
    for x in xs:
        x.grad = None
    out = fn(*xs)
    grad = np.random.default_rng(1).standard_normal(out.shape).astype(out.dtype)
    out.backward(grad)
    return out.data, [x.grad for x in xs]


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_matches_composed_in_float64(name):
    fused, composed, shapes = CASES[name]
    xs = inputs(shapes, np.float64)
    out_f, grads_f = values_and_grads(fused, xs)
    out_c, grads_c = values_and_grads(composed, xs)
    np.testing.assert_allclose(out_f, out_c, rtol=1e-10, atol=1e-12)
    for gf, gc in zip(grads_f, grads_c):
        np.testing.assert_allclose(gf, gc, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_gradcheck(name):
    fused, _, shapes = CASES[name]
    assert gradcheck(fused, inputs(shapes, np.float64, seed=3))


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_keeps_float32(name):
    fused, composed, shapes = CASES[name]
    xs = inputs(shapes, np.float32)
    out, grads = values_and_grads(fused, xs)
    assert out.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    ref, ref_grads = values_and_grads(composed, inputs(shapes, np.float64))
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    for g, r in zip(grads, ref_grads):
        np.testing.assert_allclose(g, r, rtol=1e-3, atol=1e-4)


def test_embedding_gradient_sums_repeated_ids_and_leaves_unused_rows_zero():
    (w,) = inputs([(6, 4)], np.float64)
    _, (grad,) = values_and_grads(lambda w: NF.embedding(w, IDS), [w])
    g = np.random.default_rng(1).standard_normal(IDS.shape + (4,))
    for row in range(6):
        np.testing.assert_allclose(grad[row], g[IDS == row].sum(axis=0), rtol=1e-12)
    assert (grad[np.setdiff1d(np.arange(6), IDS)] == 0).all()
    out = NF.embedding(w, np.zeros((2, 0), np.int64))
    out.sum().backward()
    assert out.shape == (2, 0, 4) and (w.grad == grad).all()  # no ids: nothing added


def test_causal_attention_ignores_the_future():
    q, k, v = inputs([(1, 1, 4, 3)] * 3, np.float64)
    before = NF.scaled_dot_product_attention(q, k, v, causal=True).data
    k.data[..., 3, :] += 5.0
    v.data[..., 3, :] -= 5.0
    after = NF.scaled_dot_product_attention(q, k, v, causal=True).data
    np.testing.assert_array_equal(before[..., :3, :], after[..., :3, :])
    assert not np.allclose(before[..., 3, :], after[..., 3, :])


def test_cross_entropy_retain_graph_gives_the_same_gradient_twice():
    (x,) = inputs([(2, 3, 7)], np.float64)
    loss = ag.cross_entropy(x, TARGETS)
    loss.backward(retain_graph=True)
    first = x.grad.copy()
    loss.backward()
    np.testing.assert_allclose(x.grad, 2 * first)


@pytest.mark.parametrize("dtype,offset", [(np.float64, 800.0), (np.float32, 100.0)])
def test_softmax_without_and_with_the_max_shift_agree(dtype, offset):
    x = np.random.default_rng(4).standard_normal((4, 7)).astype(dtype)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(ag.softmax(x).data, ag.softmax(x + dtype(offset)).data, rtol=rtol)  # safe vs shifted
    t = np.array([0, 3, 6, 2])
    np.testing.assert_allclose(ag.cross_entropy(x, t).data, ag.cross_entropy(x + dtype(offset), t).data, rtol=rtol)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_with_scores_too_large_for_the_unshifted_exp(causal):
    q, k, v = inputs([(2, 2, 5, 3)] * 3, np.float64)
    q.data *= 300  # scores of several hundreds: e^x would overflow float32, so the shifted path runs
    out_f, grads_f = values_and_grads(lambda q, k, v: NF.scaled_dot_product_attention(q, k, v, causal), [q, k, v])
    out_c, grads_c = values_and_grads(composed_attention(causal), [q, k, v])
    np.testing.assert_allclose(out_f, out_c, rtol=1e-10, atol=1e-12)
    for gf, gc in zip(grads_f, grads_c):
        np.testing.assert_allclose(gf, gc, rtol=1e-9, atol=1e-9)
    q32, k32, v32 = (Variable(a.data.astype(np.float32)) for a in (q, k, v))
    out32 = NF.scaled_dot_product_attention(q32, k32, v32, causal).data
    assert out32.dtype == np.float32 and np.isfinite(out32).all()
    np.testing.assert_allclose(out32, out_c, rtol=1e-3, atol=1e-3)
