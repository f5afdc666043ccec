"""Layers: values against plain numpy, gradcheck in float64, float32 kept end to end,
reproducible construction, bad input."""

import numpy as np
import pytest

from mpigrad.autograd import Variable, gradcheck, manual_seed, nn


def x64(*shape, seed=0):
    return Variable(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def check_layer(layer, x):
    """gradcheck with respect to the input and every parameter at once."""
    return gradcheck(lambda x, *params: layer(x), [x, *layer.parameters()])


def test_linear_shapes_values_and_default_init():
    layer = nn.Linear(5, 3, rng=0)
    assert layer.weight.shape == (3, 5) and layer.bias.shape == (3,)
    assert layer.weight.dtype == np.float32
    bound = 1 / np.sqrt(5)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.bias.data).max() <= bound
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_allclose(layer(x).data, x @ layer.weight.data.T + layer.bias.data, rtol=1e-6)
    assert nn.Linear(5, 3, bias=False, rng=0).bias is None
    assert len(nn.Linear(5, 3, bias=False).parameters()) == 1


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5), (5,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradients(shape, bias):
    layer = nn.Linear(5, 3, bias=bias, rng=0, dtype=np.float64)
    assert check_layer(layer, x64(*shape))


def test_linear_bad_input_names_shapes():
    with pytest.raises(ValueError, match=r"linear: input shape \(4, 6\).*in_features=5.*\(3, 5\)"):
        nn.Linear(5, 3)(np.ones((4, 6)))


@pytest.mark.parametrize("layer", [nn.ReLU(), nn.Tanh(), nn.Sigmoid(), nn.GELU()], ids=lambda m: type(m).__name__)
def test_activation_modules(layer):
    x = x64(3, 4)
    x.data[np.abs(x.data) < 1e-3] += 0.01
    assert check_layer(layer, x)


def test_dropout_module():
    drop = nn.Dropout(0.5, rng=np.random.default_rng(0))
    x = np.ones((100, 100))
    y = drop(x).data
    assert set(np.unique(y)) == {0.0, 2.0}
    drop.rng = np.random.default_rng(0)
    np.testing.assert_array_equal(drop(x).data, y)  # the rng attribute can be replaced
    drop.eval()
    np.testing.assert_array_equal(drop(x).data, x)
    with pytest.raises(ValueError, match="p=1.5"):
        nn.Dropout(1.5)


def test_embedding_lookup_and_repeated_ids():
    emb = nn.Embedding(6, 3, rng=0, dtype=np.float64)
    ids = np.array([[1, 1, 4], [1, 0, 5]])
    out = emb(ids)
    np.testing.assert_array_equal(out.data, emb.weight.data[ids])
    out.sum().backward()
    np.testing.assert_array_equal(emb.weight.grad[:, 0], [1, 3, 0, 0, 1, 1])
    assert gradcheck(lambda w: emb(ids) * 2.0, [emb.weight])


def test_embedding_bad_ids():
    emb = nn.Embedding(4, 2)
    with pytest.raises(TypeError, match="integers"):
        emb(np.array([0.0, 1.0]))
    with pytest.raises(IndexError, match=r"id 4 is outside \[0, 4\)"):
        emb(np.array([0, 4]))


def test_layer_norm_values_and_gradients():
    ln = nn.LayerNorm(5, dtype=np.float64)
    assert (ln.weight.data == 1).all() and (ln.bias.data == 0).all()
    x = x64(2, 3, 5)
    y = ln(x).data
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(-1), 1, rtol=1e-4)
    ln.weight.data[:] = np.arange(1.0, 6.0)
    ln.bias.data[:] = 0.5
    assert check_layer(ln, x)
    with pytest.raises(ValueError, match=r"layer_norm: input shape \(2, 4\)"):
        ln(np.ones((2, 4)))


