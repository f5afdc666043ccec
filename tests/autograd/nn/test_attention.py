"""MultiHeadAttention against a per-head numpy reference; causality; gradients; errors."""

import numpy as np
import pytest

from mpigrad.autograd import Variable, gradcheck, nn


def reference(mha, x):
    """Loop over batch and heads in plain numpy."""
    proj = lambda lin, z: z @ lin.weight.data.T + lin.bias.data  # noqa: E731
    q, k, v = proj(mha.q, x), proj(mha.k, x), proj(mha.v, x)
    batch, time, d_model = x.shape
    d_head = d_model // mha.num_heads
    y = np.zeros_like(x)
    for b in range(batch):
        for h in range(mha.num_heads):
            cols = slice(h * d_head, (h + 1) * d_head)
            scores = q[b, :, cols] @ k[b, :, cols].T / np.sqrt(d_head)
            if mha.causal:
                scores[np.triu_indices(time, 1)] = -np.inf
            w = np.exp(scores - scores.max(-1, keepdims=True))
            y[b, :, cols] = (w / w.sum(-1, keepdims=True)) @ v[b, :, cols]
    return proj(mha.out, y)


@pytest.mark.parametrize("causal", [False, True])
def test_matches_reference(causal):
    mha = nn.MultiHeadAttention(6, 3, causal=causal, rng=0, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((2, 5, 6))
    np.testing.assert_allclose(mha(x).data, reference(mha, x), rtol=1e-10, atol=1e-12)


def test_causal_output_ignores_the_future():
    mha = nn.MultiHeadAttention(4, 2, causal=True, rng=0, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((1, 6, 4))
    changed = x.copy()
    changed[:, 4:] += 10.0
    np.testing.assert_allclose(mha(x).data[:, :4], mha(changed).data[:, :4], rtol=1e-12)
    assert not np.allclose(mha(x).data[:, 4:], mha(changed).data[:, 4:])


@pytest.mark.parametrize("causal", [False, True])
def test_gradients(causal):
    mha = nn.MultiHeadAttention(4, 2, causal=causal, rng=0, dtype=np.float64)
    x = Variable(np.random.default_rng(1).standard_normal((2, 3, 4)), requires_grad=True)
    assert gradcheck(lambda x, *params: mha(x), [x, *mha.parameters()])


def test_parameter_names_and_shapes():
    mha = nn.MultiHeadAttention(8, 2)
    assert [(n, p.shape) for n, p in mha.named_parameters()] == [
        (f"{proj}.{kind}", (8, 8) if kind == "weight" else (8,))
        for proj in ("q", "k", "v", "out") for kind in ("weight", "bias")]


def test_causal_mask_keeps_dtype():
    for dtype in (np.float32, np.float64):
        mask = nn.causal_mask(3, dtype)
        assert mask.dtype == dtype and mask[0, 1] < -1e30 and mask[1, 0] == 0 and mask[2, 2] == 0


def test_bad_configuration_and_input():
    with pytest.raises(ValueError, match="d_model=6 is not divisible by num_heads=4"):
        nn.MultiHeadAttention(6, 4)
    with pytest.raises(ValueError, match=r"input shape \(2, 6\) is not \(batch, time, 6\)"):
        nn.MultiHeadAttention(6, 2)(np.ones((2, 6)))
