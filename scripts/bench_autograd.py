"""Overhead of mpigrad.autograd against hand-written numpy: one MLP training step, forward + backward.

MLP 784-1024-1024-10, ReLU, float32, batch 256, mean cross-entropy, one BLAS thread. The
versions are interleaved (A, B, C, A, B, C, ...) so drift in machine load hits all alike.
Run: .venv/bin/python scripts/bench_autograd.py [--reps 30]
"""

import os

os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

import argparse  # noqa: E402

import numpy as np  # noqa: E402

from mpigrad.autograd import cross_entropy, nn  # noqa: E402
from timing import interleaved_medians  # noqa: E402  (scripts/ is on sys.path)
from machine import machine_line  # noqa: E402

SIZES, BATCH = [784, 1024, 1024, 10], 256


def autograd_step(model, x, y, accumulate=False):
    """Forward and backward through the autograd engine.

    accumulate=False drops the old grads first, so backward hands each parameter a new gradient
    array, as raw numpy does. accumulate=True zeroes the existing buffers and backward adds into
    them in place, which is what the optimizer and the runtime's flat buffers do.
    """
    if accumulate:
        model.zero_grad()
    else:
        for p in model.parameters():
            p.grad = None
    loss = cross_entropy(model(x), y)
    loss.backward()
    return loss.item()


def raw_step(params, x, y):
    """The same forward and backward written directly in numpy (weights (out, in) like Linear)."""
    (w1, b1), (w2, b2), (w3, b3) = params
    h1 = x @ w1.T
    h1 += b1
    a1 = np.maximum(h1, 0)
    h2 = a1 @ w2.T
    h2 += b2
    a2 = np.maximum(h2, 0)
    logits = a2 @ w3.T
    logits += b3
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(y))
    loss = -logp[rows, y].mean()
    g = np.exp(logp)
    g[rows, y] -= 1
    g /= len(y)
    grads = [g.T @ a2, g.sum(0)]
    g = g @ w3
    g *= h2 > 0
    grads += [g.T @ a1, g.sum(0)]
    g = g @ w2
    g *= h1 > 0
    grads += [g.T @ x, g.sum(0)]
    return loss, grads


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    rng = np.random.default_rng(0)
    model = nn.MLP(SIZES, activation="relu", rng=rng, dtype=np.float32)
    params = [(model[i].weight.data, model[i].bias.data) for i in (0, 2, 4)]
    x = rng.standard_normal((BATCH, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], size=BATCH)

    loss_a, (loss_r, grads_r) = autograd_step(model, x, y), raw_step(params, x, y)
    grads_a = [p.grad for p in model.parameters()]
    grads_r = [grads_r[i] for i in (4, 5, 2, 3, 0, 1)]  # raw computes them last layer first
    assert abs(loss_a - loss_r) < 1e-4 and all(np.allclose(a, r, atol=1e-5) for a, r in zip(grads_a, grads_r)), \
        "autograd and raw numpy disagree"
    assert all(p.grad.dtype == np.float32 for p in model.parameters())

    steps = {
        "autograd": lambda: autograd_step(model, x, y),
        "autograd+zero_grad": lambda: autograd_step(model, x, y, accumulate=True),
        "raw numpy": lambda: raw_step(params, x, y),
    }
    med = interleaved_medians(steps, args.reps, args.warmup)
    print(f"MLP {'-'.join(map(str, SIZES))} relu float32 batch {BATCH}, forward+backward, 1 BLAS thread, "
          f"{args.reps} interleaved reps")
    for name, ms in med.items():
        print(f"  {name:<20} median {ms:7.2f} ms")
    print(f"ratio autograd/raw {med['autograd'] / med['raw numpy']:.3f}   "
          f"(with zero_grad + in-place accumulation: {med['autograd+zero_grad'] / med['raw numpy']:.3f})")

if __name__ == "__main__":
    main()