@pytest.mark.parametrize("value", [12345.6, 1000.1, -3.3e4, 0.1])
def test_layer_norm_maps_a_constant_float32_row_to_exactly_zero(value):
    ln = nn.LayerNorm(64)
    x = Variable(np.full((3, 64), value, np.float32), requires_grad=True)
    y = ln(x)
    assert y.dtype == np.float32 and (y.data == 0).all()
    y.sum().backward()
    assert np.isfinite(x.grad).all() and np.isfinite(ln.weight.grad).all()


def test_mlp_structure_and_activation_choice():
    mlp = nn.MLP([4, 8, 8, 2], activation="tanh", rng=0)
    assert [type(m).__name__ for m in mlp] == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]
    assert [n for n, _ in mlp.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias",
                                                      "4.weight", "4.bias"]
    with pytest.raises(ValueError, match="activation.*'swish'"):
        nn.MLP([2, 2], activation="swish")
    with pytest.raises(ValueError, match="sizes"):
        nn.MLP([3])


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "gelu"])
def test_mlp_gradients(activation):
    mlp = nn.MLP([3, 4, 2], activation=activation, rng=0, dtype=np.float64)
    assert check_layer(mlp, x64(5, 3))


LAYERS = {
    "Linear": lambda dt: (nn.Linear(4, 3, dtype=dt), (2, 4)),
    "ReLU": lambda dt: (nn.ReLU(), (2, 4)),
    "Tanh": lambda dt: (nn.Tanh(), (2, 4)),
    "Sigmoid": lambda dt: (nn.Sigmoid(), (2, 4)),
    "GELU": lambda dt: (nn.GELU(), (2, 4)),
    "Dropout": lambda dt: (nn.Dropout(0.3), (2, 4)),
    "LayerNorm": lambda dt: (nn.LayerNorm(4, dtype=dt), (2, 3, 4)),
    "MLP": lambda dt: (nn.MLP([4, 5, 3], activation="gelu", dtype=dt), (2, 4)),
    "MultiHeadAttention": lambda dt: (nn.MultiHeadAttention(4, 2, causal=True, dtype=dt), (2, 3, 4)),
    "RNN": lambda dt: (nn.RNN(4, 3, dtype=dt), (2, 3, 4)),
    "GRU": lambda dt: (nn.GRU(4, 3, dtype=dt), (2, 3, 4)),
}


def _output(y):
    return y[0] if isinstance(y, tuple) else y


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_float32_stays_float32_through_every_layer(name):
    layer, shape = LAYERS[name](np.float32)
    assert all(p.dtype == np.float32 for p in layer.parameters())
    x = Variable(np.random.default_rng(0).standard_normal(shape).astype(np.float32), requires_grad=True)
    y = _output(layer(x))
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in layer.parameters())


def test_float32_embedding():
    emb = nn.Embedding(5, 3)
    emb(np.array([1, 2, 2])).sum().backward()
    assert emb.weight.grad.dtype == np.float32


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_construction_is_reproducible_after_manual_seed(name):
    manual_seed(123)
    first = LAYERS[name](np.float32)[0].state_dict()
    manual_seed(123)
    second = LAYERS[name](np.float32)[0].state_dict()
    assert list(first) == list(second)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])


def test_layers_without_seed_differ_and_explicit_rng_wins():
    manual_seed(0)
    a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    assert not np.array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(nn.Linear(3, 3, rng=7).weight.data, nn.Linear(3, 3, rng=7).weight.data)


def test_model_state_dict_round_trip_through_a_fresh_model():
    make = lambda seed: nn.Sequential(nn.Embedding(5, 4, rng=seed), nn.LayerNorm(4),  # noqa: E731
                                      nn.MultiHeadAttention(4, 2, rng=seed), nn.MLP([4, 6, 5], rng=seed))
    src, dst = make(0), make(1)
    dst.load_state_dict(src.state_dict())
    ids = np.array([[0, 3, 4]])
    np.testing.assert_array_equal(dst(ids).data, src(ids).data)
    assert "2.q.weight" in src.state_dict()
