"""The PyTorch side of scripts/bench_models.py: the same models, batches and optimizer, one thread per
rank, DDP over gloo with no_sync accumulation at world 2 (optional: needs torch)."""

import contextlib

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from mpigrad.config import load_config

VOCAB, SEQ = 103, 64


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.out = (nn.Linear(d, d) for _ in range(4))
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(approximate="tanh"), nn.Linear(4 * d, d))

    def forward(self, x):
        b, t, d = x.shape
        h = self.ln1(x)
        q, k, v = (p(h).view(b, t, self.heads, -1).transpose(1, 2) for p in (self.q, self.k, self.v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
        x = x + self.out(y)
        return x + self.mlp(self.ln2(x))


class CharTransformer(nn.Module):
    def __init__(self, vocab, context, d, heads, layers):
        super().__init__()
        self.token, self.position = nn.Embedding(vocab, d), nn.Embedding(context, d)
        self.blocks = nn.Sequential(*[Block(d, heads) for _ in range(layers)])
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, ids):
        x = self.token(ids) + self.position(torch.arange(ids.shape[1]))
        return self.head(self.ln(self.blocks(x)))


class CharGRU(nn.Module):
    def __init__(self, vocab=VOCAB, embed=64, hidden=128):
        super().__init__()
        self.token, self.gru, self.head = nn.Embedding(vocab, embed), nn.GRU(embed, hidden, batch_first=True), \
            nn.Linear(hidden, vocab)

    def forward(self, ids):
        return self.head(self.gru(self.token(ids))[0])


def mlp(sizes):
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def spec(name, world):
    """(model, global batch, micro-batch, Adam hyper-parameters, batch(gen, n) -> (x, y))."""
    ids = lambda g, n: (torch.randint(0, VOCAB, (n, SEQ), generator=g),  # noqa: E731
                        torch.randint(0, VOCAB, (n, SEQ), generator=g))
    if name == "transformer":
        c = load_config(None, (), world)
        return (CharTransformer(VOCAB, c.context, c.d_model, c.num_heads, c.num_layers), c.global_batch,
                c.micro_batch, dict(lr=c.lr, weight_decay=c.weight_decay), ids)
    if name == "mlp":
        c = load_config(None, ("model='mlp'", "data='unused.npz'"), world)
        return (mlp([784, *c.hidden, 10]), c.global_batch, c.micro_batch, dict(lr=c.lr, weight_decay=c.weight_decay),
                lambda g, n: (torch.rand(n, 784, generator=g), torch.randint(0, 10, (n,), generator=g)))
    if name == "ref-mlp":
        return (mlp([784, 1024, 1024, 10]), 256, 256, dict(lr=1e-3, weight_decay=1e-4),
                lambda g, n: (torch.randn(n, 784, generator=g), torch.randint(0, 10, (n,), generator=g)))
    if name == "gru":
        return CharGRU(), 32, 32, dict(lr=3e-3), ids
    raise ValueError(f"unknown model {name!r}")


def init_torch(rank, size):
    """One thread; a gloo process group at world sizes above 1 (MASTER_ADDR/PORT from the launcher)."""
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    if size > 1:
        dist.init_process_group("gloo", rank=rank, world_size=size)


def make_step(name, rank, size):
    """A function running one training step of model `name` (DDP with no_sync accumulation above world 1)."""
    torch.manual_seed(0)
    model, global_batch, micro_batch, hyper, batch = spec(name, size)
    wrapped = nn.parallel.DistributedDataParallel(model) if size > 1 else model
    opt = torch.optim.Adam(model.parameters(), **hyper)
    local = global_batch // size
    micro = max(1, local // micro_batch)
    g = torch.Generator().manual_seed(1 + rank)
    parts = [batch(g, local // micro) for _ in range(micro)]

    def step():
        opt.zero_grad()
        for i, (x, y) in enumerate(parts):
            with wrapped.no_sync() if size > 1 and i < micro - 1 else contextlib.nullcontext():
                out = wrapped(x)
                (F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1)) / micro).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return step
