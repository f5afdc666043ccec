"""The mpigrad side of scripts/bench_models.py: each reference model's training step under DataParallel."""

import contextlib

import numpy as np

from mpigrad.autograd import cross_entropy, nn
from mpigrad.config import load_config
from mpigrad.data import load_data
from mpigrad.models import build_model
from mpigrad.optim import Adam
from mpigrad.runtime import DataParallel

VOCAB, SEQ = 103, 64


class CharGRU(nn.Module):
    """Embedding 64 -> GRU 128 -> Linear to the vocabulary, a logit per position."""

    def __init__(self, vocab=VOCAB, embed=64, hidden=128):
        super().__init__()
        self.token = nn.Embedding(vocab, embed, rng=0)
        self.gru = nn.GRU(embed, hidden, rng=1)
        self.head = nn.Linear(hidden, vocab, rng=2)

    def forward(self, ids):
        return self.head(self.gru(self.token(ids))[0])

    def loss(self, logits, targets):
        return cross_entropy(logits, targets)


class RefMLP(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.mlp = nn.MLP(sizes, rng=0)

    def forward(self, x):
        return self.mlp(x)

    def loss(self, logits, targets):
        return cross_entropy(logits, targets)


def spec(name, world):
    """(model, global batch, micro-batch, Adam hyper-parameters, batch(rng, n) -> (x, y))."""
    if name == "transformer":
        cfg = load_config(None, (), world)
        data = load_data(cfg)
        order = np.random.default_rng(0).permutation(data.train.num_samples)
        return (build_model(cfg, data), cfg.global_batch, cfg.micro_batch, dict(lr=cfg.lr, weight_decay=cfg.weight_decay),
                lambda rng, n: data.train.batch(order[rng.integers(0, len(order) - n):][:n]))
    if name == "mlp":
        cfg = load_config(None, ("model='mlp'", "data='unused.npz'"), world)
        data = type("Shape", (), {"features": 784, "classes": 10})
        return (build_model(cfg, data), cfg.global_batch, cfg.micro_batch, dict(lr=cfg.lr, weight_decay=cfg.weight_decay),
                lambda rng, n: (rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)))
    if name == "ref-mlp":
        return (RefMLP([784, 1024, 1024, 10]), 256, 256, dict(lr=1e-3, weight_decay=1e-4),
                lambda rng, n: (rng.standard_normal((n, 784), dtype=np.float32), rng.integers(0, 10, n)))
    if name == "gru":
        return (CharGRU(), 32, 32, dict(lr=3e-3),
                lambda rng, n: (rng.integers(0, VOCAB, (n, SEQ)), rng.integers(0, VOCAB, (n, SEQ))))
    raise ValueError(f"unknown model {name!r}")


def make_step(name, comm):
    """A function running one training step of model `name` on this rank's share of a fresh batch."""
    model, global_batch, micro_batch, hyper, batch = spec(name, comm.size)
    dp = DataParallel(model, comm)
    opt = Adam(dp.parameters(), **hyper)
    local = global_batch // comm.size
    micro = max(1, local // micro_batch)
    rng = np.random.default_rng(1 + comm.rank)
    parts = [batch(rng, local // micro) for _ in range(micro)]

    def step():
        opt.zero_grad()
        for i, (x, y) in enumerate(parts):
            with dp.no_sync() if i < micro - 1 else contextlib.nullcontext():
                (model.loss(dp(x), y) * (1.0 / micro)).backward()
        opt.clip_grad_norm(1.0)
        opt.step()
    return step
