"""Weight initialisers: each returns a new numpy array of `shape` drawn from an explicit Generator.

Fans follow the (out, in, *kernel) convention of Linear.weight: fan_in = in * prod(kernel),
fan_out = out * prod(kernel); a 1-D shape has fan_in = fan_out = its length. Values are drawn
in float64 and then rounded to `dtype`, so a float32 and a float64 layer built from the same
generator state hold the same numbers up to rounding.
"""

import math

import numpy as np

__all__ = [
    "fans", "manual_seed", "resolve_rng", "uniform", "normal", "zeros", "ones",
    "xavier_uniform", "xavier_normal", "glorot_uniform", "glorot_normal",
    "kaiming_uniform", "kaiming_normal", "he_uniform", "he_normal",
    "lecun_uniform", "lecun_normal",
]


# The generator layers built without `rng` draw their seeds from; manual_seed() replaces it. Seeded
# at import, so a script gives the same bits every run (as PyTorch's default generator does).
_default = np.random.RandomState(0)


def manual_seed(seed):
    """Seed the generator that layers built without `rng` draw from (initial weights, Dropout masks).

    As torch.manual_seed: call it once before building the model; `seed` is an int in [0, 2**32).
    Without a call the seed is 0. numpy's global state (np.random.seed) plays no part.
    """
    global _default
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"manual_seed: seed must be an integer in [0, 2**32), got {seed!r}")
    _default = np.random.RandomState(int(seed))


def resolve_rng(rng=None):
    """rng as a Generator; None draws a seed from the generator manual_seed() set (seed 0 until then).

    Every rank builds the same model after the same manual_seed(s) (or none): the runtime keeps
    replicas identical without passing generators around. An int is used as a seed.
    """
    if rng is None:
        return np.random.default_rng(_default.randint(0, 2**31, size=4))
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None, got {type(rng).__name__}")
    return rng


def fans(shape):
    """(fan_in, fan_out) of a weight of this shape."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def uniform(shape, rng, low, high, dtype=np.float32):
    """U(low, high)"""
    return rng.uniform(low, high, size=shape).astype(dtype)


def normal(shape, rng, std, mean=0.0, dtype=np.float32):
    """N(mean, std^2)"""
    return (mean + std * rng.standard_normal(shape)).astype(dtype)


def zeros(shape, rng=None, dtype=np.float32):
    """0 everywhere (rng unused; accepted so every initialiser has the same call)"""
    return np.zeros(shape, dtype)


def ones(shape, rng=None, dtype=np.float32):
    """1 everywhere (rng unused)"""
    return np.ones(shape, dtype)


def xavier_uniform(shape, rng, dtype=np.float32, gain=1.0):
    """U(-a, a), a = gain sqrt(6 / (fan_in + fan_out))  (Glorot & Bengio 2010)"""
    fan_in, fan_out = fans(shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(shape, rng, -bound, bound, dtype)


def xavier_normal(shape, rng, dtype=np.float32, gain=1.0):
    """N(0, s^2), s = gain sqrt(2 / (fan_in + fan_out))"""
    fan_in, fan_out = fans(shape)
    return normal(shape, rng, gain * math.sqrt(2.0 / (fan_in + fan_out)), dtype=dtype)


def _kaiming_std(shape, a, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fans(shape)[0 if mode == "fan_in" else 1]
    return math.sqrt(2.0 / (1.0 + a * a)) / math.sqrt(fan)  # gain of leaky_relu(slope a) over sqrt(fan)


def kaiming_uniform(shape, rng, dtype=np.float32, a=0.0, mode="fan_in"):
    """U(-b, b), b = sqrt(3) gain / sqrt(fan), gain = sqrt(2 / (1 + a^2))  (He et al. 2015)"""
    bound = math.sqrt(3.0) * _kaiming_std(shape, a, mode)
    return uniform(shape, rng, -bound, bound, dtype)


def kaiming_normal(shape, rng, dtype=np.float32, a=0.0, mode="fan_in"):
    """N(0, s^2), s = gain / sqrt(fan), gain = sqrt(2 / (1 + a^2))"""
    return normal(shape, rng, _kaiming_std(shape, a, mode), dtype=dtype)


def lecun_uniform(shape, rng, dtype=np.float32):
    """U(-b, b), b = sqrt(3 / fan_in)  (variance 1 / fan_in)"""
    bound = math.sqrt(3.0 / fans(shape)[0])
    return uniform(shape, rng, -bound, bound, dtype)


def lecun_normal(shape, rng, dtype=np.float32):
    """N(0, 1 / fan_in) (untruncated)"""
    return normal(shape, rng, math.sqrt(1.0 / fans(shape)[0]), dtype=dtype)


glorot_uniform, glorot_normal = xavier_uniform, xavier_normal
he_uniform, he_normal = kaiming_uniform, kaiming_normal
