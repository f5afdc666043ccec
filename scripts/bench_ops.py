"""Forward + backward of every op the built-in models use, mpigrad against PyTorch, one thread.

    python scripts/bench_ops.py [--reps 50]

Shapes are the default job's micro-batch (batch 8, context 64, d_model 64, 4 heads, MLP width 256,
vocabulary 103) and the GRU model's step (batch 32, input 64, hidden 128); float32. Each row
times one op applied to fresh inputs and one backward with a fixed output gradient, mpigrad and
torch interleaved (each timed call right after an untimed one of the same side: one framework's
freed memory and caches slow the other's next call), medians of CPU time (time.thread_time: on a shared machine
wall-clock medians mostly measure the other processes). The last row is the engine's own cost: a chain of 100 tiny ops
(shape (4,)), microseconds per graph node. torch rows need `pip install -e '.[bench]'`.
"""

import os

os.environ.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from mpigrad.autograd import Variable, cross_entropy, gelu, nn, softmax  # noqa: E402
from mpigrad.autograd.nn import functional as NF  # noqa: E402
from timing import interleaved_medians  # noqa: E402  (scripts/ is on sys.path)
from machine import machine_line  # noqa: E402

B, T, C, H, VOCAB, GB, GH = 8, 64, 64, 4, 103, 32, 128
CHAIN = 100


def mpigrad_cases(rng):
    """name -> (inputs, fn(*Variables) -> output) for mpigrad."""
    def arr(*shape):
        return rng.standard_normal(shape).astype(np.float32)
    gru = nn.GRU(C, GH, rng=0)
    ids, targets = rng.integers(0, VOCAB, (B, T)), rng.integers(0, VOCAB, (B, T))
    cases = {f"linear {i}->{o} (3-D)": ([arr(B, T, i), arr(o, i), arr(o)], NF.linear)
             for i, o in ((C, C), (C, 4 * C), (4 * C, C), (C, VOCAB))}
    cases.update({
        "layer_norm": ([arr(B, T, C), np.ones(C, np.float32), np.zeros(C, np.float32)], NF.layer_norm),
        "gelu": ([arr(B, T, 4 * C)], gelu),
        "softmax (scores)": ([arr(B, H, T, T)], lambda s: softmax(s, axis=-1)),
        "causal attention": ([arr(B, H, T, C // H) for _ in range(3)],
                             lambda q, k, v: NF.scaled_dot_product_attention(q, k, v, causal=True)),
        "embedding (tok+pos)": ([arr(VOCAB, C), arr(T, C)],
                                lambda w, p: NF.embedding(w, ids) + NF.embedding(p, np.arange(T))),
        "cross_entropy": ([arr(B, T, VOCAB)], lambda x: cross_entropy(x, targets)),
        "residual add": ([arr(B, T, C), arr(B, T, C)], lambda a, b: a + b),
        "GRU cell (+ input proj)": ([arr(GB, C), arr(GB, GH), gru.weight_ih.data, gru.bias_ih.data,
                                     gru.weight_hh.data, gru.bias_hh.data], _gru_step(gru)),
        f"chain of {CHAIN} tiny ops": ([arr(4)], _chain),
    })
    return cases


def _gru_step(gru):
    def step(x, h, w_ih, b_ih, w_hh, b_hh):
        gru.weight_hh, gru.bias_hh = w_hh, b_hh
        return gru.cell(NF.linear(x, w_ih, b_ih), h)
    return step


def _chain(x):
    for i in range(CHAIN // 2):
        x = x * 1.0001 + 0.001
    return x


def torch_cases(torch, rng):
    """The same ops in PyTorch (same shapes, float32)."""
    F = torch.nn.functional

    def arr(*shape):
        return rng.standard_normal(shape).astype(np.float32)
    ids, targets = torch.as_tensor(rng.integers(0, VOCAB, (B, T))), torch.as_tensor(rng.integers(0, VOCAB, (B, T)))
    pos = torch.arange(T)
    cell = torch.nn.GRUCell(C, GH)
    cases = {f"linear {i}->{o} (3-D)": ([arr(B, T, i), arr(o, i), arr(o)], F.linear)
             for i, o in ((C, C), (C, 4 * C), (4 * C, C), (C, VOCAB))}
    cases.update({
        "layer_norm": ([arr(B, T, C), np.ones(C, np.float32), np.zeros(C, np.float32)],
                       lambda x, w, b: F.layer_norm(x, (C,), w, b)),
        "gelu": ([arr(B, T, 4 * C)], lambda x: F.gelu(x, approximate="tanh")),
        "softmax (scores)": ([arr(B, H, T, T)], lambda s: torch.softmax(s, dim=-1)),
        "causal attention": ([arr(B, H, T, C // H) for _ in range(3)],
                             lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)),
        "embedding (tok+pos)": ([arr(VOCAB, C), arr(T, C)], lambda w, p: F.embedding(ids, w) + F.embedding(pos, p)),
        "cross_entropy": ([arr(B, T, VOCAB)], lambda x: F.cross_entropy(x.reshape(-1, VOCAB), targets.reshape(-1))),
        "residual add": ([arr(B, T, C), arr(B, T, C)], lambda a, b: a + b),
        "GRU cell (+ input proj)": ([arr(GB, C), arr(GB, GH)], cell),
        f"chain of {CHAIN} tiny ops": ([arr(4)], _chain),
    })
    return cases


def mpigrad_run(inputs, fn, grad):
    xs = [Variable(a, requires_grad=True) for a in inputs]
    out = fn(*xs)
    out.backward(grad(out.shape))
    return xs[0].grad


def torch_run(torch, inputs, fn, grad):
    xs = [torch.from_numpy(a).requires_grad_() for a in inputs]
    out = fn(*xs)
    out.backward(torch.from_numpy(grad(tuple(out.shape))))
    return xs[0].grad


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=50)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    grads = {}

    def grad(shape):  # one fixed output gradient per shape, shared by both sides
        if shape not in grads:
            grads[shape] = rng.standard_normal(shape).astype(np.float32)
        return grads[shape]
    mine = mpigrad_cases(rng)
    theirs = torch_cases(torch, rng) if torch else {}
    print(f"forward + backward, float32, 1 thread, medians of {args.reps} interleaved reps (ms of CPU time)")
    print(f"{'op':<28}{'mpigrad':>10}{'torch':>10}{'ratio':>8}")
    for name, (inputs, fn) in mine.items():
        variants = {"mpigrad": lambda: mpigrad_run(inputs, fn, grad)}
        if name in theirs:
            t_inputs, t_fn = theirs[name]
            variants["torch"] = lambda: torch_run(torch, t_inputs, t_fn, grad)
        med = interleaved_medians(variants, args.reps, warmup=3, settle=1, clock=time.thread_time)
        if name.startswith("chain"):
            nodes = CHAIN + 1  # CHAIN ops and the leaf
            print(f"{'engine cost per node (us)':<28}{1e3 * med['mpigrad'] / nodes:10.2f}", end="")
            med = {k: 1e3 * v / nodes for k, v in med.items()}
        else:
            print(f"{name:<28}{med['mpigrad']:10.3f}", end="")
        if "torch" in med:
            print(f"{med['torch']:10.3f}{med['mpigrad'] / med['torch']:8.2f}")
        else:
            print(f"{'-':>10}{'-':>8}")
    if torch is None:
        print("torch columns empty: PyTorch is not installed (pip install -e '.[bench]')")


if __name__ == "__main__":
    main()
